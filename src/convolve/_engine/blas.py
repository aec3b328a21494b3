"""NumPy's BLAS thread count, so that blocked algorithms can run one single-threaded BLAS per lane.

A blocked algorithm (Winograd: transform, products, transform per block of tiles; im2col + GEMM per
block of rows) runs best as one independent lane per core, each keeping its block in its own cache:
no barrier between the passes, and the NumPy/numba passes between the products run on every core
instead of one. That needs BLAS to run each product on the calling thread; two lanes calling a
multi-threaded BLAS at once put twice as many spinning threads as cores on the machine.

NumPy does not expose its BLAS thread count, so it is set through the bundled OpenBLAS's own entry
points (found by name in the loaded library). With another BLAS (MKL, Accelerate, a system library
without those symbols) `controllable()` is False and callers keep their one-lane path, where BLAS
uses every core by itself.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["controllable", "single_threaded"]

# NumPy wheels bundle OpenBLAS under these names (64-bit integer builds add the 64_ suffix).
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "", "_64")
_found: Any = None
_lock = threading.Lock()
_depth = 0
_saved = 1


def _library_paths() -> list:
    import numpy

    root = os.path.dirname(os.path.abspath(numpy.__file__))
    found = []
    for folder in (root + ".libs", os.path.join(root, ".dylibs"), os.path.join(root, "..", "numpy.libs")):
        for pattern in ("*openblas*.so*", "*openblas*.dylib", "*openblas*.dll"):
            found.extend(sorted(glob.glob(os.path.join(folder, pattern))))
    return found


def _entry_points():
    """(set, get) of the bundled OpenBLAS, or False when there is none to control."""
    global _found
    if _found is None:
        _found = False
        for path in _library_paths():
            try:
                lib = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
            except OSError:
                continue
            for prefix in _PREFIXES:
                for suffix in _SUFFIXES:
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None:
                        setter.argtypes, setter.restype = [ctypes.c_int], None
                        getter.argtypes, getter.restype = [], ctypes.c_int
                        _found = (setter, getter)
                        return _found
    return _found


def controllable() -> bool:
    """Whether NumPy's BLAS thread count can be set here (a bundled OpenBLAS was found)."""
    return bool(_entry_points())


@contextmanager
def single_threaded() -> Iterator[None]:
    """NumPy's BLAS runs every call on the calling thread inside this block (nested and concurrent
    blocks are counted; the last one out restores the previous thread count)."""
    global _depth, _saved
    points = _entry_points()
    if not points:
        yield
        return
    setter, getter = points
    with _lock:
        if _depth == 0:
            _saved = getter()
            setter(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                setter(_saved)
