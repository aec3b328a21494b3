"""Which algorithm runs a convolution: the cheapest by cost model, a measurement, or the caller's name.

Every algorithm estimates its own seconds (`cost`, from the machine model in `_cost`); `choose`
takes the minimum over the registered algorithms that support the call, fit the memory cap and,
unless the precision setting is "fast", meet the numerical-locality policy (`local`). Autotuning
(`tune`) replaces the estimate with a measurement. Adding an algorithm: write its module (the
`_algorithm.Algorithm` interface) and add it to `REGISTRY`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from typing import Dict, Tuple

from . import _cost, depthwise, direct, fft, gemm, kn2row, reference, tiled_fft, winograd
from ._algorithm import Algorithm
from .chunks import smallest_piece
from .config import autotune_cache, settings

__all__ = ["REGISTRY", "ALGORITHMS", "AUTOMATIC", "supporting", "candidates", "estimate", "choose", "tune"]

REGISTRY: Tuple[Algorithm, ...] = (reference, gemm, kn2row, winograd.F2, winograd.F4, fft, tiled_fft, depthwise,
                                   direct)
ALGORITHMS: Dict[str, Algorithm] = {a.name: a for a in REGISTRY}
AUTOMATIC = tuple(n for n in ALGORITHMS if n != "reference")  # the reference is for tests only
FALLBACK = "gemm"  # supports every call and its smallest chunk (one output row) fits any sane cap


def supporting(op, x_shape, w_shape, stride, dilation, groups):
    """Names of the automatic algorithms that support this convolution."""
    return [n for n in AUTOMATIC if ALGORITHMS[n].supports(op, x_shape, w_shape, stride, dilation, groups) is None]


def candidates(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """The algorithms the automatic choice considers: supported, allowed by the precision setting,
    and with a smallest chunk under the memory cap (never empty: `FALLBACK`)."""
    fast = settings["precision"] == "fast"
    cap = settings["memory_limit"]
    names = [n for n in supporting(op, x_shape, w_shape, stride, dilation, groups)
             if (fast or ALGORITHMS[n].local)
             and smallest_piece(op, ALGORITHMS[n], x_shape, w_shape, stride, dilation, groups, itemsize) <= cap]
    return names or [FALLBACK]


def estimate(name, op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Estimated seconds for one call of algorithm `name` (only for shapes it supports)."""
    return ALGORITHMS[name].cost(op, x_shape, w_shape, stride, dilation, groups, itemsize)


def _by_name(algorithm, op, x_shape, w_shape, stride, dilation, groups):
    try:
        algo = ALGORITHMS[algorithm]
    except (KeyError, TypeError):
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)} or None, but got {algorithm!r}") from None
    reason = algo.supports(op, x_shape, w_shape, stride, dilation, groups)
    if reason is not None:
        raise ValueError(
            f"algorithm {algorithm!r} cannot run this convolution: {reason}; algorithms that can: "
            f"{supporting(op, x_shape, w_shape, stride, dilation, groups) + ['reference']}"
        )
    return algo


def choose(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm=None, constant=False):
    """The algorithm for one call: `algorithm` (a name) forces one, else the least estimated cost
    (`constant`: for weights marked constant, `_cost.constant_weights`)."""
    if algorithm is not None:
        return _by_name(algorithm, op, x_shape, w_shape, stride, dilation, groups)
    itemsize = np.dtype(dtype).itemsize
    names = candidates(op, x_shape, w_shape, stride, dilation, groups, itemsize)
    with _cost.constant_weights(constant):
        return ALGORITHMS[min(names, key=lambda n: estimate(n, op, x_shape, w_shape, stride, dilation, groups,
                                                            itemsize))]


def tune(op, x_shape, w_shape, stride, dilation, groups, dtype, run):
    """Measured choice: the first call of a shape times every plausible candidate (`run(algo)` ->
    result) and caches the fastest; later calls of that shape run it directly. Returns the result."""
    key = (op, tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups, np.dtype(dtype).str,
           settings["precision"])
    if key in autotune_cache:
        return run(ALGORITHMS[autotune_cache[key]])
    itemsize = np.dtype(dtype).itemsize
    names = candidates(op, x_shape, w_shape, stride, dilation, groups, itemsize)
    costs = {n: estimate(n, op, x_shape, w_shape, stride, dilation, groups, itemsize) for n in names}
    best_guess = min(costs.values())
    best, best_time, result = None, math.inf, None
    for n in sorted(names, key=lambda n: costs[n]):
        if costs[n] > 8 * best_guess:  # not worth measuring
            continue
        t0 = time.perf_counter()
        out = run(ALGORITHMS[n])
        dt = time.perf_counter() - t0
        if dt < best_time:
            best, best_time, result = n, dt, out
    autotune_cache[key] = best
    return result
