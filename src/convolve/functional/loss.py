"""Loss functions: cross-entropy (stable log-softmax, class weights, label smoothing), NLL and MSE.

Each loss is one recorded op with a closed-form gradient, vectorised over the batch.
"""

from __future__ import annotations

from typing import Any, Optional

import numbers

import numpy as np

from ..autograd import Tensor, as_array, record
from .._shared.types import ArrayOrTensor, TensorLike
from ._args import as_input, float_dtype, is_int
from .activation import _log_softmax_array

__all__ = ["cross_entropy", "nll_loss", "mse_loss"]

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, but got {reduction!r}")


def _class_input(input, op):
    """(N, C, *) or unbatched (C,) input -> (array view with a batch axis, dtype, batched)."""
    x = as_input(input, "input")
    dtype = float_dtype("input", x)
    a = as_array(x)
    if a.ndim == 0:
        raise ValueError(f"{op} expects input of shape (C,) or (N, C, *), but got a 0-D input")
    batched = a.ndim >= 2
    return x, (a if batched else a[None]), dtype, batched


def _class_weight(weight, C, dtype):
    if weight is None:
        return None
    w = as_array(weight)
    if not isinstance(w, np.ndarray):
        w = np.asarray(w)
    if w.shape != (C,):
        raise ValueError(f"weight must have shape ({C},) (one per class), but got {w.shape}")
    return w.astype(dtype, copy=False)


def _index_target(target, a, ignore_index, op):
    """Validate class-index targets against input `a` (N, C, *); return them as int64."""
    t = np.asarray(as_array(target))
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: class-index target must be an integer array, but got dtype {t.dtype}")
    expected = (a.shape[0],) + a.shape[2:]
    if t.shape != expected and not (t.ndim == 0 and expected == (1,)):
        raise ValueError(f"{op}: target must have shape {expected} for input of shape {a.shape}, but got {t.shape}")
    t = t.reshape(expected).astype(np.int64, copy=False)
    C = a.shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bad.any():
        raise ValueError(
            f"{op}: target values must be class indices in [0, {C - 1}] (or ignore_index={ignore_index}), "
            f"but got {t[bad].ravel()[0]}"
        )
    return t


def _onehot_coeff(t, a_shape, ignore_index, w, dtype):
    """Per-element weights of -log p for index targets: (N, C, *) with w[y] at the target class."""
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    wy = (w[safe] if w is not None else np.ones(t.shape, dtype)) * valid  # (N, *)
    q = np.zeros(a_shape, dtype)
    np.put_along_axis(q, safe[:, None], wy[:, None].astype(dtype, copy=False), axis=1)
    return q, wy, valid


def _record_class_loss(x, target, q, scores, denom, reduction, batched, dtype, row_grad):
    """Record ``loss_i = -Σ_c q[i, c] · scores[i, c]`` reduced by `reduction` ('mean' divides by `denom`).

    `x` is the input, `target` the target when it is a Tensor (it gets no gradient) or None.
    ``row_grad()`` gives d loss_i / d input[i] (N, C, *); the backward scales it by the incoming
    gradient, per element for 'none' and once for 'mean'/'sum'.
    """
    per = -np.einsum("nc...,nc...->n...", q, scores)  # (N, *d)
    if reduction == "none":
        out, factor = (per if batched else per[0]), None
    else:
        out, factor = per.sum(), 1.0
        if reduction == "mean":
            out, factor = out / denom, 1.0 / denom

    def backward(g):
        scale = np.asarray(g if factor is None else g * factor, dtype)
        if factor is None:
            scale = (scale if batched else scale[None])[:, None]  # (N, 1, *d)
        gx = row_grad() * scale
        return (gx if batched else gx[0]), None

    return record(np.asarray(out, dtype=dtype), (x, target), backward)


def cross_entropy(input: TensorLike, target: TensorLike, weight: Optional[TensorLike] = None,
                  ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0) -> ArrayOrTensor:
    """Cross-entropy between logits and class indices (or class probabilities).

    ``loss_i = -Σ_c q[i, c] · log_softmax(input)[i, c]`` where, for a class-index target y,
    ``q = (1 - ε) · w[y] · onehot(y) + ε/C · w`` (ε = `label_smoothing`, w = class weights or ones),
    and for a probability target ``q = w · ((1 - ε) · target + ε/C)``, as in PyTorch. The log-softmax
    is shifted by the max, so large logits do not overflow.

    Parameters
    ----------
    input : ndarray or Tensor
        Logits (N, C), (N, C, *d) or unbatched (C,).
    target : ndarray or Tensor
        Class indices (N,) / (N, *d) (integers; `ignore_index` entries contribute nothing), or class
        probabilities with the same shape as `input` (floats).
    weight : ndarray, optional
        (C,) weight per class.
    ignore_index : int
        Target value to skip (index targets only).
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weights of the non-ignored targets (index targets) or by the
        number of samples (probability targets), as PyTorch.
    label_smoothing : float in [0, 1]
        Share of the target mass spread evenly over the classes.

    Returns
    -------
    ndarray or Tensor
        The loss (a 0-D array for 'mean' and 'sum'); a Tensor when `input` is one.

    Shape
    -----
    - input: (N, C, *d); target: (N, *d) or (N, C, *d); output: scalar, or (N, *d) for 'none'.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> F.cross_entropy(logits, np.array([0, 2]), reduction="none")
    array([0.23954477, 1.09861229])
    """
    _check_reduction(reduction)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be a float in [0, 1], but got {label_smoothing!r}")
    if not is_int(ignore_index):
        raise TypeError(f"ignore_index must be an int, but got {ignore_index!r}")
    x, a, dtype, batched = _class_input(input, "cross_entropy")
    C = a.shape[1]
    w = _class_weight(weight, C, dtype)
    ta = np.asarray(as_array(target))
    eps = float(label_smoothing)
    wshape = (1, C) + (1,) * (a.ndim - 2)
    if ta.dtype.kind == "f":  # class probabilities
        if ta.shape != as_array(x).shape:
            raise ValueError(
                f"cross_entropy: a probability target must have the input's shape {as_array(x).shape}, but got {ta.shape}"
            )
        q = (ta if batched else ta[None]).astype(dtype, copy=False)
        if eps:
            q = q * (1 - eps) + eps / C
        if w is not None:
            q = q * w.reshape(wshape)
        denom = a.size // C
    else:
        t = _index_target(target, a, ignore_index, "cross_entropy")
        q, wy, valid = _onehot_coeff(t, a.shape, ignore_index, w, dtype)
        if eps:
            q *= 1 - eps
            smooth = (w if w is not None else np.ones(C, dtype)).reshape(wshape) * (eps / C)
            q += smooth * valid[:, None]
        denom = wy.sum()
    logp = _log_softmax_array(a, 1)
    # d loss_i / d x[i] = softmax_i · Σ_c q[i, c] - q[i]
    return _record_class_loss(x, target if isinstance(target, Tensor) else None, q, logp, denom, reduction,
                              batched, dtype, lambda: np.exp(logp) * q.sum(axis=1, keepdims=True) - q)


def nll_loss(input: TensorLike, target: TensorLike, weight: Optional[TensorLike] = None, ignore_index: int = -100,
             reduction: str = "mean") -> ArrayOrTensor:
    """Negative log-likelihood of class indices given log-probabilities.

    ``loss_i = -w[y_i] · input[i, y_i]``; 'mean' divides by Σ w[y_i] over non-ignored targets.

    Parameters
    ----------
    input : ndarray or Tensor
        Log-probabilities (N, C), (N, C, *d) or (C,).
    target : ndarray
        Class indices (N,) / (N, *d).
    weight, ignore_index, reduction
        As in :func:`cross_entropy`.

    Returns
    -------
    ndarray or Tensor
        The loss; a Tensor when `input` is one.

    Shape
    -----
    - input: (N, C, *d); target: (N, *d); output: scalar, or (N, *d) for 'none'.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.nll_loss(np.log(np.array([[0.5, 0.25, 0.25]])), np.array([1]))
    array(1.38629436)
    """
    _check_reduction(reduction)
    if not is_int(ignore_index):
        raise TypeError(f"ignore_index must be an int, but got {ignore_index!r}")
    x, a, dtype, batched = _class_input(input, "nll_loss")
    w = _class_weight(weight, a.shape[1], dtype)
    t = _index_target(target, a, ignore_index, "nll_loss")
    q, wy, _ = _onehot_coeff(t, a.shape, ignore_index, w, dtype)
    return _record_class_loss(x, None, q, a, wy.sum(), reduction, batched, dtype, lambda: -q)


def mse_loss(input: TensorLike, target: TensorLike, reduction: str = "mean") -> ArrayOrTensor:
    """Mean squared error ``(input - target)^2``, reduced by mean, sum or none.

    Both arguments may require grad. Their shapes must be equal (PyTorch would broadcast with a
    warning; that is almost always a bug, so it is refused here).

    Parameters
    ----------
    input, target : ndarray or Tensor
        Same shape and float dtype.
    reduction : {'mean', 'sum', 'none'}
        How the squared errors are combined.

    Returns
    -------
    ndarray or Tensor
        The loss; a Tensor when an argument is one.

    Shape
    -----
    - input, target: any shape, equal; output: scalar, or the input's shape for 'none'.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    array(2.5)
    """
    _check_reduction(reduction)
    x, y = as_input(input, "input"), as_input(target, "target")
    dtype = float_dtype("input", x)
    if float_dtype("target", y) != dtype:
        raise TypeError(f"input has dtype {dtype} but target has dtype {as_array(y).dtype}; they must match")
    if as_array(x).shape != as_array(y).shape:
        raise ValueError(
            f"mse_loss: input and target must have the same shape, but got {as_array(x).shape} and {as_array(y).shape}"
        )
    d = as_array(x) - as_array(y)
    if reduction == "none":
        out, scale = d * d, None
    else:
        out = np.asarray(np.dot(d.ravel(), d.ravel()), dtype)
        scale = 2.0 / d.size if reduction == "mean" and d.size else 2.0
        if reduction == "mean":
            out = np.asarray(out / d.size if d.size else np.nan, dtype)

    def backward(g):
        gd = 2 * g * d if scale is None else d * np.asarray(g * scale, dtype)
        return gd, -gd

    return record(out, (x, y), backward)
