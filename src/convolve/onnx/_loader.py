"""Read an ONNX file and build its `OnnxModel`: constants and shape arithmetic folded, one step per
remaining node, every attribute checked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..nn.module import Module
from ._fold import Sym, has_sym
from ._fuse import inference_steps
from ._graph import InputSpec, OnnxModel, Step
from ._node import NodeInfo, OnnxUnsupportedError
from ._ops import Folded, table

__all__ = ["load", "MIN_OPSET", "MAX_OPSET"]

MIN_OPSET, MAX_OPSET = 6, 21
_PARAM_SLOTS = {"Conv": {"weight": 1, "bias": 2}, "ConvTranspose": {"weight": 1, "bias": 2},
                "BatchNormalization": {"weight": 1, "bias": 2, "running_mean": 3, "running_var": 4},
                "Gemm": {"weight": 1, "bias": 2}, "MatMul": {"weight": 1}, "PRelu": {"weight": 1}}


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('reading and writing ONNX files needs the onnx package: pip install "convolve[onnx]"') from None
    return onnx


def read_model(path):
    """The ModelProto in `path`, with clear errors for missing, truncated or non-ONNX files."""
    onnx = require_onnx()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no ONNX file at {str(path)!r}")
    data = p.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{str(path)!r} is not a readable ONNX file (truncated or not ONNX, "
                         f"{len(data)} bytes): {exc}") from None
    if not model.graph.node and not model.graph.output:
        raise ValueError(f"{str(path)!r} holds no ONNX graph (empty, truncated or not an ONNX model)")
    return model


def _opset(model, path):
    versions = {o.domain: o.version for o in model.opset_import}
    v = versions.get("", versions.get("ai.onnx"))
    if v is None:
        raise OnnxUnsupportedError(f"{path}: the model imports no default-domain opset")
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise OnnxUnsupportedError(f"{path}: opset {v} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
    return v


def _attrs(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _dims(vtype):
    t = vtype.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _infer(model):
    """Name every dynamic input axis, then run ONNX shape inference (shapes of intermediates)."""
    from onnx import TensorProto, shape_inference

    m = type(model)()  # a copy without the weights' bytes (a ResNet's 45 MB need not be copied)
    m.ir_version = model.ir_version
    m.opset_import.extend(model.opset_import)
    g = model.graph
    m.graph.name = g.name
    for part in ("node", "input", "output", "value_info"):
        getattr(m.graph, part).extend(getattr(g, part))
    for init in g.initializer:  # weights by shape only: inference needs no values but small shape constants
        if np.prod(init.dims) <= 64:
            m.graph.initializer.append(init)
        else:
            m.graph.initializer.append(TensorProto(name=init.name, dims=init.dims, data_type=init.data_type))
    inits = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        for axis, d in enumerate(inp.type.tensor_type.shape.dim):
            if not d.HasField("dim_value") and not d.dim_param:
                d.dim_param = f"{inp.name}:{axis}"
    try:
        m = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # inference is a help, not a requirement
        pass
    return m


def _safe(name, taken):
    base = re.sub(r"\W", "_", name).strip("_") or "node"
    if base[0].isdigit():
        base = "n" + base
    out, i = base, 1
    while out in taken:
        i += 1
        out = f"{base}_{i}"
    taken.add(out)
    return out


def load(path) -> OnnxModel:
    """See :func:`convolve.onnx.load`."""
    model = read_model(path)
    from onnx import helper, numpy_helper

    opset = _opset(model, path)
    inferred = _infer(model)
    g = inferred.graph
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    initializers = set(consts)
    input_dims = {}
    specs = []
    for inp in g.input:
        if inp.name in consts:
            continue
        shape = _dims(inp.type)
        if shape is None:
            raise OnnxUnsupportedError(f"{path}: input {inp.name!r} has no declared shape")
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type))
        specs.append(InputSpec(inp.name, tuple(d if isinstance(d, str) or (d or 0) > 0 else None for d in shape), dtype))
        for d in shape:
            if isinstance(d, str):
                input_dims[d] = Sym.dim(d)
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = _dims(vi.type)
        if dims is not None:
            shapes[vi.name] = [d if isinstance(d, int) and d > 0 else input_dims.get(d) for d in dims]

    ops, steps, modules, sources = table(), [], {}, {}
    taken: set = set()
    producers: dict = {}
    runtime_consts: set = set()
    queue, index = list(reversed(model.graph.node)), -1
    while queue:
        node, index = queue.pop(), index + 1
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type == "If":
            queue.extend(reversed(_inline_if(node, name, opset, consts)))
            continue
        if node.domain not in ("", "ai.onnx"):
            raise OnnxUnsupportedError(f"{node.op_type} (node {name!r}, domain {node.domain!r}): only the default "
                                       f"ONNX domain is supported")
        info = NodeInfo(node.op_type, name, opset, list(node.input), list(node.output), _attrs(node),
                        [consts.get(i) if i else None for i in node.input],
                        [shapes.get(i) if i else None for i in node.input], [producers.get(i) for i in node.input])
        builder = ops.get(node.op_type)
        if builder is None:
            raise OnnxUnsupportedError(f"{info.where()}: op {node.op_type!r} is not supported by convolve.onnx")
        built = builder(info)
        if info.unused():
            raise info.unsupported(f"attribute(s) {info.unused()} are not supported")
        for out in node.output:
            producers[out] = node.op_type
        if isinstance(built, Folded):
            consts.update(zip(node.output, built.values))
            continue
        fn, module = built if isinstance(built, tuple) else (built, None)
        live = [i for i in node.input if i]
        if module is None and all(i in consts for i in live):
            try:
                value = fn(*[consts[i] if i else None for i in node.input])
            except (TypeError, ValueError):
                value = None  # needs call-time dimensions: stays a step
            if value is not None:
                consts.update(zip(node.output, value if len(node.output) > 1 else (value,)))
                continue
        if module is not None:
            weight = node.input[1] if len(node.input) > 1 else ""
            # "layer1.0.conv1.weight" -> module "layer1_0_conv1": state_dict keys that read like the source's
            key = _safe(weight[: -len(".weight")] if weight.endswith(".weight") else name, taken)
            modules[key] = module
            for param, slot in _PARAM_SLOTS.get(node.op_type, {}).items():
                init = node.input[slot] if slot < len(node.input) else ""
                if init in initializers and getattr(module, param, None) is not None:
                    raw = consts[init]
                    sources[f"{key}.{param}"] = (init, raw.shape, node.op_type == "Gemm" and param == "weight"
                                                 and not info.attrs.get("transB", 0))
        args = [node.input[0]] if fn is module else list(node.input)
        runtime_consts.update(a for a in args if a in consts)
        symbolic = any(has_sym(consts.get(a)) for a in args if a)
        steps.append(Step(fn, args, list(node.output), node.op_type, name, symbolic, learned=module is not None))

    outputs = [o.name for o in model.graph.output]
    fast = inference_steps(steps, outputs, opset, Step)
    _plan_frees(steps, outputs)
    _plan_frees(fast, outputs)
    keep = {k: consts[k] for k in runtime_consts | (set(outputs) & set(consts))}
    result = OnnxModel(steps, specs, outputs, keep, opset, sources, fast)
    result.source_path = str(path)
    for key, m in modules.items():
        Module.add_module(result, key, m)
    return result


def _inline_if(node, name, opset, consts):
    """An If whose condition is known at load (exporters emit them for rank checks) becomes its branch."""
    from onnx import helper, numpy_helper

    cond = consts.get(node.input[0])
    if cond is None or has_sym(cond):
        raise OnnxUnsupportedError(f"If (node {name!r}, opset {opset}): the condition depends on the model's "
                                   f"inputs; only an If decided at load is supported")
    branch = helper.get_attribute_value(next(a for a in node.attribute
                                              if a.name == ("then_branch" if bool(np.asarray(cond).item()) else "else_branch")))
    consts.update({i.name: numpy_helper.to_array(i) for i in branch.initializer})
    tail = [helper.make_node("Identity", [o.name], [out], name=f"{name}/{out}") for o, out in zip(branch.output, node.output)]
    return list(branch.node) + tail


def _plan_frees(steps, outputs):
    """Drop every intermediate after its last use, so memory holds only live activations."""
    last = {}
    for i, s in enumerate(steps):
        for name in s.inputs:
            if name:
                last[name] = i
    for i, s in enumerate(steps):
        s.free = tuple(n for n in dict.fromkeys(s.inputs) if n and last.get(n) == i and n not in outputs)
