"""Engine settings: the memory cap on temporaries, measured autotuning, threads and precision.

Module-level state (like ``torch.backends.cudnn.benchmark``); the public wrapper is
`convolve.engine_config`.
"""

from __future__ import annotations

import os
from typing import Any, Dict

__all__ = ["DEFAULT_MEMORY_LIMIT", "settings", "autotune_cache"]

DEFAULT_MEMORY_LIMIT = 256 * 2**20  # bytes of temporaries one engine call may allocate

settings: Dict[str, Any] = {
    "memory_limit": DEFAULT_MEMORY_LIMIT,
    "autotune": False,
    # "local": the automatic choice keeps to algorithms meeting the numerical-locality policy;
    # "fast": it may also pick the global FFT (see `convolve._engine`)
    "precision": "local",
    "threads": os.cpu_count() or 1,  # FFT workers and threads for blocked elementwise work
    # compiled (numba) kernels; CONVOLVE_JIT=0 turns them off, the NumPy twins run instead
    "jit": os.environ.get("CONVOLVE_JIT", "1").strip().lower() not in ("0", "false", "no", "off"),
}

# (op, x_shape, w_shape, stride, dilation, groups, dtype, precision) -> fastest algorithm name, when autotuning
autotune_cache: dict = {}
