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


def _peak_extra(fn, warm=False):
    """(result, peak bytes allocated during fn beyond those held before it). `warm`: call fn once
    before measuring, so that compiled kernels loaded on a first call (numba's own allocations) do
    not count; the module's tests then pass in any order."""
    if warm:
        fn()
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
    "1-D": ((8, 16, 4000), (16, 16, 31)),  # tiles of 120 outputs
}


@pytest.mark.parametrize("layer, algorithm, cap", [(layer, a, CAP) for layer in LAYERS for a in (None, "gemm", "kn2row")]
                         + [("large kernel", "fft", CAP)]
                         # the tiled FFT's smallest piece (one sample: tiles, spectra, kernel spectra) needs more
                         + [("large kernel", "tiled_fft", 2 * CAP), ("1-D", "tiled_fft", 2 * CAP)])
def test_every_op_stays_under_the_memory_cap(layer, algorithm, cap):
    xs, ws = LAYERS[layer]
    r = np.random.default_rng(0)
    x = r.standard_normal(xs).astype(np.float32)
    w = r.standard_normal(ws).astype(np.float32)
    nd = len(xs) - 2
    args = ((1,) * nd, (1,) * nd, 1)
    k = ws[-1]
    naive = xs[0] * xs[1] * k**nd * int(np.prod([s - k + 1 for s in xs[2:]])) * 4
    assert naive > 10 * cap  # the unchunked im2col really would not fit
    if algorithm is not None:  # and the algorithm's own estimate for the whole call exceeds the cap: chunks run
        algo = _engine.ALGORITHMS[algorithm]
        assert algo.workspace("forward", xs, ws, *args, 4) > cap
    y_full = _engine.forward(x, w, None, *args, algorithm)
    gy = r.standard_normal(y_full.shape).astype(np.float32)
    with ec.options(memory_limit=cap):
        y, extra = _peak_extra(lambda: _engine.forward(x, w, None, *args, algorithm), warm=True)
        assert extra <= cap + y.nbytes + SLACK, f"forward used {extra / 2**20:.1f} MiB"
        gx, extra = _peak_extra(lambda: _engine.grad_input(gy, w, xs, *args, algorithm), warm=True)
        assert extra <= cap + gx.nbytes + SLACK, f"grad_input used {extra / 2**20:.1f} MiB"
        gw, extra = _peak_extra(lambda: _engine.grad_weight(x, gy, ws, *args, algorithm), warm=True)
        assert extra <= cap + gw.nbytes + SLACK, f"grad_weight used {extra / 2**20:.1f} MiB"
    np.testing.assert_allclose(y, y_full, rtol=1e-4, atol=1e-3)


def test_without_the_cap_the_same_call_does_allocate_the_columns(monkeypatch):
    """The measurement is real: uncapped and unblocked, naive im2col's columns show up in the peak
    (on one thread: lanes hold only their own blocks' columns)."""
    from convolve._engine import gemm

    monkeypatch.setattr(gemm, "BLOCK_BYTES", 2**40)
    r = np.random.default_rng(1)
    x = r.standard_normal((4, 32, 48, 48)).astype(np.float32)
    w = r.standard_normal((32, 32, 5, 5)).astype(np.float32)
    with ec.options(memory_limit=2**40, threads=1):
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


# --- padding is applied piece by piece and counted -----------------------------------------------------

def test_padded_conv_stays_under_the_cap_forward_and_backward():
    """The padded copy of the input used to be made in full before the engine chunked the call
    (32x64x512x512 float32 padding 1: ~2 GB above input + output under a 256 MiB cap); now each piece
    is padded on its own and counted. Same check on a smaller layer under a smaller cap."""
    r = np.random.default_rng(3)
    x = r.standard_normal((8, 16, 64, 64)).astype(np.float32)  # 2 MiB; its padded copy alone > CAP / 2
    w = r.standard_normal((16, 16, 3, 3)).astype(np.float32)
    pads = ((1, 1), (1, 1))
    cap = x.nbytes // 4
    expected = F.conv2d(x, w, padding=1)
    with ec.options(memory_limit=cap):
        y, extra = _peak_extra(lambda: F.conv2d(x, w, padding=1), warm=True)
        assert extra <= cap + y.nbytes + SLACK, f"forward used {extra / 2**20:.2f} MiB"
        gy = r.standard_normal(y.shape).astype(np.float32)
        gx, extra = _peak_extra(lambda: _engine.grad_input(gy, w, x.shape, (1, 1), (1, 1), 1, padding=pads), warm=True)
        assert extra <= cap + gx.nbytes + SLACK, f"grad_input used {extra / 2**20:.2f} MiB"
        gw, extra = _peak_extra(lambda: _engine.grad_weight(x, gy, w.shape, (1, 1), (1, 1), 1, padding=pads), warm=True)
        assert extra <= cap + gw.nbytes + SLACK, f"grad_weight used {extra / 2**20:.2f} MiB"
    # float32 and possibly Winograd F(4x4, 3x3) on both sides: its documented error, 1e-4 of the scale
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    gx_whole = _engine.grad_input(gy, w, xp.shape, (1, 1), (1, 1), 1)[:, :, 1:-1, 1:-1]
    np.testing.assert_allclose(gx, gx_whole, rtol=1e-4, atol=1e-4 * np.abs(gx_whole).max())
    np.testing.assert_allclose(gw, _engine.grad_weight(xp, gy, w.shape, (1, 1), (1, 1), 1), rtol=1e-4, atol=1e-2)


def test_the_issue_layer_is_planned_within_the_cap():
    """32x64x512x512 float32, padding 1, 3x3: every piece the default plan runs, padded copy
    included, needs at most the default 256 MiB cap (planning only: the layer itself is 2 GiB)."""
    from convolve._engine import chunks

    xs, ws, pads = (32, 64, 512, 512), (64, 64, 3, 3), ((1, 1), (1, 1))
    for op in ("forward", "grad_input", "grad_weight"):
        algo = _engine.choose(op, chunks.padded_shape(xs, pads), ws, (1, 1), (1, 1), 1, np.float32)
        nb, rows = chunks.plan(op, algo, xs, ws, (1, 1), (1, 1), 1, 4, ec.DEFAULT_MEMORY_LIMIT, 512, pads)
        piece = (nb, 64) + ((514, 514) if rows is None else (rows + 2, 514))
        need = algo.workspace(op, piece, ws, (1, 1), (1, 1), 1, 4) + (2 if op == "grad_input" else 1) * np.prod(piece) * 4
        assert need <= ec.DEFAULT_MEMORY_LIMIT, (op, algo.name, nb, rows)


@pytest.mark.parametrize("mode", ["zeros", "replicate"])
def test_absurd_padding_is_refused_up_front_with_the_size_it_would_need(mode):
    x, w = np.zeros((1, 8, 10, 10), np.float32), np.zeros((8, 8, 3, 3), np.float32)
    what = "output" if mode == "zeros" else "padded input"
    pattern = (rf"the {what} of padding \(\(1000000, 1000000\), \(1000000, 1000000\)\) would be "
               rf"\(1, 8, 20000\d+, 20000\d+\) float32: [\d,.]+ GiB, more than this machine's memory")

    def call():
        with pytest.raises(ValueError, match=pattern):
            F.conv2d(x, w, padding=10**6, padding_mode=mode)

    _, extra = _peak_extra(call)
    assert extra < 2**20  # refused before anything was allocated


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_depthwise_counts_its_wide_copies(data_format):
    """Depthwise with stride 1 lays its output and output gradient on the wide grid and reads a
    contiguous input: those copies count against the cap (a channels-last input is strided)."""
    r = np.random.default_rng(5)
    x = r.standard_normal((16, 32, 64, 64)).astype(np.float32)
    w = r.standard_normal((32, 1, 3, 3)).astype(np.float32)
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if data_format == "channels_last" else x
    expected = F.conv2d(x, w, groups=32, algorithm="gemm")
    cap = x.nbytes // 2  # above depthwise's fixed block scratch, so depthwise stays the choice
    with ec.options(memory_limit=cap):
        assert _engine.choose("forward", x.shape, w.shape, (1, 1), (1, 1), 32, x.dtype).name == "depthwise"
        y, extra = _peak_extra(lambda: F.conv2d(xin, w, groups=32, data_format=data_format), warm=True)
        assert extra <= cap + y.nbytes + SLACK, f"forward used {extra / 2**20:.2f} MiB"
        gy = r.standard_normal(expected.shape).astype(np.float32)
        gx, extra = _peak_extra(lambda: _engine.grad_input(gy, w, x.shape, (1, 1), (1, 1), 32), warm=True)
        assert extra <= cap + gx.nbytes + SLACK, f"grad_input used {extra / 2**20:.2f} MiB"
    got = y.transpose(0, 3, 1, 2) if data_format == "channels_last" else y
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# --- copy-mode padding, transposed convolution's frame: also per piece -----------------------------------

def _capped_call_and_backward(fn, leaves, cap, gy=None):
    """(output, extra of the forward, input gradients, extra of the backward) of fn(*Tensors) under `cap`."""
    from convolve.autograd import Tensor

    ts = [Tensor(a, requires_grad=True) for a in leaves]
    with ec.options(memory_limit=cap):
        y, fwd = _peak_extra(lambda: fn(*ts))
        gy = np.ones(y.shape, y.data.dtype) if gy is None else gy
        _, bwd = _peak_extra(lambda: y.backward(gy))
    return y.data, fwd, [t.grad for t in ts], bwd


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_copy_mode_padding_is_applied_per_piece_under_the_cap(mode):
    """reflect/replicate/circular used to pad the whole input before the engine chunked the call:
    a padded copy (here 2.1 MiB) beyond the cap. Bound, for the forward: cap + the output; for the
    backward: cap + twice the two gradients (what the op returns and autograd's copy in .grad). Results: the uncapped call's, to float32 rounding
    (pieces change Winograd's tiling and the GEMM blocking)."""
    r = np.random.default_rng(6)
    x = r.standard_normal((8, 16, 64, 64)).astype(np.float32)  # 2 MiB
    w = r.standard_normal((16, 16, 3, 3)).astype(np.float32)
    gy = r.standard_normal((8, 16, 64, 64)).astype(np.float32)
    cap = x.nbytes // 4

    def conv(a, b):
        return F.conv2d(a, b, padding=1, padding_mode=mode)

    y0, _, (gx0, gw0), _ = _capped_call_and_backward(conv, (x, w), 2**30, gy)  # also loads compiled kernels
    y, fwd, (gx, gw), bwd = _capped_call_and_backward(conv, (x, w), cap, gy)
    assert fwd <= cap + y.nbytes + SLACK, f"forward used {fwd / 2**20:.2f} MiB"
    # autograd stores a copy of each leaf's gradient (Tensor.grad): the gradients count twice
    assert bwd <= cap + 2 * (gx.nbytes + gw.nbytes) + SLACK, f"backward used {bwd / 2**20:.2f} MiB"
    for got, want in ((y, y0), (gx, gx0), (gw, gw0)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_transposed_convolution_crops_its_frame_per_piece_under_the_cap():
    """conv_transpose2d used to make the whole uncropped frame (here 66x66 per plane, 2.1 MiB),
    then a cropped copy, and in the backward the whole frame's gradient. Bound: forward, cap + the
    output; backward, cap + twice the three gradients (returned, and copied into .grad). Results: the uncapped call's, to float32 rounding."""
    r = np.random.default_rng(7)
    x = r.standard_normal((8, 16, 32, 32)).astype(np.float32)
    w = r.standard_normal((16, 16, 4, 4)).astype(np.float32)
    b = r.standard_normal(16).astype(np.float32)
    gy = r.standard_normal((8, 16, 64, 64)).astype(np.float32)  # the output: 2 MiB
    cap = gy.nbytes // 4

    def convt(a, c, d):
        return F.conv_transpose2d(a, c, d, stride=2, padding=1)

    y0, _, grads0, _ = _capped_call_and_backward(convt, (x, w, b), 2**30, gy)
    y, fwd, grads, bwd = _capped_call_and_backward(convt, (x, w, b), cap, gy)
    assert y.shape == gy.shape
    assert fwd <= cap + y.nbytes + SLACK, f"forward used {fwd / 2**20:.2f} MiB"
    assert bwd <= cap + 2 * sum(g.nbytes for g in grads) + SLACK, f"backward used {bwd / 2**20:.2f} MiB"
    for got, want in zip((y,) + tuple(grads), (y0,) + tuple(grads0)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# --- pooling: the padded copy per piece -------------------------------------------------------------------

POOLS = {  # spatial dims: (input shape, 2 MiB of float32, or one plane larger than the cap)
    1: (8, 16, 4096), 2: (8, 16, 64, 64), 3: (8, 16, 16, 16, 16), "plane": (1, 1, 1024, 1024)}


def _pool(op, nd):
    if op == "max":
        return lambda t: getattr(F, f"max_pool{nd}d")(t, 3, stride=2, padding=1, ceil_mode=True)
    return lambda t: getattr(F, f"avg_pool{nd}d")(t, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("case", [1, 2, 3, "plane"])
def test_pooling_pads_per_piece_under_the_cap(op, case):
    """The NumPy pooling (3-D, and 1-D/2-D with the compiled tier off) padded the whole input first
    (and made the input gradient on the padded frame). Bound: the forward, cap + its outputs (for max
    pooling the picked taps too); the op's backward, cap + the input gradient. Forward results equal
    the uncapped call bitwise; input gradients to float rounding (row pieces sum overlapping windows'
    shares in another order)."""
    from convolve.autograd import Tensor

    shape = POOLS[case]
    nd = len(shape) - 2
    x = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    cap = x.nbytes // 8
    fn = _pool(op, nd)
    with ec.options(jit=False):
        x0 = Tensor(x, requires_grad=True)
        y0 = fn(x0)
        gy = np.random.default_rng(9).standard_normal(y0.shape).astype(np.float32)
        y0.backward(gy)
        with ec.options(memory_limit=cap):
            y, fwd = _peak_extra(lambda: fn(Tensor(x, requires_grad=True)))
            outputs = y.data.nbytes + (y.data.size * 2 if op == "max" else 0)  # + int16 picks
            assert fwd <= cap + outputs + SLACK, f"forward used {fwd / 2**20:.2f} MiB"
            (gx,), bwd = _peak_extra(lambda: y._backward(gy))
            assert bwd <= cap + gx.nbytes + SLACK, f"backward used {bwd / 2**20:.2f} MiB"
    np.testing.assert_array_equal(y.data, y0.data)
    gx0 = x0.grad
    np.testing.assert_allclose(gx, gx0, rtol=1e-6, atol=1e-6 * np.abs(gx0).max())


def test_pooling_that_cannot_fit_the_cap_says_how_much_it_needs():
    x = np.zeros((1, 1, 8, 100_000), np.float32)  # one output row reads 3 padded rows: 1.1 MiB
    with ec.options(jit=False, memory_limit=2**20):
        with pytest.raises(ValueError, match=r"max pooling needs at least 1\.[0-9] MiB of temporaries for one output "
                                             r"row of input \(1, 1, 8, 100000\) .* above the memory limit of 1\.0 MiB"):
            F.max_pool2d(x, 3, stride=1, padding=1)


@pytest.mark.parametrize("kw", [{"stride": 10**6}, {"dilation": 10**6}])
def test_absurd_transposed_outputs_are_refused_up_front_with_their_size(kw):
    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 3, 3), np.float32)

    def call():
        with pytest.raises(ValueError, match=r"the output of stride .* would be \(1, 1, 2000003, 2000003\) "
                                             r"float32: [\d,.]+ GiB, more than this machine's memory"):
            F.conv_transpose2d(x, w, **kw)

    _, extra = _peak_extra(call)
    assert extra < 2**20


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("window", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
def test_compiled_pooling_copies_a_channels_last_input_in_blocks(op, window):
    """The compiled pooling kernels read contiguous planes: a channels-last input (and its output
    gradient) used to be copied whole. Bound: forward, cap + the output (+ the picked taps, int8);
    backward, cap + twice the input gradient (the op's and autograd's copy in .grad). Results: bitwise
    those of the channels-first call."""
    from convolve import _engine as eng
    from convolve.autograd import Tensor

    if not eng.kernels.enabled():
        pytest.skip("the compiled tier is off (numba missing or CONVOLVE_JIT=0): this path does not run")
    r = np.random.default_rng(10)
    x = r.standard_normal((32, 64, 64, 16)).astype(np.float32)  # N, H, W, C: 8 MiB
    fn = getattr(F, f"{op}_pool2d")
    y0 = fn(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), **window)
    gy = r.standard_normal(y0.shape).astype(np.float32).transpose(0, 2, 3, 1)  # channels-last gradient
    cap = x.nbytes // 16
    with ec.options(memory_limit=cap):  # first calls load compiled kernels: not the op's temporaries
        fn(Tensor(x[:2], requires_grad=True), **window, data_format="channels_last").backward(gy[:2])
    with ec.options(memory_limit=cap):
        t = Tensor(x, requires_grad=True)
        y, fwd = _peak_extra(lambda: fn(t, **window, data_format="channels_last"))
        picks = y.data.size if op == "max" else 0
        assert fwd <= cap + y.data.nbytes + picks + SLACK, f"forward used {fwd / 2**20:.2f} MiB"
        _, bwd = _peak_extra(lambda: y.backward(gy))
        assert bwd <= cap + 2 * t.grad.nbytes + SLACK, f"backward used {bwd / 2**20:.2f} MiB"
    np.testing.assert_array_equal(y.data, y0.transpose(0, 2, 3, 1))
    t0 = Tensor(x, requires_grad=True)
    fn(t0, **window, data_format="channels_last").backward(gy)
    with ec.options(memory_limit=2**30):
        t1 = Tensor(x, requires_grad=True)
        fn(t1, **window, data_format="channels_last").backward(gy)
    np.testing.assert_array_equal(t.grad, t1.grad)


@pytest.mark.parametrize("mode", ["constant", "replicate"])
def test_absurd_pad_is_refused_up_front_with_its_size(mode):
    def call():
        with pytest.raises(ValueError, match=r"the output of pad \(1000000, 1000000, 1000000, 1000000\) would be "
                                             r"\(1, 1, 2000003, 2000003\) float32: [\d,.]+ GiB, more than this machine's memory"):
            F.pad(np.ones((1, 1, 3, 3), np.float32), (10**6,) * 4, mode=mode)

    _, extra = _peak_extra(call)
    assert extra < 2**20
