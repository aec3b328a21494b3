"""Batch normalisation layers with PyTorch's running statistics."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple

import numpy as np

from .._shared.types import ArrayOrTensor, TensorLike
from .. import functional as F
from ..autograd import as_array
from .._shared.checks import check_bool, check_int
from ._layer import layer_dtype
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm(Module):
    ranks: Tuple[int, ...] = ()
    eps: float
    momentum: Optional[float]
    affine: bool
    track_running_stats: bool
    use_bias: bool
    weight: Any
    bias: Any

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True, dtype=None):
        super().__init__()
        self.num_features = check_int("num_features", num_features, minimum=1)
        if not isinstance(eps, numbers.Real) or eps < 0:
            raise ValueError(f"eps must be a non-negative number, but got {eps!r}")
        if momentum is not None and (not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be a number in [0, 1] or None (cumulative average), but got {momentum!r}")
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = check_bool("affine", affine)
        self.track_running_stats = check_bool("track_running_stats", track_running_stats)
        self.use_bias = self.affine and check_bool("bias", bias)
        dt = layer_dtype(dtype)
        if affine:
            self.weight = Parameter(np.ones(num_features, dt))
        else:
            self.register_parameter("weight", None)
        if self.use_bias:
            self.bias = Parameter(np.zeros(num_features, dt))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dt))
            self.register_buffer("running_var", np.ones(num_features, dt))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
        if self.use_bias:
            self.bias.data[...] = 0

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return self._forward(input, F.batch_norm)

    def _then_relu(self, input):
        """relu(self(input)) as one fused op (Sequential calls it for BatchNorm -> ReLU); None if it cannot."""
        if type(self).forward is not _BatchNorm.forward:
            return None
        return self._forward(input, F.batch_norm_relu)

    def _forward(self, input, op):
        ndim = as_array(input).ndim
        if ndim not in self.ranks:
            raise ValueError(
                f"{type(self).__name__} expects a {' or '.join(f'{r}-D' for r in self.ranks)} input, "
                f"but got {ndim}-D input of shape {as_array(input).shape}"
            )
        update = self.training and self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if update and self.momentum is None:  # cumulative moving average
            factor = 1.0 / float(self.num_batches_tracked + 1)
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        out = op(input, self.running_mean if keep else None, self.running_var if keep else None,
                           self.weight, self.bias, use_batch, factor, self.eps)
        if update:  # after the op succeeded, so a failing call changes nothing
            self.num_batches_tracked += 1
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.use_bias}, track_running_stats={self.track_running_stats}")


_DOC = """Batch normalisation over {what} (``F.batch_norm``).

``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel. Training mode normalises with the
batch statistics and updates ``running = (1 - momentum) * running + momentum * batch`` (unbiased
variance; ``momentum=None`` is a cumulative average); eval mode uses the running statistics.

Parameters
----------
num_features : int
    C, the number of channels.
eps : float
momentum : float or None
affine : bool
    Learn weight (ones) and bias (zeros).
bias : bool, keyword-only
    With ``affine``, also learn the bias (PyTorch 2.13's option; False keeps only the scale).
track_running_stats : bool
    Keep running_mean (zeros), running_var (ones) and num_batches_tracked buffers.
dtype : numpy float dtype, keyword-only

Shape
-----
- input, output: {shape}

Examples
--------
>>> import numpy as np, convolve.nn as nn
>>> bn = nn.{name}(3)
>>> y = bn(np.random.default_rng(0).normal(5.0, 2.0, {example}).astype(np.float32))
>>> type(y).__name__, bool(abs(y.data.mean()) < 1e-5)       # a Tensor: the layer's weight is one
('Tensor', True)
>>> bn.num_batches_tracked                                   # training mode: batch statistics were used
array(1)
"""


class BatchNorm1d(_BatchNorm):
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    ranks = (4,)


class BatchNorm3d(_BatchNorm):
    ranks = (5,)


BatchNorm1d.__doc__ = _DOC.format(what="(N, C) or (N, C, L)", shape="(N, C) or (N, C, L)", name="BatchNorm1d",
                                  example="(16, 3)")
BatchNorm2d.__doc__ = _DOC.format(what="(N, C, H, W)", shape="(N, C, H, W)", name="BatchNorm2d",
                                  example="(4, 3, 8, 8)")
BatchNorm3d.__doc__ = _DOC.format(what="(N, C, D, H, W)", shape="(N, C, D, H, W)", name="BatchNorm3d",
                                  example="(2, 3, 4, 4, 4)")
