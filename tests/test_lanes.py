"""Lanes: blocked algorithms run one block per thread with single-threaded BLAS (`_engine.parallel.lanes`).

Results must not depend on how the blocks were spread over the lanes; the BLAS thread count must come
back after every call, also when a block fails; the caller's floating-point error settings apply
inside the lanes.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import convolve.engine_config as ec
from convolve._engine import blas, kernels, parallel, winograd

from test_kernels import _check

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba cannot be imported here: only the NumPy tier runs")
needs_openblas = pytest.mark.skipif(not blas.controllable(), reason="NumPy's BLAS here is not a bundled OpenBLAS, "
                                    "so its threads cannot be set and lanes run as one")


@pytest.fixture
def spy_lanes(monkeypatch):
    """Every lanes() call made, as the number of states it returned (one per lane that ran)."""
    calls = []
    real = parallel.lanes

    def spy(setup, step, items, threads=None, ordered=False):
        states = real(setup, step, items, threads, ordered)
        calls.append(len(states))
        return states

    monkeypatch.setattr(winograd, "lanes", spy)
    return calls


@needs_openblas
def test_single_threaded_blas_restores_the_thread_count():
    setter, getter = blas._entry_points()
    before = getter()
    with blas.single_threaded():
        assert getter() == 1
        with blas.single_threaded():  # nested
            assert getter() == 1
        assert getter() == 1
    assert getter() == before
    with pytest.raises(RuntimeError):
        with blas.single_threaded():
            raise RuntimeError("a failing block")
    assert getter() == before


@needs_openblas
def test_lanes_run_every_item_once_and_restore_blas(monkeypatch):
    setter, getter = blas._entry_points()
    before = getter()
    seen_threads, blas_inside = set(), set()

    def setup(n):
        return {"n": n, "items": []}

    def step(state, item):
        seen_threads.add(threading.get_ident())
        blas_inside.add(getter())
        state["items"].append(item)

    with ec.options(threads=2):
        states = parallel.lanes(setup, step, range(50))
    assert len(states) == 2 and all(s["n"] == 2 for s in states)
    assert sorted(i for s in states for i in s["items"]) == list(range(50))
    assert blas_inside == {1} and getter() == before
    assert threading.get_ident() not in seen_threads

    def failing(state, item):
        if item == 7:
            raise ValueError("block 7")

    with ec.options(threads=2), pytest.raises(ValueError, match="block 7"):
        parallel.lanes(setup, failing, range(20))
    assert getter() == before


@needs_numba
@needs_openblas
def test_weight_gradients_summed_in_lanes_are_reproducible(monkeypatch):
    """Per-lane partial sums in a fixed order: the same bits on every run (training resumes exactly)."""
    from convolve._engine.kernels import threads

    monkeypatch.setattr(threads, "PARALLEL_MIN", 0)
    monkeypatch.setattr(winograd, "JIT_BLOCK_BYTES", 1)
    r = np.random.default_rng(4)
    x, gy = r.standard_normal((4, 8, 20, 20)).astype(np.float32), r.standard_normal((4, 8, 18, 18)).astype(np.float32)
    with ec.options(threads=2):
        first = winograd.F4.grad_weight(x, gy, (8, 8, 3, 3), (1, 1), (1, 1), 1)
        for _ in range(5):
            np.testing.assert_array_equal(winograd.F4.grad_weight(x, gy, (8, 8, 3, 3), (1, 1), (1, 1), 1), first)


def test_one_lane_runs_on_the_calling_thread():
    seen = []
    with ec.options(threads=1):
        states = parallel.lanes(lambda n: n, lambda s, i: seen.append(threading.get_ident()), range(5))
    assert states == [1] and set(seen) == {threading.get_ident()}


@needs_numba
@needs_openblas
@pytest.mark.parametrize("dilation", [(1, 1), (2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_in_lanes_equals_the_reference(dilation, dtype, spy_lanes, monkeypatch):
    """Small blocks spread over two lanes (forward, input gradient, weight gradient summed per lane)."""
    from convolve._engine.kernels import threads

    monkeypatch.setattr(threads, "PARALLEL_MIN", 0)
    monkeypatch.setattr(winograd, "JIT_BLOCK_BYTES", 1)
    monkeypatch.setattr(winograd, "JIT_BLOCK_PER_U", 0)
    r = np.random.default_rng(3)
    x, w, b = r.standard_normal((3, 4, 17, 21)), r.standard_normal((6, 4, 3, 3)), r.standard_normal(6)
    with ec.options(threads=2):
        _check("winograd4", x, w, b, (1, 1), dilation, 1, dtype, True)
    assert spy_lanes == [2, 2, 2]


@needs_openblas
def test_lanes_follow_the_callers_floating_point_settings():
    """0/0 in a lane: ignored under the caller's np.errstate, raised under np.errstate(invalid="raise"),
    as on the calling thread (np.errstate lives in a context variable, which threads do not inherit)."""

    def step(state, item):
        state.append(np.zeros(3) / np.zeros(3))

    with ec.options(threads=2), warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):
            states = parallel.lanes(lambda n: [], step, range(8))
        assert len(states) == 2 and all(np.isnan(a).all() for s in states for a in s)
        with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
            parallel.lanes(lambda n: [], step, range(8))


@needs_openblas
@pytest.mark.parametrize("shape, kernel, dilation, groups", [((5, 4, 70), (9,), (2,), 2), ((3, 4, 40, 37), (7, 5), (1, 2), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiled_fft_in_lanes_equals_the_reference(shape, kernel, dilation, groups, dtype, monkeypatch):
    """One sample per group of tiles, spread over two lanes; the weight gradient's partial sums
    reproducible bit for bit."""
    from convolve._engine import reference, tiled_fft

    monkeypatch.setattr(tiled_fft, "LANES_ABOVE", 0)
    monkeypatch.setattr(tiled_fft, "GROUP_BYTES", 1)
    calls = []
    real = parallel.lanes
    monkeypatch.setattr(tiled_fft, "lanes", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    r = np.random.default_rng(8)
    x = r.standard_normal(shape)
    w = r.standard_normal((6, shape[1] // groups) + kernel)
    args = ((1,) * len(kernel), dilation, groups)
    y = reference.forward(x, w, None, *args)
    gy = r.standard_normal(y.shape)
    refs = (y, reference.grad_input(gy, w, x.shape, *args), reference.grad_weight(x, gy, w.shape, *args))
    xd, wd, gyd = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
    with ec.options(threads=2):
        got = (tiled_fft.forward(xd, wd, None, *args), tiled_fft.grad_input(gyd, wd, x.shape, *args),
               tiled_fft.grad_weight(xd, gyd, w.shape, *args))
        again = tiled_fft.grad_weight(xd, gyd, w.shape, *args)
    assert calls == [shape[0]] * 4  # one group per sample, every op through the lanes
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for ours, ref in zip(got, refs):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * np.abs(ref).max())
    np.testing.assert_array_equal(again, got[2])
