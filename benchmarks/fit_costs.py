"""Fit the engine's cost-model constants to measured times (bench_choice.py --out JSON).

Run::

    python benchmarks/fit_costs.py RESULTS.json [--search]

Re-estimates every timed (layer, op, algorithm) of the results with the current constants and prints
the geometric mean regret of the choice they would make (picked time / fastest time, using the
measured times) and the spread of estimate / measured per algorithm. ``--search`` then scales the
constants in `TUNABLE` one at a time by factors of 2^(±k/4), k <= 8 (coordinate descent, a few rounds) to
lower the regret, and prints the factors found: copy the ones that help into the source (rounded, with
a comment), then re-run bench_choice to check them on fresh measurements.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict

import numpy as np

from convolve._engine import _cost, direct, fft, kn2row, winograd
from convolve._engine.select import ALGORITHMS

# (module, attribute, key or None): constants the fit may scale
TUNABLE = [
    (_cost, "GEMM_RATE", 4), (_cost, "THIN", None), (_cost, "MEM_RATE", None), (_cost, "CACHE_RATE", None), (_cost, "COPY_RATE", None), (_cost, "CALL", None),
    (_cost, "BLAS_CALL", None), (kn2row, "PENALTY", None), (winograd, "JIT_TILE_BYTE", None), (winograd, "JIT_ROW_TILES", None),
    (winograd, "JIT_CALL", None), (winograd, "LANE_ITEM", None), (winograd, "JIT_KERNEL_BYTE", None), (direct, "RATE", 4), (fft, "RATE", None),
]


def _get(t):
    mod, attr, key = t
    v = getattr(mod, attr)
    return v[key] if key is not None else v


def _set(t, value):
    mod, attr, key = t
    if key is not None:
        getattr(mod, attr)[key] = value
    else:
        setattr(mod, attr, value)


def score(rows, itemsize=4):
    """(geometric mean regret, {algorithm: [estimate / measured]})."""
    logs, spread = [], defaultdict(list)
    for r in rows:
        sh = r["shapes"]
        args = (r["op"], tuple(sh["x"]), tuple(sh["w"]), tuple(sh["stride"]), tuple(sh["dilation"]), sh["groups"], itemsize)
        times = r["times_ms"]
        est = {n: ALGORITHMS[n].cost(*args) for n in times}
        pick = min(est, key=est.get)
        logs.append(math.log(times[pick] / min(times.values())))
        for n in times:
            spread[n].append(est[n] / (times[n] * 1e-3))
    return math.exp(sum(logs) / len(logs)), spread


def report(rows):
    geo, spread = score(rows)
    print(f"geometric mean regret {geo:.3f}")
    for n, v in sorted(spread.items()):
        print(f"  {n:10s} estimate/measured: median {statistics.median(v):.2f}, range {min(v):.2f}-{max(v):.2f} ({len(v)})")
    return geo


def search(rows, rounds=3):
    base = {t: _get(t) for t in TUNABLE}
    best, _ = score(rows)
    for _ in range(rounds):
        for t in TUNABLE:
            v0 = _get(t)
            for k in (-8, -6, -4, -3, -2, -1, 1, 2, 3, 4, 6, 8):
                _set(t, v0 * 2 ** (k / 4))
                g, _ = score(rows)
                if g < best - 1e-4:
                    best, v0 = g, _get(t)
                _set(t, v0)
    print(f"\nafter search: geometric mean regret {best:.3f}")
    for t in TUNABLE:
        f = _get(t) / base[t]
        if abs(math.log(f)) > 1e-6:
            print(f"  {t[0].__name__}.{t[1]}{'' if t[2] is None else [t[2]]}: x{f:.3f} ({base[t]:.3g} -> {_get(t):.3g})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results")
    parser.add_argument("--search", action="store_true")
    args = parser.parse_args()
    data = json.loads(open(args.results).read())
    rows = [r for r in data["rows"] if "shapes" in r and r["dtype"] == "float32"]
    report(rows)
    if args.search:
        search(rows)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
