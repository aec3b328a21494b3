"""Whole training steps against PyTorch: loss, every gradient, every updated weight, BatchNorm stats."""

import numpy as np
import pytest
import torch

import convolve
import convolve.functional as F
import convolve.nn as nn
import convolve.optim as optim
from oracle import assert_close

TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def _cnn(lib, conv_bias):
    """conv-bn-relu-pool-linear in either library (same constructor names)."""
    return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1, bias=conv_bias), lib.BatchNorm2d(4), lib.ReLU(),
                          lib.MaxPool2d(2), lib.Flatten(), lib.Linear(4 * 4 * 4, 5))


def _twins(build, dtype, seed=0):
    """Our model (seeded default init) and a torch model holding the very same weights."""
    nn.init.seed(seed)
    ours = build(nn).to(dtype)
    theirs = build(torch.nn).to(TORCH_DTYPE[dtype])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def _batch(dtype, step, shape=(6, 3, 8, 8)):
    rng = np.random.default_rng(10 + step)
    return rng.standard_normal(shape).astype(dtype), rng.integers(0, 5, shape[0])


def _assert_same_state(ours, theirs, dtype, what):
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        assert v.dtype == tsd[k].numpy().dtype, f"{what}: {k} dtype"
        assert_close(v, tsd[k].numpy(), dtype, f"{what}: {k}")


def _step(ours, theirs, opt, topt, x, y, dtype, what, check_grads=True):
    loss = F.cross_entropy(ours(convolve.Tensor(x)), y, label_smoothing=0.1)
    tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y), label_smoothing=0.1)
    assert loss.dtype == dtype
    assert_close(loss.data, tloss.detach().numpy(), dtype, f"{what}: loss")
    opt.zero_grad()
    topt.zero_grad()
    loss.backward()
    tloss.backward()
    if check_grads:
        tparams = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            assert p.grad is not None and p.grad.dtype == dtype, name
            assert_close(p.grad, tparams[name].grad.numpy(), dtype, f"{what}: grad of {name}")
    opt.step()
    topt.step()
    _assert_same_state(ours, theirs, dtype, f"{what}: after the update")


OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.05)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kw", OPTIMIZERS)
def test_training_steps_match_pytorch(dtype, name, kw):
    # A conv bias right before BatchNorm has a gradient that is pure rounding noise (BN removes the
    # mean), and Adam's normalised step turns noise into a full-size update, so adaptive optimisers
    # are compared on the usual bias-free conv; SGD keeps the bias to cover its gradient.
    conv_bias = name == "SGD"
    ours, theirs = _twins(lambda lib: _cnn(lib, conv_bias), dtype)
    opt, topt = getattr(optim, name)(ours.parameters(), **kw), getattr(torch.optim, name)(theirs.parameters(), **kw)
    for step in range(3):  # step 0 is "one full step"; later ones exercise momentum / moments and BN stats
        _step(ours, theirs, opt, topt, *_batch(dtype, step), dtype, f"{name} step {step}")
    assert int(ours[1].num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    x, _ = _batch(dtype, 99)
    assert_close(ours(x).data, theirs(torch.tensor(x)).detach().numpy(), dtype, "eval-mode logits")
    ours.train()
    theirs.train()
    assert_close(ours(x).data, theirs(torch.tensor(x)).detach().numpy(), dtype, "train-mode logits")


class TorchBasicBlock(torch.nn.Module):
    """torchvision's BasicBlock layout, for the key names and numbers of ours."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                  torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


def _resnet(lib):
    block = nn.BasicBlock if lib is nn else TorchBasicBlock
    return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1, bias=False), lib.BatchNorm2d(4), lib.ReLU(),
                          block(4, 4), block(4, 6, stride=2), lib.AdaptiveAvgPool2d(1), lib.Flatten(),
                          lib.Linear(6, 5))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_residual_network_trains_like_pytorch(dtype):
    ours, theirs = _twins(_resnet, dtype)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert "4.downsample.0.weight" in ours.state_dict() and "3.downsample.0.weight" not in ours.state_dict()
    opt = optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    for step in range(2):
        _step(ours, theirs, opt, topt, *_batch(dtype, step), dtype, f"resnet step {step}")
    ours.eval()
    theirs.eval()
    x, _ = _batch(dtype, 50)
    assert_close(ours(x).data, theirs(torch.tensor(x)).detach().numpy(), dtype, "resnet eval logits")


def test_a_seeded_short_run_learns_and_repeats():
    """Two classes told apart by where a bright blob sits: a few Adam steps must fit them."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32) * 0.3
    y = rng.integers(0, 2, 64)
    x[y == 0, :, :4, :4] += 1.0
    x[y == 1, :, 4:, 4:] += 1.0

    def run():
        nn.init.seed(1)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.BasicBlock(4, 4), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 2))
        opt = optim.Adam(model.parameters(), lr=0.02)
        losses = []
        for _ in range(25):
            loss = F.cross_entropy(model(convolve.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.data))
        model.eval()
        accuracy = float((model(x).data.argmax(1) == y).mean())
        return losses, accuracy, model.state_dict()

    losses, accuracy, sd = run()
    assert losses[-1] < 0.3 * losses[0]
    assert accuracy >= 0.95
    losses2, _, sd2 = run()  # same seed: same initial weights and dropout masks, same result
    assert losses2 == losses
    for k in sd:
        np.testing.assert_array_equal(sd[k], sd2[k])
