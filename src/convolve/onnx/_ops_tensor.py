"""Builders for elementwise arithmetic and the structural ops (shape arithmetic folds through these)."""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor, as_array
from . import _tensor as T
from ._fold import _div, shape_value, simplify
from ._ops import Folded, register
from ._ops_nn import legacy_broadcast

_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
                9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _axis(axis, rank):
    return int(axis) % rank if rank else int(axis)


def _both_plain(a, b):
    return not isinstance(a, Tensor) and not isinstance(b, Tensor)


def _div_any(a, b):
    if _both_plain(a, b):
        av, bv = np.asarray(a), np.asarray(b)
        if av.dtype == object or bv.dtype == object:
            return simplify(np.frompyfunc(_div, 2, 1)(av, bv))
        if av.dtype.kind in "iu" and bv.dtype.kind in "iu":
            return np.trunc(av / bv).astype(np.result_type(av, bv))
    return a / b


_BINARY = {"Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b, "Div": _div_any,
           "Pow": lambda a, b: a ** float(np.asarray(b)) if isinstance(a, Tensor) else np.power(a, b)}
for _name, _fn in _BINARY.items():
    register(_name)(lambda n, f=_fn: legacy_broadcast(
        n, lambda a, b: simplify(f(a, b)) if _both_plain(a, b) else f(a, b)))


@register("Sum")
def _sum(n):
    def total(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
    return total


def _unary(np_fn, method):
    return lambda x: getattr(x, method)() if isinstance(x, Tensor) else np_fn(x)


register("Neg")(lambda n: lambda x: -x)
register("Exp")(lambda n: _unary(np.exp, "exp"))
register("Log")(lambda n: _unary(np.log, "log"))
register("Sqrt")(lambda n: _unary(np.sqrt, "sqrt"))
register("Abs")(lambda n: _unary(np.abs, "abs"))
register("Reciprocal")(lambda n: lambda x: 1.0 / x)
register("Identity")(lambda n: lambda x: x)


@register("Constant")
def _constant(n):
    from onnx import numpy_helper

    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        v = n.attr(key)
        if v is not None:
            if key == "value":
                return Folded(numpy_helper.to_array(v))
            dt = np.float32 if "float" in key else np.int64
            return Folded(np.asarray(v, dtype=dt))
    raise n.unsupported("a Constant without value/value_float(s)/value_int(s) (sparse or string constants)")


@register("Shape")
def _shape(n):
    start, end = n.attr("start", 0), n.attr("end")
    shape = n.shapes[0]
    if shape is not None and all(s is not None for s in shape):
        return Folded(shape_value(shape[start:end]))
    return lambda x: np.array(as_array(x).shape[start:end], dtype=np.int64)


@register("Size")
def _size(n):
    shape = n.shapes[0]
    if shape is not None and all(isinstance(s, int) for s in shape):
        return Folded(np.array(math.prod(shape), dtype=np.int64))
    return lambda x: np.array(as_array(x).size, dtype=np.int64)


@register("Gather")
def _gather(n):
    axis = n.attr("axis", 0)
    return lambda x, idx: T.take(x, idx, _axis(axis, as_array(x).ndim))


def _axes(n, i):
    return n.attr("axes") if n.opset < 13 else n.ints(i, "axes")


@register("Unsqueeze")
def _unsqueeze(n):
    axes = _axes(n, 1)

    def unsqueeze(x, *_):
        shape = list(as_array(x).shape)
        rank = len(shape) + len(axes)
        for a in sorted(int(a) % rank for a in axes):
            shape.insert(a, 1)
        return T.reshape(x, shape)

    return unsqueeze


@register("Squeeze")
def _squeeze(n):
    axes = _axes(n, 1)

    def squeeze(x, *_):
        shape = as_array(x).shape
        drop = {int(a) % len(shape) for a in axes} if axes else {i for i, s in enumerate(shape) if s == 1}
        return T.reshape(x, [s for i, s in enumerate(shape) if i not in drop])

    return squeeze


@register("Concat")
def _concat(n):
    axis = n.attr("axis")
    return lambda *xs: T.concat([x for x in xs if as_array(x).size or len(xs) == 1], _axis(axis, as_array(xs[0]).ndim))


@register("Cast")
def _cast(n):
    to = n.attr("to")
    n.ignore("saturate")
    if to not in _ONNX_DTYPES:
        raise n.unsupported(f"cast to ONNX type {to}")
    dt = np.dtype(_ONNX_DTYPES[to])
    return lambda x: T.cast(x, dt)


@register("ConstantOfShape")
def _constant_of_shape(n):
    from onnx import numpy_helper

    v = n.attr("value")
    fill = numpy_helper.to_array(v).reshape(-1) if v is not None else np.zeros(1, np.float32)
    return lambda shape: np.full(tuple(int(s) for s in np.asarray(shape).ravel()), fill[0], dtype=fill.dtype)


@register("Range")
def _range(n):
    return lambda start, limit, delta: np.arange(np.asarray(start).item(), np.asarray(limit).item(),
                                                 np.asarray(delta).item()).astype(np.asarray(start).dtype)


@register("Equal")
def _equal(n):
    return lambda a, b: np.equal(as_array(a), as_array(b))


@register("Where")
def _where(n):
    return lambda c, a, b: T.where_const(c, a, b) if isinstance(a, Tensor) or isinstance(b, Tensor) else np.where(c, a, b)


@register("Expand")
def _expand(n):
    return lambda x, shape: T.expand(x, shape)


@register("Reshape")
def _reshape(n):
    allowzero = n.attr("allowzero", 0)
    if n.opset < 5:
        raise n.unsupported("Reshape before opset 5 (shape as an attribute)")

    def reshape(x, shape):
        src = as_array(x).shape
        target = [int(s) for s in np.asarray(shape).ravel()]
        if not allowzero:
            target = [src[i] if s == 0 else s for i, s in enumerate(target)]
        return T.reshape(x, target)

    return reshape


@register("Flatten")
def _flatten(n):
    axis = n.attr("axis", 1)

    def flatten(x):
        shape = as_array(x).shape
        a = _axis(axis, len(shape)) if axis != len(shape) else axis
        return T.reshape(x, (math.prod(shape[:a]), math.prod(shape[a:])))

    return flatten


@register("Transpose")
def _transpose(n):
    perm = n.attr("perm")
    return lambda x: T.transpose(x, perm if perm is not None else tuple(reversed(range(as_array(x).ndim))))


@register("Slice")
def _slice(n):
    if n.opset < 10:
        starts, ends, axes = n.attr("starts"), n.attr("ends"), n.attr("axes")
        return lambda x: T.slice_axes(x, starts, ends, axes or range(len(starts)), [1] * len(starts))

    def slice_(x, starts, ends, axes=None, steps=None):
        rank = as_array(x).ndim
        axes = range(len(starts)) if axes is None else [int(a) % rank for a in np.asarray(axes).ravel()]
        steps = [1] * len(starts) if steps is None else np.asarray(steps).ravel()
        return T.slice_axes(x, np.asarray(starts).ravel(), np.asarray(ends).ravel(), axes, steps)

    return slice_


@register("Split")
def _split(n):
    axis = n.attr("axis", 0)
    count = len(n.outputs)
    split = n.attr("split") if n.opset < 13 else n.ints(1, "split")
    n.ignore("num_outputs")

    def split_(x, *_):
        a = as_array(x)
        ax = _axis(axis, a.ndim)
        sizes = split or [-(-a.shape[ax] // count)] * count
        bounds = np.cumsum([0] + list(sizes))
        return tuple(T.slice_axes(x, [b0], [min(b1, a.shape[ax])], [ax], [1]) for b0, b1 in zip(bounds[:-1], bounds[1:]))

    return split_


@register("Pad")
def _pad(n):
    from ..functional import pad as fpad

    mode = n.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise n.unsupported(f"mode={mode!r}")
    if n.opset < 11:
        pads, value, axes = n.attr("pads") or n.attr("paddings"), float(n.attr("value", 0.0)), None
    else:
        pads = n.ints(1, "pads")
        value = n.const(2, "constant_value")
        value = 0.0 if value is None or np.asarray(value).size == 0 else float(np.asarray(value).item())
        axes = n.ints(3, "axes") if n.has(3) else None

    def pad(x, *_):
        rank = as_array(x).ndim
        ax = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
        k = len(ax)
        pairs = {a: (pads[i], pads[i + k]) for i, a in enumerate(ax)}
        first = min(pairs) if pairs else rank
        flat = tuple(v for a in reversed(range(first, rank)) for v in pairs.get(a, (0, 0)))
        if any(pairs.get(a, (0, 0)) != (0, 0) for a in range(first)):
            raise n.unsupported("padding of the leading axes before the first padded one")
        if not any(flat):
            return x
        return fpad(x, flat, mode=modes[mode], value=value)

    return pad
