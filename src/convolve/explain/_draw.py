"""Drawing helpers shared by the pictures and the animation (matplotlib's object API on an Agg canvas,
so importing convolve never changes the user's pyplot backend)."""

from __future__ import annotations
from typing import cast

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._io import atomic_write

__all__ = ["new_figure", "save_figure", "draw_kernel", "draw_map", "common_scale", "display_scale", "is_signed", "fmt_num",
           "figure_rgb"]

SIGNED_CMAP = "RdBu_r"  # blue < 0 < red, white = 0
PLAIN_CMAP = "gray"
SCALE_NOTE = "colours: grey = map with no negative values (black 0 .. white max); blue-white-red = signed, white = 0"


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", facecolor="white")


def figure_rgb(fig: Figure) -> np.ndarray:
    """Render and return the figure as (H, W, 3) uint8."""
    canvas = cast(FigureCanvasAgg, fig.canvas)  # figures here are made on Agg canvases
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def is_signed(m) -> bool:
    return bool((np.asarray(m) < 0).any())


def fmt_num(v: float, digits: int = 2) -> str:
    """Short signed number: '0.42', '-1.3', '12'."""
    if v == int(v) and abs(v) < 1000:
        return str(int(v))
    if round(v, digits) == 0:
        return "0"
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"


def common_scale(k: np.ndarray):
    """Smallest d <= 256 with k*d all integers of magnitude <= 99 (so 1/16 x [[1,2,1],..] is shown), else None."""
    for d in range(1, 257):
        kd = k * d
        if np.allclose(kd, np.round(kd), atol=1e-6) and np.abs(kd).max() <= 99:
            return d
    return None


def display_scale(k: np.ndarray) -> tuple:
    """(factor, label): show ``round(k * factor)`` as integers with the label ('x 1/16', 'x 0.01') in the
    title, or (None, '') to show decimals."""
    k = np.asarray(k, dtype=np.float64)
    d = common_scale(k)
    if d is not None:
        return d, (f"x 1/{d}" if d > 1 else "")
    top = float(np.abs(k).max())
    if 0 < top < 0.95:
        n = int(np.floor(-np.log10(top))) + 2  # the largest shown number has two digits
        return 10 ** n, f"x {10.0 ** -n:g}"
    return None, ""


def draw_kernel(ax, k: np.ndarray, title: str = "", fontsize: float | None = None, numbers: bool = True,
                limit: float | None = None, scale=None):
    """A kernel as a heatmap centred at zero with its numbers written in the cells.

    `limit` fixes the colour scale (+-limit) and `scale` = (factor, label) the display of the numbers, so
    several slices of one kernel can share both; by default each comes from `k` itself.
    """
    k = np.asarray(k, dtype=np.float64)
    top = limit if limit is not None else (float(np.abs(k).max()) or 1.0)
    im = ax.imshow(k, cmap=SIGNED_CMAP, vmin=-top, vmax=top)
    factor, label = scale if scale is not None else display_scale(k)
    fs = fontsize or max(5.0, 11 - 1.2 * max(k.shape))
    if numbers:
        for (r, c), v in np.ndenumerate(k):
            txt = str(int(np.round(v * factor)) + 0) if factor else fmt_num(v)
            dark = abs(v) / top > 0.6
            ax.text(c, r, txt, ha="center", va="center", fontsize=fs, color="white" if dark else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    if label and scale is None:
        title = f"{title}\n({label})" if title else label
    if title:
        ax.set_title(title, fontsize=9)
    return im


def draw_map(ax, m: np.ndarray, title: str = "", signed=None, colorbar=True, fig=None, limit=None):
    """A feature map: signed maps on blue-white-red with symmetric limits, others grey from 0."""
    m = np.asarray(m, dtype=np.float64)
    signed = is_signed(m) if signed is None else signed
    finite = m[np.isfinite(m)]
    top = limit if limit is not None else (float(np.abs(finite).max()) if finite.size else 1.0) or 1.0
    if signed:
        im = ax.imshow(m, cmap=SIGNED_CMAP, vmin=-top, vmax=top)
    else:
        im = ax.imshow(m, cmap=PLAIN_CMAP, vmin=0, vmax=top)
    ax.set_xticks([])
    ax.set_yticks([])
    if finite.size and not finite.any():
        title = f"{title} (all 0)"  # e.g. a ReLU that never fires for this input
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar and fig is not None:
        cb = fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.046, pad=0.03)
        cb.ax.tick_params(labelsize=6)
        cb.set_ticks([-top, 0, top] if signed else [0, top])
        cb.set_ticklabels([fmt_num(-top), "0", fmt_num(top)] if signed else ["0", fmt_num(top)])
    return im


def show_rgb(ax, x: np.ndarray, title: str = ""):
    """(C, H, W) image in [0, 1] (1 or 3+ channels)."""
    img = np.clip(np.moveaxis(x[:3], 0, -1), 0, 1) if x.shape[0] >= 3 else np.clip(x[0], 0, 1)
    ax.imshow(img, cmap=None if x.shape[0] >= 3 else "gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
