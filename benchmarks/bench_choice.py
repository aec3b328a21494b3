"""How good is the engine's automatic choice? Every candidate algorithm timed on every layer and op.

Run (the BLAS settings of the environment are unset for this command only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_choice.py [--out FILE]

For each layer (bench_conv's suite plus the training benchmarks' layers at their batch sizes) and
each op (forward, input gradient, weight gradient) it times every algorithm the automatic choice
considers (interleaved repetitions, medians) and reports the one the cost model picked, the fastest,
the regret (picked time / fastest time) and each algorithm's estimate / measured time, the number the
cost model's constants are fitted by. The geometric mean regret summarises it: 1.0 is a perfect choice.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import convolve.engine_config as ec
from convolve._engine import select
from convolve._engine.select import ALGORITHMS

from bench_conv import SUITE, _layer

HERE = Path(__file__).resolve().parent
OPS = ("forward", "grad_input", "grad_weight")
# the convolutions of bench_train's models at their batch sizes, as in SUITE
TRAINING = [
    ("CIFAR c1", (64, 3, 32, 32), 32, 3, 1, 1, 1, 1),
    ("CIFAR c2", (64, 32, 16, 16), 64, 3, 1, 1, 1, 1),
    ("CIFAR c3", (64, 64, 8, 8), 128, 3, 1, 1, 1, 1),
    ("LeNet c1 b128", (128, 1, 28, 28), 6, 5, 1, 2, 1, 1),
    ("LeNet c2 b128", (128, 6, 14, 14), 16, 5, 1, 0, 1, 1),
]


def problem(spec, dtype, seed=0):
    """(x padded, w, gy, stride, dilation, groups) of one layer (bench_conv's inputs and weights)."""
    _, nd, x, w, kw = _layer(spec, dtype, seed)
    s, p, d, g = kw["stride"], kw["padding"], kw["dilation"], kw["groups"]
    x = np.pad(x, ((0, 0), (0, 0)) + ((p, p),) * nd)
    outs = tuple((n - d * (k - 1) - 1) // s + 1 for n, k in zip(x.shape[2:], w.shape[2:]))
    gy = np.random.default_rng(seed + 1).standard_normal((x.shape[0], w.shape[0]) + outs).astype(dtype)
    return x, w, gy, (s,) * nd, (d,) * nd, g


def call(algo, op, x, w, gy, stride, dilation, groups):
    if op == "forward":
        return lambda: algo.forward(x, w, None, stride, dilation, groups)
    if op == "grad_input":
        return lambda: algo.grad_input(gy, w, x.shape, stride, dilation, groups)
    return lambda: algo.grad_weight(x, gy, w.shape, stride, dilation, groups)


def measure(spec, op, dtype, budget):
    x, w, gy, stride, dilation, groups = problem(spec, dtype)
    itemsize = np.dtype(dtype).itemsize
    names = select.candidates(op, x.shape, w.shape, stride, dilation, groups, itemsize)
    est = {n: select.estimate(n, op, x.shape, w.shape, stride, dilation, groups, itemsize) for n in names}
    picked = min(names, key=est.get)
    # algorithms estimated far slower than the pick are not timed (the direct sum of a large layer
    # would take seconds)
    timed = [n for n in names if est[n] <= max(20 * est[picked], 0.01) and est[n] < 0.5]
    fns = [call(ALGORITHMS[n], op, x, w, gy, stride, dilation, groups) for n in timed]
    t0 = time.perf_counter()
    for fn in fns:
        fn()
    reps = int(max(3, min(9, budget // max(time.perf_counter() - t0, 1e-9))))
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    measured = {n: statistics.median(t) for n, t in zip(timed, times)}
    best = min(measured, key=measured.get)
    return dict(layer=spec[0], op=op, dtype=np.dtype(dtype).name, picked=picked, best=best,
                regret=measured[picked] / measured[best],
                times_ms={n: round(t * 1e3, 4) for n, t in measured.items()},
                estimate_over_time={n: round(est[n] / measured[n], 3) for n in measured},
                shapes=dict(x=list(x.shape), w=list(w.shape), stride=list(stride), dilation=list(dilation), groups=groups))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of timing per layer and op")
    parser.add_argument("--layers", nargs="*", help="names of layers to run (default: all)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, help="JSON file for the results (default: none)")
    args = parser.parse_args()
    specs = [s for s in SUITE + TRAINING if not args.layers or s[0] in args.layers]
    rows = []
    with threadpool_limits(args.threads), ec.options(threads=args.threads):
        for spec in specs:
            for op in OPS:
                row = measure(spec, op, np.dtype(args.dtype), args.budget)
                rows.append(row)
                others = "  ".join(f"{n} {t:.2f}" for n, t in sorted(row["times_ms"].items(), key=lambda kv: kv[1]))
                flag = "" if row["regret"] < 1.1 else f"   <- regret {row['regret']:.2f}"
                print(f"{row['layer']:15s} {op:11s} picked {row['picked']:10s} | {others}{flag}", flush=True)
    geo = math.exp(sum(math.log(r["regret"]) for r in rows) / len(rows))
    worst = max(rows, key=lambda r: r["regret"])
    print(f"\ngeometric mean regret {geo:.3f} over {len(rows)} calls; worst {worst['regret']:.2f} "
          f"({worst['layer']} {worst['op']}: picked {worst['picked']}, fastest {worst['best']})")
    if args.out:
        args.out.write_text(json.dumps(dict(threads=args.threads, dtype=args.dtype, geomean_regret=geo, rows=rows),
                                       indent=1))


if __name__ == "__main__":
    main()
