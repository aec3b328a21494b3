"""Argument checks shared by the loader and the augmentations."""

from __future__ import annotations

import numpy as np

__all__ = ["check_int"]


def check_int(name, value, minimum):
    """``value`` as an int, or a ValueError naming ``name`` when it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, but got {value!r}")
    return int(value)
