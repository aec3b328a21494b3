"""Convolution algorithms behind one interface.

Every algorithm module provides, for channels-first, already padded input:

- ``forward(x, w, bias, stride, dilation, groups) -> y``
- ``grad_input(gy, w, x_shape, stride, dilation, groups) -> dL/dx``
- ``grad_weight(x, gy, w_shape, stride, dilation, groups) -> dL/dw``

Shapes: x (N, C, *S), w (O, C/groups, *K), y (N, O, *P) with
P = floor((S - dilation·(K-1) - 1) / stride) + 1.

Why the gradients are convolutions too. Write the forward pass as
``y[n, o, p] = Σ_{c,k} w[o, c, k] · x[n, c, s·p + d·k]``. It is linear in x and in w, so:

- dL/dw[o, c, k] = Σ_{n,p} gy[n, o, p] · x[n, c, s·p + d·k]: a correlation of the input with the
  output gradient (the output gradient plays the kernel, dilated by the stride).
- dL/dx[n, c, i] = Σ_{o,k,p: s·p + d·k = i} gy[n, o, p] · w[o, c, k]: the transposed convolution of the
  output gradient, i.e. a convolution of gy spread out by the stride (zeros between samples) with
  the flipped kernel, channels in and out exchanged. `fold_windows` performs exactly this sum.

The transposed convolution's forward is ``grad_input`` and its gradients are ``forward`` and
``grad_weight`` with the roles of input and output exchanged: one engine, three uses.
"""

from __future__ import annotations

from . import gemm, reference
from .select import ALGORITHMS, choose

__all__ = ["forward", "grad_input", "grad_weight", "ALGORITHMS", "choose"]


def forward(x, w, bias, stride, dilation, groups, algorithm=None):
    algo = choose("forward", x.shape, w.shape, stride, dilation, groups, x.dtype, algorithm)
    return algo.forward(x, w, bias, stride, dilation, groups)


def grad_input(gy, w, x_shape, stride, dilation, groups, algorithm=None):
    algo = choose("grad_input", tuple(x_shape), w.shape, stride, dilation, groups, gy.dtype, algorithm)
    return algo.grad_input(gy, w, tuple(x_shape), stride, dilation, groups)


def grad_weight(x, gy, w_shape, stride, dilation, groups, algorithm=None):
    algo = choose("grad_weight", x.shape, tuple(w_shape), stride, dilation, groups, x.dtype, algorithm)
    return algo.grad_weight(x, gy, tuple(w_shape), stride, dilation, groups)
