"""Fixed costs: the per-call overhead of a small functional conv and autograd's per-step overhead.

Both measured on work so small that the arithmetic is negligible, against PyTorch in this process
(same thread count), interleaved, best of `--reps` timings of `--calls` calls each:

- ``conv2d``: F.conv2d on ndarrays (1, 1, 8, 8) * (1, 1, 3, 3), with and without padding (checks,
  algorithm choice, allocation; PyTorch's conv2d on tensors);
- ``step``: one training step of a tiny MLP (Linear 8-8, ReLU, Linear 8-2, cross-entropy, SGD) on a
  batch of 4: recording, backward walk, gradient accumulation, optimiser; and one of a tiny Conv2d
  (1 -> 2 channels, 3x3, padding 1, on 1x1x8x8; sum; SGD): the conv module's call, its weight and
  bias gradients.

``--profile`` then prints the cProfile of convolve's small conv call, by own time.

    python benchmarks/bench_overhead.py [--threads 1] [--calls 2000] [--reps 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np


def best_time(fn, calls, reps):
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def conv_calls():
    import torch

    import convolve.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    return {
        "conv2d 8x8 * 3x3": (lambda: F.conv2d(x, w), lambda: torch.nn.functional.conv2d(tx, tw)),
        "conv2d 8x8 * 3x3, padding=1": (lambda: F.conv2d(x, w, padding=1),
                                        lambda: torch.nn.functional.conv2d(tx, tw, padding=1)),
    }


def step_calls():
    import torch

    import convolve.functional as F
    from convolve import Tensor, nn, optim

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    y = rng.integers(0, 2, 4)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tmodel = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def ours():
        opt.zero_grad()
        F.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()

    def theirs():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    cx = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    conv = nn.Conv2d(1, 2, 3, padding=1)
    copt = optim.SGD(conv.parameters(), lr=0.01, momentum=0.9)
    tconv = torch.nn.Conv2d(1, 2, 3, padding=1)
    tcopt = torch.optim.SGD(tconv.parameters(), lr=0.01, momentum=0.9)
    tcx = torch.from_numpy(cx)

    def ours_conv():
        copt.zero_grad()
        conv(Tensor(cx)).sum().backward()
        copt.step()

    def theirs_conv():
        tcopt.zero_grad()
        tconv(tcx).sum().backward()
        tcopt.step()

    return {"training step, tiny MLP": (ours, theirs), "training step, tiny Conv2d": (ours_conv, theirs_conv)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        cases = {**conv_calls(), **step_calls()}
        print(f"{'':<32} {'convolve':>10} {'torch':>10} {'ratio':>7}   (best of {args.reps} x {args.calls} calls)")
        for name, (ours, theirs) in cases.items():
            for _ in range(50):  # warm-up
                ours(), theirs()
            t_ours, t_theirs = 0.0, 0.0
            t_ours = best_time(ours, args.calls, args.reps)
            t_theirs = best_time(theirs, args.calls, args.reps)
            print(f"{name:<32} {t_ours * 1e6:8.1f}us {t_theirs * 1e6:8.1f}us {t_ours / t_theirs:6.1f}x")
        if args.profile:
            ours = cases["conv2d 8x8 * 3x3, padding=1"][0]
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.calls):
                ours()
            prof.disable()
            print("\nconvolve's conv2d(padding=1) under cProfile, by own time:")
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
