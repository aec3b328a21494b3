"""Training throughput and memory of two CNNs in convolve vs PyTorch CPU, and where convolve's time goes.

Models (``--model``):

- ``lenet``: conv32-relu-pool-conv64-relu-pool-fc128-relu-fc10 on 1x28x28 (the ``lenet`` preset), Adam,
  cross-entropy, batch 128, real Fashion-MNIST images from the embedded subset;
- ``cifar``: a CIFAR-shaped CNN with BatchNorm, three conv3x3-BN-ReLU-maxpool stages (32, 64, 128
  channels) and a linear classifier on 3x32x32, SGD (lr 0.05, momentum 0.9), batch 64, seeded random
  images and labels (the speed does not depend on the values).

Both frameworks run in this process with the same thread count (torch.set_num_threads and
threadpoolctl for NumPy's BLAS), start from the same weights, and alternate: each repetition times
`steps` training steps of one then the other. Reported: median images/s of each and the ratio.
``--memory`` then runs each library's steps in a fresh subprocess and reports the peak RSS a step
adds over the process after its set-up (model, optimiser, data), and the whole process's peak.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py [--model lenet|cifar|both]
        [--threads 2] [--reps 7] [--steps 5] [--memory] [--profile 20]

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
import json
import platform
import pstats
import statistics
import subprocess
import sys
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


def batches(model, batch, count, seed=0):
    """`count` (images, labels) batches for `model`: Fashion-MNIST for lenet, random CIFAR-shaped for cifar."""
    if model == "cifar":
        rng = np.random.default_rng(seed)
        return [(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32),
                 rng.integers(0, 10, batch).astype(np.int64)) for _ in range(count)]
    from convolve.data import DataLoader, load_default

    train, _ = load_default()
    loader = DataLoader(train, batch, shuffle=True, seed=seed, drop_last=True, normalize=(0.286, 0.353))
    out = []
    while len(out) < count:
        out.extend(loader)
    return out[:count]


def cifar_layers(nn, bias_free_conv):
    """The CIFAR-shaped CNN's layers, from either library's `nn` (same names, same state_dict keys)."""
    layers = []
    for cin, cout in ((3, 32), (32, 64), (64, 128)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=not bias_free_conv), nn.BatchNorm2d(cout), nn.ReLU(),
                   nn.MaxPool2d(2)]
    return layers + [nn.Flatten(), nn.Linear(128 * 4 * 4, 10)]


def convolve_setup(model_name="lenet", seed=0):
    import convolve.functional as F
    from convolve import Tensor, nn, optim
    from convolve.nn import init
    from convolve.training import build_model, model_config

    init.seed(seed)
    if model_name == "cifar":
        model = nn.Sequential(*cifar_layers(nn, True))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        model = build_model(model_config("lenet", 1, (28, 28), 10))
        opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return model, step


def torch_setup(model_name, state):
    import torch
    from torch import nn

    if model_name == "cifar":
        model = nn.Sequential(*cifar_layers(nn, True))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip
    if state is not None:
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    if model_name == "cifar":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
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
    ("functional/pool.py", "max pooling, ReLU fused (forward + backward)"),
    ("functional/loss.py", "cross-entropy loss"),
    ("functional/activation.py", "relu"),
    ("functional/norm.py", "linear and batch norm (forward + backward)"),
    ("functional/linear.py", "linear (matmul forward + backward)"),
    ("/optim/", "optimiser step"),
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
        if filename.endswith(("/kernels/direct.py", "/kernels/winograd.py")):  # conv kernels: charged to the op
            return None
        if "/_engine/kernels/" in filename or filename.endswith(("/_engine/pooling.py", "/_engine/norm.py", "/_engine/eltwise.py")):
            return "compiled pooling / batch norm / ReLU kernels"
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


def profile(model_name, steps, batch):
    _, step = convolve_setup(model_name)
    data = batches(model_name, batch, steps + 2, seed=1)
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
    print(f"\nprofile of {steps} convolve training steps ({model_name}, batch {batch}): {wall:.2f} s wall "
          f"under cProfile, {total:.2f} s attributed")
    for label, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<58} {seconds / steps * 1e3:8.1f} ms/step  {100 * seconds / total:5.1f}%")


def _status_bytes(key):
    """VmRSS / VmHWM (peak RSS) of this process from /proc (ru_maxrss would include the parent's peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def set_threads(threads):
    """The same thread count for convolve's own threads and its compiled kernels as for the BLAS."""
    from convolve import engine_config
    from convolve._engine import kernels

    engine_config.set_threads(threads)
    if kernels.available():
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def memory_worker(library, model_name, batch, steps, threads):
    """Run in a fresh process: RSS after set-up, then the peak over `steps` training steps (JSON to stdout)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        data = batches(model_name, batch, steps)
        if library == "torch":
            import torch

            torch.set_num_threads(threads)
            step = torch_setup(model_name, None)
        else:
            set_threads(threads)
            _, step = convolve_setup(model_name)
        base = _status_bytes("VmRSS")
        for x, y in data:
            step(x, y)
        peak = _status_bytes("VmHWM")
    print(json.dumps({"base": base, "peak": peak}))


def memory(model_name, batch, threads, steps=3):
    result = {}
    for library in ("convolve", "torch"):
        out = subprocess.run([sys.executable, __file__, "--memory-worker", library, "--model", model_name,
                              "--batch", str(batch), "--threads", str(threads), "--steps", str(steps)],
                             check=True, capture_output=True, text=True)
        result[library] = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 2.0**20
    print(f"peak RSS over {steps} steps ({model_name}, batch {batch}), a fresh process each:")
    for library, r in result.items():
        print(f"  {library:>9}: step adds {(r['peak'] - r['base']) / mib:7.1f} MiB over set-up "
              f"({r['base'] / mib:.0f} MiB); process peak {r['peak'] / mib:.0f} MiB")
    c, t = result["convolve"], result["torch"]
    print(f"  ratio convolve / torch: step {(c['peak'] - c['base']) / max(1, t['peak'] - t['base']):.2f}x, "
          f"process peak {c['peak'] / t['peak']:.2f}x")


def throughput(model_name, args):
    import torch

    batch = args.batch or (64 if model_name == "cifar" else 128)
    model, conv_step = convolve_setup(model_name)
    torch_step = torch_setup(model_name, model.state_dict())
    data = batches(model_name, batch, args.steps)
    for x, y in data[:2]:  # warm-up: allocations, BLAS thread start, lazy imports, kernel compilation
        conv_step(x, y)
        torch_step(x, y)
    # numba's OpenMP pool, started by the warm-up, binds to PyTorch's OpenMP runtime (imported first) and
    # sets its thread count to numba's: PyTorch back on args.threads
    torch.set_num_threads(args.threads)
    if torch.get_num_threads() != args.threads:
        raise RuntimeError(f"PyTorch runs {torch.get_num_threads()} threads, not {args.threads}")
    rates = {"convolve": [], "torch": []}
    for rep in range(args.reps):
        order = [("convolve", conv_step), ("torch", torch_step)]
        for name, step in order if rep % 2 == 0 else order[::-1]:
            rates[name].append(args.steps * batch / timed(step, data))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\n{model_name} (batch {batch}):")
    for name, values in rates.items():
        print(f"{name:>9}: median {med[name]:7.0f} img/s  (reps: {', '.join(f'{v:.0f}' for v in values)})")
    print(f"ratio convolve / torch: {med['convolve'] / med['torch']:.2f}x  "
          f"({args.reps} interleaved reps of {args.steps} steps)")
    return batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["lenet", "cifar", "both"], default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=0, help="default: 128 for lenet, 64 for cifar")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="peak RSS of a step, each library in a fresh process")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N convolve steps")
    parser.add_argument("--memory-worker", choices=["convolve", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = ["lenet", "cifar"] if args.model == "both" else [args.model]
    if args.memory_worker:
        memory_worker(args.memory_worker, models[0], args.batch or (64 if models[0] == "cifar" else 128),
                      args.steps, args.threads)
        return

    import torch
    from threadpoolctl import threadpool_limits

    from convolve import engine_config

    torch.set_num_threads(args.threads)
    set_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        print(machine(args.threads))
        print(f"numpy {np.__version__}, torch {torch.__version__}, compiled kernels: {engine_config.get_jit()}")
        for model_name in models:
            batch = throughput(model_name, args)
            if args.memory:
                memory(model_name, batch, args.threads)
            if args.profile:
                profile(model_name, args.profile, batch)


if __name__ == "__main__":
    main()
