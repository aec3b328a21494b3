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
from convolve._engine import blas, gemm, gemm_lanes, kernels, parallel, reference, winograd

from test_kernels import _check

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba cannot be imported here: only the NumPy tier runs")
needs_openblas = pytest.mark.skipif(not blas.controllable(), reason="NumPy's BLAS here is not a bundled OpenBLAS, "
                                    "so its threads cannot be set and lanes run as one")


def _spy(monkeypatch, module):
    """Every lanes() call `module` makes, as the number of lanes it planned (the n its setup is given):
    which threads run them depends on when each wakes."""
    calls = []
    real = parallel.lanes

    def spy(setup, step, items, threads=None, ordered=False):
        planned = []
        states = real(lambda n: planned.append(n) or setup(n), step, items, threads, ordered)
        calls.append(max(planned))
        return states

    monkeypatch.setattr(module, "lanes", spy)
    return calls


def _both_take_part(setup):
    """setup that waits until two threads have set up a lane: both lanes surely run."""
    barrier = threading.Barrier(2, timeout=10)

    def wrapped(n):
        barrier.wait()
        return setup(n)

    return wrapped


@pytest.fixture
def spy_lanes(monkeypatch):
    return _spy(monkeypatch, winograd)


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
        states = parallel.lanes(_both_take_part(setup), step, range(50))
    assert len(states) == 2 and all(s["n"] == 2 for s in states)
    assert sorted(i for s in states for i in s["items"]) == list(range(50))
    assert blas_inside == {1} and getter() == before
    assert threading.get_ident() in seen_threads and len(seen_threads) == 2  # the calling thread is a lane

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


@pytest.fixture
def busy_pool():
    """The pool thread the lanes of a two-thread call would use, kept busy until the test ends: a
    thread that wakes late."""
    release = threading.Event()
    blocker = parallel._pool(1).submit(release.wait, 10)
    yield
    release.set()
    blocker.result()


@needs_openblas
@pytest.mark.parametrize("ordered", [False, True])
def test_lanes_do_not_wait_for_a_thread_that_starts_late(busy_pool, ordered):
    """The calling thread runs every lane (ordered: in each lane's own order, so the sums are those of
    any other run) and returns without waiting for the late thread."""
    order = []

    def step(state, item):
        state.append(item)
        order.append(threading.get_ident())

    with ec.options(threads=2):
        states = parallel.lanes(lambda n: [], step, range(9), ordered=ordered)
    assert set(order) == {threading.get_ident()}
    assert states == ([[0, 2, 4, 6, 8], [1, 3, 5, 7]] if ordered else [list(range(9))])


def test_map_blocks_does_not_wait_for_a_thread_that_starts_late(busy_pool):
    with ec.options(threads=2):
        assert parallel.map_blocks(lambda b: b * b, range(7)) == [b * b for b in range(7)]
        assert parallel.sum_blocks(lambda b: np.full(2, b), range(7)).tolist() == [21, 21]


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
            states = parallel.lanes(_both_take_part(lambda n: []), step, range(8))
        assert len(states) == 2 and all(np.isnan(a).all() for s in states for a in s)
        with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
            parallel.lanes(_both_take_part(lambda n: []), step, range(8))


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


# --- im2col + GEMM as lanes (`_engine.gemm_lanes`) -------------------------------------------------------

GEMM_CASES = {  # x shape, w shape, stride, dilation, groups; the blocks each layout and path runs
    "per sample": ((3, 4, 26, 27), (6, 4, 3, 3), (1, 1), (1, 1), 1),
    "strided, dilated, groups": ((4, 4, 29, 30), (6, 2, 3, 3), (2, 1), (1, 2), 2),
    "batch-inner": ((5, 6, 9, 11), (4, 3, 5, 5), (1, 1), (1, 1), 2),
    "1x1": ((3, 6, 25, 27), (4, 6, 1, 1), (1, 1), (1, 1), 1),
    "1x1 strided, batch-inner": ((5, 6, 12, 13), (4, 3, 1, 1), (2, 2), (1, 1), 2),
    "7x7 stride 2 (rows)": ((2, 3, 40, 41), (4, 3, 7, 7), (2, 2), (1, 1), 1),
    "one sample in row blocks": ((1, 4, 30, 31), (6, 2, 5, 3), (1, 1), (1, 1), 2),
    "one sample, channel ranges": ((1, 4, 30, 31), (6, 4, 3, 3), (1, 1), (1, 1), 1),
    "one sample, groups of one channel": ((1, 4, 30, 31), (8, 1, 3, 3), (1, 1), (1, 1), 4),
    "1-D": ((3, 4, 50), (6, 4, 5), (2,), (2,), 1),
    "3-D": ((2, 4, 8, 9, 10), (6, 2, 3, 2, 3), (1, 2, 1), (2, 1, 1), 2),
}


@pytest.fixture
def gemm_spy(monkeypatch):
    """Lanes forced on small calls (small blocks); every lanes() call made by gemm, as its lane count."""
    calls = _spy(monkeypatch, gemm_lanes)
    monkeypatch.setattr(gemm_lanes, "LANES_MIN", 0)
    monkeypatch.setattr(gemm, "_single_cost", lambda *args: float("inf"))  # lanes whatever the estimates say
    monkeypatch.setattr(gemm, "_lane_choices", {})
    monkeypatch.setattr(gemm, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(gemm, "SAMPLES_BLOCK_BYTES", 2048)
    monkeypatch.setattr(gemm_lanes, "INNER_BYTES", 2048)
    monkeypatch.setattr(gemm_lanes, "ROWS_BYTES", 4096)
    return calls


def _gemm_three(x, w, b, gy, stride, dilation, groups):
    return (gemm.forward(x, w, b, stride, dilation, groups), gemm.grad_input(gy, w, x.shape, stride, dilation, groups),
            gemm.grad_weight(x, gy, w.shape, stride, dilation, groups))


@needs_openblas
@pytest.mark.parametrize("case", list(GEMM_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_in_lanes_equals_the_reference(case, dtype, gemm_spy):
    xs, ws, stride, dilation, groups = GEMM_CASES[case]
    r = np.random.default_rng(5)
    x, w, b = (r.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1]))
    y_ref = reference.forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, dilation,
                              groups)
    gy = r.standard_normal(y_ref.shape)
    refs = (y_ref, reference.grad_input(gy, w.astype(np.float64), xs, stride, dilation, groups),
            reference.grad_weight(x.astype(np.float64), gy, ws, stride, dilation, groups))
    with ec.options(threads=2):
        got = _gemm_three(x, w, b, gy.astype(dtype), stride, dilation, groups)
    assert gemm_spy == [2, 2, 2]  # every op ran on two lanes
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for what, ours, ref in zip(("forward", "grad_input", "grad_weight"), got, refs):
        assert ours.dtype == dtype and ours.shape == ref.shape, what
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * np.abs(ref).max(), err_msg=what)


@needs_openblas
@pytest.mark.parametrize("case", ["per sample", "batch-inner", "one sample in row blocks"])
def test_gemm_weight_gradient_in_lanes_is_reproducible(case, gemm_spy):
    """Partial sums per lane in a fixed order: the same bits on every run, whichever lane is faster;
    the input gradient too (each of its values is written by one lane)."""
    xs, ws, stride, dilation, groups = GEMM_CASES[case]
    r = np.random.default_rng(6)
    x, w = r.standard_normal(xs).astype(np.float32), r.standard_normal(ws).astype(np.float32)
    gy = r.standard_normal(gemm.forward(x, w, None, stride, dilation, groups).shape).astype(np.float32)
    with ec.options(threads=2):
        gw = gemm.grad_weight(x, gy, ws, stride, dilation, groups)
        gx = gemm.grad_input(gy, w, xs, stride, dilation, groups)
        for _ in range(5):
            np.testing.assert_array_equal(gemm.grad_weight(x, gy, ws, stride, dilation, groups), gw)
            np.testing.assert_array_equal(gemm.grad_input(gy, w, xs, stride, dilation, groups), gx)
    assert set(gemm_spy) == {2}


def test_gemm_stays_on_one_lane_when_it_does_not_pay(monkeypatch):
    """Small calls, one thread, one small sample, or a BLAS whose threads cannot be set: the
    single-lane path, unchanged."""
    small, one = ((8, 6, 12, 12), (16, 6, 5, 5)), ((1, 256, 14, 14), (256, 256, 3, 3))
    big = ((8, 64, 30, 30), (64, 64, 3, 3))
    with ec.options(threads=2):
        assert gemm_lanes.lane_count(*small, (1, 1), (1, 1)) == 1
        assert gemm_lanes.lane_count(*one, (1, 1), (1, 1)) == 1
        assert gemm_lanes.lane_count(*big, (1, 1), (1, 1)) == (2 if blas.controllable() else 1)
        monkeypatch.setattr(blas, "_found", False)
        assert gemm_lanes.lane_count(*big, (1, 1), (1, 1)) == 1
    monkeypatch.undo()
    with ec.options(threads=1):
        assert gemm_lanes.lane_count(*big, (1, 1), (1, 1)) == 1


def test_gemm_lane_blocks_cover_every_output_once():
    for N, rows, per_row, target, n, group in [(8, 28, 10, 100, 2, False), (1, 7, 10, 20, 2, False),
                                               (5, 4, 10, 30, 2, True), (3, 9, 50, 100, 4, False),
                                               (64, 8, 1, 100, 2, True)]:
        bl = gemm_lanes.blocks(N, rows, per_row, target, n, group)
        covered = np.zeros((N, rows), int)
        for n0, n1, r0, r1 in bl:
            covered[n0:n1, r0:r1] += 1
            assert group or n1 - n0 == 1
        assert (covered == 1).all(), (N, rows, bl)
    for N, G, Cg, n in [(4, 2, 3, 2), (1, 1, 8, 2), (1, 4, 1, 2), (1, 3, 5, 4), (2, 1, 3, 4)]:
        covered = np.zeros((N, G, Cg), int)
        for n0, n1, g0, g1, c0, c1 in gemm_lanes.grad_input_blocks(N, G, Cg, n):
            assert g1 - g0 == 1 or (c0, c1) == (0, Cg)  # one range of channels
            covered[n0:n1, g0:g1, c0:c1] += 1
        assert (covered == 1).all(), (N, G, Cg, n)


@needs_openblas
@pytest.mark.parametrize("case", ["per sample", "strided, dilated, groups", "batch-inner", "1x1 strided, batch-inner",
                                  "one sample in row blocks", "one sample, channel ranges", "1-D", "3-D"])
def test_gemm_in_lanes_pads_its_own_blocks(case, gemm_spy):
    """Zero padding taken inside (`gemm.pads_inside`): each lane pads its block's rows; the same as
    convolving the padded input."""
    from convolve._engine import chunks

    xs, ws, stride, dilation, groups = GEMM_CASES[case]
    nd = len(xs) - 2
    pads = ((2, 1), (0, 3), (1, 1))[:nd]
    assert chunks._inside(gemm, "forward", pads, dilation, np.float64)
    r = np.random.default_rng(9)
    x, w, b = (r.standard_normal(s) for s in (xs, ws, ws[:1]))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    y_ref = reference.forward(xp, w, b, stride, dilation, groups)
    gy = r.standard_normal(y_ref.shape)
    with ec.options(threads=2):
        y = gemm.forward(x, w, b, stride, dilation, groups, pads=pads)
        gx = gemm.grad_input(gy, w, xs, stride, dilation, groups, pads=pads)
        gw = gemm.grad_weight(x, gy, ws, stride, dilation, groups, pads=pads)
    assert gemm_spy == [2, 2, 2]
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12 * np.abs(y_ref).max())
    gx_ref = reference.grad_input(gy, w, xp.shape, stride, dilation, groups)[(Ellipsis,) + tuple(
        slice(a, a + n) for (a, _), n in zip(pads, xs[2:]))]
    assert gx.shape == xs
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-12 * np.abs(gx_ref).max())
    gw_ref = reference.grad_weight(xp, gy, ws, stride, dilation, groups)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-12, atol=1e-12 * np.abs(gw_ref).max())


@pytest.mark.parametrize("a_shape, b_shape", [((300, 200), (200, 40)),  # rows cut
                                              ((3, 20, 90), (90, 700)),  # columns cut, batch from a
                                              ((2, 1, 64, 50), (4, 50, 64)),  # broadcast batch axes
                                              ((2, 8, 40, 30), (2, 8, 30, 20))])  # whole products per block
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_in_blocks_equals_numpy(a_shape, b_shape, dtype, monkeypatch):
    monkeypatch.setattr(parallel, "MATMUL_SPLIT_MIN", 1)
    monkeypatch.setattr(parallel, "MATMUL_SIDE_MIN", 8)
    r = np.random.default_rng(9)
    a, b = r.standard_normal(a_shape).astype(dtype), r.standard_normal(b_shape).astype(dtype)
    want = np.matmul(a, b)
    seen = _spy(monkeypatch, parallel)
    with ec.options(threads=2):
        got = parallel.matmul(a, b)
        out = np.full_like(want, np.nan)
        assert parallel.matmul(a, b, out=out) is out
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-5 if dtype == np.float32 else 1e-13  # BLAS may sum a block's dot products in another order
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_array_equal(out, got)
    if blas.controllable():
        assert seen == [2, 2]
    gaps = np.full(want.shape[:-1] + (2 * want.shape[-1],), np.nan, dtype)
    strided = gaps[..., ::2]  # `out` a view with gaps: written in place
    with ec.options(threads=2):
        assert parallel.matmul(a, b, out=strided) is strided
    np.testing.assert_allclose(strided, want, rtol=tol, atol=tol * np.abs(want).max())
    assert np.isnan(gaps[..., 1::2]).all()
    if want.ndim == 4:  # batch axes that do not merge into one: no (B, M, N) view of `out` exists
        swapped = np.full((want.shape[1], want.shape[0]) + want.shape[2:], np.nan, dtype).swapaxes(0, 1)
        with ec.options(threads=2):
            parallel.matmul(a, b, out=swapped)
        np.testing.assert_allclose(swapped, np.broadcast_to(want, swapped.shape), rtol=tol,
                                   atol=tol * np.abs(want).max())


@needs_openblas
def test_matmul_in_blocks_with_a_late_thread(busy_pool, monkeypatch):
    monkeypatch.setattr(parallel, "MATMUL_SPLIT_MIN", 1)
    monkeypatch.setattr(parallel, "MATMUL_SIDE_MIN", 8)
    setter, getter = blas._entry_points()
    before = getter()
    a, b = np.arange(12000.0).reshape(120, 100), np.ones((100, 30))
    with ec.options(threads=2):
        np.testing.assert_array_equal(parallel.matmul(a, b), a @ b)
    assert getter() == before


def test_matmul_in_blocks_takes_vectors_and_mixed_dtypes():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(3, dtype=np.float32)
    with ec.options(threads=2):
        np.testing.assert_array_equal(parallel.matmul(a, b), a @ b)
        np.testing.assert_array_equal(parallel.matmul(b, a.T), b @ a.T)
        assert parallel.matmul(a.astype(np.float32), a.T).dtype == np.float64
