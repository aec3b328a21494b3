"""The ops table: ONNX op type -> builder. A builder runs once at load, reads the node's attributes and
constant inputs, and returns what the graph will call (a module holding Parameters, or a function)."""

from __future__ import annotations

__all__ = ["OPS", "register", "Folded", "table"]

OPS: dict = {}


class Folded:
    """A builder's answer when the node's output is known at load (e.g. Shape of a known shape)."""

    def __init__(self, *values):
        self.values = values


def register(*names):
    def deco(fn):
        for name in names:
            OPS[name] = fn
        return fn
    return deco


def table() -> dict:
    """OPS, with every op module imported (they register themselves)."""
    from . import _ops_nn, _ops_tensor  # noqa: F401

    return OPS
