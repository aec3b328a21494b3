"""The numerical-locality policy (docs/speed.md) for every algorithm the automatic choice can pick.

For each output (forward, grad input) and each weight-gradient entry, with `reach` R the algorithm's
tile radius (0 for a direct sum over the window):

1. where the float64 reference of the same float32 numbers is NaN or inf, ours is NaN or inf;
2. where no NaN or inf lies within R positions of its window, ours is finite and
   |ours - reference| <= LOCAL_ERROR * u * A (ALGORITHM_ERROR for F(4x4, 3x3)), with u the dtype's unit roundoff and A the largest
   Σ|w|·|x| over the windows within R of it (magnitudes themselves taken as the largest within R).

Hypothesis draws shapes, magnitudes spanning 16 decades in boxes (a loud region next to a quiet one)
and NaN/inf positions (in the input, the output gradient and sometimes the weight). The global FFT fails both rules (shown below); it runs only when asked for.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import maximum_filter

import convolve.engine_config as ec
import convolve.functional as F
from convolve import _engine
from convolve._engine import reference, tiled_fft
from convolve._engine.select import ALGORITHMS, AUTOMATIC
from oracle import draw_channels

LOCAL_ERROR = 64  # the policy's "small multiple" for direct sums and F(2x2, 3x3) (measured worst: gemm ~14)
# F(4x4, 3x3)'s transforms can magnify a tile's rounding up to 256-fold where a direct sum adds it unmagnified
# (|Aᵀ|(|G||g||Gᵀ| ⊙ |Bᵀ||d||B|)|A| <= 256 Σ|g||d| per output); measured worst 71 (float64), so 64 does not hold.
ALGORITHM_ERROR = {"winograd4": 256}
DEFAULT_CAN_CHOOSE = [n for n in AUTOMATIC if ALGORITHMS[n].local]
UNIT = {np.float32: 2.0**-24, np.float64: 2.0**-53}


def _boxes(draw, r, shape):
    """Magnitudes 10^e over the spatial axes, e in [-8, 8], constant on a few random boxes."""
    scale = np.ones(shape)
    for _ in range(draw(st.integers(0, 3))):
        box = tuple(slice(int(r.integers(0, n)), None if r.random() < 0.3 else int(r.integers(1, n + 1)))
                    for n in shape[2:])
        scale[(slice(None), slice(None)) + box] = 10.0 ** draw(st.integers(-8, 8))
    return scale


def _spoil(draw, a):
    """Put 0-3 NaN / inf / -inf values at drawn positions of `a` (in place)."""
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, a.size - 1))
        a.flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))


@st.composite
def hostile(draw, name):
    """(x, w, gy, stride, dilation, groups) that `name` accepts, with hostile magnitudes and NaN/inf."""
    if name.startswith("winograd"):
        nd, kernel, stride = 2, (3, 3), (1, 1)
        dilation = (draw(st.integers(1, 2)),) * 2
    else:
        nd = draw(st.integers(1, 2))
        longest = 4 if name != "tiled_fft" else 9 if nd == 2 else 33  # 1-D tiles grow with the kernel
        kernel = tuple(draw(st.integers(1, longest)) for _ in range(nd))
        unit = name == "tiled_fft" or draw(st.booleans())  # stride 1 half the time: the wide layout's case
        stride = (1,) * nd if unit else tuple(draw(st.integers(1, 2)) for _ in range(nd))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    groups, Cg, O, N = draw_channels(draw, name == "depthwise", c_max=3, cg_max=4, n_max=2)
    more = 12 if name != "tiled_fft" else 40 if len(kernel) == 2 else 300  # tiled_fft: several tiles
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, more)) for k, d in zip(kernel, dilation))
    r = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = r.standard_normal((N, Cg * groups) + spatial) * _boxes(draw, r, (N, Cg * groups) + spatial)
    w = r.standard_normal((O, Cg) + kernel) * 10.0 ** draw(st.integers(-4, 4))
    outs = reference.forward(np.zeros((1,) + x.shape[1:]), w, None, stride, dilation, groups).shape[2:]
    gy = r.standard_normal((N, O) + outs) * _boxes(draw, r, (N, O) + outs)
    _spoil(draw, x)
    _spoil(draw, gy)
    if draw(st.booleans()):
        _spoil(draw, w)
    return x, w, gy, stride, dilation, groups


def _near(a, reach):
    """Largest value within `reach` positions along the spatial axes."""
    if reach == 0:
        return a
    return maximum_filter(a, size=(1, 1) + (2 * reach + 1,) * (a.ndim - 2), mode="constant", cval=0)


def _magnitude(a):
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def _bad(a):
    return (~np.isfinite(a)).astype(float)


def _check(what, ours, ref, bound, tainted, dtype, multiple=LOCAL_ERROR):
    assert ours.shape == ref.shape and ours.dtype == dtype, what
    assert not np.isfinite(ours[~np.isfinite(ref)]).any(), f"{what}: finite where the reference is not"
    clean = ~tainted
    assert np.isfinite(ours[clean]).all(), f"{what}: NaN/inf beyond the tile of any non-finite input"
    err = np.abs(ours[clean].astype(np.float64) - ref[clean])
    allowed = multiple * UNIT[dtype] * bound[clean]
    worst = np.max(err / (allowed + 1e-300), initial=0)
    assert worst <= 1, f"{what}: error {worst:.3g}x the local bound"


def _policy_test(name):
    @given(problem=hostile(name), dtype=st.sampled_from([np.float32, np.float64]))
    @settings(max_examples=60, deadline=None)
    def test(problem, dtype):
        x, w, gy, stride, dilation, groups = problem
        algo, args = ALGORITHMS[name], (stride, dilation, groups)
        multiple = ALGORITHM_ERROR.get(name, LOCAL_ERROR)
        R = algo.reach * max(dilation)  # reach counts steps of the dilation
        if name == "tiled_fft":  # one call's tiles: 1-D tiles grow with the kernel
            R = tiled_fft.tile_size(w.shape, dilation) - 1
        x, w, gy = x.astype(dtype), w.astype(dtype), gy.astype(dtype)
        x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
        aw, ones_w, bad_w = _magnitude(w64), np.ones_like(w64), _bad(w64)
        with np.errstate(all="ignore"):
            # forward
            ref = reference.forward(x64, w64, None, *args)
            bound = _near(reference.forward(_near(_magnitude(x64), R), aw, None, *args), R)
            tainted = _near(reference.forward(_near(_bad(x64), R), ones_w, None, *args)
                            + reference.forward(np.ones_like(x64), bad_w, None, *args), R) > 0
            _check("forward", algo.forward(x, w, None, *args), ref, bound, tainted, dtype, multiple)
            # grad input
            ref = reference.grad_input(gy64, w64, x.shape, *args)
            bound = _near(reference.grad_input(_near(_magnitude(gy64), R), aw, x.shape, *args), R)
            tainted = _near(reference.grad_input(_near(_bad(gy64), R), ones_w, x.shape, *args)
                            + reference.grad_input(np.ones_like(gy64), bad_w, x.shape, *args), R) > 0
            _check("grad_input", algo.grad_input(gy, w, x.shape, *args), ref, bound, tainted, dtype, multiple)
            # grad weight: a sum over every position; a NaN/inf reaches only its channels' entries
            ref = reference.grad_weight(x64, gy64, w.shape, *args)
            bound = reference.grad_weight(_near(_magnitude(x64), R), _near(_magnitude(gy64), R), w.shape, *args)
            tainted = (reference.grad_weight(_near(_bad(x64), R), np.ones_like(gy64), w.shape, *args)
                       + reference.grad_weight(np.ones_like(x64), _near(_bad(gy64), R), w.shape, *args)) > 0
            _check("grad_weight", algo.grad_weight(x, gy, w.shape, *args), ref, bound, tainted, dtype, multiple)

    test.__name__ = f"test_{name}_meets_the_locality_policy"
    return test


for _name in DEFAULT_CAN_CHOOSE:
    globals()[f"test_{_name}_meets_the_locality_policy"] = _policy_test(_name)


def test_the_default_chooses_only_local_algorithms():
    assert set(DEFAULT_CAN_CHOOSE) == {"gemm", "kn2row", "winograd2", "winograd4", "tiled_fft", "depthwise", "direct"}
    for xs, ws, g in [((4, 16, 128, 128), (16, 16, 15, 15), 1), ((1, 3, 64, 64), (8, 3, 31, 31), 1),
                      ((2, 64, 32, 32), (64, 64, 3, 3), 1), ((2, 8, 200), (8, 8, 101), 1),
                      ((8, 32, 28, 28), (32, 1, 5, 5), 32)]:
        nd = len(xs) - 2
        for op in ("forward", "grad_input", "grad_weight"):
            name = _engine.choose(op, xs, ws, (1,) * nd, (1,) * nd, g, np.float32).name
            assert ALGORITHMS[name].local, (xs, ws, op, name)


# --- the cases that showed the problem (a 15x15 kernel used to go to the global FFT) -------------------

def _large_kernel_case():
    r = np.random.default_rng(0)
    x = r.standard_normal((1, 2, 40, 40)).astype(np.float32)
    w = r.standard_normal((2, 2, 15, 15)).astype(np.float32)
    return x, w


@pytest.mark.parametrize("algorithm", [None, "fft"])
def test_one_nan_reaches_only_the_windows_that_hold_it(algorithm):
    x, w = _large_kernel_case()
    x[0, 1, 0, 0] = np.nan
    with np.errstate(invalid="ignore"):
        y = F.conv2d(x, w, padding=7, algorithm=algorithm)
    windows_holding_it = np.zeros(y.shape, dtype=bool)
    windows_holding_it[:, :, :8, :8] = True  # outputs whose 15x15 window (padding 7) covers (0, 0)
    if algorithm is None:
        assert np.array_equal(np.isnan(y), windows_holding_it)
    else:  # the global FFT, on request: every output
        assert np.isnan(y).all()


@pytest.mark.parametrize("algorithm", [None, "fft"])
def test_a_loud_half_does_not_drown_the_quiet_half(algorithm):
    x, w = _large_kernel_case()
    x[:, :, :, 20:] *= 1e5
    y = F.conv2d(x, w, padding=7, algorithm=algorithm)
    exact = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=7, algorithm="gemm")
    quiet = (slice(None), slice(None), slice(None), slice(0, 20 - 7))  # windows entirely in the quiet half
    err = np.abs(y[quiet] - exact[quiet]).max() / np.abs(exact[quiet]).max()
    if algorithm is None:
        assert err < 1e-5
    else:
        assert err > 1e-3  # why it is not chosen by default


def test_fast_precision_lets_the_choice_take_the_fft():
    """A 31x31 kernel over 128x128: the global FFT is estimated fastest, the tiled one next."""
    call = ("forward", (4, 16, 128, 128), (16, 16, 31, 31), (1, 1), (1, 1), 1, np.float32)
    with ec.options(precision="fast"):
        assert _engine.choose(*call).name == "fft"
    assert _engine.choose(*call).name == "tiled_fft"
