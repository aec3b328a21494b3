"""Per-epoch metrics: the record, ``metrics.json`` and the loss/accuracy plot."""

from __future__ import annotations

import json
from pathlib import Path

from .._io import atomic_write

__all__ = ["EpochRecord", "write_metrics", "plot_history", "format_epoch"]


def EpochRecord(epoch, train_loss, test_loss, test_accuracy, images_per_second, seconds, lr):
    """One epoch's numbers as a plain dict (what ``metrics.json`` lists)."""
    return {
        "epoch": int(epoch),
        "train_loss": float(train_loss),
        "test_loss": None if test_loss is None else float(test_loss),
        "test_accuracy": None if test_accuracy is None else float(test_accuracy),
        "images_per_second": float(images_per_second),
        "seconds": float(seconds),
        "lr": float(lr),
    }


def format_epoch(record, epochs):
    """The one line printed after each epoch."""
    width = len(str(epochs))
    test = (
        f"test loss {record['test_loss']:.4f}  test acc {100 * record['test_accuracy']:6.2f}%"
        if record["test_accuracy"] is not None
        else "no test split"
    )
    return (
        f"epoch {record['epoch']:>{width}}/{epochs}  train loss {record['train_loss']:.4f}  {test}  "
        f"{record['images_per_second']:,.0f} img/s  {record['seconds']:.1f} s"
    )


def write_metrics(path, history, **info):
    """Write ``{"epochs": history, **info}`` as JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump({**info, "epochs": history}, f, indent=2)
        f.write("\n")


def plot_history(path, history, title=""):
    """Save train/test loss and test accuracy per epoch as a PNG (Agg backend, no display needed)."""
    # a bare Figure renders with Agg and leaves pyplot's global backend alone
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    tested = [r for r in history if r["test_accuracy"] is not None]
    if tested:
        loss_ax.plot([r["epoch"] for r in tested], [r["test_loss"] for r in tested], "s-", label="test")
        acc_ax.plot([r["epoch"] for r in tested], [100 * r["test_accuracy"] for r in tested], "s-",
                    color="C1")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    loss_ax.legend()
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="test accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    with atomic_write(Path(path)) as f:
        fig.savefig(f, format="png", dpi=100)
