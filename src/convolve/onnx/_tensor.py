"""Tensor-or-array helpers for the graph's structural ops (concat, reshape, slicing, ...).

Each takes Tensors (and records the backward) or plain arrays, including the object arrays of
folded shape arithmetic (see :mod:`._fold`), so the same function serves folding and the runtime.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, as_array, record

__all__ = ["concat", "reshape", "transpose", "take", "slice_axes", "cast", "expand", "where_const"]


def concat(xs, axis: int):
    """Join along `axis`; the gradient is split back into the pieces."""
    arrays = [as_array(x) for x in xs]
    if not any(isinstance(x, Tensor) for x in xs):
        return np.concatenate(arrays, axis=axis)
    if len({a.dtype for a in arrays}) > 1:
        arrays = [a.astype(np.result_type(*arrays)) for a in arrays]
    out = np.concatenate(arrays, axis=axis)
    bounds = np.cumsum([0] + [a.shape[axis] for a in arrays])

    def backward(g):
        return [np.take(g, np.arange(b0, b1), axis=axis) for b0, b1 in zip(bounds[:-1], bounds[1:])]

    return record(out, tuple(xs), backward)


def reshape(x, shape):
    shape = tuple(int(s) for s in shape)
    return x.reshape(shape) if isinstance(x, Tensor) else np.reshape(x, shape)


def transpose(x, perm):
    perm = tuple(int(p) for p in perm)
    return x.permute(perm) if isinstance(x, Tensor) else np.transpose(x, perm)


def take(x, indices, axis: int):
    """ONNX Gather: ``np.take`` with negative indices counted from the end."""
    a = as_array(x)
    idx = np.asarray(indices)
    idx = np.where(idx < 0, idx + a.shape[axis], idx)
    if not isinstance(x, Tensor):
        return np.asarray(np.take(a, idx, axis=axis), dtype=a.dtype)  # a 0-d pick stays an array
    return x[(slice(None),) * (axis % a.ndim) + (idx,)]


def slice_axes(x, starts, ends, axes, steps):
    """ONNX Slice: clamped like Python slicing, one (start, end, step) per listed axis."""
    a = as_array(x)
    index = [slice(None)] * a.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        n = a.shape[ax]
        s, e, st = int(s), int(e), int(st)
        # ONNX uses INT_MAX / INT_MIN for "to the end"; Python slices clamp the same way
        s, e = max(min(s, n), -n - 1), max(min(e, n), -n - 1)
        index[ax] = slice(s, None if (st < 0 and e < -n) else e, st)
    return x[tuple(index)]


def cast(x, dtype):
    a = as_array(x)
    if a.dtype == object:  # folded shape arithmetic: stays symbolic while a dimension is unknown
        return a if dtype.kind in "iu" else a.astype(dtype)
    if a.dtype == dtype:
        return x
    return x.astype(dtype) if isinstance(x, Tensor) and dtype.kind == "f" else a.astype(dtype)


def expand(x, shape):
    """ONNX Expand: broadcast `x` to `shape` (bidirectionally, as NumPy)."""
    a = as_array(x)
    target = np.broadcast_shapes(a.shape, tuple(int(s) for s in shape))
    if not isinstance(x, Tensor):
        return np.broadcast_to(a, target).copy()
    return x + np.zeros(target, a.dtype)  # the addition's backward sums the broadcast axes


def where_const(cond, a, b):
    """ONNX Where with a constant condition: each element from `a` or `b`."""
    c = np.asarray(as_array(cond), bool)
    av, bv = as_array(a), as_array(b)
    out = np.where(c, av, bv)
    return record(out, (a, b), lambda g: (np.where(c, g, 0), np.where(c, 0, g)))
