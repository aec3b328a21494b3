"""Shapes at the edges: empty batches and channels (as PyTorch does them), and kernels far larger
than the input (the taps that read padding only are dropped, exactly)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convolve
import convolve.functional as F
from convolve import _engine
from convolve._engine import reference, trim


def _both(fn, torch_fn, x, w, b, **kw):
    """Forward and every gradient through convolve and through PyTorch: (ours, theirs) pairs."""
    X, W, B = (convolve.Tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y, ty = fn(X, W, B, **kw), torch_fn(tx, tw, tb, **kw)
    gy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(gy)
    ty.backward(torch.tensor(gy))
    return [(y.data, ty.detach().numpy()), (X.grad, tx.grad.numpy()), (W.grad, tw.grad.numpy()),
            (B.grad, tb.grad.numpy())]


@pytest.mark.parametrize("fn, x_shape, w_shape, groups", [
    ("conv2d", (0, 3, 5, 5), (4, 3, 3, 3), 1),  # no samples
    ("conv2d", (2, 0, 5, 5), (4, 0, 3, 3), 1),  # no input channels: PyTorch returns no output channels
    ("conv2d", (2, 0, 5, 5), (4, 0, 3, 3), 2),
    ("conv1d", (0, 2, 7), (2, 1, 3), 2),
    ("conv3d", (0, 1, 3, 4, 5), (2, 1, 2, 2, 2), 1),
    ("conv_transpose2d", (0, 3, 5, 5), (3, 4, 3, 3), 1),
])
def test_empty_tensors_do_what_pytorch_does(fn, x_shape, w_shape, groups):
    r = np.random.default_rng(0)
    x, w = r.standard_normal(x_shape), r.standard_normal(w_shape)
    b = r.standard_normal(w_shape[1] * groups if "transpose" in fn else w_shape[0])
    for ours, theirs in _both(getattr(F, fn), getattr(torch.nn.functional, fn), x, w, b, groups=groups, padding=1):
        assert ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("fn, w_shape, why", [
    ("conv2d", (0, 3, 3, 3), r"weight has no output channels \(shape \(0, 3, 3, 3\)\)"),
    ("conv_transpose2d", (3, 0, 3, 3), r"transposed weight .* has shape \(3, 0, 3, 3\); it needs at least one"),
])
def test_weights_without_output_channels_are_refused_like_pytorch(fn, w_shape, why):
    x = np.zeros((2, 3, 5, 5))
    with pytest.raises(RuntimeError):
        getattr(torch.nn.functional, fn)(torch.tensor(x), torch.zeros(w_shape, dtype=torch.float64))
    with pytest.raises(ValueError, match=why):
        getattr(F, fn)(x, np.zeros(w_shape))


@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_weight"])
def test_the_engine_needs_no_cost_model_for_empty_calls(op):
    """Every algorithm's cost of an empty call is never asked: the result is a sum over nothing."""
    x, w, gy = np.zeros((0, 3, 6, 6)), np.ones((4, 3, 3, 3)), np.zeros((0, 4, 4, 4))
    for name in [None] + list(_engine.ALGORITHMS):
        if op == "forward":
            assert _engine.forward(x, w, np.ones(4), (1, 1), (1, 1), 1, name).shape == (0, 4, 4, 4)
        elif op == "grad_input":
            assert _engine.grad_input(gy, w, x.shape, (1, 1), (1, 1), 1, name).shape == x.shape
        else:
            np.testing.assert_array_equal(_engine.grad_weight(x, gy, w.shape, (1, 1), (1, 1), 1, name), np.zeros(w.shape))


# --- kernels far larger than the input ----------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 2, 6, 7), (3, 2, 21, 20), dict(padding="same")),
    ((1, 2, 5, 9), (2, 2, 14, 3), dict(padding=(12, 1), stride=(2, 1))),
    ((1, 1, 4), (2, 1, 30), dict(padding=30, dilation=2)),
    ((2, 2, 3, 3), (2, 1, 9, 9), dict(padding=8, groups=2)),
])
def test_large_kernels_over_small_inputs_match_pytorch(x_shape, w_shape, kw):
    r = np.random.default_rng(2)
    x, w, b = r.standard_normal(x_shape), r.standard_normal(w_shape), r.standard_normal(w_shape[0])
    nd = len(x_shape) - 2
    fn, tfn = getattr(F, f"conv{nd}d"), getattr(torch.nn.functional, f"conv{nd}d")
    for ours, theirs in _both(fn, tfn, x, w, b, **kw):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_a_2400_kernel_over_40x40_runs_only_the_taps_that_reach_the_input():
    """2400x2400 'same' over 40x40: 79x79 taps per output reach the image; the rest read padding."""
    t = trim.plan((40, 40), (2400, 2400), (1, 1), (1, 1), ((1199, 1200), (1199, 1200)), (40, 40))
    assert t.taps == (slice(1160, 1239), slice(1160, 1239)) and t.pads == ((39, 39), (39, 39))
    r = np.random.default_rng(3)
    x = r.standard_normal((1, 1, 40, 40)).astype(np.float32)
    w = (r.standard_normal((1, 1, 2400, 2400)) / 80).astype(np.float32)
    X, W = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
    y = F.conv2d(X, W, padding="same")
    y.backward(np.ones(y.shape, np.float32))
    kept = w[:, :, 1160:1239, 1160:1239].astype(np.float64)
    np.testing.assert_allclose(y.data, reference.forward(np.pad(x.astype(np.float64), ((0, 0), (0, 0), (39, 39), (39, 39))),
                                                         kept, None, (1, 1), (1, 1), 1), rtol=1e-4, atol=1e-4)
    assert not W.grad[:, :, :1160].any() and not W.grad[:, :, 1239:].any()  # those taps read zeros only
    assert W.grad[:, :, 1160:1239, 1160:1239].all()


def test_dropped_taps_still_turn_non_finite_weights_and_gradients_into_nan_like_pytorch():
    r = np.random.default_rng(4)
    x, w = r.standard_normal((2, 2, 6, 6)), r.standard_normal((3, 2, 21, 21))
    w[1, 0, 0, 0] = np.inf  # a tap that reads padding only: 0·inf
    gy = r.standard_normal((2, 3, 6, 6))
    gy[0, 2, 1, 1] = np.inf
    with np.errstate(invalid="ignore"):
        y = F.conv2d(x, w, padding="same")
        ty = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding="same").numpy()
        gw = _engine.grad_weight(x, gy, w.shape, (1, 1), (1, 1), 1, padding=((10, 10), (10, 10)))
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(w, requires_grad=True)
        torch.nn.functional.conv2d(tx, tw, padding="same").backward(torch.tensor(gy))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(tw.grad.numpy()))
    np.testing.assert_array_equal(np.isinf(gw), np.isinf(tw.grad.numpy()))


def test_import_convolve_loads_neither_scipy_fft_nor_numba():
    """The FFT algorithms import scipy.fft when they first run, not when convolve is imported."""
    import subprocess
    import sys

    code = "import sys, convolve; print([m for m in ('scipy.fft', 'numba', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dilated_winograd_costs_its_phases_without_listing_them():
    """A dilation-d Winograd call runs one convolution per phase that outputs fall on; its cost and
    workspace group the phases by shape (at most 4 shapes) instead of listing d² of them, which hung
    for huge dilations. The grouping counts exactly the phases it runs."""
    from collections import Counter

    from convolve._engine.winograd import F4

    for H, W in [(3, 3), (7, 40), (29, 31), (100, 9)]:
        for dh in (1, 2, 3, 5, 14, 40):
            for dw in (1, 4, 13):
                every = [(a, b, (len(range(a, H, dh)), len(range(b, W, dw)))) for a in range(dh) for b in range(dw)]
                used = [p for p in every if min(p[2]) >= 3]
                assert F4._phases((1, 1, H, W), (dh, dw)) == used
                assert F4._phase_shapes((1, 1, H, W), (dh, dw)) == dict(Counter(S for _, _, S in used))
    # 10^12 phases of which none can hold an output: a handful of operations, not a hang
    assert F4._phase_shapes((1, 1, 3000, 3000), (10**6, 10**6)) == {}
    assert F4.cost("forward", (1, 1, 3000, 3000), (1, 1, 3, 3), (1, 1), (10**6, 10**6), 1, 4) == 0
