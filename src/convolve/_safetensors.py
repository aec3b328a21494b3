"""Read a .safetensors file as a hostile file, memory-mapped: nothing is read that is not asked for.

Layout: 8-byte little-endian unsigned header length n, then n bytes of JSON
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}``,
then the raw little-endian bytes of every tensor, offsets relative to the end of the header.

Checks, each a ValueError naming the file: the header fits the file; it is a JSON object (nested JSON
is refused by its types); each entry has a known dtype, a shape of non-negative ints and offsets that
lie inside the data section, span exactly ``prod(shape) * itemsize`` bytes and share no byte with
another entry; ``__metadata__`` is an object of strings.

The arrays are copy-on-write views of one memory map of the file: pages are read when touched and a
write changes only the array. ``BF16`` (bfloat16, which NumPy lacks) is widened to float32.
"""

from __future__ import annotations

from typing import cast

import json
import mmap
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

__all__ = ["read_safetensors", "SAFETENSORS_DTYPES", "bfloat16_to_float32", "MAX_HEADER"]

SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_READ_ONLY_DTYPES = {"BF16": "<u2"}  # read (as raw bits, then widened) but never written
MAX_HEADER = 100 * 1024 * 1024
META_KEY = "__metadata__"


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as float32: bfloat16 is the upper half of a float32, exactly."""
    return (bits.astype("<u4") << 16).view("<f4").astype(np.float32)


def _header(path: Path, f, size: int):
    if size < 8:
        raise ValueError(f"{str(path)!r} is not a safetensors file: it is only {size} bytes long")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > min(MAX_HEADER, size - 8):
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: header length {n} exceeds the file size")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: bad JSON header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: the header is not a JSON object")
    return n, header


def _entry(path: Path, k, info):
    """(dtype code, shape, begin, end) of one header entry, every field checked."""
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise ValueError(f"{str(path)!r}: entry {k!r} needs dtype, shape and data_offsets, but got {str(info)[:120]}")
    code = info["dtype"]
    if not isinstance(code, str) or (code not in SAFETENSORS_DTYPES and code not in _READ_ONLY_DTYPES):
        raise ValueError(
            f"{str(path)!r}: entry {k!r} has dtype {str(code)[:20]!r}, which is unsupported here "
            f"(supported: {', '.join([*SAFETENSORS_DTYPES, *_READ_ONLY_DTYPES])})"
        )
    shape, offsets = info["shape"], info["data_offsets"]
    ints = lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)  # noqa: E731
    if not ints(shape) or not ints(offsets) or len(offsets) != 2:
        raise ValueError(f"{str(path)!r}: entry {k!r} has a malformed shape or data_offsets "
                         "(expected lists of ints)")
    if any(v < 0 for v in shape):
        raise ValueError(f"{str(path)!r}: entry {k!r} has a negative dimension in shape {shape}")
    return code, tuple(shape), offsets[0], offsets[1]


def read_safetensors(path):
    """``(OrderedDict name -> ndarray, metadata dict)`` of a .safetensors file, memory-mapped.

    Raises
    ------
    ValueError
        A truncated or malformed file, naming it and the entry.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = path.stat().st_size
        n, header = _header(path, f, size)
        metadata = header.pop(META_KEY, {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError(f"{str(path)!r}: {META_KEY} must be a JSON object of strings, "
                             f"but got {str(metadata)[:80]}")
        body_len = size - 8 - n
        entries = []
        for k, info in header.items():  # JSON keeps the file's key order
            code, shape, begin, end = _entry(path, k, info)
            dtype = np.dtype(SAFETENSORS_DTYPES.get(code) or _READ_ONLY_DTYPES[code])
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize  # Python ints: no overflow
            if not 0 <= begin <= end <= body_len or end - begin != expected:
                raise ValueError(
                    f"{str(path)!r}: entry {k!r} (dtype {code}, shape {shape}) needs {expected} bytes but its "
                    f"data_offsets [{begin}, {end}] do not fit the {body_len}-byte data section (truncated file?)"
                )
            entries.append((k, code, dtype, shape, begin, end))
        spans = sorted((b, e, k) for k, _, _, _, b, e in entries if e > b)
        for (_, end1, k1), (begin2, _, k2) in zip(spans, spans[1:]):
            if begin2 < end1:
                raise ValueError(f"{str(path)!r}: entries {k1!r} and {k2!r} overlap in the data section")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
    out = OrderedDict()
    for k, code, dtype, shape, begin, end in entries:
        count = (end - begin) // dtype.itemsize
        a = np.frombuffer(cast(mmap.mmap, mapped), dtype, count, 8 + n + begin) if count else np.zeros(0, dtype)
        a = a.reshape(shape)
        if code in _READ_ONLY_DTYPES:
            a = bfloat16_to_float32(a)
        elif dtype.byteorder == ">" or (dtype.byteorder == "<" and not np.little_endian):
            a = a.astype(dtype.newbyteorder("="))
        out[k] = a
    return out, metadata
