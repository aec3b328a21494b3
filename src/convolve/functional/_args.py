"""Argument normalisation and validation shared by every functional op.

Everything here runs before any work is done and raises ValueError/TypeError naming the argument,
what was expected and what was given.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from .._geometry import padding_pairs, same_padding  # noqa: F401  (re-exported: the rules live in convolve._geometry)
from .._shared.dtypes import compute_dtype  # noqa: F401  (re-exported: the policy lives in convolve._shared)
from .._shared.checks import check_choice, check_ints, is_int
from ..autograd import Tensor, as_array

__all__ = ["DATA_FORMATS", "is_int", "as_input", "float_dtype", "compute_dtype", "check_rank",
           "check_data_format", "padding_pairs", "same_padding"]

_SPATIAL = {1: "(L)", 2: "(H, W)", 3: "(D, H, W)"}
DATA_FORMATS = ("channels_first", "channels_last")


def as_input(x, name: str):
    """Accept a Tensor or anything array-like; return it as Tensor or ndarray."""
    if isinstance(x, (Tensor, np.ndarray)):
        return x
    if x is None:
        raise TypeError(f"{name} must be an array or a Tensor, but got None")
    try:
        return np.asarray(x)
    except Exception as exc:  # e.g. ragged lists
        raise TypeError(f"{name} must be an array or a Tensor, but got {type(x).__name__}") from exc


def float_dtype(name: str, x) -> np.dtype:
    """The dtype policy: float32/float64 are kept; float16 is computed in float32 and returned as
    float16; integers, bool and complex are refused (convert explicitly, e.g. ``x.astype(np.float32)``)."""
    dt = as_array(x).dtype
    if dt in (np.float32, np.float64, np.float16):
        return dt
    raise TypeError(
        f"{name} must be a float16, float32 or float64 array, but got dtype {dt}; "
        f"convert it first, e.g. {name}.astype(np.float32)"
    )


def check_rank(x, nd: int, name: str, op: str) -> bool:
    """Check `x` is (N, C, *spatial) or unbatched (C, *spatial); return whether it is batched."""
    ndim = as_array(x).ndim
    if ndim == nd + 2:
        return True
    if ndim == nd + 1:
        return False
    raise ValueError(
        f"{op} expects {name} of shape (N, C, {_SPATIAL[nd][1:]} or unbatched (C, {_SPATIAL[nd][1:]}, "
        f"i.e. {nd + 2}-D or {nd + 1}-D, but got {ndim}-D {name} of shape {as_array(x).shape}"
    )


def check_data_format(data_format: Any) -> bool:
    """Whether `data_format` (checked) is 'channels_last'."""
    return check_choice("data_format", data_format, DATA_FORMATS) == "channels_last"


