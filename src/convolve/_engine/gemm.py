"""im2col + GEMM: copy every window once into a column matrix, then one batched matrix product.

Layout: cols (N, G, Cg·K, P) so that y = W (G, Og, Cg·K) @ cols lands directly in NC(P) order.
The gradients reuse the same columns (see `convolve._engine` for the derivation).
"""

from __future__ import annotations

import numpy as np

from .windows import fold_windows, windows

name = "gemm"


def im2col(x, kernel, stride, dilation, groups):
    """(N, C, *S) -> columns (N, G, Cg·prod(K), prod(O)) and the output spatial shape O."""
    nd = len(kernel)
    N, C = x.shape[:2]
    win = windows(x, kernel, stride, dilation)  # (N, C, *O, *K) view
    outs = win.shape[2 : 2 + nd]
    perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    cols = win.transpose(perm).reshape(N, groups, (C // groups) * int(np.prod(kernel)), int(np.prod(outs)))
    return cols, outs


def forward(x, w, bias, stride, dilation, groups):
    N = x.shape[0]
    O = w.shape[0]
    cols, outs = im2col(x, w.shape[2:], stride, dilation, groups)
    y = np.matmul(w.reshape(groups, O // groups, -1), cols)  # (N, G, Og, P)
    y = y.reshape((N, O) + tuple(outs))
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups):
    N, O = gy.shape[:2]
    nd = gy.ndim - 2
    wm = w.reshape(groups, O // groups, -1)  # (G, Og, Cg·K)
    cols = np.matmul(wm.transpose(0, 2, 1), gy.reshape(N, groups, O // groups, -1))  # (N, G, Cg·K, P)
    cols = cols.reshape((N, x_shape[1]) + tuple(w.shape[2:]) + gy.shape[2:])
    return fold_windows(cols, x_shape[2:], stride, dilation)


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    N, O = gy.shape[:2]
    cols, _ = im2col(x, w_shape[2:], stride, dilation, groups)  # (N, G, Cg·K, P)
    gym = gy.reshape(N, groups, O // groups, -1)
    if groups == 1:  # one GEMM over (batch, position)
        gw = np.tensordot(gym[:, 0], cols[:, 0], axes=([0, 2], [0, 2]))
    else:
        gw = np.matmul(gym, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return gw.reshape(w_shape)
