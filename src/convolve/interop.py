"""Save and load state_dicts as .npz or .safetensors, with no PyTorch and no pickle.

A PyTorch ``state_dict`` exported to either format (same keys) loads into the same convolve
architecture with ``model.load_state_dict(load_state_dict_file(path))``, and ours export the same way.

safetensors layout (written and read here with NumPy only): 8-byte little-endian unsigned header
length n, then n bytes of JSON ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
"__metadata__": {str: str}}`` padded with spaces to a multiple of 8, then the raw little-endian
bytes of every tensor, offsets relative to the end of the header.
"""

from __future__ import annotations

import json
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ._io import atomic_write
from ._npz import NpzReader
from .nn.module import to_numpy

__all__ = ["save_state_dict", "load_state_dict_file", "SAFETENSORS_DTYPES"]

SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_CODE = {np.dtype(v): k for k, v in SAFETENSORS_DTYPES.items()}
_META_KEY = "__metadata__"
_MAX_HEADER = 100 * 1024 * 1024


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".safetensors"):
        raise ValueError(f"path must end in .npz or .safetensors (the format is chosen by suffix), but got {str(path)!r}")
    return suffix[1:]


def _arrays(state_dict) -> "OrderedDict[str, np.ndarray]":
    if not hasattr(state_dict, "items"):
        raise TypeError(f"state_dict must be a mapping of names to arrays, but got {type(state_dict).__name__}")
    out = OrderedDict()
    for k, v in state_dict.items():
        if not isinstance(k, str) or not k:
            raise TypeError(f"state_dict keys must be non-empty strings, but got {k!r}")
        if k == _META_KEY:
            raise ValueError(f"{_META_KEY!r} is reserved for metadata and cannot be a state_dict key")
        a = to_numpy(v)
        if a.dtype not in _CODE and a.dtype.newbyteorder("<") not in _CODE:
            raise TypeError(f"state_dict[{k!r}] has dtype {a.dtype}; supported: {sorted(str(d) for d in _CODE)}")
        out[k] = a
    return out


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must be a dict of str -> str (e.g. json.dumps(config) as a value)")
    return dict(metadata)


def _safetensors_bytes(arrays, metadata):
    header, offset, blobs = {}, 0, []
    if metadata:
        header[_META_KEY] = metadata
    for k, a in arrays.items():
        le = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        blob = a.astype(le, order="C", copy=False).tobytes(order="C")
        header[k] = {"dtype": _CODE[np.dtype(le)],
                     "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # align the data to 8 bytes
    return [struct.pack("<Q", len(text)), text] + blobs


def save_state_dict(state_dict, path, metadata=None) -> Path:
    """Write `state_dict` to `path` (.npz or .safetensors by suffix), atomically.

    Parameters
    ----------
    state_dict : mapping of str -> array
        e.g. ``model.state_dict()``; Tensors, NumPy arrays (and CPU torch tensors) are accepted.
    path : str or Path
    metadata : dict of str -> str, optional
        Stored in the safetensors header's ``__metadata__`` (or as a string entry ``__metadata__`` in
        the .npz); read back with ``load_state_dict_file(path, with_metadata=True)``.

    Notes
    -----
    The file is written to a temporary file in the same directory and renamed over `path`, so a
    crash never leaves a half-written file behind.
    """
    path = Path(path)
    fmt = _format(path)
    arrays = _arrays(state_dict)
    metadata = _check_metadata(metadata)
    with atomic_write(path) as f:
        if fmt == "safetensors":
            for chunk in _safetensors_bytes(arrays, metadata):
                f.write(chunk)
        else:
            extra = {_META_KEY: np.array(json.dumps(metadata))} if metadata else {}
            np.savez(f, **arrays, **extra)
    return path


def _load_safetensors(path: Path):
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{str(path)!r} is not a safetensors file: it is only {len(data)} bytes long")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: header length {n} exceeds the file size")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: bad JSON header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: the header is not a JSON object")
    metadata = header.pop(_META_KEY, None) or {}
    body = memoryview(data)[8 + n :]
    out = OrderedDict()
    for k, info in header.items():  # JSON keeps the file's key order
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise ValueError(f"{str(path)!r}: entry {k!r} needs dtype, shape and data_offsets, but got {info!r}")
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(
                f"{str(path)!r}: entry {k!r} has dtype {info['dtype']!r}, which is unsupported here "
                f"(supported: {', '.join(SAFETENSORS_DTYPES)})"
            )
        dtype = np.dtype(SAFETENSORS_DTYPES[info["dtype"]])
        try:
            shape = tuple(int(v) for v in info["shape"])
            begin, end = (int(v) for v in info["data_offsets"])
        except (TypeError, ValueError):
            raise ValueError(f"{str(path)!r}: entry {k!r} has a malformed shape or data_offsets") from None
        if any(v < 0 for v in shape):
            raise ValueError(f"{str(path)!r}: entry {k!r} has a negative dimension in shape {shape}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not 0 <= begin <= end <= len(body) or end - begin != expected:
            raise ValueError(
                f"{str(path)!r}: entry {k!r} (dtype {info['dtype']}, shape {shape}) needs {expected} bytes but its "
                f"data_offsets [{begin}, {end}] do not fit the {len(body)}-byte data section (truncated file?)"
            )
        out[k] = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return out, metadata


def _load_npz(path: Path):
    with NpzReader(path) as z:  # checks sizes before reading; refuses pickle; says what a non-zip file is
        out = OrderedDict((k, z.read(k)) for k in z.keys)
    meta = out.pop(_META_KEY, None)
    try:
        metadata = json.loads(str(meta)) if meta is not None else {}
    except (json.JSONDecodeError, RecursionError):
        raise ValueError(f"{str(path)!r}: the __metadata__ entry is not valid JSON") from None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{str(path)!r}: the __metadata__ entry must be a JSON object of strings")
    return out, metadata


def load_state_dict_file(path, *, with_metadata: bool = False):
    """Read a state_dict written by :func:`save_state_dict` (or by PyTorch-side tools: same formats).

    Parameters
    ----------
    path : str or Path
        A .npz (read with ``allow_pickle=False``) or .safetensors file.
    with_metadata : bool
        Also return the metadata dict (empty when there is none).

    Returns
    -------
    OrderedDict of str -> ndarray, or (that, metadata)

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A truncated or corrupt file, named in the message.
    """
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    sd, metadata = _load_safetensors(path) if fmt == "safetensors" else _load_npz(path)
    return (sd, metadata) if with_metadata else sd
