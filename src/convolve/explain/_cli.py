"""Sub-commands ``convolve explain``, ``convolve demo`` and ``convolve apply``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..cli import add_max_pixels, positive_int

__all__ = ["add_commands"]

_EXPLAIN_EPILOG = """layer grammar (mirrors convolve.nn):
  conv OUT KERNEL [stride=S] [pad=P|same|valid] [dilation=D] [groups=G] [bias=no]
  maxpool KERNEL [stride=S] [pad=P] [dilation=D] [ceil=yes]    avgpool KERNEL [stride=S] [pad=P]
  linear OUT [bias=no]    flatten    relu    tanh    sigmoid    batchnorm    dropout [P]
  KERNEL: 5 | 5x5 | 5x5x3 (kernel depth, checked);  end a layer with '-> SHAPE' to check its output.
examples:
  convolve explain 64x64x3 "conv 8 5x5 pad=2" "conv 16 5x5 stride=2 pad=same" "maxpool 2" flatten "linear 10"
  convolve explain 64x64x3 "conv 8 5x5x3 pad=1 -> 64x64x8"
"""


def _padding(text: str):
    if text in ("same", "valid"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a non-negative int, 'same' or 'valid', but got {text!r}")


_positive = positive_int


def _run_explain(args) -> int:
    from .shapes import explain
    from .spec import parse_layers, parse_shape

    if args.model is not None:
        return _run_summary(args)
    if args.input.lower().endswith(".onnx"):  # a real graph: the table from convolve.onnx
        from ..onnx._cli import explain_command

        return explain_command(args)
    layers = parse_layers(args.layers)
    if args.expect is not None:
        want = parse_shape(args.expect, "--expect")
        if not layers:
            raise ValueError("--expect needs at least one layer to check")
        if layers[-1].expect is not None:
            raise ValueError(f"the last layer already states its output ('-> ...'); drop --expect {args.expect}")
        layers[-1] = replace(layers[-1], expect=want)
    e = explain(args.input, layers, dtype=args.dtype)
    print(e.table() if args.table else e.details())
    return 0 if e.ok else 1


def _run_summary(args) -> int:
    """``--model``: the table of a training preset or a checkpoint's model, from one real forward pass."""
    from .spec import parse_shape
    from .summarize import summary

    if args.layers or args.expect:
        raise ValueError("--model summarises a whole model; give either --model or LAYER specs, not both")
    shape = parse_shape(args.input, "input")
    if len(shape) != 3:
        raise ValueError(f"--model needs an image input like 28x28x1, but got {args.input!r}")
    try:
        from ..training import PRESETS, load_model
    except ImportError as exc:
        raise ValueError(f"--model needs the training package ({exc})") from None
    if args.model.lower().endswith(".npz"):
        model, _ = load_model(args.model)
    elif args.model in PRESETS:
        model = PRESETS[args.model](in_channels=shape[0], num_classes=10, image_size=shape[1:])
    else:
        raise ValueError(f"--model must be one of {sorted(PRESETS)} or a checkpoint .npz, but got {args.model!r}")
    print(summary(model, shape))
    return 0


def _run_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, checkpoint=args.checkpoint, train=not args.no_train, kernels=args.kernel or ())
    return 0


def _run_apply(args) -> int:
    from .apply import apply_kernel, check_map_path, figure, write
    from .kernels import BANK

    image = Path(args.image)
    name = args.kernel if args.kernel.replace("-", "_").lower() in BANK else (
        Path(args.kernel).stem if args.kernel.lower().endswith(".npy") else "kernel")
    out = check_map_path(args.out or f"{image.stem}-{name}.png")
    fig_path = check_map_path(args.figure) if args.figure else None
    if fig_path is not None and fig_path.suffix.lower() != ".png":
        raise ValueError(f"--figure must end in .png, but got {args.figure!r}")
    r = apply_kernel(image, args.kernel, stride=args.stride, padding=args.padding, dilation=args.dilation,
                     max_pixels=args.max_pixels)
    write(r, out)
    if fig_path is not None:
        figure(r, fig_path, name)
    c, h, w = r.image.shape
    m = r.map
    kd, kh, kw = r.kernel.shape
    colours = "blue < 0 < red, white = 0 (scale +-max|value|)" if (m < 0).any() else "black = 0, white = max"
    print(f"{image.name}: {h}x{w}x{c}, read as {r.note}")
    print(f"kernel {name}: {kh}x{kw}x{kd}, stride {args.stride}, padding {args.padding}, dilation {args.dilation}")
    print(f"feature map {m.shape[0]}x{m.shape[1]}, values {m.min():.4g} .. {m.max():.4g}")
    written = f"{out}" + (f" and {fig_path}" if fig_path else "")
    print(f"wrote {written}" + ("" if out.suffix.lower() == ".npy" else f" (one pixel per value; {colours})"))
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``explain``, ``demo`` and ``apply`` on the ``convolve`` parser."""
    p = subparsers.add_parser(
        "explain", help="shapes, parameters, FLOPs and receptive fields of a stack of layers",
        description="Walk a stack of layers from an input volume and explain every step; check stated outputs.",
        epilog=_EXPLAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="input volume: 64x64x3 (H x W x C), 28x28, (3,64,64) or 784 (flat)")
    p.add_argument("layers", nargs="*", metavar="LAYER", help='layer specs, e.g. "conv 8 5x5 pad=2" "maxpool 2"')
    p.add_argument("--expect", metavar="SHAPE", help="the output you expect from the last layer, e.g. 64x64x8")
    p.add_argument("--table", action="store_true", help="one line per layer instead of the full explanation")
    p.add_argument("--model", metavar="PRESET|CKPT",
                   help="instead of LAYERs: summarise a training preset (lenet, resnet) or a checkpoint's model")
    p.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"],
                   help="element type for the memory figures (default: float32)")
    p.set_defaults(func=_run_explain)

    p = subparsers.add_parser(
        "demo", help="the seeds' example on a real photo: explanation and pictures (start here)",
        description="64x64x3 photo -> 8 kernels 5x5x3, padding 2 -> 64x64x8 -> 16 kernels 5x5x8: print the "
                    "explanation and write every picture (kernel bank, sliding-kernel GIFs, volume, next layer, "
                    "learned filters) into a folder. Offline.")
    p.add_argument("--out", default="convolve-demo", metavar="DIR", help="output folder (default: ./convolve-demo)")
    p.add_argument("--checkpoint", metavar="CKPT", help="a trained checkpoint (.npz from convolve train) for the learned filters")
    p.add_argument("--no-train", action="store_true",
                   help="without --checkpoint, skip the few-second training run behind the learned-filter pictures")
    p.add_argument("--kernel", action="append", metavar="K",
                   help="add your own 2-D kernel to the kernel-bank picture: a .npy file or a literal like "
                        "'[[1,0,-1],[2,0,-2],[1,0,-1]]' (repeatable)")
    p.set_defaults(func=_run_demo)

    p = subparsers.add_parser(
        "apply", help="run one kernel over an image and write the feature map",
        description="Convolve IMAGE (grey, RGB, RGBA, 16-bit PNG, JPEG, ...) with a kernel. A 2-D kernel reads "
                    "the greyscale image; a 3-D (C, kH, kW) kernel reads all C channels.")
    p.add_argument("image", help="the image file to read")
    p.add_argument("--kernel", required=True, metavar="K",
                   help="a name (identity, box_blur, gaussian_blur, sharpen, laplacian, edge, sobel_x, sobel_y), "
                        "a .npy file, or a literal like '[[1,0,-1],[2,0,-2],[1,0,-1]]'")
    p.add_argument("--stride", type=_positive, default=1, metavar="S", help="step between kernel positions (default: 1)")
    p.add_argument("--padding", type=_padding, default=0, metavar="P", help="an int, 'same' or 'valid' (default: 0)")
    p.add_argument("--dilation", type=_positive, default=1, metavar="D", help="spacing between kernel taps (default: 1)")
    p.add_argument("--out", metavar="FILE", help="output file: .png (an image, one pixel per value) or .npy (the "
                                 "numbers) (default: IMAGE-KERNEL.png here)")
    p.add_argument("--figure", metavar="PNG", help="also write a labelled figure (input, kernel, map with colour scale) as PNG")
    add_max_pixels(p)
    p.set_defaults(func=_run_apply)
