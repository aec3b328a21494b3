"""The inner loops: one training epoch, evaluation, prediction."""

from __future__ import annotations

from typing import Any, Tuple

import time

import numpy as np

from ..optim import Optimizer
from ..nn import Module
from ..data import DataLoader
from .. import functional as F
from ..autograd import Tensor, no_grad

__all__ = ["train_epoch", "evaluate", "predict_proba"]


def train_epoch(model: Module, loader: DataLoader, optimizer: Optimizer, bar: Any = None) -> Tuple[float, int, float]:
    """One pass over `loader`: forward, cross-entropy, backward, optimiser step per batch.

    Returns
    -------
    mean_loss : float
        Sample-weighted mean of the batch losses.
    images : int
    seconds : float
        Wall time of the loop (data loading included).
    """
    model.train()
    total, images = 0.0, 0
    start = time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), y)  # x (B, C, H, W) float32, y (B,) int64
        loss.backward()
        optimizer.step()
        value = float(loss.item())
        if not np.isfinite(value):
            raise FloatingPointError(
                f"training loss became {value} at image {images}; try a smaller --lr"
            )
        total += value * len(y)
        images += len(y)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {total / images:.4f}  {images / (time.perf_counter() - start):,.0f} img/s")
    return total / max(images, 1), images, time.perf_counter() - start


def evaluate(model: Module, loader: DataLoader) -> Tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (in eval mode) over `loader`.

    Returns
    -------
    loss : float
    accuracy : float
        Fraction of images whose top logit is the label, in [0, 1].
    """
    model.eval()
    loss, correct, images = 0.0, 0, 0
    with no_grad():
        for x, y in loader:
            logits = model(Tensor(x)).data  # (B, classes)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(axis=1) == y).sum())
            images += len(y)
    if images == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return loss / images, correct / images


def predict_proba(model: Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (softmax of the logits) for a float batch.

    Shape
    -----
    x ``(N, C, H, W)`` float32, already normalised -> ``(N, classes)`` float64, rows summing to 1.
    """
    model.eval()
    out = []
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = np.asarray(model(Tensor(x[i : i + batch_size])).data, dtype=np.float64)
            logits -= logits.max(axis=1, keepdims=True)  # stable softmax
            p = np.exp(logits)
            out.append(p / p.sum(axis=1, keepdims=True))
    return np.concatenate(out) if out else np.zeros((0, 0))
