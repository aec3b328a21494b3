"""Convolution and transposed convolution in 1, 2 and 3 spatial dimensions (PyTorch semantics)."""

from __future__ import annotations

import numpy as np

from .. import _engine
from ..autograd import Tensor, as_array, record
from ._args import (
    as_input,
    check_data_format,
    check_rank,
    compute_dtype,
    float_dtype,
    is_int,
    padding_pairs,
    positive,
    nonnegative,
    same_padding,
)
from .pad import pad as _pad

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# --- helpers that work the same on arrays and Tensors (Tensors record their backward) ----------


def _permute(x, axes):
    return x.permute(axes) if isinstance(x, Tensor) else np.transpose(x, axes)


def _requires(x) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _to_channels_first(x, nd, batched, channels_last, dtype):
    """(C, *S) / (N, *S, C) / ... -> (N, C, *S) in the compute dtype."""
    if not batched:
        x = x.reshape((1,) + as_array(x).shape)
    if channels_last:
        x = _permute(x, (0, nd + 1) + tuple(range(1, nd + 1)))
    if as_array(x).dtype != dtype:
        x = x.astype(dtype)
    return x


def _from_channels_first(y, nd, batched, channels_last, dtype):
    if channels_last:
        y = _permute(y, (0,) + tuple(range(2, nd + 2)) + (1,))
    if not batched:
        y = y.reshape(as_array(y).shape[1:])
    if as_array(y).dtype != dtype:
        y = y.astype(dtype)
    return y


def _common(nd, op, input, weight, bias, stride, dilation, groups, data_format):
    """Validate what conv and transposed conv share; return normalised pieces."""
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
    batched = check_rank(x, nd, "input", op)
    if as_array(w).ndim != nd + 2:
        raise ValueError(
            f"{op} expects a {nd + 2}-D weight (out_channels, in_channels/groups, *kernel_size), "
            f"but got {as_array(w).ndim}-D weight of shape {as_array(w).shape}"
        )
    channels_last = check_data_format(data_format)
    stride = positive(stride, nd, "stride")
    dilation = positive(dilation, nd, "dilation")
    if not is_int(groups) or groups <= 0:
        raise ValueError(f"groups must be a positive int, but got {groups!r}")
    shape = as_array(x).shape
    shape = shape if batched else (1,) + shape
    if channels_last:
        shape = (shape[0], shape[-1]) + shape[1:-1]
    return x, w, b, dtype, batched, channels_last, stride, dilation, int(groups), shape


def _check_bias(b, channels):
    if b is not None and as_array(b).shape != (channels,):
        raise ValueError(f"bias must have shape ({channels},) (one per output channel), but got {as_array(b).shape}")


def _conv_core(x, w, b, stride, dilation, groups, algorithm):
    """One recorded op: channels-first, already padded convolution plus bias."""
    xa, wa, ba = as_array(x), as_array(w), as_array(b)
    y = _engine.forward(xa, wa, ba, stride, dilation, groups, algorithm)
    need_x, need_w = _requires(x), _requires(w)

    def backward(g):
        gx = _engine.grad_input(g, wa, xa.shape, stride, dilation, groups, algorithm) if need_x else None
        gw = _engine.grad_weight(xa, g, wa.shape, stride, dilation, groups, algorithm) if need_w else None
        gb = g.sum(axis=(0,) + tuple(range(2, g.ndim))) if ba is not None else None
        return gx, gw, gb

    return record(y, (x, w, b), backward)


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format, algorithm):
    op = f"conv{nd}d"
    x, w, b, dtype, batched, channels_last, stride, dilation, groups, shape = _common(
        nd, op, input, weight, bias, stride, dilation, groups, data_format
    )
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, but got {padding_mode!r}")
    C, spatial = shape[1], shape[2:]
    O, Cg, kernel = as_array(w).shape[0], as_array(w).shape[1], as_array(w).shape[2:]
    if C != Cg * groups:
        raise ValueError(
            f"input has {C} channels but weight expects {Cg * groups} (input depth must equal kernel "
            f"depth x groups = {Cg} x {groups}); input shape {as_array(x).shape}, weight shape {as_array(w).shape}"
        )
    if O % groups:
        raise ValueError(f"groups={groups} must divide the weight's {O} output channels (kernels)")
    _check_bias(b, O)
    if isinstance(padding, str):
        if padding == "valid":
            pairs = ((0, 0),) * nd
        elif padding == "same":
            pairs = same_padding(spatial, kernel, stride, dilation)
        else:
            raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, but got {padding!r}")
    else:
        pairs = padding_pairs(padding, nd)
    for i, (n, k, d, (pb, pe)) in enumerate(zip(spatial, kernel, dilation, pairs)):
        if n + pb + pe < d * (k - 1) + 1:
            raise ValueError(
                f"kernel size {d * (k - 1) + 1} (kernel {k}, dilation {d}) is larger than the padded input "
                f"size {n + pb + pe} (input {n} + padding {pb}+{pe}) in spatial dimension {i}"
            )
        if padding_mode == "reflect" and max(pb, pe) >= n:
            raise ValueError(f"reflect padding {max(pb, pe)} must be smaller than the input size {n} in spatial dimension {i}")
        if padding_mode == "circular" and max(pb, pe) > n:
            raise ValueError(f"circular padding {max(pb, pe)} must be at most the input size {n} in spatial dimension {i}")

    cdt = compute_dtype(dtype)
    h = _to_channels_first(x, nd, batched, channels_last, cdt)
    w = w.astype(cdt) if as_array(w).dtype != cdt else w
    b = b.astype(cdt) if b is not None and as_array(b).dtype != cdt else b
    if any(p for pair in pairs for p in pair):
        flat = tuple(v for pair in reversed(pairs) for v in pair)  # F.pad order: last dim first
        h = _pad(h, flat, mode="constant" if padding_mode == "zeros" else padding_mode)
    y = _conv_core(h, w, b, stride, dilation, groups, algorithm)
    return _from_channels_first(y, nd, batched, channels_last, dtype)


def _conv_transpose_core(x, w, b, full, crop, stride, dilation, groups, algorithm):
    """One recorded op: transposed convolution onto a `full` frame, cropped, plus bias."""
    xa, wa, ba = as_array(x), as_array(w), as_array(b)
    N, nd = xa.shape[0], xa.ndim - 2
    C_out = wa.shape[1] * groups
    y_full = _engine.grad_input(xa, wa, (N, C_out) + tuple(full), stride, dilation, groups, algorithm)
    window = (slice(None), slice(None)) + tuple(slice(c0, c1) for c0, c1 in crop)
    y = np.ascontiguousarray(y_full[window])
    if ba is not None:
        y += ba.reshape((1, -1) + (1,) * nd)
    need_x, need_w = _requires(x), _requires(w)
    # the part of the full frame that x can reach; beyond it (output_padding) gradients are zero
    reach = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(xa.shape[2:], stride, dilation, wa.shape[2:]))

    def backward(g):
        g_full = np.zeros((N, C_out) + tuple(full), dtype=g.dtype)
        g_full[window] = g
        g_full = g_full[(slice(None), slice(None)) + tuple(slice(0, r) for r in reach)]
        gx = _engine.forward(g_full, wa, None, stride, dilation, groups, algorithm) if need_x else None
        gw = _engine.grad_weight(g_full, xa, wa.shape, stride, dilation, groups, algorithm) if need_w else None
        gb = g.sum(axis=(0,) + tuple(range(2, g.ndim))) if ba is not None else None
        return gx, gw, gb

    return record(y, (x, w, b), backward)


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation, data_format, algorithm):
    op = f"conv_transpose{nd}d"
    x, w, b, dtype, batched, channels_last, stride, dilation, groups, shape = _common(
        nd, op, input, weight, bias, stride, dilation, groups, data_format
    )
    spatial, C = shape[2:], shape[1]
    C_in, Cg_out, kernel = as_array(w).shape[0], as_array(w).shape[1], as_array(w).shape[2:]
    if C != C_in:
        raise ValueError(
            f"input has {C} channels but the transposed weight expects {C_in} (weight is "
            f"(in_channels, out_channels/groups, *kernel)); input shape {as_array(x).shape}, weight shape {as_array(w).shape}"
        )
    if C_in % groups:
        raise ValueError(f"groups={groups} must divide the {C_in} input channels")
    _check_bias(b, Cg_out * groups)
    if isinstance(padding, str):
        raise ValueError(f"{op} takes numeric padding (an int, a tuple or (before, after) pairs), but got {padding!r}")
    pairs = padding_pairs(padding, nd)
    output_padding = nonnegative(output_padding, nd, "output_padding")
    full, crop = [], []
    for i, (n, k, s, d, (pb, pe), op_) in enumerate(zip(spatial, kernel, stride, dilation, pairs, output_padding)):
        if op_ >= s and op_ >= d:
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation, but got output_padding={op_}, "
                f"stride={s}, dilation={d} in spatial dimension {i}"
            )
        f = (n - 1) * s + d * (k - 1) + 1 + op_
        if f - pb - pe <= 0:
            raise ValueError(
                f"padding {pb}+{pe} removes the whole output (size {f} before cropping) in spatial dimension {i}"
            )
        full.append(f)
        crop.append((pb, f - pe))
    cdt = compute_dtype(dtype)
    h = _to_channels_first(x, nd, batched, channels_last, cdt)
    w = w.astype(cdt) if as_array(w).dtype != cdt else w
    b = b.astype(cdt) if b is not None and as_array(b).dtype != cdt else b
    y = _conv_transpose_core(h, w, b, full, crop, stride, dilation, groups, algorithm)
    return _from_channels_first(y, nd, batched, channels_last, dtype)


# --- public functions -----------------------------------------------------------------------------

_CONV_DOC = """Apply a {nd}-D convolution: every output value is z = b + Σ w·x over one window.

Parameters
----------
input : ndarray or Tensor
    {in_shape} (or unbatched without N; or channels-last, see `data_format`).
weight : ndarray or Tensor
    {w_shape}: C_out kernels, each C_in/groups deep (kernel depth = input depth / groups).
bias : ndarray or Tensor, optional
    (C_out,), one per kernel.
stride : int or tuple of {nd} ints
    Step between window positions.
padding : int, tuple, per-side pairs, 'valid' or 'same'
    An int or one int per spatial dim pads both sides; ``(({pair_example}),...)`` gives
    (before, after) per spatial dim (asymmetric). 'same' keeps output = ceil(input / stride), also
    for stride > 1 (TF/Keras convention: when the total padding is odd the extra pixel goes at the
    end; for stride 1 this equals PyTorch's 'same').
dilation : int or tuple of {nd} ints
    Spacing between kernel taps.
groups : int
    Split channels into `groups` independent convolutions (groups = C_in is depthwise).
padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}
data_format : {{'channels_first', 'channels_last'}}, keyword-only
    'channels_last' reads input as {cl_shape} (Keras/JAX "NHWC") and returns output the same way;
    the weight layout does not change. Numbers are the same as channels-first.
algorithm : str, optional, keyword-only
    Force an engine algorithm by name (see ``convolve._engine.ALGORITHMS``); None chooses.

Returns
-------
ndarray or Tensor
    A Tensor (with its backward recorded) when any argument is a Tensor, else an array.

Shape
-----
- input: {in_shape}
- weight: {w_shape}
- output: {out_shape} where for each spatial dim
  ``out = floor((in + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``.

Notes
-----
dtype policy: float32 and float64 stay in their dtype; float16 is computed in float32 and returned
as float16; integer, bool and complex arrays are refused with a TypeError (convert explicitly).
NaN and inf propagate as in PyTorch.
"""

_CONVT_DOC = """Apply a {nd}-D transposed convolution (the adjoint of conv{nd}d, sometimes called deconvolution).

Each input value spreads a weighted copy of its kernel over the output; overlapping copies add.

Parameters
----------
input : ndarray or Tensor
    {in_shape} (or unbatched without N; or channels-last with `data_format`).
weight : ndarray or Tensor
    (C_in, C_out/groups, {k}) -- PyTorch's transposed layout.
bias : ndarray or Tensor, optional
    (C_out,).
stride, padding, output_padding, groups, dilation
    As in PyTorch: `padding` removes that many pixels from both ends of the full output (or give
    (before, after) pairs); `output_padding` adds pixels at the end and must be smaller than
    stride or dilation (it picks one of the input sizes a strided conv maps to the same output).
data_format, algorithm : keyword-only
    As in conv{nd}d.

Shape
-----
- input: {in_shape}
- output: {out_shape} where for each spatial dim
  ``out = (in - 1)*stride - pad_before - pad_after + dilation*(kernel-1) + output_padding + 1``.
"""

_SHAPES = {
    1: dict(in_shape="(N, C_in, L)", w_shape="(C_out, C_in/groups, kL)", out_shape="(N, C_out, L_out)",
            cl_shape="(N, L, C)", pair_example="1, 2", k="kL"),
    2: dict(in_shape="(N, C_in, H, W)", w_shape="(C_out, C_in/groups, kH, kW)", out_shape="(N, C_out, H_out, W_out)",
            cl_shape="(N, H, W, C)", pair_example="1, 2), (0, 1", k="kH, kW"),
    3: dict(in_shape="(N, C_in, D, H, W)", w_shape="(C_out, C_in/groups, kD, kH, kW)",
            out_shape="(N, C_out, D_out, H_out, W_out)", cl_shape="(N, D, H, W, C)", pair_example="1, 1), (0, 1), (2, 0",
            k="kD, kH, kW"),
}


def _make_conv(nd):
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
             *, data_format="channels_first", algorithm=None):
        return _conv(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, data_format, algorithm)

    conv.__name__ = conv.__qualname__ = f"conv{nd}d"
    conv.__doc__ = _CONV_DOC.format(nd=nd, **_SHAPES[nd])
    return conv


def _make_conv_transpose(nd):
    def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                       *, data_format="channels_first", algorithm=None):
        return _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation,
                               data_format, algorithm)

    conv_transpose.__name__ = conv_transpose.__qualname__ = f"conv_transpose{nd}d"
    conv_transpose.__doc__ = _CONVT_DOC.format(nd=nd, **_SHAPES[nd])
    return conv_transpose


conv1d, conv2d, conv3d = (_make_conv(n) for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (_make_conv_transpose(n) for n in (1, 2, 3))
