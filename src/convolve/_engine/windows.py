"""The one sliding-window helper: every window op (conv, pooling, unfold, pictures) cuts with it.

`windows` is a zero-copy strided view; `fold_windows` is its adjoint (sums each window back
where it came from), used for the gradients of all of them.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import _geometry

__all__ = ["out_size", "tap_slices", "windows", "by_rows", "fold_windows", "wide_applies", "wide_geometry",
           "wide_crop", "wide_grid"]


out_size = _geometry.out_size  # the shape rule lives in convolve._geometry, with the others


def tap_slices(tap, stride, dilation, outs) -> tuple:
    """Slices of the input positions that kernel tap `tap` reads for every output position."""
    return tuple(slice(k * d, k * d + st * (o - 1) + 1, st) for k, d, st, o in zip(tap, dilation, stride, outs))


def windows(x: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """Read-only view of every window of `x` over its last ``len(kernel)`` axes.

    Shape
    -----
    x : (..., *S)  ->  (..., *O, *K) with O[i] = out_size(S[i], K[i], stride[i], dilation[i]);
    element ``[..., o, k] = x[..., o*stride + k*dilation]``.
    """
    nd = len(kernel)
    spatial = x.shape[x.ndim - nd :]
    outs = tuple(out_size(s, k, st, d) for s, k, st, d in zip(spatial, kernel, stride, dilation))
    xs = x.strides[x.ndim - nd :]
    shape = x.shape[: x.ndim - nd] + outs + tuple(kernel)
    strides = (
        x.strides[: x.ndim - nd]
        + tuple(st * s for st, s in zip(stride, xs))
        + tuple(d * s for d, s in zip(dilation, xs))
    )
    return as_strided(x, shape, strides, writeable=False)


def by_rows(kernel, stride) -> bool:
    """Whether copies and folds go through the last axis first (`fold_windows`, gemm's im2col).

    Per kernel tap, a copy or add over every window moves runs of only O[-1] contiguous values
    (7-56 on the usual layers), at a fraction of the memory rate. Going through rows instead: one
    pass per last-axis tap k builds R[..., k, *S[:-1], O[-1]] (the input's rows, shifted by k), in
    which every tap's windows are a block of whole rows of R: runs of prod(O) values. It pays
    when R is small beside the columns: 2-D and up, with every kernel axis but the last at least
    twice its stride (R holds about stride/kernel of the columns per axis).
    """
    return len(kernel) >= 2 and all(k >= 2 * s for k, s in zip(kernel[:-1], stride[:-1]))


def fold_windows(cols: np.ndarray, spatial, stride, dilation, out=None) -> np.ndarray:
    """Adjoint of `windows`: add every window value back at the input position it was read from.

    Shape
    -----
    cols : (..., *K, *O)  ->  (..., *spatial). Strided slice-adds, no scatter: one per kernel tap,
    or (`by_rows`) one per tap of the leading kernel axes into rows R (..., K[-1], *spatial[:-1],
    O[-1]), then one per last-axis tap from R. With `out` (of that shape) the sums are added into
    it and it is returned.
    """
    nd = len(spatial)
    kernel = cols.shape[cols.ndim - 2 * nd : cols.ndim - nd]
    outs = cols.shape[cols.ndim - nd :]
    lead = cols.shape[: cols.ndim - 2 * nd]
    if out is None:
        out = np.zeros(lead + tuple(spatial), dtype=cols.dtype)
    if not by_rows(kernel, stride):
        for k in np.ndindex(*kernel):
            out[(Ellipsis,) + tap_slices(k, stride, dilation, outs)] += cols[(Ellipsis,) + k + (slice(None),) * nd]
        return out
    rows = np.zeros(lead + (kernel[-1],) + tuple(spatial[:-1]) + (outs[-1],), dtype=cols.dtype)
    for k in np.ndindex(*kernel[:-1]):  # each a block of whole rows: runs of prod(O) values (stride 1)
        rows[(Ellipsis, slice(None)) + tap_slices(k, stride[:-1], dilation[:-1], outs[:-1]) + (slice(None),)] += (
            cols[(Ellipsis,) + k + (slice(None),) * (nd + 1)])
    for k in range(kernel[-1]):
        out[(Ellipsis,) + tap_slices((k,), stride[-1:], dilation[-1:], outs[-1:])] += rows[(Ellipsis, k) + (slice(None),) * nd]
    return out


# Stride 1, "wide" layout: an output position q on the input's (padded) grid reads input position
# q + offset(tap) of the flattened plane, so every tap is one contiguous run. Outputs laid out on
# that grid have a few junk columns per row (the input width, not the output width), dropped by
# `wide_crop`; gradients laid out on it must be zero there (`wide_grid`) so the junk adds nothing.
# Every algorithm that uses the layout asks `wide_applies` first: it holds the one guard that keeps
# the junk from changing a result.

def wide_applies(stride, factor=None) -> bool:
    """Whether the wide layout gives exactly the direct sums: stride 1, and `factor` finite.

    `factor` is the array the zeros in a gradient's junk columns get multiplied by: the weight for
    the input gradient, the input for the weight gradient (None for the forward pass, whose junk
    outputs are simply dropped). 0·inf and 0·NaN are NaN, so one non-finite value there would put a
    NaN where the direct sum is finite; callers then take their strided path instead.
    """
    if any(s != 1 for s in stride):
        return False
    return factor is None or bool(np.isfinite(factor).all())


def wide_geometry(x_shape, w_shape, dilation):
    """Stride-1 geometry on the flattened planes of x (N, C, *S): the output sizes O, the grid
    (O[0], S[1], ...) the wide layout uses, its written length L and each tap's flat offset."""
    spatial, kernel = x_shape[2:], w_shape[2:]
    outs = tuple(out_size(s, k, 1, d) for s, k, d in zip(spatial, kernel, dilation))
    plane = [int(np.prod(spatial[i + 1:])) for i in range(len(spatial))]  # element strides of a plane
    L = sum((o - 1) * p for o, p in zip(outs, plane)) + 1
    offsets = [sum(k * d * p for k, d, p in zip(tap, dilation, plane)) for tap in np.ndindex(*kernel)]
    return outs, (outs[0],) + tuple(spatial[1:]), L, offsets


def wide_crop(a, outs):
    """(..., O0, S1, S2, ...) laid out on the wide grid -> a view of the (..., *O) outputs."""
    return a[(Ellipsis,) + tuple(slice(0, o) for o in outs)]


def wide_grid(g, grid):
    """g (..., *O) copied onto the wide grid (..., *grid), zero in the junk columns."""
    out = np.zeros(g.shape[: g.ndim - len(grid)] + tuple(grid), dtype=g.dtype)
    wide_crop(out, g.shape[g.ndim - len(grid):])[...] = g
    return out
