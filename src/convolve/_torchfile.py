"""Read PyTorch ``.pt`` / ``.pth`` state_dicts without PyTorch, through a restricted unpickler.

``torch.save`` (PyTorch >= 1.6) writes a zip archive::

    <name>/data.pkl          the object, pickled; each tensor's storage is a persistent id
                             ("storage", torch.FloatStorage, "<key>", "cpu", numel)
    <name>/data/<key>        the raw bytes of storage <key>, stored (not compressed), aligned
    <name>/byteorder         "little" or "big" (absent in old files: little)

A pickle is a program: loading one with :mod:`pickle` runs whatever callables it names. Here the
unpickler resolves only an allow-list of names, each to a function of ours; any other global
(``os.system``, ``builtins.eval``, ...) stops the load with a ValueError before anything is called:

- ``collections.OrderedDict``: the state_dict container;
- ``torch._utils._rebuild_tensor_v2`` (and ``_rebuild_tensor``, ``_rebuild_parameter``,
  ``_rebuild_parameter_with_state``, ``torch._tensor._rebuild_from_type_v2`` with the ``Tensor`` or
  ``Parameter`` type): a tensor as a strided view of its storage, bounds-checked;
- ``torch.<Type>Storage`` (Float, Double, Half, BFloat16, Long, Int, Short, Char, Byte, Bool) and
  the ``torch.<dtype>`` objects: markers naming the element type.

Storages are memory-mapped (copy-on-write) when stored uncompressed, as ``torch.save`` writes them;
a contiguous float32 tensor is a view of the map. float16 and bfloat16 are widened to float32. The
legacy non-zip format (``_use_new_zipfile_serialization=False``) is refused with a clear message.
"""

from __future__ import annotations

from typing import Any, Dict, cast

import io
import mmap
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ._npz import MAX_DEFLATE_RATIO, describe_file
from ._safetensors import bfloat16_to_float32

__all__ = ["read_torch_file"]

MAX_PICKLE_BYTES = 256 << 20
_STORAGES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bf16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
_DTYPES = {
    "float32": "f4", "float": "f4", "float64": "f8", "double": "f8", "float16": "f2", "half": "f2",
    "bfloat16": "bf16", "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2",
    "short": "i2", "int8": "i1", "uint8": "u1", "bool": "?",
}


class _ElementType:
    """Stands for a ``torch.FloatStorage`` or ``torch.float32`` in the pickle: just the element type."""

    def __init__(self, code):
        self.code = code


class _TensorType:
    """Stands for ``torch.Tensor`` / ``torch.nn.Parameter`` in ``_rebuild_from_type_v2``."""


class _Storage:
    def __init__(self, raw: np.ndarray, code: str):
        self.raw, self.code = raw, code  # raw: 1-D, the element type's bits (uint16 for bfloat16)


def _widen(a: np.ndarray, code: str) -> np.ndarray:
    """float16 and bfloat16 as float32; other types in native byte order."""
    if code == "bf16":
        return bfloat16_to_float32(a.astype("<u2"))
    if code == "f2":
        return a.astype(np.float32)
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """A tensor: `size` elements read from `storage` at `storage_offset` with `stride`, all checked."""
    if not isinstance(storage, _Storage):
        raise ValueError("a tensor refers to something that is not a storage")
    ints = lambda v: isinstance(v, (tuple, list)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)  # noqa: E731
    if not isinstance(storage_offset, int) or not ints(size) or not ints(stride) or len(size) != len(stride):
        raise ValueError("a tensor has a malformed offset, size or stride")
    if storage_offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ValueError(f"a tensor has a negative offset, size or stride ({storage_offset}, {size}, {stride})")
    raw = storage.raw
    if 0 in size:
        return _widen(np.zeros(tuple(size), raw.dtype), storage.code)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= raw.size:
        raise ValueError(f"a tensor of size {tuple(size)}, stride {tuple(stride)} at offset {storage_offset} "
                         f"reads past the end of its storage of {raw.size} elements")
    item = raw.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(raw[storage_offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride), writeable=False)
    if storage.code in ("bf16", "f2") or not raw.dtype.isnative:
        return _widen(np.ascontiguousarray(view), storage.code)
    if view.flags.c_contiguous:  # a view of the (copy-on-write) map: nothing read until used
        return raw[storage_offset : storage_offset + view.size].reshape(view.shape)
    return np.ascontiguousarray(view)  # a strided view (a slice of a bigger tensor): its own copy


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None):
    if not isinstance(data, np.ndarray):
        raise ValueError("a parameter holds something that is not a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if not isinstance(new_type, _TensorType) or func not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise ValueError("a tensor of a subclass other than Tensor or Parameter")
    return func(*args)


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorType(),
    ("torch.nn.parameter", "Parameter"): _TensorType(),
    **{("torch", name): _ElementType(code) for name, code in _STORAGES.items()},
    **{("torch", name): _ElementType(code) for name, code in _DTYPES.items()},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storage):
        super().__init__(io.BytesIO(data))
        self._storage = storage

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ValueError(f"it names {module}.{name}, which a state_dict does not need; refused "
                             "(a pickle can run any function it names: this one is not loaded)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError(f"unknown persistent id {str(pid)[:60]}")
        _, kind, key, _location, numel = pid[:5]
        if isinstance(kind, _ElementType):
            code = kind.code
        elif kind is None or isinstance(kind, _TensorType):  # untyped storage: bytes
            code = "u1"
        else:
            raise ValueError(f"storage {str(key)[:20]!r} has an unknown element type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise ValueError("a storage has a malformed key or size")
        return self._storage(key, code, numel)


class _Archive:
    """The zip of a ``torch.save`` file, its storages mapped once each."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, f):
        self.path, self.zf, self.f = path, zf, f
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError("not a PyTorch checkpoint: the zip has no data.pkl (or more than one)")
        self.prefix = pkl[0][: -len("data.pkl")]
        self.infos = {i.filename: i for i in zf.infolist()}
        order = self.infos.get(self.prefix + "byteorder")
        self.order = "<"
        if order is not None:
            text = self._bytes(order, 16).decode("ascii", "replace").strip()
            if text not in ("little", "big"):
                raise ValueError(f"byteorder entry says {text!r}; expected little or big")
            self.order = "<" if text == "little" else ">"
        self.size = path.stat().st_size
        self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if self.size else None
        self.cache: Dict[str, Any] = {}

    def _bytes(self, info, limit):
        if info.file_size > limit:
            raise ValueError(f"entry {info.filename!r} holds {info.file_size} bytes, more than {limit}")
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > info.compress_size * MAX_DEFLATE_RATIO + 64:
            raise ValueError(f"entry {info.filename!r} claims more bytes than its compression can give (a zip bomb?)")
        return self.zf.read(info)

    def data_pkl(self) -> bytes:
        return self._bytes(self.infos[self.prefix + "data.pkl"], MAX_PICKLE_BYTES)

    def storage(self, key, code, numel):
        if key in self.cache:
            return self.cache[key]
        info = self.infos.get(f"{self.prefix}data/{key}")
        if info is None:
            raise ValueError(f"storage {key!r} is missing from the archive")
        dtype = np.dtype(self.order + ("u2" if code == "bf16" else code)) if code not in ("u1", "i1", "?") \
            else np.dtype(code)
        nbytes = numel * dtype.itemsize
        if info.file_size != nbytes:
            raise ValueError(f"storage {key!r} should hold {numel} elements ({nbytes} bytes) but holds "
                             f"{info.file_size} bytes (truncated or damaged)")
        start = self._stored_data_start(info)
        if start is not None and start + nbytes <= self.size:
            raw = np.frombuffer(cast(mmap.mmap, self.map), dtype, numel, start) if numel else np.zeros(0, dtype)
        else:  # compressed by some other writer: read it, within the limits the zip declares
            raw = np.frombuffer(self._bytes(info, nbytes), dtype).copy()
        self.cache[key] = _Storage(raw, code)
        return self.cache[key]

    def _stored_data_start(self, info):
        """Where a stored (uncompressed) entry's bytes begin in the file, from its local header."""
        if info.compress_type != zipfile.ZIP_STORED or self.map is None:
            return None
        at = info.header_offset
        if at + 30 > self.size or self.map[at : at + 4] != b"PK\x03\x04":
            raise ValueError(f"entry {info.filename!r} has a broken local header")
        name_len, extra_len = struct.unpack("<HH", self.map[at + 26 : at + 30])
        start = at + 30 + name_len + extra_len
        stored_crc = info.CRC
        if info.file_size <= 1 << 16 and zlib.crc32(self.map[start : start + info.file_size]) != stored_crc:
            raise ValueError(f"entry {info.filename!r} fails its CRC check (damaged)")
        return start


def _is_legacy_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def read_torch_file(path):
    """The object a ``torch.save`` zip file holds, tensors as NumPy arrays (see the module docstring).

    Raises
    ------
    ValueError
        Not a PyTorch zip checkpoint (saying what it is), a refused global, or a damaged archive,
        naming the file.
    """
    path = Path(path)
    if _is_legacy_pickle(path):
        raise ValueError(f"{str(path)!r} is in PyTorch's legacy (pre-1.6, non-zip) format, which is not read "
                         "here; re-save it with torch.save(state_dict, path) in PyTorch >= 1.6")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise ValueError(f"{str(path)!r} is not a PyTorch checkpoint: the file is {describe_file(path)}")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                archive = _Archive(path, zf, f)
                try:
                    return _Unpickler(archive.data_pkl(), archive.storage).load()
                except ValueError:
                    raise
                except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError,
                        struct.error, RecursionError, MemoryError, UnicodeDecodeError, OverflowError) as exc:
                    raise ValueError(f"its data.pkl is damaged ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{str(path)!r}: cannot load as a PyTorch state_dict: {exc}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise ValueError(f"{str(path)!r}: cannot load as a PyTorch state_dict: broken zip ({exc})") from None
