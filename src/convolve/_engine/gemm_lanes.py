"""im2col + GEMM as lanes (`parallel.lanes`): each core runs whole blocks, copies included.

With one thread copying (im2col, the batch-inner transpose, the col2im fold) and BLAS alone on
every core, the copies between the products run on one core. As lanes, each core takes a block,
copies its columns into its own buffer, multiplies with single-threaded BLAS and writes its part of
the result, while the block is still in its cache. The blocks (`items`):

- forward and weight gradient: groups of samples (batch-inner layout: (C·K, nb·P) columns, one
  product, then the block's part of y transposed with the bias), or one sample's block of output
  rows (per-sample layout), sized like gemm's single-thread blocks and as many as a multiple of the
  lanes;
- input gradient: the folds of neighbouring row blocks overlap (kernel > stride), so a lane owns
  whole samples, or with fewer samples than lanes a range of input channels of one sample: every
  value of dx is written by one lane, in a fixed order;
- weight gradient: one partial sum per lane over items k, k + n, ... (``ordered``), added in lane
  order: the same bits on every run.

Shapes follow `gemm`: x (N, C, *S), w (O, C/G, *K), y (N, O, *P), columns (C·K, positions).
"""

from __future__ import annotations

import numpy as np

from . import _cost, blas, chunks, gemm
from .config import settings
from .parallel import even_parts, lanes
from .windows import by_rows, fold_windows

__all__ = ["lane_count", "blocks", "grad_input_blocks", "plan", "workspace", "cost", "forward", "grad_input", "grad_weight"]

# Multiply-adds below which a call stays on the calling thread: a lane's thread waking on an idle core
# took 0.1-0.2 ms here (a VM), a fair share of a call under ~1 ms (LeNet c2, 2^23 multiply-adds, ran
# 1.1-1.3x slower as lanes on a loaded host, its second lane often starting after the first had done
# both blocks).
LANES_MIN = 1 << 25
LANES_CALL = 40e-6  # seconds to hand the blocks to the lanes and wait for the last one
# What each lane beyond the first adds to the copies' speed: measured on 2 cores, the copy-bound layers
# (3x3 stride 2, the 7x7 stem, input gradients) ran 0.73-0.85x their one-lane time, not 0.5-0.6x
# (the lanes share the memory bandwidth and one often starts late).
LANE_GAIN = 0.4
# Products shorter than this (C·K, the columns' height) leave a row-blocked call at batch 1 mostly
# copying: ResNet-18's stem (3·7·7 = 147) ran 1.1-1.3x faster as two lanes of 56 output rows, the
# 64-channel 3x3 layer at 56x56 (576) 1.03x slower.
SHORT_PRODUCTS = 256
INNER_BYTES = 4 * 2**20  # batch-inner layout: columns per block (groups of samples)
ROWS_BYTES = 8 * 2**20  # per-sample layout: columns per block (counted at 8 bytes a value, as gemm's blocks)


def lane_count(x_shape, w_shape, stride, dilation) -> int:
    """Lanes for a call: the engine's threads when BLAS can run single-threaded, the call's
    arithmetic pays for waking them and it has whole samples for every lane (or, with fewer samples,
    many row blocks: large images), else 1: `gemm`'s single-lane path. A few blocks of one sample
    are split better by BLAS itself (measured at batch 1: ResNet-18's 56x56 layer, 2 row blocks,
    1.3-1.6x slower as lanes; 128@28 and 256@14 halved by rows 1.3-1.5x slower), except when the
    products are short (`SHORT_PRODUCTS`)."""
    n = settings["threads"]
    if n <= 1 or not blas.controllable():
        return 1
    if x_shape[0] < n:
        plan = gemm._row_blocks(x_shape, w_shape, stride, dilation)
        short = x_shape[1] * int(np.prod(w_shape[2:])) < SHORT_PRODUCTS  # copy-bound: the copies need the lanes
        if plan is None or (x_shape[0] * -(-plan[1] // plan[0]) < 4 * n and not short):
            return 1
    P = int(np.prod(gemm._outs(x_shape, w_shape, stride, dilation)))
    macs = x_shape[0] * w_shape[0] * int(np.prod(w_shape[1:])) * P
    return n if macs >= LANES_MIN else 1


def _multiple(count, n, most):
    """count rounded up to a multiple of n (the lanes), at most `most`."""
    return min(most, -(-count // n) * n)


def blocks(N, out_rows, per_row, target, n, group) -> list:
    """(n0, n1, r0, r1) blocks: samples n0:n1 (several only if `group`), output rows r0:r1, whose
    columns (`per_row` bytes per output row of one sample) stay about `target` bytes; as many as a
    multiple of the `n` lanes where the shape allows (samples split first, then output rows)."""
    per_sample = per_row * out_rows
    if per_sample <= target and (N >= n or not group):
        count = N if not group else _multiple(max(1, -(-N * per_sample // max(1, target))), n, N)
        if count >= n or N >= n:
            return [(a, b, 0, out_rows) for a, b in even_parts(N, count)]
    if group and N > 1:  # a batch-inner block holds whole samples
        return [(a, b, 0, out_rows) for a, b in even_parts(N, min(N, n))]
    bps = min(out_rows, max(1, -(-per_sample // max(1, target))))  # row blocks per sample
    while (N * bps) % n and bps < out_rows:
        bps += 1
    return [(s, s + 1, a, b) for s in range(N) for a, b in even_parts(out_rows, bps)]


def grad_input_blocks(N, G, Cg, n) -> list:
    """(n0, n1, g0, g1, c0, c1): samples n0:n1, groups g0:g1 and channels c0:c1 of each group
    (all of them, or a range of one group's): whole samples per lane, or with fewer samples than
    lanes ranges of input channels, so that no two blocks write the same values of dx."""
    if N >= n:
        return [(a, b, 0, G, 0, Cg) for a, b in even_parts(N, _multiple(N, n, N))]
    per = -(-n // N)  # parts per sample
    if G >= per:
        return [(s, s + 1, a, b, 0, Cg) for s in range(N) for a, b in even_parts(G, per)]
    split = min(Cg, -(-per // G))
    return [(s, s + 1, g, g + 1, a, b) for s in range(N) for g in range(G) for a, b in even_parts(Cg, split)]


def _columns(xs, kernel, stride, dilation, batch_inner, buf):
    """The block's columns (nb, C, *K, *O), or with `batch_inner` (C, *K, nb, *O), in `buf` (flat);
    for a 1x1 kernel with stride 1 the per-sample columns are the input itself (no copy)."""
    if any(k != 1 for k in kernel):
        return gemm.im2col(xs, kernel, stride, dilation, batch_inner, buffer=buf)[0]
    xs = xs[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
    if batch_inner:
        xs = xs.swapaxes(0, 1)
    elif all(s == 1 for s in stride):
        return xs
    cols = buf[: xs.size].reshape(xs.shape)
    np.copyto(cols, xs)
    return cols


def _in_rows(r0, r1, stride, dilation, kernel):
    """Input rows (first spatial axis) that output rows r0:r1 read."""
    return slice(r0 * stride[0], (r1 - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1)


def _rows_size(nb, C, kernel, stride, dilation, in_rows, spatial, outs) -> int:
    """Elements of the shifted rows R that im2col and fold_windows make for a block (`by_rows`)."""
    if not by_rows(kernel, stride):
        return 0
    return nb * C * kernel[-1] * in_rows * int(np.prod(spatial[1:-1])) * outs[-1]


def plan(op, x_shape, w_shape, stride, dilation, groups, itemsize, n):
    """(batch_inner, blocks, rows per row block, elements of one lane's buffer, elements of the
    shifted rows im2col or the fold makes per block) for a call run on `n` lanes; grad_input's
    blocks are `grad_input_blocks`'s (its row blocks run in turn inside each), the others `blocks`'s."""
    N, C = x_shape[:2]
    O, Cg = w_shape[:2]
    kernel, spatial = tuple(w_shape[2:]), tuple(x_shape[2:])
    outs = gemm._outs(x_shape, w_shape, stride, dilation)
    P, K, per_row = int(np.prod(outs)), int(np.prod(kernel)), int(np.prod(outs[1:]))
    inner = gemm._batch_inner(N, P)
    if op == "grad_input" and not inner:
        bl = grad_input_blocks(N, groups, Cg, n)
        rb = gemm._row_blocks(x_shape, w_shape, stride, dilation)
        rows = outs[0] if rb is None else rb[0]
        chans = max((g1 - g0) * (c1 - c0) for _, _, g0, g1, c0, c1 in bl)
        ins = _in_rows(0, rows, stride, dilation, kernel).stop
        return False, bl, rows, chans * K * rows * per_row, _rows_size(1, chans, kernel, stride, dilation, ins,
                                                                        spatial, outs)
    if inner:
        bl = blocks(N, outs[0], C * K * per_row * itemsize, INNER_BYTES, n, group=True)
    else:
        bl = blocks(N, outs[0], C * K * per_row * 8, ROWS_BYTES, n, group=False)
    nb = max(b - a for a, b, _, _ in bl)
    rows = max(r1 - r0 for _, _, r0, r1 in bl)
    ins = _in_rows(0, rows, stride, dilation, kernel).stop
    view = all(k == 1 for k in kernel) and all(s == 1 for s in stride) and not inner  # the input itself
    size = (0 if view else C * K * nb * rows * per_row) + (O * nb * P if inner else 0)  # columns; product
    return inner, bl, rows, size, _rows_size(nb, C, kernel, stride, dilation, ins, spatial, outs)


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize, n) -> int:
    """Bytes of every lane's buffers for a call run on `n` lanes (the weight gradient's partial sums
    and product included)."""
    _, bl, _, size, rows = plan(op, x_shape, w_shape, stride, dilation, groups, itemsize, n)
    sums = 2 * int(np.prod(w_shape)) if op == "grad_weight" else 0
    return min(n, len(bl)) * (size + rows + sums) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize, n) -> float:
    """Seconds on `n` lanes: the blocks' products at the BLAS rate for their shape (the lanes
    together at the rate of one BLAS on every core), the copies (columns, transposes, folds) and
    per-block overheads as gemm's single lane costs them, sped up by the lanes as measured
    (`LANE_GAIN`), and waking them; for the weight gradient, adding up the partial sums."""
    N, C = x_shape[:2]
    O, Cg = w_shape[:2]
    G, Og, b = groups, O // groups, itemsize
    K = int(np.prod(w_shape[2:]))
    outs = gemm._outs(x_shape, w_shape, stride, dilation)
    P, per_row = int(np.prod(outs)), int(np.prod(outs[1:]))
    inner, bl, rows, _, _ = plan(op, x_shape, w_shape, stride, dilation, groups, itemsize, n)
    if op == "grad_input" and not inner:  # each block runs its row blocks in turn
        count = len(bl) * -(-outs[0] // rows)
        cols = max(1, N * P // count)
    else:
        count = len(bl)
        cols = max((b1 - b0) * (r1 - r0) * per_row for b0, b1, r0, r1 in bl)
    t = _cost.gemm_time(2 * N * O * Cg * K * P, b, Og, cols, Cg * K, G * count)
    # the copies at the rates of gemm's single lane: in cache where it blocks too, else at memory speed
    blocked = gemm._row_blocks(x_shape, w_shape, stride, dilation) is not None
    in_place = K == 1 and all(s == 1 for s in stride) and not inner  # the input (or dx) is the column matrix
    copies = 0 if in_place else (3 if op == "grad_input" and not blocked else 2) * N * C * K * P * b
    if inner:
        copies += 2 * N * O * P * b  # the transposes of y or of the output gradient
    rate = _cost.COPY_RATE if blocked else _cost.MEM_RATE
    t += (copies / rate + count * (K + 3) * _cost.CALL) / (1 + LANE_GAIN * (n - 1)) + LANES_CALL
    if op == "grad_weight":  # each block's product added to its lane's sum, then the lanes' sums added
        t += (count / n + n - 1) * 3 * O * Cg * K * b / _cost.CACHE_RATE
    return t


def _product(buf, cols, shape):
    """The block's product buffer, after its columns in `buf`."""
    start = cols.size if np.shares_memory(cols, buf) else 0
    return buf[start : start + int(np.prod(shape))].reshape(shape)


def _channels_major(a, groups, buf):
    """(nb, O, *P) -> (G, O/G, nb·P) in `buf`: the block's samples moved inside the matrix columns."""
    nb, O = a.shape[:2]
    out = buf[: a.size].reshape(O, nb, -1)
    np.copyto(out, a.reshape(nb, O, -1).swapaxes(0, 1))
    return out.reshape(groups, O // groups, -1)


def _block(x, n0, n1, rows, pads, buf):
    """Samples n0:n1 and input rows `rows` (padded coordinates) of x zero-padded by `pads`, in the
    lane's `buf` (a view of x without padding)."""
    if pads is None:
        return x[n0:n1, :, rows]
    shape = (n1 - n0, x.shape[1], rows.stop - rows.start) + chunks.padded_shape(x.shape, pads)[3:]
    out = buf[: int(np.prod(shape))].reshape(shape)
    out.fill(0)  # in the lane's cache (a fresh array per block: page faults on every block)
    cut = chunks._real(x.shape[2:], rows, pads)
    if cut is not None:
        out[(slice(None), slice(None)) + cut[0]] = x[(slice(n0, n1), slice(None)) + cut[1]]
    return out


def _pad_size(x_shape, pads, bl, stride, dilation, kernel) -> int:
    """Elements of the largest padded block of input rows (0 without padding)."""
    if pads is None:
        return 0
    shape = chunks.padded_shape(x_shape, pads)
    rows = max(_in_rows(r0, r1, stride, dilation, kernel).stop - r0 * stride[0] for _, _, r0, r1 in bl)
    return max(b - a for a, b, _, _ in bl) * shape[1] * rows * int(np.prod(shape[3:]))


def forward(x, w, bias, stride, dilation, groups, n, pads=None):
    N, O, G = x.shape[0], w.shape[0], groups
    kernel = tuple(w.shape[2:])
    shape = chunks.padded_shape(x.shape, pads)
    outs = gemm._outs(shape, w.shape, stride, dilation)
    P, per_row = int(np.prod(outs)), int(np.prod(outs[1:]))
    wm = w.reshape(G, O // G, -1)  # (G, Og, Cg·K)
    inner, bl, _, size, _ = plan("forward", shape, w.shape, stride, dilation, groups, x.itemsize, n)
    psize = _pad_size(x.shape, pads, bl, stride, dilation, kernel)
    y = np.empty((N, G, O // G, P), dtype=x.dtype)
    b = None if bias is None else bias.reshape(G, O // G, 1)

    def step(buf, block):
        n0, n1, r0, r1 = block
        nb = n1 - n0
        xs = _block(x, n0, n1, _in_rows(r0, r1, stride, dilation, kernel), pads, buf[size:])
        cols = _columns(xs, kernel, stride, dilation, inner, buf[:size])
        if inner:  # (G, Og, nb·P), then the block's part of y transposed, with the bias
            out = _product(buf[:size], cols, (G, O // G, nb * P))
            np.matmul(wm, cols.reshape(G, wm.shape[2], nb * P), out=out)
            yt = out.reshape(G, O // G, nb, P).transpose(2, 0, 1, 3)
            if b is None:
                np.copyto(y[n0:n1], yt)
            else:
                np.add(yt, b, out=y[n0:n1])
            return
        blk = y[n0:n1, :, :, r0 * per_row : r1 * per_row]
        np.matmul(wm, cols.reshape(nb, G, wm.shape[2], -1), out=blk)
        if b is not None:  # while the block is in cache
            blk += b

    lanes(lambda _: np.empty(size + psize, dtype=x.dtype), step, bl, threads=n)
    return y.reshape((N, O) + outs)


def grad_input(gy, w, x_shape, stride, dilation, groups, n, pads=None):
    """dx of the input of shape `x_shape`; with `pads`, of the unpadded input: each lane folds into its
    own zero-padded samples and copies their real part into dx."""
    N, O = gy.shape[:2]
    G, C, Cg = groups, x_shape[1], w.shape[1]
    outs, kernel = tuple(gy.shape[2:]), tuple(w.shape[2:])
    K, P, per_row = int(np.prod(kernel)), int(np.prod(outs)), int(np.prod(outs[1:]))
    wt = w.reshape(G, O // G, -1).transpose(0, 2, 1)  # (G, Cg·K, Og)
    shape = chunks.padded_shape(x_shape, pads)
    inner, bl, rows, size, _ = plan("grad_input", shape, w.shape, stride, dilation, groups, gy.itemsize, n)
    pointwise = K == 1
    in_place = pointwise and all(s == 1 for s in stride) and not inner and pads is None  # dx's rows: the product's
    gx = (np.empty if in_place or pads is not None else np.zeros)(x_shape, dtype=gy.dtype)
    plane = int(np.prod(shape[2:]))
    if pads is None:
        psize = 0
    elif inner:
        psize = max(b - a for a, b, _, _ in bl) * C * plane
    else:
        psize = max((g1 - g0) * (c1 - c0) for _, _, g0, g1, c0, c1 in bl) * plane
    crop = () if pads is None else tuple(slice(a, a + s) for (a, _), s in zip(pads, x_shape[2:]))  # the real input

    def padded(buf, lead):
        """The lane's zeroed padded planes for `lead` (samples, channels), or None without padding."""
        if pads is None:
            return None
        out = buf[size : size + int(np.prod(lead)) * plane].reshape(tuple(lead) + tuple(shape[2:]))
        out.fill(0)
        return out

    def fold(cols, target):
        if pointwise:  # no windows to add: the values go to the (strided) positions they came from
            target[(Ellipsis,) + tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, cols.shape[-len(outs):]))] \
                = cols.reshape(cols.shape[: cols.ndim - 2 * len(outs)] + cols.shape[cols.ndim - len(outs):])
        else:
            fold_windows(cols, target.shape[target.ndim - len(outs):], stride, dilation, out=target)

    def step_inner(buf, block):
        n0, n1 = block[:2]
        nb = n1 - n0
        g = _channels_major(gy[n0:n1], G, buf)  # (G, Og, nb·P)
        cols = buf[g.size : g.size + C * K * nb * P].reshape(G, Cg * K, nb * P)
        np.matmul(wt, g, out=cols)
        pad = padded(buf, (nb, C))
        fold(np.moveaxis(cols.reshape((C,) + kernel + (nb,) + outs), 1 + len(outs), 0), gx[n0:n1] if pad is None else pad)
        if pad is not None:
            gx[n0:n1] = pad[(slice(None), slice(None)) + crop]

    gym = gy.reshape(N, G, O // G, P)

    def step(buf, block):
        n0, n1, g0, g1, c0, c1 = block
        chans = slice(g0 * Cg + c0, (g1 - 1) * Cg + c1)
        for s in range(n0, n1):
            if in_place:  # a contiguous range of channels of one sample: a view
                np.matmul(wt[g0:g1, c0:c1], gym[s, g0:g1], out=gx[s, chans].reshape(g1 - g0, c1 - c0, P))
                continue
            pad = padded(buf, ((g1 - g0) * (c1 - c0),))
            for r0 in range(0, outs[0], rows):
                r1 = min(outs[0], r0 + rows)
                c = buf[: (g1 - g0) * (c1 - c0) * K * (r1 - r0) * per_row].reshape(g1 - g0, (c1 - c0) * K, -1)
                np.matmul(wt[g0:g1, c0 * K : c1 * K], gym[s, g0:g1, :, r0 * per_row : r1 * per_row], out=c)
                target = (gx[s, chans] if pad is None else pad)[:, _in_rows(r0, r1, stride, dilation, kernel)]
                fold(c.reshape((-1,) + kernel + (r1 - r0,) + outs[1:]), target)
            if pad is not None:
                gx[s, chans] = pad[(slice(None),) + crop]

    lanes(lambda _: np.empty(size + psize, dtype=gy.dtype), step_inner if inner else step, bl, threads=n)
    return gx


def grad_weight(x, gy, w_shape, stride, dilation, groups, n, pads=None):
    N, O = gy.shape[:2]
    G, kernel = groups, tuple(w_shape[2:])
    outs = tuple(gy.shape[2:])
    P, per_row = int(np.prod(outs)), int(np.prod(outs[1:]))
    CgK = int(np.prod(w_shape[1:]))
    shape = chunks.padded_shape(x.shape, pads)
    inner, bl, _, size, _ = plan("grad_weight", shape, w_shape, stride, dilation, groups, x.itemsize, n)
    psize = _pad_size(x.shape, pads, bl, stride, dilation, kernel)
    gym = gy.reshape(N, G, O // G, P)

    def setup(_):
        acc = np.zeros((G, O // G, CgK), dtype=gy.dtype)
        return np.empty(size + psize, dtype=x.dtype), acc, np.empty_like(acc)

    def step(state, block):
        buf, acc, part = state
        n0, n1, r0, r1 = block
        nb = n1 - n0
        xs = _block(x, n0, n1, _in_rows(r0, r1, stride, dilation, kernel), pads, buf[size:])
        cols = _columns(xs, kernel, stride, dilation, inner, buf[:size])
        if inner:
            g = _channels_major(gy[n0:n1], G, _product(buf[:size], cols, (gy[n0:n1].size,)))
            np.matmul(g, cols.reshape(G, CgK, nb * P).transpose(0, 2, 1), out=part)
        else:
            np.matmul(gym[n0, :, :, r0 * per_row : r1 * per_row], cols.reshape(G, CgK, -1).transpose(0, 2, 1),
                      out=part)
        acc += part

    states = lanes(setup, step, bl, threads=n, ordered=True)
    gw = states[0][1]
    for state in states[1:]:
        gw += state[1]
    return gw.reshape(w_shape)
