"""Winograd minimal filtering F(m x m, 3 x 3) for 2-D 3x3 stride-1 convolutions, m = 2 or 4.

Dilated 3x3 layers run as d² dilation-1 convolutions on the subsampled grids ``x[:, :, a::d, b::d]``.
With the compiled tier the tile transforms are numba kernels: for m = 4 (`kernels.winograd`) one
fused, parallel pass each, around the same BLAS batched products; for m = 2 (`kernels.winograd2`)
the forward's and the input gradient's, each tile's 16 values in registers. The slice code below
is their NumPy twin.

The costs leave the kernel transform out for weights marked constant (`constants`, an inference
plan's): it runs once. So ResNet-18's 256-channel 14x14 layers at batch 1 take F(2x2) in an imported
model (0.68 ms against gemm's 1.0 in the plan; its transformed kernel, 4.2 MB, is 16/9 of the
weights, F(4x4)'s 4 times), and im2col + GEMM when trained.

Each m x m output tile is ``Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`` for the (m+2) x (m+2) input tile d
and kernel g (Lavin & Gray, 2015). Summed over input channels, the elementwise product ⊙ becomes
(m+2)² independent matrix products ``M[ξ] = U[ξ] (O, C) @ V[ξ] (C, tiles)``: batched GEMMs doing
(m+2)²/(9m²) of the direct method's multiplications (4/9 for m = 2, 1/4 for m = 4).

The tile transforms are adds and subtracts on whole-array slices (one pass over the rows of every
tile, one over the columns), sharing common subexpressions, not matrix products.

Gradients: grad input is the same convolution of the zero-padded output gradient with the flipped,
transposed kernel; grad weight is the adjoint of the product, ``dU[ξ] = (A gY Aᵀ)[ξ] @ V[ξ]ᵀ``
summed over tiles, then ``dg = Gᵀ dU G``.

Accuracy: the transforms' constants (1/6, 1/24, 8) amplify rounding. Measured on a 64-channel
layer (max |error| / max |output| against float64): float32 F(2x2, 3x3) 3e-7 to 9e-7 (like
im2col), F(4x4, 3x3) 6e-6 to 7e-6, forward and both gradients; the tests bound them by 1e-5 and 1e-4. float64 stays
near 1e-14.
"""

from __future__ import annotations

import numpy as np

from . import _cost
from . import blas, constants, kernels
from .config import settings
from .parallel import lanes, map_blocks, matmul, matmul_in, sum_blocks

__all__ = ["Winograd", "F2", "F4"]

BLOCK_BYTES = 4 * 2**20  # transformed input + product tiles per block, kept near cache size
BLOCK_THREADS = 1  # blocks call `parallel.matmul`, which already uses every core
TILE_BYTE = {2: 0.37e-9, 4: 0.65e-9}  # seconds per byte of transformed tiles (V and M), both transforms
# seconds per byte of the transformed kernel U (thin products + transpose): in cache (U up to
# _cost.CACHE_BYTES; ~0.45 ns measured for F(4x4) with 64 and 128 channels (2.4 MB), 1 or 2 threads) and
# beyond (2 ns for F(2x2) with 256 channels (4.2 MB), 1.2-2.5 ns for F(4x4) with 256 and 512)
KERNEL_BYTE_CACHED, KERNEL_BYTE_MEMORY = 0.5e-9, 2e-9
JIT_KERNEL_BYTE = 0.1e-9  # the compiled weight transform (`kernels.wino_weights`): 0.05-0.07 ns measured, 64-256 channels
JIT_BLOCK_BYTES = 2 * 2**20  # compiled tier: transformed tiles (V or M) per block, at least ...
JIT_BLOCK_PER_U = 2  # ... this many times the transformed kernel U, which every block reads again
# compiled tier: seconds per byte of transformed tiles (V and M), both transforms, on the engine's threads
# (one thread measured 0.09-0.10 ns on 28x28 and larger planes, benchmarks/bench_wino_tiles.py) ...
JIT_TILE_BYTE = 0.06e-9
JIT_ROW_TILES = 9  # ... and more on narrow planes: x (1 + JIT_ROW_TILES / tiles per row) (0.15 ns at 14, 0.24 at 7)
JIT_CALL = 20e-6  # compiled tier: one parallel kernel launch
LANE_ITEM = 20e-6  # compiled tier in lanes: Python and dispatch per block (three serial kernels, a matmul)


def _launch(kernel, lanes, work):
    """A compiled transform for one block: its serial twin inside a lane, else the parallel kernel
    (serial too when the block is small, `threads.pick`)."""
    from .kernels.threads import pick

    return kernel.serial if lanes > 1 else pick(kernel, work)


# F(2x2)'s compiled transforms, both together, seconds per byte of V and M: 0.06 ns measured on one
# thread at 256 channels 14x14 and 512 at 7x7 (the NumPy twin's `TILE_BYTE[2]`: 0.37)
JIT2_TILE_BYTE = 0.06e-9
# F(2x2)'s transforms (a few adds per value) run on numba's threads from this many values: below, waking
# them measured slower (up to 512 channels at 7x7 and 256 at 14x14: 52-66 us against 23-52 serially)
JIT2_PARALLEL_MIN = 1 << 20


def lane_count(work) -> int:
    """Lanes (`parallel.lanes`) for a call whose transformed tiles hold `work` values: the engine's
    threads when BLAS can run single-threaded and the work pays for waking them, else one."""
    from .kernels.threads import PARALLEL_MIN

    if work < PARALLEL_MIN or not blas.controllable():
        return 1
    return settings["threads"]


def kernel_time(nbytes, jit=False) -> float:
    """Seconds to compute a transformed kernel U of `nbytes` (every call: the weights may change;
    none for weights marked constant, `_cost.constant_weights`, whose U is computed once)."""
    if _cost.weights_constant():
        return 0.0
    if jit:
        return nbytes * JIT_KERNEL_BYTE
    return nbytes * (KERNEL_BYTE_CACHED if nbytes <= _cost.CACHE_BYTES else KERNEL_BYTE_MEMORY)


# Transform matrices (Lavin & Gray, 2015). The slice code below implements exactly these; the tests
# check it against them.
BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float),
    4: np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=float),
}
GM = {
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}
AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=float),
}


def _bt2(d, o, t1, t2):
    """o = Bᵀ d for F(2, 3): d, o lists of 4 equal-shaped arrays (o written in place)."""
    np.subtract(d[0], d[2], out=o[0])
    np.add(d[1], d[2], out=o[1])
    np.subtract(d[2], d[1], out=o[2])
    np.subtract(d[1], d[3], out=o[3])


def _bt4(d, o, t1, t2):
    """o = Bᵀ d for F(4, 3) in 17 array passes (t1, t2 scratch of the output shape)."""
    np.subtract(d[4], d[2], out=t1)  # r = d4 - d2
    np.subtract(d[0], d[2], out=o[0])
    o[0] *= 4
    o[0] += t1  # 4 d0 - 5 d2 + d4
    np.subtract(d[3], d[1], out=t2)
    t2 *= 2  # s = 2 (d3 - d1)
    np.add(t1, t2, out=o[3])  # -2 d1 - d2 + 2 d3 + d4
    np.subtract(t1, t2, out=o[4])  # 2 d1 - d2 - 2 d3 + d4
    np.subtract(d[5], d[3], out=o[5])
    o[5] -= t2
    o[5] -= t2  # 4 d1 - 5 d3 + d5
    np.multiply(d[1], 4, out=t1)
    np.subtract(d[3], t1, out=t1)  # p = d3 - 4 d1
    np.multiply(d[2], 4, out=t2)
    np.subtract(d[4], t2, out=t2)  # q = d4 - 4 d2
    np.add(t2, t1, out=o[1])
    np.subtract(t2, t1, out=o[2])


def _at2(m, o, t):
    """o = Aᵀ m for F(2, 3): 4 arrays in, 2 out."""
    np.add(m[0], m[1], out=o[0])
    o[0] += m[2]
    np.subtract(m[1], m[2], out=o[1])
    o[1] -= m[3]


def _at4(m, o, t):
    """o = Aᵀ m for F(4, 3): 6 arrays in, 4 out (t: 4 scratch arrays)."""
    np.add(m[1], m[2], out=t[0])
    np.subtract(m[1], m[2], out=t[1])
    np.add(m[3], m[4], out=t[2])
    np.subtract(m[3], m[4], out=t[3])
    np.add(m[0], t[0], out=o[0])
    o[0] += t[2]
    np.multiply(t[3], 2, out=o[1])
    o[1] += t[1]
    np.multiply(t[2], 4, out=o[2])
    o[2] += t[0]
    np.multiply(t[3], 8, out=o[3])
    o[3] += t[1]
    o[3] += m[5]


def _lincomb(mat, d, o, scratch):
    """o[i] = Σ_j mat[i, j] d[j] for a small constant matrix (used for the gradient's A transform)."""
    for i, row in enumerate(mat):
        first = True
        for c, dj in zip(row, d):
            if c == 0:
                continue
            if first:
                np.multiply(dj, c, out=o[i])
                first = False
            elif c == 1:
                o[i] += dj
            elif c == -1:
                o[i] -= dj
            else:
                np.multiply(dj, c, out=scratch)
                o[i] += scratch


class Winograd:
    """The F(m x m, 3 x 3) algorithm behind the engine interface."""

    local = True  # an output depends on its own input tile only (tiles overlap by 2)

    def __init__(self, m):
        self.m, self.a = m, m + 2
        self.name = f"winograd{m}"
        self.reach = m + 1  # an input tile (m + 2 wide) feeds a whole output tile
        self._bt = _bt2 if m == 2 else _bt4
        self._at = _at2 if m == 2 else _at4

    def supports(self, op, x_shape, w_shape, stride, dilation, groups):
        """None if supported, else why not."""
        if len(w_shape) != 4 or tuple(w_shape[2:]) != (3, 3) or tuple(stride) != (1, 1):
            return (f"{self.name} supports only 2-D 3x3 kernels with stride 1 (any dilation), but got kernel "
                    f"{tuple(w_shape[2:])}, stride {tuple(stride)}, dilation {tuple(dilation)}")
        return None

    # A dilation-d convolution is d² dilation-1 convolutions on the subsampled grids
    # x[:, :, a::d, b::d] (output positions ≡ (a, b) mod d read only input positions ≡ (a, b) mod d).

    @staticmethod
    def _phases(shape, dilation):
        """(row phase, column phase, that phase's spatial shape) for every phase of `dilation` that
        some output falls on (3 or more positions along both axes)."""
        H, W = shape[2:]
        dh, dw = dilation
        rows, cols = range(max(0, min(dh, H - 2 * dh))), range(max(0, min(dw, W - 2 * dw)))
        return [(a, b, (len(range(a, H, dh)), len(range(b, W, dw)))) for a in rows for b in cols]

    @staticmethod
    def _phase_shapes(shape, dilation):
        """{phase shape: how many phases have it} over `_phases`, without listing them (a huge dilation
        has millions): along an axis of size n the used phases have ceil or floor n/d positions."""
        counts = []
        for n, d in zip(shape[2:], dilation):
            used = max(0, min(d, n - 2 * d))
            long = min(used, n % d)  # phases a < n % d hold one position more
            counts.append({k: c for k, c in ((n // d + 1, long), (n // d, used - long)) if c})
        return {(sh, sw): ch * cw for sh, ch in counts[0].items() for sw, cw in counts[1].items()}

    def _dilated(self, method, op, x_shape, w_shape, stride, dilation, groups, itemsize):
        """`method` (cost or workspace) of a dilated call: summed (cost) or largest (workspace) over phases."""
        shapes = self._phase_shapes(x_shape, dilation)
        parts = {S: method(op, tuple(x_shape[:2]) + S, w_shape, stride, (1, 1), groups, itemsize) for S in shapes}
        count = sum(shapes.values())
        jit = self._jit(np.float32 if itemsize == 4 else np.float64)
        if method == self.workspace:  # the NumPy twin copies each phase's input and result
            copies = 0 if jit else 2 * int(np.prod(x_shape)) // max(1, count) * itemsize
            return max(parts.values(), default=0) + copies
        total = sum(parts[S] * c for S, c in shapes.items())
        if jit and count > 1:  # the compiled tier transforms the kernel once for all phases
            total -= (count - 1) * kernel_time(self.a * self.a * w_shape[0] * w_shape[1] * itemsize, jit)
        return total

    def _tiles(self, H, W):
        return -(-(H - 2) // self.m), -(-(W - 2) // self.m)

    def workspace(self, op, x_shape, w_shape, stride, dilation, groups, itemsize):
        if tuple(dilation) != (1, 1):
            return self._dilated(self.workspace, op, x_shape, w_shape, stride, dilation, groups, itemsize)
        N, C, H, W = x_shape
        O, Cg = w_shape[:2]
        if op == "grad_input":
            C, O, H, W = O, C, H + 4, W + 4
        TH, TW = self._tiles(H, W)
        m, a = self.m, self.a
        if self._jit(np.float32 if itemsize == 4 else np.float64):  # each lane's block of V and M and dU; U
            blocks = self._jit_blocks(N, C, O, TH, TW, itemsize, Cg)
            most = max(((n1 - n0) * (t1 - t0) for n0, n1, t0, t1 in blocks), default=0)
            n = min(len(blocks), lane_count(a * a * (C + O) * N * TH * TW)) if blocks else 1
            return (n * a * a * (C + O) * most * TW + (1 + 2 * n) * a * a * O * Cg) * itemsize
        padded = N * C * (TH * m + 2) * (TW * m + 2) + N * O * TH * TW * m * m  # tile-aligned copies
        return (padded + a * a * O * Cg) * itemsize + 3 * BLOCK_BYTES

    def cost(self, op, x_shape, w_shape, stride, dilation, groups, itemsize):
        """Seconds: the (m+2)² batched GEMMs per block, the tile transforms at their measured byte
        rate, the kernel transform and per-block call overhead."""
        if tuple(dilation) != (1, 1):
            return self._dilated(self.cost, op, x_shape, w_shape, stride, dilation, groups, itemsize)
        N, C = x_shape[:2]
        O, Cg = w_shape[:2]
        Og, S, b = O // groups, x_shape[2:], itemsize
        m, a = self.m, self.a
        if op == "grad_input":  # a forward of the padded output gradient, channels exchanged
            C, O, Cg, Og, S = O, C, Og, Cg, tuple(s + 4 for s in S)
        TH, TW = self._tiles(*S)
        T = N * TH * TW
        if self._jit(np.float32 if b == 4 else np.float64):
            nb = max(1, len(self._jit_blocks(N, C, O, TH, TW, b, Cg)))
            n = min(nb, lane_count(a * a * (C + O) * T))
            U = a * a * O * Cg * b
            t = _cost.gemm_time(2 * a * a * O * Cg * T, b, Og, T // nb, Cg, a * a * groups * nb)
            t += (JIT_TILE_BYTE * (1 + JIT_ROW_TILES / TW) * a * a * (C + O) * T * b
                  * (1.5 if op == "grad_weight" else 1))
            # every block reads U again (from cache if it fits); one lane's blocks run one after the
            # other, each launching parallel kernels; lanes share the blocks and call the serial twins
            per_block = U / (_cost.CACHE_RATE if U <= _cost.CACHE_BYTES else _cost.MEM_RATE) + (
                LANE_ITEM if n > 1 else 3 * JIT_CALL)
            return t + kernel_time(U, True) + -(-nb // n) * per_block
        blocks = self._blocks(N, C, O, TH, TW, b)
        t = _cost.gemm_time(2 * a * a * O * Cg * T, b, Og, T // len(blocks), Cg, a * a * groups * len(blocks))
        if op != "grad_weight" and self._jit2(np.float32 if b == 4 else np.float64):
            # compiled transforms; every block's products read U and write M afresh
            U = a * a * O * Cg * b
            fresh = len(blocks) * (U if U > _cost.CACHE_BYTES else 0) + a * a * (C + O) * T * b
            t += JIT2_TILE_BYTE * a * a * (C + O) * T * b + fresh / _cost.MEM_RATE
            return t + kernel_time(U, True) + len(blocks) * 4 * _cost.CALL
        t += TILE_BYTE[m] * a * a * (C + O) * T * b * (1.5 if op == "grad_weight" else 1)
        t += kernel_time(a * a * O * Cg * b, kernels.enabled())  # U is compiled for F(2x2) too
        return t + len(blocks) * (8 * a + 40) * _cost.CALL

    # --- transforms --------------------------------------------------------------------------------

    def _padded(self, x, pad):
        """x zero-padded by `pad` and out to whole tiles: (N, C, TH·m + 2, TW·m + 2); a copy only if needed."""
        N, C, H, W = x.shape
        TH, TW = self._tiles(H + 2 * pad, W + 2 * pad)
        Hp, Wp = TH * self.m + 2, TW * self.m + 2
        if (Hp, Wp) == (H, W):
            return x, TH, TW
        xp = np.zeros((N, C, Hp, Wp), dtype=x.dtype)
        xp[:, :, pad : pad + H, pad : pad + W] = x
        return xp, TH, TW

    def _input_tiles(self, x):
        """V (a, a, C, N·TH·TW): Bᵀ d B for every input tile of a tile-aligned x (tiles overlap by 2)."""
        m, a = self.m, self.a
        N, C, Hp, Wp = x.shape
        TH, TW = (Hp - 2) // m, (Wp - 2) // m
        rows = np.empty((a, C, N, TH, Wp), dtype=x.dtype)  # Bᵀ over the rows of every tile
        t = np.empty((2, N, C, TH, Wp), dtype=x.dtype)
        self._bt([x[:, :, j : j + m * (TH - 1) + 1 : m] for j in range(a)],
                 [r.swapaxes(0, 1) for r in rows], t[0], t[1])
        V = np.empty((a, a, C, N, TH, TW), dtype=x.dtype)
        t = np.empty((2, C, N, TH, TW), dtype=x.dtype)
        for i in range(a):  # ... then over the columns
            self._bt([rows[i, ..., j : j + m * (TW - 1) + 1 : m] for j in range(a)], list(V[i]), t[0], t[1])
        return V.reshape(a, a, C, N * TH * TW)

    def _kernel(self, w):
        """U = G g Gᵀ, (a, a, O, Cg): one compiled pass over the weights, or two small BLAS products;
        computed once for weights marked constant (`constants`: an inference plan's)."""
        return constants.derived(w, ("winograd U", self.m), lambda: self._transform(w))

    def _transform(self, w):
        G = GM[self.m].astype(w.dtype)
        if w.dtype in (np.float32, np.float64) and kernels.enabled():
            from .kernels import wino_weights

            O, Cg = w.shape[:2]
            U = np.empty((self.a * self.a, O, Cg), dtype=w.dtype)
            wt = np.ascontiguousarray(w.reshape(O, Cg, 9).transpose(0, 2, 1))  # (O, 9, Cg): vectors over Cg
            _launch(wino_weights.kernel, 1, U.size // 16)(wt, G, U)  # a few flops per value: threads pay only when large
            return U.reshape((self.a, self.a, O, Cg))
        U = np.tensordot(np.tensordot(w, G, axes=([3], [1])), G, axes=([2], [1]))  # (O, Cg, a_j, a_i)
        return np.ascontiguousarray(U.transpose(3, 2, 0, 1))

    def _kernel_adjoint(self, dU, w_shape):
        """dg = Gᵀ dU G: the weight gradient (O, Cg, 3, 3) from dU (a, a, O, Cg) (or its (a², G, Og, Cg) view)."""
        a = self.a
        G = GM[self.m].astype(dU.dtype)
        gw = np.tensordot(np.tensordot(dU.reshape(a, a, *w_shape[:2]), G, axes=([0], [0])), G, axes=([0], [0]))
        return np.ascontiguousarray(gw).reshape(w_shape)

    def _output(self, M, Y):
        """Aᵀ M A for every tile: M (a, a, O, N, TH, TW) -> written into Y (N, O, TH·m, TW·m)."""
        m, a = self.m, self.a
        _, _, O, N, TH, TW = M.shape
        Z = np.empty((m, a, O, N, TH, TW), dtype=M.dtype)
        t = np.empty((4, a, O, N, TH, TW), dtype=M.dtype)
        self._at(list(M), list(Z), t)
        Y6 = Y.reshape(N, O, TH, m, TW, m)  # a view (splitting axes never copies)
        t = t[:, 0]
        for j in range(m):
            self._at(list(Z[j]), [Y6[:, :, :, j, :, l].swapaxes(0, 1) for l in range(m)], t)

    def _blocks(self, N, C, O, TH, TW, itemsize):
        """(sample slice, tile-row slice) blocks whose transformed tiles stay about BLOCK_BYTES."""
        per_row = self.a * self.a * (C + O) * TW * itemsize
        rows = max(1, BLOCK_BYTES // per_row)
        nb = max(1, min(N, rows // TH)) if rows >= TH else 1
        rows = min(rows, TH)
        return [(slice(n0, n0 + nb), slice(t0, min(TH, t0 + rows))) for n0 in range(0, N, nb) for t0 in range(0, TH, rows)]

    def _jit(self, dtype) -> bool:
        """Whether the compiled transforms run (F(4x4, 3x3), float32/float64, the tier switched on)."""
        return self.m == 4 and dtype in (np.float32, np.float64) and kernels.enabled()

    def _jit_blocks(self, N, C, O, TH, TW, itemsize, Cg):
        """(n0, n1, t0, t1) blocks of tiles whose transformed tiles stay about JIT_BLOCK_BYTES, or
        JIT_BLOCK_PER_U times the transformed kernel when that is larger (deep layers); as many as
        a multiple of the lanes that will run them (`lane_count`), of equal size where the shape allows."""
        per_row = self.a * self.a * max(C, O) * TW * itemsize
        target = max(JIT_BLOCK_BYTES, JIT_BLOCK_PER_U * self.a * self.a * O * Cg * itemsize)
        if N * TH == 0:
            return []
        n = lane_count(self.a * self.a * (C + O) * N * TH * TW)
        count = -(-N * TH // max(1, target // per_row))  # blocks of at most `target` bytes ...
        count = min(N * TH, -(-count // n) * n)  # ... a multiple of the lanes
        rows = -(-N * TH // count)
        if rows >= TH:  # whole samples per block
            nb = rows // TH
            return [(n0, min(N, n0 + nb), 0, TH) for n0 in range(0, N, nb)]
        rows = -(-TH // -(-TH // rows))  # equal parts of each sample's tile rows
        return [(n0, n0 + 1, t0, min(TH, t0 + rows)) for n0 in range(N) for t0 in range(0, TH, rows)]

    def _jit_runs(self, in_shape, pad, dilation, N, C, O, itemsize, Cg):
        """(ph, tws, blocks) for every row phase ph of `dilation` that has outputs: tws[pw] tiles per row of
        the grid in[:, :, ph::dh, pw::dw] of an input of spatial `in_shape` zero-padded by `pad`, and the
        blocks of that phase's tile rows (each tile row holds every column phase's tiles)."""
        dh, dw = dilation
        tws = np.array([-(-max(0, len(range(pw, in_shape[1], dw)) + 2 * pad - 2) // 4) for pw in range(dw)], dtype=np.int64)
        runs = []
        for ph in range(dh):
            OH = len(range(ph, in_shape[0], dh)) + 2 * pad - 2
            if OH > 0 and tws.sum() > 0:
                runs.append((ph, tws, self._jit_blocks(N, C, O, -(-OH // 4), int(tws.sum()), itemsize, Cg)))
        return runs

    def _block_views(self, Vb, Mb, item, G, C, O):
        """V (a², G, C/G, T) and M (a², G, O/G, T) of a block's T tiles in the scratch Vb and Mb, and
        their (a², C, T) and (a², O, T) views for the transforms."""
        aa = self.a * self.a
        _, tws, (n0, n1, t0, t1) = item
        T = (n1 - n0) * (t1 - t0) * int(tws.sum())
        V = Vb[: aa * C * T].reshape(aa, G, C // G, T)
        M = Mb[: aa * O * T].reshape(aa, G, O // G, T)
        return V, M, V.reshape(aa, C, T), M.reshape(aa, O, T)

    @staticmethod
    def _buffers(runs, a, C, O, dtype):
        """Scratch for the largest block of any run: V (a²·C·tiles) and M (a²·O·tiles), flat."""
        most = max(((n1 - n0) * (t1 - t0) * int(tws.sum()) for _, tws, blocks in runs for n0, n1, t0, t1 in blocks),
                   default=0)
        return np.empty(a * a * C * most, dtype=dtype), np.empty(a * a * O * most, dtype=dtype)

    def _conv_jit(self, x, w, bias, groups, pad, dilation, Y):
        """Y[:, :, ph::dh, pw::dw] <- the stride-1 correlation of x[:, :, ph::dh, pw::dw] (zero-padded by
        `pad`) with w, plus bias, for every phase (ph, pw) of `dilation` (the grids are read and written in
        place, no subsampled copies; see `kernels.winograd`). Per block of tiles: V = Bᵀ d B, M = U @ V (BLAS),
        Y = Aᵀ M A + bias; the blocks run as `parallel.lanes` (each lane one block at a time, in its cache)."""
        from .kernels import winograd as kw

        a, G = self.a, groups
        N, C = x.shape[:2]
        O = w.shape[0]
        dh, dw = dilation
        dilated = dilation != (1, 1)
        U = self._kernel(w).reshape(a * a, G, O // G, C // G)  # once for all phases
        b = np.zeros(O, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
        x = np.ascontiguousarray(x)
        runs = self._jit_runs(x.shape[2:], pad, dilation, N, C, O, x.itemsize, C // G)

        def setup(lanes):
            return self._buffers(runs, a, C, O, x.dtype) + (lanes,)

        def step(state, item):
            Vb, Mb, lanes = state
            ph, tws, (n0, n1, t0, t1) = item
            V, M, Vf, Mf = self._block_views(Vb, Mb, item, G, C, O)
            if dilated:
                _launch(kw.input_tiles_dilated, lanes, Vf.size)(x, pad, ph, dh, dw, tws, n0, n1, t0, t1, Vf)
            else:
                _launch(kw.input_tiles, lanes, Vf.size)(x, pad, n0, n1, t0, t1, int(tws[0]), Vf)
            matmul_in(lanes)(U, V, out=M)  # the 36 batched GEMMs (per group)
            if dilated:
                _launch(kw.output_tiles_dilated, lanes, Mf.size)(Mf, b, ph, dh, dw, tws, n0, n1, t0, t1, Y)
            else:
                _launch(kw.output_tiles, lanes, Mf.size)(Mf, b, n0, n1, t0, t1, int(tws[0]), Y)

        lanes(setup, step, [(ph, tws, blk) for ph, tws, blocks in runs for blk in blocks])
        return Y

    def _grad_weight_jit(self, x, gy, w_shape, groups, dilation, pad=0):
        """dU[ξ] = Σ over phases and blocks of (A gY Aᵀ)[ξ] @ V[ξ]ᵀ with the compiled transforms (the phase
        grids read in place; one partial sum per lane); then dg = Gᵀ dU G."""
        from .kernels import winograd as kw

        a, G = self.a, groups
        N, C = x.shape[:2]
        O = w_shape[0]
        dh, dw = dilation
        dilated = dilation != (1, 1)
        x, gy = np.ascontiguousarray(x), np.ascontiguousarray(gy)
        runs = self._jit_runs(gy.shape[2:], 1, dilation, N, C, O, x.itemsize, C // G)  # gy's grid, as if padded by 1

        def setup(lanes):
            dU = np.zeros((a * a, G, O // G, C // G), dtype=gy.dtype)
            return self._buffers(runs, a, C, O, x.dtype) + (dU, np.empty_like(dU), lanes)

        def step(state, item):
            Vb, Mb, dU, part, lanes = state
            ph, tws, (n0, n1, t0, t1) = item
            V, Mg, Vf, Mf = self._block_views(Vb, Mb, item, G, C, O)
            if dilated:
                _launch(kw.input_tiles_dilated, lanes, Vf.size)(x, pad, ph, dh, dw, tws, n0, n1, t0, t1, Vf)
                _launch(kw.grad_tiles_dilated, lanes, Mf.size)(gy, ph, dh, dw, tws, n0, n1, t0, t1, Mf)
            else:
                _launch(kw.input_tiles, lanes, Vf.size)(x, pad, n0, n1, t0, t1, int(tws[0]), Vf)
                _launch(kw.grad_tiles, lanes, Mf.size)(gy, n0, n1, t0, t1, int(tws[0]), Mf)
            matmul_in(lanes)(Mg, V.swapaxes(2, 3), out=part)
            dU += part

        states = lanes(setup, step, [(ph, tws, blk) for ph, tws, blocks in runs for blk in blocks], ordered=True)
        dU = states[0][2]
        for state in states[1:]:
            dU += state[2]
        return self._kernel_adjoint(dU, w_shape)

    def _jit2(self, dtype) -> bool:
        """Whether F(2x2, 3x3)'s compiled transforms run (`kernels.winograd2`)."""
        return self.m == 2 and dtype in (np.float32, np.float64) and kernels.enabled()

    def _conv(self, x, w, groups, pad=0, bias=None):
        """Stride-1 3x3 correlation of x (zero-padded by `pad`) with w, plus `bias`: (N, O, H + 2 pad - 2, W + 2 pad - 2)."""
        m, a, G = self.m, self.a, groups
        N, C, H, W = x.shape
        O = w.shape[0]
        x, TH, TW = self._padded(x, pad)
        U = self._kernel(w).reshape(a, a, G, O // G, C // G)
        if self._jit2(x.dtype):
            return self._conv_jit2(x, U, bias, (N, O, H + 2 * pad - 2, W + 2 * pad - 2), TH, TW)
        Y = np.empty((N, O, TH * m, TW * m), dtype=x.dtype)

        def block(b):
            ns, ts = b
            V = self._input_tiles(x[ns, :, ts.start * m : ts.stop * m + 2])
            M = matmul(U, V.reshape(a, a, G, C // G, -1))  # (a, a, G, Og, tiles): the batched GEMMs
            nb = len(range(N)[ns])
            self._output(M.reshape(a, a, O, nb, ts.stop - ts.start, TW), Y[ns, :, ts.start * m : ts.stop * m])

        map_blocks(block, self._blocks(N, C, O, TH, TW, x.itemsize), threads=BLOCK_THREADS)
        OH, OW = H + 2 * pad - 2, W + 2 * pad - 2
        Y = Y if Y.shape[2:] == (OH, OW) else np.ascontiguousarray(Y[:, :, :OH, :OW])
        if bias is not None:
            Y += bias.reshape(1, -1, 1, 1)
        return Y

    def _conv_jit2(self, x, U, bias, shape, TH, TW):
        """`_conv` for F(2x2, 3x3) with the compiled transforms: per block of tiles V = Bᵀ d B (16, C,
        tiles), the 16 batched products M = U @ V on the engine's threads (`parallel.matmul`), then
        Y = Aᵀ M A + bias written straight into the output (no tile-aligned copy, no bias pass)."""
        from .kernels import winograd2 as kw
        from .kernels.threads import pick

        N, C = x.shape[:2]
        O = shape[1]
        G = U.shape[2]
        U = U.reshape(16, G, O // G, C // G)
        b = np.zeros(0, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
        Y = np.empty(shape, dtype=x.dtype)
        for ns, ts in self._blocks(N, C, O, TH, TW, x.itemsize):
            n0, n1, t0, t1 = ns.start, min(N, ns.stop), ts.start, ts.stop
            T = (n1 - n0) * (t1 - t0) * TW
            V = np.empty((16, C, T), dtype=x.dtype)
            pick(kw.input_tiles, V.size, JIT2_PARALLEL_MIN)(x, n0, n1, t0, t1, V)
            M = matmul(U, V.reshape(16, G, C // G, T))  # (16, G, O/G, tiles): the batched GEMMs
            pick(kw.output_tiles, M.size, JIT2_PARALLEL_MIN)(M.reshape(16, O, T), b, n0, n1, t0, t1, TW, Y)
        return Y

    # --- the engine interface ---------------------------------------------------------------------

    def _check(self, op, x_shape, w_shape, stride, dilation, groups):
        reason = self.supports(op, x_shape, w_shape, stride, dilation, groups)
        if reason is not None:
            raise ValueError(reason)

    def forward(self, x, w, bias, stride, dilation, groups, pads=None):
        self._check("forward", x.shape, w.shape, stride, dilation, groups)
        if pads is not None or self._jit(x.dtype):  # `pads`: only when `pads_inside` said yes
            dh, dw = dilation
            p = self._grid_pad(pads, dilation)
            y = np.empty((x.shape[0], w.shape[0], x.shape[2] + 2 * dh * (p - 1), x.shape[3] + 2 * dw * (p - 1)),
                         dtype=x.dtype)
            return self._conv_jit(x, w, bias, groups, p, tuple(dilation), y)
        if tuple(dilation) == (1, 1):
            return self._conv(x, w, groups, bias=bias)
        dh, dw = dilation
        y = np.empty((x.shape[0], w.shape[0], x.shape[2] - 2 * dh, x.shape[3] - 2 * dw), dtype=x.dtype)
        for a, b, S in self._phases(x.shape, dilation):
            if min(S) >= 3:  # else no output falls on this phase
                y[:, :, a::dh, b::dw] = self._conv(np.ascontiguousarray(x[:, :, a::dh, b::dw]), w, groups, bias=bias)
        return y

    def grad_input(self, gy, w, x_shape, stride, dilation, groups, pads=None):
        """Full correlation of gy with the flipped kernel, in- and output channels exchanged per group
        (dilated: per phase, see `_phases`)."""
        self._check("grad_input", x_shape, w.shape, stride, dilation, groups)
        if pads is not None or self._jit(gy.dtype):
            return self._grad_input_jit(gy, w, tuple(x_shape), tuple(dilation), groups, self._grid_pad(pads, dilation))
        if tuple(dilation) == (1, 1):
            return self._grad_input1(gy, w, x_shape, groups)
        dh, dw = dilation
        gx = np.zeros(x_shape, dtype=gy.dtype)
        for a, b, S in self._phases(x_shape, dilation):
            if min(S) >= 3:
                gx[:, :, a::dh, b::dw] = self._grad_input1(np.ascontiguousarray(gy[:, :, a::dh, b::dw]), w,
                                                           tuple(x_shape[:2]) + S, groups)
        return gx

    @staticmethod
    def _flipped(w, groups):
        """The kernel of the input gradient: w flipped, in- and output channels exchanged per group."""
        O, Cg = w.shape[:2]
        wf = w[:, :, ::-1, ::-1].reshape(groups, O // groups, Cg, 3, 3).swapaxes(1, 2)
        return np.ascontiguousarray(wf.reshape(groups * Cg, O // groups, 3, 3))

    def _grad_input_jit(self, gy, w, x_shape, dilation, groups, pad=0):
        """Every phase grid of gx is the full correlation of gy's grid (padded by 2) with the flipped kernel,
        written in place; positions no output reads (grids without outputs) stay zero. With x zero-padded
        by `pad` grid steps, gx of the unpadded x: the same correlation with gy's grid padded by 2 - pad."""
        dh, dw = dilation
        k = 2 - pad
        H, W = gy.shape[2] + dh * (2 * k - 2), gy.shape[3] + dw * (2 * k - 2)
        whole = ((H, W) == x_shape[2:] and all(len(range(p, gy.shape[2], dh)) + 2 * k > 2 for p in range(dh))
                 and all(len(range(p, gy.shape[3], dw)) + 2 * k > 2 for p in range(dw)))  # every grid has outputs
        gx = (np.empty if whole else np.zeros)(x_shape, dtype=gy.dtype)
        self._conv_jit(gy, self._flipped(w, groups), None, groups, k, dilation, gx if whole else gx[:, :, :H, :W])
        return gx

    def pads_inside(self, op, pads, dilation, dtype) -> bool:
        """Whether this call can take zero padding `pads` ((before, after) per axis) itself instead of a
        padded copy (`chunks`): the compiled tier, the same padding on every side, a whole number of
        steps of the dilation, at most 2 steps (the input gradient's correlation pads gy by 2 - that)."""
        if not self._jit(dtype) or len(pads) != 2:
            return False
        (a, b), (c, d) = pads
        dh, dw = dilation
        return a == b and c == d and a % dh == 0 and c % dw == 0 and a // dh == c // dw and 0 <= a // dh <= 2

    @staticmethod
    def _grid_pad(pads, dilation):
        """The zero padding of a `pads_inside` call in steps of the dilation (0 without padding)."""
        return 0 if pads is None else pads[0][0] // dilation[0]

    def _grad_input1(self, gy, w, x_shape, groups):
        gx = self._conv(gy, self._flipped(w, groups), groups, pad=2)
        if gx.shape != tuple(x_shape):  # positions no output reads (transposed conv frames) get zero
            full = np.zeros(x_shape, dtype=gx.dtype)
            full[:, :, : gx.shape[2], : gx.shape[3]] = gx
            gx = full
        return gx

    def grad_weight(self, x, gy, w_shape, stride, dilation, groups, pads=None):
        """dU[ξ] = Σ_tiles (A gY Aᵀ)[ξ] @ V[ξ]ᵀ, block by block; then dg = Gᵀ dU G (dilated: summed
        over the phases, see `_phases`)."""
        self._check("grad_weight", x.shape, w_shape, stride, dilation, groups)
        if pads is not None or self._jit(x.dtype):
            if x.shape[0] == 0:  # an empty batch: no blocks to sum
                return np.zeros(w_shape, dtype=gy.dtype)
            return self._grad_weight_jit(x, gy, w_shape, groups, tuple(dilation), self._grid_pad(pads, dilation))
        if tuple(dilation) == (1, 1):
            return self._grad_weight1(x, gy, w_shape, groups)
        dh, dw = dilation
        gw = np.zeros(w_shape, dtype=gy.dtype)
        for a, b, S in self._phases(x.shape, dilation):
            if min(S) >= 3:
                gw += self._grad_weight1(np.ascontiguousarray(x[:, :, a::dh, b::dw]),
                                         np.ascontiguousarray(gy[:, :, a::dh, b::dw]), w_shape, groups)
        return gw

    def _grad_weight1(self, x, gy, w_shape, groups):
        if x.shape[0] == 0:  # an empty batch: no blocks to sum
            return np.zeros(w_shape, dtype=gy.dtype)
        m, a, G = self.m, self.a, groups
        N, C = x.shape[:2]
        O = w_shape[0]
        OH, OW = gy.shape[2:]
        x, TH, TW = self._padded(x[:, :, : OH + 2, : OW + 2], 0)
        g = gy
        if (TH * m, TW * m) != (OH, OW):
            g = np.zeros((N, O, TH * m, TW * m), dtype=gy.dtype)
            g[:, :, :OH, :OW] = gy
        A = AT[m].T  # (a, m)

        def block(b):
            ns, ts = b
            V = self._input_tiles(x[ns, :, ts.start * m : ts.stop * m + 2])
            gb = g[ns, :, ts.start * m : ts.stop * m]  # (nb, O, th·m, TW·m)
            nb, th = gb.shape[0], ts.stop - ts.start
            rows = np.empty((a, O, nb, th, TW * m), dtype=gy.dtype)
            s = np.empty((O, nb, th, TW * m), dtype=gy.dtype)
            _lincomb(A, [gb[:, :, j::m].swapaxes(0, 1) for j in range(m)], list(rows), s)
            Mg = np.empty((a, a, O, nb, th, TW), dtype=gy.dtype)
            for i in range(a):
                _lincomb(A, [rows[i, ..., j::m] for j in range(m)], list(Mg[i]), s[..., :TW])
            return matmul(Mg.reshape(a, a, G, O // G, -1), V.reshape(a, a, G, C // G, -1).swapaxes(3, 4))

        dU = sum_blocks(block, self._blocks(N, C, O, TH, TW, x.itemsize), threads=BLOCK_THREADS)
        return self._kernel_adjoint(dU, w_shape)

F2 = Winograd(2)
F4 = Winograd(4)
