"""One task per output block that reads exactly the input chunks its window needs (its halo included).

Every lazy op in this package is the same graph: along each spatial axis an output block ``m`` needs
the input interval ``[start_m, stop_m)``; its task joins the pieces of the input chunks that overlap
that interval and runs an in-memory function on the result. One exchange of halos per op, no
``map_overlap`` trimming, and blocks of any size or offset (so they can follow the stride).
"""

from __future__ import annotations

from typing import Any, Dict

import uuid
from functools import partial
from operator import itemgetter

import numpy as np

from ._require import require

__all__ = ["gather_map", "chunk_starts"]


def chunk_starts(chunks) -> list:
    """Start offsets of `chunks` (sizes along one axis), plus the total at the end."""
    starts = [0]
    for c in chunks:
        starts.append(starts[-1] + c)
    return starts


def _join(parts, grid, axis):
    """Concatenate `parts` (C order over `grid`) into one array, spatial axes from `axis` on."""
    if not grid:
        return parts[0]
    step = len(parts) // grid[0]
    rows = [_join(parts[i * step:(i + 1) * step], grid[1:], axis + 1) for i in range(grid[0])]
    return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=axis)


def _run(func, grid, window, index, n_const, *args):
    consts, parts = args[:n_const], args[n_const:]
    block = _join(list(parts), grid, 2)[window]  # (N_b, C, *interval)
    return func(block, index, *consts)


def gather_map(x, intervals, out_sizes, func, channels, dtype, *, constants=(), name="convolve"):
    """A lazy array whose block ``(b, 0, m_1, ..., m_k)`` is ``func(x[b, :, I_1m, ..., I_km], (m_1, ...), *constants)``.

    Parameters
    ----------
    x : dask.array.Array
        ``(N, C, *S)`` with one chunk along C.
    intervals : list (one per spatial axis) of lists of (start, stop)
        The input interval each output block reads, within ``[0, S_i]``.
    out_sizes : list (one per spatial axis) of lists of int
        The size of each output block (what `func` returns along that axis).
    func : callable
        ``func(block, index, *constants) -> ndarray (N_b, channels, *sizes)``; must pickle.
    channels : int
        Output channels (one chunk).
    dtype : numpy dtype, or a tuple of them
        Output dtype; a tuple when `func` returns a tuple of arrays (values and indices), one per
        array: the result is then a tuple of lazy arrays sharing one task per block.
    constants : sequence
        Objects (weights, a model) stored once in the graph and handed to every task.

    Shape
    -----
    ``(N, C, *S) -> (N, channels, *(sum of out_sizes per axis))``.
    """
    da = require("dask.array")
    from dask.highlevelgraph import HighLevelGraph

    if len(x.chunks[1]) != 1:
        raise ValueError("gather_map needs one chunk along the channel axis (rechunk({1: -1}) first)")
    token = uuid.uuid4().hex
    out_name = f"{name}-{token}"
    dsk: Dict[Any, Any] = {}
    const_keys = []
    for i, c in enumerate(constants):
        key = f"{name}-const{i}-{token}"
        dsk[key] = c
        const_keys.append(key)
    starts = [chunk_starts(c) for c in x.chunks[2:]]
    # per axis and output block: the input chunks it touches and the local slice into their join
    reads = []
    for axis, blocks in enumerate(intervals):
        s = starts[axis]
        axis_reads = []
        for lo, hi in blocks:
            ks = [k for k in range(len(s) - 1) if s[k] < hi and s[k + 1] > lo]
            first = ks[0]
            axis_reads.append((ks, slice(lo - s[first], hi - s[first])))
        reads.append(axis_reads)
    for b in range(len(x.chunks[0])):
        for index in np.ndindex(*(len(r) for r in reads)):
            chosen = [reads[a][m] for a, m in enumerate(index)]
            grid = tuple(len(ks) for ks, _ in chosen)
            window = (slice(None), slice(None)) + tuple(sl for _, sl in chosen)
            parts = [(x.name, b, 0) + tuple(chosen[a][0][j] for a, j in enumerate(g)) for g in np.ndindex(*grid)]
            task = partial(_run, func, grid, window, tuple(int(m) for m in index), len(const_keys))
            dsk[(out_name, b, 0) + tuple(int(m) for m in index)] = (task, *const_keys, *parts)
    graph = HighLevelGraph.from_collections(out_name, dsk, dependencies=[x])
    chunks = (x.chunks[0], (int(channels),)) + tuple(tuple(int(v) for v in sizes) for sizes in out_sizes)
    if not isinstance(dtype, tuple):
        return da.Array(graph, out_name, chunks, meta=np.empty((0,) * x.ndim, dtype=dtype))
    # blocks are tuples: one array per member, each block picked from its tuple
    joint = da.Array(graph, out_name, chunks, meta=np.empty((0,) * x.ndim, dtype=object))
    return tuple(da.map_blocks(itemgetter(i), joint, dtype=dt, meta=np.empty((0,) * x.ndim, dtype=dt),
                               name=f"{name}-{i}-{token}") for i, dt in enumerate(dtype))
