"""Convolution algorithms behind one interface.

Every algorithm is a module (or object) implementing `_algorithm.Algorithm`, for channels-first,
already padded input:

- ``name`` (what ``algorithm=`` takes) and ``local`` (meets the numerical-locality policy below);
- ``supports(op, x_shape, w_shape, stride, dilation, groups)`` -> None, or a sentence saying why not;
- ``workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize)`` -> bytes of temporaries;
- ``cost(op, x_shape, w_shape, stride, dilation, groups, itemsize)`` -> estimated seconds, from the
  machine model in `_cost`;
- ``forward(x, w, bias, stride, dilation, groups) -> y``
- ``grad_input(gy, w, x_shape, stride, dilation, groups) -> dL/dx``
- ``grad_weight(x, gy, w_shape, stride, dilation, groups) -> dL/dw``

Shapes: x (N, C, *S), w (O, C/groups, *K), y (N, O, *P) with
P = floor((S - dilation·(K-1) - 1) / stride) + 1.

Algorithms (`select.REGISTRY`): ``reference`` (the oracle), ``gemm`` (im2col), ``kn2row``
(shift-GEMM), ``winograd2`` and ``winograd4`` (F(2x2,3x3), F(4x4,3x3)), ``fft``, ``depthwise`` and
``direct`` (tap by tap, no im2col). Compiled kernels (numba, `kernels`) run inside winograd4, direct
and depthwise when the tier is on; their NumPy twins otherwise. `select.choose` takes the least `cost` among those that support a call; `chunks` runs it under the
memory cap. Adding an algorithm is one module plus one line in `select.REGISTRY`. Algorithms that
use the stride-1 "wide" layout take it from `windows` (`wide_applies` guards it).

Numerical locality (the policy the automatic choice keeps; docs/speed.md). For every output p of
an automatically chosen algorithm: where the exact result is NaN or inf, ours is too; where no NaN or
inf lies within ``reach`` positions (one tile) of p's window, ours is finite and within 64·u·A(p) of
the exact value, u the dtype's unit roundoff and A(p) the largest Σ|w|·|x| over the windows within
``reach`` of p. Algorithms that meet it say ``local = True``; the global FFT does not (its rounding
follows the loudest value of the whole plane, one NaN reaches every output) and runs only when asked
for: ``algorithm="fft"`` or ``engine_config.set_precision("fast")``. tests/test_locality.py checks it.

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

from . import chunks
from .config import settings
from .select import ALGORITHMS, choose, tune

__all__ = ["forward", "grad_input", "grad_weight", "ALGORITHMS", "choose"]


def _dispatch(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm, run):
    if algorithm is None and settings["autotune"]:
        return tune(op, x_shape, w_shape, stride, dilation, groups, dtype, run)
    return run(choose(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm))


def forward(x, w, bias, stride, dilation, groups, algorithm=None):
    stride, dilation = tuple(stride), tuple(dilation)
    return _dispatch("forward", x.shape, w.shape, stride, dilation, groups, x.dtype, algorithm,
                     lambda a: chunks.forward(a, x, w, bias, stride, dilation, groups, settings["memory_limit"]))


def grad_input(gy, w, x_shape, stride, dilation, groups, algorithm=None):
    stride, dilation, x_shape = tuple(stride), tuple(dilation), tuple(x_shape)
    return _dispatch("grad_input", x_shape, w.shape, stride, dilation, groups, gy.dtype, algorithm,
                     lambda a: chunks.grad_input(a, gy, w, x_shape, stride, dilation, groups, settings["memory_limit"]))


def grad_weight(x, gy, w_shape, stride, dilation, groups, algorithm=None):
    stride, dilation, w_shape = tuple(stride), tuple(dilation), tuple(w_shape)
    return _dispatch("grad_weight", x.shape, w_shape, stride, dilation, groups, x.dtype, algorithm,
                     lambda a: chunks.grad_weight(a, x, gy, w_shape, stride, dilation, groups, settings["memory_limit"]))
