"""Compiled elementwise kernels over flat, contiguous arrays (twins in `_engine.eltwise`)."""

from __future__ import annotations

import numba

from . import njit

__all__ = ["relu", "relu_backward"]


@njit(parallel=True, fastmath=False)
def relu(a, out):
    """out = max(a, 0); NaN stays NaN (the comparison is false for it)."""
    for i in numba.prange(a.size):
        v = a[i]
        out[i] = 0 if v < 0 else v


@njit(parallel=True)
def relu_backward(g, y, out):
    """out = g where y > 0 else 0: one pass, and a non-finite g never leaks as 0 * inf."""
    for i in numba.prange(g.size):
        out[i] = g[i] if y[i] > 0 else 0
