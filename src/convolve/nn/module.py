"""`Module`: the base of every layer -- owns parameters, buffers and sub-modules.

Attribute assignment registers things, as in PyTorch: a :class:`Parameter` goes to ``_parameters``, a
Module to ``_modules``; buffers (running statistics and the like, plain NumPy arrays) are declared
with :meth:`Module.register_buffer`. Names compose with dots (``"0.weight"``, ``"layer1.bn1.running_mean"``),
so ``state_dict()`` keys equal PyTorch's for the same architecture.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar

import numpy as np

from ..autograd import Tensor, as_array
from .parameter import Parameter

__all__ = ["Module", "IncompatibleKeys"]

M = TypeVar("M", bound="Module")

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def to_numpy(value) -> np.ndarray:
    """A state value as a NumPy array: our Tensors, arrays, numbers, and (CPU) torch tensors."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _indent(text: str, n: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * n + line for line in lines[1:]])


def _float_dtype_arg(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy floating dtype such as np.float32, but got {dtype!r}") from None
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype (float16, float32 or float64), but got {dt}")
    return dt


class Module:
    """Base class of all layers and models.

    Subclasses call ``super().__init__()`` first, assign Parameters and sub-modules as attributes,
    and implement ``forward``. Calling the module calls ``forward``.

    Attributes
    ----------
    training : bool
        True after ``train()`` (the default), False after ``eval()``; BatchNorm and Dropout read it.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> import convolve.functional as F
    >>> class TinyNet(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = nn.Conv2d(1, 4, 3)
    ...         self.fc = nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         h = F.relu(self.conv(x))                      # (N, 4, H-2, W-2)
    ...         return self.fc(F.adaptive_avg_pool2d(h, 1).reshape(x.shape[0], 4))
    >>> net = TinyNet()
    >>> net(np.ones((3, 1, 8, 8), np.float32)).shape
    (3, 2)
    >>> list(net.state_dict())                            # PyTorch's key names
    ['conv.weight', 'conv.bias', 'fc.weight', 'fc.bias']
    >>> sum(p.data.size for p in net.parameters())
    50
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration ---------------------------------------------------------------------------
    def _check_ready(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning attributes")

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._check_ready()
            self._discard(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_ready()
            self._discard(name)
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} (a Parameter or None is expected)")
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (a Module or None is expected)")
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            self._buffers[name] = None if value is None else np.asarray(as_array(value))
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._discard(name)
        else:
            object.__delattr__(self, name)

    def _check_name(self, name, kind):
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, but got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"{kind} name must be non-empty and contain no '.', but got {name!r}")
        if name in self.__dict__ and name not in self._parameters and name not in self._buffers and name not in self._modules:
            raise ValueError(f"attribute {name!r} already exists on {type(self).__name__}")

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Add a Parameter (or None, a declared-but-absent slot such as ``bias=False``)."""
        self._check_ready()
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param must be a Parameter or None, but got {type(param).__name__}")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Optional[np.ndarray], persistent: bool = True) -> None:
        """Add a buffer: state that is saved in ``state_dict`` but not learned (e.g. running_mean).

        Buffers are plain NumPy arrays (or None). ``persistent=False`` keeps one out of ``state_dict``.
        """
        self._check_ready()
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, (np.ndarray, Tensor)):
            raise TypeError(f"buffer {name!r} must be an ndarray, a Tensor or None, but got {type(tensor).__name__}")
        self._discard(name)
        self._buffers[name] = None if tensor is None else np.asarray(as_array(tensor))
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        self._check_ready()
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"module name must be a non-empty str without '.', but got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module {name!r} must be a Module or None, but got {type(module).__name__}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    # --- traversal ------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo: Optional[set] = None, remove_duplicate: bool = True) -> Iterator:
        """(dotted name, module) for self and every sub-module, depth first; a module reached twice is
        listed once unless ``remove_duplicate=False`` (state_dict lists every path, as PyTorch)."""
        if remove_duplicate:
            memo = set() if memo is None else memo
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo, remove_duplicate)

    def modules(self) -> Iterator:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator:
        for _, c in self.named_children():
            yield c

    def _named_members(self, table, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator:
        """(name, Parameter) pairs, each Parameter once, in registration order."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self: M, fn: Callable[["Module"], Any]) -> M:
        """Call ``fn(m)`` on every sub-module (children first) and on self; return self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --- modes and gradients ----------------------------------------------------------------------
    def train(self: M, mode: bool = True) -> M:
        """Set training mode (True) or evaluation mode (False) on self and every sub-module."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) expects a bool, but got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self: M) -> M:
        """Evaluation mode: BatchNorm uses running statistics, Dropout is the identity."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (set to None, or to zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = np.zeros_like(p.data)

    def requires_grad_(self: M, requires_grad: bool = True) -> M:
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    # --- dtype ------------------------------------------------------------------------------------
    def to(self: M, dtype: Any) -> M:
        """Convert every floating parameter and buffer to `dtype` in place (the objects stay the same)."""
        dt = _float_dtype_arg(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype != dt:
                    p.data = p.data.astype(dt)
                    if p.grad is not None:
                        p.grad = p.grad.astype(dt)
            for name, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f" and b.dtype != dt:
                    m._buffers[name] = b.astype(dt)
        return self

    def double(self: M) -> M:
        return self.to(np.float64)

    def float(self: M) -> M:
        return self.to(np.float32)

    # --- state ------------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, np.ndarray]":
        """Every parameter and persistent buffer by dotted name, in PyTorch's order and names.

        Values are copies (safe to keep while training goes on) unless ``keep_vars=True``, which
        returns the Parameters and buffer arrays themselves.
        """
        out = OrderedDict()
        for mod_prefix, m in self.named_modules(prefix.rstrip("."), remove_duplicate=False):
            base = f"{mod_prefix}." if mod_prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else p.data.copy()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[base + name] = b if keep_vars else b.copy()
        return out

    def _state_slots(self):
        """name -> (owner module, table, key) for everything state_dict() would hold."""
        slots = OrderedDict()
        for mod_prefix, m in self.named_modules(remove_duplicate=False):
            base = f"{mod_prefix}." if mod_prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    slots[base + name] = (m, "_parameters", name)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    slots[base + name] = (m, "_buffers", name)
        return slots

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values from `state_dict` into this module's parameters and buffers.

        Values may be NumPy arrays, Tensors or anything ``np.asarray`` accepts; they are cast to the
        dtype of the parameter they replace. Everything is checked before anything changes: with
        ``strict=True`` missing and unexpected keys are errors, and a shape mismatch is always one.
        The ValueError names every offending key (and both shapes).

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)`` -- both empty under ``strict=True``.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, but got {type(state_dict).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        problems, values = [], {}
        for key, (m, table, name) in slots.items():
            if key not in state_dict:
                continue
            current = getattr(m, table)[name]
            current = current.data if isinstance(current, Tensor) else current
            try:
                value = to_numpy(state_dict[key])
            except Exception as exc:  # e.g. an object that is not array-like
                problems.append(f"value for {key} is not an array ({type(state_dict[key]).__name__}: {exc})")
                continue
            if value.dtype.kind not in "biuf":
                problems.append(f"value for {key} has non-numeric dtype {value.dtype}")
            elif value.shape != current.shape:
                problems.append(
                    f"size mismatch for {key}: copying a value with shape {value.shape} from the state_dict, "
                    f"the shape in the current model is {current.shape}"
                )
            else:
                values[key] = value
        if strict:
            if missing:
                problems.insert(0, "missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
            if unexpected:
                problems.insert(1 if missing else 0, "unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected))
        if problems:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(problems))
        for key, value in values.items():
            m, table, name = slots[key]
            current = getattr(m, table)[name]
            if isinstance(current, Tensor):
                current.data = value.astype(current.data.dtype, copy=True)
            else:
                getattr(m, table)[name] = value.astype(current.dtype, copy=True)
        return IncompatibleKeys(missing, unexpected)

    # --- calling and printing ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its constructor arguments)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _indent(repr(m), 2) for name, m in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))
