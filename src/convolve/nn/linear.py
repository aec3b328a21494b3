"""Linear, Flatten and Identity layers."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._shared.types import ArrayOrTensor, TensorLike
from .. import functional as F
from ..autograd import Tensor
from .._shared.checks import check_bool, check_int, is_int
from . import init
from ._layer import empty_parameter
from .module import Module

__all__ = ["Linear", "Flatten", "Identity"]


class Linear(Module):
    """``y = x W^T + b`` (``F.linear``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    dtype : numpy float dtype, keyword-only
        Parameter dtype (float32 by default).

    Attributes
    ----------
    weight : Parameter
        (out_features, in_features), kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(in_features)).
    bias : Parameter or None
        (out_features,), U(±1/sqrt(in_features)).

    Shape
    -----
    - input: (*, in_features)
    - output: (*, out_features)

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> fc = nn.Linear(64 * 7 * 7, 10)
    >>> fc.weight.shape, fc(np.ones((8, 64 * 7 * 7), np.float32)).shape
    ((10, 3136), (8, 10))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, minimum=1)
        self.out_features = check_int("out_features", out_features, minimum=1)
        self.weight = empty_parameter((out_features, in_features), dtype)
        if check_bool("bias", bias):
            self.bias = empty_parameter((out_features,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, *, generator: Optional[np.random.Generator] = None) -> None:
        init.default_weight_and_bias_(self.weight, self.bias, generator=generator)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` into one.

    Shape
    -----
    (N, C, H, W) -> (N, C·H·W) with the defaults start_dim=1, end_dim=-1.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        if not is_int(start_dim) or not is_int(end_dim):
            raise TypeError(f"start_dim and end_dim must be ints, but got {start_dim!r} and {end_dim!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, input: Any) -> ArrayOrTensor:
        shape = input.shape
        nd = len(shape)
        start, end = self.start_dim % max(nd, 1), self.end_dim % max(nd, 1)
        if not (-nd <= self.start_dim < nd and -nd <= self.end_dim < nd) or start > end:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit an input of shape {shape}"
            )
        new = shape[:start] + (int(np.prod(shape[start:end + 1], dtype=np.int64)),) + shape[end + 1:]
        return input.reshape(new) if isinstance(input, Tensor) else np.reshape(input, new)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for an absent shortcut).

    Shape
    -----
    Input: any shape. Output: the same.
    """

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return input
