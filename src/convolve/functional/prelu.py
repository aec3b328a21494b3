"""PReLU: a leaky ReLU whose negative slope is learned, one per channel (PyTorch semantics)."""

from __future__ import annotations

import numpy as np

from .._shared.types import ArrayOrTensor, TensorLike
from ..autograd import as_array, record
from ._args import as_input, float_dtype

__all__ = ["prelu"]


def prelu(input: TensorLike, weight: TensorLike) -> ArrayOrTensor:
    """x where x > 0, else ``weight[c] * x`` with c the channel (axis 1).

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, *) or, with fewer than 2 dimensions, one channel.
    weight : ndarray or Tensor
        (C,) slopes, or (1,) shared by every channel.

    Shape
    -----
    Output has the input's shape and dtype; ``weight.grad`` has weight's shape.
    """
    x, w = as_input(input, "input"), as_input(weight, "weight")
    dtype = float_dtype("input", x)
    if float_dtype("weight", w) != dtype:
        raise TypeError(f"input has dtype {dtype} but weight has dtype {as_array(w).dtype}; they must match")
    a, wa = as_array(x), as_array(w)
    channels = a.shape[1] if a.ndim >= 2 else 1
    if wa.ndim != 1 or wa.size not in (1, channels):
        raise ValueError(
            f"weight must have shape (1,) or ({channels},) (one slope per channel of input {a.shape}), "
            f"but got {wa.shape}"
        )
    shape = (1, -1) + (1,) * (a.ndim - 2) if a.ndim >= 2 and wa.size > 1 else (1,) * max(a.ndim, 1)
    slope = wa.reshape(shape) if a.ndim else wa.reshape(())
    neg = a <= 0
    out = np.where(neg, a * slope, a)

    def backward(g):
        gx = np.where(neg, g * slope, g)
        gw_full = np.where(neg, g * a, 0)
        if wa.size == 1:
            gw = gw_full.sum().reshape(wa.shape)
        else:
            gw = gw_full.sum(axis=tuple(i for i in range(a.ndim) if i != 1))
        return gx, gw

    return record(out.astype(dtype, copy=False), (x, w), backward)
