"""Save and load state_dicts as .npz or .safetensors, and read PyTorch's .pt / .pth, all without PyTorch.

A PyTorch ``state_dict`` saved with ``torch.save`` or exported to .npz / .safetensors (same keys) loads
into the same convolve architecture with ``model.load_state_dict(load_state_dict_file(path))``, and
ours export the same way. No file is ever unpickled with :mod:`pickle`'s defaults: .npz entries that
need pickle are refused, and .pt files go through an allow-list unpickler (``_torchfile``).

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
from typing import Any, Dict, Mapping, Optional, Tuple, Union, cast

import numpy as np

from ._io import atomic_write
from ._npz import NpzReader
from ._safetensors import SAFETENSORS_DTYPES, read_safetensors
from ._torchfile import read_torch_file
from .nn.module import to_numpy

__all__ = ["save_state_dict", "load_state_dict_file", "SAFETENSORS_DTYPES"]

_CODE = {np.dtype(v): k for k, v in SAFETENSORS_DTYPES.items()}
_META_KEY = "__metadata__"


def _format(path: Path, reading=False) -> str:
    suffix = path.suffix.lower()
    allowed = (".npz", ".safetensors", ".pt", ".pth") if reading else (".npz", ".safetensors")
    if suffix not in allowed:
        raise ValueError(f"path must end in {', '.join(allowed[:-1])} or {allowed[-1]} (the format is chosen by "
                         f"suffix), but got {str(path)!r}")
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


def save_state_dict(state_dict: Mapping[str, Any], path: Union[str, Path], metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write `state_dict` to `path` (.npz or .safetensors by suffix), atomically.

    Parameters
    ----------
    state_dict : mapping of str -> array
        e.g. ``model.state_dict()``; Tensors, NumPy arrays (and CPU torch tensors) are accepted.
    path : str or Path
    metadata : dict of str -> str, optional
        Stored in the safetensors header's ``__metadata__`` (or as a string entry ``__metadata__`` in
        the .npz); read back with ``load_state_dict_file(path, with_metadata=True)``.

    Returns
    -------
    Path
        The file written.

    Notes
    -----
    The file is written to a temporary file in the same directory and renamed over `path`, so a
    crash never leaves a half-written file behind.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> from convolve.interop import load_state_dict_file, save_state_dict
    >>> model = nn.Conv2d(3, 8, 5)
    >>> path = save_state_dict(model.state_dict(), "conv.safetensors")
    >>> state = load_state_dict_file(path)
    >>> sorted(state), state["weight"].shape
    (['bias', 'weight'], (8, 3, 5, 5))
    >>> nn.Conv2d(3, 8, 5).load_state_dict(state)
    IncompatibleKeys(missing_keys=[], unexpected_keys=[])
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
            np.savez(f, **cast(Dict[str, Any], {**arrays, **extra}))
    return path


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


def _load_torch(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """A torch.save file: nested mappings and lists flattened to dotted names (``model.0.weight``);
    tensors become the state_dict, other leaves (epoch numbers, names) the metadata, as JSON text."""
    arrays, metadata = OrderedDict(), {}
    stack = [("", read_torch_file(path))]
    while stack:
        prefix, obj = stack.pop()
        if isinstance(obj, dict):
            stack.extend((f"{prefix}{k}.", v) for k, v in reversed(list(obj.items())))
        elif isinstance(obj, (list, tuple)):
            stack.extend((f"{prefix}{i}.", v) for i, v in reversed(list(enumerate(obj))))
        elif isinstance(obj, np.ndarray):
            arrays[prefix[:-1]] = obj
        else:
            metadata[prefix[:-1]] = json.dumps(obj, default=repr)
    return arrays, metadata


def load_state_dict_file(path: Union[str, Path], *, with_metadata: bool = False) -> Any:
    """Read a state_dict written by :func:`save_state_dict`, by PyTorch-side tools or by ``torch.save``.

    Parameters
    ----------
    path : str or Path
        The format is chosen by suffix:

        - ``.npz``: entries checked before reading (see ``convolve._npz``), pickle refused;
        - ``.safetensors``: memory-mapped, header checked; ``BF16`` widened to float32;
        - ``.pt`` / ``.pth``: PyTorch's zip format, read through an allow-list unpickler (any other
          global, e.g. ``os.system``, is refused and never run); storages memory-mapped; float16 and
          bfloat16 widened to float32. A nested object (``{"model": state_dict, "epoch": 3}``) is
          flattened to dotted names (``model.0.weight``); its non-tensor leaves go to the metadata
          as JSON text.
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
    fmt = _format(path, reading=True)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    reader = {"safetensors": read_safetensors, "npz": _load_npz, "pt": _load_torch, "pth": _load_torch}[fmt]
    sd, metadata = reader(path)
    return (sd, metadata) if with_metadata else sd
