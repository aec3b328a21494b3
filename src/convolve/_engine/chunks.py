"""Bounded memory: run one algorithm call in pieces so its temporaries stay under the cap.

Each algorithm reports the bytes of temporaries a call needs (`workspace`). When that exceeds the
cap, the call is split over the batch; when a single sample is still too big, over blocks of output
rows (the first spatial axis), each block reading only the input rows its windows cover. Forward
pieces are written into the output, grad-input pieces added into their (overlapping) input rows,
grad-weight pieces summed. One output row of one sample is the smallest piece.
"""

from __future__ import annotations

import numpy as np

from .windows import out_size

__all__ = ["smallest_piece", "plan", "forward", "grad_input", "grad_weight"]


def _rows_in(rows, stride, dilation, kernel):
    """Input rows that `rows` output rows read along the first spatial axis."""
    return (rows - 1) * stride + dilation * (kernel - 1) + 1


def smallest_piece(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Bytes of temporaries for one output row of one sample: the least any chunking can need."""
    sub = (1, x_shape[1], min(x_shape[2], _rows_in(1, stride[0], dilation[0], w_shape[2]))) + tuple(x_shape[3:])
    return algo.workspace(op, sub, w_shape, stride, dilation, groups, itemsize)


def plan(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, cap, out_rows):
    """(batch chunk, row chunk): None for the row chunk when whole samples fit."""
    ws = algo.workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize)
    N = x_shape[0]
    if ws <= cap:
        return N, None
    one = (1,) + tuple(x_shape[1:])
    per = algo.workspace(op, one, w_shape, stride, dilation, groups, itemsize)
    if per <= cap:  # part of `per` is fixed (kernel spectra, transformed kernels): count it once
        fixed = max(0, per - (ws - per) / (N - 1)) if N > 1 else 0
        return max(1, int((cap - fixed) // max(1, per - fixed))), None
    rows = max(1, int(out_rows * cap // per))
    while rows > 1:
        sub = (1, x_shape[1], _rows_in(rows, stride[0], dilation[0], w_shape[2])) + tuple(x_shape[3:])
        if algo.workspace(op, sub, w_shape, stride, dilation, groups, itemsize) <= cap:
            break
        rows = max(1, rows // 2)
    if rows == 1:
        least = smallest_piece(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize)
        if least > cap:
            raise ValueError(
                f"algorithm {algo.name!r} needs at least {least / 2**20:.1f} MiB of temporaries for this "
                f"convolution (input {tuple(x_shape)}, weight {tuple(w_shape)}), above the memory limit of "
                f"{cap / 2**20:.1f} MiB; raise the limit (convolve.engine_config.set_memory_limit) or let the "
                f"engine choose the algorithm"
            )
    return 1, rows


def _row_blocks(out_rows, rows, stride, dilation, kernel):
    for r0 in range(0, out_rows, rows):
        r1 = min(out_rows, r0 + rows)
        yield slice(r0, r1), slice(r0 * stride, r0 * stride + _rows_in(r1 - r0, stride, dilation, kernel))


def forward(algo, x, w, bias, stride, dilation, groups, cap):
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x.shape[2:], w.shape[2:], stride, dilation))
    nb, rows = plan("forward", algo, x.shape, w.shape, stride, dilation, groups, x.itemsize, cap, outs[0])
    N = x.shape[0]
    if rows is None and nb >= N:
        return algo.forward(x, w, bias, stride, dilation, groups)
    y = np.empty((N, w.shape[0]) + outs, dtype=x.dtype)
    for n0 in range(0, N, nb):
        n = slice(n0, n0 + nb)
        if rows is None:
            y[n] = algo.forward(x[n], w, bias, stride, dilation, groups)
            continue
        for ro, ri in _row_blocks(outs[0], rows, stride[0], dilation[0], w.shape[2]):
            y[n, :, ro] = algo.forward(x[n, :, ri], w, bias, stride, dilation, groups)
    return y


def grad_input(algo, gy, w, x_shape, stride, dilation, groups, cap):
    x_shape = tuple(x_shape)
    nb, rows = plan("grad_input", algo, x_shape, w.shape, stride, dilation, groups, gy.itemsize, cap, gy.shape[2])
    N = x_shape[0]
    if rows is None and nb >= N:
        return algo.grad_input(gy, w, x_shape, stride, dilation, groups)
    gx = np.zeros(x_shape, dtype=gy.dtype)
    for n0 in range(0, N, nb):
        n = slice(n0, n0 + nb)
        sub = (len(range(N)[n]),) + x_shape[1:]
        if rows is None:
            gx[n] = algo.grad_input(gy[n], w, sub, stride, dilation, groups)
            continue
        for ro, ri in _row_blocks(gy.shape[2], rows, stride[0], dilation[0], w.shape[2]):
            piece = sub[:2] + (ri.stop - ri.start,) + sub[3:]
            gx[n, :, ri] += algo.grad_input(gy[n, :, ro], w, piece, stride, dilation, groups)
    return gx


def grad_weight(algo, x, gy, w_shape, stride, dilation, groups, cap):
    w_shape = tuple(w_shape)
    nb, rows = plan("grad_weight", algo, x.shape, w_shape, stride, dilation, groups, x.itemsize, cap, gy.shape[2])
    N = x.shape[0]
    if rows is None and nb >= N:
        return algo.grad_weight(x, gy, w_shape, stride, dilation, groups)
    gw = np.zeros(w_shape, dtype=gy.dtype)
    for n0 in range(0, N, nb):
        n = slice(n0, n0 + nb)
        if rows is None:
            gw += algo.grad_weight(x[n], gy[n], w_shape, stride, dilation, groups)
            continue
        for ro, ri in _row_blocks(gy.shape[2], rows, stride[0], dilation[0], w_shape[2]):
            gw += algo.grad_weight(x[n, :, ri], gy[n, :, ro], w_shape, stride, dilation, groups)
    return gw
