"""CIFAR-10 in its "python version" layout (``cifar-10-batches-py``).

The batches are pickled dicts; pickle *is* the published format, so it is
read here. Pickle can run code on load, so the unpickler below only lets
through what a CIFAR batch holds (NumPy arrays, lists, bytes and strings)
and refuses any other class.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import pickle
from pathlib import Path

import numpy as np

from ._dataset import ArrayDataset

__all__ = ["load_cifar10", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"

# What a NumPy array needs to unpickle, under both the NumPy 1 and NumPy 2 module names,
# plus _codecs.encode, which protocol-2 pickles written by Python 3 use for bytes.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists and strings"
            )
        if module.startswith("numpy.core"):  # NumPy 2 renamed numpy.core to numpy._core
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def _unpickle(path):
    """The batch's dict with ``str`` keys."""
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a readable CIFAR batch ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, but found {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path):
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one batch file."""
    batch = _unpickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise ValueError(f"{path}: expected keys 'data' and 'labels', but found {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: expected 'data' of uint8 with shape (N, 3072), "
            f"but found {data.dtype} with shape {data.shape}"
        )
    if labels.shape != (len(data),):
        raise ValueError(
            f"{path}: {len(data)} images but {labels.size} labels; the counts must match"
        )
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major.
    return data.reshape(-1, 3, 32, 32), labels


def _read_classes(path):
    meta = _unpickle(path)
    if "label_names" not in meta:
        raise ValueError(f"{path}: expected the key 'label_names', but found {sorted(meta)}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]


def load_cifar10(path: Union[str, Path]) -> Tuple[ArrayDataset, Optional[ArrayDataset]]:
    """Load the CIFAR-10 python batches from a directory.

    The directory holds ``data_batch_1`` ... ``data_batch_5``, ``test_batch``
    and, optionally, ``batches.meta`` (class names; the standard CIFAR-10
    names are used without it). Training batches that are absent are
    skipped, so a directory with only ``data_batch_1`` loads as well.

    CIFAR distributes these files as Python pickles, so they are read with
    :mod:`pickle` through an unpickler that accepts only NumPy arrays and
    plain containers; anything else in the file is refused.

    Parameters
    ----------
    path : str or os.PathLike
        The ``cifar-10-batches-py`` directory.

    Returns
    -------
    train : ArrayDataset
        Images ``uint8`` of shape ``(N, 3, 32, 32)``.
    test : ArrayDataset or None
        ``None`` when there is no ``test_batch``.

    Raises
    ------
    FileNotFoundError
        If the directory has no ``data_batch_*`` file.
    ValueError
        If a batch is not a pickled dict with uint8 ``data`` of shape
        ``(N, 3072)`` and ``N`` labels, or it holds objects other than arrays.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory")
    train_files = [path / name for name in TRAIN_BATCHES if (path / name).is_file()]
    if not train_files:
        raise FileNotFoundError(
            f"{path}: expected CIFAR-10 batches data_batch_1 ... data_batch_5, but found none"
        )
    classes = _read_classes(path / META) if (path / META).is_file() else CIFAR10_CLASSES
    parts = [_read_batch(f) for f in train_files]
    train = ArrayDataset(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        classes,
        name=f"{path.name}/train",
    )
    test = None
    if (path / TEST_BATCH).is_file():
        images, labels = _read_batch(path / TEST_BATCH)
        test = ArrayDataset(images, labels, classes, name=f"{path.name}/test")
    return train, test
