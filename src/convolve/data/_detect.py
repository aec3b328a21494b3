"""``load_dataset``: recognise what a path holds and load it."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

from pathlib import Path

from ._cifar import TEST_BATCH, TRAIN_BATCHES, load_cifar10
from ._default import FASHION_MNIST_CLASSES, load_default
from ._folder import load_image_folder
from ._idx import KMNIST_CLASSES, find_idx_files, load_idx_dir

__all__ = ["load_dataset", "detect_format"]

FORMATS = ("default", "idx", "cifar10", "image-folder", "image-folder-split")


def detect_format(path: Union[str, Path, None]) -> str:
    """Name the format of ``path``, one of ``FORMATS``.

    Checked in this order: ``None`` or ``"default"`` is the embedded set;
    a directory with ``train-images-idx3-ubyte[.gz]`` and friends is
    ``"idx"``; one with ``data_batch_*`` is ``"cifar10"`` (also when it sits
    one level down in ``cifar-10-batches-py``); one whose ``train`` and
    ``test`` subfolders hold class folders is ``"image-folder-split"``; any
    other directory with subfolders is ``"image-folder"``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a file or a directory in none of these formats.
    """
    if path is None or (isinstance(path, str) and path == "default"):
        return "default"
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise ValueError(
            f"{path}: expected a dataset directory (IDX files, CIFAR-10 batches or "
            "one image folder per class), but this is a file"
        )
    if find_idx_files(path):
        return "idx"
    if _cifar_dir(path) is not None:
        return "cifar10"
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    names = {p.name for p in subdirs}
    if {"train", "test"} <= names and any(p.is_dir() for p in (path / "train").iterdir()):
        return "image-folder-split"
    if subdirs:
        return "image-folder"
    found = sorted(p.name for p in path.iterdir())
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") or "nothing"
    raise ValueError(
        f"{path}: not a known dataset format: expected IDX files (train-images-idx3-ubyte[.gz], "
        f"...), CIFAR-10 batches (data_batch_1, ...) or one subfolder of images per class, "
        f"but found {shown}"
    )


def _cifar_dir(path):
    for candidate in (path, path / "cifar-10-batches-py"):
        if any((candidate / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    return None


def _idx_class_names(path):
    """MNIST, Fashion-MNIST and KMNIST share file names; the folder name tells them apart
    or its parent (``/usr/share/datasets/fashion-mnist``, ``kmnist/raw``); else the labels are
    named "0" ... "9"."""
    name = "/".join(Path(path).resolve().parts[-2:]).lower()
    if "fashion" in name:
        return FASHION_MNIST_CLASSES
    if "kmnist" in name:
        return KMNIST_CLASSES
    return None


def load_dataset(path: Union[str, Path, None] = None, mode: str = "L", size: Optional[Tuple[int, int]] = None, *,
                 max_pixels: Optional[int] = None) -> Tuple[Any, Any]:
    """Load a dataset from wherever ``path`` points, whatever its format.

    Parameters
    ----------
    path : str, os.PathLike or None
        ``None`` or ``"default"`` for the embedded Fashion-MNIST subset, or a
        directory in one of the formats of :func:`detect_format`.
    mode : {"L", "RGB"}
        Image folders only: colour mode to convert to.
    size : int or (int, int), optional
        Image folders only: resize every image to ``(H, W)``.
    max_pixels : int, optional
        Image folders only: refuse images with more pixels (default 89,478,485), before decoding.

    Returns
    -------
    train : ArrayDataset
    test : ArrayDataset or None
        ``None`` where the source has no test split (a plain image folder,
        or IDX / CIFAR directories without test files).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or expected files are missing.
    ValueError
        If ``path`` is in no known format, or its files are corrupt.
    """
    kind = detect_format(path)
    if kind == "default" or path is None:
        return load_default()
    path = Path(path)
    if kind == "idx":
        return load_idx_dir(path, classes=_idx_class_names(path))
    if kind == "cifar10":
        return load_cifar10(_cifar_dir(path))
    if kind == "image-folder-split":
        train = load_image_folder(path / "train", mode=mode, size=size, max_pixels=max_pixels)
        test = load_image_folder(path / "test", mode=mode, size=size, classes=train.classes, max_pixels=max_pixels)
        return train, test
    return load_image_folder(path, mode=mode, size=size, max_pixels=max_pixels), None
