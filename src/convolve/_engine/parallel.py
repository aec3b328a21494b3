"""Run independent blocks of work on a few threads.

NumPy's elementwise ufuncs release the GIL on large arrays but run on one core; BLAS calls use all
of them. Blocked algorithms (Winograd's tile transforms, depthwise taps) are mostly elementwise
passes, so running their blocks on ``settings["threads"]`` Python threads puts every core to work
Each block must write only its own output. Blocks that call BLAS should run on one thread
(``threads=1``): BLAS already uses every core, and BLAS calls from two Python threads at once
(4 spinning threads on 2 cores) measured several times slower.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .config import settings

__all__ = ["map_blocks", "sum_blocks", "batch_slices"]

_pools: dict = {}


def map_blocks(fn, blocks, threads=None) -> list:
    """[fn(b) for b in blocks], on up to `threads` (default settings["threads"]) threads, in order."""
    blocks = list(blocks)
    n = min(settings["threads"] if threads is None else threads, len(blocks))
    if n <= 1:
        return [fn(b) for b in blocks]
    if n not in _pools:
        _pools[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="convolve")
    return list(_pools[n].map(fn, blocks))


def sum_blocks(fn, blocks, threads=None):
    """Σ fn(b) over blocks; each thread accumulates its share, so at most one partial sum per thread."""
    blocks = list(blocks)
    n = max(1, min(settings["threads"] if threads is None else threads, len(blocks)))

    def share(bs):
        acc = fn(bs[0])
        for b in bs[1:]:
            acc += fn(b)
        return acc

    parts = map_blocks(share, [blocks[i::n] for i in range(n)], n)
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


SPLIT_BYTES = 2**20  # elementwise passes over less data than this run on one thread


def batch_slices(n, nbytes) -> list:
    """Slices splitting a batch of `n` into one part per thread, for elementwise passes over
    `nbytes` of data; a single slice when the data is small or there is one thread (NumPy passes
    over a few MiB measured ~1.3-1.6x faster on 2 threads)."""
    parts = min(settings["threads"], n) if nbytes >= SPLIT_BYTES else 1
    if parts <= 1:
        return [slice(0, n)]
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]
