"""Convolution and transposed convolution in 1, 2 and 3 spatial dimensions (PyTorch semantics)."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from .. import _engine
from .._geometry import conv_output, same_padding, transposed_output
from .._shared.checks import check_choice, check_int, check_ints
from .._shared.types import ArrayOrTensor, IntOrTuple, Padding, TensorLike
from ..autograd import Tensor, as_array, record
from ._args import as_input, float_dtype, padding_pairs
from ._docs import fill_doc
from ._layout import Layout, layout_of

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "PADDING_MODES"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _requires(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


class ConvOperands(NamedTuple):
    """What conv and transposed conv share, checked and normalised (see :func:`_operands`)."""

    input: Any  # the caller's input, as given (array or Tensor)
    weight: Any
    bias: Any
    layout: Layout
    stride: Tuple[int, ...]
    dilation: Tuple[int, ...]
    groups: int
    shape: Tuple[int, ...]  # the input's (N, C, *spatial)

    def in_compute_dtype(self) -> Tuple[Any, Any, Any]:
        """(input as (N, C, *spatial), weight, bias), all in the compute dtype."""
        cdt = self.layout.compute_dtype
        w, b = self.weight, self.bias
        w = w.astype(cdt) if as_array(w).dtype != cdt else w
        b = b.astype(cdt) if b is not None and as_array(b).dtype != cdt else b
        return self.layout.to_channels_first(self.input), w, b


def _operands(nd: int, op: str, input: Any, weight: Any, bias: Any, stride: Any, dilation: Any, groups: Any,
              data_format: Any) -> ConvOperands:
    """Validate what conv and transposed conv share."""
    x = as_input(input, "input")
    w = as_input(weight, "weight")
    b = None if bias is None else as_input(bias, "bias")
    dtype = float_dtype("input", x)
    for name, t in (("weight", w), ("bias", b)):
        if t is not None and float_dtype(name, t) != dtype:
            raise TypeError(
                f"input has dtype {dtype} but {name} has dtype {as_array(t).dtype}; "
                f"they must match (convert with .astype(np.{dtype}))"
            )
    layout = layout_of(x, nd, op, data_format, dtype)
    if as_array(w).ndim != nd + 2:
        raise ValueError(
            f"{op} expects a {nd + 2}-D weight (out_channels, in_channels/groups, *kernel_size), "
            f"but got {as_array(w).ndim}-D weight of shape {as_array(w).shape}"
        )
    return ConvOperands(
        x, w, b, layout,
        stride=check_ints("stride", stride, nd, minimum=1),
        dilation=check_ints("dilation", dilation, nd, minimum=1),
        groups=check_int("groups", groups, minimum=1),
        shape=layout.shape(x),
    )


def _check_bias(b: Any, channels: int) -> None:
    if b is not None and as_array(b).shape != (channels,):
        raise ValueError(f"bias must have shape ({channels},) (one per output channel), but got {as_array(b).shape}")


def _conv_core(x: Any, w: Any, b: Any, stride: Tuple[int, ...], dilation: Tuple[int, ...], groups: int,
               algorithm: Optional[str], pads: Optional[Tuple[Tuple[int, int], ...]] = None,
               mode: str = "zeros") -> Any:
    """One recorded op: channels-first convolution of x padded by `pads` in padding mode `mode`
    (the engine pads piece by piece), plus bias."""
    xa, wa, ba = as_array(x), as_array(w), as_array(b)
    y = _engine.forward(xa, wa, ba, stride, dilation, groups, algorithm, pads, mode)
    need_x, need_w = _requires(x), _requires(w)

    def backward(g):
        gx = _engine.grad_input(g, wa, xa.shape, stride, dilation, groups, algorithm, pads, mode) if need_x else None
        gw = _engine.grad_weight(xa, g, wa.shape, stride, dilation, groups, algorithm, pads, mode) if need_w else None
        gb = g.sum(axis=(0,) + tuple(range(2, g.ndim))) if ba is not None else None
        return gx, gw, gb

    return record(y, (x, w, b), backward)


def _conv_padding(nd: int, padding: Any, spatial: Tuple[int, ...], kernel: Tuple[int, ...],
                  ops: ConvOperands, padding_mode: str) -> Tuple[Tuple[int, int], ...]:
    """(before, after) per spatial dim, checked against the input size and the padding mode."""
    if isinstance(padding, str):
        if padding == "valid":
            pairs: Tuple[Tuple[int, int], ...] = ((0, 0),) * nd
        elif padding == "same":
            pairs = same_padding(spatial, kernel, ops.stride, ops.dilation)
        else:
            raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, but got {padding!r}")
    else:
        pairs = padding_pairs(padding, nd)
    conv_output(spatial, kernel, ops.stride, ops.dilation, pairs)  # raises if the kernel does not fit
    for i, (n, (pb, pe)) in enumerate(zip(spatial, pairs)):
        if padding_mode == "reflect" and max(pb, pe) >= n:
            raise ValueError(f"reflect padding {max(pb, pe)} must be smaller than the input size {n} in spatial dimension {i}")
        if padding_mode == "circular" and max(pb, pe) > n:
            raise ValueError(f"circular padding {max(pb, pe)} must be at most the input size {n} in spatial dimension {i}")
    return pairs


def _check_conv(nd: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
                padding_mode: Any, data_format: Any) -> Tuple[ConvOperands, Tuple[Tuple[int, int], ...]]:
    """Every check of a conv call, before any work: (the normalised operands, the padding pairs)."""
    ops = _operands(nd, f"conv{nd}d", input, weight, bias, stride, dilation, groups, data_format)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    groups, x, w = ops.groups, ops.input, ops.weight
    C, spatial = ops.shape[1], ops.shape[2:]
    O, Cg, kernel = as_array(w).shape[0], as_array(w).shape[1], as_array(w).shape[2:]
    if C != Cg * groups:
        raise ValueError(
            f"input has {C} channels but weight expects {Cg * groups} (input depth must equal kernel "
            f"depth x groups = {Cg} x {groups}); input shape {as_array(x).shape}, weight shape {as_array(w).shape}"
        )
    if O == 0:
        raise ValueError(f"weight has no output channels (shape {as_array(w).shape}); it needs at least one kernel")
    if O % groups:
        raise ValueError(f"groups={groups} must divide the weight's {O} output channels (kernels)")
    _check_bias(ops.bias, O)
    pairs = _conv_padding(nd, padding, spatial, kernel, ops, padding_mode)

    return ops, pairs


# Call keys that passed `_check_conv` -> (layout, stride, dilation, padding pairs). Only plain
# arguments make a key (ndarrays or Tensors, Python ints, strings, tuples of them; `_call_key`), so a
# value that would be refused (True for an int, a NumPy scalar, a list) always goes through the checks.
_checked: dict = {}


def _plain(v: Any) -> Any:
    """v itself if it is an int, a str or a tuple of ints or of tuples of ints, else `_NOT_PLAIN`."""
    t = type(v)
    if t is int or t is str:
        return v
    if t is tuple and all(type(e) is int or (type(e) is tuple and all(type(f) is int for f in e)) for e in v):
        return v
    return _NOT_PLAIN


_NOT_PLAIN = object()


def _call_key(nd: int, input: Any, weight: Any, bias: Any, *options: Any) -> Optional[tuple]:
    """What a conv call's checks depend on (types, shapes, dtypes, options), or None when an argument
    is not plain enough to be keyed safely."""
    key: list = [nd]
    for i, a in enumerate((input, weight, bias)):
        t = type(a)
        if t is np.ndarray or issubclass(t, Tensor):  # a Tensor's checks only see its data
            d = as_array(a)
            key += [t is np.ndarray, d.shape, d.dtype]
        elif a is None and i == 2:  # no bias
            key.append(None)
        else:
            return None
    for o in options:
        v = _plain(o)
        if v is _NOT_PLAIN:
            return None
        key.append((type(v), v))
    return tuple(key)


def _conv(nd: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
          padding_mode: Any, data_format: Any, algorithm: Optional[str]) -> Any:
    """The core behind conv1d/2d/3d: check everything, pad, convolve, restore the caller's layout."""
    if type(input).__module__.startswith("dask"):  # a dask array: lazy, blockwise (convolve.dask)
        from ..dask import hooks
        return hooks.conv(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format,
                          algorithm)
    key = _call_key(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format)
    known = _checked.get(key) if key is not None else None
    if known is not None:  # these very argument types, shapes and values passed every check before
        layout, stride_t, dilation_t, pairs = known
        ops = ConvOperands(input, weight, bias, layout, stride_t, dilation_t, groups, layout.shape(input))
        C, spatial = ops.shape[1], ops.shape[2:]
    else:
        ops, pairs = _check_conv(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                                 data_format)
        C, spatial = ops.shape[1], ops.shape[2:]
        if key is not None:
            if len(_checked) >= 1024:
                _checked.clear()
            _checked[key] = (ops.layout, ops.stride, ops.dilation, pairs)
    groups = ops.groups

    h, w, b = ops.in_compute_dtype()
    pads = None
    if any(p for pair in pairs for p in pair):
        pads = pairs  # every mode is applied piece by piece in the engine, under the memory cap
        if padding_mode != "zeros":
            padded = ops.shape[:2] + tuple(n + pb + pe for n, (pb, pe) in zip(spatial, pairs))
            _engine.check_size(padded, ops.layout.compute_dtype, "the padded input", f" of padding {pairs}")
    y = _conv_core(h, w, b, ops.stride, ops.dilation, groups, algorithm, pads, padding_mode)
    if C == 0:  # PyTorch's convention: an input without channels gives an output without channels
        y = y[:, :0]
    return ops.layout.from_channels_first(y)


def _conv_transpose_core(x: Any, w: Any, b: Any, full: Tuple[int, ...], crop: Tuple[Tuple[int, int], ...],
                         stride: Tuple[int, ...], dilation: Tuple[int, ...], groups: int,
                         algorithm: Optional[str]) -> Any:
    """One recorded op: transposed convolution onto a `full` frame, cropped, plus bias.

    Only the part of the frame that x can reach gets values (beyond it lies output_padding: zeros).
    The engine crops that part to the output piece by piece, as the zero padding of the convolution
    whose input gradient this is: the uncropped frame is never made whole.
    """
    xa, wa, ba = as_array(x), as_array(w), as_array(b)
    N, nd = xa.shape[0], xa.ndim - 2
    C_out = wa.shape[1] * groups
    reach = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(xa.shape[2:], stride, dilation, wa.shape[2:]))
    # the output (c0..c1 of the frame) as an input padded to `reach`: a negative `after` crops
    pads = tuple((c0, r - c1) for (c0, c1), r in zip(crop, reach))
    out_shape = (N, C_out) + tuple(c1 - c0 for c0, c1 in crop)
    _engine.check_size(out_shape, xa.dtype, "the output", f" of stride {stride}, dilation {dilation}")
    y = _engine.grad_input(xa, wa, out_shape, stride, dilation, groups, algorithm, pads)
    if ba is not None:
        y += ba.reshape((1, -1) + (1,) * nd)
    need_x, need_w = _requires(x), _requires(w)

    def backward(g):
        gx = _engine.forward(g, wa, None, stride, dilation, groups, algorithm, pads) if need_x else None
        gw = _engine.grad_weight(g, xa, wa.shape, stride, dilation, groups, algorithm, pads) if need_w else None
        gb = g.sum(axis=(0,) + tuple(range(2, g.ndim))) if ba is not None else None
        return gx, gw, gb

    return record(y, (x, w, b), backward)


def _transposed_frame(nd: int, ops: ConvOperands, kernel: Tuple[int, ...], pairs: Tuple[Tuple[int, int], ...],
                      output_padding: Tuple[int, ...]) -> Tuple[Tuple[int, ...], Tuple[Tuple[int, int], ...]]:
    """The full output frame per spatial dim and the (start, stop) crop that padding leaves of it."""
    return transposed_output(ops.shape[2:], kernel, ops.stride, ops.dilation, pairs, output_padding)


def _conv_transpose(nd: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
                    groups: Any, dilation: Any, data_format: Any, algorithm: Optional[str]) -> Any:
    """The core behind conv_transpose1d/2d/3d."""
    op = f"conv_transpose{nd}d"
    if type(input).__module__.startswith("dask"):  # a dask array: lazy, blockwise (convolve.dask)
        from ..dask import hooks
        return hooks.conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation,
                                    data_format, algorithm)
    ops = _operands(nd, op, input, weight, bias, stride, dilation, groups, data_format)
    groups, x, w = ops.groups, ops.input, ops.weight
    C = ops.shape[1]
    C_in, Cg_out, kernel = as_array(w).shape[0], as_array(w).shape[1], as_array(w).shape[2:]
    if C != C_in:
        raise ValueError(
            f"input has {C} channels but the transposed weight expects {C_in} (weight is "
            f"(in_channels, out_channels/groups, *kernel)); input shape {as_array(x).shape}, weight shape {as_array(w).shape}"
        )
    if C_in == 0 or Cg_out == 0:
        raise ValueError(f"the transposed weight (in_channels, out_channels/groups, *kernel) has shape "
                         f"{as_array(w).shape}; it needs at least one input and one output channel")
    if C_in % groups:
        raise ValueError(f"groups={groups} must divide the {C_in} input channels")
    _check_bias(ops.bias, Cg_out * groups)
    if isinstance(padding, str):
        raise ValueError(f"{op} takes numeric padding (an int, a tuple or (before, after) pairs), but got {padding!r}")
    pairs = padding_pairs(padding, nd)
    full, crop = _transposed_frame(nd, ops, kernel, pairs, check_ints("output_padding", output_padding, nd, minimum=0))
    h, w, b = ops.in_compute_dtype()
    y = _conv_transpose_core(h, w, b, full, crop, ops.stride, ops.dilation, groups, algorithm)
    return ops.layout.from_channels_first(y)


# --- public functions: explicit signatures over the two cores -------------------------------------


@fill_doc(nd=1)
def conv1d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros", *,
           data_format: str = "channels_first", algorithm: Optional[str] = None) -> ArrayOrTensor:
    """Apply a 1-D convolution over a signal: every output value is z = b + Σ w·x over one window.

    {conv_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> x = np.array([[[1., 2., 3., 4., 5.]]], np.float32)        # (N=1, C=1, L=5)
    >>> F.conv1d(x, np.array([[[1., 0., -1.]]], np.float32))      # a difference kernel
    array([[[-2., -2., -2.]]], dtype=float32)
    """
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format, algorithm)


@fill_doc(nd=2)
def conv2d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros", *,
           data_format: str = "channels_first", algorithm: Optional[str] = None) -> ArrayOrTensor:
    """Apply a 2-D convolution over an image: every output value is z = b + Σ w·x over one window.

    {conv_parameters}

    Examples
    --------
    The seeds' example: a 64x64x3 image, 8 kernels of 5x5x3 and padding 2 give a 64x64x8 volume.

    >>> import numpy as np, convolve.functional as F
    >>> x = np.ones((1, 3, 64, 64), np.float32)
    >>> w = np.ones((8, 3, 5, 5), np.float32)
    >>> F.conv2d(x, w, padding=2).shape
    (1, 8, 64, 64)
    >>> F.conv2d(x, w)[0, 0, 0, 0]                                 # 5*5*3 ones summed
    np.float32(75.0)
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format, algorithm)


@fill_doc(nd=3)
def conv3d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrTuple = 1,
           padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, padding_mode: str = "zeros", *,
           data_format: str = "channels_first", algorithm: Optional[str] = None) -> ArrayOrTensor:
    """Apply a 3-D convolution over a volume: every output value is z = b + Σ w·x over one window.

    {conv_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.conv3d(np.ones((2, 4, 8, 8, 8)), np.ones((6, 4, 3, 3, 3)), stride=2, padding="same").shape
    (2, 6, 4, 4, 4)
    """
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format, algorithm)


@fill_doc(nd=1)
def conv_transpose1d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrTuple = 1,
                     padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1,
                     *, data_format: str = "channels_first", algorithm: Optional[str] = None) -> ArrayOrTensor:
    """Apply a 1-D transposed convolution (the adjoint of conv1d, sometimes called deconvolution).

    {convt_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation,
                           data_format, algorithm)


@fill_doc(nd=2)
def conv_transpose2d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrTuple = 1,
                     padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1,
                     *, data_format: str = "channels_first", algorithm: Optional[str] = None) -> ArrayOrTensor:
    """Apply a 2-D transposed convolution (the adjoint of conv2d, sometimes called deconvolution).

    {convt_parameters}

    Examples
    --------
    A stride-2 transposed convolution doubles the size (the usual upsampling layer):

    >>> import numpy as np, convolve.functional as F
    >>> x = np.ones((1, 8, 16, 16), np.float32)
    >>> w = np.ones((8, 4, 4, 4), np.float32)                     # (C_in, C_out/groups, kH, kW)
    >>> F.conv_transpose2d(x, w, stride=2, padding=1).shape
    (1, 4, 32, 32)
    """
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation,
                           data_format, algorithm)


@fill_doc(nd=3)
def conv_transpose3d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None, stride: IntOrTuple = 1,
                     padding: Padding = 0, output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1,
                     *, data_format: str = "channels_first", algorithm: Optional[str] = None) -> ArrayOrTensor:
    """Apply a 3-D transposed convolution (the adjoint of conv3d, sometimes called deconvolution).

    {convt_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.conv_transpose3d(np.ones((1, 2, 3, 3, 3)), np.ones((2, 5, 2, 2, 2)), stride=2).shape
    (1, 5, 6, 6, 6)
    """
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation,
                           data_format, algorithm)
