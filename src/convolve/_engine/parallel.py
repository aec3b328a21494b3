"""Run independent blocks of work on a few threads.

NumPy's elementwise ufuncs release the GIL on large arrays but run on one core; BLAS calls use all
of them. Blocked algorithms (Winograd's tile transforms, depthwise taps) are mostly elementwise
passes, so running their blocks on ``settings["threads"]`` Python threads puts every core to work
and overlaps one block's transforms with another's GEMM. Each block must write only its own output.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .config import settings

__all__ = ["map_blocks", "sum_blocks"]

_pools: dict = {}


def map_blocks(fn, blocks) -> list:
    """[fn(b) for b in blocks], on up to settings["threads"] threads (in order of `blocks`)."""
    blocks = list(blocks)
    n = min(settings["threads"], len(blocks))
    if n <= 1:
        return [fn(b) for b in blocks]
    if n not in _pools:
        _pools[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="convolve")
    return list(_pools[n].map(fn, blocks))


def sum_blocks(fn, blocks):
    """Σ fn(b) over blocks; each thread accumulates its share, so at most one partial sum per thread."""
    blocks = list(blocks)
    n = max(1, min(settings["threads"], len(blocks)))

    def share(bs):
        acc = fn(bs[0])
        for b in bs[1:]:
            acc += fn(b)
        return acc

    parts = map_blocks(share, [blocks[i::n] for i in range(n)])
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total
