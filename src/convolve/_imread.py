"""The one image reader: datasets, ``predict``, ``explain`` and ``apply`` all open images here.

- **Size guard**: the header's width x height is checked against `max_pixels` before any pixel is
  decoded (a 100 kB PNG can claim 10^10 pixels). The default is Pillow's own warning threshold; pass a
  larger `max_pixels` (``--max-pixels`` on the command line) for images you trust.
- **Bit depth**: 8-bit values are divided by 255, 16-bit greyscale (Pillow modes ``I;16*`` and ``I``
  holding values above 255) by 65535, float images kept as stored; so a 16-bit PNG is not clipped
  to white as ``convert("L")`` would do.
- **Errors**: a file Pillow cannot decode, a damaged file or an image over the limit is a ValueError
  naming the file; a missing file is a FileNotFoundError.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["open_image", "decode_float", "decode_uint8", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: 0.25 GiB of 24-bit pixels
_OPEN_LOCK = threading.Lock()  # Pillow's limit is a module global: we lift it only while opening


def _check_max_pixels(max_pixels):
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, but got {max_pixels!r}")
    return int(max_pixels)


def open_image(path, max_pixels=None) -> Image.Image:
    """Open, size-check and decode an image file (first frame, EXIF rotation applied).

    Parameters
    ----------
    path : str or Path
    max_pixels : int, optional
        Refuse images with more pixels than this (default ``DEFAULT_MAX_PIXELS``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A folder, not an image Pillow decodes, damaged or truncated, or more than `max_pixels` pixels.
    """
    limit = _check_max_pixels(max_pixels)
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such image file")
    if p.is_dir():
        raise ValueError(f"cannot read image {path}: it is a folder, not an image file")
    try:
        with _OPEN_LOCK:  # our own check below replaces Pillow's, which cannot be raised per call
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(p)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with img:
            w, h = img.size
            if w * h > limit:
                raise ValueError(f"cannot read image {path}: it is {w}x{h} = {w * h} pixels, more than max_pixels = {limit} "
                                 "(a decompression bomb?); pass a larger max_pixels (--max-pixels) to read it")
            img.seek(0)
            img.load()
            return ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        raise ValueError(f"cannot read image {path}: cannot be opened as an image: not an image format Pillow "
                         "can decode (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)") from None
    except (OSError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image {path}: cannot be opened as an image: the file is damaged or "
                         f"truncated ({exc})") from None


def decode_float(img: Image.Image, source) -> np.ndarray:
    """Pixels as float32 (C, H, W) in [0, 1] (float images as stored); C = 1, 2 (grey + alpha), 3 or 4."""
    mode = img.mode
    if mode == "1":
        img, mode = img.convert("L"), "L"
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
        mode = img.mode
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        img = img.convert("RGBA" if mode in ("RGBa", "La") else "RGB")
        mode = img.mode
    a = np.asarray(img)
    if mode.startswith("I;16") or (mode == "I" and a.size and a.max() > 255):
        a = a.astype(np.float32) / 65535.0
    elif mode == "I":
        a = a.astype(np.float32) / 255.0
    elif mode == "F":
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    else:
        raise ValueError(f"{source}: image has pixel mode {mode!r}, which convolve cannot read; "
                         f"expected greyscale, RGB, RGBA, palette or 16-bit greyscale")
    return a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)


def decode_uint8(img: Image.Image, source, mode="L", size=None) -> np.ndarray:
    """Pixels as uint8 in `mode` ("L": (H, W), "RGB": (H, W, 3)), resized (bilinear) to `size` (H, W).

    8-bit images go through Pillow's own conversion, exactly as before; deeper ones (16-bit greyscale,
    32-bit int, float) are scaled to [0, 1] first (see `decode_float`), so they keep their contrast.
    """
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.clip(decode_float(img, source)[0], 0.0, 1.0)  # (H, W), one channel
        im = Image.fromarray(a.astype(np.float32), mode="F")
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        out = np.rint(np.asarray(im) * 255.0).clip(0, 255).astype(np.uint8)
        return np.repeat(out[:, :, None], 3, axis=2) if mode == "RGB" else out
    im = img.convert(mode)
    if size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # PIL wants (W, H)
    return np.asarray(im, dtype=np.uint8)
