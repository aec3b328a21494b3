"""im2col + GEMM: copy every window once into a column matrix, then one (batched) matrix product.

Two layouts, picked by the output size P = prod(output spatial):

- per sample, cols (N, C·K, P): ``y[n] = W (O, C·K) @ cols[n]`` lands directly in (N, O, P) order;
- batch-inner, cols (C·K, N·P): one GEMM ``W @ cols`` with a long inner dimension, the better
  matrix shape when P is small (deep layers); the (O, N, P) result is transposed once.

Large layers run blocked: one sample and a few output rows at a time, so that a block's columns
(`BLOCK_BYTES`) are still in cache when the GEMM reads them and im2col costs no memory traffic.
The batch-inner layout likewise runs in groups of samples once its columns would exceed
`SAMPLES_SPLIT_ABOVE`. How the thresholds were measured: docs/speed.md, "Tuning constants".

Groups are one more batch axis of the matmul (no Python loop over groups). 1x1 kernels need no
columns: the (strided) input already is the column matrix. The gradients use the same columns
(the derivation is in `convolve._engine`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _cost, chunks
from .parallel import matmul
from .windows import by_rows, fold_windows, out_size, tap_slices

__all__ = ["name", "local", "reach", "supports", "workspace", "cost", "im2col", "pads_inside", "forward", "grad_input",
           "grad_weight"]

name = "gemm"
local = True  # each output is one dot product over its own window
reach = 0
BATCH_INNER_BELOW = 640  # output positions per sample under which one GEMM over N·P wins
BLOCK_BYTES = 8 * 2**20  # columns per block in the blocked path
SAMPLES_SPLIT_ABOVE = 16 * 2**20  # batch-inner columns above this run in groups of samples ...
SAMPLES_BLOCK_BYTES = 4 * 2**20  # ... of about this many bytes of columns


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None: every convolution is supported."""
    return None


def _outs(x_shape, w_shape, stride, dilation):
    return tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))


def _pointwise(w_shape) -> bool:
    return all(k == 1 for k in w_shape[2:])


def _batch_inner(N, P) -> bool:
    return N > 1 and P < BATCH_INNER_BELOW


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Bytes of temporaries (columns plus output- and gradient-sized copies) for one call; as lanes,
    every lane's block buffers."""
    n = _lanes(op, x_shape, w_shape, stride, dilation, groups, itemsize)
    if n > 1:
        from . import gemm_lanes

        return gemm_lanes.workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize, n)
    N, C, O = x_shape[0], x_shape[1], w_shape[0]
    P = int(np.prod(_outs(x_shape, w_shape, stride, dilation)))
    K = int(np.prod(w_shape[2:]))
    cols = N * C * P * (1 if _pointwise(w_shape) else K)
    if by_rows(w_shape[2:], stride):  # the shifted rows R of im2col / fold_windows
        outs = _outs(x_shape, w_shape, stride, dilation)
        cols += N * C * w_shape[-1] * int(np.prod(x_shape[2:-1])) * outs[-1]
    return (cols + 3 * N * max(O, C) * P) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: the GEMM at the BLAS rate for its matrix shape, plus the column copies (in cache
    when blocked, at memory speed otherwise) and the batch-inner transpose; as lanes, the products
    of the lanes' blocks and the copies shared by the lanes."""
    n = _lanes(op, x_shape, w_shape, stride, dilation, groups, itemsize)
    if n > 1:
        from . import gemm_lanes

        return gemm_lanes.cost(op, x_shape, w_shape, stride, dilation, groups, itemsize, n)
    return _single_cost(op, x_shape, w_shape, stride, dilation, groups, itemsize)


def _single_cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    N, C = x_shape[:2]
    O, Cg = w_shape[:2]
    G, Og = groups, O // groups
    K = int(np.prod(w_shape[2:]))
    P = int(np.prod(_outs(x_shape, w_shape, stride, dilation)))
    flops = 2 * N * O * Cg * K * P
    b = itemsize
    plan = _row_blocks(x_shape, w_shape, stride, dilation)
    inner = op == "grad_weight" or _batch_inner(N, P)
    if plan is not None:  # blocked: columns written and read in cache
        blocks = N * -(-plan[1] // plan[0])
        t = _cost.gemm_time(flops, b, Og, min(P, plan[0] * plan[2]), Cg * K, G * blocks)
        return t + 2 * N * C * K * P * b / _cost.COPY_RATE + blocks * (K + 3) * _cost.CALL
    t = _cost.gemm_time(flops, b, Og, N * P if inner else P, Cg * K, G * (1 if inner else N))
    cols = 0 if (K == 1 and op != "grad_weight" and not inner) else N * C * K * P * b
    t += (3 if op == "grad_input" else 2) * cols / _cost.MEM_RATE + K * _cost.CALL
    return t + (2 * N * O * P * b / _cost.MEM_RATE if inner else 0)


def im2col(x, kernel, stride, dilation, batch_inner=False, buffer=None):
    """Copy the windows of x into columns: one strided slice copy per kernel tap, or (`by_rows`)
    the shifted rows R first, then one copy of every tap's block of whole rows.

    Shape
    -----
    x : (N, C, *S) -> cols (N, C, *K, *O), or with `batch_inner` (C, *K, N, *O); and O.
    `buffer`, a flat array at least that large, is used instead of a new allocation.
    """
    N, C = x.shape[:2]
    kernel = tuple(kernel)
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x.shape[2:], kernel, stride, dilation))
    shape = (C,) + kernel + (N,) + outs if batch_inner else (N, C) + kernel + outs
    if buffer is None:
        cols = np.empty(shape, dtype=x.dtype)
    else:
        cols = buffer[: int(np.prod(shape))].reshape(shape)
    if by_rows(kernel, stride):
        np.copyto(cols, _row_windows(x, kernel, stride, dilation, outs, batch_inner))
        return cols, outs
    for k in np.ndindex(*kernel):
        src = x[(slice(None), slice(None)) + tap_slices(k, stride, dilation, outs)]  # (N, C, *O)
        if batch_inner:
            cols[(slice(None),) + k] = src.swapaxes(0, 1)
        else:
            cols[(slice(None), slice(None)) + k] = src
    return cols, outs


def _row_windows(x, kernel, stride, dilation, outs, batch_inner):
    """A read-only view shaped like im2col's columns, over R: the rows of x shifted by each
    last-axis tap, R (N, C, K[-1], *S[:-1], O[-1]) (batch-inner: (C, K[-1], N, ...)), one copy
    per last-axis tap. In R every tap of the leading axes reads a block of whole rows."""
    N, C = x.shape[:2]
    kl, sl, dl, ol = kernel[-1], stride[-1], dilation[-1], outs[-1]
    head = tuple(x.shape[2:-1])
    rows = np.empty(((C, kl, N) if batch_inner else (N, C, kl)) + head + (ol,), dtype=x.dtype)
    for k in range(kl):
        src = x[..., k * dl : k * dl + sl * (ol - 1) + 1 : sl]  # (N, C, *S[:-1], O[-1])
        if batch_inner:
            rows[:, k] = src.swapaxes(0, 1)
        else:
            rows[:, :, k] = src
    st = rows.strides
    spatial = st[3:-1]  # strides of R's S[:-1] axes
    taps = tuple(d * s for d, s in zip(dilation[:-1], spatial))
    steps = tuple(t * s for t, s in zip(stride[:-1], spatial)) + (st[-1],)
    if batch_inner:
        shape, strides = (C,) + kernel + (N,) + outs, (st[0],) + taps + (st[1], st[2]) + steps
    else:
        shape, strides = (N, C) + kernel + outs, (st[0], st[1]) + taps + (st[2],) + steps
    return as_strided(rows, shape, strides, writeable=False)


def _columns(x, kernel, stride, dilation, batch_inner):
    """im2col, or for 1x1 kernels the (strided) input itself: no copy when it can be avoided."""
    if all(k == 1 for k in kernel):
        xs = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
        if batch_inner:
            xs = xs.swapaxes(0, 1)
        return xs, xs.shape[2:]
    return im2col(x, kernel, stride, dilation, batch_inner)


def _channels_major(a, groups):
    """(N, O, *P) -> (G, O/G, N·P): the batch moved inside the matrix columns (one copy if N > 1)."""
    N, O = a.shape[:2]
    return a.reshape(N, groups, O // groups, -1).transpose(1, 2, 0, 3).reshape(groups, O // groups, -1)


def _row_blocks(x_shape, w_shape, stride, dilation):
    """None if the whole call's columns fit one block, else (rows per block, output rows, positions per row)."""
    outs = _outs(x_shape, w_shape, stride, dilation)
    N, C = x_shape[:2]
    per_row = C * int(np.prod(w_shape[2:])) * int(np.prod(outs[1:])) * 8
    if _pointwise(w_shape) or N * per_row * outs[0] <= BLOCK_BYTES or _batch_inner(N, int(np.prod(outs))):
        return None
    return max(1, BLOCK_BYTES // per_row), outs[0], int(np.prod(outs[1:]))


def _sample_groups(x_shape, w_shape, stride, dilation, batch_inner, itemsize):
    """Slices of the batch for the batch-inner layout when its columns are too large to stay in
    cache, else None."""
    N, C = x_shape[:2]
    per_sample = C * int(np.prod(w_shape[2:])) * int(np.prod(_outs(x_shape, w_shape, stride, dilation))) * itemsize
    if not batch_inner or _pointwise(w_shape) or N * per_sample <= SAMPLES_SPLIT_ABOVE:
        return None
    nb = max(1, SAMPLES_BLOCK_BYTES // per_sample)  # a group of one sample takes the per-sample layout
    return [slice(n0, n0 + nb) for n0 in range(0, N, nb)] if nb < N else None


def _blocks(x, w_shape, stride, dilation, plan):
    """(sample, output row slice as flat positions, columns of that block) for the blocked path."""
    rows, out_rows, per_row = plan
    kernel = w_shape[2:]
    s0, d0, k0 = stride[0], dilation[0], kernel[0]
    buf = np.empty(x.shape[1] * int(np.prod(kernel)) * rows * per_row, dtype=x.dtype)
    for n in range(x.shape[0]):
        for r0 in range(0, out_rows, rows):
            r1 = min(out_rows, r0 + rows)
            xs = x[n : n + 1, :, r0 * s0 : (r1 - 1) * s0 + d0 * (k0 - 1) + 1]
            cols, _ = im2col(xs, kernel, stride, dilation, buffer=buf)
            yield n, slice(r0 * per_row, r1 * per_row), cols


_lane_choices: dict = {}  # (op, call, lanes, block sizes) -> lanes to run: cost arithmetic once per shape


def _lanes(op, x_shape, w_shape, stride, dilation, groups, itemsize) -> int:
    """How many lanes (`gemm_lanes`) run this call: 1 (the single-lane path below) unless lanes are
    available and their estimated time is the lower one (not so where the weight gradient's partial
    sums outweigh what the lanes save: deep layers with large weights)."""
    from . import gemm_lanes

    n = gemm_lanes.lane_count(x_shape, w_shape, stride, dilation)
    if n == 1:
        return 1
    key = (op, tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups, itemsize, n, BLOCK_BYTES,
           SAMPLES_BLOCK_BYTES, gemm_lanes.INNER_BYTES, gemm_lanes.ROWS_BYTES)
    found = _lane_choices.get(key)
    if found is None:
        lanes = gemm_lanes.cost(op, x_shape, w_shape, stride, dilation, groups, itemsize, n)
        found = n if lanes < _single_cost(op, x_shape, w_shape, stride, dilation, groups, itemsize) else 1
        if len(_lane_choices) >= 4096:
            _lane_choices.clear()
        _lane_choices[key] = found
    return found


def pads_inside(op, pads, dilation, dtype) -> bool:
    """Whether gemm takes the zero padding of this call itself (`chunks`): padding, not cropping. As
    lanes, each lane pads only its own block's rows (the input gradient: folds into its own padded
    samples and copies their real part), in its cache; on one lane the whole input is padded first
    (the padded gradient cropped), as `chunks` would."""
    return all(a >= 0 and b >= 0 for a, b in pads)


def _padded(x, pads):
    """x zero-padded by `pads` (None: x itself)."""
    return x if pads is None else chunks._piece(x, slice(None), slice(0, chunks.padded_shape(x.shape, pads)[2]), pads)


def forward(x, w, bias, stride, dilation, groups, pads=None):
    n = _lanes("forward", chunks.padded_shape(x.shape, pads), w.shape, stride, dilation, groups, x.itemsize)
    if n > 1:
        from . import gemm_lanes

        return gemm_lanes.forward(x, w, bias, stride, dilation, groups, n, pads)
    x = _padded(x, pads)
    N, O, G = x.shape[0], w.shape[0], groups
    outs = _outs(x.shape, w.shape, stride, dilation)
    P = int(np.prod(outs))
    wm = w.reshape(G, O // G, -1)  # (G, Og, Cg·K)
    plan = _row_blocks(x.shape, w.shape, stride, dilation)
    if plan is not None:
        y = np.empty((N, G, O // G, P), dtype=x.dtype)
        b = None if bias is None else bias.reshape(G, O // G, 1)
        for n, pos, cols in _blocks(x, w.shape, stride, dilation, plan):
            blk = y[n, :, :, pos]
            matmul(wm, cols.reshape(G, wm.shape[2], -1), out=blk)
            if b is not None:  # while the block is in cache
                blk += b
        return y.reshape((N, O) + outs)
    inner = _batch_inner(N, P)
    groups_of_samples = _sample_groups(x.shape, w.shape, stride, dilation, inner, x.itemsize)
    if groups_of_samples is not None:
        y = np.empty((N, O) + outs, dtype=x.dtype)
        for ns in groups_of_samples:
            y[ns] = forward(x[ns], w, bias, stride, dilation, groups)
        return y
    cols, _ = _columns(x, w.shape[2:], stride, dilation, inner)
    if inner:
        yt = matmul(wm, cols.reshape(G, wm.shape[2], N * P)).reshape(O, N, P).transpose(1, 0, 2)
        y = np.empty((N, O, P), dtype=yt.dtype)
        if bias is None:
            np.copyto(y, yt)
        else:  # the bias in the same pass as the transpose
            np.add(yt, bias.reshape(1, O, 1), out=y)
        return y.reshape((N, O) + outs)
    y = matmul(wm, cols.reshape(N, G, wm.shape[2], P)).reshape((N, O) + outs)  # lands in (N, G, Og, P) order
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(outs))
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups, pads=None):
    shape = chunks.padded_shape(x_shape, pads)
    n = _lanes("grad_input", shape, w.shape, stride, dilation, groups, gy.itemsize)
    if n > 1:
        from . import gemm_lanes

        return gemm_lanes.grad_input(gy, w, x_shape, stride, dilation, groups, n, pads)
    if pads is not None:  # the padded input's gradient, cropped to the real input
        gp = grad_input(gy, w, shape, stride, dilation, groups)
        return np.ascontiguousarray(gp[(slice(None), slice(None)) + tuple(slice(a, a + s) for (a, _), s in
                                                                         zip(pads, x_shape[2:]))])
    N, O = gy.shape[:2]
    G, nd, C = groups, gy.ndim - 2, x_shape[1]
    outs, kernel = gy.shape[2:], tuple(w.shape[2:])
    P = int(np.prod(outs))
    wt = w.reshape(G, O // G, -1).transpose(0, 2, 1)  # (G, Cg·K, Og)
    plan = _row_blocks(x_shape, w.shape, stride, dilation)
    if plan is not None:  # per block: columns = Wᵀ gy, folded straight into the rows they came from
        rows, out_rows, per_row = plan
        gx = np.zeros(x_shape, dtype=gy.dtype)
        gym = gy.reshape(N, G, O // G, P)
        cols = np.empty((G, wt.shape[1], rows * per_row), dtype=gy.dtype)
        s0, d0, k0 = stride[0], dilation[0], kernel[0]
        for n in range(N):
            for r0 in range(0, out_rows, rows):
                r1 = min(out_rows, r0 + rows)
                c = cols[:, :, : (r1 - r0) * per_row]
                matmul(wt, gym[n, :, :, r0 * per_row : r1 * per_row], out=c)
                target = gx[n, :, r0 * s0 : (r1 - 1) * s0 + d0 * (k0 - 1) + 1]
                fold_windows(c.reshape((C,) + kernel + (r1 - r0,) + outs[1:]), target.shape[1:], stride, dilation, out=target)
        return gx
    groups_of_samples = _sample_groups(x_shape, w.shape, stride, dilation, _batch_inner(N, P), gy.itemsize)
    if groups_of_samples is not None:
        gx = np.empty(x_shape, dtype=gy.dtype)
        for ns in groups_of_samples:
            gx[ns] = grad_input(gy[ns], w, (gy[ns].shape[0],) + tuple(x_shape[1:]), stride, dilation, groups)
        return gx
    if _batch_inner(N, P):
        cols = matmul(wt, _channels_major(gy, G))  # (G, Cg·K, N·P)
        cols = np.moveaxis(cols.reshape((C,) + kernel + (N,) + outs), 1 + nd, 0)  # (N, C, *K, *O) view
    else:
        cols = matmul(wt, gy.reshape(N, G, O // G, P)).reshape((N, C) + kernel + outs)
    if _pointwise(w.shape):
        cols = cols.reshape((N, C) + outs)
        if all(s == 1 for s in stride) and tuple(x_shape[2:]) == outs:
            return np.ascontiguousarray(cols)
        gx = np.zeros(x_shape, dtype=gy.dtype)
        gx[(slice(None), slice(None)) + tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, outs))] = cols
        return gx
    return fold_windows(cols, x_shape[2:], stride, dilation)


def grad_weight(x, gy, w_shape, stride, dilation, groups, pads=None):
    """One GEMM per group over all (batch, position) pairs: dW = gy (Og, N·P) @ cols (N·P, Cg·K)
    (blocked: the same sum, block by block)."""
    n = _lanes("grad_weight", chunks.padded_shape(x.shape, pads), w_shape, stride, dilation, groups, x.itemsize)
    if n > 1:
        from . import gemm_lanes

        return gemm_lanes.grad_weight(x, gy, w_shape, stride, dilation, groups, n, pads)
    x = _padded(x, pads)
    G = groups
    plan = _row_blocks(x.shape, w_shape, stride, dilation)
    if plan is not None:
        N, O = gy.shape[:2]
        gym = gy.reshape(N, G, O // G, -1)
        gw = np.zeros((G, O // G, int(np.prod(w_shape[1:]))), dtype=gy.dtype)
        tmp = np.empty_like(gw)
        for n, pos, cols in _blocks(x, w_shape, stride, dilation, plan):
            matmul(gym[n, :, :, pos], cols.reshape(G, gw.shape[2], -1).transpose(0, 2, 1), out=tmp)
            gw += tmp
        return gw.reshape(w_shape)
    groups_of_samples = _sample_groups(x.shape, w_shape, stride, dilation, True, x.itemsize)
    if groups_of_samples is not None:
        gw = grad_weight(x[groups_of_samples[0]], gy[groups_of_samples[0]], w_shape, stride, dilation, groups)
        for ns in groups_of_samples[1:]:
            gw += grad_weight(x[ns], gy[ns], w_shape, stride, dilation, groups)
        return gw
    cols, outs = _columns(x, w_shape[2:], stride, dilation, batch_inner=True)  # (C, *K, N, *O)
    cols = cols.reshape(G, -1, x.shape[0] * int(np.prod(outs)))
    gw = matmul(_channels_major(gy, G), cols.transpose(0, 2, 1))  # (G, Og, Cg·K)
    return gw.reshape(w_shape)
