"""How a fully convolutional model maps positions: output sizes, the input each output block needs
(its receptive field, clipped at the true border) and the alignment blocks must keep.

Per spatial axis a layer is a window (conv, pooling, transposed conv) or pointwise; a model is a
chain of layers, and a residual block the hull of its branches. The receptive field is explain's
``r_out = r_in + (kernel-1)*dilation*j_in``, here carried as the input interval an output interval
reads, so padding offsets, strides above and below 1 and branches all fold into one walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import lcm

from .. import nn
from .._shared.checks import check_ints
from .._geometry import padding_pairs, same_padding
from .._geometry import pool_output

__all__ = ["Window", "Chain", "Branches", "Pointwise", "parse_model"]

_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d,
              nn.BatchNorm3d)
_GLOBAL = (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
           nn.AdaptiveMaxPool2d)
_MAX = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)

# every convolution module (transposed ones too), by its public classes
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _ceil_div(a, b):
    return -(-a // b)


@dataclass
class Pointwise:
    """Each output position reads the same input position (activations, BatchNorm in eval, ...)."""

    def size(self, axis, n):
        return n

    def need(self, axis, lo, hi, n):
        return lo, hi

    def ratios(self, axis, prefix):
        return [prefix]


@dataclass
class Window:
    """A conv, pooling or transposed-conv layer, per spatial axis: kernel, stride, dilation, padding."""

    name: str
    kind: str  # "conv", "pool" or "transposed"
    kernel: tuple
    stride: tuple
    dilation: tuple
    pairs: tuple  # (before, after) per axis
    ceil_mode: bool = False
    output_padding: tuple = ()

    def extent(self, axis):
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def size(self, axis, n):
        k, s, d, (pb, pe), e = self.kernel[axis], self.stride[axis], self.dilation[axis], self.pairs[axis], self.extent(axis)
        if self.kind == "transposed":
            return (n - 1) * s - pb - pe + e + self.output_padding[axis]
        if self.kind == "pool":
            return pool_output((n,), (k,), (s,), (pb,), (d,), self.ceil_mode)[0][0]
        return (n + pb + pe - e) // s + 1

    def need(self, axis, lo, hi, n):
        """Input interval [lo', hi') that outputs [lo, hi) read, clipped to the input's [0, n) (None: unclipped)."""
        s, (pb, _), e = self.stride[axis], self.pairs[axis], self.extent(axis)
        if self.kind == "transposed":  # output t gets input i when i*s <= t + pb <= i*s + e - 1
            a, b = _ceil_div(lo + pb - e + 1, s), (hi - 1 + pb) // s + 1
        else:
            a, b = lo * s - pb, (hi - 1) * s - pb + e
        return (a, b) if n is None else (max(a, 0), min(b, n))

    def ratios(self, axis, prefix):
        s = self.stride[axis]
        return [prefix * (s if self.kind == "transposed" else Fraction(1, s))]


@dataclass
class Chain:
    layers: list

    def size(self, axis, n):
        for layer in self.layers:
            n = layer.size(axis, n)
        return n

    def need(self, axis, lo, hi, n):
        sizes = [n]
        for layer in self.layers[:-1]:
            sizes.append(None if n is None else layer.size(axis, sizes[-1]))
        for layer, m in zip(reversed(self.layers), reversed(sizes)):
            lo, hi = layer.need(axis, lo, hi, m)
        return lo, hi

    def ratios(self, axis, prefix):
        out = [prefix]
        for layer in self.layers:
            rs = layer.ratios(axis, out[-1])
            out.extend(rs[:-1])
            out.append(rs[-1])
        return out


@dataclass
class Branches:
    """Branches whose outputs are added (a residual block): the hull of what each needs."""

    name: str
    branches: list

    def size(self, axis, n):
        sizes = {b.size(axis, n) for b in self.branches}
        if len(sizes) != 1:
            raise ValueError(f"{self.name}: its branches give different sizes {sorted(sizes)} along spatial axis {axis}")
        return sizes.pop()

    def need(self, axis, lo, hi, n):
        spans = [b.need(axis, lo, hi, n) for b in self.branches]
        return min(a for a, _ in spans), max(b for _, b in spans)

    def ratios(self, axis, prefix):
        out = []
        for b in self.branches:
            out.extend(b.ratios(axis, prefix))
        return out


def _label(name, module):
    return f"layer '{name}' ({type(module).__name__})" if name else f"the model ({type(module).__name__})"


def _nd_of(module):
    return int(type(module).__name__[-2])  # Conv2d, MaxPool3d, ... (checked names only)


def parse_model(module, nd, name=""):
    """The geometry tree of `module` for inputs with `nd` spatial dims; ValueError naming a layer it cannot map."""
    if isinstance(module, nn.Sequential):
        return Chain([parse_model(child, nd, f"{name}.{key}" if name else key) for key, child in module.named_children()])
    if isinstance(module, nn.BasicBlock):
        main = Chain([parse_model(getattr(module, k), nd, f"{name}.{k}" if name else k)
                      for k in ("conv1", "bn1", "conv2", "bn2")])
        short = Pointwise() if module.downsample is None else parse_model(
            module.downsample, nd, f"{name}.downsample" if name else "downsample")
        return Chain([Branches(_label(name, module), [main, short]), Pointwise()])
    if isinstance(module, _POINTWISE) or (isinstance(module, (nn.Softmax, nn.LogSoftmax)) and module.dim == 1):
        return Pointwise()
    if isinstance(module, _GLOBAL) or isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        raise ValueError(f"{_label(name, module)} mixes all positions of the image, so the model cannot run "
                         f"block by block; map_model takes fully convolutional models (conv, pooling, "
                         f"activations, BatchNorm, residual blocks): map the part before this layer")
    label = _label(name, module)
    if isinstance(module, _CONV):
        if _nd_of(module) != nd:
            raise ValueError(f"{label} is {_nd_of(module)}-D but the input has {nd} spatial dims")
        stride, dilation = module.stride, module.dilation
        if getattr(module, "transposed", False):
            return Window(name, "transposed", module.kernel_size, stride, dilation,
                          padding_pairs(module.padding, nd), output_padding=module.output_padding)
        if module.padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{label}: padding='same' with stride {stride} depends on the size of the "
                                 f"whole image, so it cannot run block by block; give the padding as numbers")
            pairs = same_padding((1,) * nd, module.kernel_size, stride, dilation)
        else:
            pairs = ((0, 0),) * nd if module.padding == "valid" else padding_pairs(module.padding, nd)
        return Window(name, "conv", module.kernel_size, stride, dilation, pairs)
    if isinstance(module, _MAX + _AVG):
        if _nd_of(module) != nd:
            raise ValueError(f"{label} is {_nd_of(module)}-D but the input has {nd} spatial dims")
        if getattr(module, "return_indices", False):
            raise ValueError(f"{label} returns indices, which map_model does not support")
        kernel = check_ints("kernel_size", module.kernel_size, nd, minimum=1)
        stride = check_ints("stride", module.stride, nd, minimum=1)
        pad = check_ints("padding", module.padding, nd, minimum=0)
        dilation = check_ints("dilation", getattr(module, "dilation", 1), nd, minimum=1)
        return Window(name, "pool", kernel, stride, dilation, tuple((p, p) for p in pad), module.ceil_mode)
    raise ValueError(f"{label} is not a layer map_model knows (conv, pooling, activations, BatchNorm, Dropout, "
                     f"Sequential, BasicBlock), so it cannot tell which neighbouring positions it reads")


def alignment(tree, axis):
    """The smallest block offset A (input positions) that keeps every layer's grid on the whole image's grid."""
    return lcm(*(Fraction(r).denominator for r in tree.ratios(axis, Fraction(1))))
