"""Shift-GEMM (kn2row): one GEMM per kernel tap, accumulated into one output; ~1x extra memory.

With stride 1 no input is copied: in the wide layout of `windows` (flattened spatial axes), kernel
tap k reads x at flat offset ``off_k`` for every output position, so ``x_flat[:, off_k : off_k + L]``
is a plain matrix view (row stride prod(S)) that BLAS takes as is. The output is computed on the
wide grid and its junk columns dropped at the end. Otherwise (stride > 1, or a non-finite factor
that the gradients' junk zeros would multiply, see `windows.wide_applies`) each tap's input slice is
copied (C·P per tap, not C·K·P at once).
"""

from __future__ import annotations

import numpy as np

from . import _cost
from .parallel import matmul
from .windows import out_size, tap_slices, wide_applies, wide_crop, wide_geometry, wide_grid

__all__ = ["name", "local", "reach", "supports", "workspace", "cost", "forward", "grad_input", "grad_weight"]

name = "kn2row"
local = True  # each output is a sum of per-tap products over its own window
reach = 0
PENALTY = 1.5  # its K·N separate GEMMs each wait for the BLAS threads; on a busy machine that costs most


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None: every convolution is supported."""
    return None


def _outs(x_shape, w_shape, stride, dilation):
    return tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Bytes: the accumulator and one tap's product (wide or strided), a tap copy, a contiguous input."""
    N, C, O = x_shape[0], x_shape[1], w_shape[0]
    if all(s == 1 for s in stride):
        outs, grid = wide_geometry(x_shape, w_shape, dilation)[:2]
        L = int(np.prod(grid))
        big = N * (2 * O + C) * L  # wide output + one tap's product (+ the wide input gradient)
    else:
        P = int(np.prod(_outs(x_shape, w_shape, stride, dilation)))
        big = N * (2 * O + 2 * C) * P
    return (big + N * int(np.prod(x_shape[1:]))) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: K·N·G thin GEMMs, the accumulation passes and (strided) the tap copies."""
    N, C = x_shape[:2]
    O, Cg = w_shape[:2]
    G, Og = groups, O // groups
    K = int(np.prod(w_shape[2:]))
    P = int(np.prod(_outs(x_shape, w_shape, stride, dilation)))
    b = itemsize
    if all(s == 1 for s in stride):
        L, copies = wide_geometry(x_shape, w_shape, dilation)[2], 0
    else:
        L, copies = P, 2 * K * N * C * P * b
    t = _cost.gemm_time(2 * N * O * Cg * K * L, b, Og, L, Cg, K * N * G)
    adds = {"forward": K * N * O * L, "grad_input": K * N * C * L, "grad_weight": N * O * L}[op]
    return PENALTY * (t + (3 * adds * b + copies) / _cost.MEM_RATE + 2 * K * _cost.CALL)


def _taps_first(w, groups, transpose=False):
    """(O, Cg, *K) -> (K, G, Og, Cg) contiguous (or (K, G, Cg, Og)): one matrix per tap and group."""
    O, Cg = w.shape[:2]
    wk = w.reshape(groups, O // groups, Cg, -1).transpose(3, 0, 1, 2)
    return np.ascontiguousarray(wk.swapaxes(2, 3) if transpose else wk)


def _tap(a, k, stride, dilation, outs, groups):
    """Tap k's input positions of a (N, C, *S) as a contiguous (N, G, C/G, P) copy."""
    N, C = a.shape[:2]
    t = np.ascontiguousarray(a[(slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)])
    return t.reshape(N, groups, C // groups, -1)


def forward(x, w, bias, stride, dilation, groups):
    N, C = x.shape[:2]
    O, G, kernel = w.shape[0], groups, w.shape[2:]
    wk = _taps_first(w, G)  # (K, G, Og, Cg)
    wide = wide_applies(stride)
    if wide:
        outs, grid, L, offsets = wide_geometry(x.shape, w.shape, dilation)
        xf = np.ascontiguousarray(x).reshape(N, G, C // G, -1)
        taps = (xf[..., off : off + L] for off in offsets)
        full = np.empty((N, G, O // G, int(np.prod(grid))), dtype=x.dtype)
        acc = full[..., :L]
    else:
        outs = _outs(x.shape, w.shape, stride, dilation)
        taps = (_tap(x, k, stride, dilation, outs, G) for k in np.ndindex(*kernel))
        acc = np.empty((N, G, O // G, int(np.prod(outs))), dtype=x.dtype)
    tmp = np.empty(acc.shape, dtype=x.dtype)
    for i, xt in enumerate(taps):
        if i == 0:
            matmul(wk[0], xt, out=acc)
        else:
            matmul(wk[i], xt, out=tmp)
            acc += tmp
    if wide:
        y = np.ascontiguousarray(wide_crop(full.reshape((N, O) + grid), outs))
    else:
        y = acc.reshape((N, O) + outs)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    N, O = gy.shape[:2]
    C, G, kernel, outs = x_shape[1], groups, w.shape[2:], gy.shape[2:]
    wt = _taps_first(w, G, transpose=True)  # (K, G, Cg, Og)
    gx = np.zeros(x_shape, dtype=gy.dtype)
    if wide_applies(stride, w):
        _, grid, L, offsets = wide_geometry(x_shape, w.shape, dilation)
        gyw = wide_grid(gy, grid).reshape(N, G, O // G, -1)[..., :L]
        gxf = gx.reshape(N, G, C // G, -1)
        tmp = np.empty((N, G, C // G, L), dtype=gy.dtype)
        for i, off in enumerate(offsets):
            matmul(wt[i], gyw, out=tmp)
            gxf[..., off : off + L] += tmp
        return gx
    gym = np.ascontiguousarray(gy).reshape(N, G, O // G, -1)
    tmp = np.empty((N, G, C // G, gym.shape[-1]), dtype=gy.dtype)
    for i, k in enumerate(np.ndindex(*kernel)):
        matmul(wt[i], gym, out=tmp)
        gx[(slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)] += tmp.reshape((N, C) + outs)
    return gx


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    N, C = x.shape[:2]
    O, G, kernel, outs = w_shape[0], groups, w_shape[2:], gy.shape[2:]
    gw = np.empty((int(np.prod(kernel)), G, O // G, C // G), dtype=gy.dtype)
    if wide_applies(stride, x):
        _, grid, L, offsets = wide_geometry(x.shape, w_shape, dilation)
        gyw = wide_grid(gy, grid).reshape(N, G, O // G, -1)[..., :L]
        xf = np.ascontiguousarray(x).reshape(N, G, C // G, -1)
        for i, off in enumerate(offsets):
            gw[i] = matmul(gyw, xf[..., off : off + L].swapaxes(2, 3)).sum(axis=0)
    else:
        gym = np.ascontiguousarray(gy).reshape(N, G, O // G, -1)
        for i, k in enumerate(np.ndindex(*kernel)):
            gw[i] = matmul(gym, _tap(x, k, stride, dilation, outs, G).swapaxes(2, 3)).sum(axis=0)
    return gw.transpose(1, 2, 3, 0).reshape(w_shape)
