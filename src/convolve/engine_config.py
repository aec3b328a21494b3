"""Configure the convolution engine: memory cap, measured autotuning, algorithm choice.

The engine picks an algorithm per call (im2col GEMM, shift-GEMM, Winograd, FFT, depthwise) from a
cost model; `set_autotune(True)` measures instead (like ``torch.backends.cudnn.benchmark``): the
first call of each shape times the plausible algorithms and caches the fastest. Every call keeps its
temporary memory under `get_memory_limit()` bytes by working in chunks. To force an algorithm for
one call, pass ``algorithm=`` to the conv functions.

The automatic choice keeps every result numerically local (`set_precision`, default "local"): a NaN
or inf in the input reaches only the outputs near it, and each output's rounding error is set by the
magnitudes near it. ``set_precision("fast")`` also lets it pick the global FFT, whose rounding error
follows the loudest value of the whole plane and which spreads one NaN to every output.

Examples
--------
>>> import convolve.engine_config as ec
>>> with ec.options(memory_limit=64 * 2**20):
...     ec.get_memory_limit()
67108864
>>> ec.choose_algorithm((8, 128, 58, 58), (128, 1, 3, 3), groups=128)
'depthwise'
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

from contextlib import contextmanager

import numpy as np

from ._shared.types import IntOrTuple
from ._engine import select
from ._engine.config import DEFAULT_MEMORY_LIMIT, autotune_cache, settings
from ._shared.checks import check_bool, check_int, check_ints

__all__ = ["DEFAULT_MEMORY_LIMIT", "algorithms", "set_memory_limit", "get_memory_limit", "set_autotune",
           "get_autotune", "clear_autotune_cache", "PRECISIONS", "set_precision", "get_precision", "set_threads", "get_threads", "set_jit", "get_jit", "choose_algorithm", "options"]

OPS = ("forward", "grad_input", "grad_weight")
PRECISIONS = ("local", "fast")


def algorithms() -> list:
    """Names accepted by ``algorithm=`` (``'reference'`` is the slow oracle, never chosen automatically)."""
    return list(select.ALGORITHMS)


def set_memory_limit(nbytes: int) -> None:
    """Cap the temporary memory of one convolution or pooling call, in bytes (default 256 MiB).

    Calls that would need more run in chunks (over the batch, then over output rows), each padded
    on its own; results are the same. Outputs and inputs themselves are not counted.
    """
    settings["memory_limit"] = check_int("memory limit (bytes)", nbytes, minimum=1)


def get_memory_limit() -> int:
    """The current cap on one call's temporary memory, in bytes."""
    return settings["memory_limit"]


def set_autotune(enabled: bool) -> None:
    """Turn measured algorithm choice on or off (off by default; the cost model chooses)."""
    settings["autotune"] = check_bool("autotune", enabled)


def get_autotune() -> bool:
    return settings["autotune"]


def clear_autotune_cache() -> None:
    """Forget the measured choices (e.g. after the machine's load changed)."""
    autotune_cache.clear()


def set_precision(mode: str) -> None:
    """What the automatic algorithm choice may trade for speed.

    ``"local"`` (default): only algorithms meeting the numerical-locality policy (docs/speed.md): a
    NaN or inf stays within one tile of where it occurs, and each output's float32 error is a small
    multiple of the rounding of the magnitudes in its own neighbourhood. ``"fast"``: the global FFT
    may be chosen too (large kernels), whose error follows the largest magnitude of the whole plane
    and which turns every output NaN when one input is. ``algorithm="fft"`` forces it either way.
    """
    if mode not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, but got {mode!r}")
    settings["precision"] = mode


def get_precision() -> str:
    """The current precision setting: "local" or "fast"."""
    return settings["precision"]


def set_threads(n: int) -> None:
    """Threads for FFTs, compiled kernels and blocked work (Winograd, tiled FFT and im2col blocks run as
    one lane per thread, each with single-threaded BLAS, where NumPy's BLAS is its bundled OpenBLAS);
    default: the number of CPUs. ``set_threads(1)`` keeps all of it on the calling thread. BLAS calls
    outside the lanes use the BLAS's own thread count (set it with e.g. threadpoolctl)."""
    settings["threads"] = check_int("threads", n, minimum=1)


def get_threads() -> int:
    return settings["threads"]


def set_jit(enabled: bool) -> None:
    """Turn the compiled (numba) kernel tier on or off (on by default where numba imports;
    ``CONVOLVE_JIT=0`` in the environment starts with it off). Off, the NumPy implementations run:
    same results up to floating-point summation order."""
    settings["jit"] = check_bool("jit", enabled)


def get_jit() -> bool:
    """Whether compiled kernels run now (False when switched off or numba is not importable)."""
    from ._engine import kernels

    return kernels.enabled()


def choose_algorithm(input_shape: Sequence[int], weight_shape: Sequence[int], stride: IntOrTuple = 1,
                     dilation: IntOrTuple = 1, groups: int = 1, dtype: Any = "float32", op: str = "forward",
                     constant_weights: bool = False) -> str:
    """The algorithm the engine's cost model picks for a convolution (autotuning aside).

    Parameters
    ----------
    input_shape : tuple
        (N, C_in, *S), already padded, channels first.
    weight_shape : tuple
        (C_out, C_in/groups, *K).
    stride, dilation : int or tuple
    groups : int
    dtype : 'float32' or 'float64'
    op : 'forward', 'grad_input' or 'grad_weight'
    constant_weights : bool
        The pick for weights that do not change between calls (an imported model's inference plan),
        so that what an algorithm derives from them is computed once (Winograd's transformed kernel).
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {list(OPS)}, but got {op!r}")
    nd = len(weight_shape) - 2
    if nd < 1 or len(input_shape) != nd + 2:
        raise ValueError(f"input_shape {tuple(input_shape)} and weight_shape {tuple(weight_shape)} must both have "
                         f"2 + spatial dims (1 to 3) entries")
    st = check_ints("stride", stride, nd, minimum=1)
    dl = check_ints("dilation", dilation, nd, minimum=1)
    check_bool("constant_weights", constant_weights)
    return select.choose(op, tuple(input_shape), tuple(weight_shape), st, dl, groups, np.dtype(dtype),
                         constant=constant_weights).name


@contextmanager
def options(memory_limit: Optional[int] = None, autotune: Optional[bool] = None, threads: Optional[int] = None,
            jit: Optional[bool] = None, precision: Optional[str] = None) -> Iterator[None]:
    """Temporarily change settings; the previous ones come back on exit."""
    saved = dict(settings)
    try:
        if memory_limit is not None:
            set_memory_limit(memory_limit)
        if autotune is not None:
            set_autotune(autotune)
        if threads is not None:
            set_threads(threads)
        if jit is not None:
            set_jit(jit)
        if precision is not None:
            set_precision(precision)
        yield
    finally:
        settings.update(saved)
