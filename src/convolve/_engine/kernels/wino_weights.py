"""Compiled Winograd weight transform: U = G g Gᵀ for every 3x3 kernel (computed on every call).

Each (output, input channel) pair is 9 weights in, 36 transformed values out: a few hundred flops, so
the pass should cost one read of the weights and one write of U. The NumPy twin (two tensordots and a
transposing copy into the GEMM layout (a², O, Cg)) measured 0.24 ms for 64x64 channels and 0.95 ms for
128x128 (loaded host), as much as the tile transforms of a batch-1 layer; this kernel, vectors over
the input channels (contiguous in U's planes), 0.04 and 0.14 ms. The adjoint (the weight gradient's
dg = Gᵀ dU G, once per backward pass) stays two tensordots: compiled the same way it was not faster.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit_parallel

__all__ = ["kernel"]

_parallel = njit_parallel(fastmath={"contract"})


@_parallel
def kernel(wt, G, U):
    """U (a², O, Cg) <- G g Gᵀ of every kernel g = wt[o, :, c] (its 9 taps, row-major); wt (O, 9, Cg),
    G (a, 3). Vectors over the input channels c: contiguous in wt and in U's planes."""
    O, Cg = wt.shape[0], wt.shape[2]
    a = G.shape[0]
    for o in prange(O):
        t = np.empty((3 * a, Cg), dtype=U.dtype)  # t = G g: row 3 i + k
        wo = wt[o]
        for i in range(a):
            g0, g1, g2 = G[i, 0], G[i, 1], G[i, 2]
            for k in range(3):
                ti, w0, w1, w2 = t[3 * i + k], wo[k], wo[3 + k], wo[6 + k]
                for c in range(Cg):
                    ti[c] = g0 * w0[c] + g1 * w1[c] + g2 * w2[c]
        for i in range(a):  # U = t Gᵀ
            t0, t1, t2 = t[3 * i], t[3 * i + 1], t[3 * i + 2]
            for j in range(a):
                u, h0, h1, h2 = U[a * i + j, o], G[j, 0], G[j, 1], G[j, 2]
                for c in range(Cg):
                    u[c] = t0[c] * h0 + t1[c] * h1 + t2[c] * h2
