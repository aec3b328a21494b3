"""ONNX inference speed: a ResNet-18 (random weights) at 224x224, batch 1 and 8, run by convolve.onnx,
onnxruntime and onnx.reference in one process, 2 threads each, interleaved repetitions (two
protocols: runtimes alternating call by call, in blocks of calls, and in blocks of calls each after a
pause; see `time_all`).

Run (the BLAS settings of the environment are unset for this command only)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_onnx.py

Reports the median time per batch of each runtime, the ratios (onnxruntime-time / convolve-time: the
share of onnxruntime's speed convolve reaches; reference-time / convolve-time), the largest output
difference, and each runtime's peak memory in a fresh process per runtime and batch: the peak resident
memory over loading the model and running it, above the process after its imports, and the peak of
one more call above the memory just before it (Linux: the peak is reset through /proc/self/clear_refs).
Results go to benchmarks/results/bench_onnx.json. ``--profile`` instead prints convolve's inference
plan step by step (median time of each fused step and the algorithm of each convolution).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

THREADS = int(os.environ.get("CONVOLVE_BENCH_THREADS", "2"))
HERE = Path(__file__).resolve().parent


def _set_threads(n):
    global THREADS
    THREADS = n
    os.environ["CONVOLVE_BENCH_THREADS"] = str(n)  # the memory subprocesses run with the same count


def resnet18_onnx(path):
    """torchvision's ResNet-18 layout, written out here (no torchvision), exported with a dynamic batch."""
    import torch
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, c, o, s):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)
            self.conv2, self.bn2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
            self.downsample = (nn.Sequential(nn.Conv2d(c, o, 1, s, bias=False), nn.BatchNorm2d(o))
                               if s != 1 or c != o else None)

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, c = [], 64
            for o, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(nn.Sequential(Basic(c, o, s), Basic(o, o, 1)))
                c = o
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    net = ResNet18().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 224, 224), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


def runtimes(path, only=None):
    """name -> callable(x) -> output array, each limited to THREADS threads (`only`: just that one)."""
    import onnx
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator
    from threadpoolctl import threadpool_limits

    import convolve
    import convolve.onnx

    threadpool_limits(THREADS)
    convolve.engine_config.set_threads(THREADS)
    model = convolve.onnx.load(path) if only in (None, "convolve", "convolve autotune") else None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]) if only in (
        None, "onnxruntime") else None
    ref = ReferenceEvaluator(onnx.load(str(path))) if only in (None, "onnx.reference") else None

    def ours(x):
        with convolve.no_grad():
            return model(x).data

    def tuned(x):  # the engine measures each layer's algorithms once, then reuses the fastest
        with convolve.engine_config.options(autotune=True), convolve.no_grad():
            return model(x).data

    fns = {"convolve": ours, "convolve autotune": tuned, "onnxruntime": lambda x: sess.run(None, {"x": x})[0],
           "onnx.reference": lambda x: ref.run(None, {"x": x})[0]}
    return fns if only is None else {only: fns[only]}


BLOCK = 5  # timed calls in a row per runtime in the "blocks" protocol ...
LEAD_IN = 2  # ... after this many untimed ones: the other runtime's spinning threads still hold the cores
PAUSE = 0.1  # seconds idle before each call in the "spaced" protocol


def _rounds(fns, x, reps, ref_reps, block, pause=0.0, lead_in=0):
    """Seconds of every timed call: `reps` rounds, each runtime in turn making `lead_in` untimed calls
    and then `block` timed calls in a row, each after `pause` seconds idle (onnx.reference: one timed
    call, in its first `ref_reps` rounds)."""
    times = {name: [] for name in fns}
    for r in range(reps):
        for name, fn in fns.items():
            if name == "onnx.reference" and r >= ref_reps:
                continue
            for _ in range(0 if name == "onnx.reference" else lead_in):
                fn(x)
            for _ in range(1 if name == "onnx.reference" else block):
                time.sleep(pause)
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
    return times


def time_all(path, batches, reps, ref_reps):
    """Three protocols per batch, all interleaving the runtimes so that a change in the machine's load
    reaches them alike. "alternating": one call each in turn, so every call follows another runtime's
    (cold caches; onnxruntime's threads, which spin by default, are still spinning when the next call
    starts: measured 8 ms added to convolve's batch-1 call). "blocks": `BLOCK` timed calls each in turn,
    after `LEAD_IN` untimed ones, as a program calling one runtime repeatedly sees it (measured at batch
    1 with all calls timed, convolve's five calls after onnxruntime's took 23.7, 21.7, 16.6, 15.9 and
    15.9 ms, and 17.2, 16.4, 16.9, 16.8 and 16.7 ms with onnxruntime's spinning switched off, which made
    onnxruntime 6% slower: its threads spin for some 40 ms after its last call). "spaced": as "blocks", each
    call after `PAUSE` seconds idle, as a server answering occasional requests sees it (threads asleep;
    measured on a 2-CPU VM, convolve's calling and pool threads then share one CPU: docs/onnx.md)."""
    fns = runtimes(path)
    results = {}
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        outs = {name: fn(x) for name, fn in fns.items()}  # warm-up, and the outputs to compare
        diff = {k: float(np.max(np.abs(outs[k] - outs["onnxruntime"]))) for k in fns}
        results[batch] = {"max_abs_diff_vs_onnxruntime": diff}
        for protocol, block, rounds, pause, lead in (("blocks", BLOCK, max(1, reps // 2), 0.0, LEAD_IN),
                                                     ("alternating", 1, reps, 0.0, 0),
                                                     ("spaced", BLOCK, max(1, reps // 2), PAUSE, 0)):
            times = _rounds(fns, x, rounds, ref_reps if protocol == "blocks" else 0, block, pause, lead)
            med = {k: statistics.median(v) for k, v in times.items() if v}
            if "onnx.reference" not in med:  # timed once, in the first protocol
                med["onnx.reference"] = results[batch]["blocks"]["median_s"]["onnx.reference"]
            res = {"median_s": med, "calls": {k: len(v) for k, v in times.items()},
                   "ort_over_convolve": med["onnxruntime"] / med["convolve"],
                   "ort_over_convolve_autotune": med["onnxruntime"] / med["convolve autotune"],
                   "reference_over_convolve": med["onnx.reference"] / med["convolve"]}
            results[batch][protocol] = res
            print(f"batch {batch}, {protocol}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in med.items())
                  + f"; convolve reaches {res['ort_over_convolve']:.2f}x onnxruntime's speed and runs "
                  f"{res['reference_over_convolve']:.1f}x faster than onnx.reference (autotune: "
                  f"{res['ort_over_convolve_autotune']:.2f}x onnxruntime)", flush=True)
    return results


def profile(path, batch, reps):
    """convolve's inference plan step by step (what runs under no_grad): the median seconds of each
    step over `reps` calls, and for each convolution the algorithm the cost model picks."""
    import convolve
    import convolve.onnx
    from threadpoolctl import threadpool_limits

    threadpool_limits(THREADS)
    convolve.engine_config.set_threads(THREADS)
    model = convolve.onnx.load(path)
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    shapes, times = {}, {}
    convs = {s.name: getattr(s.fn, "conv", s.fn) for s in model._fast_steps if s.op.startswith("Conv")}
    for step in model._fast_steps:  # the plan's steps, timed in place (a benchmark may look inside)
        def timed(*args, _fn=step.fn, _step=step):
            t0 = time.perf_counter()
            out = _fn(*args)
            times.setdefault(_step.name, []).append(time.perf_counter() - t0)
            shapes[_step.name] = np.shape(getattr(args[0], "data", args[0]))
            return out
        step.fn = timed
    with convolve.no_grad():
        for _ in range(reps + 1):
            model(x)
    rows = []
    for step in model._fast_steps:
        conv = convs.get(step.name)
        algo = ""
        if conv is not None:
            n, c, *hw = shapes[step.name]
            padded = (n, c) + tuple(h + a + b for h, (a, b) in zip(hw, conv.pads))
            algo = convolve.engine_config.choose_algorithm(padded, conv.weight.shape, conv.stride, conv.dilation,
                                                           conv.groups, constant_weights=True)
        rows.append((step.op, step.name, statistics.median(times[step.name][1:]), algo))
    total = sum(r[2] for r in rows)
    print(f"batch {batch}, {THREADS} thread(s): per-step medians of {reps} calls (sum {total * 1e3:.1f} ms)")
    for op, name, t, algo in rows:
        print(f"  {op:32s} {name[-36:]:36s} {t * 1e3:8.2f} ms {100 * t / total:5.1f}%  {algo}")
    return rows


def _status_kib(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure_peak(path, name, batch):
    """In this (fresh) process, in MiB: (peak over loading the model and one call, above the process
    after its imports; peak of one call above the memory just before it)."""
    import onnx  # noqa: F401 -- imports are not what is measured
    import onnxruntime  # noqa: F401
    import onnx.reference  # noqa: F401
    import convolve.onnx  # noqa: F401

    x = np.zeros((batch, 3, 224, 224), np.float32)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    base = _status_kib("VmRSS")
    fn = runtimes(path, only=name)[name]
    if name == "convolve autotune":
        fn(x)  # the tuning runs once; then a tuned call
    before = _status_kib("VmRSS")
    fn(x)
    total = _status_kib("VmHWM") - base
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn(x)
    return total / 1024, (_status_kib("VmHWM") - before) / 1024


def peak_memory(path, name, batch):
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_onnx as b;"
            f"print(*b.measure_peak({str(path)!r}, {name!r}, {batch}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()[-2:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--ref-reps", type=int, default=1, help="repetitions of the slow onnx.reference")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads per runtime (default {THREADS})")
    parser.add_argument("--out", help="JSON file to write (default benchmarks/results/bench_onnx[_Nthread].json)")
    parser.add_argument("--profile", action="store_true",
                        help="only print convolve's per-step times (no comparison, nothing written)")
    args = parser.parse_args()
    _set_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resnet18.onnx"
            resnet18_onnx(path)
            for batch in batches:
                profile(path, batch, args.reps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        resnet18_onnx(path)
        results = time_all(path, batches, args.reps, args.ref_reps)
        if not args.no_memory:
            for batch in batches:
                mem = {name: peak_memory(path, name, batch) for name in ("convolve", "convolve autotune", "onnxruntime",
                                                                        "onnx.reference")}
                results[batch]["peak_memory_mib"] = mem
                print(f"batch {batch} peak memory (load + call; one call): "
                      + ", ".join(f"{k} {a:.0f} MiB; {b:.0f} MiB" for k, (a, b) in mem.items()), flush=True)
    out = Path(args.out) if args.out else HERE / "results" / ("bench_onnx.json" if THREADS == 2 else
                                                              f"bench_onnx_{THREADS}thread.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"threads": THREADS, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
