"""Which algorithm runs a convolution: a cost model, opt-in measured autotuning, or the caller's name.

The cost model estimates seconds per algorithm from the shapes and dtype: GEMM work at this kind
of machine's BLAS rate (lower for thin matrices), elementwise passes (im2col copies, Winograd
transforms, kn2row accumulation) at memory speed, FFTs at their n·log n cost, and a fixed overhead
per NumPy call. It picks the cheapest algorithm that supports the shape. The constants were fitted
to measurements on a 2-core AVX-512 machine (see docs/speed.md); autotuning replaces the guess
with a measurement.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import depthwise, fft, gemm, kn2row, reference, winograd
from .chunks import smallest_piece
from .config import autotune_cache, settings
from .windows import out_size

__all__ = ["ALGORITHMS", "AUTOMATIC", "supporting", "estimate", "choose", "tune"]

ALGORITHMS = {a.name: a for a in (reference, gemm, kn2row, winograd.F2, winograd.F4, fft, depthwise)}
AUTOMATIC = tuple(n for n in ALGORITHMS if n != "reference")  # the reference is for tests only

GEMM_RATE = {4: 110e9, 8: 55e9}  # flop/s of a large GEMM, 2 threads
MEM_RATE = 5e9  # bytes/s read + written by one NumPy elementwise pass out of cache
CACHE_RATE = 20e9  # the same within cache (depthwise blocks)
FFT_RATE = 4e9  # 2.5·n·log2(n) "flops" per second of a real FFT
CALL = 4e-6  # seconds of overhead per NumPy call
BLAS_CALL = 1e-6  # per matrix inside one batched matmul


def _eff(*dims):
    """Fraction of the GEMM rate reached with these matrix dimensions (thin matrices are slower)."""
    return math.prod(d / (d + 16) for d in dims)


def _gemm_time(flops, itemsize, m, n, k, count):
    return flops / (GEMM_RATE[itemsize] * _eff(m, n, k)) + count * BLAS_CALL


def supporting(op, x_shape, w_shape, stride, dilation, groups):
    """Names of the automatic algorithms that support this convolution."""
    return [n for n in AUTOMATIC if ALGORITHMS[n].supports(op, x_shape, w_shape, stride, dilation, groups) is None]


def _fitting(names, op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Those whose smallest chunk fits the memory limit (gemm's always does in practice)."""
    cap = settings["memory_limit"]
    fit = [n for n in names if smallest_piece(op, ALGORITHMS[n], x_shape, w_shape, stride, dilation, groups, itemsize) <= cap]
    return fit or ["gemm"]


def estimate(name, op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Estimated seconds for one call of algorithm `name` (only for shapes it supports)."""
    N, C = x_shape[:2]
    O, Cg = w_shape[:2]
    G, Og = groups, O // groups
    kernel = w_shape[2:]
    K = math.prod(kernel)
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], kernel, stride, dilation))
    P = math.prod(outs)
    flops = 2 * N * O * Cg * K * P
    b = itemsize
    if name == "gemm":
        inner = op == "grad_weight" or gemm._batch_inner(N, P)
        t = _gemm_time(flops, b, Og, N * P if inner else P, Cg * K, G * (1 if inner else N))
        cols = 0 if (K == 1 and op == "forward" and not inner) else N * C * K * P * b
        t += (3 if op == "grad_input" else 2) * cols / MEM_RATE + K * CALL
        return t + (2 * N * O * P * b / MEM_RATE if inner else 0)
    if name == "kn2row":
        if all(s == 1 for s in stride):
            L = kn2row._geometry(x_shape[2:], outs, kernel, dilation)[1]
            copies = 0
        else:
            L, copies = P, 2 * K * N * C * P * b
        t = _gemm_time(2 * N * O * Cg * K * L, b, Og, L, Cg, K * N * G)
        adds = {"forward": N * O * L, "grad_input": N * C * L, "grad_weight": 0}[op]
        return t + (3 * K * adds * b + copies) / MEM_RATE + 2 * K * CALL
    if name.startswith("winograd"):
        m = ALGORITHMS[name].m
        a = m + 2
        S = x_shape[2:]
        if op == "grad_input":
            C, O, Cg, Og, S = O, C, Og, Cg, tuple(s + 2 for s in S)
        TH, TW = (-(-(s - 2) // m) for s in S)
        T = N * TH * TW
        t = _gemm_time(2 * a * a * O * Cg * T, b, Og, T, Cg, a * a * G)
        ops_in, ops_out = (17, 13) if m == 4 else (4, 4)
        t += 3 * b * ops_in * (N * C * TH * (TW * m + 2) + a * C * T) / MEM_RATE
        if op == "grad_weight":
            t += 3 * b * 2 * ops_in * (O * N * TH * TW * m + a * O * T) / MEM_RATE
        else:
            t += 3 * b * ops_out * (a * O * T + m * O * T) / MEM_RATE
        return t + a * (ops_in + ops_out) * CALL
    if name == "fft":
        F = fft._sizes(x_shape[2:])
        nF = math.prod(F)
        nf = nF // F[-1] * (F[-1] // 2 + 1)
        a_, b_ = (N * C, O * Cg) if op != "grad_weight" else (N * C, N * O)
        c_ = {"forward": N * O, "grad_input": N * C, "grad_weight": O * Cg}[op]
        transforms = (a_ + b_ + c_) * 2.5 * nF * math.log2(max(nF, 2)) / FFT_RATE
        mm = 8 * N * Og * Cg * G * nf / (GEMM_RATE[b] * _eff(N, Og, Cg)) + nf * G * BLAS_CALL
        return transforms + mm + 2 * 2 * b * (a_ + b_ + c_) * nf * 2 / MEM_RATE
    if name == "depthwise":
        _, blocks = depthwise._blocks(N, C, (O // C) * P * b)
        return 3 * K * N * O * P * b / CACHE_RATE + len(blocks) * K * 2 * CALL
    return math.inf


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


def choose(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm=None):
    """The algorithm for one call: `algorithm` (a name) forces one, else the cost model's cheapest."""
    if algorithm is not None:
        return _by_name(algorithm, op, x_shape, w_shape, stride, dilation, groups)
    itemsize = np.dtype(dtype).itemsize
    names = _fitting(supporting(op, x_shape, w_shape, stride, dilation, groups), op, x_shape, w_shape, stride,
                     dilation, groups, itemsize)
    return ALGORITHMS[min(names, key=lambda n: estimate(n, op, x_shape, w_shape, stride, dilation, groups, itemsize))]


def tune(op, x_shape, w_shape, stride, dilation, groups, dtype, run):
    """Measured choice: the first call of a shape times every plausible algorithm (`run(algo)` -> result)
    and caches the fastest; later calls of that shape run it directly. Returns the result."""
    key = (op, tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups, np.dtype(dtype).str)
    if key in autotune_cache:
        return run(ALGORITHMS[autotune_cache[key]])
    itemsize = np.dtype(dtype).itemsize
    names = _fitting(supporting(op, x_shape, w_shape, stride, dilation, groups), op, x_shape, w_shape, stride,
                     dilation, groups, itemsize)
    costs = {n: estimate(n, op, x_shape, w_shape, stride, dilation, groups, itemsize) for n in names}
    best_guess = min(costs.values())
    best, best_time, result = None, math.inf, None
    for n in sorted(names, key=costs.get):
        if costs[n] > 8 * best_guess:  # not worth measuring
            continue
        t0 = time.perf_counter()
        out = run(ALGORITHMS[n])
        dt = time.perf_counter() - t0
        if dt < best_time:
            best, best_time, result = n, dt, out
    autotune_cache[key] = best
    return result
