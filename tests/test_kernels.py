"""The compiled conv kernels (numba) and their NumPy twins, both tiers against the reference.

Forward and both gradients, float32 and float64, on Hypothesis-generated shapes, with the tier on
(``engine_config.set_jit(True)``, kernels run) and off (the NumPy twins run). Shapes are kept small
and the dtypes few: numba compiles once per dtype and array rank (cached on disk afterwards).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve.engine_config as ec
from convolve._engine import depthwise, direct, kernels, reference, winograd
from convolve._engine.select import ALGORITHMS
from oracle import draw_channels

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba cannot be imported here: only the NumPy tier runs")
TIERS = [pytest.param(True, marks=needs_numba, id="jit"), pytest.param(False, id="numpy")]
F32_TOL = {"winograd4": 1e-4, "winograd2": 1e-5, "direct": 1e-5, "depthwise": 1e-5}  # relative to the output scale (docs/speed.md)


@st.composite
def problems(draw, name):
    """(x, w, bias, stride, dilation, groups) that `name` accepts, 2-D (direct: also 1-D)."""
    nd = draw(st.integers(1, 2)) if name == "direct" else 2
    if name in ("winograd2", "winograd4"):  # dilated: per phase of the subsampled grids
        kernel, stride, dilation = (3, 3), (1, 1), tuple(draw(st.integers(1, 3)) for _ in range(2))
    else:
        kernel = tuple(draw(st.integers(1, 5)) for _ in range(nd))  # 3 and 5: the wide forward's written-out taps
        stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    groups, Cg, O, N = draw_channels(draw, name == "depthwise")
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 9)) for k, d in zip(kernel, dilation))
    r = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = r.standard_normal((N, Cg * groups) + spatial)
    w = r.standard_normal((O, Cg) + kernel)
    b = r.standard_normal(O) if draw(st.booleans()) else None
    return x, w, b, stride, dilation, groups


def _compiled(name, ndim, dtype):
    """Whether `name` runs its compiled kernels for this call."""
    if name == "winograd4":
        return winograd.F4._jit(np.dtype(dtype).type)
    if name == "winograd2":  # the forward and input gradient's transforms (the weight gradient: NumPy's)
        return winograd.F2._jit2(np.dtype(dtype).type)
    if name == "depthwise":
        return ndim == 2 and depthwise._jit(np.zeros((1,) * (ndim + 2), dtype))
    return direct.compiled(ndim, dtype)


def _check(name, x, w, b, stride, dilation, groups, dtype, jit):
    algo = ALGORITHMS[name]
    args = (stride, dilation, groups)
    y_ref = reference.forward(x, w, b, *args)
    gy = np.random.default_rng(7).standard_normal(y_ref.shape)
    refs = (y_ref, reference.grad_input(gy, w, x.shape, *args), reference.grad_weight(x, gy, w.shape, *args))
    cast = (lambda a: None if a is None else a.astype(dtype))
    with ec.options(jit=jit):
        assert _compiled(name, x.ndim - 2, dtype) == jit
        got = (algo.forward(cast(x), cast(w), cast(b), *args),
               algo.grad_input(cast(gy), cast(w), x.shape, *args),
               algo.grad_weight(cast(x), cast(gy), w.shape, *args))
    tol = 1e-10 if dtype == np.float64 else F32_TOL[name]
    for what, ours, ref in zip(("forward", "grad_input", "grad_weight"), got, refs):
        assert ours.dtype == dtype and ours.shape == ref.shape, f"{name} {what}: {ours.dtype} {ours.shape}"
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * scale, err_msg=f"{name} {what} jit={jit}")


@contextlib.contextmanager
def _small_blocks_in_lanes():
    """Winograd's blocks as small as one tile row and run as two lanes, whatever the call's size."""
    from convolve._engine.kernels import threads

    with mock.patch.object(threads, "PARALLEL_MIN", 0), mock.patch.object(winograd, "JIT_BLOCK_BYTES", 1), \
            mock.patch.object(winograd, "JIT_BLOCK_PER_U", 0), ec.options(threads=2):
        yield


# (jit, lanes): both tiers, and the compiled Winograd tier also as lanes (`_engine.parallel.lanes`)
_TIER_LANES = [pytest.param(True, False, marks=needs_numba, id="jit"), pytest.param(False, False, id="numpy")]
_WINOGRAD_LANES = [pytest.param(True, True, marks=needs_numba, id="jit-lanes")]


def _kernel_test(name):
    @pytest.mark.parametrize("jit, lanes", _TIER_LANES + (_WINOGRAD_LANES if name == "winograd4" else []))
    @given(problem=problems(name), dtype=st.sampled_from([np.float64, np.float32]))
    @settings(max_examples=20, deadline=None)
    def test(jit, lanes, problem, dtype):
        with _small_blocks_in_lanes() if lanes else contextlib.nullcontext():
            _check(name, *problem, dtype, jit)

    test.__name__ = f"test_{name}_in_both_tiers_equals_the_reference"
    return test


for _name in F32_TOL:
    globals()[f"test_{_name}_in_both_tiers_equals_the_reference"] = _kernel_test(_name)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd2_compiled_transforms_equal_the_numpy_twin(dtype):
    """F(2x2)'s compiled tile transforms do the twin's adds in the twin's order: the same bits, for
    blocks of whole samples and of single tile rows, the last tiles cut at the output's edge."""
    from convolve._engine.kernels import winograd2 as kw

    r = np.random.default_rng(3)
    F2 = winograd.F2
    x, TH, TW = F2._padded(r.standard_normal((3, 5, 9, 8)).astype(dtype), 1)  # 9x8 outputs: ragged last tiles
    for n0, n1, t0, t1 in [(0, 3, 0, TH), (1, 2, 2, 3), (2, 3, 0, 1)]:
        T = (n1 - n0) * (t1 - t0) * TW
        V = np.empty((16, 5, T), dtype)
        kw.input_tiles(x, n0, n1, t0, t1, V)
        twin = F2._input_tiles(x[n0:n1, :, 2 * t0 : 2 * t1 + 2])
        assert np.array_equal(V, twin.reshape(16, 5, T))
        M = r.standard_normal((16, 4, T)).astype(dtype)
        bias = r.standard_normal(4).astype(dtype)
        Y = np.full((3, 4, 9, 8), np.nan, dtype)
        kw.output_tiles(M, bias, n0, n1, t0, t1, TW, Y)
        full = np.empty((n1 - n0, 4, 2 * (t1 - t0), 2 * TW), dtype)
        F2._output(M.reshape(4, 4, 4, n1 - n0, t1 - t0, TW), full)
        rows = slice(2 * t0, min(9, 2 * t1))
        want = full[:, :, : rows.stop - rows.start, :8] + bias.reshape(1, -1, 1, 1)
        assert np.array_equal(Y[n0:n1, :, rows], want)
        assert np.isnan(Y[:n0]).all() and np.isnan(Y[n1:]).all()  # nothing outside the block written
        kw.output_tiles(M, np.zeros(0, dtype), n0, n1, t0, t1, TW, Y)  # no bias: nothing added
        assert np.array_equal(Y[n0:n1, :, rows], full[:, :, : rows.stop - rows.start, :8])


@needs_numba
@pytest.mark.parametrize("block_bytes", [1, 2**20])
def test_winograd2_compiled_blocks_equal_the_reference(block_bytes, monkeypatch):
    """The compiled F(2x2) forward and input gradient block by block (one tile row at a time, or whole)."""
    monkeypatch.setattr(winograd, "BLOCK_BYTES", block_bytes)
    r = np.random.default_rng(4)
    x, w, b = r.standard_normal((2, 6, 11, 10)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    args = ((1, 1), (1, 1), 2)
    y = ALGORITHMS["winograd2"].forward(x, w, b, *args)
    np.testing.assert_allclose(y, reference.forward(x, w, b, *args), rtol=1e-10, atol=1e-10)
    gy = r.standard_normal(y.shape)
    np.testing.assert_allclose(ALGORITHMS["winograd2"].grad_input(gy, w, x.shape, *args),
                               reference.grad_input(gy, w, x.shape, *args), rtol=1e-10, atol=1e-10)


@needs_numba
@pytest.mark.parametrize("dilation", [(1, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("block_bytes", [1, 2**20])
def test_winograd_blocks_of_tiles_equal_the_reference(block_bytes, dilation, monkeypatch):
    """Tiny blocks: every tile row of every sample is its own block (ragged last tiles, padding); dilated:
    the phase grids of unequal sizes share the tile rows of a block."""
    monkeypatch.setattr(winograd, "JIT_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(winograd, "JIT_BLOCK_PER_U", 0)
    r = np.random.default_rng(5)
    x, w, b = r.standard_normal((3, 4, 17, 20)), r.standard_normal((6, 2, 3, 3)), r.standard_normal(6)
    _check("winograd4", x, w, b, (1, 1), dilation, 2, np.float64, True)


# the small limit only with the compiled tier: the NumPy twin's blocks alone need more than it
# (its chunking is tested in tests/test_memory.py)
_TIER_LIMITS = [pytest.param(True, 2**28, marks=needs_numba, id="jit-uncapped"),
                pytest.param(True, 300_000, marks=needs_numba, id="jit-capped"),
                pytest.param(False, 2**28, id="numpy-uncapped")]


@pytest.mark.parametrize("jit, memory_limit", _TIER_LIMITS)
@pytest.mark.parametrize("dilation, pad", [((1, 1), 1), ((1, 1), 2), ((2, 2), 2), ((2, 1), 0), ((3, 3), 3), ((2, 2), 1)])
def test_winograd_zero_padding_through_the_engine_equals_the_reference(jit, dilation, pad, memory_limit, monkeypatch):
    """Compiled tier: padding that is a whole number (<= 2) of dilation steps is applied inside the tile
    kernels (no padded copy of x; the unpadded input's gradient directly), also per batch chunk under a
    memory limit; other paddings and the NumPy tier take the padded copies."""
    from convolve import _engine
    from convolve._engine import chunks

    r = np.random.default_rng(8)
    x, w, b = r.standard_normal((4, 6, 14, 13)), r.standard_normal((6, 3, 3, 3)), r.standard_normal(6)
    pads = ((pad, pad), (pad, pad))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    args = ((1, 1), dilation, 2)
    y = reference.forward(xp, w, b, *args)
    gy = r.standard_normal(y.shape)
    crop = (slice(None), slice(None), slice(pad, pad + 14), slice(pad, pad + 13))
    refs = (y, reference.grad_input(gy, w, xp.shape, *args)[crop], reference.grad_weight(xp, gy, w.shape, *args))
    with ec.options(jit=jit):
        takes = winograd.F4.pads_inside("forward", pads, dilation, np.float64)
    assert takes == (jit and pad % dilation[0] == 0 == pad % dilation[1] and pad // dilation[0] == pad // dilation[1] <= 2)
    if takes and pad > 0:  # no padded copy of x may be made
        monkeypatch.setattr(chunks, "_piece", lambda *a: pytest.fail("padded copy made"))
    with ec.options(jit=jit, memory_limit=memory_limit):
        got = (_engine.forward(x, w, b, *args, algorithm="winograd4", padding=pads),
               _engine.grad_input(gy, w, x.shape, *args, algorithm="winograd4", padding=pads),
               _engine.grad_weight(x, gy, w.shape, *args, algorithm="winograd4", padding=pads))
    for what, ours, ref in zip(("forward", "grad_input", "grad_weight"), got, refs):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max(), err_msg=what)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [30, 71])
@pytest.mark.parametrize("dilation, pad", [((1, 1), 1), ((1, 1), 2), ((2, 2), 2)])
def test_winograd_wide_planes_in_several_scratch_chunks_equal_the_reference(dtype, width, dilation, pad):
    """Planes wide enough for the tile kernels' other column-pass loops (`FLAT_MIN` and `WIDE`, `FLAT_MAX`
    tiles per row) and tall enough for several scratch chunks of tile rows each (`SCRATCH`), ragged at both edges,
    padded inside."""
    from convolve import _engine
    from convolve._engine.kernels import winograd as kw

    r = np.random.default_rng(9)
    x, w, b = r.standard_normal((2, 3, 91, width)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    if dilation == (1, 1):  # the shapes reach the paths this test is for
        TW = -(-(width + 2 * pad - 2) // 4)
        assert (TW >= max(kw.WIDE, kw.FLAT_MAX)) if width > 64 else (kw.FLAT_MIN <= TW < min(kw.WIDE, kw.FLAT_MAX))
        assert kw.SCRATCH // (6 * (4 * TW + 2)) < -(-(91 + 2 * pad - 2) // 4)
    pads = ((pad, pad), (pad, pad))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    args = ((1, 1), dilation, 1)
    y = reference.forward(xp, w, b, *args)
    gy = r.standard_normal(y.shape)
    crop = (slice(None), slice(None), slice(pad, pad + 91), slice(pad, pad + width))
    refs = (y, reference.grad_input(gy, w, xp.shape, *args)[crop], reference.grad_weight(xp, gy, w.shape, *args))
    cast = (lambda a: a.astype(dtype))
    with ec.options(jit=True):
        assert winograd.F4.pads_inside("forward", pads, dilation, dtype)
        got = (_engine.forward(cast(x), cast(w), cast(b), *args, algorithm="winograd4", padding=pads),
               _engine.grad_input(cast(gy), cast(w), x.shape, *args, algorithm="winograd4", padding=pads),
               _engine.grad_weight(cast(x), cast(gy), w.shape, *args, algorithm="winograd4", padding=pads))
    tol = 1e-10 if dtype == np.float64 else F32_TOL["winograd4"]
    for what, ours, ref in zip(("forward", "grad_input", "grad_weight"), got, refs):
        assert ours.dtype == dtype, what
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * np.abs(ref).max(), err_msg=what)


@needs_numba
def test_winograd_dilated_grids_without_outputs_get_a_zero_input_gradient():
    """Dilation 3 on 7 rows: row phases 1 and 2 hold two rows each, too few for an output; their input
    gradient is zero, as the reference's."""
    r = np.random.default_rng(6)
    x, w = r.standard_normal((2, 3, 7, 9)), r.standard_normal((4, 3, 3, 3))
    _check("winograd4", x, w, None, (1, 1), (3, 2), 1, np.float64, True)
    with ec.options(jit=True):
        gx = winograd.F4.grad_input(np.ones((2, 4, 1, 5)), w, x.shape, (1, 1), (3, 2), 1)
    assert not gx[:, :, 1::3].any() and gx[:, :, 0::3].any()


@needs_numba
@pytest.mark.parametrize("name", ["direct", "depthwise"])
def test_direct_kernels_keep_non_finite_values_where_the_reference_has_them(name):
    """Each output is its own window's sum: an inf or NaN reaches exactly the outputs (and gradient
    entries) whose windows hold it."""
    r = np.random.default_rng(2)
    groups = 3 if name == "depthwise" else 1
    x, w = r.standard_normal((2, 3, 9, 8)), r.standard_normal((3, 3 // groups, 3, 3))
    x[0, 1, 4, 0], x[1, 2, 8, 7] = np.inf, np.nan
    args = ((1, 2), (2, 1), groups)
    algo = ALGORITHMS[name]
    with ec.options(jit=True):
        y = algo.forward(x, w, None, *args)
        gy = r.standard_normal(y.shape)
        gy[0, 0, 1, 1] = np.inf
        w2 = w.copy()
        w2[0, 0, 2, 2] = np.nan
        got = (y, algo.grad_input(gy, w2, x.shape, *args), algo.grad_weight(x, gy, w.shape, *args))
    refs = (reference.forward(x, w, None, *args), reference.grad_input(gy, w2, x.shape, *args),
            reference.grad_weight(x, gy, w.shape, *args))
    for ours, ref in zip(got, refs):
        assert not np.isfinite(ref).all() and np.isfinite(ref).any()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        np.testing.assert_allclose(ours[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-12)


@needs_numba
def test_the_cost_model_knows_the_compiled_tier():
    """With the tier on, the automatic choice picks the compiled kernels for the layers they win;
    with it off, never the twins that are slower than im2col."""
    from convolve._engine import choose

    lenet = ("forward", (64, 1, 28, 28), (6, 1, 5, 5), (1, 1), (1, 1), 1, np.float32)
    mobilenet = ("forward", (8, 128, 58, 58), (128, 1, 3, 3), (1, 1), (1, 1), 128, np.float32)
    resnet = ("forward", (8, 64, 58, 58), (64, 64, 3, 3), (1, 1), (1, 1), 1, np.float32)
    # the LeNet recipe's first layer (32 kernels of 3x3 on 128 padded images): few taps per output, where
    # the direct kernels' per-output cost outweighs im2col (measured 1.5x slower grad weight; the wide
    # forward level with it through the engine, `direct.WIDE_MIN_TAPS`)
    recipe = ((128, 1, 30, 30), (32, 1, 3, 3), (1, 1), (1, 1), 1, np.float32)
    with ec.options(jit=True):
        assert choose(*lenet).name in ("direct", "depthwise")
        assert choose(*mobilenet).name == "depthwise"
        assert choose(*resnet).name == "winograd4"
        assert choose("forward", *recipe).name == "gemm" and choose("grad_weight", *recipe).name == "gemm"
        assert choose("grad_weight", *mobilenet[1:]).name == "depthwise"
    with ec.options(jit=False):
        assert choose(*lenet).name != "direct"
        assert direct.cost(*lenet[:-1], 4) == float("inf")


def test_import_and_explain_do_not_import_numba():
    """numba loads the first time a kernel runs, never on import or for `convolve explain`."""
    code = ("import sys, convolve, convolve.functional, convolve.nn; assert 'numba' not in sys.modules, 'import'; "
            "from convolve.cli import main; main(['explain', '28x28', 'conv 6 5x5', 'maxpool 2', 'conv 16 5x5']); "
            "assert 'numba' not in sys.modules, 'explain'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "conv" in done.stdout.lower()


@needs_numba
@pytest.mark.parametrize("name", ["winograd4", "direct", "depthwise"])
def test_an_empty_batch_gives_empty_results(name):
    """The compiled paths accept a batch of 0 (no kernel launch has work)."""
    jit = True
    groups = 2 if name == "depthwise" else 1
    x, w = np.zeros((0, 2, 7, 6), np.float32), np.ones((2, 2 // groups, 3, 3), np.float32)
    algo, args = ALGORITHMS[name], ((1, 1), (1, 1), groups)
    with ec.options(jit=jit):
        y = algo.forward(x, w, None, *args)
        gy = np.ones(y.shape, np.float32)
        assert y.shape == (0, 2, 5, 4) and algo.grad_input(gy, w, x.shape, *args).shape == x.shape
        np.testing.assert_array_equal(algo.grad_weight(x, gy, w.shape, *args), np.zeros(w.shape, np.float32))


@needs_numba
@pytest.mark.parametrize("mode", ["serial", "parallel"])
@pytest.mark.parametrize("name", ["direct", "depthwise"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_launches_equal_the_reference(mode, name, dtype, monkeypatch):
    """`threads.pick` runs small work on the calling thread and large work on numba's threads: both
    compilations of every direct kernel (unit and general stride) against the reference."""
    from convolve._engine.kernels import threads

    from convolve._engine.kernels import direct as kd

    monkeypatch.setattr(threads, "PARALLEL_MIN", 0 if mode == "parallel" else 2**62)
    launched = []
    monkeypatch.setattr(kd, "pick", lambda k, work: launched.append(threads.pick(k, work)) or launched[-1])
    r = np.random.default_rng(11)
    groups = 4 if name == "depthwise" else 2
    x, w, b = r.standard_normal((3, 4, 10, 9)), r.standard_normal((8, 4 // groups, 3, 2)), r.standard_normal(8)
    with ec.options(threads=2):
        for stride, dilation in (((1, 1), (1, 1)), ((2, 1), (1, 2))):
            _check(name, x, w, b, stride, dilation, groups, dtype, True)
    assert len(launched) == 6 and all(hasattr(k, "serial") == (mode == "parallel") for k in launched)


@needs_numba
@pytest.mark.parametrize("mode", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (5, 5), (4, 5), (5, 3), (3, 7)])
@pytest.mark.parametrize("groups, Cg, O", [(1, 3, 4), (1, 2, 3), (2, 2, 6), (3, 1, 3)])
def test_the_wide_forward_and_input_gradient_equal_the_reference(mode, dtype, kernel, groups, Cg, O, monkeypatch):
    """`kernels.direct_wide` (stride 1, the taps of KW = 3 and 5 written out, pairs of output channels
    where a group has an even count, one channel where odd): serial and parallel, through `direct`; the
    input gradient on the same layout where a gradient element has enough taps."""
    from convolve._engine.kernels import direct as kd, direct_wide, threads

    monkeypatch.setattr(threads, "PARALLEL_MIN", 0 if mode == "parallel" else 2**62)
    launched = []
    monkeypatch.setattr(kd, "pick", lambda k, work: launched.append(k) or threads.pick(k, work))
    r = np.random.default_rng(sum(kernel) + 10 * O)
    x = r.standard_normal((2, groups * Cg, kernel[0] + 4, 2 * kernel[1] + 3))
    w, b = r.standard_normal((O, Cg) + kernel), r.standard_normal(O)
    with ec.options(threads=2):
        _check("direct", x, w, b, (1, 1), (1, 1), groups, dtype, True)
    wide_grad = O // groups * kernel[0] * kernel[1] >= kd.WIDE_GRAD_MIN_TAPS
    assert launched[0] is direct_wide.forward and (launched[1] is direct_wide.grad_input) == wide_grad


@needs_numba
@pytest.mark.parametrize("name", ["direct", "depthwise"])
def test_the_wide_input_gradient_keeps_non_finite_values_where_the_reference_has_them(name):
    """Stride 1: an inf in gy reaches exactly the input-gradient entries under its windows; a NaN in the
    kernel sends the call to the row kernel (the wide layout multiplies the kernel by zeros)."""
    from convolve._engine.kernels import direct as kd

    r = np.random.default_rng(4)
    groups = 4 if name == "depthwise" else 1
    x, w = r.standard_normal((2, 4, 9, 10)), r.standard_normal((8, 4 // groups, 3, 4))
    gy = r.standard_normal((2, 8, 7, 7))
    gy[0, 1, 3, 2], gy[1, 5, 6, 6] = np.inf, -np.inf
    w2 = w.copy()
    w2[1, 0, 0, 3] = np.nan
    assert kd.wide_grad_input(gy.shape, w, groups) and not kd.wide_grad_input(gy.shape, w2, groups)
    args = ((1, 1), (1, 1), groups)
    with ec.options(jit=True):
        got = [ALGORITHMS[name].grad_input(gy, k, x.shape, *args) for k in (w, w2)]
    for ours, k in zip(got, (w, w2)):
        ref = reference.grad_input(gy, k, x.shape, *args)
        assert not np.isfinite(ref).all() and np.isfinite(ref).any()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        np.testing.assert_allclose(ours[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-12)


@needs_numba
@pytest.mark.parametrize("mode", ["serial", "parallel"])
@pytest.mark.parametrize("name", ["direct", "depthwise"])
@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((2, 0), (0, 3)), ((0, 1), (2, 2)), ((0, 0), (0, 0))])
@pytest.mark.parametrize("stride, kernel", [((1, 1), (3, 5)), ((2, 1), (3, 5)), ((1, 1), (2, 1))])
def test_the_compiled_kernels_take_their_zero_padding_themselves(mode, name, pads, stride, kernel, monkeypatch):
    """`pads_inside`: the engine passes the unpadded x (and wants the unpadded x's gradient); at stride 1
    each job pads its planes (crops its gradient planes) in scratch (`direct_wide.forward_padded`,
    `direct_padded`: the wide input gradient, or the row one on depthwise 2x1 kernels), other
    strides pad x first; float32 and float64, direct also in batch pieces under a memory cap."""
    from convolve import _engine
    from convolve._engine.kernels import direct as kd, direct_padded, direct_wide, threads

    monkeypatch.setattr(threads, "PARALLEL_MIN", 0 if mode == "parallel" else 2**62)
    launched = []
    monkeypatch.setattr(kd, "pick", lambda k, work: launched.append(k) or threads.pick(k, work))
    r = np.random.default_rng(3)
    groups = 3 if name == "depthwise" else 1
    x, w, b = r.standard_normal((3, 3, 7, 9)), r.standard_normal((12, 3 // groups) + kernel), r.standard_normal(12)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    ref = reference.forward(xp, w, b, stride, (1, 1), groups)
    gy = r.standard_normal(ref.shape)
    cut = (slice(None), slice(None)) + tuple(slice(a, a + s) for (a, _), s in zip(pads, x.shape[2:]))
    refs = (ref, reference.grad_input(gy, w, xp.shape, stride, (1, 1), groups)[cut],
            reference.grad_weight(xp, gy, w.shape, stride, (1, 1), groups))
    caps = [None, 6_000] if name == "direct" else [None]  # depthwise's fixed block scratch is above any small cap
    args = (stride, (1, 1), groups)
    for dtype, cap in [(np.float64, c) for c in caps] + [(np.float32, None)]:
        xd, wd, gyd = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
        with ec.options(jit=True, threads=2, **({} if cap is None else {"memory_limit": cap})):
            got = (_engine.forward(xd, wd, b.astype(dtype), *args, algorithm=name, padding=pads),
                   _engine.grad_input(gyd, wd, x.shape, *args, algorithm=name, padding=pads),
                   _engine.grad_weight(xd, gyd, w.shape, *args, algorithm=name, padding=pads))
        for ours, want in zip(got, refs):
            assert ours.dtype == dtype and ours.shape == want.shape
            np.testing.assert_allclose(ours, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)
    inside = any(p for pair in pads for p in pair) and stride == (1, 1)
    assert (direct_wide.forward_padded in launched) == inside
    wide = 12 // groups * kernel[0] * kernel[1] >= kd.WIDE_GRAD_MIN_TAPS  # depthwise 2x1: 8 taps, the row kernel
    assert (direct_padded.grad_input_wide in launched) == (inside and wide)
    assert (direct_padded.grad_input_rows in launched) == (inside and not wide)
    assert (direct_padded.grad_weight_rows in launched) == (inside and name == "depthwise")
