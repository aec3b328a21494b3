"""Adaptive pooling on ``dask.array.Array`` inputs: lazy, blockwise, the same numbers as in memory.

Output cell ``i`` of an axis of size ``n -> o`` covers the input ``[floor(i*n/o), ceil((i+1)*n/o))``,
so output block ``[j0, j1)`` reads ``[start[j0], end[j1-1])``: about its own chunk, plus at most one
window's overlap with the next chunk. Output blocks follow the input's chunks (an input chunk
starting at ``c`` starts the output block ``c*o // n``); each task pools its cells over the same
windows as in memory, in window coordinates of its own piece. Global pooling (``output_size=1``)
is one block per axis: one task per image reads all of it, as the reduction it is.
"""

from __future__ import annotations

from typing import Any

from functools import partial

import numpy as np

from ..functional import adaptive as _adaptive_mod
from ._blocks import chunk_starts, gather_map
from ._lazy import _channels_first, _layout, _restore, _stand_in, _validate

__all__ = ["adaptive_avg_pool", "adaptive_max_pool2d", "adaptive_blocks"]


def adaptive_blocks(chunks, o):
    """Output blocks along one axis of an adaptive pooling to `o` cells, and the input each reads.

    Returns
    -------
    intervals : list of (start, stop)
        The input interval of each block.
    cells : list of (j0, j1)
        The output cells of each block.
    """
    n = sum(chunks)
    start, end = _adaptive_mod._bounds(n, o)
    bounds = sorted({0, o} | {c * o // n for c in chunk_starts(chunks)[1:-1] if 0 < c * o // n < o})
    cells = list(zip(bounds[:-1], bounds[1:]))
    return [(int(start[j0]), int(end[j1 - 1])) for j0, j1 in cells], cells


def _local_bounds(n, o, lo, j0, j1):
    """(start, end) of cells j0..j1-1 in the coordinates of a piece starting at input `lo`."""
    start, end = _adaptive_mod._bounds(n, o)
    return start[j0:j1] - lo, end[j0:j1] - lo


def _avg_block(spatial, outs, intervals, cells, block, index):
    a, lead = block, 2
    for k, m in enumerate(index):  # contract each spatial axis with its averaging matrix, as in memory
        j0, j1 = cells[k][m]
        start, end = _local_bounds(spatial[k], outs[k], intervals[k][m][0], j0, j1)
        j = np.arange(a.shape[lead + k])
        inside = (j >= start[:, None]) & (j < end[:, None])
        mat = (inside / (end - start)[:, None]).astype(block.dtype)
        a = np.moveaxis(np.tensordot(a, mat.T, axes=([lead + k], [0])), -1, lead + k)
    return np.ascontiguousarray(a)


def _ragged(start, end, n):
    """(cells, Kmax) indices of each window into a piece of size `n`, and the mask of real taps."""
    k = int((end - start).max())
    idx = start[:, None] + np.arange(k)
    return np.minimum(idx, n - 1), idx < end[:, None]


def _max_block(spatial, outs, intervals, cells, block, index):
    """Values and flat indices (h*W + w in the whole plane) of one block, windows as in memory."""
    (mh, mw), (H, W) = index, spatial
    (h0, _), (w0, _) = intervals[0][mh], intervals[1][mw]
    (jh0, jh1), (jw0, jw1) = cells[0][mh], cells[1][mw]
    sh, eh = _local_bounds(H, outs[0], h0, jh0, jh1)
    sw, ew = _local_bounds(W, outs[1], w0, jw0, jw1)
    ih, vh = _ragged(sh, eh, block.shape[2])
    iw, vw = _ragged(sw, ew, block.shape[3])
    win = block[..., ih[:, None, :, None], iw[None, :, None, :]]  # (N, C, oh, ow, kh, kw)
    mask = vh[:, None, :, None] & vw[None, :, None, :]
    if not mask.all():  # padded taps come after every real one of their row: the first maximum is real
        win = np.where(mask, win, -np.inf).astype(block.dtype, copy=False)
    flat = win.reshape(win.shape[:-2] + (-1,))
    arg = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    kw = iw.shape[1]
    r = ih[np.arange(ih.shape[0])[:, None], arg // kw] + h0
    c = iw[np.arange(iw.shape[0])[None, :], arg % kw] + w0
    return y, (r * W + c).astype(np.int64)


def _setup(nd, input, output_size, call):
    layout = _layout(input, nd, "channels_first")
    stand_in = _stand_in(input, nd, layout, None if layout is None else tuple(min(n, 1) for n in layout[2]))
    small = _validate(call, input, stand_in)  # errors (output_size, rank, dtype) do not depend on the size
    outs = _adaptive_mod._output_size(output_size, nd, layout[2])
    h = _channels_first(input, layout)
    plans = [adaptive_blocks(h.chunks[2 + axis], o) for axis, o in enumerate(outs)]
    intervals, cells = [p[0] for p in plans], [p[1] for p in plans]
    sizes = [[j1 - j0 for j0, j1 in c] for c in cells]
    return layout, small, outs, h, intervals, cells, sizes


def adaptive_avg_pool(nd: Any, input: Any, output_size: Any) -> Any:
    """``adaptive_avg_poolNd`` on a dask array: a lazy dask array (see the module docstring)."""
    fn = getattr(_adaptive_mod, f"adaptive_avg_pool{nd}d")
    layout, small, outs, h, intervals, cells, sizes = _setup(nd, input, output_size, lambda z: fn(z, output_size))
    func = partial(_avg_block, layout[2], outs, intervals, cells)
    y = gather_map(h, intervals, sizes, func, h.shape[1], small.dtype, name=f"adaptive_avg_pool{nd}d")
    return _restore(y, layout)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: Any) -> Any:
    """``adaptive_max_pool2d`` on a dask array: a lazy dask array, or (values, int64 flat indices)."""
    fn = _adaptive_mod.adaptive_max_pool2d
    layout, small, outs, h, intervals, cells, sizes = _setup(2, input, output_size,
                                                             lambda z: fn(z, output_size, return_indices))
    func = partial(_max_block, layout[2], outs, intervals, cells)
    dtype = small[0].dtype if return_indices else small.dtype
    y, idx = gather_map(h, intervals, sizes, func, h.shape[1], (dtype, np.dtype(np.int64)),
                        name="adaptive_max_pool2d")
    return (_restore(y, layout), _restore(idx, layout)) if return_indices else _restore(y, layout)
