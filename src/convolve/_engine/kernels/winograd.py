"""Compiled Winograd F(4x4, 3x3) tile transforms (numba), the parallel parts around BLAS's batched products.

The three transforms of `convolve._engine.winograd` for m = 4, each one pass over its data:

- `input_tiles`: V[ξ, c, t] = (Bᵀ d B)[ξ] for every 6x6 input tile d (zero padding and the ragged
  last tiles handled while loading, so no padded copy of x is made);
- `output_tiles`: Y = Aᵀ M A for every tile, written straight into the output (bias added, the part
  past the output's edge dropped);
- `grad_tiles`: A gY Aᵀ for every 4x4 tile of the output gradient (zero past its edge).

A block of tiles is (samples n0:n1) x (tile rows t0:t1) x (all TW tile columns); tile t of a block is
``((n - n0)·(t1 - t0) + (ty - t0))·TW + tx``. Each kernel runs its (sample, channel) planes on numba's
threads; inside a plane, the row pass runs over whole rows (contiguous, vectorised) and the column
pass over the tiles of a row. Where a tile row lies wholly inside the array, its row pass reads the
array's rows directly and writes the output's rows directly (no row copies; measured 1.4x on the
input transform and 1.2-1.5x on the output transform of R18 64@56 b8 and VGG conv1_2, one thread).

Dilated layers (`*_dilated`): dilation (dh, dw) is one stride-1 convolution per phase grid
``a[:, :, ph::dh, pw::dw]`` (see `convolve._engine.winograd`), run in place without subsampled copies:
a tile row of row phase ph reads the 6 array rows ``ph + dh·(4·ty + i - pad)`` whole, so the row pass
stays contiguous, and the column pass takes each tile's columns ``dw`` apart from that cache-resident
row, for every column phase pw at once (tws[pw] tiles each; TWs = Σ tws per tile row). Dilation 1 keeps
its own kernels: the same code with a run-time step measured 15-40% slower there.

The NumPy twin is the slice code in `convolve._engine.winograd`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, njit_parallel

__all__ = ["input_tiles", "output_tiles", "grad_tiles", "input_tiles_dilated", "output_tiles_dilated",
           "grad_tiles_dilated"]

_FLAGS = dict(fastmath={"contract"})  # fused multiply-adds; no other reordering, NaN/inf kept
_parallel = njit_parallel(**_FLAGS)  # .serial: the same on the calling thread (one lane of `parallel.lanes`)
_serial = njit(**_FLAGS)  # each plane's body: numba vectorises it here, not inside the parallel loop
_inline = njit(inline="always", **_FLAGS)


@_inline
def _extent(size, phase, step):
    """len(range(phase, size, step))."""
    return max(0, (size - phase + step - 1) // step)


@_inline
def _bt(d0, d1, d2, d3, d4, d5, k2, k4, k5):
    """Bᵀ d for one 6-vector (F(4, 3))."""
    return (k4 * d0 - k5 * d2 + d4,
            d3 + d4 - k4 * (d1 + d2),
            d4 - d3 + k4 * (d1 - d2),
            d4 - d2 + k2 * (d3 - d1),
            d4 - d2 - k2 * (d3 - d1),
            k4 * d1 - k5 * d3 + d5)


@_inline
def _at(m0, m1, m2, m3, m4, m5, k2, k4, k8):
    """Aᵀ m for one 6-vector: 4 values."""
    p, q, r, s = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + p + r, q + k2 * s, p + k4 * r, q + k8 * s + m5


@_inline
def _a(g0, g1, g2, g3, k2, k4, k8):
    """A g for one 4-vector: 6 values (the adjoint of `_at`)."""
    e, o = g0 + g2, g1 + g3
    e4, o2 = g0 + k4 * g2, k2 * g1 + k8 * g3
    return g0, e + o, e - o, e4 + o2, e4 - o2, g3


@_serial
def _input_plane(x, pad, n, c, t0, t1, base, TW, rows, r, V):
    """One (sample, channel) plane of `input_tiles`; rows, r: (6, 4·TW + 2) scratch (rows zeroed)."""
    H, W = x.shape[2], x.shape[3]
    Wp = 4 * TW + 2
    dt = x.dtype.type
    k2, k4, k5 = dt(2), dt(4), dt(5)
    for ty in range(t0, t1):
        h0 = 4 * ty - pad
        if 0 <= h0 and h0 + 6 <= H:  # all 6 rows inside x: Bᵀ straight from x's rows (zero padding -> 0)
            x0, x1, x2 = x[n, c, h0], x[n, c, h0 + 1], x[n, c, h0 + 2]
            x3, x4, x5 = x[n, c, h0 + 3], x[n, c, h0 + 4], x[n, c, h0 + 5]
            for col in range(W):
                v = _bt(x0[col], x1[col], x2[col], x3[col], x4[col], x5[col], k2, k4, k5)
                for i in range(6):
                    r[i, pad + col] = v[i]
            r[:, :pad] = 0
            r[:, pad + W:] = 0
        else:
            for i in range(6):
                h = h0 + i
                if 0 <= h < H:
                    rows[i, pad:pad + W] = x[n, c, h]
                else:
                    rows[i, pad:pad + W] = 0
            for col in range(Wp):  # Bᵀ over the 6 rows, all columns at once
                v = _bt(rows[0, col], rows[1, col], rows[2, col], rows[3, col], rows[4, col], rows[5, col], k2, k4, k5)
                for i in range(6):
                    r[i, col] = v[i]
        b = base + (ty - t0) * TW
        for i in range(6):  # ... then over the 6 columns of every tile
            for tx in range(TW):
                w0 = 4 * tx
                v = _bt(r[i, w0], r[i, w0 + 1], r[i, w0 + 2], r[i, w0 + 3], r[i, w0 + 4], r[i, w0 + 5], k2, k4, k5)
                for j in range(6):
                    V[6 * i + j, c, b + tx] = v[j]


@_parallel
def input_tiles(x, pad, n0, n1, t0, t1, TW, V):
    """V (36, C, tiles of the block) <- Bᵀ d B of the block's 6x6 tiles of x (N, C, H, W) zero-padded by `pad`."""
    C = x.shape[1]
    for job in prange((n1 - n0) * C):
        n, c = n0 + job // C, job % C
        rows = np.zeros((6, 4 * TW + 2), dtype=x.dtype)
        r = np.empty((6, 4 * TW + 2), dtype=x.dtype)
        _input_plane(x, pad, n, c, t0, t1, (n - n0) * (t1 - t0) * TW, TW, rows, r, V)


@_serial
def _output_plane(M, b, n, o, t0, t1, base, TW, z, out, Y):
    """One (sample, channel) plane of `output_tiles`; z (6, 4·TW), out (4, 4·TW) scratch."""
    OH, OW = Y.shape[2], Y.shape[3]
    dt = M.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    for ty in range(t0, t1):
        bt = base + (ty - t0) * TW
        for i in range(6):  # Aᵀ over the 6 columns of every tile
            for tx in range(TW):
                t = bt + tx
                v = _at(M[6 * i, o, t], M[6 * i + 1, o, t], M[6 * i + 2, o, t], M[6 * i + 3, o, t],
                        M[6 * i + 4, o, t], M[6 * i + 5, o, t], k2, k4, k8)
                for l in range(4):
                    z[i, 4 * tx + l] = v[l]
        if 4 * ty + 4 <= OH:  # a whole tile row: straight into Y's 4 rows
            y0, y1, y2, y3 = Y[n, o, 4 * ty], Y[n, o, 4 * ty + 1], Y[n, o, 4 * ty + 2], Y[n, o, 4 * ty + 3]
            for col in range(OW):
                v = _at(z[0, col], z[1, col], z[2, col], z[3, col], z[4, col], z[5, col], k2, k4, k8)
                y0[col] = v[0] + b
                y1[col] = v[1] + b
                y2[col] = v[2] + b
                y3[col] = v[3] + b
        else:
            for col in range(4 * TW):  # ... then over the 6 rows, all columns at once
                v = _at(z[0, col], z[1, col], z[2, col], z[3, col], z[4, col], z[5, col], k2, k4, k8)
                for r in range(4):
                    out[r, col] = v[r] + b
            for r in range(min(4, OH - 4 * ty)):
                Y[n, o, 4 * ty + r] = out[r, :OW]


@_parallel
def output_tiles(M, bias, n0, n1, t0, t1, TW, Y):
    """Y[n0:n1, :, rows of tiles t0:t1] <- Aᵀ M A + bias, M (36, O, tiles of the block); Y (N, O, OH, OW)."""
    O = Y.shape[1]
    for job in prange((n1 - n0) * O):
        n, o = n0 + job // O, job % O
        z = np.empty((6, 4 * TW), dtype=M.dtype)
        out = np.empty((4, 4 * TW), dtype=M.dtype)
        _output_plane(M, bias[o], n, o, t0, t1, (n - n0) * (t1 - t0) * TW, TW, z, out, Y)


@_serial
def _grad_plane(gy, n, o, t0, t1, base, TW, g, u, Mg):
    """One (sample, channel) plane of `grad_tiles`; g (4, 4·TW) scratch (zeroed), u (6, 4·TW)."""
    OH, OW = gy.shape[2], gy.shape[3]
    dt = gy.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    for ty in range(t0, t1):
        if 4 * ty + 4 <= OH:  # a whole tile row: A straight from gy's 4 rows (zero past its edge -> 0)
            g0, g1, g2, g3 = gy[n, o, 4 * ty], gy[n, o, 4 * ty + 1], gy[n, o, 4 * ty + 2], gy[n, o, 4 * ty + 3]
            for col in range(OW):
                v = _a(g0[col], g1[col], g2[col], g3[col], k2, k4, k8)
                for i in range(6):
                    u[i, col] = v[i]
            u[:, OW:] = 0
        else:
            for r in range(4):
                h = 4 * ty + r
                if h < OH:
                    g[r, :OW] = gy[n, o, h]
                else:
                    g[r, :OW] = 0
            for col in range(4 * TW):
                v = _a(g[0, col], g[1, col], g[2, col], g[3, col], k2, k4, k8)
                for i in range(6):
                    u[i, col] = v[i]
        bt = base + (ty - t0) * TW
        for i in range(6):
            for tx in range(TW):
                w0 = 4 * tx
                v = _a(u[i, w0], u[i, w0 + 1], u[i, w0 + 2], u[i, w0 + 3], k2, k4, k8)
                for j in range(6):
                    Mg[6 * i + j, o, bt + tx] = v[j]


@_parallel
def grad_tiles(gy, n0, n1, t0, t1, TW, Mg):
    """Mg (36, O, tiles of the block) <- A g Aᵀ of the block's 4x4 tiles of gy (N, O, OH, OW), zero past its edge."""
    O = gy.shape[1]
    for job in prange((n1 - n0) * O):
        n, o = n0 + job // O, job % O
        g = np.zeros((4, 4 * TW), dtype=gy.dtype)
        u = np.empty((6, 4 * TW), dtype=gy.dtype)
        _grad_plane(gy, n, o, t0, t1, (n - n0) * (t1 - t0) * TW, TW, g, u, Mg)


# --- dilated layers -------------------------------------------------------------------------------

@_inline
def _input_cols(r, i, c, t, pw, dw, ntiles, V, k2, k4, k5):
    """Bᵀ over the columns of the tiles of column phase pw in row i of r: V[6 i + j, c, t + tx]."""
    for tx in range(ntiles):
        w0 = pw + 4 * dw * tx
        v = _bt(r[i, w0], r[i, w0 + dw], r[i, w0 + 2 * dw], r[i, w0 + 3 * dw], r[i, w0 + 4 * dw], r[i, w0 + 5 * dw],
                k2, k4, k5)
        for j in range(6):
            V[6 * i + j, c, t + tx] = v[j]


@_serial
def _input_dplane(x, pad, ph, dh, dw, tws, n, c, t0, t1, base, TWs, rows, r, V):
    """One (sample, channel) plane of `input_tiles_dilated`; rows, r: (6, width) scratch (rows zeroed)."""
    W, Hg = x.shape[3], _extent(x.shape[2], ph, dh)
    off = pad * dw
    dt = x.dtype.type
    k2, k4, k5 = dt(2), dt(4), dt(5)
    for ty in range(t0, t1):
        g0 = 4 * ty - pad  # first row of the phase grid
        if 0 <= g0 and g0 + 6 <= Hg:  # all 6 rows inside x: Bᵀ straight from x's rows
            h0 = ph + dh * g0
            x0, x1, x2 = x[n, c, h0], x[n, c, h0 + dh], x[n, c, h0 + 2 * dh]
            x3, x4, x5 = x[n, c, h0 + 3 * dh], x[n, c, h0 + 4 * dh], x[n, c, h0 + 5 * dh]
            for col in range(W):
                v = _bt(x0[col], x1[col], x2[col], x3[col], x4[col], x5[col], k2, k4, k5)
                for i in range(6):
                    r[i, off + col] = v[i]
            r[:, :off] = 0
            r[:, off + W:] = 0
        else:
            for i in range(6):
                g = g0 + i
                if 0 <= g < Hg:
                    rows[i, off:off + W] = x[n, c, ph + dh * g]
                else:
                    rows[i, off:off + W] = 0
            for col in range(rows.shape[1]):  # Bᵀ over the 6 rows, all columns at once
                v = _bt(rows[0, col], rows[1, col], rows[2, col], rows[3, col], rows[4, col], rows[5, col], k2, k4, k5)
                for i in range(6):
                    r[i, col] = v[i]
        b = base + (ty - t0) * TWs
        for i in range(6):  # ... then over the 6 columns of every tile (dw apart)
            t = b
            for pw in range(dw):
                _input_cols(r, i, c, t, pw, dw, tws[pw], V, k2, k4, k5)
                t += tws[pw]


@_parallel
def input_tiles_dilated(x, pad, ph, dh, dw, tws, n0, n1, t0, t1, V):
    """V (36, C, tiles of the block) <- Bᵀ d B of the block's 6x6 tiles of the phase grids
    x[:, :, ph::dh, pw::dw] (x (N, C, H, W)), each zero-padded by `pad`; tws[pw] tiles per row of grid pw."""
    C, W = x.shape[1], x.shape[3]
    TWs = 0
    width = pad * dw + W
    for pw in range(dw):
        TWs += tws[pw]
        width = max(width, pw + dw * (4 * tws[pw] + 2))
    for job in prange((n1 - n0) * C):
        n, c = n0 + job // C, job % C
        rows = np.zeros((6, width), dtype=x.dtype)
        r = np.empty((6, width), dtype=x.dtype)
        base = (n - n0) * (t1 - t0) * TWs
        _input_dplane(x, pad, ph, dh, dw, tws, n, c, t0, t1, base, TWs, rows, r, V)


@_inline
def _output_cols(M, i, o, t, pw, dw, ntiles, z, k2, k4, k8):
    """Aᵀ over the 6 columns of the tiles t, t+1, ... of column phase pw: z[i, pw + dw·(4 tx + l)]."""
    for tx in range(ntiles):
        v = _at(M[6 * i, o, t + tx], M[6 * i + 1, o, t + tx], M[6 * i + 2, o, t + tx], M[6 * i + 3, o, t + tx],
                M[6 * i + 4, o, t + tx], M[6 * i + 5, o, t + tx], k2, k4, k8)
        w0 = pw + 4 * dw * tx
        for l in range(4):
            z[i, w0 + dw * l] = v[l]


@_serial
def _output_dplane(M, b, ph, dh, dw, tws, n, o, t0, t1, base, TWs, z, out, Y):
    """One (sample, channel) plane of `output_tiles_dilated`; z (6, width), out (4, width) scratch."""
    OW, OHg = Y.shape[3], _extent(Y.shape[2], ph, dh)
    dt = M.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    for ty in range(t0, t1):
        bt = base + (ty - t0) * TWs
        for i in range(6):  # Aᵀ over the 6 columns of every tile (their 4 outputs dw apart)
            t = bt
            for pw in range(dw):
                _output_cols(M, i, o, t, pw, dw, tws[pw], z, k2, k4, k8)
                t += tws[pw]
        if 4 * ty + 4 <= OHg:  # a whole tile row: straight into Y's 4 rows
            h0 = ph + dh * 4 * ty
            y0, y1, y2, y3 = Y[n, o, h0], Y[n, o, h0 + dh], Y[n, o, h0 + 2 * dh], Y[n, o, h0 + 3 * dh]
            for col in range(OW):
                v = _at(z[0, col], z[1, col], z[2, col], z[3, col], z[4, col], z[5, col], k2, k4, k8)
                y0[col] = v[0] + b
                y1[col] = v[1] + b
                y2[col] = v[2] + b
                y3[col] = v[3] + b
        else:
            for col in range(OW):  # ... then over the 6 rows, all columns at once
                v = _at(z[0, col], z[1, col], z[2, col], z[3, col], z[4, col], z[5, col], k2, k4, k8)
                for r in range(4):
                    out[r, col] = v[r] + b
            for r in range(OHg - 4 * ty):
                Y[n, o, ph + dh * (4 * ty + r)] = out[r, :OW]


@_parallel
def output_tiles_dilated(M, bias, ph, dh, dw, tws, n0, n1, t0, t1, Y):
    """Y[n0:n1, :, ph::dh] (tile rows t0:t1 of it, every column phase) <- Aᵀ M A + bias, M (36, O, tiles
    of the block); Y (N, O, OH, OW)."""
    O, OW = Y.shape[1], Y.shape[3]
    TWs = 0
    width = OW
    for pw in range(dw):
        TWs += tws[pw]
        width = max(width, pw + 4 * dw * tws[pw])
    for job in prange((n1 - n0) * O):
        n, o = n0 + job // O, job % O
        z = np.empty((6, width), dtype=M.dtype)
        out = np.empty((4, width), dtype=M.dtype)
        base = (n - n0) * (t1 - t0) * TWs
        _output_dplane(M, bias[o], ph, dh, dw, tws, n, o, t0, t1, base, TWs, z, out, Y)


@_inline
def _grad_cols(u, i, o, t, pw, dw, ntiles, Mg, k2, k4, k8):
    """A over the 4 columns (dw apart) of the tiles of column phase pw in row i of u: Mg[6 i + j, o, t + tx]."""
    for tx in range(ntiles):
        w0 = pw + 4 * dw * tx
        v = _a(u[i, w0], u[i, w0 + dw], u[i, w0 + 2 * dw], u[i, w0 + 3 * dw], k2, k4, k8)
        for j in range(6):
            Mg[6 * i + j, o, t + tx] = v[j]


@_serial
def _grad_dplane(gy, ph, dh, dw, tws, n, o, t0, t1, base, TWs, g, u, Mg):
    """One (sample, channel) plane of `grad_tiles_dilated`; g (4, width) scratch (zeroed), u (6, width)."""
    OW, OHg = gy.shape[3], _extent(gy.shape[2], ph, dh)
    dt = gy.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    for ty in range(t0, t1):
        if 4 * ty + 4 <= OHg:  # a whole tile row: A straight from gy's 4 rows (zero past its edge -> 0)
            h0 = ph + dh * 4 * ty
            g0, g1, g2, g3 = gy[n, o, h0], gy[n, o, h0 + dh], gy[n, o, h0 + 2 * dh], gy[n, o, h0 + 3 * dh]
            for col in range(OW):
                v = _a(g0[col], g1[col], g2[col], g3[col], k2, k4, k8)
                for i in range(6):
                    u[i, col] = v[i]
            u[:, OW:] = 0
        else:
            for r in range(4):
                h = 4 * ty + r
                if h < OHg:
                    g[r, :OW] = gy[n, o, ph + dh * h]
                else:
                    g[r, :OW] = 0
            for col in range(g.shape[1]):
                v = _a(g[0, col], g[1, col], g[2, col], g[3, col], k2, k4, k8)
                for i in range(6):
                    u[i, col] = v[i]
        bt = base + (ty - t0) * TWs
        for i in range(6):
            t = bt
            for pw in range(dw):
                _grad_cols(u, i, o, t, pw, dw, tws[pw], Mg, k2, k4, k8)
                t += tws[pw]


@_parallel
def grad_tiles_dilated(gy, ph, dh, dw, tws, n0, n1, t0, t1, Mg):
    """Mg (36, O, tiles of the block) <- A g Aᵀ of the block's 4x4 tiles of the phase grids
    gy[:, :, ph::dh, pw::dw] (gy (N, O, OH, OW)), zero past their edges."""
    O, OW = gy.shape[1], gy.shape[3]
    TWs = 0
    width = OW
    for pw in range(dw):
        TWs += tws[pw]
        width = max(width, pw + 4 * dw * tws[pw])
    for job in prange((n1 - n0) * O):
        n, o = n0 + job // O, job % O
        g = np.zeros((4, width), dtype=gy.dtype)
        u = np.empty((6, width), dtype=gy.dtype)
        base = (n - n0) * (t1 - t0) * TWs
        _grad_dplane(gy, ph, dh, dw, tws, n, o, t0, t1, base, TWs, g, u, Mg)
