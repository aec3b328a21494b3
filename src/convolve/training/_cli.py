"""``convolve train | evaluate | predict``."""

from __future__ import annotations

import sys
from typing import Any

from ..cli import add_max_pixels
from ._settings import CHOICES, DEFAULT_LR, DEFAULTS
from ._setup import DATA_FORMATS_HELP

__all__ = ["add_commands"]


def _cluster_flags(parser, what):
    """--workers N | --scheduler ADDRESS (convolve.dask; needs the dask extra)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"{what} on a local dask cluster of N worker processes (pip install \"convolve[dask]\")")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help=f"{what} on the dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786)")


_DATA_HELP = f"dataset directory: {DATA_FORMATS_HELP} (default: the embedded Fashion-MNIST subset)"


def _default(key: str) -> str:
    return f" (default: {DEFAULTS[key]:g})" if isinstance(DEFAULTS[key], float) else f" (default: {DEFAULTS[key]})"


def add_commands(subparsers: Any) -> None:
    """Register ``train``, ``evaluate`` and ``predict`` on the ``convolve`` parser.

    Options default to None ("not given") so that a resumed run keeps its stored settings; the
    help shows the real default of each, once.
    """
    t = subparsers.add_parser(
        "train", help="train a CNN (embedded Fashion-MNIST subset by default)",
        description="Train a preset CNN. Writes last.npz (each epoch), best.npz, metrics.json and "
                    "loss_accuracy.png to --out. Settings not given on --resume are the stored run's.",
    )
    t.add_argument("--model", choices=CHOICES["model"],
                   help="preset: lenet (conv32-pool-conv64-pool-fc128) or resnet (residual, BN)" + _default("model"))
    t.add_argument("--data", metavar="DIR", help=_DATA_HELP)
    t.add_argument("--epochs", type=int, metavar="N", help="epochs in the run" + _default("epochs"))
    t.add_argument("--batch-size", type=int, metavar="N", help="images per training step" + _default("batch_size"))
    t.add_argument("--lr", type=float, help="learning rate (default: "
                   + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--optimizer", choices=CHOICES["optimizer"], help="optimiser" + _default("optimizer"))
    t.add_argument("--weight-decay", type=float, metavar="WD",
                   help="L2 penalty (decoupled for adamw)" + _default("weight_decay"))
    t.add_argument("--momentum", type=float, help="SGD momentum" + _default("momentum"))
    t.add_argument("--schedule", choices=CHOICES["schedule"],
                   help="learning-rate schedule, stepped per epoch" + _default("schedule"))
    t.add_argument("--augment", choices=CHOICES["augment"],
                   help="random crop (pad H//8) and/or horizontal flip" + _default("augment"))
    t.add_argument("--seed", type=int, help="seeds init, data order, augmentation" + _default("seed"))
    t.add_argument("--limit", type=int, metavar="N", help="train on N images (a seeded subset; default: all)")
    t.add_argument("--out", metavar="DIR", help="run directory (default: runs/<model>, or -2, -3, ... if taken)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.npz")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is off anyway when stderr is not a terminal or CI=true)")
    _cluster_flags(t, "synchronous data-parallel training")
    add_max_pixels(t)
    t.set_defaults(func=_train)

    e = subparsers.add_parser("evaluate", help="test accuracy of a checkpoint",
                              description="Loss and accuracy of a checkpoint on a dataset's test split.")
    e.add_argument("checkpoint", help="a .npz written by convolve train (best.npz or last.npz)")
    e.add_argument("--data", metavar="DIR",
                   help="dataset directory (formats as for train; 'default': the embedded subset) "
                        "(default: the data the checkpoint was trained on)")
    e.add_argument("--batch-size", type=int, default=256, metavar="N", help="images per step (default: 256)")
    _cluster_flags(e, "run the batches")
    add_max_pixels(e)
    e.set_defaults(func=_evaluate)

    p = subparsers.add_parser("predict", help="classify image files with a checkpoint",
                              description="Print the most likely classes of each image. Images are "
                                          "converted to the model's greyscale/RGB and resized to its input.")
    p.add_argument("checkpoint", help="a .npz written by convolve train")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes to show per image (default: 3)")
    p.add_argument("--invert", action="store_true",
                   help="invert brightness first (for dark-on-light photos given to an MNIST-style model)")
    _cluster_flags(p, "run the batches")
    add_max_pixels(p)
    p.set_defaults(func=_predict)


def _train(args):
    from ._run import train

    try:
        train(args.data, args.out, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                momentum=args.momentum, schedule=args.schedule, augment=args.augment, seed=args.seed,
                limit=args.limit, resume=args.resume, progress=False if args.no_progress else None,
                workers=args.workers, scheduler=args.scheduler, max_pixels=args.max_pixels)
    except KeyboardInterrupt:
        print("\ninterrupted: finished epochs are kept in the run directory's last.npz; continue "
              "with convolve train --resume --out DIR", file=sys.stderr)
        return 130
    return 0


def _evaluate(args):
    from ._inference import evaluate_checkpoint

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, but got {args.batch_size}")
    r = evaluate_checkpoint(args.checkpoint, args.data, args.batch_size, workers=args.workers,
                            scheduler=args.scheduler, max_pixels=args.max_pixels)
    ckpt = r["checkpoint"]
    print(f"{ckpt.path} ({ckpt.config['model']}, epoch {ckpt.epoch}) on {r['dataset']}: "
          f"test accuracy {100 * r['accuracy']:.2f}% ({r['correct']}/{r['images']}), "
          f"test loss {r['loss']:.4f}")
    return 0


def _predict(args):
    from ._inference import predict_files

    results = predict_files(args.checkpoint, args.images, top=args.top, invert=args.invert, workers=args.workers,
                            scheduler=args.scheduler, max_pixels=args.max_pixels)
    for file, ranked in results:
        width = max(len(name) for name, _ in ranked)
        print(file)
        for name, p in ranked:
            print(f"  {name:<{width}}  {100 * p:6.2f}%")
    return 0
