"""Read .npz archives as a hostile file: no pickle, sizes checked before anything is allocated.

``np.load`` trusts the archive: a zip bomb or a header claiming terabytes is decompressed or
allocated before anything can refuse it. Here every entry is checked first against the zip's own
records (declared size, compressed size, position) and the .npy header (dtype, shape), and its data
is then streamed into one buffer of exactly the size the header gives, never more.

Checks, each a ValueError naming the file and the entry:

- entries are stored or deflated (what ``np.savez`` / ``np.savez_compressed`` write), with no
  duplicate names and no two entries sharing bytes (the overlapping-entry zip bomb);
- a deflated entry claims at most ``MAX_DEFLATE_RATIO`` times its compressed size (deflate cannot
  do better), a stored one exactly its size;
- the .npy header's shape and dtype account for exactly the entry's declared size; object dtypes
  (which need pickle) are refused;
- the data ends where the header says (a truncated or over-long stream, a bad CRC).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["NpzReader", "describe_file", "MAX_DEFLATE_RATIO"]

MAX_DEFLATE_RATIO = 1032  # the most deflate can compress: 258 bytes per 2-bit code, ~1032:1
_MAX_NPY_HEADER = 1 << 16
_CHUNK = 1 << 22


def describe_file(path) -> str:
    """What a file looks like from its first bytes, for error messages ("a gzip file", "a PNG image", ...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not head:
        return "empty (0 bytes)"
    known = (
        (b"PK\x03\x04", "a zip archive"), (b"PK\x05\x06", "an empty zip archive"),
        (b"\x1f\x8b", "a gzip file"), (b"\x93NUMPY", "a single NumPy .npy array, not an .npz archive"),
        (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
        (b"\x89HDF", "an HDF5 file (e.g. a Keras .h5 model)"), (b"BZh", "a bzip2 file"),
        (b"\xfd7zXZ", "an xz file"),
    )
    for magic, what in known:
        if head.startswith(magic):
            return what
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return "a Python pickle (e.g. a PyTorch file in the legacy format); pickles are never loaded here"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file"
    if head[:2] == b"\x00\x00" and len(head) >= 4 and head[2] in (8, 9, 11, 12, 13, 14):
        return "an IDX file (MNIST format)"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"text (starts {head.decode('ascii')!r})"
    return f"of unknown type (starts with bytes {head[:8].hex(' ')})"


class NpzReader:
    """An .npz archive opened for checked reading; use as a context manager.

    Parameters
    ----------
    path : str or Path
    max_bytes : int, optional
        Refuse archives whose entries together hold more than this many bytes.

    Attributes
    ----------
    keys : list of str
        Entry names without ``.npy``, in archive order.

    Raises
    ------
    ValueError
        Not a zip archive (saying what the file is instead), or an archive that fails the checks in
        the module docstring, naming the file and the entry.
    """

    def __init__(self, path, max_bytes=None):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            magic = f.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ValueError(f"{self.path}: not a readable .npz file: it is {describe_file(self.path)}")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
            raise ValueError(f"{self.path}: not a readable .npz archive (broken zip: {exc})") from None
        try:
            self._infos = self._check_entries(max_bytes)
        except BaseException:
            self._zip.close()
            raise
        self.keys = list(self._infos)
        self._headers = {}

    def _fail(self, message):
        return ValueError(f"{self.path}: {message}")

    def _check_entries(self, max_bytes):
        infos, total = {}, 0
        size = self.path.stat().st_size
        ordered = sorted(self._zip.infolist(), key=lambda i: i.header_offset)
        end_of_data = getattr(self._zip, "start_dir", size)
        for n, info in enumerate(ordered):
            name = info.filename
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._fail(f"entry {name!r} uses zip compression method {info.compress_type}; "
                                 "an .npz holds stored or deflated entries only")
            limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO) + 64
            if info.file_size > limit:
                raise self._fail(f"entry {name!r} claims {info.file_size} bytes from {info.compress_size} compressed "
                                 "bytes, more than the compression can give (a zip bomb?)")
            following = ordered[n + 1].header_offset if n + 1 < len(ordered) else end_of_data
            if info.header_offset + 30 + info.compress_size > following:
                raise self._fail(f"entry {name!r} overlaps the next entry (a zip bomb or a damaged archive)")
            if not name.endswith(".npy"):
                continue  # np.savez writes only .npy entries; others are ignored, as np.load does
            key = name[: -len(".npy")]
            if key in infos:
                raise self._fail(f"entry {name!r} appears twice")
            infos[key] = info
            total += info.file_size
        if max_bytes is not None and total > max_bytes:
            raise self._fail(f"the arrays hold {total} bytes, more than the limit of {max_bytes}")
        return infos

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._zip.close()

    def header(self, key):
        """``(shape, dtype, fortran_order, header_bytes)`` of an entry, reading only its .npy header."""
        if key not in self._headers:
            if key not in self._infos:
                raise self._fail(f"no entry {key!r}")
            with self._open(key) as f:
                self._headers[key] = self._read_header(key, f)
        return self._headers[key]

    def nbytes(self, key) -> int:
        """Bytes of data the entry's header declares."""
        shape, dtype, _, _ = self.header(key)
        return _product(shape) * dtype.itemsize

    def _open(self, key):
        try:
            return self._zip.open(self._infos[key])
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            raise self._fail(f"entry {key!r} cannot be opened ({exc})") from None

    def _read_header(self, key, f):
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
            else:
                raise ValueError(f"unknown .npy format version {version}")
        except (ValueError, SyntaxError, TypeError, EOFError, OSError, zipfile.BadZipFile, zlib.error,
                RecursionError, MemoryError) as exc:
            raise self._fail(f"entry {key!r} has no valid .npy header ({exc})") from None
        if dtype.hasobject:
            raise self._fail(f"entry {key!r} holds Python objects ({dtype}), which needs pickle to load; refused")
        info = self._infos[key]
        header_bytes = f.tell()
        expected = header_bytes + _product(shape) * dtype.itemsize
        if expected != info.file_size:
            raise self._fail(f"entry {key!r}: its header says shape {shape} of {dtype} ({expected - header_bytes} "
                             f"bytes) but the entry holds {info.file_size - header_bytes} (truncated or damaged)")
        return tuple(shape), dtype, fortran, header_bytes

    def read(self, key) -> np.ndarray:
        """The entry's array, streamed into a buffer of exactly the declared size."""
        shape, dtype, fortran, header_bytes = self.header(key)
        n = _product(shape) * dtype.itemsize
        if dtype.itemsize == 0:
            return np.zeros(shape, dtype)
        try:
            buf = np.empty(n, np.uint8)
        except MemoryError:
            raise self._fail(f"entry {key!r} needs {n} bytes of memory, which are not available") from None
        view = buf.data  # a memoryview of the array
        try:
            with self._open(key) as f:
                f.read(header_bytes)
                pos = 0
                while pos < n:
                    got = f.readinto(view[pos : min(n, pos + _CHUNK)])
                    if not got:
                        raise self._fail(f"entry {key!r} is truncated: {pos} of {n} data bytes")
                    pos += got
                if f.read(1):
                    raise self._fail(f"entry {key!r} holds more data than its header says")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:  # bad CRC, broken deflate stream
            raise self._fail(f"entry {key!r} is damaged ({exc})") from None
        return buf.view(dtype).reshape(shape, order="F" if fortran else "C")


def _product(shape) -> int:
    """The product of a shape in Python ints: no overflow."""
    out = 1
    for s in shape:
        out *= int(s)
    return out
