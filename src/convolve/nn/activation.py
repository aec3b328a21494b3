"""Activation layers; each calls the matching `convolve.functional` op."""

from __future__ import annotations

from .._shared.types import ArrayOrTensor, TensorLike
from .. import functional as F
from .._shared.checks import check_bool
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax"]


class ReLU(Module):
    """max(x, 0). `inplace` is accepted for PyTorch compatibility; the result is always a new array.

    Shape
    -----
    Input: any shape. Output: the same shape.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = check_bool("inplace", inplace)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x for x > 0, else negative_slope · x.

    Shape
    -----
    Input: any shape. Output: the same shape.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, check_bool("inplace", inplace)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Tanh(Module):
    """tanh(x) elementwise.

    Shape
    -----
    Input: any shape. Output: the same shape.
    """

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.tanh(input)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise.

    Shape
    -----
    Input: any shape. Output: the same shape.
    """

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.sigmoid(input)


class Softmax(Module):
    """Softmax along `dim`.

    Shape
    -----
    Input: any shape. Output: the same shape.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along `dim`.

    Shape
    -----
    Input: any shape. Output: the same shape.
    """

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.log_softmax(input, self.dim)
