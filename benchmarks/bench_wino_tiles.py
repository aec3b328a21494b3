"""Winograd F(4x4, 3x3) tile transforms alone: the compiled kernels' serial twins on real layers' blocks.

Run (one thread, as a lane runs them)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_wino_tiles.py

For each layer it builds the blocks `_conv_jit` builds (`F4._jit_runs`), runs every block through each
transform (`input_tiles`, `output_tiles`, `grad_tiles`, or their dilated forms) with interleaved
repetitions, and prints the median seconds per layer, per transformed element and per byte of
transformed tiles (float32). These per-byte rates are what the cost model's ``JIT_TILE_BYTE``
(`convolve._engine.winograd`) stands for: input plus output transform per byte of V and M.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from convolve._engine.kernels import winograd as kw
from convolve._engine.winograd import F4

# name, (N, C, H, W), dilation (padding = dilation: the output keeps the input's size)
LAYERS = [("R18 64@56 b8", (8, 64, 56, 56), 1), ("R18 128@28 b8", (8, 128, 28, 28), 1),
          ("R18 256@14 b8", (8, 256, 14, 14), 1), ("R18 512@7 b8", (8, 512, 7, 7), 1),
          ("VGG conv1_2", (1, 64, 224, 224), 1), ("dilated 3x3 d2", (8, 64, 56, 56), 2),
          ("d2 256@28 b8", (8, 256, 28, 28), 2)]
KINDS = ("input", "output", "grad")


def _calls(kind, x, d, runs, V, Y, bias):
    """(kernel, args) for every block of the layer."""
    C, out = x.shape[1], []
    for ph, tws, blocks in runs:
        for n0, n1, t0, t1 in blocks:
            T = (n1 - n0) * (t1 - t0) * int(tws.sum())
            Vf = V[: 36 * C * T].reshape(36, C, T)
            if d == 1:
                TW = int(tws[0])
                out.append({"input": (kw.input_tiles.serial, (x, 1, n0, n1, t0, t1, TW, Vf)),
                            "output": (kw.output_tiles.serial, (Vf, bias, n0, n1, t0, t1, TW, Y)),
                            "grad": (kw.grad_tiles.serial, (x, n0, n1, t0, t1, TW, Vf))}[kind])
            else:
                out.append({"input": (kw.input_tiles_dilated.serial, (x, d, ph, d, d, tws, n0, n1, t0, t1, Vf)),
                            "output": (kw.output_tiles_dilated.serial, (Vf, bias, ph, d, d, tws, n0, n1, t0, t1, Y)),
                            "grad": (kw.grad_tiles_dilated.serial, (x, ph, d, d, tws, n0, n1, t0, t1, Vf))}[kind])
    return out


def bench(shape, d, reps):
    """{kind: median seconds for the whole layer}, and the transformed elements per transform."""
    N, C, H, W = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)  # also the output gradient (same shape)
    runs = F4._jit_runs((H, W), 1, (d, d), N, C, C, 4, C)  # grid padding 1 (padding = dilation)
    tiles = [(n1 - n0) * (t1 - t0) * int(tws.sum()) for _, tws, blocks in runs for n0, n1, t0, t1 in blocks]
    V = rng.standard_normal(36 * C * max(tiles)).astype(np.float32)
    Y = np.empty(shape, np.float32)
    calls = {k: _calls(k, x, d, runs, V, Y, np.zeros(C, np.float32)) for k in KINDS}
    times = {k: [] for k in KINDS}
    for rep in range(reps + 1):  # the first round compiles / warms up
        for k in KINDS:
            t = time.perf_counter()
            for fn, args in calls[k]:
                fn(*args)
            if rep:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}, 36 * C * sum(tiles)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--layers", default="", help="comma-separated substrings of layer names (default: all)")
    args = ap.parse_args()
    keep = [s for s in args.layers.split(",") if s]
    print("layer            " + "  ".join(f"{k:>22s}" for k in KINDS) + "   in+out ns/byte")
    with threadpool_limits(1):
        for name, shape, d in LAYERS:
            if keep and not any(s in name for s in keep):
                continue
            t, el = bench(shape, d, args.reps)
            cells = "  ".join(f"{t[k] * 1e3:7.3f} ms {t[k] / el * 1e9:5.3f} ns/el" for k in KINDS)
            print(f"{name:16s} {cells}   {(t['input'] + t['output']) / (8 * el) * 1e9:.3f}", flush=True)


if __name__ == "__main__":
    main()
