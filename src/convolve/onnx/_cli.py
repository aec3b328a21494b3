"""Sub-commands ``convolve run`` (classify images with an ONNX model) and ``convolve convert`` (weights
between .onnx, .safetensors, .npz and PyTorch's .pt/.pth)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..cli import add_max_pixels

__all__ = ["add_commands", "preprocess", "read_labels"]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _floats(text: str):
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,0.5,0.5, but got {text!r}") from None
    return values


def _size(text: str):
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
        return (int(parts[0]), int(parts[-1]))
    raise argparse.ArgumentTypeError(f"expected a size like 224 or 224x224 (H x W), but got {text!r}")


def read_labels(path, count):
    """One class name per line (blank lines kept as empty names, so line i is class i)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if len(lines) < count:
        raise ValueError(f"--labels {path} has {len(lines)} lines but the model scores {count} classes")
    return [line.strip() for line in lines]


def _layout(spec):
    """(channels, (H, W) or None, channels_last) of a model input (N, C, H, W) or (N, H, W, C)."""
    shape = spec.shape
    if len(shape) != 4:
        raise ValueError(f"convolve run classifies images, but input {spec.name!r} has shape {list(shape)} "
                         f"(expected (N, C, H, W) or (N, H, W, C))")
    last = isinstance(shape[3], int) and shape[3] in (1, 3) and not (isinstance(shape[1], int) and shape[1] in (1, 3))
    c, h, w = (shape[3], shape[1], shape[2]) if last else (shape[1], shape[2], shape[3])
    hw = (h, w) if isinstance(h, int) and isinstance(w, int) else None
    return (c if isinstance(c, int) else 3), hw, last


def preprocess(files, spec, size=None, mean=(0.0,), std=(1.0,), order="rgb", scale=255.0, max_pixels=None):
    """Image files as the model's input batch: resized, scaled to [0, 1] (pixel / `scale`), normalised by
    mean/std per channel, in the channel order and layout the model takes. Images over `max_pixels`
    pixels (default 89,478,485) are refused before decoding.

    Shape
    -----
    (N, C, H, W), or (N, H, W, C) for a channels-last model.
    """
    from ..data import read_image

    channels, model_hw, last = _layout(spec)
    hw = size or model_hw or (224, 224)
    if model_hw and tuple(hw) != tuple(model_hw):
        raise ValueError(f"--size {hw[0]}x{hw[1]} does not match the model's fixed input {model_hw[0]}x{model_hw[1]}")
    if channels not in (1, 3):
        raise ValueError(f"the model takes {channels} channels; convolve run feeds 1 (grey) or 3 (colour)")
    batch = []
    for f in files:
        a = read_image(f, "L" if channels == 1 else "RGB", size=hw, max_pixels=max_pixels)
        a = a.astype(np.float32) / np.float32(scale)
        a = a[..., None] if a.ndim == 2 else a
        if order == "bgr":
            a = a[..., ::-1]
        batch.append(a)
    x = np.stack(batch)  # (N, H, W, C)
    for name, v in (("--mean", mean), ("--std", std)):
        if len(v) not in (1, channels):
            raise ValueError(f"{name} needs 1 or {channels} values, but got {len(v)}")
    if any(s == 0 for s in std):
        raise ValueError("--std values must be non-zero")
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = x if last else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x.astype(spec.dtype, copy=False)


def _run(args) -> int:
    from .. import no_grad
    from . import load

    if args.top < 1:
        raise ValueError(f"--top must be at least 1, but got {args.top}")
    model = load(args.model)
    model.eval()
    mean, std = (args.mean, args.std)
    if args.imagenet:
        mean, std = _IMAGENET
    x = preprocess(args.images, model.input_specs[0], args.size, mean or (0.0,), std or (1.0,), args.channel_order,
                   args.scale, args.max_pixels)
    with no_grad():
        out = model(x, *[] if len(model.input_specs) == 1 else ())
    scores = np.asarray(getattr(out[0] if isinstance(out, tuple) else out, "data", out), np.float64)
    scores = scores.reshape(len(args.images), -1)
    probs = np.all((scores >= 0) & (scores <= 1)) and np.allclose(scores.sum(axis=1), 1, atol=1e-3)
    if not probs:  # logits: softmax them
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = e / e.sum(axis=1, keepdims=True)
    labels = read_labels(args.labels, scores.shape[1]) if args.labels else None
    k = min(args.top, scores.shape[1])
    for f, row in zip(args.images, scores):
        print(f"{f}:")
        for i in np.argsort(-row, kind="stable")[:k]:
            name = f"  {labels[i]}" if labels else ""
            print(f"  {row[i]:.4f}  class {i}{name}")
    return 0


def explain_command(args) -> int:
    """``convolve explain MODEL.onnx [SHAPE]``: the per-layer table of the graph (SHAPE for dynamic sizes)."""
    from ..explain.spec import parse_shape
    from . import load
    from ._explain import explain_onnx

    if args.expect or args.table:
        raise ValueError("--expect and --table apply to layer specs; an .onnx model always prints its table")
    if len(args.layers) > 1:
        raise ValueError(f"after MODEL.onnx give at most one input shape (like 224x224x3), but got {args.layers}")
    shape = parse_shape(args.layers[0], "shape") if args.layers else None
    print(explain_onnx(load(args.input), shape, dtype=np.dtype(args.dtype))[1])
    return 0


def _convert(args) -> int:
    from ._convert import convert

    written = convert(args.source, args.dest, graph=args.graph)
    print(f"wrote {written}")
    return 0


def add_commands(subparsers):
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "run", help="classify images with an ONNX model", formatter_class=fmt,
        description="Load MODEL.onnx with convolve (no onnxruntime) and print the top classes of each image.",
        epilog="examples:\n  convolve run resnet18.onnx cat.jpg dog.png --imagenet --labels imagenet.txt --top 3\n"
               "  convolve run mnist.onnx digit.png --size 28")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per image (default: 5)")
    p.add_argument("--labels", help="a text file with one class name per line")
    p.add_argument("--size", type=_size, help="resize to H x W (default: the model's input size, else 224)")
    p.add_argument("--mean", type=_floats, help="per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_floats, help="per-channel std divided by, e.g. 0.229,0.224,0.225")
    p.add_argument("--imagenet", action="store_true", help="use ImageNet's mean and std")
    p.add_argument("--scale", type=float, default=255.0, help="pixels are divided by this first (default: 255)")
    p.add_argument("--channel-order", choices=["rgb", "bgr"], default="rgb",
                   help="the channel order the model expects (default: rgb)")
    add_max_pixels(p)
    p.set_defaults(func=_run)

    p = subparsers.add_parser(
        "convert", help="convert weights between .onnx, .safetensors, .npz (and from .pt/.pth)", formatter_class=fmt,
        description="Copy weights from SOURCE to DEST; formats by suffix (.pt/.pth are read without PyTorch, "
                    "never written). Into an .onnx file the weights go into a copy of --graph (matched by "
                    "initializer name and shape; the graph's other initializers are kept).",
        epilog="examples:\n  convolve convert model.onnx weights.safetensors\n"
               "  convolve convert weights.npz tuned.onnx --graph model.onnx\n"
               "  convolve convert finetuned.pt tuned.onnx --graph model.onnx")
    p.add_argument("source", help="the weights to read (.onnx, .safetensors, .npz, .pt or .pth)")
    p.add_argument("dest", help="the file to write; its extension picks the format")
    p.add_argument("--graph", help="the .onnx whose graph receives the weights (when DEST is .onnx)")
    p.set_defaults(func=_convert)
