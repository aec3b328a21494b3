"""Import dask only when a dask feature is used, with a message naming the extra when it is missing."""

from __future__ import annotations

import importlib

__all__ = ["require", "is_dask_array"]

_HINT = 'this feature needs dask; install it with: pip install "convolve[dask]"'


def require(module: str = "dask.array"):
    """Import and return `module` (``dask.array``, ``distributed``, ``zarr``), or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{_HINT} (importing {module} failed: {err})") from None


def is_dask_array(x) -> bool:
    """True for a ``dask.array.Array``, checked without importing dask."""
    return type(x).__module__.startswith("dask")
