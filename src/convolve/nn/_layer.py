"""Helpers shared by the layer modules: parameter creation in the requested dtype."""

from __future__ import annotations

import numpy as np

from .module import _float_dtype_arg
from .parameter import Parameter


def layer_dtype(dtype) -> np.dtype:
    """Parameters are float32 unless the layer is built with ``dtype=np.float64`` (or float16)."""
    return np.dtype(np.float32) if dtype is None else _float_dtype_arg(dtype)


def empty_parameter(shape, dtype) -> Parameter:
    return Parameter(np.zeros(shape, dtype=layer_dtype(dtype)))
