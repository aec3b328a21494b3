"""Compiled batch normalisation over (N, C, L) arrays: forward and backward in one pass each.

One channel per parallel iteration; a channel's values are read twice by each kernel (statistics,
then the output), the second time mostly from cache. Sums are accumulated in float64. The NumPy
twin is `convolve.functional.norm.batch_norm`; `convolve._engine.norm` chooses between them.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit_parallel

__all__ = ["stats", "normalize", "backward"]


# the sums may be reassociated (vectorised); no other fast-math licence, so NaN and inf propagate
_SUMS = {"reassoc"}


@njit_parallel(fastmath=_SUMS)
def stats(x, mean, var):
    """mean[c] and the biased var[c] of x[:, c, :] (two passes over the channel: no cancellation)."""
    N, C, L = x.shape
    count = N * L
    for c in prange(C):
        s = 0.0
        for n in range(N):
            for i in range(L):
                s += x[n, c, i]
        m = s / count
        q = 0.0
        for n in range(N):
            for i in range(L):
                d = x[n, c, i] - m
                q += d * d
        mean[c] = m
        var[c] = q / count


@njit_parallel()
def normalize(x, mean, scale, shift, relu, y):
    """y = (x - mean[c]) * scale[c] + shift[c], then max(y, 0) with `relu`."""
    N, C, L = x.shape
    for c in prange(C):
        m, s, b = mean[c], scale[c], shift[c]
        for n in range(N):
            for i in range(L):
                v = (x[n, c, i] - m) * s + b
                if relu:
                    v = 0 if v < 0 else v  # NaN stays NaN
                y[n, c, i] = v


@njit_parallel(fastmath=_SUMS)
def backward(g, x, y, mean, invstd, scale, relu, training, gx, gsum, gdot):
    """The gradients of `normalize` (training: through the batch statistics too).

    gsum[c] = Σ g', gdot[c] = Σ g' · (x - mean) · invstd (g' is g, zeroed where y <= 0 with `relu`);
    gx (unless it has size 0) = scale · (g' - gsum / M - xhat · gdot / M) in training, scale · g' in eval.
    """
    N, C, L = x.shape
    M = N * L
    for c in prange(C):
        m = mean[c]
        s1 = 0.0
        s2 = 0.0
        for n in range(N):
            for i in range(L):
                v = g[n, c, i]
                if relu:
                    v = 0 if y[n, c, i] <= 0 else v
                s1 += v
                s2 += v * (x[n, c, i] - m)
        gsum[c] = s1
        gdot[c] = s2 * invstd[c]
        if gx.size == 0:
            continue
        sc = scale[c]
        a = s1 / M if training else 0.0
        k = s2 * invstd[c] * invstd[c] / M if training else 0.0
        for n in range(N):
            for i in range(L):
                v = g[n, c, i]
                if relu:
                    v = 0 if y[n, c, i] <= 0 else v
                gx[n, c, i] = sc * (v - a - (x[n, c, i] - m) * k)
