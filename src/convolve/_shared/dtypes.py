"""The dtype policy shared by functional and the dask layer: float16 is computed in float32."""

from __future__ import annotations

import numpy as np

__all__ = ["compute_dtype"]


def compute_dtype(dt: np.dtype) -> np.dtype:
    """The dtype arithmetic runs in: float16 widened to float32, float32/float64 kept."""
    return np.dtype(np.float32) if dt == np.float16 else np.dtype(dt)
