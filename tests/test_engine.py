"""Every engine algorithm against the reference oracle and PyTorch; choice, autotune and errors.

Shapes are drawn per algorithm from what it accepts; forward and both gradients, float64 (to 1e-10)
and float32 (to each algorithm's documented error), 1-D/2-D/3-D, groups, stride and dilation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve
import convolve.engine_config as ec
import convolve.functional as F
from convolve import _engine
from convolve._engine import _cost, constants, reference, select, winograd
from convolve._engine.chunks import smallest_piece
from convolve._engine.select import ALGORITHMS, AUTOMATIC
from oracle import draw_channels

# float32 error bound relative to the output scale, per algorithm (docs/speed.md)
F32_TOL = {"gemm": 1e-5, "kn2row": 1e-5, "depthwise": 1e-5, "fft": 1e-5, "tiled_fft": 1e-5, "winograd2": 1e-5,
           "winograd4": 1e-4, "direct": 1e-5}
STRIDE_ONE = ("winograd2", "winograd4", "tiled_fft")  # algorithms that take stride 1 only


@st.composite
def problems(draw, algorithm):
    """A random convolution (x, w, bias, stride, dilation, groups) that `algorithm` accepts."""
    if algorithm.startswith("winograd"):
        nd, kernel, stride, dilation = 2, (3, 3), (1, 1), (1, 1)
    else:
        nd = draw(st.integers(1, 3))
        kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
        stride = (1,) * nd if algorithm in STRIDE_ONE else tuple(draw(st.integers(1, 2)) for _ in range(nd))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    groups, Cg, O, N = draw_channels(draw, algorithm == "depthwise")
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 6 if nd < 3 else 2)) for k, d in zip(kernel, dilation))
    seed = draw(st.integers(0, 2**16))
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, Cg * groups) + spatial)
    w = r.standard_normal((O, Cg) + kernel)
    b = r.standard_normal(O) if draw(st.booleans()) else None
    return x, w, b, stride, dilation, groups


def _check(name, x, w, b, stride, dilation, groups, dtype):
    algo = ALGORITHMS[name]
    args = (stride, dilation, groups)
    y_ref = reference.forward(x, w, b, *args)
    gy = np.random.default_rng(7).standard_normal(y_ref.shape)
    gx_ref = reference.grad_input(gy, w, x.shape, *args)
    gw_ref = reference.grad_weight(x, gy, w.shape, *args)
    cast = (lambda a: None if a is None else a.astype(dtype))
    got = (algo.forward(cast(x), cast(w), cast(b), *args),
           algo.grad_input(cast(gy), cast(w), x.shape, *args),
           algo.grad_weight(cast(x), cast(gy), w.shape, *args))
    tol = 1e-10 if dtype == np.float64 else F32_TOL[name]
    for what, ours, ref in zip(("forward", "grad_input", "grad_weight"), got, (y_ref, gx_ref, gw_ref)):
        assert ours.dtype == dtype, f"{name} {what} dtype {ours.dtype}"
        assert ours.shape == ref.shape, f"{name} {what} shape {ours.shape} != {ref.shape}"
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * scale, err_msg=f"{name} {what} {np.dtype(dtype).name}")


def _algorithm_test(name):
    @given(problem=problems(name), dtype=st.sampled_from([np.float64, np.float32]))
    @settings(max_examples=25, deadline=None)
    def test(problem, dtype):
        _check(name, *problem, dtype)

    test.__name__ = f"test_{name}_equals_the_reference"
    return test


for _name in AUTOMATIC:
    globals()[f"test_{_name}_equals_the_reference"] = _algorithm_test(_name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,dilation,groups", [
    ((2, 3, 200), (4, 3, 31), (1,), 1),  # many tiles along a long signal (the 1-D k31 layer's shape, smaller)
    ((1, 4, 150), (2, 2, 40), (2,), 2),  # a tile's input spans 3 TILE-wide blocks: a 3-way overlap-add
    ((2, 2, 70, 45), (3, 2, 7, 11), (1, 1), 1),  # ragged last tiles on both axes
    ((1, 2, 40, 35, 34), (2, 1, 3, 4, 2), (1, 2, 1), 2),  # 3-D
])
def test_tiled_fft_over_many_tiles_equals_the_reference(xs, ws, dilation, groups, dtype):
    """tiled_fft cuts the tiles positions-first and overlap-adds the input gradient block by block:
    forward and both gradients over several tiles per axis, against the reference."""
    r = np.random.default_rng(8)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    _check("tiled_fft", x, w, b, (1,) * (len(xs) - 2), dilation, groups, dtype)


@given(problem=problems("gemm"), dtype=st.sampled_from([np.float64, np.float32]))
@settings(max_examples=25, deadline=None)
def test_gemm_blocked_path_equals_the_reference(problem, dtype):
    """With tiny blocks the large-layer path (a few output rows of one sample at a time) runs."""
    from convolve._engine import gemm

    saved, gemm.BLOCK_BYTES = gemm.BLOCK_BYTES, 64
    try:
        _check("gemm", *problem, dtype)
    finally:
        gemm.BLOCK_BYTES = saved


@given(problem=problems("gemm"), dtype=st.sampled_from([np.float64, np.float32]), group_bytes=st.sampled_from([1, 200]))
@settings(max_examples=25, deadline=None)
def test_gemm_in_groups_of_samples_equals_the_reference(problem, dtype, group_bytes):
    """With tiny limits the batch-inner layout runs a few samples (or one) at a time."""
    from convolve._engine import gemm

    saved = gemm.SAMPLES_SPLIT_ABOVE, gemm.SAMPLES_BLOCK_BYTES
    gemm.SAMPLES_SPLIT_ABOVE, gemm.SAMPLES_BLOCK_BYTES = 64, group_bytes
    try:
        _check("gemm", *problem, dtype)
    finally:
        gemm.SAMPLES_SPLIT_ABOVE, gemm.SAMPLES_BLOCK_BYTES = saved


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("name", ["winograd2", "winograd4", "depthwise"])
def test_blocked_paths_on_threads_equal_the_reference(name, threads, monkeypatch):
    """With tiny blocks every tile row (depthwise: every channel) is its own block, run on threads."""
    from convolve._engine import depthwise

    monkeypatch.setattr(winograd, "BLOCK_BYTES", 64)
    monkeypatch.setattr(depthwise, "BLOCK_BYTES", 64)
    monkeypatch.setattr(winograd, "BLOCK_THREADS", None)  # also the threaded path (settings["threads"])
    r = np.random.default_rng(9)
    groups = 4 if name == "depthwise" else 2
    w = r.standard_normal((8, 4 // groups, 3, 3))
    with ec.options(threads=threads):
        _check(name, r.standard_normal((3, 4, 13, 11)), w, None, (1, 1), (1, 1), groups, np.float64)


# --- against PyTorch, through the public functions ---------------------------------------------------

TORCH_CASES = [  # (algorithm, input shape, weight shape, stride, padding, dilation, groups)
    ("gemm", (2, 4, 9, 8), (6, 2, 3, 2), 2, 1, 1, 2),
    ("gemm", (2, 3, 11), (4, 3, 1), 2, 0, 1, 1),
    ("kn2row", (2, 4, 9, 8), (6, 4, 3, 3), 1, 2, 2, 1),
    ("kn2row", (1, 2, 5, 6, 7), (4, 1, 2, 2, 3), (1, 2, 1), 1, 1, 2),
    ("winograd2", (2, 4, 9, 11), (6, 2, 3, 3), 1, 1, 1, 2),
    ("winograd4", (2, 3, 13, 10), (5, 3, 3, 3), 1, 1, 1, 1),
    ("fft", (2, 4, 40), (6, 2, 9), 3, 4, 2, 2),
    ("fft", (1, 2, 12, 13), (3, 2, 7, 5), 1, (3, 2), 1, 1),
    ("tiled_fft", (2, 4, 40, 70), (6, 2, 9, 7), 1, (4, 3), (1, 2), 2),
    ("tiled_fft", (1, 2, 75), (3, 2, 9), 1, 4, 3, 1),
    ("depthwise", (2, 4, 10, 9), (8, 1, 3, 3), 2, 1, 2, 4),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0]}-{len(c[1]) - 2}d")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forced_algorithm_matches_torch(case, dtype):
    name, xs, ws, stride, padding, dilation, groups = case
    nd = len(xs) - 2
    r = np.random.default_rng(3)
    x, w, b = r.standard_normal(xs).astype(dtype), r.standard_normal(ws).astype(dtype), r.standard_normal(ws[0]).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = getattr(torch.nn.functional, f"conv{nd}d")(tx, tw, tb, **kw)
    X, W, B = (convolve.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = getattr(F, f"conv{nd}d")(X, W, B, **kw, algorithm=name)
    gy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(gy))
    y.backward(gy)
    tol = 1e-10 if dtype == np.float64 else F32_TOL[name]
    for ours, theirs in ((y.data, ty), (X.grad, tx.grad), (W.grad, tw.grad), (B.grad, tb.grad)):
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max()), err_msg=name)


@pytest.mark.parametrize("name", ["gemm", "kn2row", "winograd4", "fft"])
def test_forced_algorithm_runs_transposed_convolution_like_torch(name):
    r = np.random.default_rng(4)
    x, w = r.standard_normal((2, 4, 6, 7)), r.standard_normal((4, 3, 3, 3))
    X, W = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
    y = F.conv_transpose2d(X, W, padding=1, algorithm=name)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv_transpose2d(tx, tw, padding=1)
    gy = r.standard_normal(y.shape)
    y.backward(gy)
    ty.backward(torch.tensor(gy))
    for ours, theirs in ((y.data, ty), (X.grad, tx.grad), (W.grad, tw.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-10)


# --- Winograd: the slice code is the published transform, and its float32 error -----------------------

@pytest.mark.parametrize("m", [2, 4])
def test_winograd_slice_transforms_equal_the_matrices(m):
    a = m + 2
    r = np.random.default_rng(m)
    d = r.standard_normal((a, 5))
    out = [np.empty(5) for _ in range(a)]
    algo = winograd.F2 if m == 2 else winograd.F4
    algo._bt(list(d), out, np.empty(5), np.empty(5))
    np.testing.assert_allclose(np.array(out), winograd.BT[m] @ d, atol=1e-12)
    mm = r.standard_normal((a, 5))
    o = [np.empty(5) for _ in range(m)]
    algo._at(list(mm), o, np.empty((4, 5)))
    np.testing.assert_allclose(np.array(o), winograd.AT[m] @ mm, atol=1e-12)
    # and the three matrices compute a 1-D correlation exactly: Aᵀ[(G g) ⊙ (Bᵀ d)] = corr(d, g)
    g = r.standard_normal(3)
    dd = r.standard_normal(a)
    direct = np.array([dd[i : i + 3] @ g for i in range(m)])
    np.testing.assert_allclose(winograd.AT[m] @ ((winograd.GM[m] @ g) * (winograd.BT[m] @ dd)), direct, atol=1e-12)


@pytest.mark.parametrize("name, bound", [("winograd2", 1e-5), ("winograd4", 1e-4)])
def test_winograd_float32_error_on_a_realistic_layer(name, bound):
    """The documented float32 error: max |error| / max |output| on a 64-channel layer, vs float64."""
    r = np.random.default_rng(5)
    x = r.standard_normal((2, 64, 18, 18))
    w = r.standard_normal((32, 64, 3, 3)) / 24
    exact = ALGORITHMS["gemm"].forward(x, w, None, (1, 1), (1, 1), 1)
    y = ALGORITHMS[name].forward(x.astype(np.float32), w.astype(np.float32), None, (1, 1), (1, 1), 1)
    err = np.abs(y - exact).max() / np.abs(exact).max()
    assert err < bound, f"{name} float32 relative error {err:.2e}"
    assert err > 1e-9  # it really ran in float32


# --- automatic choice, autotune, errors ----------------------------------------------------------------

@given(problem=problems("gemm"), op=st.sampled_from(["forward", "grad_input", "grad_weight"]))
@settings(max_examples=30, deadline=None)
def test_the_chosen_algorithm_supports_the_call(problem, op):
    x, w, b, stride, dilation, groups = problem
    algo = _engine.choose(op, x.shape, w.shape, stride, dilation, groups, x.dtype)
    assert algo.name in AUTOMATIC
    assert algo.supports(op, x.shape, w.shape, stride, dilation, groups) is None


def test_cost_model_picks_the_specialised_algorithms():
    assert ec.choose_algorithm((8, 128, 58, 58), (128, 1, 3, 3), groups=128) == "depthwise"
    # the global FFT breaks the numerical-locality policy: chosen only when precision allows it
    assert ec.choose_algorithm((4, 16, 128, 128), (16, 16, 15, 15)) == "tiled_fft"
    assert ec.choose_algorithm((4, 16, 128, 128), (16, 16, 31, 31)) == "tiled_fft"
    with ec.options(precision="fast"):
        assert ec.choose_algorithm((4, 16, 128, 128), (16, 16, 31, 31)) == "fft"
    assert ec.get_precision() == "local"
    assert ec.choose_algorithm((8, 256, 56, 56), (64, 256, 1, 1)) in ("gemm", "kn2row")
    assert ec.choose_algorithm((2, 3, 10, 10), (4, 3, 3, 3), stride=2) != "winograd4"


def test_winograd_kernel_transform_is_cheaper_while_it_fits_in_cache():
    small, large = 36 * 64 * 64 * 4, 36 * 512 * 512 * 4  # U of F(4x4) for 64 and 512 channels, float32
    assert winograd.kernel_time(small) < small * winograd.KERNEL_BYTE_MEMORY
    assert winograd.kernel_time(large) == large * winograd.KERNEL_BYTE_MEMORY
    if winograd.F4._jit(np.float32):  # ResNet-18's 64-channel layers at batch 1 (measured 1.7x gemm, one thread)
        assert ec.choose_algorithm((1, 64, 58, 58), (64, 64, 3, 3)) == "winograd4"
    assert ec.choose_algorithm((1, 512, 9, 9), (512, 512, 3, 3)) not in ("winograd2", "winograd4")


def test_constant_weights_leave_the_kernel_transform_out_of_the_costs():
    """An inference plan's weights are transformed once (`constants`): for them the cost model leaves
    Winograd's kernel transform out, and the engine asks it so for marked weights."""
    shape, w_shape = (1, 256, 16, 16), (256, 256, 3, 3)  # ResNet-18's 256@14 at batch 1
    with _cost.constant_weights(True):
        assert winograd.kernel_time(10**6) == 0.0
        constant = select.estimate("winograd2", "forward", shape, w_shape, (1, 1), (1, 1), 1, 4)
    assert winograd.kernel_time(10**6) > 0
    assert constant < select.estimate("winograd2", "forward", shape, w_shape, (1, 1), (1, 1), 1, 4)
    if winograd.F2._jit2(np.float32):  # measured in the ONNX plan: 0.68 ms against gemm's 1.0
        assert ec.choose_algorithm(shape, w_shape, constant_weights=True) == "winograd2"
    with pytest.raises(TypeError, match="constant_weights"):
        ec.choose_algorithm(shape, w_shape, constant_weights="yes")
    r = np.random.default_rng(8)
    x = r.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = constants.mark(r.standard_normal((4, 4, 3, 3)).astype(np.float32))
    _engine._choices.clear()
    _engine.forward(x, w, None, (1, 1), (1, 1), 1)
    assert [k[8] for k in _engine._choices] == [True]  # chosen as constant weights
    _engine.forward(x, np.array(w), None, (1, 1), (1, 1), 1)
    assert sorted(k[8] for k in _engine._choices) == [False, True]


def test_autotune_measures_once_and_caches_the_fastest():
    r = np.random.default_rng(6)
    x, w = r.standard_normal((2, 8, 12, 12)), r.standard_normal((8, 8, 3, 3))
    ec.clear_autotune_cache()
    with ec.options(autotune=True):
        y = F.conv2d(x, w, padding=1)
        (key, name), = _engine.config.autotune_cache.items()
        assert key[0] == "forward" and name in AUTOMATIC
        np.testing.assert_allclose(F.conv2d(x, w, padding=1), y, rtol=1e-12)
    assert not ec.get_autotune()
    np.testing.assert_allclose(y, F.conv2d(x, w, padding=1, algorithm="reference"), rtol=1e-10, atol=1e-10)
    ec.clear_autotune_cache()


def test_unknown_algorithm_names_the_choices():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"algorithm must be one of \['depthwise', 'direct', 'fft', 'gemm', .*but got 'magic'"):
        F.conv2d(x, w, algorithm="magic")


@pytest.mark.parametrize("name, w_shape, kw, why", [
    ("winograd4", (2, 2, 5, 5), {}, r"winograd4 supports only 2-D 3x3 kernels .* kernel \(5, 5\)"),
    ("winograd2", (2, 2, 3, 3), {"stride": 2}, r"stride 1 .* stride \(2, 2\)"),
    ("depthwise", (2, 2, 3, 3), {}, r"groups == in_channels .* groups=1, in_channels=2"),
])
def test_algorithm_that_cannot_run_the_shape_says_which_can(name, w_shape, kw, why):
    x, w = np.zeros((1, 2, 7, 7)), np.zeros(w_shape)
    with pytest.raises(ValueError, match=why) as info:
        F.conv2d(x, w, **kw, algorithm=name)
    assert "algorithms that can: ['gemm', 'kn2row'" in str(info.value)


def test_engine_config_validates_its_arguments():
    with pytest.raises(TypeError, match=r"memory limit \(bytes\) must be an int, but got '1GB'"):
        ec.set_memory_limit("1GB")
    with pytest.raises(ValueError, match=r"memory limit \(bytes\) must be a positive int, but got 0"):
        ec.set_memory_limit(0)
    with pytest.raises(TypeError, match="autotune must be True or False, but got 1"):
        ec.set_autotune(1)
    with pytest.raises(ValueError, match="threads must be a positive int, but got 0"):
        ec.set_threads(0)
    with pytest.raises(ValueError, match=r"precision must be one of \['local', 'fast'\], but got 'exact'"):
        ec.set_precision("exact")
    with pytest.raises(ValueError, match="op must be one of"):
        ec.choose_algorithm((1, 1, 5), (1, 1, 3), op="backward")
    assert ec.get_memory_limit() == ec.DEFAULT_MEMORY_LIMIT
    assert set(ec.algorithms()) == set(AUTOMATIC) | {"reference"}


# --- chunked execution gives the same numbers ----------------------------------------------------------

@pytest.mark.parametrize("name", AUTOMATIC)
@pytest.mark.parametrize("pieces", ["samples", "rows"])
def test_chunked_calls_equal_whole_calls(name, pieces):
    r = np.random.default_rng(8)
    groups = 4 if name == "depthwise" else 2
    stride, dilation = ((1, 1), (1, 1)) if name.startswith("winograd") else ((1, 1), (1, 2)) if name in STRIDE_ONE \
        else ((2, 1), (1, 2))
    x = r.standard_normal((3, 4, 13, 12))
    w = r.standard_normal((4, 4 // groups, 3, 3))
    b = r.standard_normal(4)
    y = _engine.forward(x, w, b, stride, dilation, groups, name)
    gy = r.standard_normal(y.shape)
    gx = _engine.grad_input(gy, w, x.shape, stride, dilation, groups, name)
    gw = _engine.grad_weight(x, gy, w.shape, stride, dilation, groups, name)
    algo, ops = ALGORITHMS[name], ("forward", "grad_input", "grad_weight")
    args = (x.shape, w.shape, stride, dilation, groups)
    if pieces == "samples":  # room for one sample at a time
        limit = max(algo.workspace(op, (1,) + x.shape[1:], *args[1:], 8) for op in ops)
    else:  # room for one output row of one sample
        limit = max(smallest_piece(op, algo, *args, 8) for op in ops)
    with ec.options(memory_limit=limit):
        np.testing.assert_allclose(_engine.forward(x, w, b, stride, dilation, groups, name), y, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_engine.grad_input(gy, w, x.shape, stride, dilation, groups, name), gx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_engine.grad_weight(x, gy, w.shape, stride, dilation, groups, name), gw, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, groups", [("depthwise", 2), ("kn2row", 1), ("kn2row", 2)])
def test_wide_layout_keeps_inf_where_the_reference_has_it(name, groups):
    """The stride-1 layout multiplies zeros in its junk columns by x (weight gradient) or w (input
    gradient): an inf there must not turn into NaN where the reference is finite (kn2row once did)."""
    r = np.random.default_rng(3)
    algo = ALGORITHMS[name]
    x, w, gy = r.standard_normal((1, 2, 6, 7)), r.standard_normal((2, 2 // groups, 3, 3)), r.standard_normal((1, 2, 4, 5))
    x[0, 0, 0, 6] = np.inf  # read only by junk columns for tap (0, 0)
    args = ((1, 1), (1, 1), groups)
    ref = reference.grad_weight(x, gy, w.shape, *args)
    assert np.isfinite(ref[0, 0, 0, 0])
    np.testing.assert_allclose(algo.grad_weight(x, gy, w.shape, *args), ref, rtol=1e-12)
    w[1, 0, 1, 1] = np.inf
    ref = reference.grad_input(gy, w, x.shape, *args)
    assert np.isfinite(ref).any() and not np.isfinite(ref).all()
    np.testing.assert_allclose(algo.grad_input(gy, w, x.shape, *args), ref, rtol=1e-12)
    # the forward pass drops its junk outputs: non-finite values stay where the reference has them
    np.testing.assert_allclose(algo.forward(x, w, None, *args), reference.forward(x, w, None, *args), rtol=1e-12)


def test_one_wide_layout_serves_every_algorithm():
    """The wide geometry and its guard live in windows.py; no algorithm keeps a copy."""
    import inspect

    from convolve._engine import depthwise, kn2row, windows

    for mod in (depthwise, kn2row):
        src = inspect.getsource(mod)
        assert "wide_applies(" in src and "wide_geometry(" in src
        assert "as_strided" not in src and "isfinite" not in src
    assert windows.wide_applies((1, 1)) and not windows.wide_applies((2, 1))
    assert not windows.wide_applies((1,), np.array([1.0, np.nan])) and windows.wide_applies((1,), np.ones(3))


# --- the algorithm interface -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_algorithm_implements_the_interface(name):
    from convolve._engine._algorithm import Algorithm

    algo = ALGORITHMS[name]
    for attr in [a for a in Algorithm.__dict__ if not a.startswith("_")] + list(Algorithm.__annotations__):
        assert hasattr(algo, attr), f"{name} lacks {attr}"
    call = ("forward", (2, 4, 9, 9), (6, 4, 3, 3), (1, 1), (1, 1), 1)
    if algo.supports(*call) is None:
        assert algo.cost(*call, 4) > 0 and algo.workspace(*call, 4) >= 0


def test_choice_is_the_least_cost_among_the_candidates():
    from convolve._engine import select

    for xs, ws, st_, g in [((8, 128, 58, 58), (128, 1, 3, 3), (1, 1), 128), ((4, 16, 64, 64), (16, 16, 9, 9), (1, 1), 1),
                           ((16, 64, 30, 30), (64, 64, 3, 3), (1, 1), 1), ((2, 3, 20, 20), (4, 3, 3, 3), (2, 2), 1)]:
        for op in ("forward", "grad_input", "grad_weight"):
            names = select.candidates(op, xs, ws, st_, (1, 1), g, 4)
            costs = {n: ALGORITHMS[n].cost(op, xs, ws, st_, (1, 1), g, 4) for n in names}
            assert _engine.choose(op, xs, ws, st_, (1, 1), g, np.float32).name == min(costs, key=costs.get)
