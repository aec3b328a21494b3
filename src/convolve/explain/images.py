"""Read any user image as a float array, and write feature maps as images.

Greyscale, RGB, RGBA, palette, 16-bit greyscale PNG and JPEG all come back as float32 (C, H, W) in
[0, 1]: 8-bit values are divided by 255, 16-bit values by 65535. Pillow decodes 16-bit colour PNGs
to 8 bits per channel; JPEG EXIF rotation is applied.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from .._imread import decode_float, open_image
from .._io import atomic_write

__all__ = ["load_image", "sample_image", "to_grey", "resize", "save_map", "map_to_rgb", "LUMA"]

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what Pillow's convert("L") uses


def load_image(path: Union[str, Path], *, size: Union[int, Tuple[int, int], None] = None, grey: bool = False,
               max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file.

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, GIF (first frame), BMP, TIFF, ... anything Pillow decodes.
    size : int or (H, W), optional
        Resize to this many pixels (area-averaging when shrinking).
    grey : bool
        Convert to one channel with the BT.601 luma weights (alpha is dropped).
    max_pixels : int, optional
        Refuse images with more pixels (default 89,478,485, Pillow's threshold), before decoding.

    Returns
    -------
    ndarray
        float32 in [0, 1] (float images as stored).

    Shape
    -----
    (C, H, W) with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"image {str(path)!r} does not exist")
    with open_image(p, max_pixels) as img:  # the reader the datasets use: size guard, errors, EXIF
        a = decode_float(img, str(path))
    if grey:
        a = to_grey(a)
    if size is not None:
        a = resize(a, size)
    return a


def sample_image(size: Union[int, Tuple[int, int]] = 64, grey: bool = False) -> np.ndarray:
    """The photo shipped with convolve (Chelsea the cat, CC0; see _assets/ATTRIBUTION.txt), (C, size, size)."""
    ref = resources.files("convolve.explain").joinpath("_assets/chelsea.png")
    with resources.as_file(ref) as p:
        return load_image(p, size=size, grey=grey)


def to_grey(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (1, H, W): luma of RGB(A), the grey channel of grey(+alpha)."""
    if a.shape[0] >= 3:
        return np.tensordot(LUMA, a[:3], axes=1)[None].astype(np.float32)
    return a[:1].astype(np.float32)


def resize(a: np.ndarray, size: Union[int, Tuple[int, int]]) -> np.ndarray:
    """Resize (C, H, W) floats channel by channel (box filter when shrinking, bicubic when growing)."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, but got {size!r}")
    shrink = h <= a.shape[1] and w <= a.shape[2]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    chans = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((w, h), method)) for c in a]
    return np.stack(chans).astype(np.float32)


def map_to_rgb(m: np.ndarray, signed: Optional[bool] = None) -> np.ndarray:
    """A 2-D map as uint8 RGB: signed maps on a blue-white-red scale centred at 0 (white = 0, symmetric
    limits +-max|m|), non-negative maps on a grey scale from 0 (black) to the maximum (white)."""
    from matplotlib import colormaps

    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"map must be 2-D (H, W), but got shape {m.shape}")
    signed = bool((m < 0).any()) if signed is None else signed
    top = float(np.abs(m).max()) or 1.0
    if signed:
        rgba = colormaps["RdBu_r"]((m / top + 1) / 2)
    else:
        rgba = colormaps["gray"](np.clip(m / top, 0, 1))
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def save_map(m: np.ndarray, path: Union[str, Path], signed: Optional[bool] = None) -> Path:
    """Write a feature map: .npy keeps the numbers; .png/.jpg/... one pixel per value via `map_to_rgb`."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        with atomic_write(path) as f:
            np.save(f, np.asarray(m))
        return path
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"out must end in .png, .jpg, .tif, ... or .npy, but got {str(path)!r}")
    rgb = map_to_rgb(m, signed)
    with atomic_write(path) as f:
        Image.fromarray(rgb).save(f, format=fmt)
    return path
