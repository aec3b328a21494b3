"""Overlap-save FFT: the FFT convolution cut into tiles of output positions, so it stays local.

A global FFT mixes every position of a plane: its rounding follows the loudest value anywhere and
one NaN reaches every output (see the locality policy in `convolve._engine`). Here the outputs are
cut into tiles of `TILE` positions per axis; each tile's input (the tile plus the kernel's reach,
overlapping its neighbours) becomes one sample of a batched `fft` call, so the transforms are short
(TILE + dilation·(K-1) per axis) and an output depends on its own tile only. For large kernels it
keeps most of the FFT's advantage: the channel products cost O·C per frequency instead of O·C·K
per position.

Shapes: x (N, C, *S) -> tiles (N·T, C, *(TILE + d·(K-1))) with T the tile count; outputs of the
tiles (N·T, O, *TILE) are put back in place and cropped. Gradients: the output gradient is cut into
the same tiles (no overlap), the tiles' input gradients overlap-added.
"""

from __future__ import annotations

import numpy as np

from . import _cost, fft
from .windows import out_size

__all__ = ["name", "local", "reach", "TILE", "supports", "workspace", "cost", "forward", "grad_input",
           "grad_weight"]

name = "tiled_fft"
local = True  # an output depends on its own tile's input only
TILE = 32  # output positions per tile and axis
reach = TILE - 1


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None if supported (stride 1), else why not."""
    if any(s != 1 for s in stride):
        return f"tiled_fft supports only stride 1, but got stride {tuple(stride)}"
    return None


def _geometry(x_shape, w_shape, dilation):
    """Output sizes P, tiles per axis, and each tile's input size."""
    outs = tuple(out_size(s, k, 1, d) for s, k, d in zip(x_shape[2:], w_shape[2:], dilation))
    tiles = tuple(-(-p // TILE) for p in outs)
    span = tuple(TILE + d * (k - 1) for k, d in zip(w_shape[2:], dilation))
    return outs, tiles, span


def _tiled_shape(x_shape, w_shape, dilation):
    outs, tiles, span = _geometry(x_shape, w_shape, dilation)
    return (x_shape[0] * int(np.prod(tiles)), x_shape[1]) + span


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Bytes: the input tiles and output tiles (and their re-assembly), plus the FFT call's own."""
    xt = _tiled_shape(x_shape, w_shape, dilation)
    n_out = xt[0] * w_shape[0] * TILE ** (len(x_shape) - 2)
    tiles = (2 * int(np.prod(xt)) + 2 * n_out) * itemsize
    return tiles + fft.workspace(op, xt, w_shape, (1,) * len(stride), dilation, groups, itemsize)


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: the batched FFT call over the tiles plus cutting and re-assembling them."""
    xt = _tiled_shape(x_shape, w_shape, dilation)
    n_out = xt[0] * w_shape[0] * TILE ** (len(x_shape) - 2)
    moves = 2 * (int(np.prod(xt)) + n_out) * itemsize / _cost.MEM_RATE
    return fft.cost(op, xt, w_shape, tuple(stride), dilation, groups, itemsize) + moves


def _cut(x, tiles, span):
    """(N, C, *S) -> (N·T, C, *span): overlapping input tiles (zero beyond the input)."""
    N, C, nd = x.shape[0], x.shape[1], x.ndim - 2
    need = tuple((t - 1) * TILE + s for t, s in zip(tiles, span))
    if need != x.shape[2:]:
        xp = np.zeros((N, C) + need, dtype=x.dtype)
        xp[(slice(None), slice(None)) + tuple(slice(0, min(s, n)) for s, n in zip(x.shape[2:], need))] = \
            x[(slice(None), slice(None)) + tuple(slice(0, n) for n in need)]
        x = xp
    out = np.empty((N,) + tiles + (C,) + span, dtype=x.dtype)
    for t in np.ndindex(*tiles):
        out[(slice(None),) + t] = x[(slice(None), slice(None)) + tuple(slice(i * TILE, i * TILE + s) for i, s in zip(t, span))]
    return out.reshape((-1, C) + span)


def _join(yt, N, tiles, outs):
    """(N·T, O, *TILE) -> (N, O, *P): tiles put back in place, cropped to the outputs."""
    nd, O = len(tiles), yt.shape[1]
    y = yt.reshape((N,) + tiles + (O,) + (TILE,) * nd)
    order = (0, nd + 1) + tuple(a for i in range(nd) for a in (1 + i, nd + 2 + i))  # (N, O, t0, T0, t1, T1, ...)
    y = y.transpose(order).reshape((N, O) + tuple(t * TILE for t in tiles))
    return np.ascontiguousarray(y[(slice(None), slice(None)) + tuple(slice(0, p) for p in outs)])


def _split(gy, tiles):
    """(N, O, *P) -> (N·T, O, *TILE): the output gradient cut into the tiles (zero beyond P)."""
    N, O, nd = gy.shape[0], gy.shape[1], gy.ndim - 2
    full = tuple(t * TILE for t in tiles)
    if full != gy.shape[2:]:
        g = np.zeros((N, O) + full, dtype=gy.dtype)
        g[(slice(None), slice(None)) + tuple(slice(0, p) for p in gy.shape[2:])] = gy
        gy = g
    g = gy.reshape((N, O) + tuple(a for t in tiles for a in (t, TILE)))
    order = (0,) + tuple(2 + 2 * i for i in range(nd)) + (1,) + tuple(3 + 2 * i for i in range(nd))
    return np.ascontiguousarray(g.transpose(order)).reshape((-1, O) + (TILE,) * nd)


def forward(x, w, bias, stride, dilation, groups):
    outs, tiles, span = _geometry(x.shape, w.shape, dilation)
    yt = fft.forward(_cut(x, tiles, span), w, None, (1,) * len(tiles), dilation, groups)
    y = _join(yt, x.shape[0], tiles, outs)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    outs, tiles, span = _geometry(x_shape, w.shape, dilation)
    N, C = x_shape[:2]
    gt = fft.grad_input(_split(gy, tiles), w, (N * int(np.prod(tiles)), C) + span, (1,) * len(tiles), dilation, groups)
    gt = gt.reshape((N,) + tiles + (C,) + span)
    need = tuple((t - 1) * TILE + s for t, s in zip(tiles, span))
    gx = np.zeros((N, C) + tuple(max(n, s) for n, s in zip(need, x_shape[2:])), dtype=gy.dtype)
    for t in np.ndindex(*tiles):  # overlap-add
        gx[(slice(None), slice(None)) + tuple(slice(i * TILE, i * TILE + s) for i, s in zip(t, span))] += gt[(slice(None),) + t]
    return np.ascontiguousarray(gx[(slice(None), slice(None)) + tuple(slice(0, n) for n in x_shape[2:])])


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    outs, tiles, span = _geometry(x.shape, w_shape, dilation)
    return fft.grad_weight(_cut(x, tiles, span), _split(gy, tiles), w_shape, (1,) * len(tiles), dilation, groups)
