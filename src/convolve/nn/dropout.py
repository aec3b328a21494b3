"""Dropout layer."""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .._shared.types import ArrayOrTensor, TensorLike
from .. import functional as F
from .._shared.checks import check_bool
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero elements with probability `p` in training mode, scaling the rest by 1/(1-p); identity in eval.

    Masks come from ``convolve.nn.init``'s shared generator (seed it with ``convolve.nn.init.seed``)
    or from `generator` when given.

    Parameters
    ----------
    p : float
    inplace : bool
        Accepted for PyTorch compatibility; the result is always a new array.
    generator : numpy.random.Generator, optional, keyword-only

    Shape
    -----
    Input: any shape. Output: the same shape.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> drop = nn.Dropout(0.5, generator=np.random.default_rng(0))
    >>> sorted(set(drop(np.ones(1000)).tolist()))                 # kept values are scaled by 1/(1-p)
    [0.0, 2.0]
    >>> drop.eval()(np.ones(3))                                   # identity in eval mode
    array([1., 1., 1.])
    """

    p: float
    inplace: bool
    generator: Optional[np.random.Generator]

    def __init__(self, p: float = 0.5, inplace: bool = False, *, generator: Optional[np.random.Generator] = None) -> None:
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability p must be between 0 and 1, but got {p!r}")
        self.p = float(p)
        self.inplace = check_bool("inplace", inplace)
        self.generator = generator

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
