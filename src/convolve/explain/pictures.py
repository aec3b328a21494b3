"""Pictures of what the engine computes: a kernel bank's feature maps, a layer's kernels, the output volume
as a stack of maps, and the next layer reading the whole volume.

Every function computes with ``convolve.functional`` first, draws second, and returns the computed arrays
so that what a picture shows can be checked against the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from dataclasses import dataclass

import numpy as np
from matplotlib.patches import Rectangle

from .. import functional as F
from .._engine.windows import windows
from ._draw import SCALE_NOTE, SIGNED_CMAP, display_scale, draw_kernel, draw_map, new_figure, save_figure, show_rgb
from .images import to_grey

__all__ = ["bank_maps", "kernel_bank_figure", "kernels_figure", "volume_figure", "NextLayer", "next_layer",
           "next_layer_figure"]


def _as_image(image) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"image must be (H, W) or (C, H, W), but got shape {x.shape}")
    return x


def bank_maps(image: np.ndarray, kernels: dict, padding: int = 0) -> dict:
    """Feature map of each 2-D kernel on the greyscale image, by ``F.conv2d``.

    Shape
    -----
    image (C, H, W) or (H, W); each kernel (kH, kW) -> each map (H_out, W_out).
    """
    grey = to_grey(_as_image(image)).astype(np.float64)  # (1, H, W)
    maps = {}
    for name, k in kernels.items():
        k = np.asarray(k, dtype=np.float64)
        if k.ndim != 2:
            raise ValueError(f"kernel {name!r} must be 2-D (kH, kW) for the bank picture, but has shape {k.shape}")
        maps[name] = F.conv2d(grey[None], k[None, None], padding=padding)[0, 0]
    return maps


def kernel_bank_figure(image: np.ndarray, kernels: dict, path: Union[str, Path], padding: int = 0) -> dict:
    """Input + one column per kernel: the kernel (numbers) above the feature map it makes. Returns the maps."""
    x = _as_image(image)
    maps = bank_maps(x, kernels, padding)
    n = len(maps) + 1
    fig = new_figure(1.8 * n, 5.2)
    grid = fig.add_gridspec(2, n, height_ratios=[1, 1.45], hspace=0.25, wspace=0.3, top=0.8, bottom=0.04,
                            left=0.02, right=0.98)
    grey = to_grey(x)
    show_rgb(fig.add_subplot(grid[1, 0]), grey, f"input (grey)\n{x.shape[1]}x{x.shape[2]}x1")
    ax = fig.add_subplot(grid[0, 0])
    ax.axis("off")
    ax.text(0.5, 0.5, "kernel\n(its numbers)\n\n\u2193 conv2d \u2193\n\nfeature map", ha="center", va="center",
            fontsize=10, transform=ax.transAxes)
    for col, (name, m) in enumerate(maps.items(), start=1):
        k = np.asarray(kernels[name], dtype=np.float64)
        draw_kernel(fig.add_subplot(grid[0, col]), k, f"{name} {k.shape[0]}x{k.shape[1]}")
        draw_map(fig.add_subplot(grid[1, col]), m, f"{name}: {m.shape[0]}x{m.shape[1]}", fig=fig)
    first = next(iter(maps.values()))
    fig.suptitle(f"One kernel gives one feature map: each kernel slides over the whole {x.shape[1]}x{x.shape[2]} "
                 f"image (padding {padding}, stride 1) and makes a {first.shape[0]}x{first.shape[1]} map\n"
                 f"{SCALE_NOTE}", fontsize=10)
    save_figure(fig, path)
    return maps


def kernels_figure(weight: np.ndarray, path: Union[str, Path], names: Optional[Sequence[str]] = None,
                   channel_names: Sequence[str] = ("R", "G", "B")) -> None:
    """A conv layer's kernels (C_out, C_in, kH, kW): one column per kernel, one row per depth slice."""
    w = np.asarray(weight, dtype=np.float64)
    o, c, kh, kw = w.shape
    fig = new_figure(1.45 * o + 0.8, 1.45 * c + 1.1)
    grid = fig.add_gridspec(c, o, hspace=0.35, wspace=0.12, top=1 - 1.0 / (1.45 * c + 1.1), bottom=0.03,
                            left=0.04, right=0.99)
    for j in range(o):
        scale = display_scale(w[j])  # one colour scale and one number scale per kernel, across its slices
        limit = float(np.abs(w[j]).max()) or 1.0
        for i in range(c):
            ax = fig.add_subplot(grid[i, j])
            title = (names[j] if names else f"kernel {j}") + (f"\n({scale[1]})" if scale[1] else "") if i == 0 else ""
            draw_kernel(ax, w[j, i], title, fontsize=6.5 if kh >= 5 else None, limit=limit, scale=scale)
            if j == 0:
                label = channel_names[i] if c == len(channel_names) else f"slice {i}"
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(f"{o} kernels of {kh}x{kw}x{c}: kernel depth {c} = input depth; each column is one kernel, "
                 f"each row the slice that reads one input channel (blue < 0 < red)", fontsize=10)
    save_figure(fig, path)


def _stack(ax, maps: np.ndarray, label: str):
    """Draw (C, H, W) maps as a deck of cards, front map fully visible."""
    c, h, w = maps.shape
    step = max(h // 8, 2)
    for i in reversed(range(c)):
        m = maps[i]
        top = float(np.abs(m).max()) or 1.0
        signed = (m < 0).any()
        ox, oy = i * step, i * step
        ax.imshow(m, cmap="RdBu_r" if signed else "gray", vmin=-top if signed else 0, vmax=top,
                  extent=(ox, ox + w, oy, oy + h), origin="upper")
        ax.add_patch(Rectangle((ox, oy), w, h, fill=False, lw=0.8, ec="black"))
    ax.set_xlim(-4, w + c * step + 22)
    ax.set_ylim(-12, h + c * step + 10)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(w / 2, -6, f"W = {w}", ha="center", va="center", fontsize=9)
    ax.text(-3, h / 2, f"H = {h}", ha="right", va="center", fontsize=9, rotation=90)
    ax.annotate("", xy=(w + (c - 1) * step, h + (c - 1) * step), xytext=(w, h),
                arrowprops=dict(arrowstyle="->", lw=1))
    ax.text(w + (c - 1) * step + 1, h + (c - 1) * step + 3, f"depth {c}", fontsize=9, ha="left", va="bottom")
    ax.set_title(label, fontsize=10)


def volume_figure(image: np.ndarray, volume: np.ndarray, path: Union[str, Path],
                  names: Optional[Sequence[str]] = None) -> None:
    """The input, the output volume as a stack of maps, and every map of the volume laid out."""
    x, v = _as_image(image), np.asarray(volume, dtype=np.float64)
    c, h, w = v.shape
    cols = min(c, 4)
    rows = -(-c // cols)
    fig = new_figure(3.2 + 3.8 + 2.0 * cols, max(4.6, 2.3 * rows + 0.8))
    grid = fig.add_gridspec(rows, 2 + cols, width_ratios=[1.4, 1.9] + [1] * cols, wspace=0.15, hspace=0.35,
                            top=0.84, bottom=0.04, left=0.02, right=0.98)
    show_rgb(fig.add_subplot(grid[:, 0]), x, f"input {x.shape[1]}x{x.shape[2]}x{x.shape[0]}")
    _stack(fig.add_subplot(grid[:, 1]), v, f"output volume {h}x{w}x{c}\n= {c} feature maps stacked")
    for i in range(c):
        ax = fig.add_subplot(grid[i // cols, 2 + i % cols])
        name = f" ({names[i]})" if names else ""
        draw_map(ax, v[i], f"map {i}{name}\n{h}x{w}", fig=fig)
    fig.suptitle(f"{c} kernels give {c} feature maps: together a {h}x{w}x{c} volume, the input of the next layer.\n"
                 f"{SCALE_NOTE}. A frame along the border of a map comes from the zero padding.", fontsize=10)
    save_figure(fig, path)


@dataclass
class NextLayer:
    """One value of the next layer, computed from the whole volume.

    ``windows`` (C, kH, kW) are the pieces of the padded volume under the kernel, ``partial[c]`` =
    sum(weight[c] * windows[c]), and ``z`` = bias + sum(partial); ``output`` is the engine's whole map.
    """

    position: tuple
    kernel_index: int
    weight: np.ndarray
    bias: float
    windows: np.ndarray
    partial: np.ndarray
    z: float
    output: np.ndarray


def next_layer(volume: np.ndarray, weight: np.ndarray, bias: np.ndarray, position: Tuple[int, int],
               kernel_index: int = 0, padding: Union[int, Tuple[int, int]] = 0) -> NextLayer:
    """z at `position` of output map `kernel_index`, from the windows of every channel of `volume`.

    Shape
    -----
    volume (C, H, W); weight (C_out, C, kH, kW); bias (C_out,); output (H_out, W_out).
    """
    v = np.asarray(volume, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    if w.ndim != 4 or w.shape[1] != v.shape[0]:
        raise ValueError(f"weight must be (C_out, {v.shape[0]}, kH, kW) to read a volume of depth {v.shape[0]} "
                         f"(kernel depth = input depth), but got {w.shape}")
    out = F.conv2d(v[None], w, b, padding=padding)[0, kernel_index]  # (H_out, W_out)
    i, j = position
    if not (0 <= i < out.shape[0] and 0 <= j < out.shape[1]):
        raise ValueError(f"position must lie in the {out.shape[0]}x{out.shape[1]} output, but got {position}")
    p = (padding, padding) if isinstance(padding, (int, np.integer)) else tuple(padding)
    vp = F.pad(v, (p[1], p[1], p[0], p[0]))
    win = np.array(windows(vp, w.shape[2:], (1, 1), (1, 1))[:, i, j])  # (C, kH, kW)
    partial = (w[kernel_index] * win).sum(axis=(1, 2))
    z = float(b[kernel_index] + partial.sum())
    return NextLayer((i, j), kernel_index, w[kernel_index], float(b[kernel_index]), win, partial, z, out)


def next_layer_figure(volume: np.ndarray, weight: np.ndarray, bias: np.ndarray, position: Tuple[int, int],
                      path: Union[str, Path], kernel_index: int = 0, padding: Union[int, Tuple[int, int]] = 0,
                      names: Optional[Sequence[str]] = None) -> NextLayer:
    """Every map of the volume with the same window, the window's numbers, the kernel's slice for it, the
    partial sums, z, and the next layer's map with the cell z lands in."""
    r = next_layer(volume, weight, bias, position, kernel_index, padding)
    v = np.asarray(volume, dtype=np.float64)
    c, h, w = v.shape
    kh, kw = r.weight.shape[1:]
    i, j = r.position
    p = padding if isinstance(padding, (int, np.integer)) else padding[0]
    fig = new_figure(1.75 * c + 3.9, 8.4)
    grid = fig.add_gridspec(4, c + 1, height_ratios=[1.2, 1, 1, 0.4], width_ratios=[1] * c + [2.1],
                            hspace=0.45, wspace=0.2, top=0.9, bottom=0.02, left=0.02, right=0.98)
    limit = float(np.abs(r.weight).max()) or 1.0
    wscale = display_scale(r.weight)
    for ch in range(c):
        ax = fig.add_subplot(grid[0, ch])
        name = f" ({names[ch]})" if names else ""
        draw_map(ax, v[ch], f"map {ch}{name}", colorbar=False)
        ax.add_patch(Rectangle((j - p - 0.5, i - p - 0.5), kw, kh, fill=False, ec="lime", lw=1.6))
        ax = fig.add_subplot(grid[1, ch])
        top = float(np.abs(v[ch]).max()) or 1.0
        signed = bool((v[ch] < 0).any())
        ax.imshow(r.windows[ch], cmap=SIGNED_CMAP if signed else "gray", vmin=-top if signed else 0, vmax=top)
        for (a, b), val in np.ndenumerate(r.windows[ch]):
            ax.text(b, a, f"{val:.2f}".replace("-0.00", "0.00"), ha="center", va="center", fontsize=5.5,
                    bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.6))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"x: its {kh}x{kw} window", fontsize=9)
        title = f"w: kernel slice {ch}" + (f"\n({wscale[1]})" if wscale[1] else "")
        draw_kernel(fig.add_subplot(grid[2, ch]), r.weight[ch], title, numbers=kh * kw <= 25, fontsize=5.5,
                    limit=limit, scale=wscale)
        ax = fig.add_subplot(grid[3, ch])
        ax.axis("off")
        ax.text(0.5, 0.5, f"\u03a3 w\u00b7x\n= {r.partial[ch]:+.3f}", ha="center", va="center", fontsize=9,
                transform=ax.transAxes)
    ax = fig.add_subplot(grid[0:3, c])
    draw_map(ax, r.output, f"next layer, map {kernel_index}: {r.output.shape[0]}x{r.output.shape[1]}\n"
                           f"(green: the cell z goes to)", fig=fig)
    ax.add_patch(Rectangle((j - 1.5, i - 1.5), 3, 3, fill=False, ec="lime", lw=2))
    ax = fig.add_subplot(grid[3, c])
    ax.axis("off")
    terms = " ".join(f"{t:+.3f}" for t in r.partial)
    half = (c + 1) // 2
    terms = " ".join(f"{t:+.3f}" for t in r.partial[:half]) + "\n   " + " ".join(f"{t:+.3f}" for t in r.partial[half:])
    ax.text(0.0, 0.5, f"z = b + \u03a3 over {c} maps\n= {r.bias:+.3f} {terms}\n= {r.z:.3f}  (engine: "
            f"{r.output[i, j]:.3f})", ha="left", va="center", fontsize=8.5, transform=ax.transAxes)
    fig.suptitle(f"The next layer reads the whole {h}x{w}x{c} volume: one {kh}x{kw}x{c} kernel covers the same "
                 f"{kh}x{kw} window (green) in all {c} maps, at output position (row {i}, col {j}).\n"
                 f"Each slice of the kernel multiplies its map's window; the {c} sums plus the bias give one value z.",
                 fontsize=10)
    save_figure(fig, path)
    return r
