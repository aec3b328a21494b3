"""Losses (cross-entropy, NLL, MSE) and their gradients against PyTorch; their errors."""

import numpy as np
import pytest
import torch

import convolve
import convolve.functional as F
import convolve.nn as nn
from oracle import assert_close


def _loss_vs_torch(name, logits, target, dtype, **kwargs):
    """Run F.<name> and torch's on the same data; compare the loss and d loss / d input."""
    x = convolve.Tensor(logits.copy(), requires_grad=True)
    ours = getattr(F, name)(x, target, **kwargs)
    tx = torch.tensor(logits, requires_grad=True)
    tt = torch.tensor(target)
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    theirs = getattr(torch.nn.functional, name)(tx, tt, **tkw)
    assert ours.dtype == dtype and ours.shape == tuple(theirs.shape)
    assert_close(ours.data, theirs.detach().numpy(), dtype, f"{name} {kwargs}")
    g = np.random.default_rng(7).standard_normal(ours.shape).astype(dtype)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    assert_close(x.grad, tx.grad.numpy(), dtype, f"{name} gradient {kwargs}")
    # arrays in -> an array out, same numbers
    plain = getattr(F, name)(logits, target, **kwargs)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(plain, ours.data)


SHAPES = [(5, 4), (3, 4, 2, 3), (4,)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_index_targets(dtype, shape, reduction, weighted, smoothing):
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, C, tshape)
    if len(shape) > 1:
        target.flat[0] = -100  # ignored
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    if weighted:
        kw["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    _loss_vs_torch("cross_entropy", logits, target, dtype, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets(dtype, reduction, weighted, smoothing):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 5, 2)).astype(dtype)
    target = F.softmax(rng.standard_normal((4, 5, 2)).astype(dtype), 1)
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    if weighted:
        kw["weight"] = rng.uniform(0.2, 2.0, 5).astype(dtype)
    _loss_vs_torch("cross_entropy", logits, target, dtype, **kw)


def test_cross_entropy_custom_ignore_index():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 3))
    target = np.array([0, 2, 1, 2, 2, 0])
    _loss_vs_torch("cross_entropy", logits, target, np.float64, ignore_index=2, label_smoothing=0.1)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0]], dtype=np.float32)
    x = convolve.Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 0]))
    loss.backward()
    assert np.isfinite(loss.data) and np.isfinite(x.grad).all()
    assert_close(loss.data, torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor([0, 0])).numpy(),
                 np.float32, "huge logits")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(dtype, reduction, weighted):
    rng = np.random.default_rng(3)
    logp = F.log_softmax(rng.standard_normal((5, 4, 3)).astype(dtype), 1)
    target = rng.integers(0, 4, (5, 3))
    target[0, 0] = -100
    kw = dict(reduction=reduction)
    if weighted:
        kw["weight"] = rng.uniform(0.2, 2.0, 4).astype(dtype)
    _loss_vs_torch("nll_loss", logp, target, dtype, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_and_both_gradients(dtype, reduction):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    x, y = convolve.Tensor(a, requires_grad=True), convolve.Tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ours, theirs = F.mse_loss(x, y, reduction), torch.nn.functional.mse_loss(tx, ty, reduction=reduction)
    assert_close(ours.data, theirs.detach().numpy(), dtype, "mse")
    g = np.random.default_rng(5).standard_normal(ours.shape).astype(dtype)
    ours.backward(g)
    theirs.backward(torch.tensor(g))
    assert_close(x.grad, tx.grad.numpy(), dtype, "mse d/dinput")
    assert_close(y.grad, ty.grad.numpy(), dtype, "mse d/dtarget")


def test_loss_modules_equal_functional_forms():
    rng = np.random.default_rng(6)
    logits, target = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    w = np.array([1.0, 2.0, 0.5])
    assert nn.CrossEntropyLoss(w, label_smoothing=0.1)(logits, target) == F.cross_entropy(logits, target, w, label_smoothing=0.1)
    assert nn.NLLLoss(reduction="sum")(logits, target) == F.nll_loss(logits, target, reduction="sum")
    assert nn.MSELoss()(logits, logits * 2) == F.mse_loss(logits, logits * 2)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError, r"class indices in \[0, 2\].*got 3"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, r"target must have shape \(2,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.zeros((2, 4))), ValueError, "probability target must have the input's shape"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5), ValueError, "label_smoothing must be"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2)), ValueError, r"weight must have shape \(3,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3), np.int64), np.array([0, 1])), TypeError, "input must be a float"),
    (lambda: F.cross_entropy(np.zeros(()), np.array(0)), ValueError, "0-D input"),
    (lambda: F.nll_loss(np.zeros((2, 3)), np.array([0.5, 1.0])), TypeError, "integer array"),
    (lambda: F.mse_loss(np.zeros((2, 3)), np.zeros((3, 2))), ValueError, "same shape"),
    (lambda: F.mse_loss(np.zeros(2), np.zeros(2, np.float32)), TypeError, "must match"),
])
def test_loss_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
