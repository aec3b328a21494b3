"""numba's thread count follows the engine's (`engine_config.set_threads`), set before each launch;
small work runs on the calling thread (`pick`)."""

from __future__ import annotations

import numba

from ..config import settings

__all__ = ["follow_settings", "pick", "PARALLEL_MIN"]

# Work (multiply-adds, or elements touched) below which a kernel runs serially on the calling thread:
# waking numba's workers costs ~10 us idle and far more on a busy machine, about what 2^17 multiply-adds
# take on one core; above it the split pays.
PARALLEL_MIN = 1 << 17


def follow_settings() -> int:
    """Run the next parallel kernels on ``settings["threads"]`` threads (at most numba's pool); returns it."""
    n = max(1, min(settings["threads"], numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


def pick(kernel, work: int, minimum=None):
    """`kernel` (an `njit_parallel` kernel) for `work` units: its serial twin when the work is below
    `minimum` (default `PARALLEL_MIN`) or the engine runs on one thread, else the parallel one on the
    engine's threads."""
    if work < (PARALLEL_MIN if minimum is None else minimum) or follow_settings() == 1:
        return kernel.serial
    return kernel
