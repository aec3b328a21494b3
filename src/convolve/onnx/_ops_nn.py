"""Builders for the network ops: convolution, pooling, normalisation, dense layers, activations, resize."""

from __future__ import annotations

from typing import Any, List

import math

import numpy as np

from .. import functional as F
from ..autograd import Tensor, as_array
from ..functional.lrn import lrn_window
from ..functional.resize import resize
from ._modules import BatchNorm, Bias, Conv, ConvTranspose, Gemm, MatMul, PRelu, same_pads
from ._ops import register

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _window_attrs(n, nd, kernel=None):
    kernel = tuple(n.attr("kernel_shape") or kernel or ())
    if len(kernel) != nd:
        raise n.unsupported(f"kernel_shape {list(kernel)} does not match a {nd}-D input")
    strides = tuple(n.attr("strides") or (1,) * nd)
    dilations = tuple(n.attr("dilations") or (1,) * nd)
    pads = list(n.attr("pads") or (0,) * (2 * nd))
    auto = n.attr("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise n.unsupported(f"auto_pad={auto!r} (expected NOTSET, VALID, SAME_UPPER or SAME_LOWER)")
    pairs = tuple((int(pads[i]), int(pads[i + nd])) for i in range(nd)) if auto == "NOTSET" else ((0, 0),) * nd
    return kernel, strides, dilations, pairs, (auto if auto.startswith("SAME") else None)


@register("Conv")
def _conv(n):
    w = n.const(1, "the weights")
    b = n.const(2, "the bias")
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise n.unsupported(f"{nd}-D convolution (1-D, 2-D and 3-D are supported)")
    kernel, strides, dil, pairs, auto = _window_attrs(n, nd, w.shape[2:])
    if kernel != tuple(w.shape[2:]):
        raise n.unsupported(f"kernel_shape {list(kernel)} differs from the weight's {list(w.shape[2:])}")
    m = Conv(w, b, strides, pairs, dil, int(n.attr("group", 1)), auto)
    return m, m


@register("ConvTranspose")
def _conv_transpose(n):
    w = n.const(1, "the weights")
    b = n.const(2, "the bias")
    nd = w.ndim - 2
    kernel, strides, dil, pairs, auto = _window_attrs(n, nd, w.shape[2:])
    group = int(n.attr("group", 1))
    out_pad = tuple(n.attr("output_padding") or (0,) * nd)
    out_shape = n.attr("output_shape")
    if auto is not None or out_shape:
        spatial = (n.shapes[0] or [None] * (nd + 2))[2:]
        if any(not isinstance(s, int) for s in spatial):
            raise n.unsupported("output_shape/auto_pad need the input's spatial size known at load")
        target = list(out_shape)[-nd:] if out_shape else [s * st for s, st in zip(spatial, strides)]
        pairs = []
        for i in range(nd):
            total = strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1 - target[i]
            if total < 0:
                raise n.unsupported(f"output_shape {list(out_shape)} is larger than the full output")
            half = total // 2
            pairs.append((half, total - half) if auto == "SAME_UPPER" else (total - half, half))
        pairs = tuple(pairs)
    m = ConvTranspose(w, b, strides, pairs, dil, group, out_pad)
    return m, m


def _pool_geometry(n, nd, kind):
    kernel, strides, dil, pairs, auto = _window_attrs(n, nd)
    ceil = bool(n.attr("ceil_mode", 0))
    if kind == "max":
        if n.attr("storage_order", 0):
            raise n.unsupported("storage_order=1 (column-major indices)")
        if len(n.outputs) > 1 and n.outputs[1]:
            raise n.unsupported("the Indices output")
    return kernel, strides, dil, pairs, auto, ceil


@register("MaxPool", "AveragePool")
def _pool(n):
    nd = n.rank(0) - 2 if n.rank(0) else len(n.attrs.get("kernel_shape", ()))
    kind = "max" if n.op == "MaxPool" else "avg"
    kernel, strides, dil, pairs, auto, ceil = _pool_geometry(n, nd, kind)
    include = bool(n.attr("count_include_pad", 0)) if kind == "avg" else True
    if kind == "avg" and any(d != 1 for d in dil):
        raise n.unsupported(f"dilations {list(dil)} in AveragePool")

    def pool(x):
        p = same_pads(as_array(x).shape[2:], kernel, strides, dil, auto == "SAME_LOWER") if auto else pairs
        sym = all(a == b for a, b in p)
        limit = [(d * (k - 1) + 1) // 2 if kind == "max" else k // 2 for k, d in zip(kernel, dil)]
        if sym and all(a <= lim for (a, _), lim in zip(p, limit)):
            pad = tuple(a for a, _ in p)
            if kind == "max":
                return _MAX[nd](x, kernel, strides, pad, dil, ceil)
            return _AVG[nd](x, kernel, strides, pad, ceil, include)
        flat = tuple(v for pair in reversed(p) for v in pair)
        if kind == "max":
            return _MAX[nd](F.pad(x, flat, value=-np.inf), kernel, strides, 0, dil, ceil)
        summed = _AVG[nd](F.pad(x, flat), kernel, strides, 0, ceil, True, 1)
        if include:
            return summed * (1.0 / math.prod(kernel))
        ones = np.ones((1, 1) + as_array(x).shape[2:], as_array(x).dtype)
        count = _AVG[nd](F.pad(ones, flat), kernel, strides, 0, ceil, True, 1)
        return summed / count

    return pool


@register("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(n):
    is_max = n.op == "GlobalMaxPool"

    def pool(x):  # the same method on Tensors (recorded) and arrays
        axes = tuple(range(2, as_array(x).ndim))
        return x.max(axis=axes, keepdims=True) if is_max else x.mean(axis=axes, keepdims=True)

    return pool


@register("BatchNormalization")
def _batch_norm(n):
    n.ignore("momentum", "is_test")
    if n.attr("spatial", 1) != 1:
        raise n.unsupported("spatial=0 (per-position statistics)")
    if n.attr("training_mode", 0):
        raise n.unsupported("training_mode=1 (import runs BatchNormalization with its running statistics)")
    if any(n.outputs[1:]):
        raise n.unsupported("the training outputs (running mean/var)")
    scale, bias, mean, var = (n.const(i, what) for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    m = BatchNorm(scale, bias, mean, var, n.attr("epsilon", 1e-5))
    return m, m


@register("Gemm")
def _gemm(n):
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    trans_a, trans_b = n.attr("transA", 0), n.attr("transB", 0)
    n.ignore("broadcast")  # opset < 7: C always broadcasts
    b = n.consts[1]
    if b is None or b.dtype.kind != "f":
        def gemm(a, bb, c=None):
            a = a.T if trans_a else a
            bb = bb.T if trans_b else bb
            y = (a @ bb) * alpha
            return y if c is None else y + c * beta
        return gemm
    weight = b if trans_b else np.ascontiguousarray(b.T)  # PyTorch Linear layout (out, in)
    c = n.const(2, "C")
    if c is not None and c.size in (1, weight.shape[0]):
        c = np.broadcast_to(c.reshape(-1), (weight.shape[0],)).copy()
    m = Gemm(weight, c, alpha, beta, trans_a)
    return m, m


@register("MatMul")
def _matmul(n):
    w = n.consts[1]
    if w is not None and w.dtype.kind == "f" and n.consts[0] is None:
        m = MatMul(w)
        return m, m
    return lambda a, b: a @ b


@register("PRelu")
def _prelu(n):
    slope = n.const(1, "the slopes")
    rank = n.rank(0)
    flat = slope.reshape(-1)
    # ONNX broadcasts the slope from the right; one per channel is (C, 1, ..., 1)
    channels = (n.shapes[0] or [None, None])[1] if rank and rank >= 2 else None
    channel = rank is not None and rank >= 2 and slope.ndim <= rank - 1 and (
        slope.size == 1 or (slope.ndim == rank - 1 and slope.shape[0] == flat.size)
        or (n.opset < 7 and slope.ndim == 1 and flat.size == channels))  # opset 6: a 1-D slope is per channel
    if not channel:
        raise n.unsupported(f"slope of shape {list(slope.shape)} (one per channel, (C, 1, ...) or (1,), is supported)")
    m = PRelu(flat)
    return m, m


@register("Add")
def _add_bias(n):
    # a learned shift after a learned MatMul (a Linear split in two) stays trainable
    for i in (0, 1):
        c, other = n.consts[i], n.producers[1 - i]
        if c is not None and c.dtype.kind == "f" and c.size > 1 and other == "MatMul" and n.consts[1 - i] is None:
            m = Bias(c)
            return (lambda a, b, m=m, i=i: m(b if i == 0 else a)), m
    return legacy_broadcast(n, lambda a, b: a + b)


def legacy_broadcast(n, fn):
    """Before opset 7, binary ops broadcast only when asked, aligning B's axes from `axis` on."""
    if n.opset >= 7:
        return fn
    n.ignore("broadcast")
    axis = n.attr("axis")
    if axis is None:
        return fn

    def aligned(a, b):
        rank, bv = as_array(a).ndim, as_array(b)
        tail = rank - int(axis) % rank - bv.ndim
        return fn(a, b.reshape(bv.shape + (1,) * tail) if tail > 0 else b)

    return aligned


def _relu(x):
    return F.relu(x)


register("Relu")(lambda n: _relu)
register("Sigmoid")(lambda n: F.sigmoid)
register("Tanh")(lambda n: F.tanh)
register("HardSwish")(lambda n: F.hardswish)


@register("LeakyRelu")
def _leaky(n):
    alpha = float(n.attr("alpha", 0.01))
    return lambda x: F.leaky_relu(x, alpha)


@register("HardSigmoid")
def _hardsigmoid(n):
    alpha, beta = float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5))
    return lambda x: F.hardsigmoid(x, alpha=alpha, beta=beta)


@register("Clip")
def _clip(n):
    if n.opset < 11:
        lo, hi = n.attr("min", None), n.attr("max", None)
    else:
        lo = n.const(1, "min")
        hi = n.const(2, "max")
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
    if lo == 0.0 and hi == 6.0:
        return lambda x, *_: F.relu6(x)

    def clip(x, *_):
        if isinstance(x, Tensor):
            return x.clip(lo, hi)
        return np.clip(x, lo, hi)

    return clip


@register("Elu", "Selu")
def _elu(n):
    alpha = float(n.attr("alpha", 1.0 if n.op == "Elu" else 1.67326319217681884765625))
    gamma = float(n.attr("gamma", 1.05070102214813232421875)) if n.op == "Selu" else 1.0

    def elu(x):
        neg = F.relu(-(x.exp() - 1) * alpha) if isinstance(x, Tensor) else np.maximum(-(np.exp(x) - 1) * alpha, 0)
        return (F.relu(x) - neg) * gamma

    return elu


@register("Softplus")
def _softplus(n):
    # log(1 + e^x) = relu(x) + log(1 + e^-|x|): no overflow for large x
    return lambda x: F.relu(x) + ((-x.abs()).exp() + 1).log() if isinstance(x, Tensor) else np.logaddexp(0, x)


@register("Softsign")
def _softsign(n):
    return lambda x: x / ((x.abs() if isinstance(x, Tensor) else np.abs(x)) + 1)


@register("Softmax", "LogSoftmax")
def _softmax(n):
    fn = F.softmax if n.op == "Softmax" else F.log_softmax
    axis = n.attr("axis", 1 if n.opset < 13 else -1)
    if n.opset >= 13:
        return lambda x: fn(x, axis)

    def coerced(x):  # before opset 13: flatten to 2-D at `axis`, normalise each row
        shape = as_array(x).shape
        ax = axis % len(shape)
        rows = math.prod(shape[:ax])
        y = fn(x.reshape((rows, -1)) if isinstance(x, Tensor) else np.reshape(x, (rows, -1)), 1)
        return y.reshape(shape) if isinstance(y, Tensor) else np.reshape(y, shape)

    return coerced


@register("LRN")
def _lrn(n):
    size = int(n.attr("size"))
    alpha, beta, bias = float(n.attr("alpha", 1e-4)), float(n.attr("beta", 0.75)), float(n.attr("bias", 1.0))
    before = (size - 1) // 2
    return lambda x: lrn_window(x, size, alpha, beta, bias, before, size - 1 - before)


@register("Dropout")
def _dropout(n):
    n.ignore("ratio", "is_test", "seed")
    if n.has(2) and n.const(2, "training_mode") is not None and bool(np.asarray(n.consts[2]).item()):
        raise n.unsupported("training_mode=True")
    if len(n.outputs) > 1 and n.outputs[1]:
        return lambda x, *_: (x, np.ones(as_array(x).shape, bool))
    return lambda x, *_: x


def _mode(n, default_coord):
    mode = n.attr("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(mode, mode)
    if mode not in ("nearest", "linear"):
        raise n.unsupported(f"mode={mode!r} (nearest and linear are supported)")
    coord = n.attr("coordinate_transformation_mode", default_coord)
    coord = coord.decode() if isinstance(coord, bytes) else coord
    nearest = n.attr("nearest_mode", "round_prefer_floor" if n.opset >= 11 else "floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    if n.attr("exclude_outside", 0) or n.attr("antialias", 0):
        raise n.unsupported("exclude_outside/antialias")
    n.ignore("cubic_coeff_a", "extrapolation_value")
    if n.attr("keep_aspect_ratio_policy", "stretch") not in ("stretch", b"stretch"):
        raise n.unsupported("keep_aspect_ratio_policy other than 'stretch'")
    if n.attr("axes") is not None:
        raise n.unsupported("the axes attribute")
    return mode, coord, nearest


@register("Resize", "Upsample")
def _resize(n):
    asym = n.op == "Upsample" or n.opset < 11
    mode, coord, nearest = _mode(n, "asymmetric" if asym else "half_pixel")
    if n.op == "Upsample" and n.opset < 9:
        scales = n.attr("scales")
        sizes = None
    else:
        si = 1 if asym else 2
        scales = n.consts[si] if n.has(si) else None
        sizes = n.consts[3] if not asym and n.has(3) else None
        if (n.has(si) and scales is None) or (not asym and n.has(3) and sizes is None):
            raise n.unsupported("scales/sizes that depend on the model's inputs (they must be known at load)")
        if scales is not None and np.asarray(scales).size == 0:
            scales = None
    if scales is None and sizes is None:
        raise n.unsupported("neither scales nor sizes given")
    size_list: List[Any] = []
    if scales is not None:
        scales = [float(s) for s in np.asarray(scales).ravel()]
        if scales[:2] != [1.0, 1.0]:
            raise n.unsupported(f"scales {scales} resize the batch or channel axis")
    else:
        size_list = list(np.asarray(sizes).ravel())

    def run(x, *_):
        shape = as_array(x).shape
        if scales is not None:
            size = [int(math.floor(d * s)) for d, s in zip(shape[2:], scales[2:])]
            return resize(x, size, scales=scales[2:], mode=mode, coordinate_transformation_mode=coord,
                          nearest_mode=nearest)
        return resize(x, [int(s) for s in size_list[2:]], mode=mode, coordinate_transformation_mode=coord,
                      nearest_mode=nearest)

    return run


@register("ReduceMean", "ReduceSum", "ReduceMax")
def _reduce(n):
    keep = bool(n.attr("keepdims", 1))
    if n.opset >= 18 or (n.op == "ReduceSum" and n.opset >= 13):
        axes = n.ints(1, "axes")
        if not axes and n.attr("noop_with_empty_axes", 0):
            return lambda x, *_: x
    else:
        axes = n.attr("axes")
    method = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max"}[n.op]

    def reduce(x, *_):
        ax = tuple(range(as_array(x).ndim)) if not axes else tuple(int(a) % as_array(x).ndim for a in axes)
        return getattr(x, method)(axis=ax, keepdims=keep)

    return reduce
