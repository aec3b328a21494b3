"""Max and average pooling in 1, 2 and 3 spatial dimensions (PyTorch semantics)."""

from __future__ import annotations

import numpy as np

from .._engine.parallel import batch_slices, map_blocks
from .._engine.windows import tap_slices
from ..autograd import as_array, record
from ._args import (
    as_input,
    check_data_format,
    check_rank,
    compute_dtype,
    float_dtype,
    nonnegative,
    positive,
)
from .conv import _from_channels_first, _to_channels_first

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d"]


def _geometry(nd, spatial, kernel, stride, padding, dilation, ceil_mode, max_pad):
    """Output sizes and the extra end padding ceil_mode needs, checking PyTorch's limits."""
    outs, extra = [], []
    for i, (n, k, s, p, d) in enumerate(zip(spatial, kernel, stride, padding, dilation)):
        eff = d * (k - 1) + 1
        limit = max_pad(k, eff)
        if p > limit:
            raise ValueError(
                f"padding should be at most half of the kernel size ({limit}), but got padding={p} "
                f"for kernel_size={k}, dilation={d} in spatial dimension {i}"
            )
        span = n + 2 * p - eff
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p:  # the last window must start inside input or left pad
            o -= 1
        if o < 1 or span < 0:
            raise ValueError(
                f"output size is too small: input size {n} with padding {p} is smaller than the "
                f"kernel size {eff} (kernel {k}, dilation {d}) in spatial dimension {i}"
            )
        outs.append(o)
        extra.append(max(0, (o - 1) * s + eff - (n + 2 * p)))
    return tuple(outs), tuple(extra)


def _prepare(nd, op, input, kernel_size, stride, padding, dilation, ceil_mode, data_format, max_pad):
    x = as_input(input, "input")
    dtype = float_dtype("input", x)
    batched = check_rank(x, nd, "input", op)
    channels_last = check_data_format(data_format)
    kernel = positive(kernel_size, nd, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else positive(stride, nd, "stride")
    padding = nonnegative(padding, nd, "padding")
    dilation = positive(dilation, nd, "dilation")
    shape = as_array(x).shape if batched else (1,) + as_array(x).shape
    spatial = shape[1:-1] if channels_last else shape[2:]
    outs, extra = _geometry(nd, spatial, kernel, stride, padding, dilation, bool(ceil_mode), max_pad)
    h = _to_channels_first(x, nd, batched, channels_last, compute_dtype(dtype))
    return h, dtype, batched, channels_last, kernel, stride, padding, dilation, outs, extra


def _padded(a, padding, extra, fill):
    """`a` with `padding` on both sides and `extra` at the end of each spatial dim (no copy if none)."""
    interior = (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, a.shape[2:]))
    if not any(padding) and not any(extra):
        return a, interior
    out = np.full(a.shape[:2] + tuple(n + 2 * p + e for n, p, e in zip(a.shape[2:], padding, extra)), fill, a.dtype)
    out[interior] = a
    return out, interior


def _taps(kernel, stride, dilation, outs):
    """(tap number, the slice of the padded input that this kernel tap reads at every output)."""
    for i, tap in enumerate(np.ndindex(*kernel)):
        yield i, (Ellipsis,) + tap_slices(tap, stride, dilation, outs)


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, data_format):
    h, dtype, batched, cl, kernel, stride, padding, dilation, outs, extra = _prepare(
        nd, f"max_pool{nd}d", input, kernel_size, stride, padding, dilation, ceil_mode, data_format,
        max_pad=lambda k, eff: k // 2,
    )
    a = as_array(h)
    has_nan = bool(np.isnan(a).any())
    tiled = stride == kernel and not any(padding) and set(dilation) == {1} and not any(extra)  # ceil_mode may add
    if tiled and not return_indices and not has_nan:
        y, backward = _max_pool_tiles(a, kernel, outs)
        return _from_channels_first(record(y, (h,), backward), nd, batched, cl, dtype)
    xp, interior = _padded(a, padding, extra, -np.inf)
    # One pass per kernel tap over output-sized views: no copy of the windows. Like PyTorch, the
    # first maximum in window order wins and a NaN beats everything (the last NaN, as PyTorch).
    count = int(np.prod(kernel))
    arg = np.zeros(a.shape[:2] + outs, dtype=np.int16 if count < 2**15 else np.int64)
    y = None
    for i, taps in _taps(kernel, stride, dilation, outs):
        v = xp[taps]
        if y is None:
            y = v.copy()
            continue
        better = v > y
        if has_nan:
            better |= np.isnan(v)
        np.copyto(y, v, where=better)
        np.copyto(arg, i, where=better)

    def backward(g):
        gx = np.zeros(xp.shape, dtype=g.dtype)
        for i, taps in _taps(kernel, stride, dilation, outs):
            gx[taps] += np.where(arg == i, g, 0)
        return (gx[interior],)

    out = _from_channels_first(record(y, (h,), backward), nd, batched, cl, dtype)
    if not return_indices:
        return out
    # flat index into each input plane, as PyTorch returns
    taps = np.unravel_index(arg, kernel)
    index = np.zeros(arg.shape, dtype=np.int64)
    for i in range(nd):
        pos = np.arange(outs[i]).reshape((-1,) + (1,) * (nd - 1 - i)) * stride[i] + taps[i] * dilation[i] - padding[i]
        index = index * a.shape[2 + i] + pos
    index = _from_channels_first(index, nd, batched, cl, np.dtype(np.int64))
    return out, index


def _max_pool_tiles(a, kernel, outs):
    """Max pooling over non-overlapping windows (stride == kernel, no padding or dilation, no NaN).

    The input is viewed as tiles (N, C, O1, K1, O2, K2, ...) without a copy. The window axes are
    reduced last one first, each keeping the first maximum: that yields the first maximum in window
    (row-major) order, as PyTorch picks. The backward undoes the levels in reverse, routing the
    gradient to the pick of each level: a few whole-array passes instead of one per tap. Parts of
    the batch run on the engine's threads.
    """
    crop = (Ellipsis,) + tuple(slice(0, o * k) for o, k in zip(outs, kernel))  # floor mode drops the rest
    tiles = a.shape[:2] + tuple(v for ok in zip(outs, kernel) for v in ok)
    y = np.empty(a.shape[:2] + outs, a.dtype)
    parts = batch_slices(a.shape[0], a.nbytes)
    picks = map_blocks(lambda s: _tile_picks(a[s][crop].reshape((-1,) + tiles[1:]), y[s]), parts)

    def backward(g):
        # multiplying by the pick is one fast pass; a non-finite gradient must not leak to unpicked places
        finite = bool(np.isfinite(g).all())
        whole = all(o * k == n for o, k, n in zip(outs, kernel, a.shape[2:]))
        gx = np.empty(a.shape, g.dtype) if whole else np.zeros(a.shape, g.dtype)

        def part(i):
            s = parts[i]
            if whole:  # the last level writes straight into gx
                _tile_route(g[s], picks[i], finite, gx[s].reshape((-1,) + tiles[1:]))
            else:
                routed = _tile_route(g[s], picks[i], finite)
                gx[s][crop] = routed.reshape(gx[s][crop].shape)

        map_blocks(part, range(len(parts)))
        return (gx,)

    return y, backward


def _tile_picks(y, out):
    """Reduce the window axes of tiles `y` into `out`; return the picks, per level (axis, k, pick)."""
    levels = []
    window_axes = list(range(3, y.ndim, 2))
    for axis in reversed(window_axes):
        k = y.shape[axis]
        last = axis == window_axes[0]
        tap = lambda j: y[(slice(None),) * axis + (j,)]  # noqa: E731 - a view, not a copy
        if k == 2:  # the common 2x2 pool: one comparison, one maximum
            pick = tap(1) > tap(0)
            best = np.maximum(tap(0), tap(1), out=out if last else None)
        else:
            best = out if last else np.empty(tap(0).shape, y.dtype)
            best[...] = tap(0)
            pick = np.zeros(best.shape, np.int8 if k < 128 else np.int64)
            for j in range(1, k):
                v = tap(j)
                better = v > best
                np.maximum(best, v, out=best)
                pick += better * (j - pick)  # arithmetic: much faster than copyto(where=) or np.where
        levels.append((axis, k, pick))
        y = best
    return levels


def _tile_route(g, levels, finite, dest=None):
    """The gradient `g` of the pooled output sent back through the picks: tiles-shaped (into `dest`)."""
    for axis, k, pick in reversed(levels):
        shape = g.shape[:axis] + (k,) + g.shape[axis:]
        out = dest if axis == levels[0][0] and dest is not None else np.empty(shape, g.dtype)
        slots = [out[(slice(None),) * axis + (j,)] for j in range(k)]
        if finite and k == 2:  # g·[pick] and g - g·[pick] (exact for finite g)
            np.multiply(g, pick, out=slots[1])
            np.subtract(g, slots[1], out=slots[0])
        else:
            for j, slot in enumerate(slots):
                if finite:
                    np.multiply(g, pick == j, out=slot)
                else:
                    slot[...] = np.where(pick == j, g, 0)
        g = out
    return g


def _divisor(spatial, kernel, stride, padding, outs, count_include_pad, divisor_override):
    if divisor_override is not None:
        return float(divisor_override)
    div = np.ones((), dtype=np.float64)
    for n, k, s, p, o in zip(spatial, kernel, stride, padding, outs):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        size = end - start if count_include_pad else np.minimum(end, n) - np.maximum(start, 0)
        div = np.multiply.outer(div, size)
    return div


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, data_format):
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0):
        raise ValueError(f"divisor_override must be a non-zero int or None, but got {divisor_override!r}")
    h, dtype, batched, cl, kernel, stride, padding, dilation, outs, extra = _prepare(
        nd, f"avg_pool{nd}d", input, kernel_size, stride, padding, 1, ceil_mode, data_format,
        max_pad=lambda k, eff: k // 2,
    )
    a = as_array(h)
    xp, interior = _padded(a, padding, extra, 0)
    div = np.asarray(_divisor(a.shape[2:], kernel, stride, padding, outs, count_include_pad, divisor_override), a.dtype)
    y = np.zeros(a.shape[:2] + outs, dtype=a.dtype)
    for _, taps in _taps(kernel, stride, dilation, outs):
        y += xp[taps]
    y /= div

    def backward(g):
        share = g / div
        gx = np.zeros(xp.shape, dtype=g.dtype)
        for _, taps in _taps(kernel, stride, dilation, outs):
            gx[taps] += share
        return (gx[interior],)

    return _from_channels_first(record(y, (h,), backward), nd, batched, cl, dtype)


_MAX_DOC = """{nd}-D max pooling: each output is the largest value in its window.

Parameters
----------
input : ndarray or Tensor
    {shape} or unbatched; channels-last with ``data_format='channels_last'``.
kernel_size, stride, padding, dilation : int or tuple of {nd} ints
    stride defaults to kernel_size; padding (implicit -inf) is at most half the effective kernel.
ceil_mode : bool
    Use ceil instead of floor for the output size; a window must still start inside the input
    or the left padding.
return_indices : bool
    Also return the flat index (within each input plane) of every maximum.

Shape
-----
``out = floor_or_ceil((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1`` per spatial dim.
"""

_AVG_DOC = """{nd}-D average pooling: each output is the mean of its window.

Parameters
----------
input : ndarray or Tensor
    {shape} or unbatched; channels-last with ``data_format='channels_last'``.
kernel_size, stride, padding : int or tuple of {nd} ints
    stride defaults to kernel_size; padding (zeros) is at most half the kernel.
ceil_mode : bool
    As in max pooling; windows hanging past the padding divide by the part that fits.
count_include_pad : bool
    Whether zero padding counts in the divisor.
divisor_override : int, optional
    Divide by this instead.

Shape
-----
``out = floor_or_ceil((in + 2*padding - kernel) / stride) + 1`` per spatial dim.
"""

_SHAPE = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _make(nd):
    def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
                 *, data_format="channels_first"):
        return _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, data_format)

    def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, *, data_format="channels_first"):
        return _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                         data_format)

    max_pool.__name__ = max_pool.__qualname__ = f"max_pool{nd}d"
    avg_pool.__name__ = avg_pool.__qualname__ = f"avg_pool{nd}d"
    max_pool.__doc__ = _MAX_DOC.format(nd=nd, shape=_SHAPE[nd])
    avg_pool.__doc__ = _AVG_DOC.format(nd=nd, shape=_SHAPE[nd])
    return max_pool, avg_pool


(max_pool1d, avg_pool1d), (max_pool2d, avg_pool2d), (max_pool3d, avg_pool3d) = (_make(n) for n in (1, 2, 3))
