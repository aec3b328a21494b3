"""The machine model behind every algorithm's `cost`: rates and per-call overheads.

The constants were fitted to measurements on a 2-core AVX-512 machine (see docs/speed.md); they
only need to rank the algorithms, and autotuning (`engine_config.set_autotune`) replaces the guess
with a measurement.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

__all__ = ["GEMM_RATE", "THIN", "MEM_RATE", "CACHE_RATE", "COPY_RATE", "CACHE_BYTES", "CALL", "BLAS_CALL", "efficiency", "gemm_time", "outs",
           "pieces", "constant_weights", "weights_constant"]

GEMM_RATE = {4: 250e9, 8: 125e9}  # flop/s of a large GEMM with 2 BLAS threads (NumPy 2048³: ~300e9 float32)
MEM_RATE = 8e9  # bytes/s read + written by one NumPy copy or elementwise pass out of cache (single-threaded)
CACHE_RATE = 20e9  # the same within cache (depthwise blocks, sums of partial results)
COPY_RATE = 5e9  # im2col's copies of short rows, even in cache (gemm's blocks; fitted with bench_choice.py)
CACHE_BYTES = 3 * 2**20  # a working set up to this size stays in cache between passes (L2s + part of L3)
CALL = 4e-6  # seconds of overhead per NumPy call
BLAS_CALL = 1e-6  # per matrix inside one batched matmul


_constant = contextvars.ContextVar("convolve_constant_weights", default=False)


@contextlib.contextmanager
def constant_weights(flag: bool):
    """Costs estimated inside are for weights marked constant (`constants`): what an algorithm
    derives from them (Winograd's transformed kernel) is computed once, not on every call."""
    token = _constant.set(bool(flag))
    try:
        yield
    finally:
        _constant.reset(token)


def weights_constant() -> bool:
    """Whether the costs being estimated are for constant weights (`constant_weights`)."""
    return _constant.get()


THIN = 16  # a matrix dimension of THIN halves the GEMM rate (`efficiency`)


def efficiency(*dims) -> float:
    """Fraction of the GEMM rate reached with these matrix dimensions (thin matrices are slower)."""
    return math.prod(d / (d + THIN) for d in dims)


def gemm_time(flops, itemsize, m, n, k, count) -> float:
    """Seconds for `count` GEMMs of shape (m, k) @ (k, n) doing `flops` in all."""
    return flops / (GEMM_RATE[itemsize] * efficiency(m, n, k)) + count * BLAS_CALL


def outs(x_shape, w_shape, stride, dilation) -> tuple:
    """Output spatial sizes of a (padded) call."""
    return tuple((s - d * (k - 1) - 1) // st + 1 for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))


def pieces(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize) -> float:
    """How many pieces the memory cap splits this call into (inf if it cannot fit)."""
    from .chunks import plan
    from .config import settings

    rows0 = outs(x_shape, w_shape, stride, dilation)[0]
    try:
        nb, rows = plan(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, settings["memory_limit"], rows0)
    except ValueError:
        return math.inf
    return -(-x_shape[0] // nb) * (1 if rows is None else -(-rows0 // rows))
