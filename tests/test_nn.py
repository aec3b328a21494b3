"""convolve.nn and the new functional ops: against PyTorch, against their functional forms,
finite differences, state_dict compatibility, initialisation and seeding, errors."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import convolve
import convolve.functional as F
import convolve.nn as nn
from oracle import assert_close, compare

TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
DTYPES = [np.float64, np.float32]


def _rand(shape, dtype=np.float64, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# --- functional ops against torch -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, kwargs", [
    ("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("tanh", {}), ("sigmoid", {}),
    ("softmax", {"dim": 1}), ("softmax", {"dim": -1}), ("log_softmax", {"dim": 0}), ("log_softmax", {"dim": 2}),
])
def test_activations_match_torch(op, kwargs, dtype):
    x = _rand((3, 4, 5), dtype, scale=3)
    x[0, 0, :2] = [40.0, -40.0]  # sigmoid / softmax must not overflow
    compare(op, {"input": x}, kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, bias", [((4, 6), True), ((2, 3, 6), True), ((6,), False), ((5, 6), False)])
def test_linear_matches_torch(shape, bias, dtype):
    compare("linear", {"input": _rand(shape, dtype), "weight": _rand((3, 6), dtype, 1),
                       "bias": _rand((3,), dtype, 2) if bias else None})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (2, 3, 4, 5), (2, 3, 2, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch_and_updates_running_stats(shape, training, affine, dtype):
    x = _rand(shape, dtype, scale=2) + 1
    C = shape[1]
    rm, rv = _rand((C,), dtype, 3), np.abs(_rand((C,), dtype, 4)) + 0.5
    w, b = (_rand((C,), dtype, 5), _rand((C,), dtype, 6)) if affine else (None, None)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    tensors = {k: (None if v is None else convolve.Tensor(v.copy(), requires_grad=True)) for k, v in
               {"input": x, "weight": w, "bias": b}.items()}
    ts = {k: (None if v is None else torch.tensor(v, requires_grad=True)) for k, v in {"input": x, "weight": w, "bias": b}.items()}
    y = F.batch_norm(tensors["input"], rm, rv, tensors["weight"], tensors["bias"], training, 0.3, 1e-3)
    ty = torch.nn.functional.batch_norm(ts["input"], trm, trv, ts["weight"], ts["bias"], training, 0.3, 1e-3)
    assert_close(y.data, ty.detach().numpy(), dtype, "batch_norm forward")
    assert_close(rm, trm.numpy(), dtype, "running_mean")
    assert_close(rv, trv.numpy(), dtype, "running_var (unbiased)")
    g = _rand(y.shape, dtype, 7)
    y.backward(g)
    ty.backward(torch.tensor(g))
    for k, t in ts.items():
        if t is not None:
            assert_close(tensors[k].grad, t.grad.numpy(), dtype, f"batch_norm d/d{k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd, in_shape, out", [
    (1, (2, 3, 10), 4), (1, (3, 7), 7), (1, (2, 3, 5), 8),
    (2, (2, 3, 7, 9), (3, 4)), (2, (2, 3, 8, 8), 1), (2, (3, 5, 6), (None, 4)), (2, (1, 2, 5, 5), 7),
    (3, (1, 2, 5, 6, 7), (2, 3, 4)), (3, (1, 2, 4, 4, 4), 1),
])
def test_adaptive_avg_pool_matches_torch(nd, in_shape, out, dtype):
    compare(f"adaptive_avg_pool{nd}d", {"input": _rand(in_shape, dtype)}, {"output_size": out})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_shape, out", [((2, 3, 7, 9), (3, 4)), ((2, 3, 8, 8), 2), ((3, 5, 6), (None, 4)),
                                           ((1, 2, 5, 5), 7), ((2, 2, 6, 6), 1)])
def test_adaptive_max_pool2d_matches_torch_with_indices(in_shape, out, dtype):
    x = _rand(in_shape, dtype)
    compare("adaptive_max_pool2d", {"input": x}, {"output_size": out})
    _, idx = F.adaptive_max_pool2d(x, out, return_indices=True)
    _, tidx = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())


def test_adaptive_max_pool2d_ties_pick_the_first_and_gradients_add_on_overlap():
    x = np.zeros((1, 1, 5, 5))  # all ties, overlapping windows (5 -> 3)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.adaptive_max_pool2d(tx, 3, return_indices=True)
    t = convolve.Tensor(x, requires_grad=True)
    y, idx = F.adaptive_max_pool2d(t, 3, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())
    y.backward(np.ones(y.shape))
    ty.backward(torch.ones(ty.shape, dtype=torch.float64))
    np.testing.assert_array_equal(t.grad, tx.grad.numpy())


def test_dropout_statistics_scaling_and_seeding():
    x = np.ones((200, 50), np.float32)
    y = F.dropout(x, 0.3, True, generator=np.random.default_rng(0))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, F.dropout(x, 0.3, True, generator=np.random.default_rng(0)))
    assert F.dropout(x, 0.3, False) is x and F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0), np.zeros_like(x))
    t = convolve.Tensor(x, requires_grad=True)
    out = F.dropout(t, 0.5, generator=np.random.default_rng(1))
    out.backward(np.ones(x.shape, np.float32))
    np.testing.assert_array_equal(t.grad, out.data)  # gradient is the same mask and scale
    nn.init.seed(5)
    a = F.dropout(x, 0.5)
    nn.init.seed(5)
    np.testing.assert_array_equal(a, F.dropout(x, 0.5))


# --- finite differences (float64) -----------------------------------------------------------------

def _numeric_grad(f, x, g, eps=1e-6):
    """d sum(f(x) * g) / dx by central differences."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = np.sum(F_out(f, x) * g)
        x[i] = old - eps
        down = np.sum(F_out(f, x) * g)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def F_out(f, x):
    return np.asarray(f(x.copy()))


W, B = _rand((3, 5), seed=11), _rand((3,), seed=12)
RM, RV = _rand((3,), seed=13), np.abs(_rand((3,), seed=14)) + 0.5
PROB = F.softmax(_rand((4, 3), seed=15), 1)
FD_CASES = {
    "relu": ((4, 5), lambda x: F.relu(x)),
    "leaky_relu": ((4, 5), lambda x: F.leaky_relu(x, 0.3)),
    "tanh": ((4, 5), lambda x: F.tanh(x)),
    "sigmoid": ((4, 5), lambda x: F.sigmoid(x)),
    "softmax": ((3, 4), lambda x: F.softmax(x, 1)),
    "log_softmax": ((3, 4), lambda x: F.log_softmax(x, 0)),
    "linear": ((2, 5), lambda x: F.linear(x, W, B)),
    "batch_norm_train": ((4, 3, 2), lambda x: F.batch_norm(x, None, None, RM + 1, RV, True)),
    "batch_norm_eval": ((4, 3, 2), lambda x: F.batch_norm(x, RM, RV, RV, RM, False)),
    "adaptive_avg_pool2d": ((1, 2, 5, 7), lambda x: F.adaptive_avg_pool2d(x, (3, 4))),
    "adaptive_avg_pool1d": ((2, 7), lambda x: F.adaptive_avg_pool1d(x, 3)),
    "adaptive_max_pool2d": ((1, 2, 5, 7), lambda x: F.adaptive_max_pool2d(x, (2, 3))),
    "cross_entropy": ((4, 3), lambda x: F.cross_entropy(x, np.array([0, 2, 1, 2]), weight=B + 2, label_smoothing=0.2)),
    "cross_entropy_probs": ((4, 3), lambda x: F.cross_entropy(x, PROB, reduction="sum")),
    "cross_entropy_none": ((4, 3, 2), lambda x: F.cross_entropy(x, np.array([[0, 1], [2, 2], [1, 0], [0, 0]]), reduction="none")),
    "nll_loss": ((4, 3), lambda x: F.nll_loss(x, np.array([0, 2, 1, 2]), weight=B + 2)),
    "mse_loss": ((3, 4), lambda x: F.mse_loss(x, W[:, :4])),
}


@pytest.mark.parametrize("name", list(FD_CASES))
def test_gradients_match_finite_differences(name):
    shape, f = FD_CASES[name]
    x = _rand(shape, seed=20)
    if name == "relu" or name == "leaky_relu":
        x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink
    t = convolve.Tensor(x.copy(), requires_grad=True)
    y = f(t)
    g = _rand(y.shape, seed=21)
    y.backward(g)
    np.testing.assert_allclose(t.grad, _numeric_grad(f, x, g), rtol=1e-6, atol=1e-8)


# --- modules: against torch, against their functional form ------------------------------------------

MODULES = [  # (constructor arguments are the same for both libraries, input shape)
    ("Conv1d", (2, 4, 3), dict(stride=2, padding=1), (2, 2, 9)),
    ("Conv1d", (2, 4, 3), dict(padding="same", padding_mode="reflect", dilation=2), (2, 2, 9)),
    ("Conv2d", (2, 6, 3), dict(padding=1, groups=2), (2, 2, 7, 6)),
    ("Conv2d", (3, 4, (3, 2)), dict(padding="valid", bias=False, padding_mode="circular"), (2, 3, 6, 5)),
    ("Conv2d", (3, 4, 3), dict(padding=2, padding_mode="replicate", dilation=(1, 2)), (1, 3, 6, 7)),
    ("Conv3d", (2, 3, 2), dict(padding=(1, 0, 1), stride=(1, 2, 1)), (1, 2, 4, 5, 4)),
    ("ConvTranspose1d", (2, 3, 3), dict(stride=2, output_padding=1), (2, 2, 5)),
    ("ConvTranspose2d", (4, 2, 3), dict(stride=2, padding=1, output_padding=1, groups=2, dilation=2, bias=False), (2, 4, 4, 5)),
    ("ConvTranspose3d", (2, 2, 2), dict(stride=(2, 1, 2)), (1, 2, 3, 3, 2)),
    ("Linear", (6, 3), {}, (4, 6)),
    ("Linear", (6, 3), dict(bias=False), (2, 5, 6)),
    ("MaxPool1d", (3,), dict(stride=2, padding=1), (2, 3, 9)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, dilation=1, ceil_mode=True), (2, 3, 8, 7)),
    ("MaxPool3d", (2,), {}, (1, 2, 4, 4, 4)),
    ("AvgPool1d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 9)),
    ("AvgPool2d", (2,), {}, (2, 3, 6, 6)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 7, 8)),
    ("AvgPool3d", (2,), dict(divisor_override=3), (1, 2, 4, 4, 4)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 8)),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("AdaptiveAvgPool3d", (2,), {}, (1, 2, 5, 4, 3)),
    ("AdaptiveMaxPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("BatchNorm1d", (3,), {}, (4, 3)),
    ("BatchNorm1d", (3,), dict(momentum=None), (4, 3, 5)),
    ("BatchNorm2d", (3,), dict(eps=1e-3, momentum=0.2), (4, 3, 3, 2)),
    ("BatchNorm2d", (3,), dict(affine=False), (4, 3, 3, 2)),
    ("BatchNorm2d", (3,), dict(bias=False), (4, 3, 3, 2)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False), (4, 3, 3, 2)),
    ("BatchNorm3d", (2,), {}, (2, 2, 3, 2, 2)),
    ("ReLU", (), {}, (3, 4)),
    ("LeakyReLU", (0.1,), {}, (3, 4)),
    ("Tanh", (), {}, (3, 4)),
    ("Sigmoid", (), {}, (3, 4)),
    ("Softmax", (1,), {}, (3, 4)),
    ("LogSoftmax", (1,), {}, (3, 4)),
    ("Flatten", (), {}, (2, 3, 4, 5)),
    ("Flatten", (0, 2), {}, (2, 3, 4, 5)),
    ("Identity", (), {}, (2, 3)),
    ("Dropout", (0.3,), {}, (2, 3)),  # compared in eval mode, where it is the identity
]


def _torch_twin(name, args, kwargs, ours, dtype):
    theirs = getattr(torch.nn, name)(*args, **kwargs).to(TORCH_DTYPE[dtype])
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return theirs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, args, kwargs, shape", MODULES, ids=lambda v: v if isinstance(v, str) else None)
def test_module_matches_torch_module(name, args, kwargs, shape, dtype):
    nn.init.seed(0)
    ours = getattr(nn, name)(*args, **kwargs).to(dtype)
    theirs = _torch_twin(name, args, kwargs, ours, dtype)
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())
    if name == "Dropout":
        ours.eval()
        theirs.eval()
    for rep in range(2 if name.startswith("BatchNorm") else 1):  # BN: twice, so running stats matter
        x = _rand(shape, dtype, seed=rep)
        tx = torch.tensor(x, requires_grad=True)
        xt = convolve.Tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        assert y.dtype == dtype
        assert_close(y.data, ty.detach().numpy(), dtype, f"{name} forward")
        g = _rand(y.shape, dtype, seed=9)
        y.backward(g)
        ty.backward(torch.tensor(g))
        assert_close(xt.grad, tx.grad.numpy(), dtype, f"{name} d/dinput")
        tparams = dict(theirs.named_parameters())
        for k, p in ours.named_parameters():
            assert_close(p.grad, tparams[k].grad.numpy(), dtype, f"{name} d/d{k}")
            p.grad, tparams[k].grad = None, None
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():  # running statistics, num_batches_tracked
        assert_close(v, tsd[k].numpy(), dtype, f"{name} {k}")
    if name.startswith("BatchNorm") and ours.track_running_stats:
        ours.eval()
        theirs.eval()
        x = _rand(shape, dtype, seed=5)
        assert_close(ours(x).data, theirs(torch.tensor(x)).detach().numpy(), dtype, f"{name} eval")


FUNCTIONAL_FORMS = [
    (lambda: nn.Conv2d(2, 4, 3, 2, "same", padding_mode="reflect"),
     lambda m, x: F.conv2d(x, m.weight, m.bias, 2, "same", 1, 1, "reflect"), (2, 2, 7, 7)),
    (lambda: nn.ConvTranspose2d(2, 3, 3, 2, 1, 1), lambda m, x: F.conv_transpose2d(x, m.weight, m.bias, 2, 1, 1), (1, 2, 4, 4)),
    (lambda: nn.Conv1d(2, 2, 3), lambda m, x: F.conv1d(x, m.weight, m.bias), (1, 2, 5)),
    (lambda: nn.Conv3d(1, 2, 2, bias=False), lambda m, x: F.conv3d(x, m.weight), (1, 1, 3, 3, 3)),
    (lambda: nn.Linear(5, 2), lambda m, x: F.linear(x, m.weight, m.bias), (3, 5)),
    (lambda: nn.MaxPool2d(3, 2, 1), lambda m, x: F.max_pool2d(x, 3, 2, 1), (1, 2, 7, 7)),
    (lambda: nn.AvgPool2d(2), lambda m, x: F.avg_pool2d(x, 2), (1, 2, 6, 6)),
    (lambda: nn.AdaptiveAvgPool2d(3), lambda m, x: F.adaptive_avg_pool2d(x, 3), (1, 2, 7, 5)),
    (lambda: nn.AdaptiveMaxPool2d(2), lambda m, x: F.adaptive_max_pool2d(x, 2), (1, 2, 7, 5)),
    (lambda: nn.BatchNorm2d(2).eval(), lambda m, x: F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias), (3, 2, 2, 2)),
    (lambda: nn.ReLU(), lambda m, x: F.relu(x), (3, 4)),
    (lambda: nn.LeakyReLU(0.2), lambda m, x: F.leaky_relu(x, 0.2), (3, 4)),
    (lambda: nn.Tanh(), lambda m, x: F.tanh(x), (3, 4)),
    (lambda: nn.Sigmoid(), lambda m, x: F.sigmoid(x), (3, 4)),
    (lambda: nn.Softmax(0), lambda m, x: F.softmax(x, 0), (3, 4)),
    (lambda: nn.Dropout(0.5, generator=np.random.default_rng(3)),
     lambda m, x: F.dropout(x, 0.5, generator=np.random.default_rng(3)), (3, 4)),
]


@pytest.mark.parametrize("make, functional, shape", FUNCTIONAL_FORMS)
def test_module_forward_equals_functional_form(make, functional, shape):
    m = make()
    x = _rand(shape, np.float32)
    expected = functional(m, x)
    np.testing.assert_array_equal(convolve.autograd.as_array(m(x)), convolve.autograd.as_array(expected))


def test_batchnorm_momentum_none_is_a_cumulative_average():
    m = nn.BatchNorm1d(2, momentum=None).double()
    batches = [_rand((5, 2), seed=s) + s for s in range(3)]
    for b in batches:
        m(b)
    np.testing.assert_allclose(m.running_mean, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-12)


def test_conv_transpose_output_size_picks_output_padding():
    m = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    x = _rand((1, 2, 4, 4), np.float32)
    assert m(x).shape == (1, 3, 7, 7)
    assert m(x, output_size=(8, 8)).shape == (1, 3, 8, 8)
    assert m(x, output_size=(1, 3, 8, 7)).shape == (1, 3, 8, 7)
    with pytest.raises(ValueError, match=r"output_size 10 .* must be in \[7, 8\]"):
        m(x, output_size=(10, 8))


# --- architecture-level state_dict compatibility --------------------------------------------------

def _nested(lib):
    block = lib.Sequential(lib.Conv2d(1, 4, 3, bias=False), lib.BatchNorm2d(4), lib.ReLU())
    return lib.Sequential(block, lib.Sequential(lib.Conv2d(4, 8, 3, stride=2), lib.BatchNorm2d(8, affine=False)),
                          lib.MaxPool2d(2), lib.Flatten(), lib.Dropout(), lib.Linear(8, 3))


def test_nested_sequential_state_dict_keys_shapes_and_repr_equal_torch():
    ours, theirs = _nested(nn), _nested(torch.nn)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    assert [k for k, _ in ours.named_buffers()] == [k for k, _ in theirs.named_buffers()]
    assert repr(ours) == repr(theirs)
    assert ours.state_dict()["0.1.num_batches_tracked"].dtype == np.int64


def test_basic_block_keys_match_torchvision_layout():
    keys = list(nn.BasicBlock(4, 8, stride=2).state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "downsample.0.weight" in keys and "downsample.1.running_var" in keys
    assert not any(k.startswith("downsample") for k in nn.BasicBlock(4, 4).state_dict())
    assert nn.BasicBlock(4, 8, stride=2)(_rand((1, 4, 7, 7), np.float32)).shape == (1, 8, 4, 4)


# --- load_state_dict ------------------------------------------------------------------------------

def _small():
    nn.init.seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def test_load_state_dict_round_trip_casts_and_copies():
    a, b = _small(), _small()
    nn.init.seed(1)
    a[0].reset_parameters()
    sd = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in a.state_dict().items()}
    result = b.load_state_dict(sd)
    assert result == nn.IncompatibleKeys([], [])
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, a.state_dict()[k])
        assert v.dtype == a.state_dict()[k].dtype  # float64 values land as float32
    sd["0.weight"][...] = 0  # the model holds its own copy
    assert b[0].weight.data.any()
    b.load_state_dict({k: convolve.Tensor(v) for k, v in a.state_dict().items()})  # Tensors are accepted too


def test_load_state_dict_strict_errors_name_everything_and_change_nothing():
    m = _small()
    before = m.state_dict()
    bad = dict(before)
    del bad["0.bias"], bad["1.running_var"]
    bad["extra.weight"] = np.ones(2)
    bad["3.weight"] = np.ones((3, 9), np.float32)
    bad["1.weight"] = np.ones(5, np.float32)
    with pytest.raises(ValueError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    for needle in ['missing key(s) in state_dict: "0.bias", "1.running_var"', 'unexpected key(s) in state_dict: "extra.weight"',
                   r"size mismatch for 3.weight: copying a value with shape (3, 9)", "the shape in the current model is (3, 8)",
                   "size mismatch for 1.weight"]:
        assert needle in msg, needle
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match=r"size mismatch for 3.weight"):
        m.load_state_dict(bad, strict=False)  # a shape mismatch is an error even when not strict
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    del bad["3.weight"], bad["1.weight"]
    result = m.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["0.bias", "1.running_var", "1.weight", "3.weight"] or \
        sorted(result.missing_keys) == ["0.bias", "1.running_var", "1.weight", "3.weight"]
    assert result.unexpected_keys == ["extra.weight"]


@pytest.mark.parametrize("value, match", [({"0.weight": "abc"}, "non-numeric dtype"), ([1, 2], "mapping of names to arrays")])
def test_load_state_dict_bad_values(value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _small().load_state_dict(value, strict=False)


# --- initialisation and seeding -------------------------------------------------------------------

@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Conv2d(8, 16, 3), 72), (lambda: nn.Conv1d(6, 4, 5, groups=2), 15),
                                          (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), 27), (lambda: nn.Linear(400, 30), 400)])
def test_default_init_is_pytorch_kaiming_uniform(make, fan_in):
    nn.init.seed(0)
    m = make()
    bound = 1 / math.sqrt(fan_in)
    for p in (m.weight, m.bias):
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound
    w = m.weight.data
    assert np.abs(w).max() > 0.9 * bound and abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound  # uniform on ±bound


def test_seed_makes_models_repeatable_and_state_can_be_restored():
    nn.init.seed(42)
    a = _nested(nn)
    state = nn.init.get_rng_state()
    after_a = nn.init.get_generator().random(3)
    nn.init.seed(42)
    b = _nested(nn)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    nn.init.seed(43)
    assert not np.array_equal(_nested(nn)[1][0].weight.data, a[1][0].weight.data)
    nn.init.set_rng_state(state)
    np.testing.assert_array_equal(nn.init.get_generator().random(3), after_a)
    lin = nn.Linear(3, 2)
    lin.reset_parameters(generator=np.random.default_rng(7))
    w = lin.weight.data.copy()
    lin.reset_parameters(generator=np.random.default_rng(7))
    np.testing.assert_array_equal(lin.weight.data, w)


def test_init_functions():
    t = nn.Parameter(np.zeros((50, 40)))
    nn.init.xavier_uniform_(t, generator=np.random.default_rng(0))
    assert np.abs(t.data).max() <= math.sqrt(6 / 90)
    nn.init.kaiming_normal_(t, nonlinearity="relu", generator=np.random.default_rng(0))
    assert abs(t.data.std() - math.sqrt(2 / 40)) < 0.02
    nn.init.constant_(t, 3)
    assert (t.data == 3).all()
    assert nn.init.calculate_fan_in_and_fan_out(np.zeros((4, 3, 2, 2))) == (12, 16)
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        nn.init.seed(-1)


# --- module mechanics -----------------------------------------------------------------------------

def test_traversal_modes_grads_and_dtype_conversion():
    m = _nested(nn)
    assert len(list(m.children())) == 6 and [n for n, _ in m.named_children()][:2] == ["0", "1"]
    assert sum(1 for _ in m.modules()) == sum(1 for _ in _nested(torch.nn).modules()) == 12
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    x = convolve.Tensor(_rand((2, 1, 9, 9), np.float32))
    F.cross_entropy(m(x), np.array([0, 1])).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    params = list(m.parameters())
    m.double()
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]  # optimisers keep working
    assert all(p.dtype == np.float64 for p in params)
    assert m.state_dict()["0.1.running_mean"].dtype == np.float64
    assert m.state_dict()["0.1.num_batches_tracked"].dtype == np.int64
    assert m(x.data.astype(np.float64)).dtype == np.float64
    with pytest.raises(TypeError, match="floating dtype"):
        m.to(np.int32)


def test_shared_parameters_are_listed_once_and_buffers_can_be_private():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as torch
    mod = nn.Module()
    mod.register_buffer("kept", np.zeros(2))
    mod.register_buffer("scratch", np.zeros(2), persistent=False)
    assert list(mod.state_dict()) == ["kept"] and len(list(mod.buffers())) == 2


def test_sequential_indexing():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(m) == 3 and isinstance(m[-1], nn.Linear) and isinstance(m[1:], nn.Sequential)
    assert list(m[2:].state_dict()) == ["2.weight", "2.bias"]  # slices keep names, as torch
    tm = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    assert list(tm[2:].state_dict()) == ["2.weight", "2.bias"]
    assert [type(x).__name__ for x in m] == ["Linear", "ReLU", "Linear"]
    m.append(nn.Sigmoid())
    assert len(m) == 4 and m(np.ones((5, 2), np.float32)).shape == (5, 1)
    with pytest.raises(IndexError, match="out of range"):
        m[4]
    ml = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


@pytest.mark.parametrize("call, exc, match", [
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, r"in_channels \(3\) must be divisible by groups \(2\)"),
    (lambda: nn.Conv2d(2, 3, 3, groups=2), ValueError, r"out_channels \(3\) must be divisible by groups"),
    (lambda: nn.Conv2d(2, 4, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda: nn.Conv2d(2, 4, 3, padding="full"), ValueError, "padding must be 'valid', 'same'"),
    (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels must be a positive int"),
    (lambda: nn.Conv2d(2, 4, (3, 3, 3)), TypeError, "kernel_size must be an int or a tuple of 2 ints"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect"), ValueError, r"padding_mode must be one of \['zeros'\]"),
    (lambda: nn.Linear(3, 2, dtype=np.int64), TypeError, "floating dtype"),
    (lambda: nn.BatchNorm2d(3, momentum=2), ValueError, "momentum must be"),
    (lambda: nn.Dropout(1.5), ValueError, "between 0 and 1"),
    (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be positive"),
    (lambda: nn.AvgPool2d(2, padding=-1), ValueError, "padding must be non-negative"),
    (lambda: nn.AdaptiveAvgPool2d((2, 0)), ValueError, "output_size must be"),
    (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "argument 1 is str"),
    (lambda: nn.BatchNorm2d(3)(np.zeros((2, 3, 4), np.float32)), ValueError, "expects a 4-D input"),
    (lambda: nn.Linear(3, 2)(np.zeros((2, 4), np.float32)), ValueError, "in_features=3"),
    (lambda: F.softmax(np.zeros((2, 3)), 2), ValueError, r"dim must be in \[-2, 1\]"),
    (lambda: F.batch_norm(np.zeros((2, 3)), None, None), ValueError, "eval mode .* needs running_mean"),
    (lambda: F.batch_norm(np.zeros((2, 3)), None, None, training=True, momentum=None), ValueError, "momentum must be"),
    (lambda: F.adaptive_avg_pool2d(np.zeros((1, 1, 4, 4)), (2, 2, 2)), TypeError, "output_size must be an int or a tuple of 2"),
    (lambda: F.relu(np.zeros(3, np.int64)), TypeError, "input must be a float"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_batchnorm_failure_in_training_changes_nothing():
    m = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m(np.ones((1, 3, 1, 1), np.float32))
    assert int(m.num_batches_tracked) == 0 and (m.running_mean == 0).all() and (m.running_var == 1).all()


def test_attribute_registration_rules():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'weight'"):
        m.weight = np.zeros((2, 2))
    m.bias = None
    assert list(m.state_dict()) == ["weight"]
    assert "weight" in dir(m)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        m.nope

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match="call super"):
        Early()


def test_torch_state_dict_loads_directly_and_models_deep_copy():
    import copy

    m = _small()
    twin = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    m.load_state_dict(dict(twin.named_parameters()), strict=False)  # Parameters that require grad
    np.testing.assert_array_equal(m[3].weight.data, twin[3].weight.detach().numpy())
    c = copy.deepcopy(m)
    c[0].weight.data[...] = 0
    assert m[0].weight.data.any() and repr(c) == repr(m)


@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    grads = [_rand((3, 4), seed=1), _rand((5,), seed=2)]
    ps = [nn.Parameter(np.zeros_like(g)) for g in grads]
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ps, tps, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert math.isclose(total, float(ttotal), rel_tol=1e-12)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


def test_nn_functional_is_convolve_functional():
    import convolve.nn.functional as NF

    assert NF.conv2d is F.conv2d and NF.cross_entropy is F.cross_entropy and NF.__all__ == F.__all__


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 11), w=st.integers(1, 11), oh=st.integers(1, 12), ow=st.integers(1, 12),
       seed=st.integers(0, 1000))
def test_adaptive_pools_match_torch_for_any_sizes(h, w, oh, ow, seed):
    x = _rand((2, 2, h, w), seed=seed)
    compare("adaptive_avg_pool2d", {"input": x}, {"output_size": (oh, ow)})
    compare("adaptive_max_pool2d", {"input": x}, {"output_size": (oh, ow)})


def test_relu_infinite_gradient_stops_at_negative_inputs_like_torch():
    x = np.array([-1.0, 0.0, 2.0])
    X = convolve.Tensor(x, requires_grad=True)
    F.relu(X).backward(np.array([np.inf, np.nan, np.inf]))
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor([np.inf, np.nan, np.inf], dtype=torch.float64))
    np.testing.assert_array_equal(X.grad, tx.grad.numpy())


def test_relu_in_parts_of_the_batch_on_threads_matches_torch(monkeypatch):
    from convolve import engine_config
    from convolve._engine import parallel

    monkeypatch.setattr(parallel, "SPLIT_BYTES", 0)  # split even tiny batches
    with engine_config.options(threads=3):
        compare("relu", {"input": _rand((5, 4, 3))}, {})
        compare("relu", {"input": _rand(())}, {})  # 0-d: nothing to split
