"""What an op builder sees of one ONNX node: attributes (tracked), constant inputs, inferred shapes."""

from __future__ import annotations

import numpy as np

__all__ = ["NodeInfo", "OnnxUnsupportedError"]


class OnnxUnsupportedError(ValueError):
    """An op, attribute or value that convolve does not import; the message names op, node and opset."""


class NodeInfo:
    """One node, as its builder needs it.

    ``attrs`` holds Python values; every attribute a builder reads is marked used, and the loader
    refuses a node that has attributes its builder never read (so nothing is silently ignored).
    ``consts[i]`` is input i's value when known at load (an initializer or folded), else None;
    ``shapes[i]`` its inferred shape (ints, call-time dimensions or None) or None; ``producers[i]`` the
    op type of the node that made input i (None for graph inputs and initializers).
    """

    def __init__(self, op, name, opset, inputs, outputs, attrs, consts, shapes, producers):
        self.op, self.name, self.opset = op, name, opset
        self.inputs, self.outputs = inputs, outputs
        self.attrs, self.used = attrs, set()
        self.consts, self.shapes, self.producers = consts, shapes, producers

    def where(self) -> str:
        return f"{self.op} (node {self.name!r}, opset {self.opset})"

    def unsupported(self, what: str) -> OnnxUnsupportedError:
        return OnnxUnsupportedError(f"{self.where()}: {what}")

    def attr(self, key, default=None):
        self.used.add(key)
        return self.attrs.get(key, default)

    def ignore(self, *keys):
        """Attributes that do not change inference (e.g. BatchNormalization's momentum)."""
        self.used.update(keys)

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and bool(self.inputs[i])

    def const(self, i: int, what: str = ""):
        """Input i's value, which must be known at load."""
        if not self.has(i):
            return None
        v = self.consts[i]
        if v is None:
            raise self.unsupported(
                f"input {i} ({self.inputs[i]!r}{', ' + what if what else ''}) must be a constant or computable "
                f"at load, but it depends on the model's inputs")
        return v

    def ints(self, i: int, what: str = ""):
        v = self.const(i, what)
        return None if v is None else [int(x) if not hasattr(x, "fn") else x for x in np.asarray(v).ravel()]

    def rank(self, i: int = 0):
        s = self.shapes[i] if i < len(self.shapes) else None
        return None if s is None else len(s)

    def unused(self):
        return sorted(set(self.attrs) - self.used)
