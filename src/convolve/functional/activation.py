"""Elementwise activations and (log-)softmax, PyTorch semantics.

Arrays in -> arrays out; Tensors in -> Tensor out with the backward recorded.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import autograd
from ..autograd import as_array, record
from .._shared.types import ArrayOrTensor, TensorLike
from ._args import as_input, float_dtype, is_int

__all__ = ["relu", "leaky_relu", "tanh", "sigmoid", "softmax", "log_softmax"]


def _float_input(input: Any, name: str = "input") -> Any:
    x = as_input(input, name)
    float_dtype(name, x)
    return x


def _dim(dim: Any, ndim: int, op: str) -> int:
    if not is_int(dim):
        raise TypeError(f"{op}: dim must be an int, but got {dim!r}")
    if ndim == 0:
        raise ValueError(f"{op} needs an input with at least 1 dimension, but got a 0-D input")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{op}: dim must be in [{-ndim}, {ndim - 1}] for a {ndim}-D input, but got {dim}")
    return int(dim) % ndim


def relu(input: TensorLike) -> ArrayOrTensor:
    """max(x, 0) elementwise; the gradient at 0 is 0 (as PyTorch).

    Parameters
    ----------
    input : ndarray or Tensor
        float16, float32 or float64, any shape.

    Returns
    -------
    ndarray or Tensor
        Same type, shape and dtype as `input`.

    Shape
    -----
    Output has the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.relu(np.array([-1.5, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    return autograd.relu(_float_input(input))


def leaky_relu(input: TensorLike, negative_slope: float = 0.01) -> ArrayOrTensor:
    """x where x > 0, else ``negative_slope * x``.

    Parameters
    ----------
    input : ndarray or Tensor
        float16, float32 or float64, any shape.
    negative_slope : float
        Slope for negative inputs.

    Returns
    -------
    ndarray or Tensor
        Same type, shape and dtype as `input`.

    Shape
    -----
    Output has the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, bool):
        raise TypeError(f"negative_slope must be a real number, but got {negative_slope!r}")
    x = _float_input(input)
    a = as_array(x)
    pos = a > 0
    slope = np.asarray(negative_slope, dtype=a.dtype)
    return record(np.where(pos, a, a * slope), (x,), lambda g: (np.where(pos, g, g * slope),))


def tanh(input: TensorLike) -> ArrayOrTensor:
    """Hyperbolic tangent elementwise.

    Parameters
    ----------
    input : ndarray or Tensor
        float16, float32 or float64, any shape.

    Returns
    -------
    ndarray or Tensor
        Same type, shape and dtype as `input`, in (-1, 1).

    Shape
    -----
    Output has the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.tanh(np.array([0.0, 100.0]))
    array([0., 1.])
    """
    return autograd.tanh(_float_input(input))


def sigmoid(input: TensorLike) -> ArrayOrTensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|.

    Parameters
    ----------
    input : ndarray or Tensor
        float16, float32 or float64, any shape.

    Returns
    -------
    ndarray or Tensor
        Same type, shape and dtype as `input`, in (0, 1).

    Shape
    -----
    Output has the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.sigmoid(np.array([0.0, -1000.0]))
    array([0.5, 0. ])
    """
    return autograd.sigmoid(_float_input(input))


def _log_softmax_array(a: np.ndarray, dim: int) -> np.ndarray:
    """Stable log-softmax: shift by the max so exp never overflows."""
    shifted = a - a.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def softmax(input: TensorLike, dim: int) -> ArrayOrTensor:
    """exp(x) / sum(exp(x)) along `dim` (shifted by the max, so large inputs do not overflow).

    Parameters
    ----------
    input : ndarray or Tensor
        float16, float32 or float64.
    dim : int
        The axis that sums to 1.

    Returns
    -------
    ndarray or Tensor
        Same type, shape and dtype as `input`.

    Shape
    -----
    Output has the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.softmax(np.array([[1.0, 1.0], [0.0, 1000.0]]), dim=1)
    array([[0.5, 0.5],
           [0. , 1. ]])
    """
    x = _float_input(input)
    a = as_array(x)
    dim = _dim(dim, a.ndim, "softmax")
    shifted = np.exp(a - a.max(axis=dim, keepdims=True))
    out = shifted / shifted.sum(axis=dim, keepdims=True)
    # J^T g = out * (g - sum(g * out))
    return record(out, (x,), lambda g: (out * (g - (g * out).sum(axis=dim, keepdims=True)),), saves_output=True)


def log_softmax(input: TensorLike, dim: int) -> ArrayOrTensor:
    """x - logsumexp(x) along `dim`, computed stably.

    Parameters
    ----------
    input : ndarray or Tensor
        float16, float32 or float64.
    dim : int
        The axis to normalise over.

    Returns
    -------
    ndarray or Tensor
        Same type, shape and dtype as `input`.

    Shape
    -----
    Output has the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.log_softmax(np.array([0.0, 0.0]), dim=0)
    array([-0.69314718, -0.69314718])
    """
    x = _float_input(input)
    a = as_array(x)
    dim = _dim(dim, a.ndim, "log_softmax")
    out = _log_softmax_array(a, dim)
    return record(out, (x,), lambda g: (g - np.exp(out) * g.sum(axis=dim, keepdims=True),), saves_output=True)
