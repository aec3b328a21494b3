"""numba's thread count follows the engine's (`engine_config.set_threads`), set before each launch."""

from __future__ import annotations

import numba

from ..config import settings

__all__ = ["follow_settings"]


def follow_settings() -> None:
    """Run the next parallel kernels on ``settings["threads"]`` threads (at most numba's pool)."""
    n = max(1, min(settings["threads"], numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
