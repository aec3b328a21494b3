"""Batch normalisation through the compiled tier, on arrays (N, C, *) viewed as (N, C, L).

`convolve.functional.norm` checks arguments, records the op and holds the NumPy twin; it calls
here when `usable` says the kernels apply (numba on, float32/float64, large enough to pay).
"""

from __future__ import annotations

import numpy as np

from . import kernels

__all__ = ["usable", "forward", "backward"]

_KERNEL_MIN = 4096  # elements; below this the NumPy twin's few small passes are as fast


def usable(a: np.ndarray) -> bool:
    """Whether the compiled batch norm takes `a` (N, C, *)."""
    return a.dtype in (np.float32, np.float64) and a.size >= _KERNEL_MIN and kernels.enabled()


def forward(a, mean, var, weight, bias, eps, relu):
    """y = (a - mean) / sqrt(var + eps) * weight + bias per channel (then ReLU with `relu`).

    `mean` and `var` are the statistics to normalise with (float64, (C,)), or None for the batch's own,
    computed here in the same kernel call's first pass. Returns (y, x3, mean, var, invstd, scale), x3 and
    y as (N, C, L) and the rest float64 (C,) arrays for `backward`.
    """
    from .kernels import norm as k
    from .kernels.threads import pick

    N, C = a.shape[:2]
    x3 = np.ascontiguousarray(a).reshape(N, C, -1)
    if mean is None:
        mean, var = np.empty(C), np.empty(C)
        pick(k.stats, x3.size)(x3, mean, var)
    invstd = 1.0 / np.sqrt(var + eps)
    scale = invstd if weight is None else invstd * weight
    shift = np.zeros(C) if bias is None else np.asarray(bias, np.float64)
    y = np.empty(x3.shape, a.dtype)
    pick(k.normalize, x3.size)(x3, mean, scale, shift, relu, y)
    return y, x3, mean, var, invstd, scale


def backward(g, x3, y, mean, invstd, scale, relu, training, need_input):
    """(grad input or None, Σ g·xhat, Σ g) per channel, float64 sums; g' = g zeroed where y <= 0 with `relu`."""
    from .kernels import norm as k
    from .kernels.threads import pick

    N, C, L = x3.shape
    g3 = np.ascontiguousarray(g, dtype=x3.dtype).reshape(N, C, L)
    gx = np.empty(x3.shape if need_input else (0, 0, 0), x3.dtype)
    gsum, gdot = np.empty(C), np.empty(C)
    pick(k.backward, x3.size)(g3, x3, y, mean, invstd, scale, relu, training, gx, gsum, gdot)
    return (gx if need_input else None), gdot, gsum
