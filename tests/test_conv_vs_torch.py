"""Convolution and transposed convolution against PyTorch on generated configurations."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from oracle import compare, random_inputs

SETTINGS = dict(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@st.composite
def conv_config(draw, nd=None):
    nd = nd or draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups > 1
    cg = 1 if depthwise else draw(st.integers(1, 3))
    og = draw(st.integers(1, 2))
    small = 3 if nd == 3 else 4
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    form = draw(st.sampled_from(["int", "tuple", "pairs", "valid", "same"]))
    pmax = 2
    if form == "int":
        padding = draw(st.integers(0, pmax))
        pairs = ((padding, padding),) * nd
    elif form == "tuple":
        padding = tuple(draw(st.integers(0, pmax)) for _ in range(nd))
        pairs = tuple((p, p) for p in padding)
    elif form == "pairs":
        pairs = tuple((draw(st.integers(0, pmax)), draw(st.integers(0, pmax))) for _ in range(nd))
        padding = pairs
    else:
        padding, pairs = form, None
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    spatial = tuple(e + draw(st.integers(0, small)) for e in eff)
    if pairs is None and form == "same":
        pairs = []
        for n, k, s, d in zip(spatial, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        pairs = tuple(pairs)
    elif pairs is None:
        pairs = ((0, 0),) * nd
    if mode in ("reflect", "circular"):  # these modes need padding smaller than the input
        spatial = tuple(max(n, max(p) + 1) for n, p in zip(spatial, pairs))
    return dict(
        nd=nd, N=draw(st.integers(1, 2)), C=groups * cg, O=groups * og, groups=groups, kernel=kernel,
        stride=stride, dilation=dilation, padding=padding, pairs=pairs, mode=mode, spatial=spatial,
        bias=draw(st.booleans()), dtype=draw(st.sampled_from([np.float64, np.float32])),
    )


def _torch_pad(pairs, mode):
    flat = tuple(v for pair in reversed(pairs) for v in pair)
    return lambda t: torch.nn.functional.pad(t, flat, mode=TORCH_MODE[mode])


@given(conv_config())
@settings(**SETTINGS)
def test_conv_matches_torch(cfg):
    nd = cfg["nd"]
    arrays = random_inputs(
        dict(input=(cfg["N"], cfg["C"]) + cfg["spatial"], weight=(cfg["O"], cfg["C"] // cfg["groups"]) + cfg["kernel"],
             bias=(cfg["O"],) if cfg["bias"] else None),
        cfg["dtype"],
    )
    kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"],
                  padding_mode=cfg["mode"])
    # PyTorch's functional conv has no padding_mode, no per-side pairs and no strided 'same': pad explicitly
    torch_kwargs = dict(stride=cfg["stride"], padding=0, dilation=cfg["dilation"], groups=cfg["groups"])
    compare(f"conv{nd}d", arrays, kwargs, torch_kwargs=torch_kwargs, torch_pre=_torch_pad(cfg["pairs"], cfg["mode"]))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_padding_stride_one_equals_torch_same(nd, dtype):
    shape = (2, 3) + (6, 7, 5)[:nd]
    arrays = random_inputs(dict(input=shape, weight=(4, 3) + (4, 3, 2)[:nd], bias=(4,)), dtype)
    compare(f"conv{nd}d", arrays, dict(padding="same", dilation=(2, 1, 1)[:nd]))


@st.composite
def conv_transpose_config(draw):
    nd = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    full = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(spatial, stride, dilation, kernel)]
    padding = tuple(draw(st.integers(0, (f - 1) // 2)) for f in full)
    return dict(nd=nd, N=draw(st.integers(1, 2)), C=groups * draw(st.integers(1, 2)), Og=draw(st.integers(1, 2)),
                groups=groups, kernel=kernel, stride=stride, dilation=dilation, output_padding=output_padding,
                padding=padding, spatial=spatial, bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float64, np.float32])))


@given(conv_transpose_config())
@settings(**SETTINGS)
def test_conv_transpose_matches_torch(cfg):
    arrays = random_inputs(
        dict(input=(cfg["N"], cfg["C"]) + cfg["spatial"], weight=(cfg["C"], cfg["Og"]) + cfg["kernel"],
             bias=(cfg["Og"] * cfg["groups"],) if cfg["bias"] else None),
        cfg["dtype"],
    )
    kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=cfg["output_padding"],
                  groups=cfg["groups"], dilation=cfg["dilation"])
    compare(f"conv_transpose{cfg['nd']}d", arrays, kwargs)


def test_conv_transpose_per_side_padding_crops_like_torch_full_output():
    x, w = random_inputs(dict(input=(1, 2, 4, 5), weight=(2, 3, 3, 3)), np.float64).values()
    import convolve.functional as F

    full = F.conv_transpose2d(x, w, stride=2)
    cropped = F.conv_transpose2d(x, w, stride=2, padding=((1, 2), (0, 3)))
    np.testing.assert_array_equal(cropped, full[:, :, 1:-2, 0:-3])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_channels_last_gives_the_same_numbers(dtype):
    import convolve
    import convolve.functional as F

    x, w, b = random_inputs(dict(input=(2, 3, 9, 8), weight=(5, 3, 3, 3), bias=(5,)), dtype).values()
    first = F.conv2d(x, w, b, stride=2, padding="same")
    last = F.conv2d(np.moveaxis(x, 1, -1), w, b, stride=2, padding="same", data_format="channels_last")
    np.testing.assert_array_equal(np.moveaxis(last, -1, 1), first)
    # gradients flow back through the layout change too
    X = convolve.Tensor(np.moveaxis(x, 1, -1).copy(), requires_grad=True)
    Y = F.conv2d(X, w, b, padding=1, data_format="channels_last")
    gy = np.random.default_rng(3).standard_normal(Y.shape).astype(dtype)
    Y.backward(gy)
    compare("conv2d", dict(input=x, weight=w, bias=b), dict(padding=1), grad=False)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(tx, torch.tensor(w), torch.tensor(b), padding=1).backward(torch.tensor(np.moveaxis(gy, -1, 1)))
    np.testing.assert_allclose(np.moveaxis(X.grad, -1, 1), tx.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_input_like_torch(nd):
    arrays = random_inputs(dict(input=(3,) + (5, 6, 4)[:nd], weight=(2, 3) + (2, 3, 2)[:nd], bias=(2,)))
    y = compare(f"conv{nd}d", arrays, dict(padding=1))
    assert y.shape[0] == 2 and y.ndim == nd + 1
