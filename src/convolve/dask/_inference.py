"""Evaluation and prediction on a cluster: the model is sent once, batches run on the workers."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ._locks import model_lock

__all__ = ["evaluate", "predict_proba"]


def _eval_batch(model, x, y):
    with model_lock, no_grad():
        logits = model(Tensor(x)).data  # (B, classes)
    return float(F.cross_entropy(logits, y, reduction="sum")), int((logits.argmax(axis=1) == y).sum()), len(y)


def _proba_batch(model, x):
    with model_lock, no_grad():
        logits = np.asarray(model(Tensor(x)).data, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)  # stable softmax, as training.predict_proba
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _ordered(client, model, func, batches, window):
    """Results of ``func(model, *batch)`` on the workers, in batch order, at most `window` batches in flight."""
    model.eval()
    shared = client.scatter(model, broadcast=True)  # the model crosses the network once per worker
    pending, results = [], []
    for batch in batches:
        pending.append(client.submit(func, shared, *batch, pure=False))
        if len(pending) >= window:
            results.append(pending.pop(0).result())
    results.extend(f.result() for f in pending)
    return results


def _window(client):
    return 2 * max(1, len(client.scheduler_info()["workers"]))


def evaluate(model: Any, loader: Any, client: Any) -> Any:
    """Mean cross-entropy and accuracy of `model` over `loader`, the batches run on `client`'s workers.

    The same numbers as ``convolve.training.evaluate`` (per-batch sums added in batch order).
    """
    parts = _ordered(client, model, _eval_batch, loader, _window(client))
    images = sum(n for _, _, n in parts)
    if images == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    loss = 0.0
    for value, _, _ in parts:
        loss += value
    return loss / images, sum(c for _, c, _ in parts) / images


def predict_proba(model: Any, x: Any, client: Any, batch_size: Any = 256) -> Any:
    """Class probabilities for a float batch, computed on `client`'s workers in batches.

    Shape
    -----
    x ``(N, C, H, W)`` -> ``(N, classes)`` float64.
    """
    batches = [(x[i:i + batch_size],) for i in range(0, len(x), batch_size)]
    parts = _ordered(client, model, _proba_batch, batches, _window(client))
    return np.concatenate(parts) if parts else np.zeros((0, 0))
