"""Write convolve models as ONNX: one ONNX node (or a few) per layer, walking the module tree.

The example input runs through the model alongside, so every layer's input size is known (for 'same'
padding and the adaptive pools). Layers without an ONNX form raise a ValueError naming the layer.
"""

from __future__ import annotations

import numpy as np

from .. import nn, no_grad
from ..autograd import as_array
from .._geometry import same_padding
from ._loader import require_onnx

__all__ = ["save"]

_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _tuple(v, nd):
    return [int(v)] * nd if isinstance(v, (int, np.integer)) else [int(x) for x in v]


class _Emitter:
    def __init__(self, opset):
        from onnx import helper, numpy_helper

        self.h, self.nh, self.opset = helper, numpy_helper, opset
        self.nodes, self.inits, self.taken = [], [], set()

    def name(self, base):
        """`base`, or `base_2`, `base_3`, ... when taken: state_dict-like names where possible."""
        out, i = base, 1
        while out in self.taken:
            i += 1
            out = f"{base}_{i}"
        self.taken.add(out)
        return out

    def const(self, prefix, array):
        name = self.name(prefix or "const")
        self.inits.append(self.nh.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, where, **attrs):
        out = self.name(f"{where}/{op}" if where else op)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=self.name(where or op), **attrs))
        return out

    # --- one layer ------------------------------------------------------------------------------
    def module(self, m, x, a, path):
        """Emit `m` applied to the value named `x` (whose example is `a`); return (name, example out)."""
        out = as_array(m(a))
        handler = getattr(self, "_" + type(m).__name__.lower(), None)
        if isinstance(m, nn.Sequential):
            for i, (key, child) in enumerate(m._modules.items()):
                x, a = self.module(child, x, a, f"{path}.{key}" if path else key)
            return x, a
        if handler is None:
            for base in type(m).__mro__[1:]:
                handler = getattr(self, "_" + base.__name__.lower().lstrip("_"), None)
                if handler is not None:
                    break
        if handler is None:
            raise ValueError(f"cannot export layer {path or 'model'!r} of type {type(m).__name__} to ONNX "
                             f"(supported: convolve.nn conv, pooling, batch norm, linear, activations, "
                             f"Flatten, Dropout, Identity, Sequential and BasicBlock)")
        return handler(m, x, a, path), out

    def _convnd(self, m, x, a, path):
        nd = m.weight.ndim - 2
        spatial = a.shape[-nd:]
        if isinstance(m.padding, str):
            pairs = same_padding(spatial, m.kernel_size, m.stride, m.dilation) if m.padding == "same" else [(0, 0)] * nd
        elif isinstance(m.padding[0], (tuple, list)):
            pairs = [tuple(p) for p in m.padding]
        else:
            pairs = [(p, p) for p in _tuple(m.padding, nd)]
        if m.padding_mode != "zeros" and any(v for p in pairs for v in p):
            if m.padding_mode == "circular" and self.opset < 19:
                raise ValueError(f"layer {path!r}: circular padding needs opset 19 or later, but opset is {self.opset}")
            pads = np.array([0, 0] + [p[0] for p in pairs] + [0, 0] + [p[1] for p in pairs], np.int64)
            x = self.node("Pad", [x, self.const(f"{path}.pads", pads)], path, mode=_PAD_MODES[m.padding_mode])
            pairs = [(0, 0)] * nd
        inputs = [x, self.const(f"{path}.weight", m.weight.data)]
        if m.bias is not None:
            inputs.append(self.const(f"{path}.bias", m.bias.data))
        return self.node("Conv", inputs, path, kernel_shape=list(m.weight.shape[2:]), strides=_tuple(m.stride, nd),
                         dilations=_tuple(m.dilation, nd), group=int(m.groups),
                         pads=[p[0] for p in pairs] + [p[1] for p in pairs])

    def _convtransposend(self, m, x, a, path):
        nd = m.weight.ndim - 2
        pads = m.padding
        pairs = [tuple(p) for p in pads] if isinstance(pads[0], (tuple, list)) else [(p, p) for p in _tuple(pads, nd)]
        inputs = [x, self.const(f"{path}.weight", m.weight.data)]
        if m.bias is not None:
            inputs.append(self.const(f"{path}.bias", m.bias.data))
        return self.node("ConvTranspose", inputs, path, kernel_shape=list(m.weight.shape[2:]),
                         strides=_tuple(m.stride, nd), dilations=_tuple(m.dilation, nd), group=int(m.groups),
                         output_padding=_tuple(m.output_padding, nd),
                         pads=[p[0] for p in pairs] + [p[1] for p in pairs])

    def _batchnorm(self, m, x, a, path):
        if m.running_mean is None:
            raise ValueError(f"layer {path!r}: BatchNorm without running statistics has no inference form")
        c = m.num_features
        w = m.weight.data if m.weight is not None else np.ones(c, m.running_mean.dtype)
        b = m.bias.data if m.bias is not None else np.zeros(c, m.running_mean.dtype)
        names = [self.const(f"{path}.{k}", v) for k, v in (("weight", w), ("bias", b), ("running_mean", m.running_mean),
                                                            ("running_var", m.running_var))]
        return self.node("BatchNormalization", [x] + names, path, epsilon=float(m.eps))

    def _pool(self, m, x, a, path, op):
        nd = a.ndim - 2
        k, s, p = _tuple(m.kernel_size, nd), _tuple(m.stride, nd), _tuple(m.padding, nd)
        attrs = dict(kernel_shape=k, strides=s, pads=p + p, ceil_mode=int(m.ceil_mode))
        if op == "MaxPool":
            if m.return_indices:
                raise ValueError(f"layer {path!r}: return_indices has no ONNX export here")
            attrs["dilations"] = _tuple(m.dilation, nd)
        else:
            if m.divisor_override is not None:
                raise ValueError(f"layer {path!r}: divisor_override has no ONNX AveragePool form")
            attrs["count_include_pad"] = int(m.count_include_pad)
        return self.node(op, [x], path, **attrs)

    def _maxpoolnd(self, m, x, a, path):
        return self._pool(m, x, a, path, "MaxPool")

    def _avgpoolnd(self, m, x, a, path):
        return self._pool(m, x, a, path, "AveragePool")

    def _adaptive(self, m, x, a, path, is_max):
        nd = a.ndim - 2
        spatial = a.shape[2:]
        size = [s if o is None else o for s, o in zip(spatial, _tuple(m.output_size, nd)
                                                        if not isinstance(m.output_size, (tuple, list))
                                                        else list(m.output_size))]
        if all(o == 1 for o in size):
            return self.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], path)
        if any(s % o for s, o in zip(spatial, size)):
            raise ValueError(f"layer {path!r}: adaptive pooling from {tuple(spatial)} to {tuple(size)} has uneven "
                             f"windows, which no ONNX pooling expresses")
        k = [s // o for s, o in zip(spatial, size)]
        return self.node("MaxPool" if is_max else "AveragePool", [x], path, kernel_shape=k, strides=k)

    def _adaptiveavgpoolnd(self, m, x, a, path):
        return self._adaptive(m, x, a, path, False)

    def _adaptivemaxpool2d(self, m, x, a, path):
        if m.return_indices:
            raise ValueError(f"layer {path!r}: return_indices has no ONNX export here")
        return self._adaptive(m, x, a, path, True)

    def _linear(self, m, x, a, path):
        if a.ndim == 2:
            inputs = [x, self.const(f"{path}.weight", m.weight.data)]
            if m.bias is not None:
                inputs.append(self.const(f"{path}.bias", m.bias.data))
            return self.node("Gemm", inputs, path, transB=1)
        y = self.node("MatMul", [x, self.const(f"{path}.weight_t", np.ascontiguousarray(m.weight.data.T))], path)
        return y if m.bias is None else self.node("Add", [y, self.const(f"{path}.bias", m.bias.data)], path)

    def _flatten(self, m, x, a, path):
        start, end = m.start_dim % a.ndim, m.end_dim % a.ndim
        if end == a.ndim - 1:
            return self.node("Flatten", [x], path, axis=start)
        shape = list(a.shape[:start]) + [-1] + list(a.shape[end + 1:])
        shape[0] = 0  # copy the batch size
        return self.node("Reshape", [x, self.const(f"{path}.shape", np.array(shape, np.int64))], path)

    def _relu(self, m, x, a, path):
        return self.node("Relu", [x], path)

    def _leakyrelu(self, m, x, a, path):
        return self.node("LeakyRelu", [x], path, alpha=float(m.negative_slope))

    def _tanh(self, m, x, a, path):
        return self.node("Tanh", [x], path)

    def _sigmoid(self, m, x, a, path):
        return self.node("Sigmoid", [x], path)

    def _softmax(self, m, x, a, path, op="Softmax"):
        dim = -1 if m.dim is None else int(m.dim)
        if self.opset < 13 and dim % a.ndim != a.ndim - 1:
            raise ValueError(f"layer {path!r}: {op} over a non-last axis needs opset 13 or later")
        return self.node(op, [x], path, axis=dim)

    def _logsoftmax(self, m, x, a, path):
        return self._softmax(m, x, a, path, "LogSoftmax")

    def _identity(self, m, x, a, path):
        return x

    _dropout = _identity  # export is for inference

    def _basicblock(self, m, x, a, path):
        y, b = self.module(m.conv1, x, a, f"{path}.conv1")
        y, b = self.module(m.bn1, y, b, f"{path}.bn1")
        y, b = self.node("Relu", [y], f"{path}.relu1"), np.maximum(b, 0)
        y, b = self.module(m.conv2, y, b, f"{path}.conv2")
        y, b = self.module(m.bn2, y, b, f"{path}.bn2")
        short = x if m.downsample is None else self.module(m.downsample, x, a, f"{path}.downsample")[0]
        return self.node("Relu", [self.node("Add", [y, short], f"{path}.add")], f"{path}.relu")


def save(model, example_input, path, *, opset=17, input_name="input", output_name="output", dynamic_batch=True):
    """Write convolve `model` as an ONNX file, checked by ONNX's checker.

    Parameters
    ----------
    model : convolve.nn.Module
        Built from convolve.nn layers (Sequential, conv, pooling, batch norm, Linear, activations,
        Flatten, Dropout, Identity, BasicBlock -- so every training preset), or a model from
        :func:`convolve.onnx.load` (its graph is written again with the current weights).
    example_input : ndarray or Tensor
        One batch with the shape the model takes, e.g. ``(1, 3, 224, 224)``.
    path : str or Path
        Where to write (``.onnx``).
    opset : int, keyword-only
        Target opset, 11 to 21.
    input_name, output_name : str, keyword-only
    dynamic_batch : bool, keyword-only
        Leave the first axis dynamic (named ``N``).

    Shape
    -----
    The file's input is ``example_input.shape`` (batch axis dynamic), its output the model's.
    """
    onnx = require_onnx()
    from ._graph import OnnxModel

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a convolve.nn.Module, but got {type(model).__name__}")
    if not isinstance(opset, int) or not 11 <= opset <= 21:
        raise ValueError(f"opset must be an int from 11 to 21, but got {opset!r}")
    if isinstance(model, OnnxModel):
        return _resave(model, path)
    a = np.asarray(as_array(example_input))
    if a.dtype.kind != "f":
        raise TypeError(f"example_input must be a float array, but got dtype {a.dtype}")
    em = _Emitter(opset)
    em.taken.update((input_name, output_name))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            y, out = em.module(model, input_name, a, "")
    finally:
        model.train(was_training)
    em.nodes.append(em.h.make_node("Identity", [y], [output_name], name="output"))
    elem = em.h.np_dtype_to_tensor_dtype(a.dtype)
    in_shape = (["N"] if dynamic_batch else [a.shape[0]]) + list(a.shape[1:])
    out_shape = (["N"] if dynamic_batch else [out.shape[0]]) + list(as_array(out).shape[1:])
    graph = em.h.make_graph(em.nodes, "convolve", [em.h.make_tensor_value_info(input_name, elem, in_shape)],
                            [em.h.make_tensor_value_info(output_name, elem, out_shape)], initializer=em.inits)
    proto = em.h.make_model(graph, opset_imports=[em.h.make_opsetid("", opset)], producer_name="convolve")
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes
    onnx.checker.check_model(proto)
    _write(proto, path)
    return path


def _resave(model, path):
    from ._loader import read_model
    from onnx import numpy_helper

    proto = read_model(model.source_path)
    weights = model.onnx_state_dict()
    for i, init in enumerate(proto.graph.initializer):
        if init.name in weights:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(weights[init.name], init.name))
    _write(proto, path)
    return path


def _write(proto, path):
    from .._io import atomic_write

    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
