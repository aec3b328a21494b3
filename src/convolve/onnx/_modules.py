"""The modules an imported graph is made of: each holds its node's weights as Parameters (trainable)
and its forward is one call into `convolve.functional`, with ONNX's attributes already normalised."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import as_array
from ..nn.module import Module
from ..nn.parameter import Parameter

__all__ = ["Conv", "ConvTranspose", "BatchNorm", "Gemm", "MatMul", "PRelu", "Bias", "same_pads"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _param(a):
    # a writable copy: ONNX's arrays are views of the read-only file bytes, and optimisers update in place
    return None if a is None else Parameter(np.array(a, order="C"))


def same_pads(spatial, kernel, stride, dilation, lower: bool):
    """ONNX auto_pad SAME_UPPER / SAME_LOWER: output = ceil(in / stride); the odd pixel at the end (UPPER)
    or the beginning (LOWER)."""
    pairs = []
    for n, k, s, d in zip(spatial, kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        pairs.append((big, small) if lower else (small, big))
    return tuple(pairs)


class Conv(Module):
    """ONNX Conv in 1-3 spatial dims: ``weight`` (C_out, C_in/groups, *k), ``bias`` (C_out,).

    Shape
    -----
    (N, C_in, *spatial) -> (N, C_out, *out_spatial).
    """

    def __init__(self, weight, bias, stride, pads, dilation, groups, auto_pad=None):
        super().__init__()
        self.weight, self.bias = _param(weight), _param(bias)
        self.nd = weight.ndim - 2
        self.stride, self.pads, self.dilation, self.groups, self.auto_pad = stride, pads, dilation, groups, auto_pad

    def forward(self, x):
        return self.run(x, self.weight, self.bias)

    def run(self, x, weight, bias):
        """This layer's convolution with other weights (the inference plan's folded ones)."""
        pads = self.pads
        if self.auto_pad:
            pads = same_pads(as_array(x).shape[2:], as_array(weight).shape[2:], self.stride, self.dilation,
                             self.auto_pad == "SAME_LOWER")
        return _CONV[self.nd](x, weight, bias, self.stride, pads, self.dilation, self.groups)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, stride={self.stride}, pads={self.pads}, groups={self.groups}"


class ConvTranspose(Module):
    """ONNX ConvTranspose: ``weight`` (C_in, C_out/groups, *k), PyTorch's transposed layout.

    Shape
    -----
    (N, C_in, *spatial) -> (N, C_out, *out_spatial).
    """

    def __init__(self, weight, bias, stride, pads, dilation, groups, output_padding):
        super().__init__()
        self.weight, self.bias = _param(weight), _param(bias)
        self.nd = weight.ndim - 2
        self.stride, self.pads, self.dilation = stride, pads, dilation
        self.groups, self.output_padding = groups, output_padding

    def forward(self, x):
        return _CONVT[self.nd](x, self.weight, self.bias, self.stride, self.pads, self.output_padding,
                               self.groups, self.dilation)


class BatchNorm(Module):
    """ONNX BatchNormalization at inference: running statistics are buffers, scale/shift Parameters.

    Shape
    -----
    (N, C, *) -> same.
    """

    def __init__(self, weight, bias, running_mean, running_var, eps):
        super().__init__()
        self.weight, self.bias = _param(weight), _param(bias)
        self.register_buffer("running_mean", np.array(running_mean))
        self.register_buffer("running_var", np.array(running_var))
        self.eps = float(eps)

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class Gemm(Module):
    """ONNX Gemm ``alpha * A' B' + beta * C`` stored as a PyTorch Linear: ``weight`` (out, in), ``bias``.

    Shape
    -----
    (N, in) -> (N, out).
    """

    def __init__(self, weight, bias, alpha=1.0, beta=1.0, trans_a=False):
        super().__init__()
        self.weight, self.bias = _param(weight), _param(bias)
        self.alpha, self.beta, self.trans_a = float(alpha), float(beta), bool(trans_a)

    def forward(self, a):
        if self.trans_a:
            a = a.T
        if self.alpha == 1.0 and self.beta == 1.0 and (self.bias is None or self.bias.ndim == 1):
            return F.linear(a, self.weight, self.bias)
        y = F.linear(a, self.weight) * self.alpha
        return y if self.bias is None else y + self.bias * self.beta


class MatMul(Module):
    """``x @ weight`` with a learned right-hand side (K, M).

    Shape
    -----
    (*, K) -> (*, M).
    """

    def __init__(self, weight):
        super().__init__()
        self.weight = _param(weight)

    def forward(self, x):
        return x @ self.weight


class Bias(Module):
    """``x + bias``: the learned shift that follows a MatMul.

    Shape
    -----
    Broadcast of x and bias.
    """

    def __init__(self, bias):
        super().__init__()
        self.bias = _param(bias)

    def forward(self, x):
        return x + self.bias


class PRelu(Module):
    """ONNX PRelu with one slope per channel (or one for all).

    Shape
    -----
    (N, C, *) -> same.
    """

    def __init__(self, weight):
        super().__init__()
        self.weight = _param(weight)

    def forward(self, x):
        return F.prelu(x, self.weight)
