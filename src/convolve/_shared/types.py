"""Type aliases for annotations (no runtime cost: only used in annotations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    from ..autograd import Tensor

__all__ = ["ArrayOrTensor", "TensorLike", "IntOrTuple", "Padding"]

#: what a functional op returns: an array for array inputs, a Tensor when any input is a Tensor.
#: Which of the two depends on the arguments' types together, which one overload per op per mix of
#: arguments would be needed to state; so type checkers see Any (the docstrings say which).
ArrayOrTensor = Any
#: what a functional op accepts: a Tensor, an array, or anything ``np.asarray`` takes
TensorLike = Union["Tensor", np.ndarray, Sequence[Any], float]
#: one int for every spatial dim, or one per spatial dim
IntOrTuple = Union[int, Tuple[int, ...]]
#: conv padding: an int, one int per dim, (before, after) per dim, 'valid' or 'same'
Padding = Union[str, int, Tuple[int, ...], Tuple[Tuple[int, int], ...]]
