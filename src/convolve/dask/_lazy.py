"""Conv and pooling on ``dask.array.Array`` inputs: lazy, blockwise, the same numbers as in memory.

Along each spatial axis the input is padded at its true border only (``dask.array.pad``, every
padding mode), then cut into output blocks that follow the input's chunks with every boundary
moved to a multiple of the stride; output block ``[j0, j1)`` reads the padded interval
``[j0*stride, (j1-1)*stride + extent)`` with ``extent = dilation*(kernel-1) + 1`` -- its own
chunk plus a halo of ``extent - stride`` -- and runs the in-memory op on it with no padding.
Nothing is computed when the op is called; validation runs the in-memory op once on a small
zero-filled stand-in of the same dtype, channels and layout, so errors match the in-memory ones.

Sums over a block use the same engine as in memory; when the engine picks another algorithm for
a block's shape than for the whole image, float results can differ in the last bits (the
algorithms agree to float rounding; forcing ``algorithm=`` makes them identical).
"""

from __future__ import annotations

from typing import Any

from functools import partial

import numpy as np

from ..autograd import Tensor, as_array
from ..functional import conv as _conv_mod
from ..functional import pool as _pool_mod
from .._shared.checks import check_ints
from .._geometry import pool_output
from .._geometry import padding_pairs, same_padding
from .._shared.dtypes import compute_dtype
from ._blocks import chunk_starts, gather_map
from ._require import is_dask_array, require

__all__ = ["conv", "max_pool", "avg_pool", "stride_blocks"]

_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def stride_blocks(chunks, before, extent, stride, out):
    """Output blocks along one axis that follow the input `chunks`, boundaries at multiples of `stride`.

    Parameters
    ----------
    chunks : tuple of int
        Chunk sizes of the unpadded input along the axis.
    before : int
        Padding before the input (the padded array is what blocks index).
    extent, stride, out : int
        Window extent ``dilation*(kernel-1) + 1``, stride and the number of outputs.

    Returns
    -------
    intervals : list of (start, stop)
        The padded-input interval each output block reads.
    sizes : list of int
        Outputs per block.
    """
    inner = chunk_starts(chunks)[1:-1]
    bounds = sorted({0, out} | {(a + before) // stride for a in inner if 0 < (a + before) // stride < out})
    blocks = list(zip(bounds[:-1], bounds[1:]))
    return [(j0 * stride, (j1 - 1) * stride + extent) for j0, j1 in blocks], [j1 - j0 for j0, j1 in blocks]


# --- layout: any accepted layout <-> (N, C, *S) with one chunk along C ------------------------------


def _layout(x, nd, data_format):
    """(batched, channels_last, spatial sizes) of a dask input, or None when the rank is wrong."""
    if x.ndim not in (nd + 1, nd + 2) or data_format not in ("channels_first", "channels_last"):
        return None
    batched, cl = x.ndim == nd + 2, data_format == "channels_last"
    first = (1 if batched else 0) + (0 if cl else 1)
    return batched, cl, tuple(int(v) for v in x.shape[first:first + nd]), first


def _stand_in(x, nd, layout, sizes):
    """Zeros like `x` (dtype, channels, layout) with batch 1 and spatial sizes `sizes`."""
    if layout is None:
        return np.broadcast_to(np.zeros((), x.dtype), x.shape)  # no memory; the in-memory op names the rank
    batched, _, _, first = layout
    shape = list(x.shape)
    if batched:
        shape[0] = min(int(shape[0]), 1)
    shape[first:first + nd] = sizes
    return np.zeros(tuple(shape), x.dtype)


def _validate(call, x, stand_in):
    """Run the in-memory op on the stand-in; its errors say what is wrong with `x` too."""
    try:
        return call(stand_in)
    except (TypeError, ValueError) as err:
        if stand_in.shape == tuple(x.shape):
            raise
        raise type(err)(f"{err} (checked on an in-memory stand-in of shape {stand_in.shape} for the dask "
                        f"array of shape {tuple(x.shape)})") from None


def _channels_first(x, layout):
    da = require("dask.array")
    batched, cl, _, _ = layout
    h = x if batched else x[None]
    if cl:
        h = da.moveaxis(h, -1, 1)
    return h.rechunk({1: -1})  # conv mixes all channels of a position: one chunk along C


def _restore(y, layout):
    da = require("dask.array")
    batched, cl, _, _ = layout
    if cl:
        y = da.moveaxis(y, 1, -1)
    return y if batched else y[0]


def _in_memory(v, name):
    if v is None:
        return None
    if is_dask_array(v):
        raise TypeError(f"{name} must be an in-memory array (ndarray or Tensor) when the input is a dask "
                        f"array; call .compute() on it first")
    if isinstance(v, Tensor) and v.requires_grad:
        raise TypeError(f"{name} requires grad, but dask arrays record no gradients; pass {name}.detach() or "
                        f"its .data (the lazy ops are for inference)")
    return np.asarray(as_array(v))


def _pad(h, pairs, mode, value=0):
    da = require("dask.array")
    if not any(p for pair in pairs for p in pair):
        return h
    width = ((0, 0), (0, 0)) + tuple(pairs)
    if mode == "constant":
        return da.pad(h, width, mode="constant", constant_values=value)
    return da.pad(h, width, mode=mode)


# --- convolution ------------------------------------------------------------------------------------


def _conv_block(fn, stride, dilation, groups, algorithm, block, index, w, b):
    return fn(block, w, b, stride, 0, dilation, groups, algorithm=algorithm)


def conv(nd: Any, input: Any, weight: Any, bias: Any, stride: Any,
         padding: Any, dilation: Any, groups: Any, padding_mode: Any, data_format: Any, algorithm: Any) -> Any:
    """``convNd`` on a dask array: a lazy dask array (see the module docstring)."""
    fn = getattr(_conv_mod, f"conv{nd}d")
    w, b = _in_memory(weight, "weight"), _in_memory(bias, "bias")
    layout = _layout(input, nd, data_format)
    pairs, sizes = padding, None
    if layout is not None and w.ndim == nd + 2:
        spatial, kernel = layout[2], w.shape[2:]
        st, dl = check_ints("stride", stride, nd, minimum=1), check_ints("dilation", dilation, nd, minimum=1)
        if isinstance(padding, str):
            pairs = same_padding(spatial, kernel, st, dl) if padding == "same" else (
                ((0, 0),) * nd if padding == "valid" else padding)
        else:
            pairs = padding_pairs(padding, nd)
        if not isinstance(pairs, str):  # a stand-in big enough for every size check, as small as can be
            sizes = tuple(min(n, d * (k - 1) + 1 + pb + pe + s + 1)
                          for n, k, d, s, (pb, pe) in zip(spatial, kernel, dl, st, pairs))
    stand_in = _stand_in(input, nd, layout, sizes or (layout[2] if layout else None))
    small = _validate(lambda z: fn(z, w, b, stride, pairs, dilation, groups, padding_mode,
                                   data_format=data_format, algorithm=algorithm), input, stand_in)
    h = _pad(_channels_first(input, layout), pairs, _PAD_MODE[padding_mode])
    extents = [d * (k - 1) + 1 for k, d in zip(w.shape[2:], dl)]
    outs = [(n + pb + pe - e) // s + 1 for n, (pb, pe), e, s in zip(layout[2], pairs, extents, st)]
    intervals, block_sizes = _plan_unpadded(input, layout, pairs, extents, st, outs)
    func = partial(_conv_block, fn, st, dl, int(groups), algorithm)
    y = gather_map(h, intervals, block_sizes, func, w.shape[0], small.dtype, constants=(w, b), name=f"conv{nd}d")
    return _restore(y, layout)


def _plan_unpadded(input, layout, pairs, extents, strides, outs):
    """Blocks follow the chunks of the unpadded input (padding adds no boundaries of its own)."""
    h = _channels_first(input, layout)
    intervals, sizes = [], []
    for axis, ((pb, _), e, s, o) in enumerate(zip(pairs, extents, strides, outs)):
        iv, sz = stride_blocks(h.chunks[2 + axis], pb, e, s, o)
        intervals.append(iv)
        sizes.append(sz)
    return intervals, sizes


# --- pooling ----------------------------------------------------------------------------------------


def _pool_setup(nd, input, kernel_size, stride, padding, dilation, data_format):
    layout = _layout(input, nd, data_format)
    kernel = check_ints("kernel_size", kernel_size, nd, minimum=1)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    st = kernel if no_stride else check_ints("stride", stride, nd, minimum=1)
    pad = check_ints("padding", padding, nd, minimum=0)
    dl = check_ints("dilation", dilation, nd, minimum=1)
    sizes = None
    if layout is not None:
        sizes = tuple(min(n, d * (k - 1) + 1 + 2 * p + s + 1) for n, k, d, s, p in zip(layout[2], kernel, dl, st, pad))
    return layout, kernel, st, pad, dl, _stand_in(input, nd, layout, sizes)


def _max_block(fn, kernel, stride, dilation, block, index):
    return fn(block, kernel, stride, 0, dilation)


def _max_block_indices(fn, win, spatial, starts, block, index):
    """Max pooling of one block with PyTorch's indices: flat positions in the whole, unpadded input plane."""
    y, local = fn(block, win.kernel, win.stride, 0, win.dilation, False, True)
    nd, coords = len(spatial), np.unravel_index(local, block.shape[2:])
    # the tap each output picked, from its position in the block (windows start every stride)
    taps = tuple((c - np.arange(n).reshape((-1,) + (1,) * (nd - 1 - i)) * s) // d
                 for i, (c, n, s, d) in enumerate(zip(coords, y.shape[2:], win.stride, win.dilation)))
    arg = np.ravel_multi_index(taps, win.kernel)
    first = tuple(starts[a][m] for a, m in enumerate(index))  # the block's first output, per axis
    arg = _pool_mod.in_bounds_picks(arg, win, spatial, first)  # the block's padding is -inf values, not skipped
    return y, _pool_mod._flat_indices(arg, win, spatial, first)


def max_pool(nd: Any, input: Any, kernel_size: Any, stride: Any,
             padding: Any, dilation: Any, ceil_mode: Any, return_indices: Any, data_format: Any) -> Any:
    """``max_poolNd`` on a dask array: a lazy dask array, or with `return_indices` two of them (values,
    int64 flat indices into each input plane) sharing one task per block.

    Each window is pooled whole inside one block, over the same values in the same tap order as in
    memory, so the tie rule (the first maximum, the last NaN) picks the same tap; the one difference,
    a window whose input values are all -inf picking a tap in the block's explicit -inf padding, is
    moved to the window's first tap inside the input as in memory (``in_bounds_picks``).
    """
    fn = getattr(_pool_mod, f"max_pool{nd}d")
    layout, kernel, st, pad, dl, stand_in = _pool_setup(nd, input, kernel_size, stride, padding, dilation,
                                                        data_format)
    small = _validate(lambda z: fn(z, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                                   data_format=data_format), input, stand_in)
    outs, extra = pool_output(layout[2], kernel, st, pad, dl, bool(ceil_mode))
    pairs = tuple((p, p + x) for p, x in zip(pad, extra))
    h = _pad(_channels_first(input, layout), pairs, "constant", -np.inf)
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dl)]
    intervals, sizes = _plan_unpadded(input, layout, pairs, extents, st, outs)
    if not return_indices:
        func = partial(_max_block, fn, kernel, st, dl)
        y = gather_map(h, intervals, sizes, func, h.shape[1], small.dtype, name=f"max_pool{nd}d")
        return _restore(y, layout)
    win = _pool_mod.PoolWindow(kernel, st, pad, dl, tuple(outs), tuple(extra))
    starts = [chunk_starts(sz)[:-1] for sz in sizes]
    func = partial(_max_block_indices, fn, win, layout[2], starts)
    y, idx = gather_map(h, intervals, sizes, func, h.shape[1], (small[0].dtype, np.dtype(np.int64)),
                        name=f"max_pool{nd}d")
    return _restore(y, layout), _restore(idx, layout)


def _avg_block(fn, kernel, stride, cdt, dtype, divisors, starts, block, index):
    total = fn(block.astype(cdt, copy=False), kernel, stride, 0, False, True, 1)  # window sums (/ 1, exact)
    if np.isscalar(divisors):
        div = np.asarray(divisors, cdt)
    else:  # the divisor is a product of one factor per axis (as in memory, multiplied in float64)
        div = np.ones((), np.float64)
        for d, s, m, n in zip(divisors, starts, index, total.shape[2:]):
            div = np.multiply.outer(div, d[s[m]:s[m] + n])
        div = np.asarray(div, cdt)
    return (total / div).astype(dtype, copy=False)


def avg_pool(nd: Any, input: Any, kernel_size: Any, stride: Any,
             padding: Any, ceil_mode: Any, count_include_pad: Any, divisor_override: Any, data_format: Any) -> Any:
    """``avg_poolNd`` on a dask array: a lazy dask array (see the module docstring)."""
    fn = getattr(_pool_mod, f"avg_pool{nd}d")
    layout, kernel, st, pad, dl, stand_in = _pool_setup(nd, input, kernel_size, stride, padding, 1, data_format)
    small = _validate(lambda z: fn(z, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                                   data_format=data_format), input, stand_in)
    outs, extra = pool_output(layout[2], kernel, st, pad, dl, bool(ceil_mode))
    pairs = tuple((p, p + x) for p, x in zip(pad, extra))
    h = _pad(_channels_first(input, layout), pairs, "constant", 0)
    intervals, sizes = _plan_unpadded(input, layout, pairs, list(kernel), st, outs)
    divisors: Any
    if divisor_override is not None:
        divisors = float(divisor_override)
    else:
        divisors = tuple(np.asarray(_pool_mod._divisor((n,), _pool_mod.PoolWindow((k,), (s,), (p,), (1,), (o,), (0,)),
                                                       bool(count_include_pad), None))
                         for n, k, s, p, o in zip(layout[2], kernel, st, pad, outs))
    starts = [chunk_starts(sz)[:-1] for sz in sizes]
    func = partial(_avg_block, fn, kernel, st, compute_dtype(small.dtype), small.dtype, divisors, starts)
    y = gather_map(h, intervals, sizes, func, h.shape[1], small.dtype, name=f"avg_pool{nd}d")
    return _restore(y, layout)
