"""Compiled direct forward, stride 1 and dilation 1, on the "wide" layout: one long run per kernel row.

The row kernels of `kernels.direct` run one multiply-add per tap over each output row; on LeNet-sized
planes (rows of 8-28 values) the vector loop never reaches its main body and per-row overhead
dominates. Here a plane is flattened: output q = oh·W + ow on the input's width W reads
``x_flat[q + kh·W + kw]``, so each kernel row (ci, kh) is one contiguous loop over the whole plane
(L = (OH-1)·W + OW values, the W - OW columns past each row's end computed and dropped). Inside that
loop the kernel row's taps are written out for KW = 3 and 5 (one accumulator load and store per
KW multiply-adds instead of per one), and two output channels of a group share each input load. The
taps are still added in the order (ci, kh, kw), one fused multiply-add each, so the result is
bitwise that of the row kernels. Every read stays inside the plane: the last output reads
x_flat[(H-1)·W + W-1].

Shapes: x (N, C, H, W) already padded, w (O, C/G, KH, KW), bias (O,), y (N, O, OH, OW).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, njit_parallel

__all__ = ["forward", "forward_padded", "grad_input", "pays"]

_FLAGS = dict(fastmath={"contract"})  # fused multiply-adds; no other reordering, NaN/inf kept
_serial = njit(**_FLAGS)
_parallel = njit_parallel(**_FLAGS)


def pays(W, OW) -> bool:
    """Whether the wide layout is worth its dropped columns: at most as many as the kept ones."""
    return 2 * OW >= W


@_serial
def _fill(a, v):
    for q in range(a.shape[0]):
        a[q] = v


@_serial
def _crop(acc, W, yo):
    """yo (OH, OW) <- the kept columns of the wide plane acc."""
    OH, OW = yo.shape
    for oh in range(OH):
        ar, yr = acc[oh * W:], yo[oh]
        for ow in range(OW):
            yr[ow] = ar[ow]


@_serial
def _taps1(xf, w, n, o, c0, W, a0):
    """a0 (L,) += Σ_{ci, kh, kw} w[o, ci, kh, kw] · x_flat[n, c0 + ci, q + kh·W + kw]."""
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    L = a0.shape[0]
    for ci in range(Cg):
        xp = xf[n, c0 + ci]
        for kh in range(KH):
            xr = xp[kh * W:]
            if KW == 5:
                w0, w1, w2, w3, w4 = w[o, ci, kh, 0], w[o, ci, kh, 1], w[o, ci, kh, 2], w[o, ci, kh, 3], w[o, ci, kh, 4]
                for q in range(L):
                    a0[q] = a0[q] + w0 * xr[q] + w1 * xr[q + 1] + w2 * xr[q + 2] + w3 * xr[q + 3] + w4 * xr[q + 4]
            elif KW == 3:
                w0, w1, w2 = w[o, ci, kh, 0], w[o, ci, kh, 1], w[o, ci, kh, 2]
                for q in range(L):
                    a0[q] = a0[q] + w0 * xr[q] + w1 * xr[q + 1] + w2 * xr[q + 2]
            else:
                for kw in range(KW):
                    wk = w[o, ci, kh, kw]
                    for q in range(L):
                        a0[q] += wk * xr[q + kw]


@_serial
def _taps2(xf, w, n, o, c0, W, a0, a1):
    """`_taps1` for output channels o (into a0) and o + 1 (into a1), one load of x for both."""
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    L = a0.shape[0]
    for ci in range(Cg):
        xp = xf[n, c0 + ci]
        for kh in range(KH):
            xr = xp[kh * W:]
            if KW == 5:
                w0, w1, w2, w3, w4 = w[o, ci, kh, 0], w[o, ci, kh, 1], w[o, ci, kh, 2], w[o, ci, kh, 3], w[o, ci, kh, 4]
                v0, v1, v2, v3, v4 = (w[o + 1, ci, kh, 0], w[o + 1, ci, kh, 1], w[o + 1, ci, kh, 2], w[o + 1, ci, kh, 3],
                                      w[o + 1, ci, kh, 4])
                for q in range(L):
                    x0, x1, x2, x3, x4 = xr[q], xr[q + 1], xr[q + 2], xr[q + 3], xr[q + 4]
                    a0[q] = a0[q] + w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3 + w4 * x4
                    a1[q] = a1[q] + v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3 + v4 * x4
            elif KW == 3:
                w0, w1, w2 = w[o, ci, kh, 0], w[o, ci, kh, 1], w[o, ci, kh, 2]
                v0, v1, v2 = w[o + 1, ci, kh, 0], w[o + 1, ci, kh, 1], w[o + 1, ci, kh, 2]
                for q in range(L):
                    x0, x1, x2 = xr[q], xr[q + 1], xr[q + 2]
                    a0[q] = a0[q] + w0 * x0 + w1 * x1 + w2 * x2
                    a1[q] = a1[q] + v0 * x0 + v1 * x1 + v2 * x2
            else:
                for kw in range(KW):
                    wk, vk = w[o, ci, kh, kw], w[o + 1, ci, kh, kw]
                    for q in range(L):
                        xv = xr[q + kw]
                        a0[q] += wk * xv
                        a1[q] += vk * xv


@_parallel
def forward(x, w, bias, G, y):
    """y (N, O, OH, OW) <- bias + Σ_{c in the group, taps} w · x under the tap (stride and dilation 1).
    One job per sample and pair of output channels (one channel where a group has an odd count)."""
    N, C, H, W = x.shape
    O, Cg = w.shape[0], w.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    Og = O // G
    L = (OH - 1) * W + OW
    xf = x.reshape(N, C, H * W)
    B = 2 if Og % 2 == 0 else 1
    Ob = O // B
    for job in prange(N * Ob):
        n, o = job // Ob, B * (job % Ob)
        acc = np.empty((B, L), dtype=y.dtype)
        for k in range(B):
            _fill(acc[k], bias[o + k])
        if B == 2:
            _taps2(xf, w, n, o, (o // Og) * Cg, W, acc[0], acc[1])
        else:
            _taps1(xf, w, n, o, (o // Og) * Cg, W, acc[0])
        for k in range(B):
            _crop(acc[k], W, y[n, o + k])


@_serial
def _pad_planes(x, n, c0, top, left, xs):
    """xs (Cg, Hp, Wp) <- planes c0 .. c0 + Cg of x[n] with zero padding: `top` rows above, `left`
    columns on the left, the rest below and on the right."""
    Cg, Hp, Wp = xs.shape
    H, W = x.shape[2], x.shape[3]
    for ci in range(Cg):
        for r in range(Hp):
            row = xs[ci, r]
            i = r - top
            if i < 0 or i >= H:
                _fill(row, 0)
                continue
            xr = x[n, c0 + ci, i]
            for j in range(left):
                row[j] = 0
            seg = row[left:]
            for j in range(W):
                seg[j] = xr[j]
            for j in range(left + W, Wp):
                row[j] = 0


@_parallel
def forward_padded(x, w, bias, G, top, left, y):
    """`forward` of x zero-padded by `top` rows above and `left` columns on the left (and as many below
    and on the right as y's size implies), without a padded copy of x: each job pads the input planes
    it reads into its own scratch (a few KiB, in cache). x (N, C, H, W) unpadded."""
    N = x.shape[0]
    O, Cg, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    Hp, Wp = OH + KH - 1, OW + KW - 1
    Og = O // G
    L = (OH - 1) * Wp + OW
    B = 2 if Og % 2 == 0 else 1
    Ob = O // B
    for job in prange(N * Ob):
        n, o = job // Ob, B * (job % Ob)
        xs = np.empty((1, Cg, Hp, Wp), dtype=y.dtype)
        _pad_planes(x, n, (o // Og) * Cg, top, left, xs[0])
        xf = xs.reshape(1, Cg, Hp * Wp)
        acc = np.empty((B, L), dtype=y.dtype)
        for k in range(B):
            _fill(acc[k], bias[o + k])
        if B == 2:
            _taps2(xf, w, 0, o, 0, Wp, acc[0], acc[1])
        else:
            _taps1(xf, w, 0, o, 0, Wp, acc[0])
        for k in range(B):
            _crop(acc[k], Wp, y[n, o + k])


@_serial
def _out_taps1(gb, wv, n, c, o0, W, a0):
    """a0 (H·W, one input channel's gradient plane) += for every o of the group and kernel row kh, at
    a0[kh·W + p], Σ_kw wv[c, o, kh, kw] · gb[n, o0 + o, p + kw] for p < OH·W (gy's rows on x's width)."""
    Og, KH, KW = wv.shape[1], wv.shape[2], wv.shape[3]
    P = a0.shape[0] - (KH - 1) * W
    for oi in range(Og):
        g = gb[n, o0 + oi]
        for kh in range(KH):
            ar = a0[kh * W:]
            if KW == 5:
                w0, w1, w2, w3, w4 = wv[c, oi, kh, 0], wv[c, oi, kh, 1], wv[c, oi, kh, 2], wv[c, oi, kh, 3], wv[c, oi, kh, 4]
                for p in range(P):
                    ar[p] = ar[p] + w0 * g[p] + w1 * g[p + 1] + w2 * g[p + 2] + w3 * g[p + 3] + w4 * g[p + 4]
            elif KW == 3:
                w0, w1, w2 = wv[c, oi, kh, 0], wv[c, oi, kh, 1], wv[c, oi, kh, 2]
                for p in range(P):
                    ar[p] = ar[p] + w0 * g[p] + w1 * g[p + 1] + w2 * g[p + 2]
            else:
                for kw in range(KW):
                    wk = wv[c, oi, kh, kw]
                    for p in range(P):
                        ar[p] += wk * g[p + kw]


@_serial
def _out_taps2(gb, wv, n, c, o0, W, a0, a1):
    """`_out_taps1` for input channels c (into a0) and c + 1 (into a1), one load of gy for both."""
    Og, KH, KW = wv.shape[1], wv.shape[2], wv.shape[3]
    P = a0.shape[0] - (KH - 1) * W
    for oi in range(Og):
        g = gb[n, o0 + oi]
        for kh in range(KH):
            ar, br = a0[kh * W:], a1[kh * W:]
            if KW == 5:
                w0, w1, w2, w3, w4 = wv[c, oi, kh, 0], wv[c, oi, kh, 1], wv[c, oi, kh, 2], wv[c, oi, kh, 3], wv[c, oi, kh, 4]
                v0, v1, v2, v3, v4 = (wv[c + 1, oi, kh, 0], wv[c + 1, oi, kh, 1], wv[c + 1, oi, kh, 2],
                                      wv[c + 1, oi, kh, 3], wv[c + 1, oi, kh, 4])
                for p in range(P):
                    g0, g1, g2, g3, g4 = g[p], g[p + 1], g[p + 2], g[p + 3], g[p + 4]
                    ar[p] = ar[p] + w0 * g0 + w1 * g1 + w2 * g2 + w3 * g3 + w4 * g4
                    br[p] = br[p] + v0 * g0 + v1 * g1 + v2 * g2 + v3 * g3 + v4 * g4
            elif KW == 3:
                w0, w1, w2 = wv[c, oi, kh, 0], wv[c, oi, kh, 1], wv[c, oi, kh, 2]
                v0, v1, v2 = wv[c + 1, oi, kh, 0], wv[c + 1, oi, kh, 1], wv[c + 1, oi, kh, 2]
                for p in range(P):
                    g0, g1, g2 = g[p], g[p + 1], g[p + 2]
                    ar[p] = ar[p] + w0 * g0 + w1 * g1 + w2 * g2
                    br[p] = br[p] + v0 * g0 + v1 * g1 + v2 * g2
            else:
                for kw in range(KW):
                    wk, vk = wv[c, oi, kh, kw], wv[c + 1, oi, kh, kw]
                    for p in range(P):
                        gv = g[p + kw]
                        ar[p] += wk * gv
                        br[p] += vk * gv


@_parallel
def grad_input(gb, wv, G, gx):
    """gx (N, C, H, W) <- Σ_{o in the group, taps} w · gy, added where each output read (stride and
    dilation 1), written straight into gx: each kernel row adds one loop over gy's rows on x's width.

    gb (N, O, OH·W + KW - 1): gy with rows of W = OW + KW - 1 (zeros past each row's OW values) after
    KW - 1 leading zeros, flattened: gx_flat[kh·W + p] gets Σ_kw w[kh, KW-1-kw] · gb[p + kw], and a
    read before a row's start lands in the previous row's zeros. wv (C, O/G, KH, KW): w with its
    columns reversed, in- and output channels exchanged per group."""
    N, C, H, W = gx.shape
    Og, Cg = wv.shape[1], C // G
    gxf = gx.reshape(N, C, H * W)
    B = 2 if Cg % 2 == 0 else 1
    Cb = C // B
    for job in prange(N * Cb):
        n, c = job // Cb, B * (job % Cb)
        _fill(gxf[n, c], 0)
        if B == 2:
            _fill(gxf[n, c + 1], 0)
            _out_taps2(gb, wv, n, c, (c // Cg) * Og, W, gxf[n, c], gxf[n, c + 1])
        else:
            _out_taps1(gb, wv, n, c, (c // Cg) * Og, W, gxf[n, c])
