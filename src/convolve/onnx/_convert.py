"""Weights between .onnx, .safetensors, .npz and (read only) PyTorch's .pt/.pth: an ONNX file's
initializers are a state_dict keyed by initializer name (PyTorch exports name them
``layer1.0.conv1.weight``), so they interchange with PyTorch-layout state_dicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["convert", "onnx_weights"]

_STATE = (".npz", ".safetensors")
_TORCH = (".pt", ".pth")


def onnx_weights(path) -> dict:
    """Every initializer of the ONNX file at `path`, by name."""
    from onnx import numpy_helper

    from ._loader import read_model

    return {i.name: numpy_helper.to_array(i) for i in read_model(path).graph.initializer}


def _read(path: Path):
    if path.suffix.lower() == ".onnx":
        return onnx_weights(path)
    from ..interop import load_state_dict_file

    return load_state_dict_file(path)


def convert(source, dest, graph=None):
    """Copy the weights in `source` into `dest` (formats by suffix: .onnx, .safetensors, .npz).

    Writing .onnx needs `graph`, an .onnx file whose initializers are replaced by name: every weight must
    be an initializer of the same shape there; initializers the source lacks keep the graph's values.
    Returns what was written (a path, or a line saying how many initializers were replaced).
    """
    src, dst = Path(source), Path(dest)
    if src.suffix.lower() not in _STATE + _TORCH + (".onnx",):
        raise ValueError(f"source must end in .onnx, .safetensors, .npz, .pt or .pth, but got {str(src)!r}")
    if dst.suffix.lower() not in _STATE + (".onnx",):
        raise ValueError(f"dest must end in .onnx, .safetensors or .npz (.pt is read, not written), "
                         f"but got {str(dst)!r}")
    if not src.is_file():
        raise FileNotFoundError(f"no file at {str(src)!r}")
    weights = _read(src)
    if dst.suffix.lower() in _STATE:
        if graph is not None:
            raise ValueError("--graph is only used when DEST is an .onnx file")
        from ..interop import save_state_dict

        save_state_dict({k: np.ascontiguousarray(v) for k, v in weights.items()}, dst)
        return dst
    if graph is None:
        raise ValueError("writing an .onnx file needs --graph MODEL.onnx: the graph the weights go into")
    from onnx import numpy_helper

    from ._export import _write
    from ._loader import read_model

    proto = read_model(graph)
    inits = {i.name: n for n, i in enumerate(proto.graph.initializer)}
    # BatchNorm's step counter is training state, never part of an inference graph
    weights = {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    _split_aliases(proto, weights, inits)
    unknown = sorted(set(weights) - set(inits))
    if unknown:
        raise ValueError(f"{len(unknown)} weight name(s) of {source} are not initializers of {graph}: {unknown[:5]}"
                         f"{' ...' if len(unknown) > 5 else ''} (the graph has {len(inits)}, e.g. {sorted(inits)[:3]})")
    for name, value in weights.items():
        old = proto.graph.initializer[inits[name]]
        want = tuple(old.dims)
        if tuple(np.shape(value)) != want:
            raise ValueError(f"{name!r} has shape {tuple(np.shape(value))} in {source} but {want} in {graph}")
        dtype = numpy_helper.to_array(old).dtype
        old.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    _write(proto, dst)
    kept = len(inits) - len(weights)
    return f"{dst} ({len(weights)} initializers replaced, {kept} kept from {graph})"


def _split_aliases(proto, weights, inits):
    """PyTorch's exporter stores equal tensors once and names the copies with Identity nodes (a fresh
    BatchNorm's running_var is its weight); a weight named like such a copy becomes its own initializer."""
    from onnx import numpy_helper

    for node in list(proto.graph.node):
        if node.op_type == "Identity" and node.output[0] in weights and node.input[0] in inits:
            source = proto.graph.initializer[inits[node.input[0]]]
            copy = numpy_helper.from_array(numpy_helper.to_array(source), node.output[0])
            proto.graph.node.remove(node)
            proto.graph.initializer.append(copy)
            inits[node.output[0]] = len(proto.graph.initializer) - 1
