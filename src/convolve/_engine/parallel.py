"""Run independent blocks of work on a few threads.

NumPy's elementwise ufuncs release the GIL on large arrays but run on one core; BLAS calls use all
of them. Blocked algorithms (Winograd's tile transforms, depthwise taps) are mostly elementwise
passes, so running their blocks on ``settings["threads"]`` Python threads puts every core to work.
Each block must write only its own output. Blocks that call BLAS run either on one thread
(``threads=1``, BLAS uses every core) or as `lanes` with single-threaded BLAS; BLAS calls from two
Python threads at once with a multi-threaded BLAS (4 spinning threads on 2 cores) measured several
times slower.
"""

from __future__ import annotations

import contextvars
import itertools
from concurrent.futures import ThreadPoolExecutor

from . import blas
from .config import settings

__all__ = ["map_blocks", "sum_blocks", "batch_slices", "even_parts", "lanes"]

_pools: dict = {}


def _pool(n) -> ThreadPoolExecutor:
    if n not in _pools:
        _pools[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="convolve")
    return _pools[n]


def _in_context(fn):
    """fn run in a copy of the caller's context on the worker thread, so that the caller's settings
    held in context variables (``np.errstate``) apply there too."""
    ctx = contextvars.copy_context()
    return lambda arg: ctx.copy().run(fn, arg)


def map_blocks(fn, blocks, threads=None) -> list:
    """[fn(b) for b in blocks], on up to `threads` (default settings["threads"]) threads, in order."""
    blocks = list(blocks)
    n = min(settings["threads"] if threads is None else threads, len(blocks))
    if n <= 1:
        return [fn(b) for b in blocks]
    return list(_pool(n).map(_in_context(fn), blocks))


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
    return [slice(a, b) for a, b in even_parts(n, parts)]


def even_parts(total, count) -> list:
    """(start, stop) of `count` parts of range(total) as equal as integers allow (empty parts left out)."""
    bounds = [total * i // count for i in range(count + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def lanes(setup, step, items, threads=None, ordered=False) -> list:
    """Run ``step(state, item)`` for every item on up to `threads` (default settings["threads"])
    lanes, each a thread with its own ``state = setup(n)``; returns the states (e.g. partial sums).

    Inside, NumPy's BLAS runs single-threaded (`blas.single_threaded`): each lane is one core doing
    a whole block at a time (transform, product, transform), with its scratch in its own cache.
    Lanes take the next item as they finish one, so a core slowed by other work takes fewer; with
    `ordered`, lane k takes items k, k + n, ... in turn instead, so that states which accumulate (sums)
    do so in the same order on every run: results are bitwise reproducible. `n`
    tells `setup` how many lanes run: with one (one thread, one item, or a BLAS whose threads cannot
    be set) the steps run on the calling thread and should use the parallel kernels and BLAS as usual.
    """
    items = list(items)
    n = min(settings["threads"] if threads is None else threads, len(items))
    if n <= 1 or not blas.controllable():
        state = setup(1)
        for item in items:
            step(state, item)
        return [state]
    tickets = itertools.count()  # next() on it is atomic under the GIL

    def lane(k):
        state = setup(n)
        if ordered:
            for item in items[k::n]:
                step(state, item)
            return state
        while True:
            i = next(tickets)
            if i >= len(items):
                return state
            step(state, items[i])

    with blas.single_threaded():
        return list(_pool(n).map(_in_context(lane), range(n)))
