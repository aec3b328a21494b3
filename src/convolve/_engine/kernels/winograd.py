"""Compiled Winograd F(4x4, 3x3) tile transforms (numba), the parallel parts around BLAS's batched products.

The three transforms of `convolve._engine.winograd` for m = 4, each one pass over its data:

- `input_tiles`: V[ξ, c, t] = (Bᵀ d B)[ξ] for every 6x6 input tile d (zero padding and the ragged
  last tiles handled while loading, so no padded copy of x is made);
- `output_tiles`: Y = Aᵀ M A for every tile, written straight into the output (bias added, the part
  past the output's edge dropped);
- `grad_tiles`: A gY Aᵀ for every 4x4 tile of the output gradient (zero past its edge).

A block of tiles is (samples n0:n1) x (tile rows t0:t1) x (all TW tile columns); tile t of a block is
``((n - n0)·(t1 - t0) + (ty - t0))·TW + tx``, so each channel's tiles lie side by side: a stack of
(n1 - n0)·(t1 - t0) tile rows. The kernels cut every channel's stack into chunks of a few tile rows
(`SCRATCH`; across samples, so that the small planes of deep layers make long runs too) and run the
chunks on numba's threads (channel-major, in `PARTS` parts that allocate their scratch once). Per chunk,
the row pass runs over whole rows (contiguous, vectorised) and the column pass over the tiles, row i of
every tile before row i + 1, so that 6 of the 36 transformed rows are written or read at a time, each
along a whole chunk. Where a tile row lies wholly inside the array, its row pass reads the array's rows
directly and writes the output's rows directly (no row copies; measured 1.4x on the input transform and
1.2-1.5x on the output transform of R18 64@56 b8 and VGG conv1_2, one thread).

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


PARTS = 64  # parallel loops: enough parts for numba's threads to share the work evenly
# column passes over at least this many tiles per row write V (or Mg) through unsigned indexes: LLVM
# vectorises them then (1.2-1.3x at 56 tiles; at 14, 1.3x on grad_tiles, even on input_tiles); below, its
# vector set-up costs more (0.6-0.8x at 4-7)
WIDE = 12
FLAT_MIN, FLAT_MAX = 6, 16  # `_output_cols`: one loop over several rows from 6 to 15 tiles per row (1.1-1.35x at 7-14)
SCRATCH = 4096  # values of a plane's row-pass scratch (16 KiB in float32): stays in L1 for the column pass


@_inline
def _rows_at_once(per_row, rows):
    """Tile rows per scratch of `SCRATCH` values, `per_row` values each (at least 1, at most `rows`)."""
    return max(1, min(rows, SCRATCH // per_row))


@_inline
def _parts(jobs):
    """Parts of a kernel's chunks (or planes) for its parallel loop, each allocating its scratch once (per
    chunk, allocation costs as much as a small chunk's transform)."""
    return min(jobs, PARTS)


@_inline
def _chunking(per_row, S, planes):
    """How a kernel splits its work: G tile rows per chunk (`_rows_at_once`), `per` chunks in each of
    the `planes` channels' stacks of S tile rows, jobs = planes·per chunks over `_parts(jobs)` parts."""
    G = _rows_at_once(per_row, S)
    per = -(-S // G)
    jobs = planes * per
    return G, per, jobs, _parts(jobs)


@_inline
def _phase_row(tws, dw, width, span):
    """(TWs, width) of a dilated kernel's tile rows: TWs tiles of every column phase in all, and a row
    scratch wide enough for `width` and for each phase's tiles, whose last reads `span` columns beyond
    its 4·tws[pw] (dw apart)."""
    TWs = 0
    for pw in range(dw):
        TWs += tws[pw]
        width = max(width, pw + dw * (4 * tws[pw] + span))
    return TWs, width


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


@_inline
def _input_cols(R, nq, TW, c, b, V, k2, k4, k5):
    """Bᵀ over the 6 columns of every tile in rows 0:nq of R (6, G, Wp): V[6 i + j, c, b + q·TW + tx].
    Row i of every tile before row i + 1: 6 of V's 36 rows written at a time, not 36 (V's row stride is
    often a multiple of 4 KiB, where 36 rows share one cache set and evict each other)."""
    for i in range(6):
        for q in range(nq):
            t = b + q * TW
            if TW >= WIDE:  # unsigned: vectorised (see `_input_chunk`)
                for tx in range(TW):
                    w0 = 4 * tx
                    v = _bt(R[i, q, w0], R[i, q, w0 + 1], R[i, q, w0 + 2], R[i, q, w0 + 3], R[i, q, w0 + 4],
                            R[i, q, w0 + 5], k2, k4, k5)
                    u = np.uint64(t + tx)
                    for j in range(6):
                        V[6 * i + j, c, u] = v[j]
            else:
                for tx in range(TW):
                    w0 = 4 * tx
                    v = _bt(R[i, q, w0], R[i, q, w0 + 1], R[i, q, w0 + 2], R[i, q, w0 + 3], R[i, q, w0 + 4],
                            R[i, q, w0 + 5], k2, k4, k5)
                    for j in range(6):
                        V[6 * i + j, c, t + tx] = v[j]


@_serial
def _input_chunk(x, pad, n0, t0, nt, c, s0, s1, TW, rows, R, V):
    """Tile rows s0:s1 of channel c's stack in `input_tiles` (row s: sample n0 + s // nt, tile row t0 + s % nt,
    its tiles V[:, c, s·TW:(s + 1)·TW]); rows (6, Wp), R (6, >= s1 - s0, Wp): zeroed scratch (their margins,
    the zero padding, stay 0), R for the rows' row pass."""
    H, W = x.shape[2], x.shape[3]
    Wp = R.shape[2]
    up = np.uint64(pad)  # unsigned column offset: no negative-index wraparound, so the row pass vectorises
    dt = x.dtype.type
    k2, k4, k5 = dt(2), dt(4), dt(5)
    for q in range(s1 - s0):
        s = s0 + q
        xc = x[n0 + s // nt, c]
        h0 = 4 * (t0 + s % nt) - pad
        if 0 <= h0 and h0 + 6 <= H:  # all 6 rows inside x: Bᵀ straight from x's rows
            for col in range(W):
                v = _bt(xc[h0, col], xc[h0 + 1, col], xc[h0 + 2, col], xc[h0 + 3, col], xc[h0 + 4, col],
                        xc[h0 + 5, col], k2, k4, k5)
                u = up + np.uint64(col)
                for i in range(6):
                    R[i, q, u] = v[i]
        else:
            for i in range(6):  # the rows, zero past x's edges (element loops: numba's slice copies cost more)
                h = h0 + i
                inside = 0 <= h < H
                for col in range(W):
                    rows[i, up + np.uint64(col)] = xc[h, col] if inside else 0
            for col in range(Wp):  # Bᵀ over the 6 rows, all columns at once
                v = _bt(rows[0, col], rows[1, col], rows[2, col], rows[3, col], rows[4, col], rows[5, col],
                        k2, k4, k5)
                for i in range(6):
                    R[i, q, col] = v[i]
    _input_cols(R, s1 - s0, TW, c, s0 * TW, V, k2, k4, k5)  # ... then over the 6 columns of every tile


@_parallel
def input_tiles(x, pad, n0, n1, t0, t1, TW, V):
    """V (36, C, tiles of the block) <- Bᵀ d B of the block's 6x6 tiles of x (N, C, H, W) zero-padded by `pad`."""
    C = x.shape[1]
    Wp = 4 * TW + 2
    nt = t1 - t0
    S = (n1 - n0) * nt
    G, per, jobs, parts = _chunking(6 * Wp, S, C)
    for part in prange(parts):
        rows = np.zeros((6, Wp), dtype=x.dtype)
        R = np.zeros((6, G, Wp), dtype=x.dtype)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            c, s0 = job // per, job % per * G
            _input_chunk(x, pad, n0, t0, nt, c, s0, min(S, s0 + G), TW, rows, R, V)


@_inline
def _output_cols(M, o, b, nq, TW, Z, k2, k4, k8):
    """Aᵀ over the 6 columns of every tile t = b + q·TW + tx, q < nq: Z[i, q, 4 tx + l]. Row i of every
    tile before row i + 1: 6 of M's 36 rows read at a time (see `_input_cols`)."""
    ub = np.uint64(b)  # unsigned: vectorised (see `_input_chunk`)
    if FLAT_MIN <= TW < FLAT_MAX:  # one loop over all the rows' tiles (Z's rows are 4·TW long: tile u at 4u)
        for i in range(6):
            Zi = Z[i].reshape(Z.shape[1] * Z.shape[2])
            for tx in range(nq * TW):
                u = ub + np.uint64(tx)
                v = _at(M[6 * i, o, u], M[6 * i + 1, o, u], M[6 * i + 2, o, u], M[6 * i + 3, o, u],
                        M[6 * i + 4, o, u], M[6 * i + 5, o, u], k2, k4, k8)
                w0 = 4 * tx
                for l in range(4):
                    Zi[w0 + l] = v[l]
        return
    for i in range(6):  # row by row
        for q in range(nq):
            t = ub + np.uint64(q * TW)
            for tx in range(TW):
                u = t + np.uint64(tx)
                v = _at(M[6 * i, o, u], M[6 * i + 1, o, u], M[6 * i + 2, o, u], M[6 * i + 3, o, u], M[6 * i + 4, o, u],
                        M[6 * i + 5, o, u], k2, k4, k8)
                w0 = 4 * tx
                for l in range(4):
                    Z[i, q, w0 + l] = v[l]


@_serial
def _output_chunk(M, b, n0, t0, nt, o, s0, s1, TW, Z, out, Y):
    """Tile rows s0:s1 of channel o's stack in `output_tiles` (as in `_input_chunk`); Z (6, >= s1 - s0, 4·TW)
    for the rows' column pass, out (4, 4·TW): scratch."""
    OH, OW = Y.shape[2], Y.shape[3]
    dt = M.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    _output_cols(M, o, s0 * TW, s1 - s0, TW, Z, k2, k4, k8)
    for q in range(s1 - s0):  # ... then over the 6 rows
        s = s0 + q
        yo = Y[n0 + s // nt, o]
        h0 = 4 * (t0 + s % nt)
        if h0 + 4 <= OH:  # a whole tile row: straight into Y's 4 rows
            y0, y1, y2, y3 = yo[h0], yo[h0 + 1], yo[h0 + 2], yo[h0 + 3]
            for col in range(OW):
                v = _at(Z[0, q, col], Z[1, q, col], Z[2, q, col], Z[3, q, col], Z[4, q, col], Z[5, q, col], k2, k4, k8)
                y0[col] = v[0] + b
                y1[col] = v[1] + b
                y2[col] = v[2] + b
                y3[col] = v[3] + b
        else:
            for col in range(4 * TW):  # all columns at once
                v = _at(Z[0, q, col], Z[1, q, col], Z[2, q, col], Z[3, q, col], Z[4, q, col], Z[5, q, col], k2, k4, k8)
                for r in range(4):
                    out[r, col] = v[r] + b
            for r in range(min(4, OH - h0)):
                for col in range(OW):
                    yo[h0 + r, col] = out[r, col]


@_parallel
def output_tiles(M, bias, n0, n1, t0, t1, TW, Y):
    """Y[n0:n1, :, rows of tiles t0:t1] <- Aᵀ M A + bias, M (36, O, tiles of the block); Y (N, O, OH, OW)."""
    O = Y.shape[1]
    nt = t1 - t0
    S = (n1 - n0) * nt
    G, per, jobs, parts = _chunking(6 * 4 * TW, S, O)
    for part in prange(parts):
        Z = np.empty((6, G, 4 * TW), dtype=M.dtype)
        out = np.empty((4, 4 * TW), dtype=M.dtype)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            o, s0 = job // per, job % per * G
            _output_chunk(M, bias[o], n0, t0, nt, o, s0, min(S, s0 + G), TW, Z, out, Y)


@_inline
def _grad_cols(U, o, b, nq, TW, Mg, k2, k4, k8):
    """A over the 4 columns of every tile in rows 0:nq of U (6, G, 4·TW): Mg[6 i + j, o, b + q·TW + tx]
    (row i of every tile first, see `_input_cols`)."""
    for i in range(6):
        for q in range(nq):
            t = b + q * TW
            if TW >= WIDE:  # unsigned: vectorised (see `_input_cols`)
                for tx in range(TW):
                    w0 = 4 * tx
                    v = _a(U[i, q, w0], U[i, q, w0 + 1], U[i, q, w0 + 2], U[i, q, w0 + 3], k2, k4, k8)
                    u = np.uint64(t + tx)
                    for j in range(6):
                        Mg[6 * i + j, o, u] = v[j]
            else:
                for tx in range(TW):
                    w0 = 4 * tx
                    v = _a(U[i, q, w0], U[i, q, w0 + 1], U[i, q, w0 + 2], U[i, q, w0 + 3], k2, k4, k8)
                    for j in range(6):
                        Mg[6 * i + j, o, t + tx] = v[j]


@_serial
def _grad_chunk(gy, n0, t0, nt, o, s0, s1, TW, g, U, Mg):
    """Tile rows s0:s1 of channel o's stack in `grad_tiles` (as in `_input_chunk`); g (4, 4·TW),
    U (6, >= s1 - s0, 4·TW): zeroed scratch (their columns past OW stay 0), U for the rows' row pass."""
    OH, OW = gy.shape[2], gy.shape[3]
    dt = gy.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    for q in range(s1 - s0):
        s = s0 + q
        go = gy[n0 + s // nt, o]
        h0 = 4 * (t0 + s % nt)
        if h0 + 4 <= OH:  # a whole tile row: A straight from gy's 4 rows (zero past its edge -> 0)
            for col in range(OW):
                v = _a(go[h0, col], go[h0 + 1, col], go[h0 + 2, col], go[h0 + 3, col], k2, k4, k8)
                for i in range(6):
                    U[i, q, col] = v[i]
        else:
            for r in range(4):  # the rows, zero past gy's edge (element loops: numba's slice copies cost more)
                inside = h0 + r < OH
                for col in range(OW):
                    g[r, col] = go[h0 + r, col] if inside else 0
            for col in range(4 * TW):
                v = _a(g[0, col], g[1, col], g[2, col], g[3, col], k2, k4, k8)
                for i in range(6):
                    U[i, q, col] = v[i]
    _grad_cols(U, o, s0 * TW, s1 - s0, TW, Mg, k2, k4, k8)


@_parallel
def grad_tiles(gy, n0, n1, t0, t1, TW, Mg):
    """Mg (36, O, tiles of the block) <- A g Aᵀ of the block's 4x4 tiles of gy (N, O, OH, OW), zero past its edge."""
    O = gy.shape[1]
    nt = t1 - t0
    S = (n1 - n0) * nt
    G, per, jobs, parts = _chunking(6 * 4 * TW, S, O)
    for part in prange(parts):
        g = np.zeros((4, 4 * TW), dtype=gy.dtype)
        U = np.zeros((6, G, 4 * TW), dtype=gy.dtype)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            o, s0 = job // per, job % per * G
            _grad_chunk(gy, n0, t0, nt, o, s0, min(S, s0 + G), TW, g, U, Mg)


# --- dilated layers -------------------------------------------------------------------------------

@_inline
def _input_dcols(R, nq, dw, tws, TWs, c, b, V, k2, k4, k5):
    """Bᵀ over the 6 columns (dw apart) of every tile in rows 0:nq of R (6, G, width), column phases in
    turn (tws[pw] tiles each): V[6 i + j, c, b + q·TWs + ...] (row i of every tile first, see `_input_cols`)."""
    for i in range(6):
        for q in range(nq):
            t = b + q * TWs
            for pw in range(dw):
                for tx in range(tws[pw]):
                    w0 = pw + 4 * dw * tx
                    v = _bt(R[i, q, w0], R[i, q, w0 + dw], R[i, q, w0 + 2 * dw], R[i, q, w0 + 3 * dw],
                            R[i, q, w0 + 4 * dw], R[i, q, w0 + 5 * dw], k2, k4, k5)
                    for j in range(6):
                        V[6 * i + j, c, t + tx] = v[j]
                t += tws[pw]


@_serial
def _input_dchunk(x, pad, ph, dh, dw, tws, n0, t0, nt, c, s0, s1, TWs, rows, R, V):
    """Tile rows s0:s1 of channel c's stack in `input_tiles_dilated` (row s: sample n0 + s // nt, tile row
    t0 + s % nt, its tiles V[:, c, s·TWs:(s + 1)·TWs]); rows (6, width), R (6, >= s1 - s0, width): zeroed
    scratch (their margins stay 0), R for the rows' row pass."""
    W, Hg = x.shape[3], _extent(x.shape[2], ph, dh)
    width = R.shape[2]
    off = pad * dw
    uoff = np.uint64(off)  # unsigned: the row pass vectorises (see `_input_chunk`)
    dt = x.dtype.type
    k2, k4, k5 = dt(2), dt(4), dt(5)
    for q in range(s1 - s0):
        s = s0 + q
        xc = x[n0 + s // nt, c]
        r0 = 4 * (t0 + s % nt) - pad  # first row of the phase grid
        if 0 <= r0 and r0 + 6 <= Hg:  # all 6 rows inside x: Bᵀ straight from x's rows
            h0 = ph + dh * r0
            for col in range(W):
                v = _bt(xc[h0, col], xc[h0 + dh, col], xc[h0 + 2 * dh, col], xc[h0 + 3 * dh, col],
                        xc[h0 + 4 * dh, col], xc[h0 + 5 * dh, col], k2, k4, k5)
                u = uoff + np.uint64(col)
                for i in range(6):
                    R[i, q, u] = v[i]
        else:
            for i in range(6):  # the rows, zero past x's edges (element loops: see `_input_chunk`)
                g = r0 + i
                inside = 0 <= g < Hg
                for col in range(W):
                    rows[i, uoff + np.uint64(col)] = xc[ph + dh * g, col] if inside else 0
            for col in range(width):  # Bᵀ over the 6 rows, all columns at once
                v = _bt(rows[0, col], rows[1, col], rows[2, col], rows[3, col], rows[4, col], rows[5, col],
                        k2, k4, k5)
                for i in range(6):
                    R[i, q, col] = v[i]
    _input_dcols(R, s1 - s0, dw, tws, TWs, c, s0 * TWs, V, k2, k4, k5)


@_parallel
def input_tiles_dilated(x, pad, ph, dh, dw, tws, n0, n1, t0, t1, V):
    """V (36, C, tiles of the block) <- Bᵀ d B of the block's 6x6 tiles of the phase grids
    x[:, :, ph::dh, pw::dw] (x (N, C, H, W)), each zero-padded by `pad`; tws[pw] tiles per row of grid pw."""
    C, W = x.shape[1], x.shape[3]
    TWs, width = _phase_row(tws, dw, pad * dw + W, 2)
    nt = t1 - t0
    S = (n1 - n0) * nt
    G, per, jobs, parts = _chunking(6 * width, S, C)
    for part in prange(parts):
        rows = np.zeros((6, width), dtype=x.dtype)
        R = np.zeros((6, G, width), dtype=x.dtype)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            c, s0 = job // per, job % per * G
            _input_dchunk(x, pad, ph, dh, dw, tws, n0, t0, nt, c, s0, min(S, s0 + G), TWs, rows, R, V)


@_inline
def _output_dcols(M, o, b, nq, dw, tws, TWs, Z, k2, k4, k8):
    """Aᵀ over the 6 columns of every tile of rows 0:nq, column phases in turn: Z[i, q, pw + dw·(4 tx + l)]
    (row i of every tile first, see `_input_cols`)."""
    for i in range(6):
        for q in range(nq):
            t = b + q * TWs
            for pw in range(dw):
                for tx in range(tws[pw]):
                    v = _at(M[6 * i, o, t + tx], M[6 * i + 1, o, t + tx], M[6 * i + 2, o, t + tx],
                            M[6 * i + 3, o, t + tx], M[6 * i + 4, o, t + tx], M[6 * i + 5, o, t + tx], k2, k4, k8)
                    w0 = pw + 4 * dw * tx
                    for l in range(4):
                        Z[i, q, w0 + dw * l] = v[l]
                t += tws[pw]


@_serial
def _output_dchunk(M, b, ph, dh, dw, tws, n0, t0, nt, o, s0, s1, TWs, Z, out, Y):
    """Tile rows s0:s1 of channel o's stack in `output_tiles_dilated` (as in `_input_dchunk`); Z (6, >= s1 - s0,
    width) for the rows' column pass, out (4, width): scratch."""
    OW, OHg = Y.shape[3], _extent(Y.shape[2], ph, dh)
    dt = M.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    _output_dcols(M, o, s0 * TWs, s1 - s0, dw, tws, TWs, Z, k2, k4, k8)
    for q in range(s1 - s0):  # ... then over the 6 rows
        s = s0 + q
        yo = Y[n0 + s // nt, o]
        ty = t0 + s % nt
        if 4 * ty + 4 <= OHg:  # a whole tile row: straight into Y's 4 rows
            h0 = ph + dh * 4 * ty
            y0, y1, y2, y3 = yo[h0], yo[h0 + dh], yo[h0 + 2 * dh], yo[h0 + 3 * dh]
            for col in range(OW):
                v = _at(Z[0, q, col], Z[1, q, col], Z[2, q, col], Z[3, q, col], Z[4, q, col], Z[5, q, col], k2, k4, k8)
                y0[col] = v[0] + b
                y1[col] = v[1] + b
                y2[col] = v[2] + b
                y3[col] = v[3] + b
        else:
            for col in range(OW):  # all columns at once
                v = _at(Z[0, q, col], Z[1, q, col], Z[2, q, col], Z[3, q, col], Z[4, q, col], Z[5, q, col], k2, k4, k8)
                for r in range(4):
                    out[r, col] = v[r] + b
            for r in range(OHg - 4 * ty):
                for col in range(OW):
                    yo[ph + dh * (4 * ty + r), col] = out[r, col]


@_parallel
def output_tiles_dilated(M, bias, ph, dh, dw, tws, n0, n1, t0, t1, Y):
    """Y[n0:n1, :, ph::dh] (tile rows t0:t1 of it, every column phase) <- Aᵀ M A + bias, M (36, O, tiles
    of the block); Y (N, O, OH, OW)."""
    O, OW = Y.shape[1], Y.shape[3]
    TWs, width = _phase_row(tws, dw, OW, 0)
    nt = t1 - t0
    S = (n1 - n0) * nt
    G, per, jobs, parts = _chunking(6 * width, S, O)
    for part in prange(parts):
        Z = np.empty((6, G, width), dtype=M.dtype)
        out = np.empty((4, width), dtype=M.dtype)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            o, s0 = job // per, job % per * G
            _output_dchunk(M, bias[o], ph, dh, dw, tws, n0, t0, nt, o, s0, min(S, s0 + G), TWs, Z, out, Y)


@_inline
def _grad_dcols(U, o, b, nq, dw, tws, TWs, Mg, k2, k4, k8):
    """A over the 4 columns (dw apart) of every tile in rows 0:nq of U (6, G, width), column phases in
    turn: Mg[6 i + j, o, b + q·TWs + ...] (row i of every tile first, see `_input_cols`)."""
    for i in range(6):
        for q in range(nq):
            t = b + q * TWs
            for pw in range(dw):
                for tx in range(tws[pw]):
                    w0 = pw + 4 * dw * tx
                    v = _a(U[i, q, w0], U[i, q, w0 + dw], U[i, q, w0 + 2 * dw], U[i, q, w0 + 3 * dw], k2, k4, k8)
                    for j in range(6):
                        Mg[6 * i + j, o, t + tx] = v[j]
                t += tws[pw]


@_serial
def _grad_dchunk(gy, ph, dh, dw, tws, n0, t0, nt, o, s0, s1, TWs, g, U, Mg):
    """Tile rows s0:s1 of channel o's stack in `grad_tiles_dilated` (as in `_input_dchunk`); g (4, width),
    U (6, >= s1 - s0, width): zeroed scratch (their columns past OW stay 0), U for the rows' row pass."""
    OW, OHg = gy.shape[3], _extent(gy.shape[2], ph, dh)
    width = U.shape[2]
    dt = gy.dtype.type
    k2, k4, k8 = dt(2), dt(4), dt(8)
    for q in range(s1 - s0):
        s = s0 + q
        go = gy[n0 + s // nt, o]
        ty = t0 + s % nt
        if 4 * ty + 4 <= OHg:  # a whole tile row: A straight from gy's 4 rows (zero past its edge -> 0)
            h0 = ph + dh * 4 * ty
            for col in range(OW):
                v = _a(go[h0, col], go[h0 + dh, col], go[h0 + 2 * dh, col], go[h0 + 3 * dh, col], k2, k4, k8)
                for i in range(6):
                    U[i, q, col] = v[i]
        else:
            for r in range(4):  # the rows, zero past gy's edge (element loops: see `_input_chunk`)
                h = 4 * ty + r
                inside = h < OHg
                for col in range(OW):
                    g[r, col] = go[ph + dh * h, col] if inside else 0
            for col in range(width):
                v = _a(g[0, col], g[1, col], g[2, col], g[3, col], k2, k4, k8)
                for i in range(6):
                    U[i, q, col] = v[i]
    _grad_dcols(U, o, s0 * TWs, s1 - s0, dw, tws, TWs, Mg, k2, k4, k8)


@_parallel
def grad_tiles_dilated(gy, ph, dh, dw, tws, n0, n1, t0, t1, Mg):
    """Mg (36, O, tiles of the block) <- A g Aᵀ of the block's 4x4 tiles of the phase grids
    gy[:, :, ph::dh, pw::dw] (gy (N, O, OH, OW)), zero past their edges."""
    O, OW = gy.shape[1], gy.shape[3]
    TWs, width = _phase_row(tws, dw, OW, 0)
    nt = t1 - t0
    S = (n1 - n0) * nt
    G, per, jobs, parts = _chunking(6 * width, S, O)
    for part in prange(parts):
        g = np.zeros((4, width), dtype=gy.dtype)
        U = np.zeros((6, G, width), dtype=gy.dtype)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            o, s0 = job // per, job % per * G
            _grad_dchunk(gy, ph, dh, dw, tws, n0, t0, nt, o, s0, min(S, s0 + G), TWs, g, U, Mg)
