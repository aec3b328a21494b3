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
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import blas
from .config import settings

__all__ = ["map_blocks", "sum_blocks", "batch_slices", "even_parts", "lanes", "matmul", "matmul_in"]

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


def _together(work, n) -> list:
    """Call ``work()`` on the calling thread and on up to ``n - 1`` pool threads; the results of the calls
    that ran, the calling thread's first (None results left out). Each call takes its share of the work
    through a shared `_claims` counter and returns when nothing is left.

    The calling thread takes part instead of waiting, and a pool thread that starts after the work is
    all taken does nothing and is not waited for: waking a thread on an idle core of a virtual machine
    measured up to 10 ms, longer than whole layers."""
    lock = threading.Lock()
    joined, closed = [], [False]

    def pooled(k):
        with lock:
            if closed[0]:
                return None
            joined.append(k)
        return work()

    ctx_pooled = _in_context(pooled)
    futures = [_pool(n - 1).submit(ctx_pooled, k) for k in range(n - 1)]
    try:
        mine = work()
    finally:
        with lock:
            closed[0] = True
        results = [futures[k].result() for k in joined]
    return [r for r in [mine] + results if r is not None]


def _claims(count):
    """claim(): the next of range(count) or None, safe from several threads (``next`` on an
    itertools.count is atomic under the GIL)."""
    tickets = itertools.count()

    def claim():
        i = next(tickets)
        return i if i < count else None

    return claim


def map_blocks(fn, blocks, threads=None) -> list:
    """[fn(b) for b in blocks], on up to `threads` (default settings["threads"]) threads, in order."""
    blocks = list(blocks)
    n = min(settings["threads"] if threads is None else threads, len(blocks))
    if n <= 1:
        return [fn(b) for b in blocks]
    out = [None] * len(blocks)
    claim = _claims(len(blocks))

    def work():
        while (i := claim()) is not None:
            out[i] = fn(blocks[i])
        return True

    _together(work, n)
    return out


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
    lanes, the calling thread one of them, each with its own ``state = setup(n)``; returns the states
    (e.g. partial sums) of the lanes that ran.

    Inside, NumPy's BLAS runs single-threaded (`blas.single_threaded`): each lane is one core doing
    a whole block at a time (transform, product, transform), with its scratch in its own cache.
    Lanes take the next item as they finish one, so a core slowed by other work (or a thread slow to
    wake) takes fewer, and a lane that finds nothing left is not set up. With `ordered`, lane k owns
    items k, k + n, ... and runs them in turn (on whichever thread takes the lane), so that states
    which accumulate (sums) do so in the same order on every run: all n states come back and results
    are bitwise reproducible. `n` tells `setup` how many lanes are planned: with one (one thread, one
    item, or a BLAS whose threads cannot be set) the steps run on the calling thread and should use
    the parallel kernels and BLAS as usual.
    """
    items = list(items)
    n = min(settings["threads"] if threads is None else threads, len(items))
    if n <= 1 or not blas.controllable():
        state = setup(1)
        for item in items:
            step(state, item)
        return [state]
    states: list = [None] * n  # ordered: each lane's state, in lane order
    if ordered:  # lane k takes items k, k + n, ...; whichever thread is free runs the next lane
        claim = _claims(n)

        def work():
            while (k := claim()) is not None:
                state = setup(n)
                for item in items[k::n]:
                    step(state, item)
                states[k] = state
            return True
    else:  # each thread that takes part has one state and takes the next item as it finishes one
        claim = _claims(len(items))

        def work():
            state = None
            while (i := claim()) is not None:
                if state is None:
                    state = setup(n)
                step(state, items[i])
            return state

    with blas.single_threaded():
        done = _together(work, n)
    return states if ordered else done


MATMUL_SPLIT_MIN = 1 << 23  # multiply-adds per block at least (smaller products: one block)
MATMUL_SIDE_MIN = 64  # rows (columns) per block at least: each block packs the whole other operand again
MATMUL_PARTS = 1  # blocks per lane: more blocks measured slower (each is a BLAS call packing its operands again)


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` on the engine's threads without BLAS's own: the product's rows (or
    columns, when there are more of them) cut into blocks run as `lanes`, each block one
    single-threaded BLAS call; a product too small to cut runs single-threaded on the calling thread.

    NumPy's multi-threaded BLAS splits a product evenly between its threads and waits for all of them.
    With its idle threads passive (the benchmarks' setting), a product that followed a few milliseconds
    of other work waited ~10 ms for a sleeping thread on this VM in most calls (LeNet c2's forward: 10 ms
    median instead of 0.4; ResNet-18's 3x3 stride-2 layer at batch 1: 15.7 instead of 0.9), and with
    them spinning (OpenBLAS's default) they take a core from the lanes. Here the calling thread does
    the work of any thread that is late. With one thread, or a BLAS whose threads cannot be set, it is
    ``np.matmul``.

    Shape
    -----
    a : (..., M, K), b : (..., K, N) -> (..., M, N), as ``np.matmul`` (broadcast batch axes).
    """
    n = settings["threads"]
    if n <= 1 or not blas.controllable() or a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if out is None:
        out = np.empty(batch + (M, N), dtype=np.result_type(a, b))
    macs = M * K * N * int(np.prod(batch))
    parts = min(n * MATMUL_PARTS, max(M, N) // MATMUL_SIDE_MIN, macs // MATMUL_SPLIT_MIN)
    if parts <= 1:  # on this thread: waking BLAS's own threads may cost more than the product
        with blas.single_threaded():
            return np.matmul(a, b, out=out)
    blocks: list
    B = int(np.prod(batch))
    if a.shape[:-2] == b.shape[:-2] == batch and B >= parts and out.flags.c_contiguous:  # whole products per
        # block (measured 1.1x); `out` contiguous so that its (B, M, N) view is itself, not a copy
        a3, b3, o3 = a.reshape(B, M, K), b.reshape(B, K, N), out.reshape(B, M, N)
        lanes(lambda _: None, lambda _, s: np.matmul(a3[s], b3[s], out=o3[s]),
              [slice(i, j) for i, j in even_parts(B, parts)])
        return out
    if M >= N:
        blocks = [(np.s_[..., r0:r1, :], np.s_[...], np.s_[..., r0:r1, :]) for r0, r1 in even_parts(M, parts)]
    else:
        blocks = [(np.s_[...], np.s_[..., c0:c1], np.s_[..., c0:c1]) for c0, c1 in even_parts(N, parts)]
    lanes(lambda _: None, lambda _, blk: np.matmul(a[blk[0]], b[blk[1]], out=out[blk[2]]), blocks)
    return out


def matmul_in(lane_count):
    """The product for a step of `lanes` that ran on `lane_count` lanes: NumPy's (single-threaded
    there) in a lane of several, else `matmul` (the step has the engine's threads to itself)."""
    return np.matmul if lane_count > 1 else matmul
