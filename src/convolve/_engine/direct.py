"""Direct convolution: one multiply-add per kernel tap, no im2col columns.

For small and thin layers (LeNet-sized: a few channels, 5x5 kernels, 28x28 images) the columns of
im2col cost more to write than a GEMM saves. The compiled kernels (`kernels.direct`, 1-D and 2-D)
do every tap as a row-long multiply-add inside one (sample, output channel) plane that stays in
cache; elsewhere (the tier off, 3-D) the NumPy twin below runs: per tap and group, one small
matrix product ``y[:, group] += w[group, :, tap] @ x[:, group, under the tap]``.

Gradients: grad input adds ``w[:, :, tap]ᵀ @ gy`` back under each tap; grad weight sums
``gy · x under the tap`` over the batch and positions (derivation in `convolve._engine`).
"""

from __future__ import annotations

import numpy as np

from . import _cost, kernels
from .windows import out_size, tap_slices

__all__ = ["name", "local", "reach", "supports", "workspace", "cost", "compiled", "pads_inside", "forward", "grad_input",
           "grad_weight", "padded_call", "zero_padded", "unpadded"]

name = "direct"
local = True  # each output is a sum over its own window, tap by tap
reach = 0
RATE = {4: 60e9, 8: 30e9}  # flop/s of the compiled kernels on rows long enough to vectorise (2 threads)
WIDE_RATE = {4: 90e9, 8: 50e9}  # flop/s of the wide-layout forward (`kernels.direct_wide`), one thread
# Taps per output (C/groups·K) from which the wide forward's estimate applies; below, its fixed work per
# output (fill, crop) is as large as the taps and it measured level with im2col + GEMM through the engine
# (3x3 on one channel, 32 kernels, batch 32 / 128: 0.30 / 1.40 ms vs 0.28 / 1.40), so the row kernels'
# higher estimate stays and leaves those layers to gemm (depthwise layers run the wide kernel either way).
WIDE_MIN_TAPS = 16
MOST_PER_OUTPUT = 256  # Cg·K above this the planes no longer stay in cache: left to im2col + GEMM


def supports(op, x_shape, w_shape, stride, dilation, groups):
    """None: every convolution is supported."""
    return None


def workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Bytes of temporaries: one output-sized array (the twin's per-tap product)."""
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))
    return x_shape[0] * max(w_shape[0], x_shape[1]) * int(np.prod(outs)) * itemsize


def cost(op, x_shape, w_shape, stride, dilation, groups, itemsize):
    """Seconds: the multiply-adds at the compiled kernels' rate, lower for short rows (the vector
    width is 8-16) and strided reads, plus a fixed cost per plane element (zeroing or initialising
    the accumulator, writing it out: ~1-1.5 ns per float32 output on one core, measured on LeNet-sized
    layers); the weight gradient at half the forward's rate (it reads two planes per multiply-add
    and keeps row-long partial sums; measured 1.7-2.5x the forward on five small layers). inf
    without the compiled tier (the twin is for tests and `algorithm="direct"`) and for wide layers,
    where im2col + GEMM is the better plan."""
    nd = len(x_shape) - 2
    CgK = w_shape[1] * int(np.prod(w_shape[2:]))
    if not compiled(nd, np.float32 if itemsize == 4 else np.float64) or CgK > MOST_PER_OUTPUT:
        return float("inf")
    outs = _outs(x_shape, w_shape, stride, dilation)
    if op == "forward" and CgK >= WIDE_MIN_TAPS and _wide(x_shape, outs, stride, dilation):
        macs = x_shape[0] * w_shape[0] * CgK * int(np.prod(outs)) * x_shape[-1] / outs[-1]  # dropped columns too
        moved = (int(np.prod(x_shape)) + x_shape[0] * w_shape[0] * int(np.prod(outs))) * itemsize
        return 2 * macs / WIDE_RATE[itemsize] + moved / _cost.CACHE_RATE + 3 * _cost.CALL
    row = outs[-1]
    eff = row / (row + 16) / (1 if stride[-1] == 1 else 2)
    flops = 2 * x_shape[0] * w_shape[0] * CgK * int(np.prod(outs))
    swept = int(np.prod(x_shape)) if op == "grad_input" else x_shape[0] * w_shape[0] * int(np.prod(outs))
    seconds = flops / (RATE[itemsize] * eff) + 3 * swept * itemsize / _cost.MEM_RATE
    return (2 if op == "grad_weight" else 1) * seconds + 3 * _cost.CALL


def _wide(x_shape, outs, stride, dilation) -> bool:
    """Whether the compiled forward runs on the wide layout (`kernels.direct_wide`; only asked with the tier on)."""
    from .kernels import direct_wide

    return all(s == 1 for s in stride) and all(d == 1 for d in dilation) and direct_wide.pays(x_shape[-1], outs[-1])


def compiled(ndim, dtype) -> bool:
    """Whether the compiled kernels run a call with `ndim` spatial axes and this dtype."""
    return ndim in (1, 2) and np.dtype(dtype) in (np.float32, np.float64) and kernels.enabled()


def _as2d(a, nd):
    """1-D arrays as 2-D with one row: (N, C, L) -> (N, C, 1, L)."""
    return a.reshape(a.shape[:2] + (1,) + a.shape[2:]) if nd == 1 else a


def _pair(t, nd, one=1):
    return (one,) + tuple(t) if nd == 1 else tuple(t)


def _outs(x_shape, w_shape, stride, dilation):
    return tuple(out_size(s, k, st, d) for s, k, st, d in zip(x_shape[2:], w_shape[2:], stride, dilation))


def _run_compiled(kind, a, b, out_shape, stride, dilation, groups, nd, **extra):
    """One compiled direct kernel (`kind`) on contiguous operands (1-D as one-row 2-D); a's dtype throughout."""
    from .kernels import direct as kd

    out = np.empty(out_shape, dtype=a.dtype)
    kd.run(kind, np.ascontiguousarray(_as2d(a, nd)), np.ascontiguousarray(_as2d(b, nd), dtype=a.dtype),
           _pair(stride, nd), _pair(dilation, nd), groups, _as2d(out, nd), **extra)
    return out


PADS_INSIDE = ("forward", "grad_input")  # the ops that take their zero padding themselves (`pads_inside`)


def pads_inside(op, pads, dilation, dtype, ops=PADS_INSIDE) -> bool:
    """Whether this call takes its zero padding itself (`chunks`): the forward and the input gradient
    with the compiled tier, 2-D. At stride 1 each job pads the planes it reads (or crops the plane it
    writes) in its own scratch, no padded copy of x or of its gradient (MobileNet dw forward, one thread:
    2.8 -> 2.0 ms); otherwise `padded_call` says no and the op pads x (crops the gradient) itself, as
    `chunks` would. The weight gradient reads x's planes once per output channel of a group and pads
    them each time: only depthwise layers (`depthwise.pads_inside`) take it."""
    return op in ops and len(pads) == 2 and compiled(2, dtype) and all(a >= 0 and b >= 0 for a, b in pads)


def padded_call(op, a, b, out_shape, stride, dilation, groups, pads, bias=None):
    """`op` of the compiled stride-1 kernels on x zero-padded by `pads` ((before, after) per axis) with
    no padded copy; None where they do not take it (another stride or dilation, a forward whose wide
    layout would not pay). a, b: (x, w), (gy, w) or (x, gy); out_shape: y's, the unpadded x's or w's."""
    (top, bottom), (left, right) = pads
    x_shape = tuple(a.shape) if op != "grad_input" else tuple(out_shape)
    padded = x_shape[:2] + (x_shape[2] + top + bottom, x_shape[3] + left + right)
    w_shape = b.shape if op != "grad_weight" else out_shape
    outs = _outs(padded, w_shape, stride, dilation)
    unit = all(s == 1 for s in stride) and all(d == 1 for d in dilation)
    if not unit or min(outs) <= 0 or not compiled(2, a.dtype) or (op == "forward" and not _wide(padded, outs, stride, dilation)):
        return None
    from .kernels import direct as kd

    out = np.empty(tuple(out_shape) if op != "forward" else (a.shape[0], w_shape[0]) + outs, dtype=a.dtype)
    if op == "forward":
        bias = np.zeros(w_shape[0], dtype=a.dtype) if bias is None else np.ascontiguousarray(bias, dtype=a.dtype)
    kd.run_padded(op, np.ascontiguousarray(a), np.ascontiguousarray(b, dtype=a.dtype), groups, top, left, out, bias=bias)
    return out


def zero_padded(x, pads):
    """x zero-padded by `pads` ((before, after) per spatial axis)."""
    return np.pad(x, ((0, 0), (0, 0)) + tuple(tuple(p) for p in pads))


def unpadded(gx, pads):
    """The part of a padded input's gradient that belongs to the unpadded input."""
    return np.ascontiguousarray(gx[(slice(None), slice(None)) + tuple(slice(a, s - b) for (a, b), s in zip(pads, gx.shape[2:]))])


def forward(x, w, bias, stride, dilation, groups, pads=None):
    if pads is not None:  # only when `pads_inside` said yes
        y = padded_call("forward", x, w, None, stride, dilation, groups, pads, bias)
        if y is not None:
            return y
        x = zero_padded(x, pads)
    nd = x.ndim - 2
    outs = _outs(x.shape, w.shape, stride, dilation)
    if compiled(nd, x.dtype):
        b = np.zeros(w.shape[0], dtype=x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)
        return _run_compiled("forward", x, w, (x.shape[0], w.shape[0]) + outs, stride, dilation, groups, nd, bias=b)
    N, O = x.shape[0], w.shape[0]
    G, Og, Cg = groups, O // groups, w.shape[1]
    y = np.zeros((N, G, Og) + outs, dtype=x.dtype)
    xg = x.reshape((N, G, Cg) + x.shape[2:])
    wg = w.reshape((G, Og, Cg) + w.shape[2:])
    for k in np.ndindex(*w.shape[2:]):
        xk = xg[(slice(None),) * 3 + tap_slices(k, stride, dilation, outs)]  # (N, G, Cg, *O)
        y += np.einsum("gij,ngj...->ngi...", wg[(Ellipsis,) + k], xk)
    y = y.reshape((N, O) + outs)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * nd)
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups, pads=None):
    if pads is not None:  # only when `pads_inside` said yes: the unpadded x's gradient
        gx = padded_call("grad_input", gy, w, x_shape, stride, dilation, groups, pads)
        if gx is not None:
            return gx
        full = tuple(x_shape[:2]) + tuple(s + a + b for s, (a, b) in zip(x_shape[2:], pads))
        return unpadded(grad_input(gy, w, full, stride, dilation, groups), pads)
    nd = gy.ndim - 2
    if compiled(nd, gy.dtype):
        return _run_compiled("grad_input", gy, w, x_shape, stride, dilation, groups, nd)
    N, O = gy.shape[:2]
    G, Og, Cg = groups, O // groups, w.shape[1]
    outs = gy.shape[2:]
    gx = np.zeros((N, G, Cg) + tuple(x_shape[2:]), dtype=gy.dtype)
    gyg = gy.reshape((N, G, Og) + outs)
    wg = w.reshape((G, Og, Cg) + w.shape[2:])
    for k in np.ndindex(*w.shape[2:]):
        gx[(slice(None),) * 3 + tap_slices(k, stride, dilation, outs)] += np.einsum("gij,ngi...->ngj...", wg[(Ellipsis,) + k], gyg)
    return gx.reshape(x_shape)


def grad_weight(x, gy, w_shape, stride, dilation, groups):
    nd = x.ndim - 2
    if compiled(nd, x.dtype):
        return _run_compiled("grad_weight", x, gy, w_shape, stride, dilation, groups, nd)
    N, O = gy.shape[:2]
    G, Og, Cg = groups, O // groups, w_shape[1]
    outs = gy.shape[2:]
    gw = np.empty((G, Og, Cg) + tuple(w_shape[2:]), dtype=gy.dtype)
    xg = x.reshape((N, G, Cg) + x.shape[2:])
    gyg = gy.reshape((N, G, Og) + outs)
    axes = "abc"[:nd]
    for k in np.ndindex(*w_shape[2:]):
        xk = xg[(slice(None),) * 3 + tap_slices(k, stride, dilation, outs)]
        gw[(Ellipsis,) + k] = np.einsum(f"ngi{axes},ngj{axes}->gij", gyg, xk)
    return gw.reshape(w_shape)
