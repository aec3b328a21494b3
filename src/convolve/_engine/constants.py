"""Weights marked constant, and what algorithms derive from them, computed once per array.

An inference plan (`convolve.onnx`'s fused steps) holds weights that do not change between calls
until it replaces them with new arrays. It marks them here; an algorithm that transforms its
weights on every call (Winograd's U = G g Gᵀ) then keeps the transformed form for as long as that
array lives. Marked arrays are made read-only; ordinary parameters are never marked, so training
always transforms the current weights.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Dict, Tuple

import numpy as np

__all__ = ["mark", "marked", "derived"]

_marked: Dict[int, Any] = {}  # id(array) -> weak reference to it
_derived: Dict[Tuple[int, Any], Any] = {}  # (id(array), what) -> derived array


def _forget(key_id: int) -> None:
    _marked.pop(key_id, None)
    for k in [k for k in _derived if k[0] == key_id]:
        del _derived[k]


def mark(w: np.ndarray) -> np.ndarray:
    """Declare `w` constant for the rest of its life (made read-only); returns it."""
    if id(w) not in _marked or _marked[id(w)]() is not w:
        _forget(id(w))
        w.flags.writeable = False
        i = id(w)

        def gone(_ref: Any) -> None:
            _forget(i)

        _marked[i] = weakref.ref(w, gone)
    return w


def marked(w: np.ndarray) -> bool:
    """Whether `w` itself is marked constant."""
    ref = _marked.get(id(w))
    return ref is not None and ref() is w


def derived(w: np.ndarray, what: Any, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """compute() (something derived from w, named `what`), kept and reused while w is marked and alive."""
    if not marked(w):
        return compute()
    key = (id(w), what)
    if key not in _derived:
        out = compute()
        out.flags.writeable = False
        _derived[key] = out
    return _derived[key]
