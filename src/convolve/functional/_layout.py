"""Where the channels and the batch are: the caller's layout, and the trip to (N, C, *spatial) and back."""

from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import numpy as np

from ..autograd import Tensor, as_array
from ._args import check_data_format, check_rank, compute_dtype

__all__ = ["Layout", "layout_of"]


def _permute(x: Any, axes: Tuple[int, ...]) -> Any:
    return x.permute(axes) if isinstance(x, Tensor) else np.transpose(x, axes)


class Layout(NamedTuple):
    """How the caller's input is laid out; ops compute on (N, C, *spatial) in `compute_dtype`.

    Attributes
    ----------
    nd : int
        Number of spatial dims.
    batched : bool
        False for unbatched (C, *spatial) input.
    channels_last : bool
        True for (N, *spatial, C) input.
    dtype : numpy.dtype
        The caller's dtype: results are returned in it.
    """

    nd: int
    batched: bool
    channels_last: bool
    dtype: np.dtype

    @property
    def compute_dtype(self) -> np.dtype:
        return compute_dtype(self.dtype)

    def shape(self, x: Any) -> Tuple[int, ...]:
        """(N, C, *spatial) of the caller's `x`, without moving data."""
        shape = as_array(x).shape
        shape = shape if self.batched else (1,) + shape
        return (shape[0], shape[-1]) + shape[1:-1] if self.channels_last else shape

    def to_channels_first(self, x: Any) -> Any:
        """(C, *S) / (N, *S, C) / ... -> (N, C, *S) in the compute dtype (Tensors record the moves)."""
        if not self.batched:
            x = x.reshape((1,) + as_array(x).shape)
        if self.channels_last:
            x = _permute(x, (0, self.nd + 1) + tuple(range(1, self.nd + 1)))
        if as_array(x).dtype != self.compute_dtype:
            x = x.astype(self.compute_dtype)
        return x

    def from_channels_first(self, y: Any, dtype: Any = None) -> Any:
        """(N, C, *S) back to the caller's layout, in the caller's dtype (or `dtype`)."""
        nd = self.nd
        if self.channels_last:
            y = _permute(y, (0,) + tuple(range(2, nd + 2)) + (1,))
        if not self.batched:
            y = y.reshape(as_array(y).shape[1:])
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if as_array(y).dtype != dtype:
            y = y.astype(dtype)
        return y


def layout_of(x: Any, nd: int, op: str, data_format: Any, dtype: np.dtype) -> Layout:
    """Check `x`'s rank and `data_format`; return its layout."""
    batched = check_rank(x, nd, "input", op)
    return Layout(nd, batched, check_data_format(data_format), np.dtype(dtype))
