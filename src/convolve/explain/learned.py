"""Pictures of a trained network: its first-layer filters, and the feature maps a test image makes in each
layer (every map computed by running the model's own modules)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..nn import Module
from .. import nn, no_grad
from ..autograd import Tensor
from ._draw import SCALE_NOTE, display_scale, draw_kernel, draw_map, new_figure, save_figure, show_rgb

__all__ = ["first_conv", "layer_outputs", "learned_filters_figure", "feature_maps_figure"]


def first_conv(model: Module) -> Tuple[str, Module]:
    """(name, Conv2d) of the first Conv2d in `model` (depth-first, in registration order)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ValueError(f"model has no Conv2d layer to draw filters of ({type(model).__name__})")


def layer_outputs(model: Module, x: np.ndarray) -> List[Tuple[str, Module, np.ndarray]]:
    """Run `x` (C, H, W) through the top-level children of `model` one by one (eval mode, no gradients).

    Returns
    -------
    list of (name, module, output ndarray) for every child, output without the batch axis.
    """
    children = list(model.named_children())
    if not children:
        raise ValueError(f"model must have sub-modules (like a Sequential), but {type(model).__name__} has none")
    was_training = model.training
    model.eval()
    try:
        h = Tensor(np.asarray(x, dtype=np.float32)[None])
        out = []
        with no_grad():
            for name, m in children:
                h = m(h)
                out.append((name, m, np.asarray(h.data if isinstance(h, Tensor) else h)[0]))
    finally:
        model.train(was_training)
    return out


def learned_filters_figure(model: Module, path: Union[str, Path], title: str = "") -> np.ndarray:
    """The first conv layer's kernels, one heatmap each (numbers when they are at most 5x5). Returns the weight."""
    name, conv = first_conv(model)
    w = np.asarray(conv.weight.data, dtype=np.float64)  # (O, C, kH, kW)
    o, c, kh, kw = w.shape
    cols = min(o, 8)
    rows = -(-o // cols) * c
    fig = new_figure(1.35 * cols + 0.5, 1.4 * rows + 1.0)
    grid = fig.add_gridspec(rows, cols, hspace=0.45, wspace=0.15, top=1 - 0.9 / (1.4 * rows + 1.0), bottom=0.02)
    limit, scale = float(np.abs(w).max()) or 1.0, display_scale(w)  # one scale for all: magnitudes compare
    for k in range(o):
        for ch in range(c):
            r = (k // cols) * c + ch
            label = f"filter {k}" + (f" [{ch}]" if c > 1 else "")
            draw_kernel(fig.add_subplot(grid[r, k % cols]), w[k, ch], label, numbers=kh * kw <= 25, fontsize=6,
                        limit=limit, scale=scale)
    head = title or f"Learned first-layer filters: {o} kernels of {kh}x{kw}x{c} ('{name}'), blue < 0 < red"
    fig.suptitle(head + (f"\nnumbers {scale[1]}, one colour scale for all" if scale[1] else ""), fontsize=10)
    save_figure(fig, path)
    return w


def feature_maps_figure(model: Module, x: np.ndarray, path: Union[str, Path], per_layer: int = 8, title: str = "",
                        image: Optional[np.ndarray] = None) -> list:
    """One row per layer that outputs a volume: its first `per_layer` maps for the test image `x`.

    `x` is what the model reads (normalised); `image` (default `x`) is what is shown as the input.
    Returns the list from :func:`layer_outputs`.
    """
    outs = layer_outputs(model, x)
    vols = [(n, m, o) for n, m, o in outs if o.ndim == 3]
    if not vols:
        raise ValueError("model has no layer that outputs a (C, H, W) volume")
    cols = per_layer + 1
    fig = new_figure(1.45 * cols, 1.75 * len(vols) + 1.1)
    grid = fig.add_gridspec(len(vols), cols, hspace=0.5, wspace=0.12, top=1 - 1.0 / (1.75 * len(vols) + 1.1),
                            bottom=0.02, left=0.01, right=0.99)
    shown = np.asarray(image if image is not None else x, dtype=np.float64)
    for r, (name, m, o) in enumerate(vols):
        label = f"layer {name}: {type(m).__name__}\n{o.shape[1]}x{o.shape[2]}x{o.shape[0]}"
        ax = fig.add_subplot(grid[r, 0])
        if r == 0:
            show_rgb(ax, shown, f"input {shown.shape[1]}x{shown.shape[2]}x{shown.shape[0]}")
        else:
            ax.axis("off")
            ax.text(0.5, 0.5, label, ha="center", va="center", fontsize=8, transform=ax.transAxes)
        for k in range(min(per_layer, o.shape[0])):
            t = f"map {k}" if r or k else f"{label.replace(chr(10), ' ')}\nmap 0"
            draw_map(fig.add_subplot(grid[r, 1 + k]), o[k], t, colorbar=False)
    fig.suptitle((title or f"Feature maps of a test image, layer by layer (first {per_layer} of each)") +
                 f"\n{SCALE_NOTE}", fontsize=10)
    save_figure(fig, path)
    return outs
