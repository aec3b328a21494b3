"""Piecewise-linear activations of mobile networks: hardtanh, relu6, hardsigmoid, hardswish (PyTorch semantics).

Each is one recorded op; gradients at the kinks follow PyTorch (the open interval carries the slope).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._shared.types import ArrayOrTensor, TensorLike
from ..autograd import as_array, record
from ._args import as_input, float_dtype

__all__ = ["hardtanh", "relu6", "hardsigmoid", "hardswish"]


def _real(name, v):
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise TypeError(f"{name} must be a real number, but got {v!r}")
    return float(v)


def hardtanh(input: TensorLike, min_val: float = -1.0, max_val: float = 1.0) -> ArrayOrTensor:
    """Clamp to [min_val, max_val]; the gradient is 1 strictly inside, 0 elsewhere.

    Parameters
    ----------
    input : ndarray or Tensor
    min_val, max_val : float

    Shape
    -----
    Output has the input's shape and dtype.
    """
    lo, hi = _real("min_val", min_val), _real("max_val", max_val)
    if lo > hi:
        raise ValueError(f"min_val must be <= max_val, but got min_val={min_val}, max_val={max_val}")
    x = as_input(input, "input")
    float_dtype("input", x)
    a = as_array(x)
    inside = (a > lo) & (a < hi)
    return record(np.clip(a, lo, hi), (x,), lambda g: (g * inside,))


def relu6(input: TensorLike) -> ArrayOrTensor:
    """min(max(x, 0), 6): MobileNet's bounded ReLU (``hardtanh(x, 0, 6)``).

    Shape
    -----
    Output has the input's shape and dtype.
    """
    return hardtanh(input, 0.0, 6.0)


def hardsigmoid(input: TensorLike, *, alpha: float = 1 / 6, beta: float = 0.5) -> ArrayOrTensor:
    """max(0, min(1, alpha * x + beta)); PyTorch's defaults (alpha 1/6, beta 1/2; ONNX's are 0.2, 0.5).

    Parameters
    ----------
    input : ndarray or Tensor
    alpha, beta : float, keyword-only

    Shape
    -----
    Output has the input's shape and dtype.
    """
    alpha, beta = _real("alpha", alpha), _real("beta", beta)
    x = as_input(input, "input")
    float_dtype("input", x)
    a = as_array(x)
    z = a * np.asarray(alpha, a.dtype) + np.asarray(beta, a.dtype)
    inside = (z > 0) & (z < 1)
    slope = np.asarray(alpha, a.dtype)
    return record(np.clip(z, 0, 1), (x,), lambda g: (g * inside * slope,))


def hardswish(input: TensorLike) -> ArrayOrTensor:
    """x * relu6(x + 3) / 6 (MobileNetV3).

    The gradient is 0 below -3, 1 above 3 and x/3 + 1/2 in between (PyTorch's choice at the kinks).

    Shape
    -----
    Output has the input's shape and dtype.
    """
    x = as_input(input, "input")
    float_dtype("input", x)
    a = as_array(x)
    out = a * np.clip(a + 3, 0, 6) / np.asarray(6, a.dtype)

    def backward(g):
        slope = np.where(a < -3, 0, np.where(a <= 3, a / 3 + 0.5, 1)).astype(a.dtype, copy=False)
        return (g * slope,)

    return record(out.astype(a.dtype, copy=False), (x,), backward)
