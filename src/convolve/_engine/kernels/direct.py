"""Compiled direct convolution, 2-D: forward and both gradients as loops over taps, no im2col.

For small and thin layers (few channels, small kernels, small images: LeNet-sized) and depthwise
layers, the columns of im2col cost more to write than a GEMM saves. Here one plane is one job on
numba's threads: its accumulator and the input planes it reads stay in L1, and each tap is a
multiply-add of a whole row (contiguous and vectorised for stride 1). Each job's body is a separate
serial function: numba vectorises it there, not inside the parallel loop (measured 3-4x). The
``*_unit`` drivers pass stride and dilation 1 as constants, which the compiler folds into the body:
with them as run-time values the index arithmetic (negative-index checks) stops the vectorisation
(measured 2-30x slower on LeNet and depthwise planes).

Shapes: x (N, C, H, W) already padded, w (O, C/G, KH, KW), y or gy (N, O, OH, OW). The NumPy twin is
`convolve._engine.direct` (and `convolve._engine.depthwise` for groups = channels).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import direct_wide, njit, njit_parallel
from .threads import pick

__all__ = ["run", "run_padded", "forward", "grad_input", "grad_weight", "forward_unit", "grad_input_unit", "grad_weight_unit"]

_FLAGS = dict(fastmath={"contract"})  # fused multiply-adds; no other reordering, NaN/inf kept
_serial = njit(**_FLAGS)
_parallel = njit_parallel(**_FLAGS)


@_serial
def _forward_plane(x, w, bias, sh, sw, dh, dw, n, o, c0, acc):
    """acc (OH, OW) <- bias + Σ_{c, taps} w[o] · x[n] under the tap."""
    Cg, KH, KW = w.shape[1], w.shape[2], w.shape[3]
    OH, OW = acc.shape
    acc[:] = bias
    for ci in range(Cg):
        for kh in range(KH):
            for kw in range(KW):
                wk = w[o, ci, kh, kw]
                for oh in range(OH):
                    if sw == 1:  # contiguous: vectorised
                        for ow in range(OW):
                            acc[oh, ow] += wk * x[n, c0 + ci, oh * sh + kh * dh, kw * dw + ow]
                    else:
                        for ow in range(OW):
                            acc[oh, ow] += wk * x[n, c0 + ci, oh * sh + kh * dh, kw * dw + ow * sw]


@_parallel
def forward(x, w, bias, sh, sw, dh, dw, G, y):
    """y (N, O, OH, OW) <- Σ_{c in the group, taps} w · x under the tap, plus bias (length O)."""
    N = x.shape[0]
    O, Cg = w.shape[0], w.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    Og = O // G
    for job in prange(N * O):
        n, o = job // O, job % O
        acc = np.empty((OH, OW), dtype=y.dtype)
        _forward_plane(x, w, bias[o], sh, sw, dh, dw, n, o, (o // Og) * Cg, acc)
        y[n, o] = acc


@_parallel
def forward_unit(x, w, bias, G, y):
    """`forward` with stride 1 and dilation 1."""
    N = x.shape[0]
    O, Cg = w.shape[0], w.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    Og = O // G
    for job in prange(N * O):
        n, o = job // O, job % O
        acc = np.empty((OH, OW), dtype=y.dtype)
        _forward_plane(x, w, bias[o], 1, 1, 1, 1, n, o, (o // Og) * Cg, acc)
        y[n, o] = acc


@_serial
def _grad_input_plane(gy, w, sh, sw, dh, dw, n, c, ci, o0, o1, gxc):
    """gxc (H, W) <- Σ_{o in o0:o1, taps} w[o, ci] · gy[n, o], added where each output read."""
    KH, KW = w.shape[2], w.shape[3]
    OH, OW = gy.shape[2], gy.shape[3]
    gxc[:] = 0
    for o in range(o0, o1):
        for kh in range(KH):
            for kw in range(KW):
                wk = w[o, ci, kh, kw]
                for oh in range(OH):
                    if sw == 1:
                        for ow in range(OW):
                            gxc[oh * sh + kh * dh, kw * dw + ow] += wk * gy[n, o, oh, ow]
                    else:
                        for ow in range(OW):
                            gxc[oh * sh + kh * dh, kw * dw + ow * sw] += wk * gy[n, o, oh, ow]


@_parallel
def grad_input(gy, w, sh, sw, dh, dw, G, gx):
    """gx (N, C, H, W) <- Σ_{o in the group, taps} w · gy, added where each output read (gx zeroed here)."""
    N, C = gx.shape[0], gx.shape[1]
    O, Cg = w.shape[0], w.shape[1]
    Og = O // G
    for job in prange(N * C):
        n, c = job // C, job % C
        g = c // Cg
        _grad_input_plane(gy, w, sh, sw, dh, dw, n, c, c % Cg, g * Og, (g + 1) * Og, gx[n, c])


@_parallel
def grad_input_unit(gy, w, G, gx):
    """`grad_input` with stride 1 and dilation 1."""
    N, C = gx.shape[0], gx.shape[1]
    O, Cg = w.shape[0], w.shape[1]
    Og = O // G
    for job in prange(N * C):
        n, c = job // C, job % C
        g = c // Cg
        _grad_input_plane(gy, w, 1, 1, 1, 1, n, c, c % Cg, g * Og, (g + 1) * Og, gx[n, c])


@_serial
def _grad_weight_plane(x, gy, sh, sw, dh, dw, o, c, acc):
    """acc (KH, KW, OW) <- row-long partial sums over the batch of gy[:, o] · x[:, c] under each tap."""
    N = x.shape[0]
    KH, KW, OW = acc.shape
    OH = gy.shape[2]
    acc[:] = 0
    for n in range(N):
        for kh in range(KH):
            for kw in range(KW):
                for oh in range(OH):
                    if sw == 1:
                        for ow in range(OW):
                            acc[kh, kw, ow] += gy[n, o, oh, ow] * x[n, c, oh * sh + kh * dh, kw * dw + ow]
                    else:
                        for ow in range(OW):
                            acc[kh, kw, ow] += gy[n, o, oh, ow] * x[n, c, oh * sh + kh * dh, kw * dw + ow * sw]


@_parallel
def grad_weight(x, gy, sh, sw, dh, dw, G, gw):
    """gw (O, C/G, KH, KW) <- Σ_{n, positions} gy · x under each tap. Row-long partial sums per
    (o, c) job (vectorised), added up at the end in a fixed order."""
    O, Cg, KH, KW = gw.shape
    OW = gy.shape[3]
    Og = O // G
    for job in prange(O * Cg):
        o, ci = job // Cg, job % Cg
        acc = np.empty((KH, KW, OW), dtype=gw.dtype)
        _grad_weight_plane(x, gy, sh, sw, dh, dw, o, (o // Og) * Cg + ci, acc)
        for kh in range(KH):
            for kw in range(KW):
                gw[o, ci, kh, kw] = acc[kh, kw].sum()


@_parallel
def grad_weight_unit(x, gy, G, gw):
    """`grad_weight` with stride 1 and dilation 1."""
    O, Cg, KH, KW = gw.shape
    OW = gy.shape[3]
    Og = O // G
    for job in prange(O * Cg):
        o, ci = job // Cg, job % Cg
        acc = np.empty((KH, KW, OW), dtype=gw.dtype)
        _grad_weight_plane(x, gy, 1, 1, 1, 1, o, (o // Og) * Cg + ci, acc)
        for kh in range(KH):
            for kw in range(KW):
                gw[o, ci, kh, kw] = acc[kh, kw].sum()


def run(op, a, b, stride, dilation, groups, out, bias=None):
    """Call the `op` kernel ("forward", "grad_input", "grad_weight"), the ``*_unit`` one when stride
    and dilation are all 1 (the forward and the input gradient on the wide layout, `direct_wide`, where
    it pays); serially when the multiply-adds are few (`threads.pick`).
    a, b: (x, w), (gy, w) or (x, gy)."""
    # multiply-adds: every output-gradient (or output) element meets Cg·KH·KW taps
    y = out if op == "forward" else (a if op == "grad_input" else b)
    w_shape = b.shape if op != "grad_weight" else out.shape
    work = y.size * w_shape[1] * w_shape[2] * w_shape[3]
    if tuple(stride) == (1, 1) and tuple(dilation) == (1, 1):
        if op == "forward" and direct_wide.pays(a.shape[3], out.shape[3]):
            return pick(direct_wide.forward, work)(a, b, bias, groups, out)
        if op == "grad_input" and wide_grad_input(a.shape, b, groups):
            return pick(direct_wide.grad_input, work)(_gy_buffer(a, b.shape[3]), _exchanged(b, groups), groups, out)
        fn = pick(_UNIT[op], work)
        return fn(a, b, bias, groups, out) if op == "forward" else fn(a, b, groups, out)
    fn = pick(_GENERAL[op], work)
    if op == "forward":
        return fn(a, b, bias, *stride, *dilation, groups, out)
    return fn(a, b, *stride, *dilation, groups, out)


def run_padded(op, a, b, groups, top, left, out, bias=None):
    """`run` at stride 1 and dilation 1 on x zero-padded by `top` rows and `left` columns before (the
    rest after, as the shapes imply), without a padded copy: each job pads what it reads, or crops
    what it writes, in its own scratch (`direct_wide.forward_padded`, `direct_padded`). out: y, the
    unpadded x's gradient, or gw."""
    from . import direct_padded

    y = out if op == "forward" else (a if op == "grad_input" else b)
    w_shape = b.shape if op != "grad_weight" else out.shape
    work = y.size * w_shape[1] * w_shape[2] * w_shape[3]
    if op == "forward":
        return pick(direct_wide.forward_padded, work)(a, b, bias, groups, top, left, out)
    if op == "grad_weight":
        return pick(direct_padded.grad_weight_rows, work)(a, b, groups, top, left, out)
    KH, KW = b.shape[2:]
    if wide_grad_input(a.shape, b, groups):
        Hp, Wp = a.shape[2] + KH - 1, a.shape[3] + KW - 1
        return pick(direct_padded.grad_input_wide, work)(_gy_buffer(a, KW), _exchanged(b, groups), groups, Hp, Wp,
                                                         top, left, out)
    return pick(direct_padded.grad_input_rows, work)(a, b, groups, top, left, out)


_UNIT = {"forward": forward_unit, "grad_input": grad_input_unit, "grad_weight": grad_weight_unit}
_GENERAL = {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight}


WIDE_GRAD_MIN_TAPS = 16  # taps per input-gradient element (O/G·KH·KW) from which the wide input gradient pays


def wide_grad_input(gy_shape, w, groups) -> bool:
    """Whether the stride-1 input gradient runs on the wide layout (`direct_wide.grad_input`): enough
    taps per element to pay for the copy of gy into its buffer (MobileNet dw, 9 taps: level with the row
    kernel, 2.30 vs 2.35 ms; a 5x5 depthwise layer 3.9 vs 5.1; LeNet c2, 400 taps: 0.39 vs 1.44), rows of gy at least as long as the
    kernel's, and a finite kernel (the buffer's zeros are multiplied by the kernel: 0·inf would put
    NaN where the sum is finite)."""
    O, _, KH, KW = w.shape
    return (O // groups * KH * KW >= WIDE_GRAD_MIN_TAPS and gy_shape[3] >= KW and bool(np.isfinite(w).all()))


def _gy_buffer(gy, KW):
    """gy (N, O, OH, OW) as `direct_wide.grad_input` reads it: KW - 1 zeros, then gy's rows on rows of
    W = OW + KW - 1 (KW - 1 zeros after each), flattened."""
    N, O, OH, OW = gy.shape
    W = OW + KW - 1
    buf = np.zeros((N, O, OH * W + KW - 1), dtype=gy.dtype)
    buf[:, :, KW - 1:].reshape(N, O, OH, W)[:, :, :, :OW] = gy
    return buf


def _exchanged(w, groups):
    """(C, O/G, KH, KW): w with its columns reversed, in- and output channels exchanged per group."""
    O, Cg, KH, KW = w.shape
    wv = w[:, :, :, ::-1].reshape(groups, O // groups, Cg, KH, KW).swapaxes(1, 2)
    return np.ascontiguousarray(wv.reshape(groups * Cg, O // groups, KH, KW))
