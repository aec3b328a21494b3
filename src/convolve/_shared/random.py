"""The one shared random generator behind default initialisation and dropout masks.

It lives here, below both `functional` (dropout) and `nn` (initialisation), so neither layer
imports the other for it. ``convolve.nn.init`` re-exports these functions as the public API.

Seeding design: one module-level ``numpy.random.Generator``. ``seed(s)`` replaces it with
``np.random.default_rng(s)``, so ``seed(s)`` followed by building a model (and training it) is
repeatable. Without ``seed`` it is seeded from the OS. ``get_rng_state()`` / ``set_rng_state(state)``
save and restore it (a JSON-able dict) so a resumed run draws the same dropout masks.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .checks import check_int

__all__ = ["seed", "get_generator", "get_rng_state", "set_rng_state", "generator_or_shared"]

_GENERATOR = np.random.default_rng()


def seed(s: int) -> np.random.Generator:
    """Make initialisation and dropout repeatable: reset the shared generator to ``default_rng(s)``.

    Examples
    --------
    >>> from convolve.nn import init
    >>> a = init.seed(0).random(); b = init.seed(0).random()
    >>> a == b
    True
    """
    global _GENERATOR
    _GENERATOR = np.random.default_rng(check_int("seed", s, minimum=0))
    return _GENERATOR


def get_generator() -> np.random.Generator:
    """The shared generator that layers and dropout use by default."""
    return _GENERATOR


def generator_or_shared(generator: Optional[np.random.Generator]) -> np.random.Generator:
    """`generator`, or the shared one when None."""
    return _GENERATOR if generator is None else generator


def get_rng_state() -> Dict[str, Any]:
    """The shared generator's state (a JSON-able dict)."""
    return dict(_GENERATOR.bit_generator.state)


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore a state from :func:`get_rng_state`."""
    global _GENERATOR
    if not isinstance(state, dict) or "bit_generator" not in state:
        raise TypeError(f"state must be a dict from get_rng_state(), but got {type(state).__name__}")
    bitgen = getattr(np.random, state["bit_generator"], None)
    if bitgen is None:
        raise ValueError(f"unknown bit generator {state['bit_generator']!r} in state")
    g = np.random.Generator(bitgen())
    g.bit_generator.state = state
    _GENERATOR = g
