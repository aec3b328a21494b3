"""Padding, with PyTorch's ``F.pad`` semantics."""

from __future__ import annotations

import numpy as np

from ..autograd import as_array, record
from ._args import as_input, is_int

__all__ = ["pad", "PAD_MODES"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each position of the padded axis, the input index it copies."""
    i = np.arange(-before, size + after)
    if mode == "reflect":  # mirror without repeating the edge: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
        period = 2 * (size - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= size, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, size - 1)
    return i % size  # circular


def pad(input, pad, mode="constant", value=0.0):
    """Pad the last ``len(pad) // 2`` dimensions of `input`.

    Parameters
    ----------
    input : ndarray or Tensor
    pad : tuple of ints
        ``(last_before, last_after, second_last_before, second_last_after, ...)`` as in PyTorch.
        Negative values crop (``'constant'`` mode only).
    mode : {'constant', 'reflect', 'replicate', 'circular'}
        'reflect' mirrors without repeating the edge (needs pad < size); 'replicate' repeats the
        edge; 'circular' wraps around (needs pad <= size).
    value : float
        Fill value for 'constant'.

    Shape
    -----
    (*, S_i)  ->  (*, S_i + before_i + after_i) for each padded dimension i.

    Examples
    --------
    >>> pad(np.array([[1., 2., 3.]]), (2, 1), mode="reflect")
    array([[3., 2., 1., 2., 3., 2.]])
    """
    x = as_input(input, "input")
    a = as_array(x)
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {list(PAD_MODES)}, but got {mode!r}")
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(is_int(p) for p in pad):
        raise TypeError(f"pad must be a tuple of an even number of ints, but got {pad!r}")
    m = len(pad) // 2
    if m > a.ndim:
        raise ValueError(f"pad {pad!r} pads {m} dimensions but input has only {a.ndim} ({a.shape})")
    pairs = [(0, 0)] * (a.ndim - m) + [(int(pad[2 * j]), int(pad[2 * j + 1])) for j in reversed(range(m))]

    if mode == "constant":
        out_shape = tuple(n + b + e for n, (b, e) in zip(a.shape, pairs))
        if any(s < 0 for s in out_shape):
            raise ValueError(f"pad {pad!r} crops more than input's shape {a.shape} holds")
        out = np.full(out_shape, value, dtype=a.dtype)
        dst = tuple(slice(max(b, 0), max(b, 0) + n + min(b, 0) + min(e, 0)) for n, (b, e) in zip(a.shape, pairs))
        src = tuple(slice(max(-b, 0), n - max(-e, 0)) for n, (b, e) in zip(a.shape, pairs))
        out[dst] = a[src]

        def backward(g):
            gx = np.zeros(a.shape, dtype=g.dtype)
            gx[src] = g[dst]
            return (gx,)

        return record(out, (x,), backward)

    for axis, (b, e) in enumerate(pairs):
        if b < 0 or e < 0:
            raise ValueError(f"pad must be non-negative in {mode!r} mode, but got {pad!r}")
        n = a.shape[axis]
        if (b or e) and mode == "reflect" and max(b, e) >= n:
            raise ValueError(
                f"reflect padding of {max(b, e)} needs an input dimension larger than the pad, but "
                f"dimension {axis} of input has size {n} (input shape {a.shape})"
            )
        if (b or e) and mode == "circular" and max(b, e) > n:
            raise ValueError(
                f"circular padding of {max(b, e)} may be at most the input size, but dimension {axis} "
                f"of input has size {n} (input shape {a.shape})"
            )
        if (b or e) and n == 0:
            raise ValueError(f"cannot {mode}-pad dimension {axis} of size 0 (input shape {a.shape})")

    index = [(_source_index(n, b, e, mode) if (b or e) else None) for n, (b, e) in zip(a.shape, pairs)]
    out = a
    for axis, idx in enumerate(index):
        if idx is not None:
            out = np.take(out, idx, axis=axis)

    def backward(g):
        # adjoint of a gather along each axis: sum the copies back with a one-hot matrix
        for axis, idx in reversed(list(enumerate(index))):
            if idx is None:
                continue
            onehot = np.zeros((len(idx), a.shape[axis]), dtype=g.dtype)
            onehot[np.arange(len(idx)), idx] = 1
            g = np.moveaxis(np.tensordot(g, onehot, axes=([axis], [0])), -1, axis)
        return (g,)

    return record(out, (x,), backward)
