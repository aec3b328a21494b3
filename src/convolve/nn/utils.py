"""Gradient utilities used in training loops."""

from __future__ import annotations

from typing import Iterable, Union

import math
import numbers

import numpy as np

from ..autograd import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Union[Tensor, Iterable[Tensor]], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale gradients in place so their joint norm is at most `max_norm` (as ``torch.nn.utils.clip_grad_norm_``).

    The norm is taken over all gradients together, as if concatenated into one vector; when it exceeds
    `max_norm` every gradient is multiplied by ``max_norm / (norm + 1e-6)``.

    Parameters
    ----------
    parameters : Parameter or iterable of Parameters
        Those without a gradient are skipped.
    max_norm : float
    norm_type : float
        p of the p-norm; ``float('inf')`` for the largest absolute value.

    Returns
    -------
    float
        The total norm before clipping.
    """
    if not isinstance(max_norm, numbers.Real) or max_norm < 0:
        raise ValueError(f"max_norm must be a non-negative number, but got {max_norm!r}")
    if not isinstance(norm_type, numbers.Real) or norm_type <= 0:
        raise ValueError(f"norm_type must be a positive number or inf, but got {norm_type!r}")
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads) ** (1.0 / norm_type))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= np.asarray(coef, dtype=g.dtype)
    return total
