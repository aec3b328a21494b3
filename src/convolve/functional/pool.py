"""Max and average pooling in 1, 2 and 3 spatial dimensions (PyTorch semantics)."""

from __future__ import annotations

import numpy as np

from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

from .. import autograd
from .._engine import pool_pieces, pooling
from .._engine.parallel import batch_slices, map_blocks
from .._engine.windows import tap_slices
from .._geometry import pool_output, pool_stride
from .._shared.checks import check_bool, check_int, check_ints
from .._shared.types import ArrayOrTensor, IntOrTuple, TensorLike
from ..autograd import as_array, record
from ._args import as_input, float_dtype
from ._docs import fill_doc
from ._layout import Layout, layout_of

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "relu_max_pool1d", "relu_max_pool2d", "relu_max_pool3d"]

Ints = Tuple[int, ...]


class PoolWindow(NamedTuple):
    """The checked window geometry of one pooling call (per spatial dim)."""

    kernel: Ints
    stride: Ints
    padding: Ints
    dilation: Ints
    outs: Ints  # output sizes
    extra: Ints  # padding ceil_mode adds at the end

    def taps(self):
        """(tap number, the slice of the padded input that this kernel tap reads at every output)."""
        for i, tap in enumerate(np.ndindex(*self.kernel)):
            yield i, (Ellipsis,) + tap_slices(tap, self.stride, self.dilation, self.outs)


def _prepare(nd: int, op: str, input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
             ceil_mode: Any, data_format: Any) -> Tuple[Any, Layout, PoolWindow]:
    """Check a pooling call; return the input as (N, C, *spatial) in the compute dtype, its layout and window."""
    x = as_input(input, "input")
    layout = layout_of(x, nd, op, data_format, float_dtype("input", x))
    kernel = check_ints("kernel_size", kernel_size, nd, minimum=1)
    stride = check_ints("stride", pool_stride(stride, kernel), nd, minimum=1)
    padding = check_ints("padding", padding, nd, minimum=0)
    dilation = check_ints("dilation", dilation, nd, minimum=1)
    ceil_mode = check_bool("ceil_mode", ceil_mode)
    outs, extra = pool_output(layout.shape(x)[2:], kernel, stride, padding, dilation, ceil_mode)
    window = PoolWindow(kernel, stride, padding, dilation, outs, extra)
    return layout.to_channels_first(x), layout, window


def _pads(win: PoolWindow) -> Tuple[Tuple[int, int], ...]:
    """(before, after) padding per spatial dim: `padding` on both sides, ceil_mode's extra at the end."""
    return tuple((p, p + e) for p, e in zip(win.padding, win.extra))


def _in_piece(win: PoolWindow, piece) -> PoolWindow:
    """The window over one piece: its output rows only (its padded input starts at the first one's window)."""
    return win._replace(outs=(piece.rows.stop - piece.rows.start,) + win.outs[1:])


def _max_pool(nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any,
              return_indices: Any, data_format: Any, relu: bool = False) -> Any:
    """The core behind max_pool1d/2d/3d; with `relu`, max pooling of relu(input) (see relu_max_pool2d)."""
    if type(input).__module__.startswith("dask"):  # a dask array: lazy, blockwise (convolve.dask)
        from ..dask import hooks
        out = hooks.max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                             data_format)
        return np.maximum(out, 0) if relu else out  # lazy as well
    h, layout, win = _prepare(nd, f"max_pool{nd}d", input, kernel_size, stride, padding, dilation, ceil_mode,
                              data_format)
    return_indices = check_bool("return_indices", return_indices)
    a = as_array(h)
    if pooling.usable(a, nd) and not return_indices and not _records(h):
        pooled = pooling.max_pool_values(a, win, nd, relu)  # nothing to route a gradient to: no picks
        return layout.from_channels_first(autograd.Tensor(pooled) if isinstance(h, autograd.Tensor) else pooled)
    if pooling.usable(a, nd):
        y, arg = pooling.max_pool(a, win, nd, relu)
        mask = y if relu else None  # only the fused ReLU reads the output

        def compiled_backward(g):
            return (pooling.max_pool_backward(g, arg, g if mask is None else mask, a.shape, win, nd, relu),)

        out = layout.from_channels_first(record(y, (h,), compiled_backward, saves_output=relu))
        if not return_indices:
            return out
        return out, layout.from_channels_first(_flat_indices(arg, win, a.shape[2:]), np.int64)
    if relu:  # the NumPy twin of the fused op: ReLU and max pooling commute, so pool first (4x less to do)
        pooled = _max_pool(nd, h, win.kernel, win.stride, win.padding, win.dilation, ceil_mode, False,
                           "channels_first")
        return layout.from_channels_first(autograd.relu(pooled))
    has_nan = bool(a.size) and bool(np.isnan(a.max()))  # a reduction: no temporary the size of the input
    # ceil_mode may add end padding, which tiles cannot hold
    tiled = win.stride == win.kernel and not any(win.padding) and set(win.dilation) == {1} and not any(win.extra)
    if tiled and not return_indices and not has_nan:
        y, tiles_backward = _max_pool_tiles(a, win.kernel, win.outs)
        return layout.from_channels_first(record(y, (h,), tiles_backward))
    # Piece by piece under the memory cap (pool_pieces). One pass per kernel tap over output-sized
    # views: no copy of the windows. Like PyTorch, the first maximum in window order wins and a NaN
    # beats everything (the last NaN, as PyTorch).
    pads, count = _pads(win), int(np.prod(win.kernel))
    arg = np.zeros(a.shape[:2] + win.outs, dtype=np.int16 if count < 2**15 else np.int64)
    y = np.empty(a.shape[:2] + win.outs, dtype=a.dtype)
    for piece in pool_pieces.plan(a.shape, win, pads, a.itemsize, 2, what="max pooling"):  # 2: the bool masks
        at = (piece.n, piece.c, piece.rows)
        _max_piece(pool_pieces.padded(a, piece, pads, -np.inf), win, piece, a.shape[2:], has_nan, y[at], arg[at])

    def backward(g):
        gx = np.zeros(a.shape, dtype=g.dtype)
        for piece in pool_pieces.plan(a.shape, win, pads, g.itemsize, g.itemsize + 1, what="max pooling"):
            _max_piece_backward(g, arg, gx, win, piece, pads)
        return (gx,)

    out = layout.from_channels_first(record(y, (h,), backward))
    if not return_indices:
        return out
    return out, layout.from_channels_first(_flat_indices(arg, win, a.shape[2:]), np.int64)


def _max_piece(xp, win: PoolWindow, piece, spatial: Ints, has_nan: bool, y, arg) -> None:
    """Max pooling of one padded piece `xp` into the views `y` and `arg` (the tap picked per output)."""
    w = _in_piece(win, piece)
    for i, taps in w.taps():
        v = xp[taps]
        if i == 0:
            y[...] = v
            continue
        better = v > y
        if has_nan:
            better |= np.isnan(v)
        np.copyto(y, v, where=better)
        np.copyto(arg, i, where=better)
    if (any(win.padding) or any(win.extra)) and bool((y == -np.inf).any()):  # PyTorch never picks padding
        arg[...] = in_bounds_picks(arg, w, spatial, (piece.rows.start,) + (0,) * (len(spatial) - 1))


def _max_piece_backward(g, arg, gx, win: PoolWindow, piece, pads) -> None:
    """gx += one piece's share of the gradient: g routed to the picked taps (a function, so that each
    piece's buffers are freed before the next one's are made)."""
    gp, at = pool_pieces.gradient_piece(gx, piece, pads), (piece.n, piece.c, piece.rows)
    gv, av = g[at], arg[at]
    for i, taps in _in_piece(win, piece).taps():
        gp[taps] += np.where(av == i, gv, 0)
    pool_pieces.add_real(gx, piece, gp, pads)


def _records(h: Any) -> bool:
    """Whether an op on `h` will be recorded for backward (so it must keep what the gradient needs)."""
    return isinstance(h, autograd.Tensor) and h.requires_grad and autograd.is_grad_enabled()


def _output_starts(win: PoolWindow, axis: int, first: int, count: int, nd: int) -> np.ndarray:
    """Input position (padding negative) where the windows of outputs first..first+count start along `axis`,
    shaped to broadcast over the output grid."""
    o = first + np.arange(count)
    return (o * win.stride[axis] - win.padding[axis]).reshape((-1,) + (1,) * (nd - 1 - axis))


def in_bounds_picks(arg: np.ndarray, win: PoolWindow, spatial: Ints, first: Optional[Ints] = None) -> np.ndarray:
    """`arg` (the tap picked per output) with picks in the padding moved to the window's first tap inside the input.

    A padding pick means every value of its window inside the input is -inf (anything else, NaN included,
    beats the -inf padding); PyTorch then returns the window's first tap inside the input, which is
    the first in-bounds index along every axis. `first` is the output index of ``arg[..., 0, 0]``
    (not 0 for a block of a larger output).
    """
    nd = len(spatial)
    first = first or (0,) * nd
    taps = np.unravel_index(arg, win.kernel)
    outside = np.zeros(arg.shape, dtype=bool)
    firsts = []
    for i in range(nd):
        start = _output_starts(win, i, first[i], arg.shape[2 + i], nd)
        pos = start + taps[i] * win.dilation[i]
        outside |= (pos < 0) | (pos >= spatial[i])
        firsts.append((np.maximum(-start, 0) + win.dilation[i] - 1) // win.dilation[i])
    if not outside.any():
        return arg
    inside = np.ravel_multi_index(tuple(np.broadcast_arrays(*firsts)), win.kernel)
    return np.where(outside, inside, arg).astype(arg.dtype, copy=False)


def _flat_indices(arg: np.ndarray, win: PoolWindow, spatial: Ints, first: Optional[Ints] = None) -> np.ndarray:
    """The flat index into each input plane of every picked tap `arg`, as PyTorch returns; `first` as in
    `in_bounds_picks`."""
    nd = len(spatial)
    first = first or (0,) * nd
    taps = np.unravel_index(arg, win.kernel)
    index = np.zeros(arg.shape, dtype=np.int64)
    for i in range(nd):
        start = _output_starts(win, i, first[i], arg.shape[2 + i], nd)
        index = index * spatial[i] + start + taps[i] * win.dilation[i]
    return index


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
                pick += better * (j - pick)  # arithmetic, not copyto(where=)/np.where: see docs/speed.md
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


def _divisor(spatial: Ints, win: PoolWindow, count_include_pad: bool, divisor_override: Optional[int],
             rows: Optional[slice] = None) -> Any:
    """Each output's divisor (a number with `divisor_override`); `rows`: only those of the first axis."""
    if divisor_override is not None:
        return float(divisor_override)
    div = np.ones((), dtype=np.float64)
    for i, (n, k, s, p, o) in enumerate(zip(spatial, win.kernel, win.stride, win.padding, win.outs)):
        start = (np.arange(o) if i or rows is None else np.arange(rows.start, rows.stop)) * s - p
        end = np.minimum(start + k, n + p)
        size = end - start if count_include_pad else np.minimum(end, n) - np.maximum(start, 0)
        div = np.multiply.outer(div, size)
    return div


def _avg_pool(nd: int, input: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any,
              count_include_pad: Any, divisor_override: Any, data_format: Any) -> Any:
    """The core behind avg_pool1d/2d/3d."""
    if type(input).__module__.startswith("dask"):  # a dask array: lazy, blockwise (convolve.dask)
        from ..dask import hooks
        return hooks.avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override, data_format)
    count_include_pad = check_bool("count_include_pad", count_include_pad)
    if divisor_override is not None:
        check_int("divisor_override", divisor_override)
        if divisor_override == 0:
            raise ValueError(f"divisor_override must be a non-zero int or None, but got {divisor_override!r}")
    h, layout, win = _prepare(nd, f"avg_pool{nd}d", input, kernel_size, stride, padding, 1, ceil_mode, data_format)
    a = as_array(h)
    if pooling.usable(a, nd):
        div = _divisor(a.shape[2:], win, count_include_pad, divisor_override)
        y = pooling.avg_pool(a, win, nd, div)
        return layout.from_channels_first(
            record(y, (h,), lambda g: (pooling.avg_pool_backward(g, a.shape, win, nd, div),)))
    pads = _pads(win)

    def divisor(piece):  # a piece's: made whole, it could outgrow the memory cap
        return np.asarray(_divisor(a.shape[2:], win, count_include_pad, divisor_override, piece.rows), a.dtype)

    def forward_piece(piece):
        xp, yp = pool_pieces.padded(a, piece, pads, 0), y[piece.n, piece.c, piece.rows]
        for _, taps in _in_piece(win, piece).taps():
            yp += xp[taps]
        yp /= divisor(piece)

    def backward_piece(g, gx, piece):
        gp = pool_pieces.gradient_piece(gx, piece, pads)
        share = g[piece.n, piece.c, piece.rows] / divisor(piece)
        for _, taps in _in_piece(win, piece).taps():
            gp[taps] += share
        pool_pieces.add_real(gx, piece, gp, pads)

    per_plane = 8 + a.itemsize  # the divisor of each output position, made in float64 first
    y = np.zeros(a.shape[:2] + win.outs, dtype=a.dtype)
    for piece in pool_pieces.plan(a.shape, win, pads, a.itemsize, 0, per_plane, what="average pooling"):
        forward_piece(piece)

    def backward(g):
        gx = np.zeros(a.shape, dtype=g.dtype)
        for piece in pool_pieces.plan(a.shape, win, pads, g.itemsize, g.itemsize, per_plane, what="average pooling"):
            backward_piece(g, gx, piece)
        return (gx,)

    return layout.from_channels_first(record(y, (h,), backward))


# --- public functions: explicit signatures over the two cores -------------------------------------

MaxPoolResult = Union[ArrayOrTensor, Tuple[ArrayOrTensor, np.ndarray]]

@fill_doc(nd=1)
def max_pool1d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False, *, data_format: str = "channels_first") -> MaxPoolResult:
    """1-D max pooling: each output is the largest value in its window.

    {max_pool_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.max_pool1d(np.array([[[1., 3., 2., 5., 4., 0.]]]), 2)
    array([[[3., 5., 4.]]])
    >>> F.max_pool1d(np.array([[[1., 3., 2., 5.]]]), 2, return_indices=True)[1]
    array([[[1, 3]]])
    """
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, data_format)


@fill_doc(nd=2)
def max_pool2d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False, *, data_format: str = "channels_first") -> MaxPoolResult:
    """2-D max pooling: each output is the largest value in its window.

    {max_pool_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> F.max_pool2d(x, 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> F.max_pool2d(x, 3, stride=1, padding=1).shape
    (1, 1, 4, 4)
    """
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, data_format)


@fill_doc(nd=3)
def max_pool3d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
               return_indices: bool = False, *, data_format: str = "channels_first") -> MaxPoolResult:
    """3-D max pooling: each output is the largest value in its window.

    {max_pool_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.max_pool3d(np.ones((2, 3, 8, 8, 8)), 2).shape
    (2, 3, 4, 4, 4)
    """
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, data_format)


@fill_doc(nd=1)
def avg_pool1d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None, *, data_format: str = "channels_first") -> ArrayOrTensor:
    """1-D average pooling: each output is the mean of its window.

    {avg_pool_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.avg_pool1d(np.array([[[1., 3., 2., 6.]]]), 2)
    array([[[2., 4.]]])
    """
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     data_format)


@fill_doc(nd=2)
def avg_pool2d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None, *, data_format: str = "channels_first") -> ArrayOrTensor:
    """2-D average pooling: each output is the mean of its window.

    {avg_pool_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> x = np.ones((1, 1, 3, 3))
    >>> F.avg_pool2d(x, 3, stride=1, padding=1)[0, 0]           # zero padding counts in the divisor
    array([[0.44444444, 0.66666667, 0.44444444],
           [0.66666667, 1.        , 0.66666667],
           [0.44444444, 0.66666667, 0.44444444]])
    >>> F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)[0, 0, 0]
    array([1., 1., 1.])
    """
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     data_format)


@fill_doc(nd=3)
def avg_pool3d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None, *, data_format: str = "channels_first") -> ArrayOrTensor:
    """3-D average pooling: each output is the mean of its window.

    {avg_pool_parameters}

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.avg_pool3d(np.ones((1, 2, 4, 4, 4)), 2).shape
    (1, 2, 2, 2, 2)
    """
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                     data_format)


def _relu_max_pool(nd):
    def relu_max_pool(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                      padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False) -> ArrayOrTensor:
        return _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, False, "channels_first",
                         relu=True)

    relu_max_pool.__name__ = relu_max_pool.__qualname__ = f"relu_max_pool{nd}d"
    relu_max_pool.__doc__ = f"""``max_pool{nd}d(relu(input), ...)`` as one op: what ``Sequential`` runs for a ReLU
    followed by a MaxPool{nd}d.

    Same arguments (channels-first, no indices) and exactly the same values and gradients as the two
    calls: ReLU and max pooling commute, so the ReLU runs on the pooled output, which is
    {2 ** nd}x smaller for a 2-wide window (the compiled tier fuses it into the pooling pass).

    Shape
    -----
    As max_pool{nd}d.
    """
    return relu_max_pool


relu_max_pool1d, relu_max_pool2d, relu_max_pool3d = (_relu_max_pool(n) for n in (1, 2, 3))
