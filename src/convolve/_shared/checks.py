"""One family of argument checks, used by every public function and class.

Every check takes ``(name, value, ...)`` and returns the normalised value. The policy is one for all:
a value of the wrong *type* raises TypeError, a value of the right type but outside the allowed
range raises ValueError; both name the argument, say what was expected and show what was given.
They run before any work is done.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Optional, Tuple

import numpy as np

__all__ = ["is_int", "check_bool", "check_int", "check_ints", "check_number", "check_choice"]


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools (``True`` is not a size)."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _bound(minimum: int) -> str:
    return {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")


def check_bool(name: str, value: Any) -> bool:
    """`value` as a bool; a TypeError for anything else (``"no"`` and ``1`` are not flags)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, but got {value!r}")


def check_int(name: str, value: Any, *, minimum: Optional[int] = None, allow_none: bool = False) -> Any:
    """`value` as an int >= `minimum` (None passes through when `allow_none`)."""
    if value is None and allow_none:
        return None
    if not is_int(value):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{name} must be {kind}, but got {value!r}")
    if minimum is not None and value < minimum:
        kind = f"a {_bound(minimum)} int" if minimum in (0, 1) else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, but got {value!r}")
    return int(value)


def check_ints(name: str, value: Any, n: int, *, minimum: Optional[int] = None) -> Tuple[int, ...]:
    """An int or a sequence of `n` ints as a tuple of `n` ints, each >= `minimum` (PyTorch's `_pair`)."""
    if is_int(value):
        t = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        t = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, but got {value!r}")
    if minimum is not None and any(v < minimum for v in t):
        raise ValueError(f"{name} must be {_bound(minimum)}, but got {value!r}")
    return t


def check_number(name: str, value: Any, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 strict_min: bool = False, strict_max: bool = False) -> float:
    """A finite real number in the given range, as a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, but got {value!r}")
    v = float(value)
    low_ok = minimum is None or (v > minimum if strict_min else v >= minimum)
    high_ok = maximum is None or (v < maximum if strict_max else v <= maximum)
    if not (np.isfinite(v) and low_ok and high_ok):
        parts = []
        if minimum is not None:
            parts.append(f"{'>' if strict_min else '>='} {minimum}")
        if maximum is not None:
            parts.append(f"{'<' if strict_max else '<='} {maximum}")
        raise ValueError(f"{name} must be a finite number{' ' + ' and '.join(parts) if parts else ''}, "
                         f"but got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """`value` if it is one of `choices`, else a ValueError listing them."""
    allowed = list(choices)
    if not isinstance(value, (str, int, float, type(None))) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, but got {value!r}")
    return value
