"""Elementwise passes of training (ReLU and its gradient) over whole arrays, both tiers.

The compiled kernels (`kernels.eltwise`) do each pass in one read of every input on all cores;
the NumPy twins below are the readable reference and the fallback (numba missing, or the tier
switched off). Callers pass any arrays; non-contiguous ones take the NumPy path.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .parallel import batch_slices, map_blocks

__all__ = ["relu", "relu_", "relu_backward", "relu_numpy", "relu_backward_numpy"]

# below this many elements a kernel call's fixed cost (~2 us) is more than NumPy's whole pass
_KERNEL_MIN = 4096


def _compiled(*arrays) -> bool:
    return (kernels.enabled() and arrays[0].size >= _KERNEL_MIN
            and all(a.flags.c_contiguous and a.dtype in (np.float32, np.float64) for a in arrays)
            and len({a.dtype for a in arrays}) == 1)


def relu(a: np.ndarray) -> np.ndarray:
    """max(a, 0), a new array of a's shape and dtype (NaN stays NaN)."""
    if _compiled(a):
        from .kernels import eltwise as k
        from .kernels.threads import pick

        y = np.empty_like(a)
        pick(k.relu, a.size)(a.reshape(-1), y.reshape(-1))
        return y
    return relu_numpy(a)


def relu_(a: np.ndarray) -> np.ndarray:
    """max(a, 0) written into `a` itself (a fresh result that nothing else holds); returns `a`."""
    if _compiled(a):
        from .kernels import eltwise as k
        from .kernels.threads import pick

        pick(k.relu, a.size)(a.reshape(-1), a.reshape(-1))
        return a
    parts = batch_slices(a.shape[0], a.nbytes) if a.ndim else [Ellipsis]
    map_blocks(lambda s: np.maximum(a[s], 0, out=a[s]), parts)
    return a


def relu_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """0 where the ReLU's output y <= 0, else g (so a NaN output passes g, as PyTorch); a NaN or inf
    in g does not leak elsewhere."""
    if g.shape == y.shape and _compiled(g, y):
        from .kernels import eltwise as k
        from .kernels.threads import pick

        gx = np.empty_like(g)
        pick(k.relu_backward, g.size)(g.reshape(-1), y.reshape(-1), gx.reshape(-1))
        return gx
    return relu_backward_numpy(g, y)


def relu_numpy(a: np.ndarray) -> np.ndarray:
    """NumPy twin of `relu`: large arrays in parts of the batch on the engine's threads."""
    parts = batch_slices(a.shape[0], a.nbytes) if a.ndim else [Ellipsis]
    y = np.empty_like(a)
    map_blocks(lambda s: np.maximum(a[s], 0, out=y[s]), parts)
    return y


def relu_backward_numpy(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NumPy twin of `relu_backward`."""
    gx = np.empty(np.broadcast_shapes(g.shape, y.shape), g.dtype)
    if np.isfinite(g).all():  # one multiply pass (np.where is several times slower) ...
        parts = batch_slices(gx.shape[0], gx.nbytes) if gx.ndim and g.shape == y.shape else [Ellipsis]
        map_blocks(lambda s: np.multiply(g[s], np.logical_not(y[s] <= 0), out=gx[s]), parts)
    else:  # ... but an inf or NaN gradient must not leak through as inf*0 = NaN
        gx[...] = np.where(y <= 0, 0, g)
    return gx
