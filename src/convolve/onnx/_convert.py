"""Weights between .onnx, .safetensors and .npz: an ONNX file's initializers are a state_dict keyed by
initializer name (PyTorch exports name them ``layer1.0.conv1.weight``), so they interchange with
PyTorch-layout state_dicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["convert", "onnx_weights"]

_STATE = (".npz", ".safetensors")


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

    Writing .onnx needs `graph`, an .onnx file whose initializers are replaced by name; every name must
    exist there with the same shape, and none may be left out.
    """
    src, dst = Path(source), Path(dest)
    for p, what in ((src, "source"), (dst, "dest")):
        if p.suffix.lower() not in _STATE + (".onnx",):
            raise ValueError(f"{what} must end in .onnx, .safetensors or .npz, but got {str(p)!r}")
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
    unknown = sorted(set(weights) - set(inits))
    missing = sorted(set(inits) - set(weights))
    if unknown or missing:
        raise ValueError(f"the weights do not match {graph}: {len(unknown)} unknown name(s) {unknown[:5]}, "
                         f"{len(missing)} missing {missing[:5]}")
    for name, value in weights.items():
        old = proto.graph.initializer[inits[name]]
        want = tuple(old.dims)
        if tuple(np.shape(value)) != want:
            raise ValueError(f"{name!r} has shape {tuple(np.shape(value))} in {source} but {want} in {graph}")
        dtype = numpy_helper.to_array(old).dtype
        old.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    _write(proto, dst)
    return dst
