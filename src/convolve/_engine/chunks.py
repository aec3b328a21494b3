"""Bounded memory: run one algorithm call in pieces so its temporaries stay under the cap.

Each algorithm reports the bytes of temporaries a call needs (`workspace`). When that exceeds the
cap, the call is split over the batch; when a single sample is still too big, over blocks of output
rows (the first spatial axis), each block reading only the input rows its windows cover. Forward
pieces are written into the output, grad-input pieces added into their (overlapping) input rows,
grad-weight pieces summed. One output row of one sample is the smallest piece.

Zero padding is applied per piece: each piece is cut from the unpadded input into a zero-filled
buffer of the piece's padded shape, so the padded copy of the whole input never exists, and the
buffer (and, for the input gradient, the padded gradient piece) counts against the cap. A negative
padding crops (the engine trims kernel taps that would read padding only, see `convolve._engine`).
The modes that copy input values into the padding (reflect, replicate, circular) are applied per
piece the same way, through `edges` (a gather, and a scatter-add for the input gradient).
"""

from __future__ import annotations

import numpy as np

from . import edges
from .windows import out_size

__all__ = ["padded_shape", "smallest_piece", "plan", "forward", "grad_input", "grad_weight"]


def padded_shape(x_shape, pads) -> tuple:
    """(N, C, *S) with each S[i] grown by its (before, after) padding (None: no padding)."""
    if pads is None:
        return tuple(x_shape)
    return tuple(x_shape[:2]) + tuple(s + a + b for s, (a, b) in zip(x_shape[2:], pads))


def _pads_copy(pads) -> bool:
    return pads is not None and any(p != 0 for pair in pads for p in pair)


def _rows_in(rows, stride, dilation, kernel):
    """Input rows that `rows` output rows read along the first spatial axis."""
    return (rows - 1) * stride + dilation * (kernel - 1) + 1


def _need(op, algo, shape, w_shape, stride, dilation, groups, itemsize, pads, mode="zeros"):
    """Bytes of temporaries for a piece of padded `shape`: the algorithm's, plus the padded copy
    (and the input gradient's padded piece) when the call pads, plus the copy modes' index arrays."""
    ws = algo.workspace(op, shape, w_shape, stride, dilation, groups, itemsize)
    if _pads_copy(pads):
        ws += (2 if op == "grad_input" else 1) * int(np.prod(shape)) * itemsize
        if mode != "zeros":
            ws += edges.index_bytes(shape[2:])
    return ws


def smallest_piece(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, pads=None, mode="zeros"):
    """Bytes of temporaries for one output row of one sample: the least any chunking can need."""
    xp = padded_shape(x_shape, pads)
    sub = (1, xp[1], min(xp[2], _rows_in(1, stride[0], dilation[0], w_shape[2]))) + tuple(xp[3:])
    return _need(op, algo, sub, w_shape, stride, dilation, groups, itemsize, pads, mode)


# plan's answers (they depend on the settings through the algorithms' workspace): a small call's
# workspace arithmetic costs more than its convolution. Bounded; errors are not stored.
_plans: dict = {}


def plan(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, cap, out_rows, pads=None, mode="zeros"):
    """(batch chunk, row chunk): None for the row chunk when whole samples fit."""
    from .config import settings

    key = (op, algo, tuple(x_shape), tuple(w_shape), tuple(stride), tuple(dilation), groups, itemsize, cap, out_rows,
           pads, mode, tuple(settings.values()))
    found = _plans.get(key)
    if found is None:
        found = _plan(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, cap, out_rows, pads, mode)
        if len(_plans) >= 4096:
            _plans.clear()
        _plans[key] = found
    return found


def _plan(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, cap, out_rows, pads, mode):
    xp = padded_shape(x_shape, pads)

    def need(shape):
        return _need(op, algo, shape, w_shape, stride, dilation, groups, itemsize, pads, mode)

    ws = need(xp)
    N = xp[0]
    if ws <= cap:
        return N, None
    per = need((1,) + tuple(xp[1:]))
    if per <= cap:  # part of `per` is fixed (kernel spectra, transformed kernels): count it once
        fixed = max(0, per - (ws - per) / (N - 1)) if N > 1 else 0
        return max(1, int((cap - fixed) // max(1, per - fixed))), None
    rows = max(1, int(out_rows * cap // per))
    while rows > 1:
        if need((1, xp[1], _rows_in(rows, stride[0], dilation[0], w_shape[2])) + tuple(xp[3:])) <= cap:
            break
        rows = max(1, rows // 2)
    if rows == 1:
        least = smallest_piece(op, algo, x_shape, w_shape, stride, dilation, groups, itemsize, pads, mode)
        if least > cap:
            raise ValueError(
                f"algorithm {algo.name!r} needs at least {least / 2**20:.1f} MiB of temporaries for this "
                f"convolution (input {tuple(xp)}, weight {tuple(w_shape)}), above the memory limit of "
                f"{cap / 2**20:.1f} MiB; raise the limit (convolve.engine_config.set_memory_limit) or let the "
                f"engine choose the algorithm"
            )
    return 1, rows


def _row_blocks(out_rows, rows, stride, dilation, kernel):
    for r0 in range(0, out_rows, rows):
        r1 = min(out_rows, r0 + rows)
        yield slice(r0, r1), slice(r0 * stride, r0 * stride + _rows_in(r1 - r0, stride, dilation, kernel))


def _real(spatial, rows, pads):
    """(piece slices, input slices) of the part of a padded piece that holds real input: the piece
    covers padded rows `rows` and all of the other axes; None if it holds none."""
    piece, real = [], []
    for i, (s, (a, _b)) in enumerate(zip(spatial, pads)):
        start, stop = (rows.start, rows.stop) if i == 0 else (0, s + a + _b)
        lo, hi = max(start - a, 0), min(stop - a, s)  # real positions the piece covers
        if hi <= lo:
            return None
        piece.append(slice(lo + a - start, hi + a - start))
        real.append(slice(lo, hi))
    return tuple(piece), tuple(real)


def _piece(x, n, rows, pads, mode="zeros"):
    """The padded piece of x: samples `n`, padded rows `rows`, all of the other axes (a view
    when there is no padding)."""
    if not _pads_copy(pads):
        return x[n, :, rows]
    if mode != "zeros":
        return edges.gather(x, n, rows, pads, mode)
    xp = padded_shape(x.shape, pads)
    nb = len(range(x.shape[0])[n])
    out = np.zeros((nb, x.shape[1], rows.stop - rows.start) + tuple(xp[3:]), dtype=x.dtype)
    cut = _real(x.shape[2:], rows, pads)
    if cut is not None:
        out[(slice(None), slice(None)) + cut[0]] = x[(n, slice(None)) + cut[1]]
    return out


def _inside(algo, op, pads, dilation, dtype, mode="zeros") -> bool:
    """Whether `algo` applies this zero padding itself, reading the unpadded input (and returning the
    unpadded input's gradient): no padded copy. Algorithms say so with an optional
    ``pads_inside(op, pads, dilation, dtype)`` and then take ``pads=`` in that call. Zero padding only."""
    f = getattr(algo, "pads_inside", None)
    return mode == "zeros" and _pads_copy(pads) and f is not None and f(op, pads, dilation, dtype)


def _add_real(gx, n, gp, rows, pads, mode="zeros"):
    """gx[n] += the real part of the padded gradient piece gp (padded rows `rows`); for the copy
    modes, the padding's part too, at the positions it copied."""
    if pads is not None and mode != "zeros":
        return edges.scatter_add(gx, n, gp, rows, pads, mode)
    cut = _real(gx.shape[2:], rows, pads) if pads is not None else None
    if pads is None:
        gx[n, :, rows] += gp
    elif cut is not None:
        gx[(n, slice(None)) + cut[1]] += gp[(slice(None), slice(None)) + cut[0]]


def forward(algo, x, w, bias, stride, dilation, groups, cap, pads=None, mode="zeros"):
    xp = padded_shape(x.shape, pads)
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(xp[2:], w.shape[2:], stride, dilation))
    nb, rows = plan("forward", algo, x.shape, w.shape, stride, dilation, groups, x.itemsize, cap, outs[0], pads, mode)
    N, every = x.shape[0], slice(0, xp[2])
    inside = rows is None and _inside(algo, "forward", pads, dilation, x.dtype, mode)
    if inside and nb >= N:
        return algo.forward(x, w, bias, stride, dilation, groups, pads=pads)
    if rows is None and nb >= N:
        return algo.forward(_piece(x, slice(None), every, pads, mode), w, bias, stride, dilation, groups)
    y = np.empty((N, w.shape[0]) + outs, dtype=x.dtype)
    for n0 in range(0, N, nb):
        n = slice(n0, n0 + nb)
        if inside:
            y[n] = algo.forward(x[n], w, bias, stride, dilation, groups, pads=pads)
            continue
        if rows is None:
            y[n] = algo.forward(_piece(x, n, every, pads, mode), w, bias, stride, dilation, groups)
            continue
        for ro, ri in _row_blocks(outs[0], rows, stride[0], dilation[0], w.shape[2]):
            y[n, :, ro] = algo.forward(_piece(x, n, ri, pads, mode), w, bias, stride, dilation, groups)
    return y


def grad_input(algo, gy, w, x_shape, stride, dilation, groups, cap, pads=None, mode="zeros"):
    x_shape = tuple(x_shape)
    xp = padded_shape(x_shape, pads)
    nb, rows = plan("grad_input", algo, x_shape, w.shape, stride, dilation, groups, gy.itemsize, cap, gy.shape[2],
                    pads, mode)
    N, padding = x_shape[0], _pads_copy(pads)
    pads = pads if padding else None
    inside = rows is None and _inside(algo, "grad_input", pads, dilation, gy.dtype, mode)
    if inside and nb >= N:
        return algo.grad_input(gy, w, x_shape, stride, dilation, groups, pads=pads)
    if rows is None and nb >= N and not padding:
        return algo.grad_input(gy, w, x_shape, stride, dilation, groups)
    gx = np.zeros(x_shape, dtype=gy.dtype)
    for n0 in range(0, N, nb):
        n = slice(n0, n0 + nb)
        sub = (len(range(N)[n]),) + xp[1:]
        if inside:
            gx[n] = algo.grad_input(gy[n], w, sub[:2] + x_shape[2:], stride, dilation, groups, pads=pads)
            continue
        if rows is None:
            _add_real(gx, n, algo.grad_input(gy[n], w, sub, stride, dilation, groups), slice(0, xp[2]), pads, mode)
            continue
        for ro, ri in _row_blocks(gy.shape[2], rows, stride[0], dilation[0], w.shape[2]):
            piece = sub[:2] + (ri.stop - ri.start,) + sub[3:]
            _add_real(gx, n, algo.grad_input(gy[n, :, ro], w, piece, stride, dilation, groups), ri, pads, mode)
    return gx


def grad_weight(algo, x, gy, w_shape, stride, dilation, groups, cap, pads=None, mode="zeros"):
    w_shape = tuple(w_shape)
    xp = padded_shape(x.shape, pads)
    nb, rows = plan("grad_weight", algo, x.shape, w_shape, stride, dilation, groups, x.itemsize, cap, gy.shape[2],
                    pads, mode)
    N, every = x.shape[0], slice(0, xp[2])
    inside = rows is None and _inside(algo, "grad_weight", pads, dilation, x.dtype, mode)
    if inside and nb >= N:
        return algo.grad_weight(x, gy, w_shape, stride, dilation, groups, pads=pads)
    if rows is None and nb >= N:
        return algo.grad_weight(_piece(x, slice(None), every, pads, mode), gy, w_shape, stride, dilation, groups)
    gw = np.zeros(w_shape, dtype=gy.dtype)
    for n0 in range(0, N, nb):
        n = slice(n0, n0 + nb)
        if inside:
            gw += algo.grad_weight(x[n], gy[n], w_shape, stride, dilation, groups, pads=pads)
            continue
        if rows is None:
            gw += algo.grad_weight(_piece(x, n, every, pads, mode), gy[n], w_shape, stride, dilation, groups)
            continue
        for ro, ri in _row_blocks(gy.shape[2], rows, stride[0], dilation[0], w_shape[2]):
            gw += algo.grad_weight(_piece(x, n, ri, pads, mode), gy[n, :, ro], w_shape, stride, dilation, groups)
    return gw
