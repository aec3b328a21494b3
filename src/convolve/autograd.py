"""A small reverse-mode autograd: `Tensor` wraps a NumPy array and records a tape.

Every op builds its output with :func:`record`, giving the parents and a function that maps
the output's gradient to one gradient per parent. ``Tensor.backward`` walks the tape in reverse
topological order and accumulates ``.grad`` on leaves that require it, as PyTorch does.

As in PyTorch, the walk frees the graph behind it (each op's saved arrays are released once its
gradient is computed), so a second ``backward()`` through the same graph raises unless the first
passed ``retain_graph=True``; and every Tensor has a version counter, bumped whenever its ``.data``
is assigned (``t.data -= lr * g`` included), so ``backward()`` raises instead of returning wrong
gradients when an array an op saved was changed in place after the forward pass.

This module is the bottom of the package: it imports only NumPy and the array-level engine
(`convolve._engine.eltwise`); the elementwise ops that Tensor methods and `convolve.functional`
share (relu, tanh, sigmoid) are written here once.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ._engine import eltwise

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "record", "as_array", "is_tensor", "relu", "tanh", "sigmoid"]

# Grad mode is per thread, as in PyTorch: a no_grad() block on one thread (a dask worker running
# blocks, the engine's pools) must not switch recording off for another, nor leave it off when blocks
# on several threads enter and leave it interleaved.
_mode = threading.local()

Axis = Union[int, Tuple[int, ...], None]  # numpy-style axis argument


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager in which ops record nothing (like ``torch.no_grad``), on this thread."""
    previous = getattr(_mode, "enabled", True)
    _mode.enabled = False
    try:
        yield
    finally:
        _mode.enabled = previous


def is_grad_enabled() -> bool:
    """Whether ops record their backward on this thread (True unless inside no_grad())."""
    return getattr(_mode, "enabled", True)


def is_tensor(x: Any) -> bool:
    return isinstance(x, Tensor)


def as_array(x: Any) -> Any:
    """The NumPy array behind `x` (a Tensor, an array, a scalar or None)."""
    if isinstance(x, Tensor):
        return x._data
    return x


def record(out: np.ndarray, parents: Sequence, backward: Callable[[np.ndarray], Sequence],
           saves_output: bool = False) -> Any:
    """Wrap an op's result.

    Parameters
    ----------
    out : ndarray
        The op's forward result.
    parents : sequence
        The op's inputs (Tensors, arrays, scalars or None) in the order `backward` answers.
    backward : callable
        ``backward(grad_out) -> sequence`` of gradients, one per parent (None where not needed).
    saves_output : bool
        Whether `backward` reads `out` (exp, tanh, ...): then changing the result's ``.data`` before
        ``backward()`` is an error too (the parents' data always counts as saved).

    Returns
    -------
    ndarray or Tensor
        A plain array when no parent is a Tensor (nothing is recorded); otherwise a Tensor, whose
        tape entry exists only when some parent requires grad and grad mode is on.
    """
    if not any(isinstance(p, Tensor) for p in parents):
        return out
    needs = tuple(isinstance(p, Tensor) and p.requires_grad for p in parents)
    if not (any(needs) and getattr(_mode, "enabled", True)):
        return Tensor(out)
    t = Tensor(out, requires_grad=True)
    t._parents = tuple(parents)
    t._needs = needs
    # the versions the parents' arrays had when `backward` captured them (None: not a Tensor)
    t._saved_versions = tuple(p._version if isinstance(p, Tensor) else None for p in parents)
    t._saves_output = saves_output
    t._backward = backward
    return t


def _graph_freed(g: Optional[np.ndarray]) -> Sequence[Any]:
    raise RuntimeError(
        "backward() reached a part of the graph that an earlier backward() already freed (its saved "
        "arrays are released after use); pass retain_graph=True to the first backward() to go through "
        "the graph again, or run the forward pass again"
    )


def _check_versions(node):
    """Raise if an array `node`'s backward saved was changed in place after the forward pass."""
    for p, v in zip(node._parents, node._saved_versions):
        if v is not None and p._version != v:
            _modified(p, v)
    if node._saves_output and node._version != 0:
        _modified(node, 0)


def _modified(t, expected):
    raise RuntimeError(
        "one of the tensors needed for gradient computation has been modified in place (its .data was "
        f"assigned): a Tensor of shape {t.shape} is at version {t._version}, but version {expected} was "
        "saved in the forward pass; change .data only after backward(), or work on a copy"
    )


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`: the adjoint of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _dim_index(d, ndim: int, op: str) -> int:
    """A dimension index in [-ndim, ndim) as a non-negative int."""
    if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
        raise TypeError(f"{op}: dimensions must be ints, but got {d!r}")
    if not -ndim <= d < ndim:
        raise IndexError(f"{op}: dimension {d} is out of range for a {ndim}-D Tensor")
    return int(d) % ndim


def _lift(x, like: np.ndarray):
    """A scalar or array operand as an array in the dtype of `like` (Tensor stays a Tensor)."""
    if isinstance(x, Tensor):
        return x
    if np.isscalar(x):
        return np.asarray(x, dtype=like.dtype if like.dtype.kind == "f" else None)
    return np.asarray(x)


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Parameters
    ----------
    data : array_like
        The values; kept in their dtype (float32 stays float32).
    requires_grad : bool
        Whether ``backward`` should compute ``.grad`` for this tensor.

    Examples
    --------
    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    __array_priority__ = 100  # so ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data._data
        self._data: np.ndarray = data if type(data) is np.ndarray else np.asarray(data)
        self._version = 0
        if requires_grad and self._data.dtype.kind not in "fc":
            raise TypeError(
                f"requires_grad=True needs a floating-point Tensor, but data has dtype {self._data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad: Optional[np.ndarray] = None
        self._parents: Tuple[Any, ...] = ()  # the inputs of the op that made this Tensor
        self._needs: Tuple[bool, ...] = ()  # which of them need a gradient
        self._saved_versions: Tuple[Optional[int], ...] = ()
        self._saves_output = False
        self._backward: Optional[Callable[[np.ndarray], Sequence[Any]]] = None

    @property
    def data(self) -> np.ndarray:
        """The array itself (no copy). Assigning to it (``t.data = a``, ``t.data -= lr * g``) bumps
        the Tensor's version: a graph that saved the old values then refuses to go backward.
        Writes into the array that bypass the assignment (``t.data[0] = 1``, ``np.add(..., out=t.data)``)
        are not seen; assign through ``t.data`` to stay safe."""
        return self._data

    @data.setter
    def data(self, value):
        self._data = value if type(value) is np.ndarray else np.asarray(value)
        self._version += 1

    # --- array-like facts -------------------------------------------------------------------
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    is_leaf = property(lambda self: self._backward is None)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self._data, precision=4, threshold=20)}{grad})"

    def numpy(self) -> np.ndarray:
        return self._data

    def item(self) -> Any:
        return self._data.item()

    def detach(self) -> "Tensor":
        return Tensor(self._data)

    def zero_grad(self) -> None:
        self.grad = None

    # --- backward -----------------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Parameters
        ----------
        grad : array_like, optional
            The gradient flowing into this tensor; may be omitted for a scalar.
        retain_graph : bool
            Keep the graph (and the arrays it saved) for another ``backward()``; by default each
            op's saved arrays are released as soon as its gradient is computed, as PyTorch does.

        Raises
        ------
        RuntimeError
            When the graph was freed by an earlier backward(), or an array it saved was changed in
            place (``.data`` assigned) since the forward pass.
        """
        if not isinstance(retain_graph, bool):
            raise TypeError(f"retain_graph must be a bool, but got {retain_graph!r}")
        if not self.requires_grad:
            raise RuntimeError("backward() called on a Tensor that does not require grad")
        if grad is None:
            if self._data.size != 1:
                raise ValueError(
                    f"grad must be given for a non-scalar Tensor; this one has shape {self.shape}"
                )
            grad = np.ones_like(self._data)
        grad = np.asarray(as_array(grad), dtype=self._data.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"grad has shape {grad.shape} but the Tensor has shape {self.shape}")

        order, seen, stack = [], set(), [(self, False)]
        while stack:  # iterative post-order DFS: deep graphs need no recursion limit
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for p, need in zip(node._parents, node._needs):
                if need and id(p) not in seen:
                    stack.append((p, False))
        for node in order:  # check the whole graph before any gradient is written
            if node._backward is _graph_freed:
                _graph_freed(None)
            if node._backward is not None:
                _check_versions(node)

        grads = {id(self): grad}
        while order:  # reverse topological order; popping drops each node once it is done
            node = order.pop()
            g = grads.pop(id(node), None)
            step = node._backward
            if step is None:
                if g is not None:
                    node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            parents, needs = node._parents, node._needs
            if not retain_graph:  # release the saved arrays with the closure
                node._backward, node._parents, node._needs, node._saved_versions = _graph_freed, (), (), ()
            if g is None:
                continue
            for p, need, pg in zip(parents, needs, step(g)):
                if not need or pg is None:
                    continue
                pg = _unbroadcast(np.asarray(pg, dtype=p._data.dtype), p.shape)
                grads[id(p)] = pg if id(p) not in grads else grads[id(p)] + pg

    # --- elementwise arithmetic -------------------------------------------------------------
    def __add__(self, other):
        other = _lift(other, self._data)
        return record(self._data + as_array(other), (self, other), lambda g: (g, g))

    __radd__ = __add__

    def __sub__(self, other):
        other = _lift(other, self._data)
        return record(self._data - as_array(other), (self, other), lambda g: (g, -g))

    def __rsub__(self, other):
        other = _lift(other, self._data)
        return record(as_array(other) - self._data, (self, other), lambda g: (-g, g))

    def __mul__(self, other):
        other = _lift(other, self._data)
        a, b = self._data, as_array(other)
        return record(a * b, (self, other), lambda g: (g * b, g * a))

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = _lift(other, self._data)
        a, b = self._data, as_array(other)
        return record(a / b, (self, other), lambda g: (g / b, -g * a / (b * b)))

    def __rtruediv__(self, other):
        other = _lift(other, self._data)
        a, b = as_array(other), self._data
        return record(a / b, (self, other), lambda g: (-g * a / (b * b), g / b))

    def __neg__(self):
        return record(-self._data, (self,), lambda g: (-g,))

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("Tensor ** Tensor is not supported; the exponent must be a number")
        a = self._data
        return record(a**exponent, (self,), lambda g: (g * exponent * a ** (exponent - 1),))

    def __matmul__(self, other):
        other = _lift(other, self._data)
        a, b = self._data, as_array(other)

        def backward(g):
            if a.ndim == 1 and b.ndim == 1:
                return g * b, g * a
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = np.expand_dims(g, -2) if a.ndim == 1 else g
            g2 = np.expand_dims(g2, -1) if b.ndim == 1 else g2
            ga = g2 @ np.swapaxes(b2, -1, -2)
            gb = np.swapaxes(a2, -1, -2) @ g2
            if a.ndim == 1:
                ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:])
            if b.ndim == 1:
                gb = gb.reshape(gb.shape[:-1])
            return ga, gb

        return record(a @ b, (self, other), backward)

    def __rmatmul__(self, other):
        return Tensor(other) @ self if not isinstance(other, Tensor) else other @ self

    # comparisons give plain boolean arrays (nothing to differentiate)
    def __lt__(self, other):
        return self._data < as_array(other)

    def __le__(self, other):
        return self._data <= as_array(other)

    def __gt__(self, other):
        return self._data > as_array(other)

    def __ge__(self, other):
        return self._data >= as_array(other)

    # --- unary functions ------------------------------------------------------------------------
    def exp(self) -> "Tensor":
        out = np.exp(self._data)
        return record(out, (self,), lambda g: (g * out,), saves_output=True)

    def log(self) -> "Tensor":
        a = self._data
        return record(np.log(a), (self,), lambda g: (g / a,))

    def sqrt(self) -> "Tensor":
        out = np.sqrt(self._data)
        return record(out, (self,), lambda g: (g / (2 * out),), saves_output=True)

    def abs(self) -> "Tensor":
        a = self._data
        return record(np.abs(a), (self,), lambda g: (g * np.sign(a),))

    __abs__ = abs  # abs(t), as PyTorch

    def tanh(self) -> "Tensor":
        return tanh(self)

    def sigmoid(self) -> "Tensor":
        return sigmoid(self)

    def relu(self) -> "Tensor":
        return relu(self)

    def clip(self, min: Optional[float] = None, max: Optional[float] = None) -> "Tensor":
        a = self._data
        inside = np.ones(a.shape, bool)
        if min is not None:
            inside &= a >= min
        if max is not None:
            inside &= a <= max
        return record(np.clip(a, min, max), (self,), lambda g: (g * inside,))

    # --- reductions -----------------------------------------------------------------------------
    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        a = self._data

        def backward(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, a.shape),)

        return record(np.sum(a, axis=axis, keepdims=keepdims), (self,), backward)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        a = self._data
        count = a.size if axis is None else int(np.prod([a.shape[i] for i in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def var(self, axis: Axis = None, keepdims: bool = False, correction: int = 0) -> "Tensor":
        """Variance (population by default, like BatchNorm's batch statistics)."""
        mu = self.mean(axis=axis, keepdims=True)
        a = self._data
        count = a.size if axis is None else int(np.prod([a.shape[i] for i in np.atleast_1d(axis)]))
        d = self - mu
        return (d * d).sum(axis=axis, keepdims=keepdims) * (1.0 / (count - correction))

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        a = self._data
        out = np.max(a, axis=axis, keepdims=True)

        def backward(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            elif axis is None and not keepdims:
                g = np.reshape(g, (1,) * a.ndim)
            hit = a == out
            # ties share the gradient evenly so the total is preserved
            return (g * hit / hit.sum(axis=axis, keepdims=True),)

        result = out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
        return record(result, (self,), backward, saves_output=True)

    # --- shape ------------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        a = self._data
        return record(a.reshape(shape), (self,), lambda g: (g.reshape(a.shape),))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        shape = self.shape
        end = end_dim % len(shape) if shape else 0
        new = shape[:start_dim] + (int(np.prod(shape[start_dim : end + 1])),) + shape[end + 1 :]
        return self.reshape(new)

    def transpose(self, *axes: int) -> "Tensor":
        """``transpose(dim0, dim1)`` swaps two dimensions (PyTorch); ``transpose()`` reverses all of
        them and ``transpose(p0, p1, ..., pn)`` (n + 1 = ndim > 2, or a tuple) permutes them (NumPy)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        elif len(axes) == 2:  # PyTorch's transpose(dim0, dim1), on any number of dimensions
            perm = list(range(self.ndim))
            d0, d1 = (_dim_index(d, self.ndim, "transpose") for d in axes)
            perm[d0], perm[d1] = perm[d1], perm[d0]
            axes = tuple(perm)
        axes = axes or tuple(reversed(range(self.ndim)))
        return self.permute(axes)

    def permute(self, *axes: Any) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if sorted(_dim_index(d, self.ndim, "permute") for d in axes) != list(range(self.ndim)):
            raise ValueError(f"permute: the dimensions must be a permutation of 0..{self.ndim - 1}, but got {axes}")
        axes = tuple(_dim_index(d, self.ndim, "permute") for d in axes)
        inverse = np.argsort(axes)
        return record(np.transpose(self._data, axes), (self,), lambda g: (np.transpose(g, inverse),))

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        index = as_array(index)
        a = self._data

        def backward(g):
            full = np.zeros_like(a)
            np.add.at(full, index, g)  # repeated fancy indices must accumulate
            return (full,)

        return record(a[index], (self,), backward)

    def astype(self, dtype: Any) -> "Tensor":
        a = self._data
        return record(a.astype(dtype), (self,), lambda g: (g.astype(a.dtype),))


# --- elementwise ops shared by Tensor methods and convolve.functional (written once, here) ---------


def relu(x: Any) -> Any:
    """max(x, 0) of a Tensor or array (no checks: `convolve.functional.relu` validates).

    The gradient at 0 is 0, as PyTorch; a non-finite output gradient reaches only where x > 0.
    """
    a = as_array(x)
    y = eltwise.relu(a)
    return record(y, (x,), lambda g: (eltwise.relu_backward(g, y),), saves_output=True)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent of a Tensor or array."""
    out = np.tanh(as_array(x))
    return record(out, (x,), lambda g: (g * (1 - out * out),), saves_output=True)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)) of a Tensor or array, without overflow for large |x|."""
    a = as_array(x)
    e = np.exp(-np.abs(a))  # in (0, 1]: never overflows
    out = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
    return record(out, (x,), lambda g: (g * out * (1 - out),), saves_output=True)
