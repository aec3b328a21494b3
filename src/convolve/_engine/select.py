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
from .chunks import plan, smallest_piece
from .config import autotune_cache, settings
from .windows import out_size

__all__ = ["ALGORITHMS", "AUTOMATIC", "supporting", "estimate", "choose", "tune"]

ALGORITHMS = {a.name: a for a in (reference, gemm, kn2row, winograd.F2, winograd.F4, fft, depthwise)}
AUTOMATIC = tuple(n for n in ALGORITHMS if n != "reference")  # the reference is for tests only

GEMM_RATE = {4: 250e9, 8: 125e9}  # flop/s of a large GEMM with 2 BLAS threads (NumPy 2048³: ~300e9 float32)
MEM_RATE = 8e9  # bytes/s read + written by one NumPy copy or elementwise pass out of cache (single-threaded)
CACHE_RATE = 20e9  # the same within cache (blocked im2col, depthwise blocks)
WINOGRAD_BYTE = {2: 0.37e-9, 4: 0.65e-9}  # seconds per byte of transformed tiles (V and M), both transforms
KERNEL_BYTE = 2e-9  # seconds per byte of the transformed kernel U (thin products + transpose)
FFT_RATE = 8e9  # 2.5·n·log2(n) "flops" per second of a real FFT (2 workers)
CALL = 4e-6  # seconds of overhead per NumPy call
BLAS_CALL = 1e-6  # per matrix inside one batched matmul
KN2ROW_PENALTY = 1.5  # its K·N separate GEMMs each wait for the BLAS threads; on a busy machine that costs most


def _eff(*dims):
    """Fraction of the GEMM rate reached with these matrix dimensions (thin matrices are slower)."""
    return math.prod(d / (d + 16) for d in dims)


def _gemm_time(flops, itemsize, m, n, k, count):
    return flops / (GEMM_RATE[itemsize] * _eff(m, n, k)) + count * BLAS_CALL


def _pieces(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize):
    """How many pieces the memory cap splits this call into."""
    outs0 = out_size(x_shape[2], w_shape[2], stride[0], dilation[0])
    try:
        nb, rows = plan(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, settings["memory_limit"], outs0)
    except ValueError:  # cannot fit at all
        return math.inf
    return -(-x_shape[0] // nb) * (1 if rows is None else -(-outs0 // rows))


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
        plan = gemm._row_blocks(x_shape, w_shape, stride, dilation)
        inner = op == "grad_weight" or gemm._batch_inner(N, P)
        if plan is not None:  # blocked: columns written and read in cache
            blocks = N * -(-plan[1] // plan[0])
            t = _gemm_time(flops, b, Og, min(P, plan[0] * plan[2]), Cg * K, G * blocks)
            return t + 2 * N * C * K * P * b / CACHE_RATE + blocks * (K + 3) * CALL
        t = _gemm_time(flops, b, Og, N * P if inner else P, Cg * K, G * (1 if inner else N))
        cols = 0 if (K == 1 and op != "grad_weight" and not inner) else N * C * K * P * b
        t += (3 if op == "grad_input" else 2) * cols / MEM_RATE + K * CALL
        return t + (2 * N * O * P * b / MEM_RATE if inner else 0)
    if name == "kn2row":
        if all(s == 1 for s in stride):
            L = kn2row._geometry(x_shape[2:], outs, kernel, dilation)[1]
            copies = 0
        else:
            L, copies = P, 2 * K * N * C * P * b
        t = _gemm_time(2 * N * O * Cg * K * L, b, Og, L, Cg, K * N * G)
        adds = {"forward": K * N * O * L, "grad_input": K * N * C * L, "grad_weight": N * O * L}[op]
        return KN2ROW_PENALTY * (t + (3 * adds * b + copies) / MEM_RATE + 2 * K * CALL)
    if name.startswith("winograd"):
        algo = ALGORITHMS[name]
        m, a = algo.m, algo.m + 2
        S = x_shape[2:]
        if op == "grad_input":
            C, O, Cg, Og, S = O, C, Og, Cg, tuple(s + 4 for s in S)
        TH, TW = algo._tiles(*S)
        blocks = algo._blocks(N, C, O, TH, TW, b)
        T = N * TH * TW
        Tb = T // len(blocks)
        t = _gemm_time(2 * a * a * O * Cg * T, b, Og, Tb, Cg, a * a * G * len(blocks))
        t += WINOGRAD_BYTE[m] * a * a * (C + O) * T * b * (1.5 if op == "grad_weight" else 1)
        t += KERNEL_BYTE * a * a * O * Cg * b
        return t + len(blocks) * (8 * a + 40) * CALL
    if name == "fft":
        F = fft._sizes(x_shape[2:])
        nF = math.prod(F)
        nf = nF // F[-1] * (F[-1] // 2 + 1)
        # arrays transformed in (a_: the batch operand, b_: the other) and out (c_)
        a_, b_, c_ = {"forward": (N * C, O * Cg, N * O), "grad_input": (N * O, O * Cg, N * C),
                      "grad_weight": (N * C, N * O, O * Cg)}[op]
        per_array = 2.5 * nF * math.log2(max(nF, 2)) / FFT_RATE + 2 * 2 * b * nf * 2 / MEM_RATE
        mm = 8 * N * Og * Cg * G * nf / (GEMM_RATE[b] * _eff(N, Og, Cg)) + nf * G * BLAS_CALL
        # the kernel's spectra are recomputed for every piece when the memory cap splits the call
        pieces = _pieces(op, fft, x_shape, w_shape, stride, dilation, groups, b)
        return (a_ + b_ + c_) * per_array + mm + (pieces - 1) * b_ * per_array + 15 * CALL  # 3 FFTs, 5 copies, ...
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
