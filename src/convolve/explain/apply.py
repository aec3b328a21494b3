"""``convolve apply``: run one kernel over a user image with the engine and write the feature map."""

from __future__ import annotations

from typing import Any, Optional, Union

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import functional as F
from ._draw import SCALE_NOTE, draw_kernel, draw_map, new_figure, save_figure, show_rgb
from .images import load_image, save_map, to_grey
from .kernels import load_kernel

__all__ = ["Applied", "apply_kernel", "check_map_path"]


@dataclass
class Applied:
    """The result of :func:`apply_kernel`: the image as read, what was convolved, the kernel and the map."""

    image: np.ndarray  # (C, H, W) as read
    input: np.ndarray  # (C_k, H, W) what the kernel read
    kernel: np.ndarray  # (C_k, kH, kW)
    map: np.ndarray  # (H_out, W_out)
    note: str


def check_map_path(path: Union[str, Path]) -> Path:
    """Refuse an output name we could not write, before any work is done."""
    path = Path(path)
    if path.suffix.lower() != ".npy" and Image.registered_extensions().get(path.suffix.lower()) is None:
        raise ValueError(f"out must end in .png, .jpg, .tif, ... (an image) or .npy (the numbers), but got {str(path)!r}")
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} {what}")
    return path


def apply_kernel(image: Any, kernel: Any, stride: int = 1, padding: Union[int, str] = 0, dilation: int = 1, *,
                 max_pixels: Optional[int] = None) -> Applied:
    """Convolve an image (a path or a (C, H, W) array) with a kernel (name, .npy path, literal or array).

    A 2-D kernel reads the greyscale image; a 3-D (C, kH, kW) kernel reads all C channels and must have the
    image's depth (an RGBA image offers its RGB channels to a depth-3 kernel). An image file with more
    than `max_pixels` pixels (default 89,478,485) is refused before it is decoded.

    Shape
    -----
    image (C, H, W); kernel (kH, kW) or (C, kH, kW); map (H_out, W_out) with
    ``H_out = floor((H + 2*padding - dilation*(kH-1) - 1) / stride) + 1``.
    """
    k = load_kernel(kernel)
    x = load_image(image, max_pixels=max_pixels) if isinstance(image, (str, Path)) else np.asarray(image, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"image must be (C, H, W), but got shape {x.shape}")
    if k.ndim == 2:
        note = "greyscale" if x.shape[0] == 1 else f"converted to greyscale (the kernel is 2-D; {x.shape[0]} channels)"
        xin, k = to_grey(x), k[None]
    else:
        c = x.shape[0]
        if k.shape[0] == c:
            xin, note = x, f"all {c} channels"
        elif c in (2, 4) and k.shape[0] == c - 1:
            xin, note = x[: c - 1], f"{c - 1} colour channels (alpha left out)"
        else:
            raise ValueError(f"kernel depth {k.shape[0]} must equal the image's {c} channels (input depth must equal "
                             f"kernel depth); use a 2-D kernel to read the greyscale image")
    y = F.conv2d(xin[None].astype(np.float64), k[None], stride=stride, padding=padding, dilation=dilation)[0, 0]
    return Applied(x, xin, k, y, note)


def figure(result: Applied, path, kernel_name: str = "kernel") -> None:
    """Input | kernel (numbers) | feature map with its colour scale."""
    c = result.kernel.shape[0]
    fig = new_figure(max(3.2 * (c + 2), 9.5), 4.4)
    grid = fig.add_gridspec(1, c + 2, wspace=0.3, top=0.8, bottom=0.05, left=0.03, right=0.97)
    x = result.image
    show_rgb(fig.add_subplot(grid[0, 0]), x, f"input {x.shape[1]}x{x.shape[2]}x{x.shape[0]}")
    for i in range(c):
        kh, kw = result.kernel.shape[1:]
        draw_kernel(fig.add_subplot(grid[0, 1 + i]), result.kernel[i], f"{kernel_name} {kh}x{kw}" +
                    (f" slice {i}" if c > 1 else ""), numbers=kh * kw <= 49)
    m = result.map
    draw_map(fig.add_subplot(grid[0, c + 1]), m, f"feature map {m.shape[0]}x{m.shape[1]}", fig=fig)
    fig.suptitle(f"{kernel_name} on the image, read as {result.note}\n{SCALE_NOTE}", fontsize=9)
    save_figure(fig, path)


def write(result: Applied, path) -> Path:
    return save_map(result.map, path)
