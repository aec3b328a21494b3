"""convolve: convolutional neural-network layers in pure Python + NumPy.

Exact (PyTorch's semantics, forward and backward), trainable, explained and fast.

``import convolve`` loads the core (`Tensor`, `functional`, `engine_config`); the subpackages
`nn`, `optim`, `data`, `interop`, `explain` and `training` load on first use
(``convolve.nn.Conv2d(...)`` works without importing ``convolve.nn`` first).

>>> import numpy as np, convolve
>>> convolve.functional.conv2d(np.ones((1, 3, 64, 64)), np.ones((8, 3, 5, 5)), padding=2).shape
(1, 8, 64, 64)
>>> convolve.nn.Conv2d(3, 8, 5).weight.shape
(8, 3, 5, 5)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import engine_config as engine_config, functional as functional
from .autograd import Tensor as Tensor, no_grad as no_grad

if TYPE_CHECKING:  # what the lazy attributes are, for type checkers and IDEs
    from . import data as data, explain as explain, interop as interop, nn as nn, optim as optim
    from . import training as training

_LAZY = ("nn", "optim", "data", "interop", "explain", "training")

__all__ = ["Tensor", "no_grad", "functional", "engine_config", "__version__", *_LAZY]


def _version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convolve")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module  # later look-ups skip this function
        return module
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'convolve' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
