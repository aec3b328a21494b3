"""Transposed convolution on ``dask.array.Array`` inputs: lazy, blockwise, the same numbers as in memory.

Along each spatial axis input ``i`` scatters into outputs ``t = i*stride - pb + j*dilation``
(``j`` a kernel tap, ``pb`` the padding before), so output block ``[t0, t1)`` gets all of its sums
from the inputs ``[a, b)`` with ``a*stride <= t0 + pb`` and ``(b-1)*stride + extent >= t1 + pb``
(``extent = dilation*(kernel-1) + 1``): its task runs the in-memory transposed convolution on those
inputs and crops its own outputs out of their frame with the padding pair ``(t0 + pb - a*stride, ...)``.
Output blocks follow the input's chunks (input chunk start ``c`` -> output ``c*stride - pb``); inputs
before 0 or past the end are zeros (added at the true border only), which scatter nothing, so the
outputs reached only by output_padding are the bias, as in memory. Nothing is computed when the op
is called; validation runs the in-memory op on a small zero-filled stand-in.
"""

from __future__ import annotations

from typing import Any

from functools import partial

from .._geometry import padding_pairs
from .._shared.checks import check_ints
from ..functional import conv as _conv_mod
from ._blocks import chunk_starts, gather_map
from ._lazy import _channels_first, _in_memory, _layout, _pad, _restore, _stand_in, _validate

__all__ = ["conv_transpose", "transposed_blocks"]


def _ceil_div(a, b):
    return -(-a // b)


def transposed_blocks(chunks, before, after, kernel, stride, dilation, output_padding):
    """Output blocks of a transposed convolution along one axis, and the inputs each one reads.

    Parameters
    ----------
    chunks : tuple of int
        Chunk sizes of the input along the axis.
    before, after : int
        Padding (cropped off the full output frame at each end).
    kernel, stride, dilation, output_padding : int
        As for ``conv_transposeNd``.

    Returns
    -------
    inputs : list of (a, b)
        Input interval of each block; may reach past ``[0, n)`` (zeros there).
    sizes : list of int
        Outputs per block.
    crops : list of (int, int)
        The padding pair that cuts the block's outputs out of the frame of its inputs.
    """
    n, e = sum(chunks), dilation * (kernel - 1) + 1
    out = (n - 1) * stride + e + output_padding - before - after
    inner = chunk_starts(chunks)[1:-1]
    bounds = sorted({0, out} | {c * stride - before for c in inner if 0 < c * stride - before < out})
    inputs, sizes, crops = [], [], []
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        u0, u1 = t0 + before, t1 + before  # the block's outputs in the full frame
        a = min(_ceil_div(u0 - e + 1, stride), u0 // stride)  # the first input reaching u0, or one left of it
        b = max((u1 - 1) // stride + 1, _ceil_div(u1 - e, stride) + 1)  # the frame of [a, b) ends at or after u1
        frame = (b - a - 1) * stride + e
        inputs.append((a, b))
        sizes.append(t1 - t0)
        crops.append((u0 - a * stride, frame - (u1 - a * stride)))
    return inputs, sizes, crops


def _block(fn, stride, dilation, groups, algorithm, crops, block, index, w, b):
    padding = tuple(crops[axis][m] for axis, m in enumerate(index))
    return fn(block, w, b, stride, padding, 0, groups, dilation, algorithm=algorithm)


def _geometry(nd, stride, padding, output_padding, dilation):
    """(stride, dilation, pairs, output_padding) when they parse, else None (validation then says why)."""
    if isinstance(padding, str):
        return None
    try:
        return (check_ints("stride", stride, nd, minimum=1), check_ints("dilation", dilation, nd, minimum=1),
                padding_pairs(padding, nd), check_ints("output_padding", output_padding, nd, minimum=0))
    except (TypeError, ValueError):
        return None


def conv_transpose(nd: Any, input: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
                   groups: Any, dilation: Any, data_format: Any, algorithm: Any) -> Any:
    """``conv_transposeNd`` on a dask array: a lazy dask array (see the module docstring).

    Shape
    -----
    As in memory: ``(N, C_in, *S) -> (N, C_out, *S_out)`` with
    ``S_out = (S-1)*stride - pb - pe + dilation*(kernel-1) + output_padding + 1``.
    """
    fn = getattr(_conv_mod, f"conv_transpose{nd}d")
    w, b = _in_memory(weight, "weight"), _in_memory(bias, "bias")
    layout = _layout(input, nd, data_format)
    geometry = _geometry(nd, stride, padding, output_padding, dilation)
    sizes = None if layout is None else tuple(min(n, 1) for n in layout[2])  # errors that do not depend on size
    if layout is not None and w.ndim == nd + 2 and geometry is not None:
        st, dl, pairs, op = geometry
        # as small as can be, but big enough that the padding leaves an output whenever the real input's does
        sizes = tuple(min(n, max(1, _ceil_div(pb + pe + 1 - d * (k - 1) - 1 - o, s) + 1))
                      for n, k, s, d, (pb, pe), o in zip(layout[2], w.shape[2:], st, dl, pairs, op))
    stand_in = _stand_in(input, nd, layout, sizes)
    small = _validate(lambda z: fn(z, w, b, stride, padding, output_padding, groups, dilation,
                                   data_format=data_format, algorithm=algorithm), input, stand_in)
    st, dl, pairs, op = geometry  # the in-memory op accepted them
    h = _channels_first(input, layout)
    intervals, block_sizes, crops, margins = [], [], [], []
    for axis, (n, k) in enumerate(zip(layout[2], w.shape[2:])):
        pb, pe = pairs[axis]
        inputs, sz, cr = transposed_blocks(h.chunks[2 + axis], pb, pe, k, st[axis], dl[axis], op[axis])
        lo = max(0, -min(a for a, _ in inputs))
        margins.append((lo, max(0, max(b for _, b in inputs) - n)))
        intervals.append([(a + lo, b + lo) for a, b in inputs])
        block_sizes.append(sz)
        crops.append(cr)
    h = _pad(h, margins, "constant", 0)
    func = partial(_block, fn, st, dl, int(groups), algorithm, crops)
    y = gather_map(h, intervals, block_sizes, func, w.shape[1] * int(groups), small.dtype, constants=(w, b),
                   name=f"conv_transpose{nd}d")
    return _restore(y, layout)
