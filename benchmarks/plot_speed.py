"""Draw the benchmark's ratios: benchmarks/results/bench_conv.json -> benchmarks/results/speed.png.

    python benchmarks/plot_speed.py [results.json] [out.png]

One panel per dtype; per layer the forward and backward ratio PyTorch-time / convolve-time on a
log axis (bars above 1: convolve faster), the geometric means in the legend.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def geomean(v):
    return math.exp(sum(math.log(a) for a in v) / len(v))


def plot(res, out):
    dtypes = [d for d in ("float32", "float64") if any(r["dtype"] == d for r in res["layers"])]
    fig, axes = plt.subplots(len(dtypes), 1, figsize=(12, 4.2 * len(dtypes)), squeeze=False)
    for ax, dt in zip(axes[:, 0], dtypes):
        rows = [r for r in res["layers"] if r["dtype"] == dt]
        x = np.arange(len(rows))
        f = [r["fwd_ratio"] for r in rows]
        b = [r["bwd_ratio"] for r in rows]
        ax.bar(x - 0.2, f, 0.4, label=f"forward (geomean {geomean(f):.2f})", color="#3b75af")
        ax.bar(x + 0.2, b, 0.4, label=f"backward (geomean {geomean(b):.2f})", color="#ef8636")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r['layer']}\n{r['algorithms']['forward']}" for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("PyTorch time / convolve time")
        ax.set_title(f"{dt}: convolve vs PyTorch CPU, {res['machine']['threads']} threads ({res['machine']['cpu']})", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0]) if argv else HERE / "results" / "bench_conv.json"
    out = Path(argv[1]) if len(argv) > 1 else HERE / "results" / "speed.png"
    if not src.exists():
        raise SystemExit(f"no results at {src}; run benchmarks/bench_conv.py first")
    plot(json.loads(src.read_text()), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
