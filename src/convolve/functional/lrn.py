"""Local response normalisation across channels (AlexNet, GoogLeNet; PyTorch semantics)."""

from __future__ import annotations

import numbers

import numpy as np

from .._shared.types import ArrayOrTensor, TensorLike
from ..autograd import as_array, record
from ._args import as_input, compute_dtype, float_dtype, is_int

__all__ = ["local_response_norm"]


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[:, c] = sum of a[:, c - before : c + after + 1] (zeros outside), through one cumulative sum."""
    C = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before + 1, after)  # one extra leading zero so the window is a difference of two prefixes
    c = np.cumsum(np.pad(a, pad), axis=1)
    return c[:, before + 1 + after: before + 1 + after + C] - c[:, :C]


def lrn_window(input, size: int, alpha: float, beta: float, k: float, before: int, after: int):
    """``x / (k + alpha / size * Σ x²)^beta`` with the sum over channels ``[c - before, c + after]``.

    The core of :func:`local_response_norm` (PyTorch's window) and of ONNX's LRN (its window puts the
    odd channel of an even `size` after, not before).
    """
    x = as_input(input, "input")
    dtype = float_dtype("input", x)
    a = as_array(x)
    if a.ndim < 3:
        raise ValueError(f"local_response_norm expects input of shape (N, C, *) with at least 3 dimensions, "
                         f"but got shape {a.shape}")
    a = a.astype(compute_dtype(dtype), copy=False)
    scale = np.asarray(alpha / size, a.dtype)
    d = k + scale * _channel_window_sum(a * a, before, after)  # (N, C, *)
    dpow = d ** -beta
    out = (a * dpow).astype(dtype, copy=False)

    def backward(g):
        g = g.astype(a.dtype, copy=False)
        # y_c = x_c d_c^-b, d_c = k + s Σ_{j in win(c)} x_j²  =>  dx_j = g_j d_j^-b - 2 b s x_j Σ_{c: j in win(c)} g_c x_c d_c^(-b-1)
        t = g * a * dpow / d
        gx = g * dpow - (2 * beta) * scale * a * _channel_window_sum(t, after, before)
        return (gx.astype(dtype, copy=False),)

    return record(out, (x,), backward)


def local_response_norm(input: TensorLike, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> ArrayOrTensor:
    """Normalise each value by the energy of its `size` neighbouring channels.

    ``b_c = a_c / (k + alpha / size * Σ_{c'} a_{c'}²)^beta`` with c' over ``[c - size//2, c + (size-1)//2]``
    (zeros outside the channels), exactly as PyTorch.

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, *) with at least one spatial dimension.
    size : int
        Number of channels in the window.
    alpha, beta, k : float

    Shape
    -----
    Output has the input's shape and dtype.
    """
    if not is_int(size) or size < 1:
        raise ValueError(f"size must be a positive int, but got {size!r}")
    for name, v in (("alpha", alpha), ("beta", beta), ("k", k)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"{name} must be a real number, but got {v!r}")
    return lrn_window(input, int(size), float(alpha), float(beta), float(k), size // 2, (size - 1) // 2)
