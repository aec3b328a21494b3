"""Weight initialisation (PyTorch's schemes) and the random generator behind it.

One shared ``numpy.random.Generator`` (kept in ``convolve._shared.random``, below `functional` and
`nn`) feeds every layer's default initialisation and every dropout mask: ``seed(s)`` makes building
and training a model repeatable; ``get_rng_state()`` / ``set_rng_state(state)`` save and restore it
so a resumed run draws the same dropout masks. Every function here also takes ``generator=`` to use
a private Generator instead.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import math

import numpy as np

from .._shared.random import generator_or_shared, get_generator, get_rng_state, seed, set_rng_state
from ..autograd import Tensor

Gen = Optional[np.random.Generator]  # None: the shared generator

__all__ = [
    "seed", "get_generator", "get_rng_state", "set_rng_state",
    "calculate_fan_in_and_fan_out", "calculate_gain",
    "uniform_", "normal_", "constant_", "zeros_", "ones_",
    "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
]

def _gen(generator):
    return generator_or_shared(generator)


def _fill(tensor, values):
    """Write `values` into a Tensor/array in place, keeping its dtype."""
    target = tensor.data if isinstance(tensor, Tensor) else tensor
    target[...] = values
    return tensor


def _shape(tensor):
    return tensor.shape


def calculate_fan_in_and_fan_out(tensor: Union[Tensor, np.ndarray]) -> Tuple[int, int]:
    """fan_in = shape[1] · receptive field, fan_out = shape[0] · receptive field (PyTorch's rule)."""
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, but got shape {shape}")
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity must be one of {list(linear) + ['tanh', 'relu', 'leaky_relu', 'selu']}, but got {nonlinearity!r}")


def uniform_(tensor: Union[Tensor, np.ndarray], a: float = 0.0, b: float = 1.0, *, generator: Gen = None) -> Union[Tensor, np.ndarray]:
    """Fill with U(a, b) in place."""
    return _fill(tensor, _gen(generator).uniform(a, b, size=_shape(tensor)))


def normal_(tensor: Union[Tensor, np.ndarray], mean: float = 0.0, std: float = 1.0, *, generator: Gen = None) -> Union[Tensor, np.ndarray]:
    """Fill with N(mean, std²) in place."""
    return _fill(tensor, _gen(generator).normal(mean, std, size=_shape(tensor)))


def constant_(tensor: Union[Tensor, np.ndarray], value: float) -> Union[Tensor, np.ndarray]:
    return _fill(tensor, value)


def zeros_(tensor: Union[Tensor, np.ndarray]) -> Union[Tensor, np.ndarray]:
    return _fill(tensor, 0)


def ones_(tensor: Union[Tensor, np.ndarray]) -> Union[Tensor, np.ndarray]:
    return _fill(tensor, 1)


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', but got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor: Union[Tensor, np.ndarray], a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     generator: Gen = None) -> Union[Tensor, np.ndarray]:
    """U(-bound, bound) with ``bound = gain · sqrt(3 / fan)`` (He et al.)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator=generator)


def kaiming_normal_(tensor: Union[Tensor, np.ndarray], a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    generator: Gen = None) -> Union[Tensor, np.ndarray]:
    """N(0, std²) with ``std = gain / sqrt(fan)``."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator=generator)


def xavier_uniform_(tensor: Union[Tensor, np.ndarray], gain: float = 1.0, *, generator: Gen = None) -> Union[Tensor, np.ndarray]:
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_normal_(tensor: Union[Tensor, np.ndarray], gain: float = 1.0, *, generator: Gen = None) -> Union[Tensor, np.ndarray]:
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def default_weight_and_bias_(weight: Tensor, bias: Optional[Tensor], *, generator: Gen = None) -> None:
    """PyTorch's default for conv and linear layers.

    kaiming_uniform with a=sqrt(5) on the weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the
    bias from the same range.
    """
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound, generator=generator)
