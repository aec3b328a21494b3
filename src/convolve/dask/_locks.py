"""One lock for running models in the threads of a process.

convolve's grad mode (``no_grad``) is one process-wide flag, not a per-thread one: two threads that
enter and leave ``no_grad`` interleaved can leave recording switched off for everyone. Dask runs
tasks on threads (the threaded scheduler, workers with several threads), so every model call in
this package holds this lock; the array ops outside models (conv, pooling) do not need it.
"""

from __future__ import annotations

import threading

__all__ = ["model_lock"]

model_lock = threading.RLock()
