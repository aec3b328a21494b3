"""Weights marked constant (`convolve._engine.constants`): what the engine derives from them is computed
once per array, never for ordinary (trainable) weights, and an inference plan that refreshes its
weights gets results from the new ones."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import convolve
import convolve._engine as engine
from convolve._engine import constants, winograd


def _winograd_transforms(monkeypatch, force=False):
    """A list that grows by one at every Winograd weight transform; with `force`, the engine's
    automatic choice is Winograd F(4x4, 3x3) for every call (an inference plan's convs)."""
    if force:
        monkeypatch.setattr(engine, "choose", lambda op, *a, **k: winograd.F4)
        monkeypatch.setattr(engine, "_choices", {})
    transforms = []
    real = winograd.Winograd._transform
    monkeypatch.setattr(winograd.Winograd, "_transform", lambda self, a: transforms.append(1) or real(self, a))
    return transforms


def test_derived_values_are_computed_once_per_marked_array_and_forgotten_with_it():
    calls = []

    def compute():
        calls.append(1)
        return np.arange(3.0)

    w = np.ones((2, 2))
    for _ in range(3):  # not marked: computed every time
        constants.derived(w, "x", compute)
    assert len(calls) == 3 and w.flags.writeable
    assert constants.mark(w) is w and not w.flags.writeable
    first = constants.derived(w, "x", compute)
    assert constants.derived(w, "x", compute) is first and len(calls) == 4
    assert not first.flags.writeable  # shared between calls: nobody may write into it
    constants.derived(w, "y", compute)  # another derived value of the same array
    assert len(calls) == 5
    key = id(w)
    del w, first
    gc.collect()
    assert key not in constants._marked and not any(k[0] == key for k in constants._derived)


def test_winograd_transforms_marked_weights_once_and_trainable_weights_every_call(monkeypatch):
    r = np.random.default_rng(0)
    x = r.standard_normal((1, 8, 12, 12)).astype(np.float32)
    w = r.standard_normal((8, 8, 3, 3)).astype(np.float32)
    transforms = _winograd_transforms(monkeypatch)
    free = winograd.F4.forward(x, w, None, (1, 1), (1, 1), 1)
    winograd.F4.forward(x, w, None, (1, 1), (1, 1), 1)
    assert len(transforms) == 2
    wc = constants.mark(w.copy())
    for _ in range(3):
        np.testing.assert_array_equal(winograd.F4.forward(x, wc, None, (1, 1), (1, 1), 1), free)
    assert len(transforms) == 3


def test_an_onnx_inference_plan_reuses_its_transformed_weights_and_follows_changes(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import convolve.onnx
    from test_onnx_load import _randomise_bn, export

    tn = torch.nn
    torch.manual_seed(0)
    net = _randomise_bn(tn.Sequential(tn.Conv2d(8, 8, 3, padding=1), tn.BatchNorm2d(8), tn.ReLU())).eval()
    x = np.random.default_rng(1).standard_normal((1, 8, 20, 20)).astype(np.float32)
    model = convolve.onnx.load(export(net, torch.from_numpy(x), tmp_path / "m.onnx", keep_bn=True))
    transforms = _winograd_transforms(monkeypatch, force=True)
    with convolve.no_grad():
        first = np.asarray(model(x).data)
        for _ in range(2):
            np.testing.assert_array_equal(np.asarray(model(x).data), first)
        assert len(transforms) == 1
        bn = next(m for m in model.modules() if type(m).__name__ == "BatchNorm")
        bn.running_var[0] = 9.0  # new folded weights: transformed again, and used
        second = np.asarray(model(x).data)
    assert len(transforms) == 2 and not np.allclose(second, first)
    want = net.double()(torch.from_numpy(x).double()).detach().numpy()
    assert not np.allclose(second, want, atol=1e-3)  # torch's BN still has the old statistics
    net[1].running_var[0] = 9.0
    want = net(torch.from_numpy(x).double()).detach().numpy()
    np.testing.assert_allclose(second, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_a_plan_without_batch_norm_marks_a_view_and_the_parameter_stays_trainable(tmp_path, monkeypatch):
    """Exported with BatchNormalization folded (torch's default), the plan's convs hold their own
    parameters: the plan marks a read-only view, and assigning the parameter (an optimiser's step)
    still works and reaches the next call."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import convolve.onnx
    from convolve.optim import SGD
    from test_onnx_load import export

    tn = torch.nn
    torch.manual_seed(1)
    net = tn.Sequential(tn.Conv2d(8, 8, 3, padding=1), tn.ReLU()).eval()
    x = np.random.default_rng(2).standard_normal((1, 8, 20, 20)).astype(np.float32)
    model = convolve.onnx.load(export(net, torch.from_numpy(x), tmp_path / "m.onnx"))
    transforms = _winograd_transforms(monkeypatch, force=True)
    with convolve.no_grad():
        first = np.asarray(model(x).data)
        np.testing.assert_array_equal(np.asarray(model(x).data), first)
    assert len(transforms) == 1
    weight = next(p for p in model.parameters() if p.ndim == 4)
    assert weight.data.flags.writeable
    weight.grad = np.ones_like(weight.data)
    SGD([weight], lr=0.01).step()  # p.data -= ...: in place, then assigned
    with convolve.no_grad():
        second = np.asarray(model(x).data)
    assert len(transforms) == 2 and not np.allclose(second, first)
    with torch.no_grad():
        net[0].weight -= 0.01
    want = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(second, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
