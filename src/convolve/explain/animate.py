"""An animation of a kernel sliding over an input: the window highlighted, the feature map filling in, and the
current z = b + sum w*x written out with its numbers.

Frames: one per output position in row-major order. When there are more positions than ``max_frames``,
every ``ceil(positions / max_frames)``-th position is shown, and the last position always is, so the last
frame always shows the complete map. The map is computed once by ``F.conv2d``; frame ``f`` shows the
engine's values at the positions reached so far (``Slide.map_at(f)``) and the sum at its position, which
equals the engine's value there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union, cast

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import Rectangle
from PIL import Image

from .._shared.types import IntOrTuple
from .. import functional as F
from .._engine.windows import windows
from .._shared.checks import check_int, check_ints
from ._draw import SIGNED_CMAP, draw_kernel, fmt_num, new_figure
from .._io import atomic_write

__all__ = ["Slide", "slide", "sliding_gif"]

_CHANNEL_CMAPS = {3: ("Reds", "Greens", "Blues")}
_CHANNEL_NAMES = {3: ("R", "G", "B")}


@dataclass
class Slide:
    """Everything an animation frame shows, computed by the engine.

    Shape
    -----
    input (C, H, W); padded (C, H + 2p, W + 2p); weight (C, kH, kW); output (H_out, W_out);
    positions (frames, 2) output (row, col) per frame.
    """

    input: np.ndarray
    padded: np.ndarray
    weight: np.ndarray
    bias: float
    stride: tuple
    padding: tuple
    output: np.ndarray
    positions: list

    @property
    def frames(self) -> int:
        return len(self.positions)

    def map_at(self, frame: int) -> np.ndarray:
        """The engine's map with the positions not yet reached at `frame` set to NaN."""
        i, j = self.positions[frame]
        done = np.zeros(self.output.shape, dtype=bool)
        done.flat[: i * self.output.shape[1] + j + 1] = True
        return np.where(done, self.output, np.nan)

    def window(self, frame: int) -> np.ndarray:
        """(C, kH, kW): the part of the padded input under the kernel at `frame` (cut by the engine's helper)."""
        i, j = self.positions[frame]
        return np.array(windows(self.padded, self.weight.shape[1:], self.stride, (1, 1))[:, i, j])

    def z(self, frame: int) -> float:
        """b + sum of w*x over the window, written out as in the frame's equation."""
        return float(self.bias + (self.weight * self.window(frame)).sum())


def slide(x: np.ndarray, weight: np.ndarray, bias: float = 0.0, stride: IntOrTuple = 1, padding: IntOrTuple = 0,
          max_frames: int = 100) -> Slide:
    """Compute an animation's content.

    Parameters
    ----------
    x : array (H, W) or (C, H, W)
    weight : array (kH, kW) or (C, kH, kW)
        Kernel depth C must equal the input depth.
    bias : float
    stride, padding : int or (int, int)
        Zero padding, as ``F.conv2d``.
    max_frames : int
        Subsample positions beyond this many (see the module docstring).
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    x = x[None] if x.ndim == 2 else x
    w = w[None] if w.ndim == 2 else w
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"x must be (H, W) or (C, H, W) and weight (kH, kW) or (C, kH, kW), but got "
                         f"{x.shape} and {w.shape}")
    if w.shape[0] != x.shape[0]:
        raise ValueError(f"input has {x.shape[0]} channels but the kernel has depth {w.shape[0]} "
                         f"(input depth must equal kernel depth)")
    check_int("max_frames", max_frames, minimum=1)
    stride, padding = check_ints("stride", stride, 2, minimum=1), check_ints("padding", padding, 2, minimum=0)
    out = F.conv2d(x[None], w[None], np.array([float(bias)]), stride=stride, padding=padding)[0, 0]
    padded = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    every = [(i, j) for i in range(out.shape[0]) for j in range(out.shape[1])]
    step = -(-len(every) // max_frames)
    positions = every[::step]
    if positions[-1] != every[-1]:
        positions.append(every[-1])
    return Slide(x, padded, w, float(bias), stride, padding, out, positions)


def _equation(s: Slide, frame: int, names, wrap: bool = False) -> list:
    """Text lines: per channel the products w*x (one kernel row per line when `wrap`), then z."""
    win = s.window(frame)
    kw = s.weight.shape[2]
    lines, partial = [], []
    for c in range(s.weight.shape[0]):
        terms = [f"({fmt_num(wv)})({xv:.2f})" for wv, xv in zip(s.weight[c].ravel(), win[c].ravel())]
        p = float((s.weight[c] * win[c]).sum())
        partial.append(p)
        head = "\u03a3 w\u00b7x" if len(names) == 1 else f"{names[c]}: \u03a3 w\u00b7x"
        rows = [terms[r:r + kw] for r in range(0, len(terms), kw)] if wrap else [terms]
        for n, row in enumerate(rows):
            lead = f"{head} = " if n == 0 else " " * (len(head) + 1) + "+ "
            tail = f" = {p:+.3f}" if n == len(rows) - 1 else ""
            lines.append(lead + " + ".join(row) + tail)
    i, j = s.positions[frame]
    parts = " ".join(f"{p:+.3f}" for p in partial)
    lines.append(f"z = b + \u03a3 w\u00b7x = {s.bias:+.2f} {parts} = {s.z(frame):+.3f}  -> map[{i}, {j}]"
                 f" (engine: {s.output[i, j]:+.3f})")
    return lines


def _render(s: Slide, title: str):
    """Build the figure once; return it and an update(frame) function."""
    c, hp, wp = s.padded.shape
    kh, kw = s.weight.shape[1:]
    names = _CHANNEL_NAMES.get(c, tuple(f"channel {i}" for i in range(c))) if c > 1 else ("",)
    cmaps = _CHANNEL_CMAPS.get(c, ("gray",) * c)
    wrap = c == 1  # a narrow figure: one kernel row per line
    eq_lines = len(_equation(s, 0, names, wrap))
    fig = new_figure(3.0 * c + 4.6 + (1.8 if c == 1 else 0), 5.8 + 0.2 * eq_lines + (0.8 if c == 1 else 0), dpi=80)
    grid = fig.add_gridspec(3, c + 1, height_ratios=[2.6, 1.3, 0.2 * eq_lines], width_ratios=[1] * c + [1.25],
                            hspace=0.3, wspace=0.25, top=0.9, bottom=0.02, left=0.03, right=0.97)
    ph, pw = s.padding
    h, w = s.input.shape[1:]
    win_boxes, win_texts = [], []
    for ch in range(c):
        ax = fig.add_subplot(grid[0, ch])
        ax.imshow(s.padded[ch], cmap=cmaps[ch], vmin=0, vmax=max(1.0, float(s.padded.max())))
        ax.add_patch(Rectangle((pw - 0.5, ph - 0.5), w, h, fill=False, ec="black", lw=1, ls="--"))
        pad = f", zero padding {ph}" if ph or pw else ", no padding"
        label = f"{names[ch]} channel: " if c > 1 else "input: "
        ax.set_title(f"{label}{h}x{w}{pad}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        box = Rectangle((-0.5, -0.5), kw, kh, fill=False, ec="lime", lw=2.5)
        ax.add_patch(box)
        win_boxes.append(box)
        texts = [ax.text(0, 0, "", ha="center", va="center", fontsize=7.5, color="black",
                         bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7)) for _ in range(kh * kw)]
        win_texts.append(texts)
        kname = f"kernel, slice {names[ch]}: {kh}x{kw}" if c > 1 else f"kernel {kh}x{kw}, bias b = {fmt_num(s.bias)}"
        draw_kernel(fig.add_subplot(grid[1, ch]), s.weight[ch], kname)
    ax_map = fig.add_subplot(grid[0:2, c])
    top = float(np.abs(s.output).max()) or 1.0
    signed = bool((s.output < 0).any())
    cmap = colormaps[SIGNED_CMAP if signed else "gray"].with_extremes(bad="#dddddd")  # NaN: not computed yet
    im = ax_map.imshow(s.map_at(0), cmap=cmap, vmin=-top if signed else 0, vmax=top)
    cb = fig.colorbar(im, ax=ax_map, orientation="horizontal", fraction=0.05, pad=0.04)
    cb.ax.tick_params(labelsize=7)
    ho, wo = s.output.shape
    k_, s_ = s.weight.shape[1], s.stride[0]
    ax_map.set_title(f"feature map {ho}x{wo}: ({h} + 2*{ph} - {k_})/{s_} + 1 = {ho}\n(grey = not computed yet)",
                     fontsize=10)
    ax_map.set_xticks([])
    ax_map.set_yticks([])
    cell = Rectangle((-0.5, -0.5), 1, 1, fill=False, ec="lime", lw=2.5)
    ax_map.add_patch(cell)
    cell_text = ax_map.text(0, 0, "", ha="center", va="center", fontsize=7, fontweight="bold")
    ax_eq = fig.add_subplot(grid[2, :])
    ax_eq.axis("off")
    eq = ax_eq.text(0.0, 1.0, "", ha="left", va="top", family="monospace", fontsize=8.5, transform=ax_eq.transAxes)
    head = fig.suptitle("", fontsize=11)

    dynamic = [im, cell, cell_text, eq, head] + win_boxes + [t for texts in win_texts for t in texts]
    for a in dynamic:
        a.set_animated(True)  # left out of the background, drawn per frame (blitting)
    canvas = cast(FigureCanvasAgg, fig.canvas)  # figures here are made on Agg canvases
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)

    def update(frame: int):
        i, j = s.positions[frame]
        r0, c0 = i * s.stride[0], j * s.stride[1]
        win = s.window(frame)
        for ch in range(c):
            win_boxes[ch].set_xy((c0 - 0.5, r0 - 0.5))
            for t, (a, b) in zip(win_texts[ch], np.ndindex(kh, kw)):
                t.set_position((c0 + b, r0 + a))
                t.set_text(f"{win[ch, a, b]:.2f}")
        im.set_data(s.map_at(frame))
        cell.set_xy((j - 0.5, i - 0.5))
        cell_text.set_position((j, i))
        cell_text.set_text(fmt_num(float(s.output[i, j]), 1))
        eq.set_text("\n".join(_equation(s, frame, names, wrap)))
        bias = f", bias b = {fmt_num(s.bias)}" if c > 1 else ""  # one channel: shown under the kernel
        head.set_text(f"{title}{bias}   position ({i}, {j}): frame {frame + 1} of {s.frames}")
        canvas.restore_region(background)
        for a in dynamic:
            fig.draw_artist(a)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    return fig, update


def sliding_gif(s: Slide, path: Union[str, Path], title: str = "", ms_per_frame: int = 400, hold_ms: int = 3000) -> Slide:
    """Render `s` to an animated GIF at `path` (written whole via a temp file); return `s`."""
    if title == "":
        c, (kh, kw) = s.weight.shape[0], s.weight.shape[1:]
        title = f"A {kh}x{kw}x{c} kernel sliding over a {s.input.shape[1]}x{s.input.shape[2]}x{c} input"
    fig, update = _render(s, title)
    frames = [Image.fromarray(update(f)).quantize(colors=255, method=Image.Quantize.FASTOCTREE)
              for f in range(s.frames)]
    durations = [ms_per_frame] * (s.frames - 1) + [hold_ms]
    with atomic_write(path) as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return s
