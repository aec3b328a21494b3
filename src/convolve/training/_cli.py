"""``convolve train | evaluate | predict``."""

from __future__ import annotations

import argparse
import sys

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

_DATA_HELP = f"dataset directory: {DATA_FORMATS_HELP}. Default: the embedded Fashion-MNIST subset"


def add_commands(subparsers):
    """Register ``train``, ``evaluate`` and ``predict`` on the ``convolve`` parser."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    t = subparsers.add_parser(
        "train", help="train a CNN (embedded Fashion-MNIST subset by default)", formatter_class=fmt,
        description="Train a preset CNN. Writes last.npz (each epoch), best.npz, metrics.json and "
                    "loss_accuracy.png to --out. Settings not given on --resume are the stored run's.",
    )
    t.add_argument("--model", choices=CHOICES["model"], default=None,
                   help=f"preset: lenet (conv32-pool-conv64-pool-fc128) or resnet (residual, BN) "
                        f"[{DEFAULTS['model']}]")
    t.add_argument("--data", default=None, metavar="DIR", help=_DATA_HELP)
    t.add_argument("--epochs", type=int, default=None, help=f"epochs in the run [{DEFAULTS['epochs']}]")
    t.add_argument("--batch-size", type=int, default=None, help=f"[{DEFAULTS['batch_size']}]")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate [" + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + "]")
    t.add_argument("--optimizer", choices=CHOICES["optimizer"], default=None, help=f"[{DEFAULTS['optimizer']}]")
    t.add_argument("--weight-decay", type=float, default=None, help=f"[{DEFAULTS['weight_decay']:g}]")
    t.add_argument("--momentum", type=float, default=None, help=f"SGD momentum [{DEFAULTS['momentum']:g}]")
    t.add_argument("--schedule", choices=CHOICES["schedule"], default=None,
                   help=f"learning-rate schedule, stepped per epoch [{DEFAULTS['schedule']}]")
    t.add_argument("--augment", choices=CHOICES["augment"], default=None,
                   help=f"random crop (pad H//8) and/or horizontal flip [{DEFAULTS['augment']}]")
    t.add_argument("--seed", type=int, default=None, help=f"seeds init, data order, augmentation [{DEFAULTS['seed']}]")
    t.add_argument("--limit", type=int, default=None, metavar="N", help="train on N images (a seeded subset)")
    t.add_argument("--out", default=None, metavar="DIR", help="run directory [runs/<model>, or -2, -3, ... if taken]")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.npz")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is off anyway when stderr is not a terminal or CI=true)")
    _cluster_flags(t, "synchronous data-parallel training")
    t.set_defaults(func=_train)

    e = subparsers.add_parser("evaluate", help="test accuracy of a checkpoint", formatter_class=fmt,
                              description="Loss and accuracy of a checkpoint on a dataset's test split.")
    e.add_argument("checkpoint", help="a .npz written by convolve train (best.npz or last.npz)")
    e.add_argument("--data", default=None, metavar="DIR",
                   help="dataset directory (formats as for train; 'default': the embedded subset). "
                        "Default: the data the checkpoint was trained on")
    e.add_argument("--batch-size", type=int, default=256)
    _cluster_flags(e, "run the batches")
    e.set_defaults(func=_evaluate)

    p = subparsers.add_parser("predict", help="classify image files with a checkpoint", formatter_class=fmt,
                              description="Print the most likely classes of each image. Images are "
                                          "converted to the model's greyscale/RGB and resized to its input.")
    p.add_argument("checkpoint", help="a .npz written by convolve train")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=3, help="classes to show per image")
    p.add_argument("--invert", action="store_true",
                   help="invert brightness first (for dark-on-light photos given to an MNIST-style model)")
    _cluster_flags(p, "run the batches")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse larger images before decoding them [89478485, Pillow's limit]")
    p.set_defaults(func=_predict)


def _train(args):
    from ._run import train

    try:
        train(args.data, args.out, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                momentum=args.momentum, schedule=args.schedule, augment=args.augment, seed=args.seed,
                limit=args.limit, resume=args.resume, progress=False if args.no_progress else None,
                workers=args.workers, scheduler=args.scheduler)
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
                            scheduler=args.scheduler)
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
