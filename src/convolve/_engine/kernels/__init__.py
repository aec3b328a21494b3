"""The compiled kernel tier: small numba functions over arrays, each with a NumPy twin.

Kernels take arrays and ints and fill or return arrays; they know nothing of Tensors, dtype policy or
option parsing (that stays in Python around them). Every kernel module imports numba through
`jit()` below, so that:

- ``import convolve`` never imports numba (it is imported the first time a kernel is needed);
- the tier is off when numba cannot be imported, when ``CONVOLVE_JIT=0`` is set in the environment,
  or after ``convolve.engine_config.set_jit(False)``; callers then use the NumPy twin.

Use::

    from . import kernels
    if kernels.enabled():
        from .kernels import winograd as kw     # this import compiles lazily (numba, cache=True)
        ...
"""

from __future__ import annotations

import os
import types

from ..config import settings

__all__ = ["enabled", "available", "njit", "njit_parallel"]

_available: "bool | None" = None


def available() -> bool:
    """Whether numba can be imported here (checked once)."""
    global _available
    if _available is None:
        try:
            import numba  # noqa: F401
        except Exception:  # ImportError, or llvmlite failing to load on an odd platform
            _available = False
        else:
            _available = True
    return _available


def enabled() -> bool:
    """Whether compiled kernels run: numba importable and not switched off."""
    return settings["jit"] and available()


def njit(*args, **kwargs):
    """numba.njit with ``cache=True`` (compiled once per machine, then loaded from __pycache__) and
    ``nogil=True`` (kernels only touch arrays, so lanes of `parallel.lanes` run them at once)."""
    import numba

    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    return numba.njit(*args, **kwargs)



def njit_parallel(**flags):
    """Decorator: `njit` with ``parallel=True``, plus the same code compiled serially as ``.serial``
    (``prange`` runs as ``range`` there). `threads.pick` chooses between them by the amount of work:
    a parallel launch wakes numba's worker threads, which costs ~10 us on an idle machine and up to
    milliseconds when the other cores are busy, more than a small layer's whole arithmetic.

    The serial twin is a copy of the function under another qualified name, so that numba's on-disk
    cache keeps the two compilations apart (its cache files are named by qualified name and line).
    """

    def wrap(fn):
        parallel = njit(parallel=True, **flags)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                  fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
        parallel.serial = njit(**flags)(twin)
        return parallel

    return wrap
