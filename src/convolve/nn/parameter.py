"""`Parameter`: a Tensor that a Module owns and an optimiser updates."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A learnable Tensor (``requires_grad=True`` by default).

    Assigning a Parameter to a Module attribute registers it, so it appears in ``parameters()`` and
    ``state_dict()``. Optimisers update ``.data`` in place, so the object stays the same.

    Parameters
    ----------
    data : array_like
        Initial values (floating point).
    requires_grad : bool
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        data = data.data if isinstance(data, Tensor) else np.asarray(data)
        if data.dtype.kind != "f":
            raise TypeError(f"a Parameter must be floating point, but got dtype {data.dtype}")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
