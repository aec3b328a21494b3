"""Padding that copies input values (reflect, replicate, circular), one piece at a time.

Each mode maps every position of a padded axis to the input position it copies (`source_index`).
A piece of the padded input is then one gather (`gather`), and the input gradient of a padded
piece one scatter-add through the same maps (`scatter_add`, the gather's adjoint): the padded copy
of the whole input never exists. These modes only copy along the spatial axes, so any block of
samples and channels pads on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["COPY_MODES", "source_index", "index_bytes", "gather", "scatter_add"]

COPY_MODES = ("reflect", "replicate", "circular")


def source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each position of the padded axis, the input index it copies."""
    i = np.arange(-before, size + after)
    if mode == "reflect":  # mirror without repeating the edge: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
        period = 2 * (size - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= size, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, size - 1)
    return i % size  # circular


def _maps(spatial, rows, pads, mode):
    """Open-mesh index arrays into the input for padded rows `rows` and every other padded position."""
    idx = [source_index(s, a, b, mode) for s, (a, b) in zip(spatial, pads)]
    idx[0] = idx[0][rows]
    return np.ix_(*idx)


def index_bytes(piece_spatial) -> int:
    """NumPy broadcasts the open-mesh indices to the piece's spatial shape: 8 bytes per axis and position."""
    return 8 * len(piece_spatial) * int(np.prod(piece_spatial))


def gather(x: np.ndarray, n: slice, rows: slice, pads, mode: str) -> np.ndarray:
    """The padded piece of x (N, C, *S): samples `n`, padded rows `rows` of the first spatial axis,
    all of the other (padded) axes, every channel."""
    return x[(n, slice(None)) + _maps(x.shape[2:], rows, pads, mode)]


def scatter_add(gx: np.ndarray, n: slice, gp: np.ndarray, rows: slice, pads, mode: str) -> None:
    """gx[n] += the gradient of the padded piece gp sent back to the input positions it copied: the
    part on real input by one slice, only the padding's slabs through `np.add.at`."""
    spatial = gx.shape[2:]
    idx = [source_index(s, a, b, mode) for s, (a, b) in zip(spatial, pads)]
    idx[0] = idx[0][rows]
    offsets = [rows.start] + [0] * (len(spatial) - 1)
    inner = []  # per axis, the piece positions that hold real input (a range, maybe empty)
    for s, (a, _b), off, ix in zip(spatial, pads, offsets, idx):
        lo = min(max(a - off, 0), len(ix))
        inner.append(slice(lo, min(max(a + s - off, lo), len(ix))))
    lead = (n, slice(None))
    if all(r.stop > r.start for r in inner):
        real = tuple(slice(r.start + off - a, r.stop + off - a) for r, off, (a, _b) in zip(inner, offsets, pads))
        gx[lead + real] += gp[(slice(None), slice(None)) + tuple(inner)]
    for i, r in enumerate(inner):  # the slabs around the real part: padding along axis i, real before it
        for part in (slice(0, r.start), slice(r.stop, len(idx[i]))):
            if part.stop <= part.start:
                continue
            sel = inner[:i] + [part] + [slice(None)] * (len(spatial) - 1 - i)
            where: Any = lead + np.ix_(*(ix[p] for ix, p in zip(idx, sel)))  # slices and index arrays
            np.add.at(gx, where, gp[(slice(None), slice(None)) + tuple(sel)])
