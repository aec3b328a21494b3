"""Data-parallel training on a local dask cluster: throughput with 1 and 2 worker processes, and the
bytes and milliseconds of communication per step (docs/scale.md).

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_dask.py``.
The LeNet preset on the embedded Fashion-MNIST subset, global batch 128, SGD; the single-process loop,
1 worker and 2 workers interleaved, medians of the repetitions. Writes benchmarks/results/bench_dask.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from convolve import optim
from convolve.data import DataLoader
from convolve.dask import _train
from convolve.dask._cluster import local_cluster
from convolve.training import build_model, model_config, train_epoch
from convolve.training._setup import load_data

BATCH, STEPS, REPEATS = 128, 12, 3


def _model():
    from convolve.nn import init

    init.seed(0)
    return build_model(model_config("lenet", 1, (28, 28), 10))


def _batches():
    train, _, _ = load_data(None, 0, BATCH * STEPS)
    return list(DataLoader(train, BATCH, shuffle=True, seed=0))[:STEPS]


def _echo(model, state, x, y):
    """Communication only: receive the weights, send back arrays the size of the gradients."""
    return [np.zeros_like(v) for k, v in state.items()], {}, 0.0, len(y)


def _comm_ms(client, model, batches):
    """Wall ms per step of the broadcast + gather with no compute, and the bytes moved."""
    shared = client.scatter(model, broadcast=True)
    workers = len(client.scheduler_info()["workers"])
    times = []
    for x, y in batches:
        state = model.state_dict()
        t0 = time.perf_counter()
        fut = client.scatter(state, broadcast=True)
        parts = client.gather([client.submit(_echo, shared, fut, x[s], y[s], pure=False)
                               for s in _train.shard_slices(len(y), workers)])
        times.append(time.perf_counter() - t0)
    nbytes = sum(v.nbytes for v in model.state_dict().values()) * workers + sum(
        sum(g.nbytes for g in p[0]) for p in parts)
    return 1e3 * statistics.median(times), nbytes


def main():
    import distributed

    batches = _batches()
    images = BATCH * len(batches)
    rates = {"single process": [], "1 worker": [], "2 workers": []}
    comm = {}
    with local_cluster(1) as c1, distributed.Client(c1) as one, local_cluster(2) as c2, distributed.Client(c2) as two:
        for client in (one, two):  # warm up: imports and first calls on the workers
            m = _model()
            _train.train_epoch(m, batches[:2], optim.SGD(m.parameters(), lr=0.01), client)
        for _ in range(REPEATS):
            m = _model()
            t = time.perf_counter()
            train_epoch(m, batches, optim.SGD(m.parameters(), lr=0.01))
            rates["single process"].append(images / (time.perf_counter() - t))
            for name, client in (("1 worker", one), ("2 workers", two)):
                m = _model()
                stats = _train.StepStats()
                t = time.perf_counter()
                _train.train_epoch(m, batches, optim.SGD(m.parameters(), lr=0.01), client, stats=stats)
                rates[name].append(images / (time.perf_counter() - t))
        for name, client in (("1 worker", one), ("2 workers", two)):
            comm[name] = _comm_ms(client, _model(), batches)
    params = sum(p.data.nbytes for p in _model().parameters())
    result = {
        "batch": BATCH, "steps": len(batches), "repeats": REPEATS, "parameter_bytes": params,
        "images_per_second": {k: statistics.median(v) for k, v in rates.items()},
        "all_images_per_second": rates,
        "communication": {k: {"ms_per_step": v[0], "bytes_per_step": v[1]} for k, v in comm.items()},
        "note": "shared 2-core host, other jobs running: noisy",
    }
    out = Path(__file__).parent / "results" / "bench_dask.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
