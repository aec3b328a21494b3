"""Compiled Winograd F(2x2, 3x3) tile transforms (numba): the NumPy twins are `_bt2` / `_at2` in
`convolve._engine.winograd`, in the same order of operations, so a transform gives the twin's bits
(the tiers' results still differ by rounding: their kernel transforms U do not).

A block of tiles is (samples n0:n1) x (tile rows t0:t1) x (all TW tile columns) of a tile-aligned
input (N, C, 2·TH + 2, 2·TW + 2); tile t of a block is ``((n - n0)·(t1 - t0) + (ty - t0))·TW + tx``
and transformed value ξ = 4 i + j is row i, column j of ``Bᵀ d B`` (as U's and M's first axis). Each
tile's 16 values are a few adds, so one pass per channel (or output channel) does the whole transform
in registers; channels run on numba's threads.
"""

from __future__ import annotations

from numba import prange

from . import njit, njit_parallel

__all__ = ["input_tiles", "output_tiles"]

_FLAGS = dict(fastmath={"contract"})  # no reordering: the same bits as the NumPy twin


@njit_parallel(**_FLAGS)
def input_tiles(x, n0, n1, t0, t1, V):
    """V[4 i + j, c, t] <- (Bᵀ d B)[i, j] for every 4x4 tile d of the block; x (N, C, 2 TH + 2, 2 TW + 2)."""
    C = x.shape[1]
    TW = (x.shape[3] - 2) // 2
    nt = t1 - t0
    for c in prange(C):
        for n in range(n0, n1):
            xc = x[n, c]
            for ty in range(t0, t1):
                r = 2 * ty
                t = ((n - n0) * nt + (ty - t0)) * TW
                for tx in range(TW):
                    q = 2 * tx
                    u = t + tx
                    a0, a1, a2, a3 = xc[r, q], xc[r, q + 1], xc[r, q + 2], xc[r, q + 3]
                    b0, b1, b2, b3 = xc[r + 1, q], xc[r + 1, q + 1], xc[r + 1, q + 2], xc[r + 1, q + 3]
                    c0, c1, c2, c3 = xc[r + 2, q], xc[r + 2, q + 1], xc[r + 2, q + 2], xc[r + 2, q + 3]
                    d0, d1, d2, d3 = xc[r + 3, q], xc[r + 3, q + 1], xc[r + 3, q + 2], xc[r + 3, q + 3]
                    # over the tile's 4 rows (a, b, c, d): a - c, b + c, c - b, b - d, per column ...
                    e00, e01, e02, e03 = a0 - c0, a1 - c1, a2 - c2, a3 - c3
                    e10, e11, e12, e13 = b0 + c0, b1 + c1, b2 + c2, b3 + c3
                    e20, e21, e22, e23 = c0 - b0, c1 - b1, c2 - b2, c3 - b3
                    e30, e31, e32, e33 = b0 - d0, b1 - d1, b2 - d2, b3 - d3
                    # ... then the same along each transformed row (16 runs of V, one value each)
                    V[0, c, u], V[1, c, u], V[2, c, u], V[3, c, u] = e00 - e02, e01 + e02, e02 - e01, e01 - e03
                    V[4, c, u], V[5, c, u], V[6, c, u], V[7, c, u] = e10 - e12, e11 + e12, e12 - e11, e11 - e13
                    V[8, c, u], V[9, c, u], V[10, c, u], V[11, c, u] = e20 - e22, e21 + e22, e22 - e21, e21 - e23
                    V[12, c, u], V[13, c, u], V[14, c, u], V[15, c, u] = e30 - e32, e31 + e32, e32 - e31, e31 - e33


@njit_parallel(**_FLAGS)
def output_tiles(M, bias, n0, n1, t0, t1, TW, Y):
    """Y[n, o, 2 ty + i, 2 tx + j] <- (Aᵀ m A)[i, j] (+ bias[o]; an empty bias adds nothing) for every
    tile m = M[:, o, t] of the block, positions past Y's edge dropped; M (16, O, tiles)."""
    O = Y.shape[1]
    for o in prange(O):
        if bias.size:
            _channel_out(M, o, bias[o], True, n0, n1, t0, t1, TW, Y)
        else:
            _channel_out(M, o, M.dtype.type(0), False, n0, n1, t0, t1, TW, Y)


@njit(inline="always", **_FLAGS)
def _channel_out(M, o, bo, biased, n0, n1, t0, t1, TW, Y):
    """`output_tiles` for output channel o; bo added when `biased` (after the transform, as the twin)."""
    OH, OW = Y.shape[2], Y.shape[3]
    nt = t1 - t0
    for n in range(n0, n1):
        yo = Y[n, o]
        for ty in range(t0, t1):
            t = ((n - n0) * nt + (ty - t0)) * TW
            r = 2 * ty
            for tx in range(TW):
                u = t + tx
                # over the 4 transformed rows, per column: (m0 + m1) + m2 and (m1 - m2) - m3
                z00 = (M[0, o, u] + M[4, o, u]) + M[8, o, u]
                z01 = (M[1, o, u] + M[5, o, u]) + M[9, o, u]
                z02 = (M[2, o, u] + M[6, o, u]) + M[10, o, u]
                z03 = (M[3, o, u] + M[7, o, u]) + M[11, o, u]
                z10 = (M[4, o, u] - M[8, o, u]) - M[12, o, u]
                z11 = (M[5, o, u] - M[9, o, u]) - M[13, o, u]
                z12 = (M[6, o, u] - M[10, o, u]) - M[14, o, u]
                z13 = (M[7, o, u] - M[11, o, u]) - M[15, o, u]
                # ... then along each row
                y00, y01 = (z00 + z01) + z02, (z01 - z02) - z03
                y10, y11 = (z10 + z11) + z12, (z11 - z12) - z13
                if biased:
                    y00, y01, y10, y11 = y00 + bo, y01 + bo, y10 + bo, y11 + bo
                q = 2 * tx
                yo[r, q] = y00
                if q + 1 < OW:
                    yo[r, q + 1] = y01
                if r + 1 < OH:
                    yo[r + 1, q] = y10
                    if q + 1 < OW:
                        yo[r + 1, q + 1] = y11
