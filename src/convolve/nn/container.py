"""Containers: `Sequential` (a chain of modules) and `ModuleList`."""

from __future__ import annotations

from typing import Any, Iterable, Optional, TypeVar

from collections import OrderedDict

from .._shared.types import ArrayOrTensor, TensorLike
from .._shared.checks import is_int
from .activation import ReLU
from .module import Module

__all__ = ["Sequential", "ModuleList"]

I = TypeVar("I", bound="_Indexed")


class _Indexed(Module):
    """Children named "0", "1", ... with list-style access."""

    def _index(self, idx):
        n = len(self._modules)
        if not is_int(idx):
            raise TypeError(f"{type(self).__name__} indices must be ints or slices, but got {type(idx).__name__}")
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for {type(self).__name__} of length {n}")
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            if isinstance(self, Sequential):  # keeps the children's names, as PyTorch
                return Sequential(OrderedDict(list(self._modules.items())[idx]))
            return ModuleList(list(self._modules.values())[idx])
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx, module):
        key = list(self._modules.keys())[self._index(idx)]
        self.add_module(key, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self: I, module: Module) -> I:
        """Add `module` at the end (named by its position)."""
        self.add_module(str(len(self._modules)), module)
        return self


class Sequential(_Indexed):
    """Modules applied in order; ``Sequential(a, b)(x) == b(a(x))``.

    Children are named "0", "1", ... (or by the keys of an OrderedDict passed as the only
    argument), so state_dict keys are ``"0.weight"``, ``"3.running_mean"`` and so on, as in PyTorch.
    Supports ``len``, iteration, indexing (a slice gives a new Sequential whose children keep their
    names) and ``append``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    ...                       nn.Linear(4 * 14 * 14, 10))
    >>> model(np.ones((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '4.weight', '4.bias']
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential takes Modules, but entry {name!r} is {type(m).__name__}")
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential takes Modules, but argument {i} is {type(m).__name__}")
                self.add_module(str(i), m)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            m = modules[i]
            if i + 1 < len(modules):  # a fusable pair runs as one op, with the same values and gradients
                fused = _fused(m, modules[i + 1], input)
                if fused is not None:
                    input, i = fused, i + 2
                    continue
            input, i = m(input), i + 1
        return input


def _fused(first, second, input):
    """second(first(input)) as one op for ReLU -> MaxPool and BatchNorm -> ReLU, else None.

    Only the library's own layers fuse: a subclass that overrides forward, or an instance whose forward
    was replaced (as `convolve.explain.summary` instruments layers), runs as written."""
    if "forward" in first.__dict__ or "forward" in second.__dict__:
        return None
    if type(first) is ReLU and hasattr(second, "_after_relu"):
        return second._after_relu(input)
    if type(second) is ReLU and hasattr(first, "_then_relu"):
        return first._then_relu(input)
    return None


class ModuleList(_Indexed):
    """A list of sub-modules, registered so their parameters are found (no forward of its own)."""

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> "ModuleList":  # type: ignore[override]  # narrower on purpose
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, but got {type(module).__name__}")
        return super().append(module)
