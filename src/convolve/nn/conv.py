"""Convolution layers: parameters (PyTorch's layout and default init) + one call to `convolve.functional`."""

from __future__ import annotations

from .. import functional as F
from .._shared.checks import check_bool, check_int, check_ints, is_int
from ..functional.conv import PADDING_MODES
from . import init
from ._layer import empty_parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONVT_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _padding_arg(padding, nd):
    """Keep strings and per-side pairs as given; ints become an nd-tuple (for the repr)."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, but got {padding!r}")
        return padding
    if is_int(padding) or (isinstance(padding, (tuple, list)) and all(is_int(p) for p in padding)):
        return check_ints("padding", padding, nd, minimum=0)
    return tuple(tuple(p) for p in padding)  # (before, after) pairs; the functional op validates them


class _ConvNd(Module):
    nd = 0
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding, dtype):
        super().__init__()
        nd = self.nd
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.groups = check_int("groups", groups, minimum=1)
        if in_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")
        allowed = ("zeros",) if self.transposed else PADDING_MODES
        if padding_mode not in allowed:
            raise ValueError(f"padding_mode must be one of {list(allowed)}, but got {padding_mode!r}")
        self.kernel_size = check_ints("kernel_size", kernel_size, nd, minimum=1)
        self.stride = check_ints("stride", stride, nd, minimum=1)
        self.dilation = check_ints("dilation", dilation, nd, minimum=1)
        self.padding = _padding_arg(padding, nd)
        if self.transposed and isinstance(self.padding, str):
            raise ValueError(f"ConvTranspose{nd}d takes numeric padding, but got {padding!r}")
        self.output_padding = check_ints("output_padding", output_padding, nd, minimum=0)
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = empty_parameter(shape, dtype)
        if check_bool("bias", bias):
            self.bias = empty_parameter((out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, *, generator=None):
        """PyTorch's default: kaiming_uniform(a=sqrt(5)) weight, U(±1/sqrt(fan_in)) bias."""
        init.default_weight_and_bias_(self.weight, self.bias, generator=generator)

    def extra_repr(self):
        nd = self.nd
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * nd:
            s += f", padding={self.padding}"  # 'same' prints bare, as PyTorch
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


_CONV_DOC = """{nd}-D convolution layer: ``F.conv{nd}d(input, weight, bias, stride, padding, dilation, groups, padding_mode)``.

Parameters
----------
in_channels, out_channels : int
kernel_size, stride, dilation : int or tuple of {nd} ints
padding : int, tuple, per-side (before, after) pairs, 'valid' or 'same'
groups : int
bias : bool
padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}
dtype : numpy float dtype, keyword-only
    Parameter dtype (float32 by default).

Attributes
----------
weight : Parameter
    (out_channels, in_channels/groups, *kernel_size), kaiming_uniform(a=sqrt(5)) like PyTorch.
bias : Parameter or None
    (out_channels,), U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

Shape
-----
- input: {in_shape}
- output: {out_shape}, ``out = floor((in + pad_total - dilation*(kernel-1) - 1) / stride) + 1``.
"""

_CONVT_DOC = """{nd}-D transposed convolution layer: ``F.conv_transpose{nd}d(...)``.

Parameters
----------
in_channels, out_channels : int
kernel_size, stride, padding, output_padding, dilation : int or tuple of {nd} ints
groups : int
bias : bool
padding_mode : 'zeros' (the only mode PyTorch supports here)
dtype : numpy float dtype, keyword-only

Attributes
----------
weight : Parameter
    (in_channels, out_channels/groups, *kernel_size) -- PyTorch's transposed layout.
bias : Parameter or None
    (out_channels,).

Shape
-----
- input: {in_shape}
- output: {out_shape}, ``out = (in - 1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1``;
  ``forward(input, output_size=...)`` picks the output_padding that gives that size.
"""

_SHAPES = {1: ("(N, C_in, L)", "(N, C_out, L_out)"), 2: ("(N, C_in, H, W)", "(N, C_out, H_out, W_out)"),
           3: ("(N, C_in, D, H, W)", "(N, C_out, D_out, H_out, W_out)")}


def _make_conv(nd):
    class Conv(_ConvNd):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                     bias=True, padding_mode="zeros", *, dtype=None):
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                             padding_mode, 0, dtype)

        def forward(self, input):
            return _CONV_FN[nd](input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                self.groups, self.padding_mode)

    Conv.nd = nd
    Conv.__name__ = Conv.__qualname__ = f"Conv{nd}d"
    Conv.__doc__ = _CONV_DOC.format(nd=nd, in_shape=_SHAPES[nd][0], out_shape=_SHAPES[nd][1])
    return Conv


def _make_conv_transpose(nd):
    class ConvTranspose(_ConvNd):
        transposed = True

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                     groups=1, bias=True, dilation=1, padding_mode="zeros", *, dtype=None):
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                             padding_mode, output_padding, dtype)

        def _output_padding(self, input, output_size):
            if output_size is None:
                return self.output_padding
            spatial = input.shape[-nd:]
            size = tuple(output_size)[-nd:] if isinstance(output_size, (tuple, list)) else None
            if size is None or len(size) != nd or not all(is_int(v) for v in size):
                raise TypeError(f"output_size must be a tuple of at least {nd} ints, but got {output_size!r}")
            pads = check_ints("padding", self.padding, nd) if not isinstance(self.padding[0], tuple) else None
            if pads is None:
                raise ValueError("output_size needs symmetric padding")
            result = []
            for i, (n, k, s, p, d, want) in enumerate(zip(spatial, self.kernel_size, self.stride, pads,
                                                            self.dilation, size)):
                smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
                if not smallest <= want < smallest + max(s, d):
                    raise ValueError(
                        f"output_size {want} in spatial dimension {i} is not reachable: it must be in "
                        f"[{smallest}, {smallest + max(s, d) - 1}] for input size {n}"
                    )
                result.append(want - smallest)
            return tuple(result)

        def forward(self, input, output_size=None):
            return _CONVT_FN[nd](input, self.weight, self.bias, self.stride, self.padding,
                                 self._output_padding(input, output_size), self.groups, self.dilation)

    ConvTranspose.nd = nd
    ConvTranspose.__name__ = ConvTranspose.__qualname__ = f"ConvTranspose{nd}d"
    ConvTranspose.__doc__ = _CONVT_DOC.format(nd=nd, in_shape=_SHAPES[nd][0], out_shape=_SHAPES[nd][1])
    return ConvTranspose


Conv1d, Conv2d, Conv3d = (_make_conv(n) for n in (1, 2, 3))
ConvTranspose1d, ConvTranspose2d, ConvTranspose3d = (_make_conv_transpose(n) for n in (1, 2, 3))
