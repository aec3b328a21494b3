"""Training throughput of the issue's CNN in convolve vs PyTorch CPU, and where convolve's time goes.

Model: conv32-relu-pool-conv64-relu-pool-fc128-relu-fc10 on 1x28x28 (the ``lenet`` preset), Adam,
cross-entropy, batch 128, real Fashion-MNIST images from the embedded subset. Both frameworks run in
this process with the same thread count (torch.set_num_threads and threadpoolctl for NumPy's BLAS),
start from the same weights, and alternate: each repetition times `steps` training steps of one
then the other. Reported: median images/s of each and the ratio.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py [--threads 2]
        [--reps 7] [--steps 5] [--profile 20]

``--profile N`` then runs N convolve steps under cProfile and splits the time into exclusive
buckets: every function's own time goes to the convolve part it belongs to (conv forward, conv
input/weight gradients, pooling, loss, optimiser, ...); time spent inside NumPy or other libraries
is charged to the convolve function that called it (shared proportionally along the call graph).
"""

from __future__ import annotations

import os

# Idle library threads must sleep, not spin, when two thread pools (OpenBLAS, PyTorch's OpenMP) take
# turns on 2 cores (as in bench_conv.py). Set before NumPy/PyTorch load; applies to both.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import cProfile
import platform
import pstats
import statistics
import time
from collections import defaultdict

import numpy as np


def machine(threads):
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernel, "
            f"{i.get('num_threads')} threads)" for i in threadpool_info() if i.get("user_api") == "blas"]
    return f"{cpu}; {os.cpu_count()} CPUs; {threads} threads; BLAS: {', '.join(blas) or 'unknown'}"


def batches(batch, count, seed=0):
    from convolve.data import DataLoader, load_default

    train, _ = load_default()
    loader = DataLoader(train, batch, shuffle=True, seed=seed, drop_last=True, normalize=(0.286, 0.353))
    out = []
    while len(out) < count:
        out.extend(loader)
    return out[:count]


def convolve_setup(seed=0):
    import convolve.functional as F
    from convolve import Tensor, optim
    from convolve.nn import init
    from convolve.training import build_model, model_config

    init.seed(seed)
    model = build_model(model_config("lenet", 1, (28, 28), 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return model, step


def torch_setup(state):
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def timed(step, data):
    start = time.perf_counter()
    for x, y in data:
        step(x, y)
    return time.perf_counter() - start


# --- profile buckets ---------------------------------------------------------------------------

ENGINE_OPS = {"forward": "conv forward (engine)", "grad_input": "conv input gradient (engine)",
              "grad_weight": "conv weight gradient (engine)"}
FILES = [
    ("functional/conv.py", "conv glue: padding, layout, recording"),
    ("functional/pool.py", "max pooling (forward + backward)"),
    ("functional/loss.py", "cross-entropy loss"),
    ("functional/activation.py", "relu"),
    ("functional/norm.py", "linear (matmul forward + backward)"),
    ("functional/linear.py", "linear (matmul forward + backward)"),
    ("/optim/", "optimiser step (Adam)"),
    ("/data/", "data loading"),
    ("/nn/", "module calls"),
    ("autograd.py", "autograd: tape walk, reshape/flatten, grad accumulation"),
]


def bucket(func):
    """The bucket of a profiled function, or None to charge its time to its callers."""
    filename, _, name = func
    filename = filename.replace(os.sep, "/")
    if "/convolve/" not in filename:
        return "harness" if filename.endswith("bench_train.py") else None
    if "/_engine/" in filename:
        return ENGINE_OPS.get(name)  # helpers (im2col, windows, ...) go to the op that called them
    for part, label in FILES:
        if part in filename:
            return label
    return "other convolve code"


def attribute(stats):
    """Exclusive seconds per bucket: own time plus the library time charged up the call graph."""
    raw = stats.stats  # func -> (cc, nc, tt, ct, callers{caller: (cc, nc, tt, ct)})
    memo = {}

    def shares(func, depth=0):
        if func in memo:
            return memo[func]
        label = bucket(func)
        if label is not None:
            result = {label: 1.0}
        elif depth > 40 or func not in raw or not raw[func][4]:
            result = {"unattributed": 1.0}
        else:
            callers = raw[func][4]
            total = sum(c[3] for c in callers.values()) or 1.0  # split by time spent under each caller
            result = defaultdict(float)
            for caller, c in callers.items():
                if caller == func:
                    continue
                for k, v in shares(caller, depth + 1).items():
                    result[k] += v * c[3] / total
        memo[func] = result
        return result

    out = defaultdict(float)
    for func, (_, _, tt, _, _) in raw.items():
        for k, v in shares(func).items():
            out[k] += tt * v
    return out


def profile(steps, batch):
    _, step = convolve_setup()
    data = batches(batch, steps + 2, seed=1)
    for x, y in data[:2]:
        step(x, y)
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    for x, y in data[2:]:
        step(x, y)
    prof.disable()
    wall = time.perf_counter() - start
    parts = attribute(pstats.Stats(prof))
    total = sum(parts.values())
    print(f"\nprofile of {steps} convolve training steps (batch {batch}): {wall:.2f} s wall "
          f"under cProfile, {total:.2f} s attributed")
    for label, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<58} {seconds / steps * 1e3:8.1f} ms/step  {100 * seconds / total:5.1f}%")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N convolve steps")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        print(machine(args.threads))
        print(f"numpy {np.__version__}, torch {torch.__version__}")
        model, conv_step = convolve_setup()
        torch_step = torch_setup(model.state_dict())
        data = batches(args.batch, args.steps)
        for x, y in data[:2]:  # warm-up: allocations, BLAS thread start, lazy imports
            conv_step(x, y)
            torch_step(x, y)
        rates = {"convolve": [], "torch": []}
        for rep in range(args.reps):
            order = [("convolve", conv_step), ("torch", torch_step)]
            for name, step in order if rep % 2 == 0 else order[::-1]:
                rates[name].append(args.steps * args.batch / timed(step, data))
        med = {k: statistics.median(v) for k, v in rates.items()}
        for name, values in rates.items():
            print(f"{name:>9}: median {med[name]:7.0f} img/s  (reps: {', '.join(f'{v:.0f}' for v in values)})")
        print(f"ratio convolve / torch: {med['convolve'] / med['torch']:.2f}x  "
              f"(batch {args.batch}, {args.reps} interleaved reps of {args.steps} steps)")
        if args.profile:
            profile(args.profile, args.batch)


if __name__ == "__main__":
    main()
