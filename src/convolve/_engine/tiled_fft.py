"""Overlap-save FFT: the FFT convolution cut into tiles of output positions, so it stays local.

A global FFT mixes every position of a plane: its rounding follows the loudest value anywhere and
one NaN reaches every output (see the locality policy in `convolve._engine`). Here the outputs are
cut into tiles of T positions per axis (`tile_size`: `TILE` = 32 for images and volumes; along one
axis, four kernel extents, up to `TILE_1D`); each tile's input (the tile plus the kernel's reach,
overlapping its neighbours) is transformed on its own, so the transforms are short
(T + dilation·(K-1) per axis, rounded up to a fast FFT size) and an output depends on its own
tile only. For large kernels it
keeps most of the FFT's advantage: the channel products cost O·C per frequency instead of O·C·K
per position.

Layout: the tiles are cut straight into (*F, C, N·T) arrays (F: each tile's FFT size, T: the tile
count), positions first. The real FFT over the leading axes then leaves one (C, N·T) matrix per
frequency, so the channel sum is one batched GEMM, (O, C) @ (C, N·T) per frequency, with no
transposes of the spectra between the transforms and the products (measured 1.2-1.8x faster than
cutting (N·T, C, *span) tiles for the global `fft` module: 1-D k31 and 15x15 layers, one thread).
Outputs of the tiles (*T, O, N·tiles) are put back in place and cropped. Gradients: the output
gradient is cut into the same tiles (no overlap), the tiles' input gradients overlap-added in
T-wide blocks.
"""

from __future__ import annotations

import numpy as np

from . import _cost, fft
from .config import settings
from .parallel import even_parts, lanes, matmul_in
from .windows import out_size

__all__ = ["name", "local", "reach", "TILE", "TILE_1D", "tile_size", "supports", "workspace", "cost", "forward", "grad_input",
           "grad_weight"]

name = "tiled_fft"
local = True  # an output depends on its own tile's input only
TILE = 32  # output positions per tile and axis (2-D, 3-D)
# 1-D: a tile of 32 outputs for a 31-tap kernel is a 64-point FFT half spent on the overlap; four kernel
# extents per tile measured 1.5-1.6x faster (16x32x16000, k 31: 142 -> 87 ms, one thread, loaded host).
KERNEL_SPANS = 4
TILE_1D = 256
reach = TILE_1D - 1  # the most over all calls; one call's: tile_size(...) - 1
GROUP_BYTES = 4 * 2**20  # spectra per group of samples, one group per lane at a time
LANES_ABOVE = 2**20  # calls with fewer bytes of spectra run as one group


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None if supported (stride 1), else why not."""
    if any(s != 1 for s in stride):
        return f"tiled_fft supports only stride 1, but got stride {tuple(stride)}"
    return None


def tile_size(w_shape, dilation) -> int:
    """Output positions per tile and axis: `TILE`, or along one axis `KERNEL_SPANS` extents of the
    (dilated) kernel, between `TILE` and `TILE_1D`."""
    if len(w_shape) != 3:
        return TILE
    return max(TILE, min(TILE_1D, KERNEL_SPANS * dilation[0] * (w_shape[2] - 1)))


def _geometry(x_shape, w_shape, dilation):
    """Output sizes P, tiles per axis, each tile's input size, and the tile size T."""
    T = tile_size(w_shape, dilation)
    outs = tuple(out_size(s, k, 1, d) for s, k, d in zip(x_shape[2:], w_shape[2:], dilation))
    tiles = tuple(-(-p // T) for p in outs)
    span = tuple(T + d * (k - 1) for k, d in zip(w_shape[2:], dilation))
    return outs, tiles, span, T


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Bytes of temporaries: the lanes work on one group of samples each at a time (`_sample_groups`),
    so per lane one group's tiles cut to the FFT size and their inverse transforms (real), two spectra
    per side (complex: a transform and the channel products), and the group's input and output
    re-assembled; plus the kernel spectra and (weight gradient) one partial sum per lane."""
    outs, tiles, span, T = _geometry(x_shape, w_shape, dilation)
    F = _spectra_sizes(span)
    N, C, O, Cg = x_shape[0], x_shape[1], w_shape[0], w_shape[1]
    nf = int(np.prod(F[:-1])) * (F[-1] // 2 + 1)
    parts = _sample_groups(N, _spectra_bytes(x_shape, w_shape, dilation, itemsize))
    per_group = max(len(range(N)[g]) for g in parts)
    B = per_group * int(np.prod(tiles))  # tiles of one group
    group = B * (C + O) * (2 * int(np.prod(F)) + 4 * nf)  # real tiles and inverses; spectra (2 values each)
    group += per_group * (C * int(np.prod(x_shape[2:])) + O * int(np.prod(outs)))  # its input and output, padded
    lanes_n = min(settings["threads"], len(parts))
    kernel = 2 * 2 * nf * O * Cg  # spectra and their transposed copy
    partial = 2 * nf * O * Cg * lanes_n if op == "grad_weight" else 0
    return (lanes_n * group + kernel + partial) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: the batched FFT call over the tiles plus cutting and re-assembling them."""
    outs, tiles, span, T = _geometry(x_shape, w_shape, dilation)
    xt = (x_shape[0] * int(np.prod(tiles)), x_shape[1]) + span  # the tiles as a batch of inputs
    n_out = xt[0] * w_shape[0] * T ** len(tiles)
    moves = 2 * (int(np.prod(xt)) + n_out) * itemsize / _cost.MEM_RATE
    return fft.cost(op, xt, w_shape, tuple(stride), dilation, groups, itemsize) + moves


def _spectra_sizes(span):
    """The FFT size per axis of a tile's input (5-smooth, at least `span`)."""
    return tuple(fft.next_fast_len(int(n)) for n in span)


def _rfft(a, nd, lanes=1):
    """Real FFT over the first `nd` axes (the tiles' positions), whatever follows them (inside a
    lane on its thread only, else on the engine's threads)."""
    return fft._scipy_fft().rfftn(a, axes=tuple(range(nd)), workers=1 if lanes > 1 else settings["threads"])


def _irfft(A, F, lanes=1):
    return fft._scipy_fft().irfftn(A, F, axes=tuple(range(len(F))), workers=1 if lanes > 1 else settings["threads"])


def _sample_groups(N, per_sample_bytes):
    """Slices of the batch run as `parallel.lanes`, one group of samples at a time: groups of about
    GROUP_BYTES of spectra, as many as a multiple of the lanes (one group when it is small)."""
    n = settings["threads"] if N * per_sample_bytes >= LANES_ABOVE else 1
    count = max(1, min(N, -(-N * per_sample_bytes // GROUP_BYTES)))
    count = min(N, -(-count // n) * n)
    return [slice(a, b) for a, b in even_parts(N, count)]


def _spectra_bytes(x_shape, w_shape, dilation, itemsize):
    """Bytes of one sample's input and output spectra (complex, twice the itemsize)."""
    outs, tiles, span, T = _geometry((1,) + tuple(x_shape[1:]), w_shape, dilation)
    F = _spectra_sizes(span)
    nf = int(np.prod(F[:-1])) * (F[-1] // 2 + 1)
    return 2 * itemsize * nf * int(np.prod(tiles)) * (x_shape[1] + w_shape[0])


def _cut(x, tiles, span, F, T):
    """(N, C, *S) -> (*F, C, N·T): each tile's input (zero beyond the input and up to the FFT size F),
    positions first, so the FFT over the leading axes leaves one (C, N·T) matrix per frequency."""
    N, C, nd = x.shape[0], x.shape[1], x.ndim - 2
    need = tuple((t - 1) * T + s for t, s in zip(tiles, span))
    if need != x.shape[2:]:
        xp = np.zeros((N, C) + need, dtype=x.dtype)
        xp[(slice(None), slice(None)) + tuple(slice(0, min(s, n)) for s, n in zip(x.shape[2:], need))] = \
            x[(slice(None), slice(None)) + tuple(slice(0, n) for n in need)]
        x = xp
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=tuple(range(2, nd + 2)))
    windows = windows[(slice(None), slice(None)) + (slice(None, None, T),) * nd]  # (N, C, *tiles, *span)
    order = tuple(range(2 + nd, 2 + 2 * nd)) + (1, 0) + tuple(range(2, 2 + nd))  # (*span, C, N, *T)
    out = np.zeros(tuple(F) + (C, N) + tuple(tiles), dtype=x.dtype)
    out[tuple(slice(0, s) for s in span)] = windows.transpose(order)
    return out.reshape(tuple(F) + (C, -1))


def _join(yt, N, tiles, outs):
    """(*T, O, N·tiles) -> (N, O, *P): tiles put back in place, cropped to the outputs."""
    nd = len(tiles)
    O, T = yt.shape[nd], yt.shape[0]
    y = yt.reshape((T,) * nd + (O, N) + tuple(tiles))
    order = (nd + 1, nd) + tuple(a for i in range(nd) for a in (nd + 2 + i, i))  # (N, O, t0, T0, t1, T1, ...)
    y = y.transpose(order).reshape((N, O) + tuple(t * T for t in tiles))
    return np.ascontiguousarray(y[(slice(None), slice(None)) + tuple(slice(0, p) for p in outs)])


def _split(gy, tiles, F, T):
    """(N, O, *P) -> (*F, O, N·tiles): the output gradient cut into the tiles (zero beyond P and T)."""
    N, O, nd = gy.shape[0], gy.shape[1], gy.ndim - 2
    full = tuple(t * T for t in tiles)
    if full != gy.shape[2:]:
        g = np.zeros((N, O) + full, dtype=gy.dtype)
        g[(slice(None), slice(None)) + tuple(slice(0, p) for p in gy.shape[2:])] = gy
        gy = g
    g = gy.reshape((N, O) + tuple(a for t in tiles for a in (t, T)))
    order = tuple(3 + 2 * i for i in range(nd)) + (1, 0) + tuple(2 + 2 * i for i in range(nd))  # (*T, O, N, *tiles)
    out = np.zeros(tuple(F) + (O, N) + tuple(tiles), dtype=gy.dtype)
    out[(slice(0, T),) * nd] = g.transpose(order)
    return out.reshape(tuple(F) + (O, -1))


def _kernel_spectra(w, dilation, F, groups, conj):
    """(O, Cg, *K) -> (nf, G, Og, Cg) spectra of the dilated kernel (conjugated for a correlation)."""
    O, Cg, nd = w.shape[0], w.shape[1], w.ndim - 2
    Wf = fft._scipy_fft().rfftn(fft._dilated(w, dilation), F, axes=tuple(range(2, nd + 2)), workers=settings["threads"])
    W = np.ascontiguousarray(Wf.reshape(groups, O // groups, Cg, -1).transpose(3, 0, 1, 2))
    return np.conjugate(W, out=W) if conj else W


def _per_group(A, groups):
    """(*Fh, C, B) spectra -> (nf, G, C/G, B) (a view)."""
    C, B = A.shape[-2:]
    return A.reshape(-1, groups, C // groups, B)


def forward(x, w, bias, stride, dilation, groups):
    outs, tiles, span, T = _geometry(x.shape, w.shape, dilation)
    nd, F = len(tiles), _spectra_sizes(span)
    N, O = x.shape[0], w.shape[0]
    Wk = _kernel_spectra(w, dilation, F, groups, True)  # (nf, G, Og, Cg)
    y = np.empty((N, O) + outs, dtype=x.dtype)

    def step(lanes, ns):
        X = _rfft(_cut(x[ns], tiles, span, F, T), nd, lanes)  # (*Fh, C, B)
        Y = matmul_in(lanes)(Wk, _per_group(X, groups))  # (nf, G, Og, B)
        yt = _irfft(Y.reshape(X.shape[:nd] + (O, -1)), F, lanes)  # (*F, O, B): correlations; the first T are valid
        y[ns] = _join(yt[(slice(0, T),) * nd], len(range(N)[ns]), tiles, outs)

    lanes(lambda n: n, step, _sample_groups(N, _spectra_bytes(x.shape, w.shape, dilation, x.itemsize)))
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    outs, tiles, span, T = _geometry(x_shape, w.shape, dilation)
    nd, F = len(tiles), _spectra_sizes(span)
    N, C = x_shape[:2]
    Wk = _kernel_spectra(w, dilation, F, groups, False).transpose(0, 1, 3, 2)  # (nf, G, Cg, Og)
    gx = np.empty(x_shape, dtype=gy.dtype)

    def step(lanes, ns):
        gx[ns] = _tiles_input_gradient(gy[ns], Wk, (len(range(N)[ns]),) + tuple(x_shape[1:]), tiles, span, F, T,
                                       groups, lanes)

    lanes(lambda n: n, step, _sample_groups(N, _spectra_bytes(x_shape, w.shape, dilation, gy.itemsize)))
    return gx


def _tiles_input_gradient(gy, Wk, x_shape, tiles, span, F, T, groups, lanes):
    nd = len(tiles)
    N, C = x_shape[:2]
    GY = _rfft(_split(gy, tiles, F, T), nd, lanes)  # (*Fh, O, B)
    GX = matmul_in(lanes)(Wk, _per_group(GY, groups))  # (nf, G, Cg, B)
    gt = _irfft(GX.reshape(GY.shape[:nd] + (C, -1)), F, lanes)  # (*F, C, B): each tile's input gradient in [:span]
    gt = gt.reshape(tuple(F) + (C, N) + tuple(tiles))
    # overlap-add: a tile's input span covers `parts` T-wide blocks of the input along each axis
    parts = tuple(-(-s // T) for s in span)
    blocks = tuple(t + p - 1 for t, p in zip(tiles, parts))
    gx = np.zeros((N, C) + tuple(a for b in blocks for a in (b, T)), dtype=gy.dtype)
    for j in np.ndindex(*parts):
        src = gt[tuple(slice(i * T, min((i + 1) * T, s)) for i, s in zip(j, span))]  # (*piece, C, N, *tiles)
        piece = src.shape[:nd]
        dst = gx[(slice(None), slice(None)) + tuple(a for i, t, n in zip(j, tiles, piece)
                                                     for a in (slice(i, i + t), slice(0, n)))]
        order = (nd + 1, nd) + tuple(a for i in range(nd) for a in (nd + 2 + i, i))  # (N, C, T0, piece0, ...)
        dst += src.transpose(order)
    gx = gx.reshape((N, C) + tuple(b * T for b in blocks))
    return gx[(slice(None), slice(None)) + tuple(slice(0, n) for n in x_shape[2:])]


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    """Σ over the tiles of conj(GY) X per frequency (one partial sum per lane, in a fixed order),
    then one inverse transform."""
    outs, tiles, span, T = _geometry(x.shape, w_shape, dilation)
    nd, F = len(tiles), _spectra_sizes(span)
    O, Cg = w_shape[0], w_shape[1]

    def step(state, ns):  # state: [lanes, frequency sizes, Σ conj(GY) Xᵀ so far]
        X = _rfft(_cut(x[ns], tiles, span, F, T), nd, state[0])  # (*Fh, C, B)
        GY = _rfft(_split(gy[ns], tiles, F, T), nd, state[0])  # (*Fh, O, B)
        GYc = _per_group(GY, groups)
        GW = matmul_in(state[0])(np.conjugate(GYc, out=GYc), _per_group(X, groups).transpose(0, 1, 3, 2))  # (nf, G, Og, Cg)
        if state[2] is None:
            state[1:] = [X.shape[:nd], GW]
        else:
            state[2] += GW

    parts = lanes(lambda n: [n, None, None], step,
                  _sample_groups(x.shape[0], _spectra_bytes(x.shape, w_shape, dilation, x.itemsize)), ordered=True)
    _, Fh, GW = parts[0]
    for part in parts[1:]:
        GW += part[2]
    gw = _irfft(GW.reshape(Fh + (O, Cg)), F)  # (*F, O, Cg)
    K = w_shape[2:]
    gw = gw[tuple(slice(0, d * (k - 1) + 1, d) for k, d in zip(K, dilation))]  # (*K, O, Cg)
    return np.ascontiguousarray(gw.transpose((nd, nd + 1) + tuple(range(nd))))
