"""Compiled direct gradients, stride 1 and dilation 1, of a zero-padded input without a padded copy.

The engine pads x (and crops the input gradient) around an algorithm unless it takes the padding
itself (`pads_inside`). On depthwise layers those copies are as large as the arithmetic (MobileNet dw:
a 14 MB padded x, a 14 MB padded gradient). Here each job pads what it reads, or crops what it
writes, in its own scratch of a plane or two (in cache) and runs the same plane functions as
`kernels.direct` / `kernels.direct_wide`: the input gradient of the unpadded x comes out directly.

Shapes: x (N, C, H, W) and gx (N, C, H, W) unpadded; top and left are the zero rows above and columns
on the left (the rest below and on the right follow from gy's size); w (O, C/G, KH, KW), gy
(N, O, OH, OW) with OH = H + top + bottom - KH + 1.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, njit_parallel
from .direct import _grad_input_plane, _grad_weight_plane
from .direct_wide import _fill, _out_taps1, _out_taps2, _pad_planes

__all__ = ["grad_input_rows", "grad_input_wide", "grad_weight_rows"]

_FLAGS = dict(fastmath={"contract"})  # fused multiply-adds; no other reordering, NaN/inf kept
_serial = njit(**_FLAGS)
_parallel = njit_parallel(**_FLAGS)


@_serial
def _interior(src, Wp, top, left, dst):
    """dst (H, W) <- the plane src (flat, rows of Wp) from row `top`, column `left`."""
    H, W = dst.shape
    for i in range(H):
        sr, dr = src[(top + i) * Wp + left:], dst[i]
        for j in range(W):
            dr[j] = sr[j]


@_parallel
def grad_input_rows(gy, w, G, top, left, gx):
    """gx (N, C, H, W) <- the unpadded part of the row kernels' input gradient (`kernels.direct`)."""
    N, C = gx.shape[0], gx.shape[1]
    O, Cg, KH, KW = w.shape
    Hp, Wp = gy.shape[2] + KH - 1, gy.shape[3] + KW - 1
    Og = O // G
    for job in prange(N * C):
        n, c = job // C, job % C
        g = c // Cg
        gp = np.empty((Hp, Wp), dtype=gx.dtype)
        _grad_input_plane(gy, w, 1, 1, 1, 1, n, c, c % Cg, g * Og, (g + 1) * Og, gp)
        _interior(gp.reshape(Hp * Wp), Wp, top, left, gx[n, c])


@_parallel
def grad_input_wide(gb, wv, G, Hp, Wp, top, left, gx):
    """gx (N, C, H, W) <- the unpadded part of `direct_wide.grad_input`'s gradient (gb and wv as there,
    for the padded plane Hp x Wp)."""
    N, C = gx.shape[0], gx.shape[1]
    Og, Cg = wv.shape[1], C // G
    B = 2 if Cg % 2 == 0 else 1
    Cb = C // B
    for job in prange(N * Cb):
        n, c = job // Cb, B * (job % Cb)
        acc = np.empty((B, Hp * Wp), dtype=gx.dtype)
        for k in range(B):
            _fill(acc[k], 0)
        if B == 2:
            _out_taps2(gb, wv, n, c, (c // Cg) * Og, Wp, acc[0], acc[1])
        else:
            _out_taps1(gb, wv, n, c, (c // Cg) * Og, Wp, acc[0])
        for k in range(B):
            _interior(acc[k], Wp, top, left, gx[n, c + k])


@_parallel
def grad_weight_rows(x, gy, G, top, left, gw):
    """gw (O, C/G, KH, KW) <- Σ_{n, positions} gy · (x zero-padded) under each tap; each (o, c) job pads
    the batch's planes of its input channel (a depthwise layer's channel once) and runs the row kernel."""
    N = x.shape[0]
    O, Cg, KH, KW = gw.shape
    Hp, Wp = gy.shape[2] + KH - 1, gy.shape[3] + KW - 1
    OW = gy.shape[3]
    Og = O // G
    for job in prange(O * Cg):
        o, ci = job // Cg, job % Cg
        c = (o // Og) * Cg + ci
        xs = np.empty((N, 1, Hp, Wp), dtype=gw.dtype)
        for n in range(N):
            _pad_planes(x, n, c, top, left, xs[n])
        acc = np.empty((KH, KW, OW), dtype=gw.dtype)
        _grad_weight_plane(xs, gy, 1, 1, 1, 1, o, 0, acc)
        for kh in range(KH):
            for kw in range(KW):
                gw[o, ci, kh, kw] = acc[kh, kw].sum()
