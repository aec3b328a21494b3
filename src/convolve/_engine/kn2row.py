"""Shift-GEMM (kn2row): one GEMM per kernel tap, accumulated into one output; ~1x extra memory.

With stride 1 no input is copied: flatten the spatial axes of x to one axis of length prod(S).
Kernel tap k reads x at flat offset ``off_k = Σ k_i·d_i·F_i`` (F the flat strides of S) for every
output position, so ``x_flat[:, off_k : off_k + L]`` is a plain matrix view (row stride prod(S))
that BLAS takes as is. The output is computed "wide", on L = Σ (P_i - 1)·F_i + 1 flat positions of
the input grid; the positions that are not output positions (beyond P_i along an axis) are dropped
at the end. With stride > 1 each tap's input slice is copied (C·P per tap, not C·K·P at once).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .windows import out_size, tap_slices

__all__ = ["name", "supports", "workspace", "forward", "grad_input", "grad_weight"]

name = "kn2row"


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None: every convolution is supported."""
    return None


def _geometry(spatial, outs, kernel, dilation):
    """Flat strides F of the input grid, the wide length L and one flat offset per tap."""
    F = tuple(int(np.prod(spatial[i + 1 :])) for i in range(len(spatial)))
    L = sum((o - 1) * f for o, f in zip(outs, F)) + 1
    offsets = [sum(k * d * f for k, d, f in zip(tap, dilation, F)) for tap in np.ndindex(*kernel)]
    return F, L, offsets


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    N, C, O = x_shape[0], x_shape[1], w_shape[0]
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))
    if all(s == 1 for s in stride):
        L = _geometry(x_shape[2:], outs, w_shape[2:], dilation)[1]
        big = N * (2 * O + C) * L  # wide output + one tap's product (+ the wide input gradient)
    else:
        P = int(np.prod(outs))
        big = N * (2 * O + 2 * C) * P
    return (big + N * int(np.prod(x_shape[1:]))) * itemsize


def _taps_first(w, groups, transpose=False):
    """(O, Cg, *K) -> (K, G, Og, Cg) contiguous (or (K, G, Cg, Og)): one matrix per tap and group."""
    O, Cg = w.shape[:2]
    wk = w.reshape(groups, O // groups, Cg, -1).transpose(3, 0, 1, 2)
    return np.ascontiguousarray(wk.swapaxes(2, 3) if transpose else wk)


def _wide(a, outs, F, L):
    """(N, O, *P) -> zero-filled wide (N, O, L) with a[..., p] at flat position Σ p_i·F_i."""
    wide = np.zeros(a.shape[:2] + (L,), dtype=a.dtype)
    view = as_strided(wide, a.shape, wide.strides[:2] + tuple(f * wide.itemsize for f in F))
    view[...] = a
    return wide


def _narrow(wide, outs, F):
    """Inverse of `_wide`: pick the output positions out of (N, O, L)."""
    view = as_strided(wide, wide.shape[:2] + tuple(outs), wide.strides[:2] + tuple(f * wide.itemsize for f in F))
    return np.ascontiguousarray(view)


def forward(x, w, bias, stride, dilation, groups):
    N, C = x.shape[:2]
    O, G, kernel = w.shape[0], groups, w.shape[2:]
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x.shape[2:], kernel, stride, dilation))
    wk = _taps_first(w, G)  # (K, G, Og, Cg)
    if all(s == 1 for s in stride):
        F, L, offsets = _geometry(x.shape[2:], outs, kernel, dilation)
        xf = np.ascontiguousarray(x).reshape(N, G, C // G, -1)
        taps = (xf[..., off : off + L] for off in offsets)
        acc_shape = (N, G, O // G, L)
    else:
        P = int(np.prod(outs))
        taps = (np.ascontiguousarray(x[(slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)]).reshape(N, G, C // G, P)
                for k in np.ndindex(*kernel))
        acc_shape = (N, G, O // G, P)
    acc = np.empty(acc_shape, dtype=x.dtype)
    tmp = np.empty_like(acc)
    for i, xt in enumerate(taps):
        if i == 0:
            np.matmul(wk[0], xt, out=acc)
        else:
            np.matmul(wk[i], xt, out=tmp)
            acc += tmp
    acc = acc.reshape(N, O, -1)
    y = _narrow(acc, outs, F) if all(s == 1 for s in stride) else acc.reshape((N, O) + outs)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    N, O = gy.shape[:2]
    C, G, kernel, outs = x_shape[1], groups, w.shape[2:], gy.shape[2:]
    wt = _taps_first(w, G, transpose=True)  # (K, G, Cg, Og)
    gx = np.zeros(x_shape, dtype=gy.dtype)
    if all(s == 1 for s in stride):
        F, L, offsets = _geometry(x_shape[2:], outs, kernel, dilation)
        gyw = _wide(gy, outs, F, L).reshape(N, G, O // G, L)
        gxf = gx.reshape(N, G, C // G, -1)
        tmp = np.empty((N, G, C // G, L), dtype=gy.dtype)
        for i, off in enumerate(offsets):
            np.matmul(wt[i], gyw, out=tmp)
            gxf[..., off : off + L] += tmp
        return gx
    P = int(np.prod(outs))
    gym = np.ascontiguousarray(gy).reshape(N, G, O // G, P)
    tmp = np.empty((N, G, C // G, P), dtype=gy.dtype)
    for i, k in enumerate(np.ndindex(*kernel)):
        np.matmul(wt[i], gym, out=tmp)
        gx[(slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)] += tmp.reshape((N, C) + outs)
    return gx


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    N, C = x.shape[:2]
    O, G, kernel, outs = w_shape[0], groups, w_shape[2:], gy.shape[2:]
    gw = np.empty((int(np.prod(kernel)), G, O // G, C // G), dtype=gy.dtype)
    if all(s == 1 for s in stride):
        F, L, offsets = _geometry(x.shape[2:], outs, kernel, dilation)
        gyw = _wide(gy, outs, F, L).reshape(N, G, O // G, L)
        xf = np.ascontiguousarray(x).reshape(N, G, C // G, -1)
        for i, off in enumerate(offsets):
            gw[i] = np.matmul(gyw, xf[..., off : off + L].swapaxes(2, 3)).sum(axis=0)
    else:
        P = int(np.prod(outs))
        gym = np.ascontiguousarray(gy).reshape(N, G, O // G, P)
        for i, k in enumerate(np.ndindex(*kernel)):
            xt = np.ascontiguousarray(x[(slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)])
            gw[i] = np.matmul(gym, xt.reshape(N, G, C // G, P).swapaxes(2, 3)).sum(axis=0)
    return gw.transpose(1, 2, 3, 0).reshape(w_shape)
