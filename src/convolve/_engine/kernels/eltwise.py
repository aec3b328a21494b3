"""Compiled elementwise kernels over flat, contiguous arrays (twins in `_engine.eltwise`)."""

from __future__ import annotations

from numba import prange

from . import njit_parallel

__all__ = ["relu", "relu_backward"]


@njit_parallel(fastmath=False)
def relu(a, out):
    """out = max(a, 0); NaN stays NaN (the comparison is false for it)."""
    for i in prange(a.size):
        v = a[i]
        out[i] = 0 if v < 0 else v


@njit_parallel()
def relu_backward(g, y, out):
    """out = 0 where y <= 0 else g (a NaN output passes g, as PyTorch): one pass, and a non-finite g
    never leaks as 0 * inf."""
    for i in prange(g.size):
        out[i] = 0 if y[i] <= 0 else g[i]
