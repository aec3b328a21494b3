"""``convolve explain MODEL.onnx``: explain's per-layer table (output, parameters, FLOPs, receptive field,
memory) for a real graph, measured by running the imported model once on zeros and watching each step."""

from __future__ import annotations

from typing import Any, List

import math

import numpy as np

from .. import no_grad
from ..autograd import as_array
from ..explain.shapes import fmt_bytes, fmt_int
from ..explain.spec import format_shape

__all__ = ["explain_onnx", "OnnxRow"]

_WINDOW = {"Conv", "ConvTranspose", "MaxPool", "AveragePool"}
_WHOLE = {"Gemm", "MatMul", "Flatten", "Reshape", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum",
          "ReduceMax"}
_FREE = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Dropout", "Slice",
         "Gather", "Split", "Shape", "Cast", "Pad", "Expand"}


class OnnxRow:
    def __init__(self, index, step, shape, params, flops, rf, nbytes):
        self.index, self.step, self.shape, self.params = index, step, shape, params
        self.flops, self.rf, self.nbytes = flops, rf, nbytes

    @property
    def label(self):
        return f"{self.step.op} {self.step.name}"


def _shape_text(shape):
    if len(shape) in (1, 3):
        return format_shape(shape)
    return "x".join(map(str, shape)) if shape else "scalar"


def _window(module_or_fn, step):
    """(kernel, stride, dilation) of a conv or pooling step, when it can be read."""
    m = module_or_fn
    if step.op in ("Conv", "ConvTranspose"):
        return tuple(m.weight.shape[2:]), tuple(m.stride), tuple(m.dilation)
    cells = getattr(m, "__closure__", None) or ()
    names = m.__code__.co_freevars if hasattr(m, "__code__") else ()
    env = dict(zip(names, (c.cell_contents for c in cells)))
    if "kernel" in env:
        return tuple(env["kernel"]), tuple(env["strides"]), tuple(env.get("dil") or (1,) * len(env["kernel"]))
    return None


def _flops(step, args, out, params):
    n = int(np.prod(out.shape)) if out.ndim else 1
    x: Any = as_array(args[0]) if args and args[0] is not None else None  # None: no first input
    m = step.fn
    if step.op == "Conv":
        taps = int(np.prod(m.weight.shape[1:]))
        return n * (2 * taps - (0 if m.bias is not None else 1))
    if step.op == "ConvTranspose":
        return int(x.size) * int(np.prod(m.weight.shape[1:])) * 2
    if step.op in ("Gemm", "MatMul"):
        k = x.shape[-1]
        return n * (2 * k - 1) + (n if getattr(m, "bias", None) is not None else 0)
    if step.op in ("MaxPool", "AveragePool"):
        w = _window(m, step)
        k = int(np.prod(w[0])) if w else 1
        return n * (k - 1) if step.op == "MaxPool" else n * k
    if step.op in ("GlobalAveragePool", "GlobalMaxPool") or step.op.startswith("Reduce"):
        return int(x.size)
    if step.op == "BatchNormalization":
        return 2 * n
    if step.op in _FREE:
        return 0
    return n


def _receptive(step, rfs, nd):
    """(rf, jump) per spatial axis of the step's output; None = every output sees the whole input."""
    ins = [rfs.get(i) for i in step.inputs if i in rfs]
    if not ins or any(r is None for r in ins) or step.op in _WHOLE:
        return None
    rf = tuple(max(r[0][d] for r in ins) for d in range(nd))
    jump = tuple(max(r[1][d] for r in ins) for d in range(nd))
    if step.op in _WINDOW:
        w = _window(step.fn, step)
        if w is None:
            return rf, jump
        k, s, d = w
        if step.op == "ConvTranspose":
            jump = tuple(j / st for j, st in zip(jump, s))
            return tuple(r + (kk - 1) * dd * j for r, kk, dd, j in zip(rf, k, d, jump)), jump
        return tuple(r + (kk - 1) * dd * j for r, kk, dd, j in zip(rf, k, d, jump)), tuple(j * st for j, st in zip(jump, s))
    return rf, jump


def explain_onnx(model, input_shape=None, dtype=np.float32):
    """Rows of the per-layer table for an imported ONNX model, and the rendered text.

    Parameters
    ----------
    model : OnnxModel
    input_shape : tuple, optional
        One sample's shape without the batch axis; default the file's (dynamic axes other than the
        batch must then be given).

    Returns
    -------
    (list of OnnxRow, str)

    Shape
    -----
    Shapes in the table are per sample (batch 1), channels-last as explain writes them (HxWxC).
    """
    spec = model.input_specs[0]
    shape = tuple(input_shape) if input_shape is not None else tuple(spec.shape[1:])
    if any(not isinstance(d, int) for d in shape):
        raise ValueError(f"input {spec.name!r} has dynamic axes {list(spec.shape)}; give one sample's shape "
                         f"after the model, e.g. convolve explain model.onnx 224x224x3 (H x W x C)")
    itemsize = np.dtype(dtype).itemsize
    x = np.zeros((1,) + shape, dtype=spec.dtype)
    nd = len(shape) - 1
    rows: List[Any] = []
    rfs = {spec.name: ((1,) * nd, (1,) * nd)}

    def trace(step, args, env):
        out = env.get(step.outputs[0])
        if out is None:
            return
        a = as_array(out)
        params = sum(int(p.data.size) for p in step.fn.parameters()) if hasattr(step.fn, "parameters") else 0
        for name in step.outputs:
            rfs[name] = _receptive(step, rfs, nd)
        rows.append(OnnxRow(len(rows) + 1, step, tuple(a.shape[1:]), params, _flops(step, args, a, params),
                            rfs[step.outputs[0]], int(a.size) * itemsize))

    object.__setattr__(model, "_trace", trace)
    try:
        with no_grad():
            model(*([x] + [np.zeros([1 if not isinstance(d, int) else d for d in s.shape], s.dtype)
                           for s in model.input_specs[1:]]))
    finally:
        object.__setattr__(model, "_trace", None)
    return rows, _render(rows, shape, itemsize, model)


def _render(rows, shape, itemsize, model):
    head = ("#", "layer", "output", "params", "FLOPs", "RF", "memory")
    lines = [head, ("0", f"input {model.input_specs[0].name}", _shape_text(shape), "", "", "1" if len(shape) == 2
                    else "x".join(["1"] * (len(shape) - 1)), fmt_bytes(int(np.prod(shape)) * itemsize))]
    for r in rows:
        rf = "all" if r.rf is None else "x".join(str(math.ceil(v)) for v in r.rf[0])
        lines.append((str(r.index), r.label, _shape_text(r.shape), fmt_int(r.params), fmt_int(r.flops), rf,
                      fmt_bytes(r.nbytes)))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = ["  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in lines]
    text.insert(1, "-" * len(text[0]))
    params = sum(int(p.data.size) for p in model.parameters())
    flops = sum(r.flops for r in rows)
    act = sum(r.nbytes for r in rows)
    out = rows[-1].shape if rows else shape
    text.append(f"total: {len(rows)} steps, {_shape_text(shape)} -> {_shape_text(out)}, {fmt_int(params)} parameters "
                f"({fmt_bytes(params * itemsize)}), {fmt_int(flops)} FLOPs and {fmt_bytes(act)} of activations per "
                f"image (opset {model.opset})")
    return "\n".join(text)
