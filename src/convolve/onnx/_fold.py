"""Shape arithmetic folded at load: dimensions that are only known when the model is called.

A graph input's dynamic dimension (the batch, say) becomes a :class:`Sym`; the `Shape` of a tensor whose
shape ONNX shape inference knows becomes a constant object array of ints and Syms, and Gather, Concat,
Unsqueeze, Mul, ... fold over it with plain NumPy. A step that finally consumes such a value (Reshape,
Expand, ConstantOfShape, Resize) gets it resolved against the call's input shapes: a few Python ops
per call instead of running the shape subgraph.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["Sym", "has_sym", "resolve"]


class Sym:
    """An integer known only at call time: ``sym(dims)`` evaluates it from ``dims`` (name -> int)."""

    __slots__ = ("fn", "text")

    def __init__(self, fn, text: str):
        self.fn, self.text = fn, text

    @classmethod
    def dim(cls, name: str) -> "Sym":
        return cls(lambda dims: dims[name], name)

    def __call__(self, dims) -> int:
        return int(self.fn(dims))

    def __repr__(self):
        return self.text

    def _op(self, other, op, sym, swap=False):
        if not isinstance(other, (Sym, int, np.integer)):
            return NotImplemented
        f = other.fn if isinstance(other, Sym) else (lambda _, v=int(other): v)
        a, b = (f, self.fn) if swap else (self.fn, f)
        text = f"({other} {sym} {self})" if swap else f"({self} {sym} {other})"
        return Sym(lambda dims: op(a(dims), b(dims)), text)

    def __add__(self, o): return self._op(o, operator.add, "+")
    def __radd__(self, o): return self._op(o, operator.add, "+", True)
    def __sub__(self, o): return self._op(o, operator.sub, "-")
    def __rsub__(self, o): return self._op(o, operator.sub, "-", True)
    def __mul__(self, o): return self._op(o, operator.mul, "*")
    def __rmul__(self, o): return self._op(o, operator.mul, "*", True)
    def __floordiv__(self, o): return self._op(o, _div, "/")
    def __rfloordiv__(self, o): return self._op(o, _div, "/", True)
    __truediv__, __rtruediv__ = __floordiv__, __rfloordiv__

    def __bool__(self):
        raise TypeError(f"the dimension {self.text} is only known when the model is called")

    def __index__(self):
        raise TypeError(f"the dimension {self.text} is only known when the model is called")

    __int__ = __index__


def _div(a, b):
    """ONNX integer division truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def has_sym(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == object and any(isinstance(v, Sym) for v in value.flat)


def shape_value(dims) -> np.ndarray:
    """A shape (ints and Syms) as the value ONNX's Shape gives: int64, or object while a Sym is in it."""
    if any(isinstance(d, Sym) for d in dims):
        return np.array(list(dims) + [None], dtype=object)[:-1]  # keep the 1-D object layout
    return np.array(dims, dtype=np.int64)


def simplify(value):
    """An object array with no Sym left becomes int64 again."""
    if isinstance(value, np.ndarray) and value.dtype == object and not has_sym(value):
        return value.astype(np.int64)
    return value


def resolve(value, dims):
    """`value` with every Sym evaluated against `dims` (int64), or `value` itself."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.array([v(dims) if isinstance(v, Sym) else int(v) for v in value.flat],
                        dtype=np.int64).reshape(value.shape)
    return value
