"""Which algorithm runs a convolution. Today: GEMM unless the caller forces one by name."""

from __future__ import annotations

from . import gemm, reference

ALGORITHMS = {m.name: m for m in (reference, gemm)}


def choose(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm=None):
    """The algorithm module for one call; `algorithm` (a name) forces one."""
    if algorithm is None:
        return gemm
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(
            f"algorithm must be one of {sorted(ALGORITHMS)} or None, but got {algorithm!r}"
        ) from None
