"""The IDX file format of MNIST, Fashion-MNIST and KMNIST.

Layout (all integers big-endian)::

    byte 0-1   0x00 0x00            magic
    byte 2     dtype code           0x08 uint8, 0x09 int8, 0x0B int16,
                                    0x0C int32, 0x0D float32, 0x0E float64
    byte 3     ndim                 1 for labels, 3 for images
    then       ndim x uint32        the size of each dimension
    then       prod(dims) values    row-major (C order)
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .._io import atomic_write
from ._dataset import ArrayDataset
from ._trainable import check_finite

__all__ = ["read_idx", "write_idx", "load_idx_dir", "find_idx_files", "KMNIST_CLASSES"]

# Kuzushiji-MNIST's ten cursive hiragana, romanised
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

_CODE_TO_DTYPE: Dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_TO_CODE = {dt.newbyteorder("="): code for code, dt in _CODE_TO_DTYPE.items()}
_GZIP_MAGIC = b"\x1f\x8b"

# Split -> (images stem, labels stem). Both "-idx3-ubyte" and ".idx3-ubyte" spellings occur.
_SPLITS = {
    "train": ("train-images", "train-labels"),
    "test": ("t10k-images", "t10k-labels"),
}


_MAX_DEFLATE_RATIO = 1032  # the most gzip (deflate) can compress
_CHUNK = 1 << 22


def _read_exactly(f, n, path, what):
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: {what}: expected {n} bytes, but the file ends after {len(data)}")
    return data


def _parse_header(f, path):
    """``(dtype, dims, header_len)`` from the first bytes of the (decompressed) stream."""
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(
            f"{path}: not an IDX file: expected a 4-byte header, but the file has {len(head)} bytes"
        )
    if head[0] != 0 or head[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file: expected magic bytes 00 00, but found {head[:2].hex(' ')}"
        )
    code, ndim = head[2], head[3]
    if code not in _CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}; expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header_len = 4 + 4 * ndim
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(
            f"{path}: IDX header is truncated: {ndim} dimensions need {header_len} header bytes, "
            f"but the file has {4 + len(raw)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    return _CODE_TO_DTYPE[code], dims, header_len


def _read_stream(f, path, dims, dtype, expected, header_len, compressed):
    """The data, streamed into one buffer of the size the header gives; never reads past it."""
    data = np.empty(expected, np.uint8)
    view, pos = data.data, 0  # a memoryview of the buffer
    while pos < expected:
        got = f.readinto(view[pos : min(expected, pos + _CHUNK)])
        if not got:
            break
        pos += got
    extra = f.read(1)
    if pos != expected or extra:
        what = "truncated" if pos < expected else "longer than its header says"
        found = f"{pos}" if pos < expected else f"more than {expected}"
        raise ValueError(
            f"{path}: IDX file is {what}: header says shape {dims} of {dtype.name} "
            f"= {expected} data bytes, but found {found}" + (" (after gunzip)" if compressed else "")
        )
    return data.view(dtype).reshape(dims)


def read_idx(path: Union[str, Path]) -> np.ndarray:
    """Read one IDX file, gzipped or raw, into a native-endian array.

    The header is checked before any data is read: its size must match the file (raw) or be
    within what gzip can compress into the file's size, and the data is streamed into one buffer
    of exactly that size, so a gzip bomb is refused without being decompressed.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip compression is recognised from the content, not the name.

    Returns
    -------
    numpy.ndarray
        Shape as given by the header, e.g. ``(N, 28, 28)`` for images and
        ``(N,)`` for labels.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the magic number, dtype code or dimension count is not valid IDX,
        the amount of data does not match the header (a truncated file), or
        the gzip stream is corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such IDX file")
    size = path.stat().st_size
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            dtype, dims, header_len = _parse_header(f, path)
            expected = dtype.itemsize
            for d in dims:
                expected *= d  # Python ints: a product of huge dims cannot overflow
            found = size - header_len
            if not compressed and expected != found:
                what = "truncated" if found < expected else "longer than its header says"
                raise ValueError(
                    f"{path}: IDX file is {what}: header says shape {dims} of {dtype.name} "
                    f"= {expected} data bytes, but found {found}"
                )
            limit = size * _MAX_DEFLATE_RATIO + 1024
            if compressed and expected > limit:
                raise ValueError(
                    f"{path}: IDX file is truncated: header says shape {dims} of {dtype.name} "
                    f"= {expected} data bytes, but a {size}-byte gzip file holds at most about {limit}"
                )
            data = _read_stream(f, path, dims, dtype, expected, header_len, compressed)
        except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: gzip stream is truncated or corrupt ({err})") from None
    return data.astype(dtype.newbyteorder("="), copy=not dtype.isnative)  # native byte order, writable


def write_idx(path: Union[str, Path], array: np.ndarray) -> None:
    """Write an array as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    array : array_like
        Of dtype uint8, int8, int16, int32, float32 or float64, with 1 to 255
        dimensions.

    Raises
    ------
    TypeError
        If the dtype has no IDX code.
    ValueError
        If ``array`` has 0 or more than 255 dimensions.
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _DTYPE_TO_CODE:
        names = ", ".join(dt.name for dt in _DTYPE_TO_CODE)
        raise TypeError(f"IDX can store {names}, but got dtype {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, but got an array of shape {array.shape}")
    header = bytes([0, 0, _DTYPE_TO_CODE[native], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, native.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    with atomic_write(path) as f:
        f.write(payload)


def _find_one(directory, stem, ndim):
    """The first existing file among the spellings of ``stem``, or None."""
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            candidate = directory / f"{stem}{sep}idx{ndim}-ubyte{ext}"
            if candidate.is_file():
                return candidate
    return None


def find_idx_files(directory: Union[str, Path]) -> Dict[str, Tuple[Optional[Path], Optional[Path]]]:
    """Locate the IDX image and label files of each split in a directory.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each also
    spelled with ``.idx`` instead of ``-idx`` and each optionally ``.gz``.

    Parameters
    ----------
    directory : str or os.PathLike

    Returns
    -------
    dict
        ``{"train": (images_path, labels_path), "test": (...)}`` for each
        split where at least one of the two files exists; a missing partner
        is ``None``.
    """
    directory = Path(directory)
    found = {}
    for split, (image_stem, label_stem) in _SPLITS.items():
        images = _find_one(directory, image_stem, 3)
        labels = _find_one(directory, label_stem, 1)
        if images or labels:
            found[split] = (images, labels)
    return found


def _load_split(directory, split, images_path, labels_path, classes):
    image_stem, label_stem = _SPLITS[split]
    if images_path is None:
        raise FileNotFoundError(
            f"{directory}: found {labels_path.name} but no {image_stem}-idx3-ubyte[.gz] next to it"
        )
    if labels_path is None:
        raise FileNotFoundError(
            f"{directory}: found {images_path.name} but no {label_stem}-idx1-ubyte[.gz] next to it"
        )
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(
            f"{images_path}: expected images of shape (N, H, W), but the header gives {images.shape}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{labels_path}: expected integer labels of shape (N,), "
            f"but found {labels.dtype.name} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
            f"{len(labels)} labels (in {directory}); the counts must match"
        )
    n_classes = len(classes) if classes is not None else None
    if n_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)]
        raise ValueError(
            f"{labels_path}: labels must lie in 0..{n_classes - 1} (one per class: {', '.join(classes[:10])}"
            f"{', ...' if n_classes > 10 else ''}), but {len(bad)} are outside, e.g. {int(bad[0])}"
        )
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
        check_finite(images, images_path)
    return ArrayDataset(images, labels, classes, name=f"{directory.name}/{split}")


def load_idx_dir(path: Union[str, Path], classes: Optional[Sequence[str]] = None) -> Tuple[ArrayDataset, Optional[ArrayDataset]]:
    """Load an MNIST-style directory of IDX files.

    Parameters
    ----------
    path : str or os.PathLike
        Directory holding the files named in :func:`find_idx_files`.
    classes : sequence of str, optional
        Class names. Default ``"0"`` ... ``"9"`` (right for MNIST; pass the
        names for Fashion-MNIST or KMNIST).

    Returns
    -------
    train : ArrayDataset
        Images ``uint8`` of shape ``(N, 1, H, W)``.
    test : ArrayDataset or None
        ``None`` when the directory has no ``t10k-*`` files.

    Raises
    ------
    FileNotFoundError
        If the directory or its training files are missing, or one split
        has images without labels (or the reverse).
    ValueError
        If a file is not valid IDX (see :func:`read_idx`) or the image and
        label counts differ.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory")
    found = find_idx_files(path)
    if "train" not in found:
        raise FileNotFoundError(
            f"{path}: expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] "
            f"(or the .idx3-ubyte spelling), but found neither"
        )
    train_images, train_labels = found["train"]
    train = _load_split(path, "train", train_images, train_labels, classes)
    test = None
    if "test" in found:
        test_images, test_labels = found["test"]
        test = _load_split(path, "test", test_images, test_labels, classes if classes is not None else train.classes)
    return train, test
