"""FFT convolution (scipy.fft): cost independent of the kernel size, for large kernels and long signals.

Correlation with a kernel is a product in frequency space: with real FFTs over the spatial axes of
size F >= S (no wrap-around reaches a valid position), ``Y[n, o] = Σ_c X[n, c] · conj(W[o, c])``.
The channel sum is a batched complex GEMM over frequencies, (N, C) @ (C, O) per frequency.
Dilation dilates the kernel with zeros; stride keeps every stride-th output of the stride-1 result.
Gradients: grad input is ``GY · W`` (a true convolution of the stride-spread output gradient),
grad weight is ``Σ_n conj(GY) · X`` (a correlation of the input with the output gradient).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from . import _cost
from .config import settings
from .parallel import matmul
from .windows import out_size

__all__ = ["name", "local", "reach", "supports", "workspace", "cost", "forward", "grad_input", "grad_weight"]

name = "fft"
local = False  # every output mixes the whole plane: rounding of the loudest values reaches all of them
reach = None  # unbounded
RATE = 8e9  # 2.5·n·log2(n) "flops" per second of a real FFT (2 workers)


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None: every convolution is supported."""
    return None


def _scipy_fft():
    """scipy.fft, imported on first use (``import convolve`` stays light)."""
    import scipy.fft

    return scipy.fft


def next_fast_len(n: int) -> int:
    """The smallest 5-smooth size >= n (2^a 3^b 5^c), as ``scipy.fft.next_fast_len(n, real=True)``:
    computed here so that the cost model does not import scipy.fft (tested equal to it)."""
    best, p5 = 2 * n, 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35  # the smallest p35 * 2^a >= n
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return max(best, 1) if n > 1 else 1


def _sizes(spatial):
    return tuple(next_fast_len(int(s)) for s in spatial)


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    N, C, O, Cg = x_shape[0], x_shape[1], w_shape[0], w_shape[1]
    F = _sizes(x_shape[2:])
    nf = int(np.prod(F[:-1])) * (F[-1] // 2 + 1)
    complex_items = 2 * (2 * N * C + 2 * O * Cg + 3 * N * O) * nf  # spectra, their transposes, products
    return (complex_items + (N * C + 2 * N * O) * int(np.prod(F))) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: the transforms in and out at n·log n, the complex channel products, and the kernel
    spectra again for every piece the memory cap cuts the call into (in for forward and grad input,
    out for grad weight: every other transform is of the piece's own part of the data)."""
    N, C, O, Cg = x_shape[0], x_shape[1], w_shape[0], w_shape[1]
    Og, b = O // groups, itemsize
    F = _sizes(x_shape[2:])
    nF = math.prod(F)
    nf = nF // F[-1] * (F[-1] // 2 + 1)
    # arrays transformed in (a_: the batch operand, b_: the other) and out (c_)
    a_, b_, c_ = {"forward": (N * C, O * Cg, N * O), "grad_input": (N * O, O * Cg, N * C),
                  "grad_weight": (N * C, N * O, O * Cg)}[op]
    per_array = 2.5 * nF * math.log2(max(nF, 2)) / RATE + 2 * 2 * b * nf * 2 / _cost.MEM_RATE
    mm = 8 * N * Og * Cg * groups * nf / (_cost.GEMM_RATE[b] * _cost.efficiency(N, Og, Cg)) + nf * groups * _cost.BLAS_CALL
    pieces = _cost.pieces(op, sys.modules[__name__], x_shape, w_shape, stride, dilation, groups, b)
    return (a_ + b_ + c_) * per_array + mm + (pieces - 1) * O * Cg * per_array + 15 * _cost.CALL  # 3 FFTs, 5 copies, ...


def _dilated(w, dilation):
    if all(d == 1 for d in dilation):
        return w
    K = w.shape[2:]
    wd = np.zeros(w.shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(K, dilation)), dtype=w.dtype)
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w
    return wd


def _spread(gy, stride):
    """gy with stride-1 zeros between samples (the stride's adjoint)."""
    if all(s == 1 for s in stride):
        return gy
    up = np.zeros(gy.shape[:2] + tuple((p - 1) * s + 1 for p, s in zip(gy.shape[2:], stride)), dtype=gy.dtype)
    up[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = gy
    return up


def _rfft(a, F):
    axes = tuple(range(2, a.ndim))
    return _scipy_fft().rfftn(a, F, axes=axes, workers=settings["threads"])


def _irfft(A, F):
    axes = tuple(range(2, A.ndim))
    return _scipy_fft().irfftn(A, F, axes=axes, workers=settings["threads"])


def _freq_major(A, groups, transpose=False):
    """(B, C, *Fh) spectra -> (nf, G, B, C/G) (or (nf, G, C/G, B)) contiguous matrices per frequency."""
    B, C = A.shape[:2]
    A = A.reshape(B, groups, C // groups, -1)
    return np.ascontiguousarray(A.transpose(3, 1, 2, 0) if transpose else A.transpose(3, 1, 0, 2))


def _kernel_major(Wf, groups, transpose=False):
    """(O, Cg, *Fh) kernel spectra -> (nf, G, Og, Cg) (or (nf, G, Cg, Og)) contiguous."""
    O, Cg = Wf.shape[:2]
    W = Wf.reshape(groups, O // groups, Cg, -1)
    return np.ascontiguousarray(W.transpose(3, 0, 2, 1) if transpose else W.transpose(3, 0, 1, 2))


def _from_freq_major(Z, Fh):
    """(nf, G, B, Cg) -> (B, G·Cg, *Fh)."""
    nf, G, B, Cg = Z.shape
    return Z.transpose(2, 1, 3, 0).reshape((B, G * Cg) + tuple(Fh))


def forward(x, w, bias, stride, dilation, groups):
    F = _sizes(x.shape[2:])
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x.shape[2:], w.shape[2:], stride, dilation))
    X = _rfft(x, F)  # (N, C, *Fh)
    Fh = X.shape[2:]
    Wf = _rfft(_dilated(w, dilation), F)  # (O, Cg, *Fh)
    Wc = _kernel_major(Wf, groups, transpose=True)
    Y = matmul(_freq_major(X, groups), np.conjugate(Wc, out=Wc))  # (nf, G, N, Og)
    y = _irfft(_from_freq_major(Y, Fh), F)  # (N, O, *F)
    y = np.ascontiguousarray(y[(slice(None), slice(None)) + tuple(slice(0, (p - 1) * s + 1, s) for p, s in zip(outs, stride))])
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    F = _sizes(x_shape[2:])
    GY = _rfft(_spread(gy, stride), F)  # (N, O, *Fh)
    Wf = _rfft(_dilated(w, dilation), F)  # (O, Cg, *Fh): per group (Og, Cg) matrices
    GX = matmul(_freq_major(GY, groups), _kernel_major(Wf, groups))  # (nf, G, N, Cg)
    gx = _irfft(_from_freq_major(GX, GY.shape[2:]), F)
    return np.ascontiguousarray(gx[(slice(None), slice(None)) + tuple(slice(0, s) for s in x_shape[2:])])


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    F = _sizes(x.shape[2:])
    X = _rfft(x, F)  # (N, C, *Fh)
    GY = _rfft(_spread(gy, stride), F)  # (N, O, *Fh)
    GYc = _freq_major(GY, groups, transpose=True)
    GW = matmul(np.conjugate(GYc, out=GYc), _freq_major(X, groups))  # (nf, G, Og, Cg)
    GW = GW.transpose(1, 2, 3, 0).reshape(tuple(w_shape[:2]) + X.shape[2:])
    gw = _irfft(GW, F)  # (O, Cg, *F)
    K = w_shape[2:]
    return np.ascontiguousarray(gw[(slice(None), slice(None)) + tuple(slice(0, d * (k - 1) + 1, d) for k, d in zip(K, dilation))])

