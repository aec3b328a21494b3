"""convolve: convolutional neural-network layers in pure Python + NumPy.

Exact (PyTorch's semantics, forward and backward), trainable, explained and fast.
"""

from . import engine_config as engine_config, functional as functional
from .autograd import Tensor as Tensor, no_grad as no_grad

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "functional", "engine_config", "__version__"]
