"""Pooling, padding, unfold and fold against PyTorch."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import convolve
import convolve.functional as F
from oracle import compare, random_inputs

SETTINGS = dict(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def pool_config(draw, kind):
    nd = draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if kind == "max" else (1,) * nd
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    limit = [k // 2 for k in kernel]  # PyTorch: padding at most half the kernel size
    padding = tuple(draw(st.integers(0, lim)) for lim in limit)
    # at least one full kernel span, so no window lies entirely in padding (PyTorch's max pooling
    # reads out of bounds there)
    spatial = tuple(e + draw(st.integers(0, 4)) for e in eff)
    return dict(nd=nd, shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3))) + spatial, kernel=kernel,
                stride=draw(st.sampled_from([None, stride])), padding=padding, dilation=dilation,
                ceil_mode=draw(st.booleans()), dtype=draw(st.sampled_from([np.float64, np.float32])))


@given(pool_config("max"))
@settings(**SETTINGS)
def test_max_pool_matches_torch(cfg):
    arrays = random_inputs(dict(input=cfg["shape"]), cfg["dtype"])
    kwargs = dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                  ceil_mode=cfg["ceil_mode"])
    compare(f"max_pool{cfg['nd']}d", arrays, kwargs)


@given(pool_config("avg"), st.booleans(), st.sampled_from([None, 3]))
@settings(**SETTINGS)
def test_avg_pool_matches_torch(cfg, count_include_pad, divisor):
    arrays = random_inputs(dict(input=cfg["shape"]), cfg["dtype"])
    kwargs = dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"],
                  count_include_pad=count_include_pad)
    if cfg["nd"] > 1:
        kwargs["divisor_override"] = divisor
    compare(f"avg_pool{cfg['nd']}d", arrays, kwargs)


def test_max_pool_return_indices_match_torch():
    x = random_inputs(dict(input=(2, 3, 7, 6)))["input"]
    y, idx = F.max_pool2d(x, 3, stride=2, padding=1, dilation=1, ceil_mode=True, return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())


def test_max_pool_ties_and_nan_like_torch():
    x = np.array([[[[1.0, 1.0], [0.0, np.nan]], [[2.0, 2.0], [2.0, 2.0]]]])
    X = convolve.Tensor(x, requires_grad=True)
    Y = F.max_pool2d(X, 2)
    Y.backward(np.ones(Y.shape))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, 2)
    ty.backward(torch.ones_like(ty))
    np.testing.assert_array_equal(Y.data, ty.detach().numpy())  # NaN propagates
    np.testing.assert_array_equal(X.grad, tx.grad.numpy())  # the gradient goes to one element


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("ndim,pad", [(3, (2, 1)), (4, (1, 2, 2, 0)), (5, (1, 0, 0, 2, 1, 1))])
def test_pad_matches_torch(mode, ndim, pad):
    shape = (2, 3, 4, 5, 3)[:ndim]
    arrays = random_inputs(dict(input=shape))
    kwargs = dict(pad=pad, mode=mode)
    if mode == "constant":
        kwargs["value"] = 0.5
    compare("pad", arrays, kwargs)


def test_negative_constant_pad_crops_like_torch():
    arrays = random_inputs(dict(input=(1, 2, 6, 5)))
    compare("pad", arrays, dict(pad=(-1, 2, 0, -3)))


@given(st.sampled_from([1, 2, 3]), st.integers(0, 1), st.integers(1, 2), st.integers(1, 2), st.integers(1, 3))
@settings(**SETTINGS)
def test_unfold_and_fold_match_torch_and_are_adjoint(nd, padding, dilation, stride, k):
    shape = (2, 3) + (7, 6, 5)[:nd]
    x = random_inputs(dict(input=shape))["input"]
    kernel = (k,) * nd
    kw = dict(kernel_size=kernel, dilation=dilation, padding=padding, stride=stride)
    cols = F.unfold(x, **kw)
    if nd == 2:  # PyTorch's unfold/fold stop at 2-D spatial input
        compare("unfold", dict(input=x), kw)
        compare("fold", dict(input=cols.copy()), dict(output_size=shape[2:], **kw))
    # adjoint: <unfold(x), c> == <x, fold(c)> for any c
    c = np.random.default_rng(5).standard_normal(cols.shape)
    folded = F.fold(c, shape[2:], **kw)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * folded), rtol=1e-10)


def test_max_pool_picks_the_same_element_as_torch_with_several_nans_and_ties():
    x = np.array([[[[np.nan, 1.0, np.nan, 0.0, 5.0, np.nan, 2.0, 2.0, 1.0]]]])
    ours = F.max_pool2d(x, (1, 3), return_indices=True)
    theirs = torch.nn.functional.max_pool2d(torch.tensor(x), (1, 3), return_indices=True)
    np.testing.assert_array_equal(ours[0], theirs[0].numpy())
    np.testing.assert_array_equal(ours[1], theirs[1].numpy())


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_window_of_minus_inf_beside_padding_picks_its_first_input_like_torch(nd):
    """PyTorch skips the padding: a window whose input values are all -inf picks its first tap inside
    the input (the NumPy path, 3-D here, once picked the padding); the gradient goes there too."""
    x = np.full((1, 2) + (5,) * nd, -np.inf)
    x[0, 1].reshape(-1)[::3] = 1.0
    kw = dict(kernel_size=3, stride=2, padding=1, dilation=(2,) + (1,) * (nd - 1), ceil_mode=True)
    X = convolve.Tensor(x, requires_grad=True)
    y, idx = getattr(F, f"max_pool{nd}d")(X, return_indices=True, **kw)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = getattr(torch.nn.functional, f"max_pool{nd}d")(tx, return_indices=True, **kw)
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = np.arange(y.size, dtype=np.float64).reshape(y.shape)  # integers: sums exact in any order
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(X.grad, tx.grad.numpy())


@pytest.mark.parametrize("nd, kernel, spatial", [(1, (2,), (9,)), (2, (2, 2), (8, 7)), (2, (3, 2), (7, 9)),
                                                 (3, (2, 2, 2), (4, 5, 4)), (2, (1, 3), (5, 6))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_overlapping_max_pool_ties_pick_the_first_like_torch(nd, kernel, spatial, dtype):
    # stride == kernel takes the tiled path; after a ReLU most windows hold tied zeros, and sizes
    # not divisible by the kernel drop the remainder (floor mode)
    rng = np.random.default_rng(sum(spatial))
    x = np.maximum(rng.integers(-3, 3, (2, 3) + spatial), 0).astype(dtype)
    compare(f"max_pool{nd}d", dict(input=x), dict(kernel_size=kernel))


def test_max_pool_infinite_gradient_reaches_only_the_picked_element():
    x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    X = convolve.Tensor(x, requires_grad=True)
    F.max_pool2d(X, 2).backward(np.full((1, 1, 1, 1), np.inf))
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2).backward(torch.full((1, 1, 1, 1), np.inf, dtype=torch.float64))
    np.testing.assert_array_equal(X.grad, tx.grad.numpy())


def test_non_overlapping_max_pool_with_ceil_mode_keeps_the_partial_window():
    x = random_inputs(dict(input=(1, 2, 3, 5)))["input"]
    compare("max_pool2d", dict(input=x), dict(kernel_size=2, ceil_mode=True))


@pytest.mark.parametrize("threads", [2, 3])
def test_non_overlapping_max_pool_in_parts_of_the_batch_on_threads(threads, monkeypatch):
    from convolve import engine_config
    from convolve._engine import parallel

    monkeypatch.setattr(parallel, "SPLIT_BYTES", 0)  # split even tiny batches
    x = np.maximum(random_inputs(dict(input=(5, 3, 8, 9)))["input"], 0)
    with engine_config.options(threads=threads):
        compare("max_pool2d", dict(input=x), dict(kernel_size=2))
        compare("max_pool2d", dict(input=x), dict(kernel_size=(3, 2)))  # rows and columns left over
        compare("max_pool2d", dict(input=x), dict(kernel_size=(2, 3)))  # whole tiles
