"""A table of any ``convolve.nn`` model (like torchinfo's): every sub-module in call order with its output
shape and parameter count, measured by running the model once on zeros; and building a model from specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

import numpy as np

from .. import nn, no_grad
from ..autograd import Tensor
from .shapes import explain, fmt_bytes, fmt_int
from .spec import format_shape, parse_layers, parse_shape

__all__ = ["ModelSummary", "summary", "model_from_spec"]


@dataclass
class Row:
    name: str
    kind: str
    depth: int
    leaf: bool
    params: int  # own parameters for leaves, all below for containers
    out_shape: tuple | None = None  # per sample, without the batch axis


@dataclass
class ModelSummary:
    """Rows in call order, totals and ``str()`` rendering."""

    input_shape: tuple
    rows: list = field(default_factory=list)
    output_shape: tuple | None = None
    total_params: int = 0
    trainable_params: int = 0
    itemsize: int = 4

    @property
    def activations(self) -> int:
        return sum(int(np.prod(r.out_shape)) for r in self.rows if r.leaf and r.out_shape)

    def __str__(self) -> str:
        head = ("layer (type)", "output", "params")
        body = []
        for r in self.rows:
            shape = _shape_text(r.out_shape)
            params = fmt_int(r.params) if r.leaf else (f"({fmt_int(r.params)})" if r.params else "")
            body.append(("  " * r.depth + f"{r.name} ({r.kind})", shape, params))
        rows = [head] + body
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"input {_shape_text(self.input_shape)} -> output {_shape_text(self.output_shape)}")
        lines.append(f"parameters: {fmt_int(self.total_params)} ({fmt_int(self.trainable_params)} trainable), "
                     f"{fmt_bytes(self.total_params * self.itemsize)}")
        lines.append(f"activations: {fmt_int(self.activations)} values = {fmt_bytes(self.activations * self.itemsize)} "
                     f"per image (outputs of the leaf layers; containers' totals in parentheses)")
        return "\n".join(lines)


def _shape_text(shape) -> str:
    if shape is None:
        return "-"
    return format_shape(shape) if len(shape) in (1, 3) else "x".join(map(str, shape))


def _input_shape(input_shape) -> tuple:
    if isinstance(input_shape, str):
        return parse_shape(input_shape, "input")
    if isinstance(input_shape, (tuple, list)) and input_shape and all(
            isinstance(v, (int, np.integer)) and v > 0 for v in input_shape):
        return tuple(int(v) for v in input_shape)
    raise TypeError(f"input_shape must be a string like '28x28x1' or a tuple (C, H, W) of positive ints, "
                    f"but got {input_shape!r}")


def summary(model: nn.Module, input_shape: Any, dtype: Any = np.float32) -> ModelSummary:
    """Run `model` once on zeros of `input_shape` (batch of 1, eval mode, no gradients) and tabulate it.

    Parameters
    ----------
    model : convolve.nn.Module
    input_shape : str or tuple
        '28x28x1' (H x W x C), '(1,28,28)', or a tuple (C, H, W) without the batch axis.
    dtype : numpy dtype
        Element type for the memory figures.

    Returns
    -------
    ModelSummary
        Its ``str`` is the table; ``rows``, ``total_params`` and ``output_shape`` hold the numbers.

    Examples
    --------
    >>> import convolve.nn as nn
    >>> from convolve.explain import summary
    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    ...                       nn.Linear(8 * 14 * 14, 10))
    >>> print(summary(model, "28x28x1"))                   # doctest: +ELLIPSIS
    layer (type)   output   params
    ------------------------------
    0 (Conv2d)     28x28x8      80
    1 (ReLU)       28x28x8       0
    2 (MaxPool2d)  14x14x8       0
    3 (Flatten)    1568          0
    4 (Linear)     10       15,690
    ------------------------------
    input 28x28x1 -> output 10
    parameters: 15,770 (15,770 trainable), 61.6 KiB
    ...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a convolve.nn.Module, but got {type(model).__name__}")
    shape = _input_shape(input_shape)
    result = ModelSummary(shape, itemsize=np.dtype(dtype).itemsize)
    patched = []

    def wrap(name, m):
        original = m.forward
        children = list(m.children())
        own = sum(int(p.data.size) for p in m.parameters(recurse=False))
        total = sum(int(p.data.size) for p in m.parameters())

        def forward(*args, **kwargs):
            row = Row(name, type(m).__name__, name.count("."), not children, own if not children else total)
            result.rows.append(row)  # appended before running, so containers precede their children
            out = original(*args, **kwargs)
            data = out.data if isinstance(out, Tensor) else np.asarray(out)
            row.out_shape = tuple(data.shape[1:])
            return out

        object.__setattr__(m, "forward", forward)  # an instance attribute shadows the class method
        patched.append(m)

    for name, m in model.named_modules():
        if m is not model:
            wrap(name, m)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            out = model(Tensor(np.zeros((1,) + shape, dtype=dtype)))
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)
        model.train(was_training)
    data = out.data if isinstance(out, Tensor) else np.asarray(out)
    result.output_shape = tuple(data.shape[1:])
    params = list(model.parameters())
    result.total_params = sum(int(p.data.size) for p in params)
    result.trainable_params = sum(int(p.data.size) for p in params if p.requires_grad)
    return result


def model_from_spec(input_shape: Any, layers: Any) -> nn.Sequential:
    """A ``convolve.nn.Sequential`` built from layer specs (the grammar of ``convolve explain``).

    Raises ValueError with the explanation when a layer is impossible (as :func:`explain` reports it).
    """
    e = explain(input_shape, layers)
    bad = next((s for s in e.steps if s.problem), None)
    if bad is not None:
        raise ValueError(f"layer {bad.index} '{bad.layer.text}' is impossible: {bad.problem}")
    modules: List[nn.Module] = []
    parsed: List[Any] = parse_layers(layers)  # checked by explain above: every field a layer needs is set
    for step, layer in zip(e.steps, parsed):
        k = layer.kind
        if k == "conv":
            pad = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
            if isinstance(pad, str) and pad == "same":
                pad = step.padding  # explicit (before, after) pairs: 'same' with any stride, as explain computed
            modules.append(nn.Conv2d(step.in_shape[0], layer.out, layer.kernel, stride=layer.stride, padding=pad,
                                     dilation=layer.dilation, groups=layer.groups, bias=layer.bias))
        elif k == "maxpool":
            modules.append(nn.MaxPool2d(layer.kernel, stride=layer.stride, padding=tuple(p for p, _ in step.padding),
                                        dilation=layer.dilation, ceil_mode=layer.ceil))
        elif k == "avgpool":
            modules.append(nn.AvgPool2d(layer.kernel, stride=layer.stride, padding=tuple(p for p, _ in step.padding),
                                        ceil_mode=layer.ceil))
        elif k == "linear":
            modules.append(nn.Linear(step.in_shape[0], layer.out, bias=layer.bias))
        elif k == "flatten":
            modules.append(nn.Flatten())
        elif k == "batchnorm":
            modules.append(nn.BatchNorm2d(step.in_shape[0]))
        elif k == "dropout":
            modules.append(nn.Dropout(layer.p))
        else:
            modules.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[k]())
    return nn.Sequential(*modules)
