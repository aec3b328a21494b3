"""Synchronous data-parallel training on a dask.distributed cluster.

Every step the driver cuts the global batch (the same batch, order and augmentation as a
single-process run) into one contiguous shard per worker and sends the current weights to every
worker once (a broadcast); each worker computes the gradient of its shard's mean loss; the driver
averages the gradients weighted by shard size -- which is the gradient of the global batch's mean
loss -- and its optimiser applies the update to the one authoritative model, whose weights every
replica receives at the next step. So all replicas step identically and the run equals a
single-process run up to the order of the floating-point sums.

BatchNorm: in training mode each replica normalises with its shard's statistics (PyTorch DDP's
default, not SyncBatchNorm); the running mean and variance the replicas update are averaged weighted
by shard size. With BatchNorm the run therefore matches a single-process run only for one worker.

A worker that dies mid-step loses nothing: its shard is recomputed by dask on the others (the
weights are on every worker); checkpoints are written by the driver as in a local run.
"""

from __future__ import annotations

from typing import Any

import time
from contextlib import contextmanager

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ._cluster import connect
from ._locks import model_lock

__all__ = ["data_parallel", "train_epoch", "shard_slices", "StepStats"]


def shard_slices(n, parts):
    """`parts` contiguous slices of ``range(n)``, sizes differing by at most one (empty ones dropped)."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _shard_gradient(model, state, x, y):
    """Load `state` into the worker's copy of `model`; gradients, buffers and loss of one shard."""
    with model_lock:  # the worker's copy of the model is shared by its threads
        model.load_state_dict(state)
        model.train()
        dtype = next(iter(model.parameters())).data.dtype
        model.zero_grad()
        loss = F.cross_entropy(model(Tensor(np.asarray(x, dtype=dtype))), y)  # mean over the shard
        loss.backward()
        grads = [None if p.grad is None else np.asarray(p.grad) for p in model.parameters()]
        buffers = {name: np.asarray(b).copy() for name, b in model.named_buffers() if b is not None}
        return grads, buffers, float(loss.item()), len(y)


class StepStats:
    """Bytes and seconds of the communication of each step (for docs/scale.md)."""

    def __init__(self):
        self.steps, self.bytes, self.seconds, self.compute = 0, 0, 0.0, 0.0

    def summary(self):
        n = max(self.steps, 1)
        return {"steps": self.steps, "bytes_per_step": self.bytes / n, "wall_ms_per_step": 1e3 * self.seconds / n}


def train_epoch(model, loader, optimizer, client, bar=None, stats=None):
    """One epoch of synchronous data parallelism over `client`'s workers: the same returns as
    ``convolve.training.train_epoch`` (mean loss, images, seconds)."""
    model.train()
    params = list(model.parameters())
    shared = {"model": client.scatter(model, broadcast=True)}  # the architecture, once per epoch
    total, images = 0.0, 0
    start = time.perf_counter()
    for x, y in loader:
        t0 = time.perf_counter()
        state = model.state_dict()
        parts, workers = _step(client, model, shared, state, x, y)
        n = len(y)
        optimizer.zero_grad()
        for i, p in enumerate(params):
            shard = [(g[i], m) for g, _, _, m in parts if g[i] is not None]
            if shard:
                grad = shard[0][0] * (shard[0][1] / n)
                for g, m in shard[1:]:
                    grad = grad + g * (m / n)
                p.grad = grad.astype(p.data.dtype, copy=False)
        _average_buffers(model, parts, n)
        optimizer.step()
        loss = sum(value * m for _, _, value, m in parts) / n
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at image {images}; try a smaller --lr")
        total += loss * n
        images += n
        if stats is not None:
            stats.steps += 1
            stats.bytes += sum(a.nbytes for a in state.values()) * workers + sum(
                sum(g.nbytes for g in grads if g is not None) for grads, _, _, _ in parts)
            stats.seconds += time.perf_counter() - t0
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {total / images:.4f}  {images / (time.perf_counter() - start):,.0f} img/s")
    return total / max(images, 1), images, time.perf_counter() - start


def _step(client, model, shared, state, x, y, attempts=4):
    """The shards' gradients for one step; a step that loses a worker is redone on the workers left."""
    from distributed import KilledWorker

    for attempt in range(attempts):
        try:
            workers = max(1, len(client.scheduler_info()["workers"]))
            state_future = client.scatter(state, broadcast=True)
            futures = [client.submit(_shard_gradient, shared["model"], state_future, x[s], y[s], pure=False)
                       for s in shard_slices(len(y), workers)]
            return client.gather(futures), workers  # dask itself recomputes a shard whose worker died
        except (OSError, KilledWorker):  # a worker left during the broadcast or the gather
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))  # let the scheduler notice; then the model goes to the others
            shared["model"] = client.scatter(model, broadcast=True)


def _average_buffers(model, parts, n):
    """BatchNorm running statistics: the shard-size-weighted mean of the replicas' (counters: any one)."""
    for name, buf in model.named_buffers():
        if buf is None:
            continue
        values = [(b[name], m) for _, b, _, m in parts]
        if np.issubdtype(values[0][0].dtype, np.floating):
            buf[...] = sum(v * (m / n) for v, m in values)
        else:
            buf[...] = values[0][0]


@contextmanager
def data_parallel(workers: Any = None, scheduler: Any = None, log: Any = print) -> Any:
    """A ``train_epoch(model, loader, optimizer, bar)`` that runs on a cluster, for ``training.train``."""
    with connect(workers, scheduler) as client:
        n = len(client.scheduler_info()["workers"])
        log(f"data parallel on {n} worker{'s' if n != 1 else ''} ({client.scheduler.address})")

        def epoch(model, loader, optimizer, bar=None):
            return train_epoch(model, loader, optimizer, client, bar)

        yield epoch
