"""Loss modules wrapping `convolve.functional` losses."""

from __future__ import annotations

from typing import Optional

from .._shared.types import ArrayOrTensor, TensorLike
from .. import functional as F
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]


class CrossEntropyLoss(Module):
    """``F.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)``.

    Shape
    -----
    input (N, C) or (N, C, d1, ...) logits, target (N,) or (N, d1, ...) class indices (or
    probabilities shaped like input); output a scalar, or per element with reduction='none'.
    """

    def __init__(self, weight: Optional[TensorLike] = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input: TensorLike, target: TensorLike) -> ArrayOrTensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class NLLLoss(Module):
    """``F.nll_loss(input, target, weight, ignore_index, reduction)``.

    Shape
    -----
    input (N, C) or (N, C, d1, ...) log-probabilities, target (N,) or (N, d1, ...) class indices;
    output a scalar, or per element with reduction='none'.
    """

    def __init__(self, weight: Optional[TensorLike] = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, input: TensorLike, target: TensorLike) -> ArrayOrTensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(Module):
    """``F.mse_loss(input, target, reduction)``.

    Shape
    -----
    input and target of the same shape; output a scalar, or that shape with reduction='none'.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: TensorLike, target: TensorLike) -> ArrayOrTensor:
        return F.mse_loss(input, target, self.reduction)
