"""Convolution speed: convolve vs PyTorch CPU, same process, same thread count, interleaved repetitions.

Run (the BLAS settings of the environment are unset for this command only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv.py

For each layer of the fixed suite (issue 5) and each dtype it reports the median time of the forward
pass and of the backward pass (input and weight gradients) for both libraries, the ratio
PyTorch-time / convolve-time (> 1: convolve is faster), the algorithm the engine chose, and the
geometric means. It also measures this machine's float32 GEMM rate (NumPy's BLAS, 2048^3) in the
same run and gives each float32 layer's rate (direct-convolution flops / time) as a share of it.
Results go to benchmarks/results/bench_conv.json and .md; `plot_speed.py` draws them.
``--threads 1`` runs both libraries on one thread; ``--report JSON`` rewrites a table; ``--tiers``
also times convolve with its compiled tier off (the NumPy twins), interleaved with the others.
"""

from __future__ import annotations

import os

# Idle library threads must sleep, not spin: interleaving two thread pools (OpenBLAS and PyTorch's
# OpenMP) on 2 cores otherwise makes each one wait for the other's spinning threads (measured: a 0.1 ms
# PyTorch conv took 30 ms right after a NumPy GEMM). Set before NumPy/PyTorch load; applies to both.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as TF
from threadpoolctl import threadpool_info, threadpool_limits

import convolve.engine_config as ec
import convolve.functional as F
from convolve import _engine
from convolve._engine.config import settings
from convolve._engine.select import choose

THREADS = 2
HERE = Path(__file__).resolve().parent

# name, spatial dims, input shape, (out_channels, kernel), stride, padding, dilation, groups
SUITE = [
    ("seed 5x5", (1, 3, 64, 64), 8, 5, 1, 2, 1, 1),
    ("LeNet c1", (64, 1, 28, 28), 6, 5, 1, 0, 1, 1),
    ("LeNet c2", (64, 6, 12, 12), 16, 5, 1, 0, 1, 1),
    ("R18 64@56 b1", (1, 64, 56, 56), 64, 3, 1, 1, 1, 1),
    ("R18 128@28 b1", (1, 128, 28, 28), 128, 3, 1, 1, 1, 1),
    ("R18 256@14 b1", (1, 256, 14, 14), 256, 3, 1, 1, 1, 1),
    ("R18 512@7 b1", (1, 512, 7, 7), 512, 3, 1, 1, 1, 1),
    ("R18 64@56 b8", (8, 64, 56, 56), 64, 3, 1, 1, 1, 1),
    ("R18 128@28 b8", (8, 128, 28, 28), 128, 3, 1, 1, 1, 1),
    ("R18 256@14 b8", (8, 256, 14, 14), 256, 3, 1, 1, 1, 1),
    ("R18 512@7 b8", (8, 512, 7, 7), 512, 3, 1, 1, 1, 1),
    ("3x3 s2 64>128", (8, 64, 56, 56), 128, 3, 2, 1, 1, 1),
    ("1x1 256>64", (8, 256, 56, 56), 64, 1, 1, 0, 1, 1),
    ("VGG conv1_2", (1, 64, 224, 224), 64, 3, 1, 1, 1, 1),
    ("MobileNet dw", (8, 128, 56, 56), 128, 3, 1, 1, 1, 128),
    ("dilated 3x3 d2", (8, 64, 56, 56), 64, 3, 1, 2, 2, 1),
    ("stem 7x7 s2", (8, 3, 224, 224), 64, 7, 2, 3, 1, 1),
    ("1-D k31", (16, 32, 16000), 32, 31, 1, 0, 1, 1),
    ("large 15x15", (4, 16, 128, 128), 16, 15, 1, 0, 1, 1),
]


def _conv_fns(nd):
    return getattr(F, f"conv{nd}d"), getattr(TF, f"conv{nd}d")


def _layer(spec, dtype, seed=0):
    name, xs, O, k, s, p, d, g = spec
    nd = len(xs) - 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal((O, xs[1] // g) + (k,) * nd) / math.sqrt(xs[1] // g * k**nd)).astype(dtype)
    return name, nd, x, w, dict(stride=s, padding=p, dilation=d, groups=g)


def _median_times(fns, reps):
    """Interleaved repetitions: each round runs every function once. Medians in seconds."""
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _reps(fns, budget):
    t0 = time.perf_counter()
    for fn in fns:  # warm-up (also the first autotune/plan costs, excluded)
        fn()
    one = time.perf_counter() - t0
    return int(max(3, min(15, budget // max(one, 1e-9))))


def gemm_rate(reps=5, n=2048):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b
    t = _median_times([lambda: a @ b], reps)[0]
    return 2 * n**3 / t


def pin_torch_threads():
    """PyTorch back on the engine's thread count. Imported first, PyTorch's OpenMP runtime is the one
    numba's OpenMP pool binds to, and that pool's start (convolve's first compiled parallel kernel) sets
    the runtime's thread count to numba's (NUMBA_NUM_THREADS): with ``--threads 1`` PyTorch then ran
    on 2 threads."""
    torch.set_num_threads(settings["threads"])
    if torch.get_num_threads() != settings["threads"]:
        raise RuntimeError(f"PyTorch runs {torch.get_num_threads()} threads, not {settings['threads']}")


def bench_layer(spec, dtype, budget, tiers=False):
    name, nd, x, w, kw = _layer(spec, dtype)
    ours, theirs = _conv_fns(nd)
    s, p, d, g = kw["stride"], kw["padding"], kw["dilation"], kw["groups"]
    S, Sn = (s,) * nd, (d,) * nd
    xp = np.pad(x, ((0, 0), (0, 0)) + ((p, p),) * nd)
    y = ours(x, w, **kw)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)

    def f_ours():
        ours(x, w, **kw)

    def f_torch():
        with torch.no_grad():
            theirs(tx, tw, **kw)

    pads = ((p, p),) * nd

    def b_ours():  # as autograd calls the engine: the unpadded x and its gradient, the padding passed along
        _engine.grad_input(gy, w, x.shape, S, Sn, g, padding=pads)
        _engine.grad_weight(x, gy, w.shape, S, Sn, g, padding=pads)

    def b_torch():
        torch.ops.aten.convolution_backward(tgy, tx, tw, None, [s] * nd, [p] * nd, [d] * nd, False, [0] * nd, g,
                                            [True, True, False])

    # correctness guard: a benchmark of wrong numbers is worthless
    ty = theirs(tx, tw, **kw).numpy()
    tol = 1e-3 if dtype == np.float32 else 1e-9
    err = float(np.max(np.abs(y - ty)) / max(1.0, np.max(np.abs(ty))))
    if err > tol:
        raise AssertionError(f"{name} {np.dtype(dtype).name}: forward differs from PyTorch by {err:.2e}")

    fs, bs = [f_ours, f_torch], [b_ours, b_torch]
    pin_torch_threads()
    if tiers:  # convolve with the compiled tier off (the NumPy twins, and the choice they get), interleaved too
        def off(fn):
            def run():
                with ec.options(jit=False):
                    fn()
            return run
        fs, bs = fs + [off(f_ours)], bs + [off(b_ours)]
    fwd = _median_times(fs, _reps(fs, budget))
    bwd = _median_times(bs, _reps(bs, budget))
    algos = {op: choose(op, sh, w.shape, S, Sn, g, dtype).name
             for op, sh in (("forward", xp.shape), ("grad_input", xp.shape), ("grad_weight", xp.shape))}
    flops = 2 * int(np.prod(y.shape)) * int(np.prod(w.shape[1:]))
    return dict(layer=name, dtype=np.dtype(dtype).name, x=list(x.shape), w=list(w.shape), **kw,
                fwd_ours=fwd[0], fwd_torch=fwd[1], bwd_ours=bwd[0], bwd_torch=bwd[1],
                fwd_ratio=fwd[1] / fwd[0], bwd_ratio=bwd[1] / bwd[0], algorithms=algos, flops=flops,
                fwd_gflops=flops / fwd[0] / 1e9, max_rel_err=err,
                **({"fwd_ours_nojit": fwd[2], "bwd_ours_nojit": bwd[2]} if tiers else {}))


def geomean(v):
    return math.exp(sum(math.log(a) for a in v) / len(v))


def machine(threads):
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
            for i in threadpool_info()]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), threads=threads, numpy=np.__version__, torch=torch.__version__,
                python=platform.python_version(), blas=blas, torch_config=torch.__config__.parallel_info().split("\n")[:6],
                OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE"), OPENBLAS_L2_SIZE=os.environ.get("OPENBLAS_L2_SIZE"),
                OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY"), OPENBLAS_THREAD_TIMEOUT=os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                load_average=os.getloadavg())


def markdown(res):
    m, peak = res["machine"], res["gemm_rate"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; {m['threads']} threads for both libraries; "
             f"BLAS {m['blas']}; NumPy {m['numpy']}, PyTorch {m['torch']}. float32 GEMM rate (NumPy, 2048³) "
             f"measured in the same run: {peak / 1e9:.0f} GFLOP/s.", "",
             "Ratio = PyTorch time / convolve time (> 1: convolve faster). Backward = input + weight gradients.", ""]
    for dt in ("float32", "float64"):
        rows = [r for r in res["layers"] if r["dtype"] == dt]
        if not rows:
            continue
        lines += [f"**{dt}**", "",
                  "| layer | algorithm (fwd / grad in / grad w) | fwd ms convolve | fwd ms torch | fwd ratio | "
                  "bwd ms convolve | bwd ms torch | bwd ratio | fwd GFLOP/s (% of float32 GEMM rate) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            a = r["algorithms"]
            lines.append(f"| {r['layer']} | {a['forward']} / {a['grad_input']} / {a['grad_weight']} | "
                         f"{r['fwd_ours'] * 1e3:.2f} | {r['fwd_torch'] * 1e3:.2f} | {r['fwd_ratio']:.2f} | "
                         f"{r['bwd_ours'] * 1e3:.2f} | {r['bwd_torch'] * 1e3:.2f} | {r['bwd_ratio']:.2f} | "
                         f"{r['fwd_gflops']:.0f}" + (f" ({100 * r['fwd_gflops'] * 1e9 / peak:.0f}%) |" if dt == "float32" else " |"))
        if "fwd_ours_nojit" in rows[0]:
            lines += ["", f"Compiled tier on vs off ({dt}, time off / time on, same run): " + ", ".join(
                f"{r['layer']} {r['fwd_ours_nojit'] / r['fwd_ours']:.2f} / {r['bwd_ours_nojit'] / r['bwd_ours']:.2f}"
                for r in rows) + f"; geometric mean forward **{geomean([r['fwd_ours_nojit'] / r['fwd_ours'] for r in rows]):.2f}**"
                f", backward **{geomean([r['bwd_ours_nojit'] / r['bwd_ours'] for r in rows]):.2f}**."]
        lines += ["", f"Geometric mean ratio {dt}: forward **{geomean([r['fwd_ratio'] for r in rows]):.2f}**, "
                      f"backward **{geomean([r['bwd_ratio'] for r in rows]):.2f}**; slowest forward layer "
                      f"{min(r['fwd_ratio'] for r in rows):.2f}.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--layers", default="", help="comma-separated substrings of layer names (default: all)")
    ap.add_argument("--budget", type=float, default=0.4, help="seconds per timing loop (sets repetitions)")
    ap.add_argument("--threads", type=int, default=THREADS, help="threads for both libraries (BLAS, FFT, PyTorch)")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_conv"))
    ap.add_argument("--report", metavar="JSON", help="only rewrite the markdown table of an earlier run's results")
    ap.add_argument("--tiers", action="store_true", help="also time convolve with the compiled tier off (CONVOLVE_JIT=0)")
    args = ap.parse_args(argv)
    if args.report:
        src = Path(args.report)
        _write(src.with_suffix(".md"), markdown(json.loads(src.read_text())))
        return 0
    threads = args.threads
    torch.set_num_threads(threads)
    settings["threads"] = threads
    wanted = [s for s in args.layers.split(",") if s]
    suite = [s for s in SUITE if not wanted or any(w in s[0] for w in wanted)]
    with threadpool_limits(threads):
        res = dict(machine=machine(threads), gemm_rate=gemm_rate(), layers=[])
        for dt in args.dtypes.split(","):
            for spec in suite:
                r = bench_layer(spec, np.dtype(dt).type, args.budget, args.tiers)
                res["layers"].append(r)
                print(f"{r['layer']:16s} {dt:8s} fwd {r['fwd_ours'] * 1e3:8.2f} ms vs {r['fwd_torch'] * 1e3:8.2f} "
                      f"(x{r['fwd_ratio']:.2f})  bwd {r['bwd_ours'] * 1e3:8.2f} vs {r['bwd_torch'] * 1e3:8.2f} "
                      f"(x{r['bwd_ratio']:.2f})  {r['algorithms']['forward']}" +
                      (f"  tier off: fwd {r['fwd_ours_nojit'] * 1e3:.2f} bwd {r['bwd_ours_nojit'] * 1e3:.2f}" if args.tiers else ""),
                      flush=True)
        res["gemm_rate_end"] = gemm_rate()
    md = markdown(res)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out.with_suffix(".json"), json.dumps(res, indent=1))
    _write(out.with_suffix(".md"), md)
    return 0


def _write(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
