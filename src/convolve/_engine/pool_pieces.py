"""Pooling under the memory cap: the padded input made piece by piece.

Pooling works plane by plane (one sample, one channel), so any block of samples and channels is
padded and pooled on its own; a plane too large for the cap is split into blocks of output rows (the
first spatial axis), each reading only the padded input rows its windows cover. A piece's padded
copy and the pass's per-output temporaries count against the cap (`settings["memory_limit"]`, the
one convolutions keep); the outputs do not. Without padding a piece is a view of the input.
"""

from __future__ import annotations

from typing import List, NamedTuple

import numpy as np

from .chunks import _real
from .config import settings

__all__ = ["Piece", "plan", "padded", "gradient_piece", "add_real"]


class Piece(NamedTuple):
    n: slice  # samples
    c: slice  # channels
    rows: slice  # output rows (first spatial axis)
    rows_in: slice  # the padded input rows they read


def _rows_in(rows, stride, dilation, kernel):
    return (rows - 1) * stride + dilation * (kernel - 1) + 1


def plan(shape, win, pads, itemsize, out_bytes, per_plane=0, what="pooling") -> List[Piece]:
    """Pieces covering the output of pooling an (N, C, *S) input `shape` with window `win`.

    Parameters
    ----------
    win : PoolWindow
        kernel, stride, dilation and output sizes per spatial axis.
    pads : tuple of (before, after)
        Padding per spatial axis (ceil_mode's extra included in `after`).
    itemsize : int
        Bytes per element: a padded piece costs that per padded position (nothing without padding).
    out_bytes : int
        Temporary bytes per output position of a piece.
    per_plane : int
        Temporary bytes per output position of one plane, shared by the planes of a piece (e.g. the
        divisor of average pooling).
    """
    kernel, stride, dilation, outs = win.kernel, win.stride, win.dilation, win.outs
    in_bytes = itemsize if _copies(pads) else 0
    N, C = shape[:2]
    padded = tuple(s + a + b for s, (a, b) in zip(shape[2:], pads))
    rest_in, rest_out = int(np.prod(padded[1:])), int(np.prod(outs[1:]))
    cap = settings["memory_limit"]

    def need(planes, rows):
        rows_in = min(padded[0], _rows_in(rows, stride[0], dilation[0], kernel[0]))
        return planes * (rows_in * rest_in * in_bytes + rows * rest_out * out_bytes) + rows * rest_out * per_plane

    every_in, every = slice(0, padded[0]), slice(0, outs[0])
    if need(N * C, outs[0]) <= cap:
        return [Piece(slice(0, N), slice(0, C), every, every_in)]
    planes = int((cap - need(0, outs[0])) // max(1, need(1, outs[0]) - need(0, outs[0])))
    if planes >= C:
        nb = planes // C
        return [Piece(slice(n, n + nb), slice(0, C), every, every_in) for n in range(0, N, nb)]
    if planes >= 1:
        return [Piece(slice(n, n + 1), slice(c, c + planes), every, every_in)
                for n in range(N) for c in range(0, C, planes)]
    rows = max(1, outs[0] * cap // max(1, need(1, outs[0])))
    while rows > 1 and need(1, rows) > cap:
        rows //= 2
    if need(1, rows) > cap:
        raise ValueError(
            f"{what} needs at least {need(1, 1) / 2**20:.1f} MiB of temporaries for one output row of "
            f"input {tuple(shape)} (padded {padded}), above the memory limit of "
            f"{settings['memory_limit'] / 2**20:.1f} MiB; raise the limit (convolve.engine_config.set_memory_limit)"
        )
    pieces = []
    for n in range(N):
        for c in range(C):
            for r0 in range(0, outs[0], rows):
                r1 = min(outs[0], r0 + rows)
                start = r0 * stride[0]
                pieces.append(Piece(slice(n, n + 1), slice(c, c + 1), slice(r0, r1),
                                    slice(start, start + _rows_in(r1 - r0, stride[0], dilation[0], kernel[0]))))
    return pieces


def _copies(pads) -> bool:
    return any(p for pair in pads for p in pair)


def _shape(shape, piece: Piece, pads):
    """The padded piece's shape."""
    nb, nc = len(range(shape[0])[piece.n]), len(range(shape[1])[piece.c])
    rest = tuple(s + p + q for s, (p, q) in zip(shape[3:], pads[1:]))
    return (nb, nc, piece.rows_in.stop - piece.rows_in.start) + rest


def padded(a: np.ndarray, piece: Piece, pads, fill) -> np.ndarray:
    """The piece of `a` padded with `fill` (a view when nothing is padded)."""
    if not _copies(pads):
        return a[piece.n, piece.c, piece.rows_in]
    out = np.full(_shape(a.shape, piece, pads), fill, a.dtype)
    cut = _real(a.shape[2:], piece.rows_in, pads)
    if cut is not None:
        out[(slice(None), slice(None)) + cut[0]] = a[(piece.n, piece.c) + cut[1]]
    return out


def gradient_piece(gx: np.ndarray, piece: Piece, pads) -> np.ndarray:
    """Where a piece's input gradient accumulates: a view of gx without padding, else a zero buffer
    of the padded piece (then `add_real`)."""
    if not _copies(pads):
        return gx[piece.n, piece.c, piece.rows_in]
    return np.zeros(_shape(gx.shape, piece, pads), gx.dtype)


def add_real(gx: np.ndarray, piece: Piece, gp: np.ndarray, pads) -> None:
    """gx += the part of the padded gradient piece gp that lies on real input (nothing to do
    without padding: gp was a view of gx)."""
    if not _copies(pads):
        return
    cut = _real(gx.shape[2:], piece.rows_in, pads)
    if cut is not None:
        gx[(piece.n, piece.c) + cut[1]] += gp[(slice(None), slice(None)) + cut[0]]
