"""Resizing (upsampling and downsampling) by nearest-neighbour or (bi/tri)linear interpolation.

One separable pass per resized axis: each output index reads one (nearest) or two (linear) source
indices, so the backward is a scatter-add of the gradient onto the same indices. The coordinate rules
are ONNX Resize's (`coordinate_transformation_mode`, `nearest_mode`); :func:`interpolate` maps PyTorch's
arguments onto them.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union, cast

import numbers

import numpy as np

from .._shared.types import ArrayOrTensor, IntOrTuple, TensorLike
from ..autograd import as_array, record
from ._args import as_input, compute_dtype, float_dtype, is_int

__all__ = ["interpolate", "resize"]

COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MODES = ("nearest", "linear")


def source_coordinates(n_out: int, n_in: int, scale: float, mode: str) -> np.ndarray:
    """For every output index along one axis, its position in the input (ONNX's formulas)."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "align_corners":
        return x * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if mode == "pytorch_half_pixel" and n_out == 1:
        return np.zeros(n_out)
    return (x + 0.5) / scale - 0.5  # half_pixel


def _nearest_index(pos, n_in, nearest_mode):
    if nearest_mode == "round_prefer_floor":
        i = np.ceil(pos - 0.5)
    elif nearest_mode == "round_prefer_ceil":
        i = np.floor(pos + 0.5)
    elif nearest_mode == "floor":
        i = np.floor(pos)
    else:
        i = np.ceil(pos)
    return np.clip(i, 0, n_in - 1).astype(np.intp)


def _resize_axis(x, axis, n_out, scale, mode, coord, nearest_mode):
    """One recorded op: resize `x` along `axis` to `n_out`."""
    a = as_array(x)
    n_in = a.shape[axis]
    pos = source_coordinates(n_out, n_in, scale, coord)
    if mode == "nearest":
        idx = _nearest_index(pos, n_in, nearest_mode)
        out = np.take(a, idx, axis=axis)
        taps = [(idx, None)]
    else:
        lo = np.floor(pos)
        frac = (pos - lo).astype(a.dtype)
        i0 = np.clip(lo, 0, n_in - 1).astype(np.intp)
        i1 = np.clip(lo + 1, 0, n_in - 1).astype(np.intp)
        shape = [1] * a.ndim
        shape[axis] = n_out
        w1 = frac.reshape(shape)
        w0 = (1 - frac).reshape(shape)
        out = np.take(a, i0, axis=axis) * w0 + np.take(a, i1, axis=axis) * w1
        taps = [(i0, w0), (i1, w1)]

    def backward(g):
        gx = np.zeros(a.shape, dtype=g.dtype)
        moved = np.moveaxis(gx, axis, 0)  # a view: add.at along the first axis writes into gx
        for idx, w in taps:
            part = g if w is None else g * w
            np.add.at(moved, idx, np.moveaxis(part, axis, 0))
        return (gx,)

    return record(out, (x,), backward)


def resize(input: TensorLike, size: Sequence[int], *, scales: Optional[Sequence[float]] = None, mode: str = "nearest",
           coordinate_transformation_mode: str = "half_pixel", nearest_mode: str = "round_prefer_floor") -> ArrayOrTensor:
    """Resize the spatial axes of ``(N, C, *spatial)`` `input` to `size` (ONNX Resize semantics).

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, *spatial), float.
    size : sequence of ints
        The output spatial size, one per spatial axis.
    scales : sequence of floats, optional
        The scale factors to use in the coordinate formula (ONNX uses the given scales, not
        ``size / input``); default ``size / input``.
    mode : {'nearest', 'linear'}
        'linear' interpolates each resized axis (bilinear in 2-D, trilinear in 3-D).
    coordinate_transformation_mode : str
        One of ``COORDINATE_MODES``: how an output index maps to an input position.
    nearest_mode : str
        One of ``NEAREST_MODES``: how 'nearest' rounds that position.

    Shape
    -----
    (N, C, *in_spatial) -> (N, C, *size).
    """
    x = as_input(input, "input")
    dtype = float_dtype("input", x)
    a = as_array(x)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, but got {mode!r}")
    if coordinate_transformation_mode not in COORDINATE_MODES:
        raise ValueError(f"coordinate_transformation_mode must be one of {list(COORDINATE_MODES)}, "
                         f"but got {coordinate_transformation_mode!r}")
    if nearest_mode not in NEAREST_MODES:
        raise ValueError(f"nearest_mode must be one of {list(NEAREST_MODES)}, but got {nearest_mode!r}")
    nd = a.ndim - 2
    if nd < 1:
        raise ValueError(f"resize expects input of shape (N, C, *spatial), but got shape {a.shape}")
    if not isinstance(size, (tuple, list)) or len(size) != nd or not all(is_int(s) and s > 0 for s in size):
        raise ValueError(f"size must be {nd} positive ints (one per spatial axis of input {a.shape}), but got {size!r}")
    if scales is None:
        scales = [s / n for s, n in zip(size, a.shape[2:])]
    elif len(scales) != nd or not all(isinstance(s, numbers.Real) and float(s) > 0 for s in scales):
        raise ValueError(f"scales must be {nd} positive numbers, but got {scales!r}")
    cdt = compute_dtype(dtype)
    y = x.astype(cdt) if a.dtype != cdt else x
    for i, (n_out, s) in enumerate(zip(size, scales)):
        identity = n_out == a.shape[2 + i] and s == 1 and coordinate_transformation_mode != "tf_half_pixel_for_nn"
        if not identity:
            y = _resize_axis(y, 2 + i, int(n_out), float(s), mode, coordinate_transformation_mode, nearest_mode)
    return y.astype(dtype) if as_array(y).dtype != dtype else y


def interpolate(input: TensorLike, size: Optional[IntOrTuple] = None,
                scale_factor: Union[float, Sequence[float], None] = None, mode: str = "nearest",
                align_corners: Optional[bool] = None) -> ArrayOrTensor:
    """Resize like ``torch.nn.functional.interpolate`` (modes nearest, linear, bilinear, trilinear).

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, L), (N, C, H, W) or (N, C, D, H, W).
    size : int or tuple of ints, optional
        Output spatial size; give exactly one of `size` and `scale_factor`.
    scale_factor : float or tuple of floats, optional
        Output = floor(input * scale_factor); the factor itself is used in the coordinate formula.
    mode : {'nearest', 'linear', 'bilinear', 'trilinear'}
        'nearest' picks floor(out_index / scale) (PyTorch's legacy nearest).
    align_corners : bool, optional
        Linear modes only: map the corner pixels' centres onto each other.

    Shape
    -----
    (N, C, *in_spatial) -> (N, C, *out_spatial).
    """
    x = as_input(input, "input")
    a = as_array(x)
    nd = a.ndim - 2
    linear = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode != "nearest" and mode not in linear:
        raise ValueError(f"mode must be 'nearest', 'linear', 'bilinear' or 'trilinear', but got {mode!r}")
    if mode in linear and linear[mode] != nd:
        raise ValueError(f"mode {mode!r} needs a {linear[mode] + 2}-D input, but got shape {a.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners only applies to the linear modes; leave it None for 'nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor")
    if size is not None:
        size = (size,) * nd if is_int(size) else tuple(cast(Sequence[int], size))
        scales = [s / n for s, n in zip(size, a.shape[2:])]
    else:
        factors = (scale_factor,) * nd if isinstance(scale_factor, numbers.Real) else tuple(cast(Sequence[float], scale_factor))
        if len(factors) != nd or not all(isinstance(f, numbers.Real) and float(f) > 0 for f in factors):
            raise ValueError(f"scale_factor must be a positive number or {nd} of them, but got {scale_factor!r}")
        size = tuple(int(np.floor(n * f)) for n, f in zip(a.shape[2:], factors))
        scales = list(factors)
    if mode == "nearest":
        return resize(x, list(size), scales=scales, mode="nearest", coordinate_transformation_mode="asymmetric",
                      nearest_mode="floor")
    coord = "align_corners" if align_corners else "pytorch_half_pixel"
    return resize(x, list(size), scales=scales, mode="linear", coordinate_transformation_mode=coord)
