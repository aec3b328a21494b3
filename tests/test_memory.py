"""Bounded memory: no engine call allocates temporaries beyond the cap; it works in chunks instead.

tracemalloc sees NumPy's allocations. The layers below would need 25-30 MB of im2col columns at
once; with the cap lowered to 2 MiB the peak traced memory above what existed before the call must
stay under cap + the result's own size (+ a small allowance for bookkeeping).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import convolve.engine_config as ec
import convolve.functional as F
from convolve import _engine

CAP = 2 * 2**20
SLACK = 256 * 2**10


def _peak_extra(fn):
    """(result, peak bytes allocated during fn beyond those held before it)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak - before


LAYERS = {  # (x shape, w shape): batch chunks, and a single sample that needs row chunks
    "batch": ((4, 32, 48, 48), (32, 32, 5, 5)),
    "rows": ((1, 32, 100, 100), (32, 32, 5, 5)),
    "large kernel": ((8, 8, 64, 64), (8, 8, 9, 9)),
}


@pytest.mark.parametrize("layer, algorithm", [(layer, a) for layer in LAYERS for a in (None, "gemm", "kn2row")]
                         + [("large kernel", "fft")])
def test_every_op_stays_under_the_memory_cap(layer, algorithm):
    xs, ws = LAYERS[layer]
    r = np.random.default_rng(0)
    x = r.standard_normal(xs).astype(np.float32)
    w = r.standard_normal(ws).astype(np.float32)
    args = ((1, 1), (1, 1), 1)
    k = ws[-1]
    naive = xs[0] * xs[1] * k * k * (xs[2] - k + 1) * (xs[3] - k + 1) * 4
    assert naive > 10 * CAP  # the unchunked im2col really would not fit
    y_full = _engine.forward(x, w, None, *args, algorithm)
    gy = r.standard_normal(y_full.shape).astype(np.float32)
    with ec.options(memory_limit=CAP):
        y, extra = _peak_extra(lambda: _engine.forward(x, w, None, *args, algorithm))
        assert extra <= CAP + y.nbytes + SLACK, f"forward used {extra / 2**20:.1f} MiB"
        gx, extra = _peak_extra(lambda: _engine.grad_input(gy, w, xs, *args, algorithm))
        assert extra <= CAP + gx.nbytes + SLACK, f"grad_input used {extra / 2**20:.1f} MiB"
        gw, extra = _peak_extra(lambda: _engine.grad_weight(x, gy, ws, *args, algorithm))
        assert extra <= CAP + gw.nbytes + SLACK, f"grad_weight used {extra / 2**20:.1f} MiB"
    np.testing.assert_allclose(y, y_full, rtol=1e-4, atol=1e-3)


def test_without_the_cap_the_same_call_does_allocate_the_columns(monkeypatch):
    """The measurement is real: uncapped and unblocked, naive im2col's columns show up in the peak."""
    from convolve._engine import gemm

    monkeypatch.setattr(gemm, "BLOCK_BYTES", 2**40)
    r = np.random.default_rng(1)
    x = r.standard_normal((4, 32, 48, 48)).astype(np.float32)
    w = r.standard_normal((32, 32, 5, 5)).astype(np.float32)
    with ec.options(memory_limit=2**40):
        _, extra = _peak_extra(lambda: _engine.forward(x, w, None, (1, 1), (1, 1), 1, "gemm"))
    assert extra > 10 * CAP


def test_functional_conv_under_a_tiny_cap_matches_the_uncapped_result():
    r = np.random.default_rng(2)
    x = r.standard_normal((3, 8, 20, 20))
    w = r.standard_normal((8, 8, 3, 3))
    expected = F.conv2d(x, w, padding=1, stride=2)
    with ec.options(memory_limit=16 * 2**10):  # a tenth of what the whole call needs
        np.testing.assert_allclose(F.conv2d(x, w, padding=1, stride=2), expected, rtol=1e-12, atol=1e-12)


def test_a_forced_algorithm_that_cannot_fit_the_cap_says_so():
    """FFT's kernel spectra do not shrink with the chunk: under a tiny cap it refuses, the engine's
    own choice moves to an algorithm that fits."""
    x = np.zeros((1, 32, 40, 40), dtype=np.float32)  # one row's kernel spectra alone: ~1.5 MiB
    w = np.zeros((32, 32, 5, 5), dtype=np.float32)
    with ec.options(memory_limit=2**20):
        with pytest.raises(ValueError, match=r"algorithm 'fft' needs at least .* MiB .* above the memory limit of 1.0 MiB"):
            _engine.forward(x, w, None, (1, 1), (1, 1), 1, "fft")
        assert _engine.choose("forward", x.shape, w.shape, (1, 1), (1, 1), 1, x.dtype).name != "fft"
