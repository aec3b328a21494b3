"""The Fashion-MNIST recipe end to end: convolve's ``train`` against PyTorch running the same recipe.

The recipe is the ``fashion`` row of docs/training.md (``benchmarks/train_full.py fashion``): the
``lenet`` preset, Adam lr 1e-3, cosine schedule over the epochs, batch 128, horizontal-flip
augmentation, seed 0, evaluation on the 10,000 test images after every epoch.

- convolve runs it as a user does: :func:`convolve.training.train`, which also writes a checkpoint,
  ``metrics.json`` and the plot every epoch.
- PyTorch runs the same model, loss, optimiser and schedule on the same batches: the batches come
  from the same convolve ``DataLoader`` (same shuffling, augmentation and normalisation), so only the
  framework differs; it saves a ``state_dict`` every epoch.

The two alternate by epoch (convolve's epoch, then PyTorch's, through ``train``'s ``on_epoch_end``),
so a change in machine load hits both. Both use the same thread count. Reported: wall time per epoch
and in total (each side's data loading and set-up included), the ratio, and each side's test
accuracy per epoch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_recipe.py [--epochs 12]
        [--threads 2] [--data /usr/share/datasets/fashion-mnist] [--out PATH.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # two thread pools take turns on few cores
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


def torch_recipe(data, epochs, batch_size=128, lr=1e-3, seed=0):
    """PyTorch's side of the recipe: set-up, then ``epoch(e)`` -> (test accuracy, seconds)."""
    import torch
    from torch import nn

    from convolve.data import Compose, DataLoader, RandomFlip, load_dataset

    start = time.perf_counter()
    train, test = load_dataset(data)
    x = train.images.astype(np.float64) / 255.0
    mean, std = float(x.mean()), float(x.std())
    del x
    loader = DataLoader(train, batch_size, shuffle=True, seed=seed, augment=Compose([RandomFlip()]),
                        normalize=([mean], [std]))
    test_loader = DataLoader(test, 256, shuffle=False, seed=0, normalize=([mean], [std]))
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    out = Path(tempfile.mkdtemp(prefix="torch-recipe-"))
    setup = time.perf_counter() - start

    def epoch(e):
        t0 = time.perf_counter()
        model.train()
        loader.set_epoch(e)
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
            loss.backward()
            opt.step()
            if not np.isfinite(float(loss.item())):
                raise FloatingPointError("PyTorch's loss diverged")
        sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in test_loader:
                correct += int((model(torch.from_numpy(xb)).argmax(1).numpy() == yb).sum())
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, out / "last.pt")
        return correct / len(test), time.perf_counter() - t0

    return setup, epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=FASHION)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_recipe.json"))
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data} not found: apt-get install dataset-fashion-mnist, or pass --data DIR")

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    import convolve
    from convolve.training import train

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    convolve.engine_config.set_threads(args.threads)
    torch_setup, torch_epoch = torch_recipe(args.data, args.epochs)

    rows = []
    mark = [time.perf_counter()]

    def after_convolve_epoch(record):
        ours = time.perf_counter() - mark[0]  # convolve's epoch: train, evaluate, write its files
        acc, theirs = torch_epoch(record["epoch"] - 1)
        rows.append({"epoch": record["epoch"], "convolve_s": ours, "torch_s": theirs,
                     "convolve_accuracy": record["test_accuracy"], "torch_accuracy": acc})
        print(f"epoch {record['epoch']}: convolve {ours:.1f} s ({100 * record['test_accuracy']:.2f}%), "
              f"PyTorch {theirs:.1f} s ({100 * acc:.2f}%)", flush=True)
        mark[0] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        train(args.data, Path(tmp) / "run", model="lenet", epochs=args.epochs, batch_size=128, lr=1e-3,
              optimizer="adam", schedule="cosine", augment="flip", seed=0, progress=False,
              log=lambda line: None, on_epoch_end=after_convolve_epoch)

    ours = sum(r["convolve_s"] for r in rows)
    theirs = torch_setup + sum(r["torch_s"] for r in rows)
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, BLAS {blas}",
              "threads": args.threads, "epochs": args.epochs, "convolve_total_s": ours, "torch_total_s": theirs,
              "torch_over_convolve": theirs / ours,
              "best_accuracy": {"convolve": max(r["convolve_accuracy"] for r in rows),
                                "torch": max(r["torch_accuracy"] for r in rows)},
              "epochs_detail": rows}
    print(f"{args.epochs} epochs, {args.threads} threads: convolve {ours:.1f} s, PyTorch {theirs:.1f} s "
          f"(ratio PyTorch/convolve {theirs / ours:.2f}); best test accuracy convolve "
          f"{100 * result['best_accuracy']['convolve']:.2f}%, PyTorch {100 * result['best_accuracy']['torch']:.2f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
