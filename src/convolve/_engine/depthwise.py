"""Depthwise convolution (groups = in_channels): broadcast multiply-adds, one per kernel tap.

A depthwise layer does C·K multiply-adds per output position, too few for a GEMM to pay off.
Each tap is one broadcast ``y += w[:, k] · x[tap]`` over all channels at once (channel multipliers
O/C > 1 broadcast too). The work is cut into blocks of batch x channels that stay in cache
(`BLOCK_BYTES`), so the K passes over the output read cache rather than memory.

With stride 1 every tap is read as one flat, contiguous run of each input plane: output position
q on the padded grid reads ``x_flat[q + offset(tap)]``. The "wide" output then has a few junk
columns per row (the padded width, not the output width), dropped at the end; in exchange every
pass is one long contiguous loop instead of a short loop per output row (measured ~2x faster).
"""

from __future__ import annotations

import numpy as np

from . import _cost, direct, kernels
from .config import settings
from .parallel import map_blocks, sum_blocks
from .windows import out_size, tap_slices, wide_applies, wide_crop, wide_geometry, wide_grid

__all__ = ["name", "local", "reach", "supports", "workspace", "cost", "pads_inside", "forward", "grad_input",
           "grad_weight"]

name = "depthwise"
local = True  # each output is a sum over its own window
reach = 0
BLOCK_BYTES = 512 * 2**10  # per block (chosen by measurement: docs/speed.md, "Tuning constants")


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None if supported, else why not."""
    if groups != x_shape[1] or w_shape[1] != 1:
        return (f"depthwise supports only groups == in_channels (one input channel per kernel), but got "
                f"groups={groups}, in_channels={x_shape[1]}")
    return None


def _check(x_shape, w_shape, groups):
    reason = supports(None, x_shape, w_shape, None, None, groups)
    if reason is not None:
        raise ValueError(reason)


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Scratch of one block per thread (and per-thread weight-gradient sums); with stride 1 also the
    wide layout's output (or output-gradient copy) and a contiguous copy of a strided input."""
    ws = (settings["threads"] + 1) * 2 * BLOCK_BYTES + settings["threads"] * int(np.prod(w_shape)) * itemsize
    if all(s == 1 for s in stride):
        grid = wide_geometry(x_shape, w_shape, dilation)[1]
        ws += (x_shape[0] * w_shape[0] * int(np.prod(grid)) + int(np.prod(x_shape))) * itemsize
    return ws


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: K passes over the output held in cache, plus per-block call overhead; with the
    compiled tier, the multiply-adds at its rate (`direct.cost`)."""
    N, C, O = x_shape[0], x_shape[1], w_shape[0]
    K = int(np.prod(w_shape[2:]))
    P = int(np.prod(_cost.outs(x_shape, w_shape, stride, dilation)))
    if len(x_shape) == 4 and kernels.enabled():
        return direct.cost(op, x_shape, w_shape, stride, dilation, groups, itemsize)
    _, blocks = _blocks(N, C, (O // C) * P * itemsize)
    return 3 * K * N * O * P * itemsize / _cost.CACHE_RATE + len(blocks) * K * 2 * _cost.CALL


def _blocks(N, C, plane_bytes):
    """Block size (nb, cb) of about BLOCK_BYTES and the (batch slice, channel slice) blocks."""
    cb = max(1, min(C, BLOCK_BYTES // max(1, plane_bytes)))
    nb = max(1, min(N, BLOCK_BYTES // max(1, plane_bytes * C))) if cb == C else 1
    return (nb, cb), [(slice(n0, n0 + nb), slice(c0, c0 + cb)) for n0 in range(0, N, nb) for c0 in range(0, C, cb)]


def _geometry(x_shape, w_shape, stride, dilation):
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))
    taps = [(k, (slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)) for k in np.ndindex(*w_shape[2:])]
    return outs, taps


def _forward_wide(x, w, bias, dilation):
    N, C = x.shape[:2]
    O, nd = w.shape[0], x.ndim - 2
    M = O // C
    outs, grid, L, offsets = wide_geometry(x.shape, w.shape, dilation)
    xf = np.ascontiguousarray(x).reshape(N, C, 1, -1)
    y = np.empty((N, C, M, int(np.prod(grid))), dtype=x.dtype)
    wv = w.reshape(C, M, -1, 1)

    def block(b):
        ns, cs = b
        yb = y[ns, cs, :, :L]
        t = np.empty_like(yb)
        for i, off in enumerate(offsets):
            if i == 0:
                np.multiply(xf[ns, cs, :, off:off + L], wv[cs, :, i], out=yb)
            else:
                np.multiply(xf[ns, cs, :, off:off + L], wv[cs, :, i], out=t)
                yb += t

    map_blocks(block, _blocks(N, C, M * L * x.itemsize)[1])
    y = np.ascontiguousarray(wide_crop(y.reshape((N, O) + grid), outs))
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * nd)
    return y


def _grad_input_wide(gy, w, x_shape, dilation):
    N, C = x_shape[:2]
    O = w.shape[0]
    M = O // C
    outs, grid, L, offsets = wide_geometry(x_shape, w.shape, dilation)
    gw = wide_grid(gy, grid).reshape(N, C, M, -1)
    gx = np.zeros((N, C, int(np.prod(x_shape[2:]))), dtype=gy.dtype)
    wv = w.reshape(C, M, -1)

    def block(b):
        ns, cs = b
        gb, xb = gw[ns, cs, :, :L], gx[ns, cs]
        t = np.empty(gb.shape[:2] + (L,), dtype=gy.dtype)
        for i, off in enumerate(offsets):
            if M == 1:
                np.multiply(gb[:, :, 0], wv[cs, 0, i, None], out=t)
            else:
                np.einsum("ncml,cm->ncl", gb, wv[cs, :, i], out=t)
            xb[:, :, off:off + L] += t

    map_blocks(block, _blocks(N, C, M * L * gy.itemsize)[1])
    return gx.reshape(x_shape)


def _grad_weight_wide(x, gy, w_shape, dilation):
    N, C = x.shape[:2]
    O = w_shape[0]
    M = O // C
    outs, grid, L, offsets = wide_geometry(x.shape, w_shape, dilation)
    gw = wide_grid(gy, grid).reshape(N, C, M, -1)
    xf = np.ascontiguousarray(x).reshape(N, C, -1)

    def block(b):
        ns, cs = b
        gb = gw[ns, cs, :, :L]
        out = np.zeros((C, M, len(offsets)), dtype=gy.dtype)
        for i, off in enumerate(offsets):
            out[cs, :, i] = np.einsum("ncl,ncml->cm", xf[ns, cs, off:off + L], gb)
        return out

    return sum_blocks(block, _blocks(N, C, M * L * gy.itemsize)[1]).reshape(w_shape)


def _jit(a) -> bool:
    """Whether the compiled direct kernels (`kernels.direct`, groups = channels) run this call
    (2-D, float32/float64, the tier switched on)."""
    return a.ndim == 4 and a.dtype in (np.float32, np.float64) and kernels.enabled()


def _forward_jit(x, w, bias, stride, dilation):
    from .kernels import direct as kd

    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x.shape[2:], w.shape[2:], stride, dilation))
    y = np.empty((x.shape[0], w.shape[0]) + outs, dtype=x.dtype)
    b = np.zeros(w.shape[0], dtype=x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
    kd.run("forward", np.ascontiguousarray(x), np.ascontiguousarray(w, dtype=x.dtype), stride, dilation, x.shape[1], y, bias=b)
    return y


def pads_inside(op, pads, dilation, dtype) -> bool:
    """As `direct.pads_inside` (the same compiled kernels), the weight gradient too: each input plane
    is padded by the one job of its channel (two with a channel multiplier of 2)."""
    return direct.pads_inside(op, pads, dilation, dtype, ops=("forward", "grad_input", "grad_weight"))


def forward(x, w, bias, stride, dilation, groups, pads=None):
    _check(x.shape, w.shape, groups)
    if pads is not None:  # only when `pads_inside` said yes
        y = direct.padded_call("forward", x, w, None, stride, dilation, groups, pads, bias)
        if y is not None:
            return y
        x = direct.zero_padded(x, pads)
    if _jit(x):
        return _forward_jit(x, w, bias, stride, dilation)
    if wide_applies(stride):
        return _forward_wide(x, w, bias, dilation)
    N, C = x.shape[:2]
    O, nd = w.shape[0], x.ndim - 2
    M = O // C  # channel multiplier
    outs, taps = _geometry(x.shape, w.shape, stride, dilation)
    y = np.empty((N, C, M) + outs, dtype=x.dtype)
    wv = w.reshape((C, M) + w.shape[2:])
    ones = (1,) * nd

    def block(b):
        ns, cs = b
        xb, yb = x[ns, cs], y[ns, cs]
        t = np.empty_like(yb)
        for i, (k, sl) in enumerate(taps):
            wk = wv[(cs, slice(None)) + k].reshape((1,) + wv[cs].shape[:2] + ones)
            xt = xb[sl][:, :, None]  # (n, c, 1, *O)
            if i == 0:
                np.multiply(xt, wk, out=yb)
            else:
                np.multiply(xt, wk, out=t)
                yb += t

    map_blocks(block, _blocks(N, C, M * int(np.prod(outs)) * x.itemsize)[1])
    y = y.reshape((N, O) + outs)
    if bias is not None:
        y += bias.reshape((1, -1) + ones)
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups, pads=None):
    _check(x_shape, w.shape, groups)
    if pads is not None:  # only when `pads_inside` said yes: the unpadded x's gradient
        gx = direct.padded_call("grad_input", gy, w, x_shape, stride, dilation, groups, pads)
        if gx is not None:
            return gx
        full = tuple(x_shape[:2]) + tuple(s + a + b for s, (a, b) in zip(x_shape[2:], pads))
        return direct.unpadded(grad_input(gy, w, full, stride, dilation, groups), pads)
    if _jit(gy):
        from .kernels import direct as kd

        gx = np.empty(x_shape, dtype=gy.dtype)
        kd.run("grad_input", np.ascontiguousarray(gy), np.ascontiguousarray(w, dtype=gy.dtype), stride, dilation, x_shape[1], gx)
        return gx
    if wide_applies(stride, w):
        return _grad_input_wide(gy, w, x_shape, dilation)
    N, C = x_shape[:2]
    O, nd = w.shape[0], len(x_shape) - 2
    M = O // C
    outs, taps = _geometry(x_shape, w.shape, stride, dilation)
    sp = "xyz"[:nd]
    gx = np.zeros(x_shape, dtype=gy.dtype)
    gyv = gy.reshape((N, C, M) + outs)
    wv = w.reshape((C, M) + w.shape[2:])
    ones = (1,) * nd

    def block(b):
        ns, cs = b
        gb, xb = gyv[ns, cs], gx[ns, cs]
        t = np.empty(gb.shape[:2] + outs, dtype=gy.dtype)
        for k, sl in taps:
            wk = wv[(cs, slice(None)) + k].reshape((1,) + wv[cs].shape[:2] + ones)
            if M == 1:
                np.multiply(gb[:, :, 0], wk[:, :, 0], out=t)
            else:
                np.einsum(f"ncm{sp},cm->nc{sp}", gb, wv[(cs, slice(None)) + k], out=t)
            xb[sl] += t

    map_blocks(block, _blocks(N, C, M * int(np.prod(outs)) * gy.itemsize)[1])
    return gx


def grad_weight(x, gy, w_shape, stride, dilation, groups, pads=None):
    _check(x.shape, w_shape, groups)
    if x.shape[0] == 0:  # an empty batch: no blocks to sum
        return np.zeros(w_shape, dtype=gy.dtype)
    if pads is not None:  # only when `pads_inside` said yes
        gw = direct.padded_call("grad_weight", x, gy, w_shape, stride, dilation, groups, pads)
        if gw is not None:
            return gw
        x = direct.zero_padded(x, pads)
    if _jit(x):
        from .kernels import direct as kd

        gw = np.empty(w_shape, dtype=gy.dtype)
        kd.run("grad_weight", np.ascontiguousarray(x), np.ascontiguousarray(gy, dtype=x.dtype), stride, dilation, x.shape[1], gw)
        return gw
    if wide_applies(stride, x):
        return _grad_weight_wide(x, gy, w_shape, dilation)
    N, C = x.shape[:2]
    O = w_shape[0]
    M = O // C
    outs, taps = _geometry(x.shape, w_shape, stride, dilation)
    gyv = gy.reshape((N, C, M) + outs)
    sp = "xyz"[: x.ndim - 2]

    def block(b):  # this block's share of the sum over batch and positions
        ns, cs = b
        gb, xb = gyv[ns, cs], x[ns, cs]
        gw = np.zeros((C, M, len(taps)), dtype=gy.dtype)
        for i, (k, sl) in enumerate(taps):
            gw[cs, :, i] = np.einsum(f"nc{sp},ncm{sp}->cm", xb[sl], gb)
        return gw

    return sum_blocks(block, _blocks(N, C, M * int(np.prod(outs)) * gy.itemsize)[1]).reshape(w_shape)
