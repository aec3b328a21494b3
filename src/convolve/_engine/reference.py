"""The reference convolution: the formula z = b + Σ w·x, one output position at a time.

Slow and obviously correct; tests use it as an oracle, the library never picks it by default.
All arrays are channels-first and already padded: x (N, C, *S), w (O, C/groups, *K).
"""

from __future__ import annotations

import numpy as np

from .windows import out_size

name = "reference"
local = True  # the formula itself; but only tests pick it (see `select.AUTOMATIC`)
reach = 0


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None: every convolution is supported."""
    return None


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """One window of the batch at a time."""
    return x_shape[0] * x_shape[1] * int(np.prod(w_shape[2:])) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: one tensordot per output position and group."""
    P = int(np.prod([out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation)]))
    return P * groups * 20e-6


def _positions(x_shape, w_shape, stride, dilation):
    nd = len(w_shape) - 2
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))
    for pos in np.ndindex(*outs):
        # the window of input pixels under the kernel at output position `pos`
        window = tuple(slice(p * st, p * st + d * (k - 1) + 1, d) for p, st, d, k in zip(pos, stride, dilation, w_shape[2:]))
        yield pos, window, nd
    return outs


def _out_shape(x_shape, w_shape, stride, dilation):
    return (x_shape[0], w_shape[0]) + tuple(
        out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation)
    )


def forward(x, w, bias, stride, dilation, groups):
    """y[n, o, p] = b[o] + Σ_{c,k} w[o, c, k] · x[n, g·Cg + c, p·stride + k·dilation]."""
    O, Cg = w.shape[:2]
    Og = O // groups
    y = np.zeros(_out_shape(x.shape, w.shape, stride, dilation), dtype=x.dtype)
    for pos, window, nd in _positions(x.shape, w.shape, stride, dilation):
        for g in range(groups):
            xs = x[(slice(None), slice(g * Cg, (g + 1) * Cg)) + window]  # (N, Cg, *K)
            ws = w[g * Og : (g + 1) * Og]  # (Og, Cg, *K)
            z = np.tensordot(xs, ws, axes=(list(range(1, nd + 2)), list(range(1, nd + 2))))  # (N, Og)
            y[(slice(None), slice(g * Og, (g + 1) * Og)) + pos] = z
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    """dL/dx: every output position hands its gradient back to the window it read, times w."""
    O, Cg = w.shape[:2]
    Og = O // groups
    gx = np.zeros(x_shape, dtype=gy.dtype)
    for pos, window, nd in _positions(x_shape, w.shape, stride, dilation):
        for g in range(groups):
            gz = gy[(slice(None), slice(g * Og, (g + 1) * Og)) + pos]  # (N, Og)
            gx[(slice(None), slice(g * Cg, (g + 1) * Cg)) + window] += np.tensordot(gz, w[g * Og : (g + 1) * Og], axes=(1, 0))
    return gx


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    """dL/dw: Σ over batch and positions of (output gradient) x (the window it read)."""
    O, Cg = w_shape[:2]
    Og = O // groups
    gw = np.zeros(w_shape, dtype=gy.dtype)
    for pos, window, nd in _positions(x.shape, w_shape, stride, dilation):
        for g in range(groups):
            gz = gy[(slice(None), slice(g * Og, (g + 1) * Og)) + pos]  # (N, Og)
            xs = x[(slice(None), slice(g * Cg, (g + 1) * Cg)) + window]  # (N, Cg, *K)
            gw[g * Og : (g + 1) * Og] += np.tensordot(gz, xs, axes=(0, 0))
    return gw
