"""Linear map, batch normalisation and dropout (PyTorch semantics).

Each is one recorded op with a hand-written, vectorised backward: no Python loop over samples.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numbers

import numpy as np

from .. import autograd
from .._engine import norm as _norm
from .._engine.parallel import matmul as _matmul
from .._shared.types import ArrayOrTensor, TensorLike
from ..autograd import Tensor, as_array, record
from .._shared.random import generator_or_shared
from ._args import as_input, float_dtype

__all__ = ["linear", "batch_norm", "batch_norm_relu", "dropout"]


def _same_dtype(dtype, **named):
    for name, t in named.items():
        if t is not None and float_dtype(name, t) != dtype:
            raise TypeError(
                f"input has dtype {dtype} but {name} has dtype {as_array(t).dtype}; they must match "
                f"(convert with .astype(np.{dtype}))"
            )


def linear(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None) -> ArrayOrTensor:
    """y = x W^T + b over the last axis.

    Parameters
    ----------
    input : ndarray or Tensor
        (*, in_features).
    weight : ndarray or Tensor
        (out_features, in_features).
    bias : ndarray or Tensor, optional
        (out_features,).

    Shape
    -----
    - input: (*, in_features)
    - output: (*, out_features)
    """
    x, w = as_input(input, "input"), as_input(weight, "weight")
    b = None if bias is None else as_input(bias, "bias")
    dtype = float_dtype("input", x)
    _same_dtype(dtype, weight=w, bias=b)
    xa, wa, ba = as_array(x), as_array(w), as_array(b)
    if wa.ndim != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), but got shape {wa.shape}")
    if xa.ndim < 1 or xa.shape[-1] != wa.shape[1]:
        raise ValueError(
            f"input's last dimension must equal weight's in_features={wa.shape[1]}, but got input of shape {xa.shape}"
        )
    if ba is not None and ba.shape != (wa.shape[0],):
        raise ValueError(f"bias must have shape ({wa.shape[0]},), but got {ba.shape}")
    y = _matmul(xa, wa.T)  # on the engine's threads (BLAS's own may wake late)
    if ba is not None:
        y += ba

    def backward(g):
        g2 = g.reshape(-1, g.shape[-1])
        gx = _matmul(g, wa) if isinstance(x, Tensor) and x.requires_grad else None
        gw = _matmul(g2.T, xa.reshape(-1, xa.shape[-1])) if isinstance(w, Tensor) and w.requires_grad else None
        gb = g2.sum(axis=0) if ba is not None else None
        return gx, gw, gb

    return record(y, (x, w, b), backward)


def _channel_dot(u, v):
    """Σ over every axis but 1 of u·v, as one BLAS-friendly contraction: (N, C, *) x2 -> (C,)."""
    N, C = u.shape[:2]
    return np.einsum("ncl,ncl->c", u.reshape(N, C, -1), v.reshape(N, C, -1))


def _check_stat(name, t, C):
    if t is not None and as_array(t).shape != (C,):
        raise ValueError(f"{name} must have shape ({C},) (one per channel), but got {as_array(t).shape}")


def batch_norm(input: TensorLike, running_mean: Optional[np.ndarray], running_var: Optional[np.ndarray],
               weight: Optional[TensorLike] = None, bias: Optional[TensorLike] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> ArrayOrTensor:
    """Normalise each channel by its batch (training) or running (eval) statistics.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel. In training mode mean and var are
    the batch's (biased var for normalising) and, when given, the running estimates are updated in
    place: ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* batch variance,
    exactly as PyTorch. In eval mode the running estimates are used.

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C) or (N, C, *spatial).
    running_mean, running_var : ndarray or None
        (C,) arrays updated in place in training mode; required in eval mode.
    weight, bias : ndarray or Tensor, optional
        (C,) affine scale and shift.
    training : bool
    momentum : float
        Weight of the new batch statistic in the running estimate.
    eps : float
        Added to the variance for stability.

    Shape
    -----
    - input, output: (N, C, *) -- statistics are over every axis but C.
    """
    x = _check_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, relu=False)


def batch_norm_relu(input: TensorLike, running_mean: Optional[np.ndarray], running_var: Optional[np.ndarray],
                    weight: Optional[TensorLike] = None, bias: Optional[TensorLike] = None, training: bool = False,
                    momentum: float = 0.1, eps: float = 1e-5) -> ArrayOrTensor:
    """``relu(batch_norm(...))`` as one op: what ``Sequential`` runs for a BatchNorm followed by a ReLU.

    Same arguments, checks and results as the two calls; the compiled tier then makes one pass
    forward and one backward instead of two each.

    Shape
    -----
    - input, output: (N, C, *).
    """
    x = _check_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, relu=True)


def _check_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps):
    """Every check of batch_norm, before any work; returns the input as an array or Tensor."""
    x = as_input(input, "input")
    dtype = float_dtype("input", x)
    _same_dtype(dtype, weight=weight, bias=bias)
    a = as_array(x)
    if a.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, *), but got {a.ndim}-D input of shape {a.shape}")
    C = a.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_stat(name, t, C)
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm in eval mode (training=False) needs running_mean and running_var")
    if not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"eps must be a non-negative number, but got {eps!r}")
    if not isinstance(momentum, numbers.Real) or not 0 <= float(momentum) <= 1:
        raise ValueError(f"momentum must be a number in [0, 1], but got {momentum!r}")
    if training and a.size // C <= 1:
        raise ValueError(f"batch_norm in training mode needs more than 1 value per channel, but got input of shape {a.shape}")
    return x


def _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, relu):
    a = as_array(x)
    if _norm.usable(a):
        return _batch_norm_compiled(x, running_mean, running_var, weight, bias, training, momentum, eps, relu)
    out = _batch_norm_numpy(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return autograd.relu(out) if relu else out


def _batch_norm_compiled(x, running_mean, running_var, weight, bias, training, momentum, eps, relu):
    """batch_norm (and the ReLU after it) in the compiled tier: one pass forward, one backward."""
    a = as_array(x)
    w, b = as_array(weight), as_array(bias)
    stats: Tuple[Optional[np.ndarray], Optional[np.ndarray]] = (None, None)  # training: the batch's
    if not training:
        stats = (np.asarray(as_array(running_mean), np.float64), np.asarray(as_array(running_var), np.float64))
    y, x3, mean, var, invstd, scale = _norm.forward(a, *stats, w, b, eps, relu)
    if training and running_mean is not None:
        count = a.size // a.shape[1]
        rm, rv = as_array(running_mean), as_array(running_var)
        rm *= 1 - momentum
        rm += (momentum * mean).astype(rm.dtype, copy=False)
        rv *= 1 - momentum
        rv += (momentum * var * (count / (count - 1))).astype(rv.dtype, copy=False)
    saved_y = y if relu else None  # only the ReLU's mask reads the output

    def backward(g):
        need = isinstance(x, Tensor) and x.requires_grad
        gx, gdot, gsum = _norm.backward(g, x3, saved_y if relu else x3, mean, invstd, scale, relu, training, need)
        gw = gdot.astype(a.dtype) if w is not None else None
        gb = gsum.astype(a.dtype) if b is not None else None
        return (gx.reshape(a.shape) if need else None), gw, gb

    return record(y.reshape(a.shape), (x, weight, bias), backward, saves_output=relu)


def _batch_norm_numpy(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """The NumPy twin of the compiled batch norm (`convolve._engine.norm`)."""
    a = as_array(x)
    dtype, C = a.dtype, a.shape[1]
    axes = (0,) + tuple(range(2, a.ndim))
    count = a.size // C
    shape = (1, C) + (1,) * (a.ndim - 2)
    if training:
        mean = a.mean(axis=axes)
        centred = a - mean.reshape(shape)
        var = _channel_dot(centred, centred) / count  # one pass, no temporary square
        if running_mean is not None:
            rm, rv = as_array(running_mean), as_array(running_var)
            rm *= 1 - momentum
            rm += momentum * mean.astype(rm.dtype, copy=False)
            rv *= 1 - momentum
            rv += momentum * (var * (count / (count - 1))).astype(rv.dtype, copy=False)
    else:
        mean = as_array(running_mean).astype(dtype, copy=False)
        var = as_array(running_var).astype(dtype, copy=False)
        centred = a - mean.reshape(shape)
    invstd = (1.0 / np.sqrt(var + eps)).astype(dtype, copy=False)
    w, b = as_array(weight), as_array(bias)
    scale = invstd if w is None else invstd * w
    y = centred * scale.reshape(shape)
    if b is not None:
        y += b.reshape(shape)

    def backward(g):
        gsum = g.sum(axis=axes)
        gxhat_sum = _channel_dot(g, centred) * invstd  # sum(g * xhat)
        gw = gxhat_sum if w is not None else None
        gb = gsum if b is not None else None
        if not (isinstance(x, Tensor) and x.requires_grad):
            return None, gw, gb
        if not training:
            return g * scale.reshape(shape), gw, gb
        # d/dx of the normalised batch: (scale / M) * (M g - sum g - xhat * sum(g xhat))
        k = (gxhat_sum * invstd / count).reshape(shape)
        gx = g - (gsum / count).reshape(shape)
        gx -= centred * k
        gx *= scale.reshape(shape)
        return gx, gw, gb

    return record(y, (x, weight, bias), backward)


def dropout(input: TensorLike, p: float = 0.5, training: bool = True, *,
            generator: Optional[np.random.Generator] = None) -> ArrayOrTensor:
    """Zero each element with probability `p` and scale the rest by 1/(1-p) (identity when not training).

    Parameters
    ----------
    input : ndarray or Tensor
    p : float
        Drop probability, in [0, 1].
    training : bool
        When False the input is returned unchanged.
    generator : numpy.random.Generator, optional
        Source of the mask; defaults to ``convolve.nn.init``'s generator (seed it with
        ``convolve.nn.init.seed``).
    
    Shape
    -----
    Output has the input's shape and dtype.
    """
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability p must be between 0 and 1, but got {p!r}")
    x = as_input(input, "input")
    float_dtype("input", x)
    if not training or p == 0:
        return x
    a = as_array(x)
    if p == 1:
        keep = np.zeros(a.shape, a.dtype)
    else:
        generator = generator_or_shared(generator)
        keep = (generator.random(a.shape, dtype=np.float32) >= p) * np.asarray(1 / (1 - p), dtype=a.dtype)
        keep = keep.astype(a.dtype, copy=False)
    return record(a * keep, (x,), lambda g: (g * keep,))
