"""Compiled max and average pooling over (planes, H, W) arrays, forward and backward.

One plane (an (n, c) pair) per parallel iteration: every output reads its window once, and the
backward zeroes and fills its plane while it is in cache. 1-D pooling runs as H = 1. The NumPy twins
are in `convolve.functional.pool`; `convolve._engine.pooling` chooses between them.

Window taps are numbered row-major (t = i * kw + j) over the whole window, padding included, as the
NumPy path numbers them; `arg` holds the number of the picked tap.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, njit_parallel

__all__ = ["max_pool2d", "max_pool2d_values", "max_pool2d_2x2", "max_pool2d_backward", "max_pool2d_2x2_backward", "avg_pool2d", "avg_pool2d_backward"]


@njit_parallel()
def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, relu, y, arg):
    """y[p, o] = max over window o of plane p; arg = the tap picked (the first maximum, or the last
    NaN, as PyTorch); with `relu`, y = max(y, 0) (ReLU then max pooling, which commute)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * sh - ph
            for ow in range(OW):
                w0 = ow * sw - pw
                best = x[p, 0, 0]
                pick = -1
                for i in range(kh):
                    ih = h0 + i * dh
                    if ih < 0 or ih >= H:
                        continue
                    for j in range(kw):
                        iw = w0 + j * dw
                        if iw < 0 or iw >= W:
                            continue
                        v = x[p, ih, iw]
                        if pick < 0 or v > best or v != v:
                            best = v
                            pick = i * kw + j
                if pick < 0:  # a window of padding only (possible with dilation): -inf, no pick
                    best = -np.inf
                if relu and best < 0:
                    best = 0
                y[p, oh, ow] = best
                arg[p, oh, ow] = pick


@njit
def _max_values_plane(x, kh, kw, sh, sw, ph, pw, dh, dw, relu, y, col):
    """One plane of `max_pool2d_values`: per output row, the maxima down each input column over the
    window's rows (`col`, contiguous: vectorises), then across each window's columns. A NaN wins
    every comparison; a window of padding only gives -inf."""
    H, W = x.shape
    OH, OW = y.shape
    for oh in range(OH):
        h0 = oh * sh - ph
        for iw in range(W):
            col[iw] = -np.inf
        for i in range(kh):
            ih = h0 + i * dh
            if ih < 0 or ih >= H:
                continue
            r = x[ih]
            for iw in range(W):
                v, c = r[iw], col[iw]
                col[iw] = v if (v > c) | (v != v) else c
        yr = y[oh]
        for ow in range(OW):
            yr[ow] = -np.inf
        for j in range(kw):
            off = j * dw - pw
            lo = 0 if off >= 0 else (sw - 1 - off) // sw  # first ow whose tap j is inside the row
            hi = min(OW, (W - 1 - off) // sw + 1)
            for ow in range(lo, hi):
                v, c = col[ow * sw + off], yr[ow]
                yr[ow] = v if (v > c) | (v != v) else c
        if relu:
            for ow in range(OW):
                yr[ow] = 0 if yr[ow] < 0 else yr[ow]


@njit_parallel()
def max_pool2d_values(x, kh, kw, sh, sw, ph, pw, dh, dw, relu, y):
    """`max_pool2d` without the picked taps (inference: nothing to route a gradient to); rows of
    selects instead of a branch per tap, so it vectorises."""
    P, W = x.shape[0], x.shape[2]
    for p in prange(P):
        _max_values_plane(x[p], kh, kw, sh, sw, ph, pw, dh, dw, relu, y[p], np.empty(W, x.dtype))


@njit_parallel()
def max_pool2d_2x2(x, relu, y, arg):
    """`max_pool2d` for the common 2x2 window with stride 2, no padding (floor mode).

    Written with selects, not branches, over whole rows, so that it vectorises (~4x the NumPy twin).
    """
    P = x.shape[0]
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            r0, r1 = x[p, 2 * oh], x[p, 2 * oh + 1]
            yr, ar = y[p, oh], arg[p, oh]
            for ow in range(OW):
                a, b, c, d = r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]
                t = (b > a) | (b != b)  # a NaN beats everything; a later one beats an earlier one
                m, k = (b, 1) if t else (a, 0)
                t = (c > m) | (c != c)
                m, k = (c, 2) if t else (m, k)
                t = (d > m) | (d != d)
                m, k = (d, 3) if t else (m, k)
                if relu:
                    m = 0 if m < 0 else m
                yr[ow] = m
                ar[ow] = k


@njit_parallel()
def max_pool2d_2x2_backward(g, arg, y, relu, gx):
    """`max_pool2d_backward` for the 2x2/2 window: every input written once, row by row (vectorises)."""
    P = g.shape[0]
    OH, OW = g.shape[1], g.shape[2]
    W = gx.shape[2]
    for p in prange(P):
        for oh in range(OH):
            r0, r1 = gx[p, 2 * oh], gx[p, 2 * oh + 1]
            gr, ar, yr = g[p, oh], arg[p, oh], y[p, oh]
            for iw in range(2 * OW):
                ow = iw >> 1
                v = gr[ow]
                if relu:
                    v = 0 if yr[ow] <= 0 else v
                t = ar[ow]
                q = iw & 1
                r0[iw] = v if t == q else 0
                r1[iw] = v if t == q + 2 else 0
            for iw in range(2 * OW, W):  # an odd width's last column is in no window
                r0[iw] = 0
                r1[iw] = 0
        for ih in range(2 * OH, gx.shape[1]):
            for iw in range(W):
                gx[p, ih, iw] = 0


@njit_parallel()
def max_pool2d_backward(g, arg, y, kh, kw, sh, sw, ph, pw, dh, dw, relu, gx):
    """gx = the gradient g of each output sent to its picked tap (summed where windows overlap);
    with `relu`, not where the output y <= 0."""
    P, H, W = gx.shape
    OH, OW = g.shape[1], g.shape[2]
    for p in prange(P):
        for ih in range(H):
            for iw in range(W):
                gx[p, ih, iw] = 0
        for oh in range(OH):
            for ow in range(OW):
                if relu and y[p, oh, ow] <= 0:  # (a NaN output passes, as PyTorch's ReLU)
                    continue
                t = arg[p, oh, ow]
                if t < 0:
                    continue
                ih = oh * sh - ph + (t // kw) * dh
                iw = ow * sw - pw + (t % kw) * dw
                gx[p, ih, iw] += g[p, oh, ow]


@njit_parallel()
def avg_pool2d(x, kh, kw, sh, sw, ph, pw, div, y):
    """y[p, o] = (sum of the input part of window o) / div[o] (the zero padding adds nothing)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oh in range(OH):
            h0 = oh * sh - ph
            for ow in range(OW):
                w0 = ow * sw - pw
                acc = x[p, 0, 0] * 0
                for i in range(max(0, -h0), min(kh, H - h0)):
                    for j in range(max(0, -w0), min(kw, W - w0)):
                        acc += x[p, h0 + i, w0 + j]
                y[p, oh, ow] = acc / div[oh, ow]


@njit_parallel()
def avg_pool2d_backward(g, kh, kw, sh, sw, ph, pw, div, gx):
    """gx[i] = sum over the windows holding input i of g / div."""
    P, H, W = gx.shape
    OH, OW = g.shape[1], g.shape[2]
    for p in prange(P):
        for ih in range(H):
            for iw in range(W):
                gx[p, ih, iw] = 0
        for oh in range(OH):
            h0 = oh * sh - ph
            for ow in range(OW):
                w0 = ow * sw - pw
                share = g[p, oh, ow] / div[oh, ow]
                for i in range(max(0, -h0), min(kh, H - h0)):
                    for j in range(max(0, -w0), min(kw, W - w0)):
                        gx[p, h0 + i, w0 + j] += share
