"""Padding, with PyTorch's ``F.pad`` semantics."""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

from .._engine import check_size
from .._engine.edges import source_index
from .._shared.checks import check_choice, is_int
from .._shared.types import ArrayOrTensor, TensorLike
from ..autograd import as_array, record
from ._args import as_input

__all__ = ["pad", "PAD_MODES"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: TensorLike, pad: Tuple[int, ...], mode: str = "constant", value: float = 0.0) -> ArrayOrTensor:
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
    >>> import numpy as np, convolve.functional as F
    >>> F.pad(np.array([[1., 2., 3.]]), (2, 1), mode="reflect")
    array([[3., 2., 1., 2., 3., 2.]])
    >>> F.pad(np.array([[1., 2., 3.]]), (-1, 1))                   # negative crops
    array([[2., 3., 0.]])
    """
    x = as_input(input, "input")
    a = as_array(x)
    pairs = _pairs(a.shape, pad, mode)
    if mode != "constant":
        _check_copy_pad(a.shape, pairs, pad, mode)
    # an absurd pad is refused up front, with the size it would need
    out_shape = tuple(max(0, n + b + e) for n, (b, e) in zip(a.shape, pairs))
    check_size(out_shape, a.dtype, "the output", f" of pad {tuple(pad)}")
    if mode == "constant":
        return _constant_pad(x, a, pairs, pad, value)
    return _copy_pad(x, a, pairs, mode)


def _pairs(shape: Tuple[int, ...], pad: Any, mode: Any) -> List[Tuple[int, int]]:
    """Check `mode` and `pad`; (before, after) for every axis of `shape`, leading axes (0, 0)."""
    check_choice("mode", mode, PAD_MODES)
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(is_int(p) for p in pad):
        raise TypeError(f"pad must be a tuple of an even number of ints, but got {pad!r}")
    m = len(pad) // 2
    if m > len(shape):
        raise ValueError(f"pad {pad!r} pads {m} dimensions but input has only {len(shape)} ({shape})")
    return [(0, 0)] * (len(shape) - m) + [(int(pad[2 * j]), int(pad[2 * j + 1])) for j in reversed(range(m))]


def _constant_pad(x: Any, a: np.ndarray, pairs: List[Tuple[int, int]], pad: Any, value: float) -> Any:
    """Fill around, or crop where a pad is negative: one copy forward, one slice back."""
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


def _check_copy_pad(shape: Tuple[int, ...], pairs: List[Tuple[int, int]], pad: Any, mode: str) -> None:
    """The limits of the modes that copy input values into the padding."""
    for axis, (b, e) in enumerate(pairs):
        if b < 0 or e < 0:
            raise ValueError(f"pad must be non-negative in {mode!r} mode, but got {pad!r}")
        n = shape[axis]
        if (b or e) and mode == "reflect" and max(b, e) >= n:
            raise ValueError(
                f"reflect padding of {max(b, e)} needs an input dimension larger than the pad, but "
                f"dimension {axis} of input has size {n} (input shape {shape})"
            )
        if (b or e) and mode == "circular" and max(b, e) > n:
            raise ValueError(
                f"circular padding of {max(b, e)} may be at most the input size, but dimension {axis} "
                f"of input has size {n} (input shape {shape})"
            )
        if (b or e) and n == 0:
            raise ValueError(f"cannot {mode}-pad dimension {axis} of size 0 (input shape {shape})")


def _copy_pad(x: Any, a: np.ndarray, pairs: List[Tuple[int, int]], mode: str) -> Any:
    """reflect / replicate / circular: a gather along each padded axis; its adjoint sums the copies back."""
    index = [(source_index(n, b, e, mode) if (b or e) else None) for n, (b, e) in zip(a.shape, pairs)]
    out = a
    for axis, idx in enumerate(index):
        if idx is not None:
            out = np.take(out, idx, axis=axis)

    def backward(g):
        for axis, idx in reversed(list(enumerate(index))):
            if idx is None:
                continue
            onehot = np.zeros((len(idx), a.shape[axis]), dtype=g.dtype)
            onehot[np.arange(len(idx)), idx] = 1
            g = np.moveaxis(np.tensordot(g, onehot, axes=([axis], [0])), -1, axis)
        return (g,)

    return record(out, (x,), backward)
