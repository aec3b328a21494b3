"""`map_model`: a fully convolutional model over a chunked image, one halo per block, lazily."""

from __future__ import annotations

from typing import Any, Tuple

from dataclasses import dataclass
from fractions import Fraction
from functools import partial

import numpy as np

from ..nn import Module
from .. import nn
from ..autograd import Tensor, no_grad
from ._blocks import chunk_starts, gather_map
from ._geometry import alignment, parse_model
from ._locks import model_lock
from ._require import is_dask_array, require

__all__ = ["map_model", "model_geometry", "AxisGeometry"]


@dataclass(frozen=True)
class AxisGeometry:
    """How a model maps positions along one spatial axis.

    Attributes
    ----------
    receptive_field : int
        Input positions one output reads (away from the border): explain's receptive field.
    offset : int
        Input position of the first one output 0 reads, negated (the padding it reaches into).
    scale : Fraction
        Output positions per input position (1/total stride; > 1 after upsampling).
    alignment : int
        Block starts must be multiples of this so every layer's grid matches the whole image's.
    """

    receptive_field: int
    offset: int
    scale: Fraction
    alignment: int


def model_geometry(model: Module, nd: int = 2) -> Tuple[Any, ...]:
    """Receptive field, offset, scale and alignment of `model` along each of `nd` spatial axes.

    Raises
    ------
    ValueError
        Naming the first layer that mixes all positions (Linear, Flatten, global pooling) or that
        map_model does not know.
    """
    tree = parse_model(model, nd)
    out = []
    for axis in range(nd):
        lo, hi = tree.need(axis, 0, 1, None)
        out.append(AxisGeometry(hi - lo, -lo, tree.ratios(axis, Fraction(1))[-1], alignment(tree, axis)))
    return tuple(out)


def _model_block(offsets, sizes, block, index, model):
    with model_lock, no_grad():
        y = np.asarray(model(Tensor(block)).data)
    window = tuple(slice(offsets[a][m], offsets[a][m] + sizes[a][m]) for a, m in enumerate(index))
    return y[(slice(None), slice(None)) + window]


def map_model(model: Module, x: Any) -> Any:
    """Run a fully convolutional `model` over a chunked image: a lazy dask array equal to ``model(x)``.

    Each output block reads its input chunk plus one halo -- the model's receptive field, clipped at
    the image's border, where the model pads as it does in memory -- with its start moved back to
    a multiple of the model's total stride so every layer's grid matches the whole image's. The
    model (in eval mode) is stored once in the graph; nothing is computed until the result is.

    Parameters
    ----------
    model : convolve.nn.Module
        Conv, transposed conv (upsampling), pooling, activations, BatchNorm, Dropout, Identity,
        Sequential and BasicBlock layers, in eval mode (``model.eval()``).
    x : dask.array.Array
        ``(N, C, *S)``, channels-first and batched, 1-3 spatial dims, any chunks (the channel axis
        is joined into one chunk).

    Returns
    -------
    dask.array.Array
        ``model(x)``; its blocks follow x's chunks (scaled by the model's stride).

    Raises
    ------
    TypeError
        `x` is not a dask array or `model` not a Module.
    ValueError
        The model is in training mode, or a layer mixes all positions (Linear, Flatten, global
        pooling) or is unknown: the message names it.

    Shape
    -----
    ``(N, C, *S) -> (N, C_out, *S_out)`` as the model in memory.
    """
    require("dask.array")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a convolve.nn.Module, but got {type(model).__name__}")
    if not is_dask_array(x):
        raise TypeError(f"x must be a dask.array.Array (for an in-memory array call model(x)), but got "
                        f"{type(x).__name__}")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must be (N, C, *spatial) with 1-3 spatial dims, but got shape {tuple(x.shape)}")
    training = [name or "the model" for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(f"map_model needs the model in eval mode (BatchNorm reads its running statistics, "
                         f"Dropout is off), but {training[0]} is training; call model.eval() first")
    nd = x.ndim - 2
    tree = parse_model(model, nd)
    spatial = tuple(int(n) for n in x.shape[2:])
    h = x.rechunk({1: -1})
    intervals, sizes, offsets, probe = [], [], [], []
    for axis, n in enumerate(spatial):
        out = tree.size(axis, n)
        if out < 1:
            raise ValueError(f"the model gives no output along spatial axis {axis} for an input of size {n}")
        scale, align = tree.ratios(axis, Fraction(1))[-1], alignment(tree, axis)
        inner = chunk_starts(h.chunks[2 + axis])[1:-1]
        bounds = sorted({0, out} | {int(c * scale) for c in inner if 0 < int(c * scale) < out})
        iv, sz, off = [], [], []
        for j0, j1 in zip(bounds[:-1], bounds[1:]):
            lo, hi = tree.need(axis, j0, j1, n)
            start = lo // align * align  # the block's grids must be the whole image's grids
            iv.append((start, hi))
            sz.append(j1 - j0)
            off.append(int(j0 - start * scale))
        intervals.append(iv)
        sizes.append(sz)
        offsets.append(off)
        probe.append(tree.need(axis, 0, 1, n)[1])
    # channels and dtype of the output: the model once on zeros the size of one receptive field
    with model_lock, no_grad():
        small = np.asarray(model(Tensor(np.zeros((1, h.shape[1]) + tuple(probe), h.dtype))).data)
    func = partial(_model_block, offsets, sizes)
    return gather_map(h, intervals, sizes, func, small.shape[1], small.dtype, constants=(model,), name="map_model")
