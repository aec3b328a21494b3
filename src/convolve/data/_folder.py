"""Image folders: one subfolder per class, read with Pillow.

::

    root/
        cat/  001.png  002.jpg ...
        dog/  001.png ...
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .._imread import decode_uint8, open_image
from ._dataset import ArrayDataset

__all__ = ["load_image_folder", "IMAGE_EXTENSIONS", "read_image"]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
_MODES = ("L", "RGB")


def _pair(size):
    """``size`` as ``(H, W)``; an int means a square."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"size must be an int or a pair (H, W) of ints, but got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, but got (H, W) = ({h}, {w})")
    return h, w


def _image_files(folder):
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_image(path: Union[str, Path], mode: str = "L", size: Optional[Tuple[int, int]] = None, *,
               max_pixels: Optional[int] = None) -> np.ndarray:
    """One image file as a uint8 array: ``(H, W)`` for mode "L", ``(H, W, 3)`` for "RGB".

    `size` (H, W) resizes it (bilinear). 16-bit greyscale is scaled by 255/65535, not clipped. The
    reader is the one ``explain`` and ``apply`` use (``convolve._imread``): images with more than
    `max_pixels` pixels (default 89,478,485) are refused before decoding. A file Pillow cannot open,
    or one too large, gives a ValueError naming it.
    """
    img = open_image(path, max_pixels)
    with img:
        return decode_uint8(img, path, mode, size)


def load_image_folder(path: Union[str, Path], mode: str = "L", size: Optional[Tuple[int, int]] = None,
                      classes: Optional[Sequence[str]] = None, *, max_pixels: Optional[int] = None) -> ArrayDataset:
    """Load a folder with one subfolder of images per class.

    Class names are the subfolder names in sorted order; files whose
    extension is not in ``IMAGE_EXTENSIONS`` are ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The root folder.
    mode : {"L", "RGB"}
        Pillow mode every image is converted to: greyscale (C = 1) or colour (C = 3).
    size : int or (int, int), optional
        Resize every image to ``(H, W)`` (bilinear). Without it, all images
        must already share one size.
    classes : sequence of str, optional
        Class names in label order; every subfolder must be one of them.
        Used to give a test folder the same labels as its training folder.
    max_pixels : int, optional
        Refuse images larger than this many pixels (see :func:`read_image`).

    Returns
    -------
    ArrayDataset
        Images ``uint8`` of shape ``(N, C, H, W)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory.
    ValueError
        If ``mode`` is not ``"L"`` or ``"RGB"``, there are no class
        subfolders, a class subfolder has no images, an image cannot be
        opened, or images differ in size and no ``size`` was given.
    TypeError
        If ``size`` is not an int or a pair of ints.
    """
    path = Path(path)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {list(_MODES)}, but got {mode!r}")
    size = _pair(size)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory")
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{path}: expected one subfolder of images per class, but found no subfolders")
    if classes is None:
        classes = [f.name for f in folders]
    classes = [str(c) for c in classes]
    unknown = [f.name for f in folders if f.name not in classes]
    if unknown:
        raise ValueError(f"{path}: subfolders {unknown} are not among the classes {classes}")

    images: List[Tuple[Path, np.ndarray]] = []
    labels: List[int] = []
    for folder in folders:
        files = _image_files(folder)
        if not files:
            exts = " ".join(sorted(IMAGE_EXTENSIONS))
            raise ValueError(f"{folder}: class folder has no images (looked for {exts})")
        label = classes.index(folder.name)
        for file in files:
            array = read_image(file, mode, size, max_pixels=max_pixels)
            if images and array.shape != images[0][1].shape:
                raise ValueError(
                    f"{file}: image is {array.shape[1]}x{array.shape[0]} (W x H) but "
                    f"{images[0][0]} is {images[0][1].shape[1]}x{images[0][1].shape[0]}; "
                    "pass size=(H, W) to resize them all"
                )
            images.append((file, array))
            labels.append(label)

    stacked = np.stack([a for _, a in images])  # (N, H, W) or (N, H, W, 3)
    if stacked.ndim == 4:
        stacked = stacked.transpose(0, 3, 1, 2)  # -> (N, 3, H, W)
    return ArrayDataset(np.ascontiguousarray(stacked), np.asarray(labels), classes, name=path.name)
