"""The inference plan of an imported graph (convolve.onnx._fuse): Conv chains with BatchNormalization
folded and Add/Relu applied in place run under no_grad; they must give what the step-by-step graph
gives, follow parameter changes, and leave fine-tuning (the recorded path) as it was."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
tn = torch.nn

import convolve  # noqa: E402
import convolve.onnx  # noqa: E402
from convolve.onnx._fuse import fold_batch_norm  # noqa: E402
from convolve.optim import SGD  # noqa: E402

from test_onnx_load import ResNetish, Net1d, Net3d, _randomise_bn, close, export  # noqa: E402


def _load(net, x, path, dtype=np.float32):
    if dtype == np.float64:
        net = net.double()
    return convolve.onnx.load(export(net, torch.from_numpy(x.astype(dtype)), path, keep_bn=True))


def _both(model, x):
    """(fused: no_grad, step by step: the same graph with the plan switched off) outputs as arrays."""
    with convolve.no_grad():
        fused = model(x)
        plan = model._fast_steps
        object.__setattr__(model, "_fast_steps", model._steps)
        try:
            plain = model(x)
        finally:
            object.__setattr__(model, "_fast_steps", plan)
    assert type(fused) is type(plain)
    return np.asarray(fused.data), np.asarray(plain.data)


def test_resnet_blocks_fold_batchnorm_and_fuse_the_residual_add_and_relu(tmp_path):
    torch.manual_seed(0)
    net = _randomise_bn(ResNetish()).eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16))
    model = _load(net, x, tmp_path / "r.onnx")
    ops = [s.op for s in model._fast_steps]
    assert "Conv+BatchNormalization+Relu" in ops and "Conv+BatchNormalization+Add+Relu" in ops
    assert "BatchNormalization" not in ops and "Relu" not in ops
    fused, plain = _both(model, x.astype(np.float32))
    with torch.no_grad():
        want = net(torch.from_numpy(x.astype(np.float32))).numpy()
    close(fused, want, "fused vs PyTorch")
    close(plain, want, "step by step vs PyTorch")

    model64 = _load(_randomise_bn(ResNetish()).eval(), x, tmp_path / "r64.onnx", np.float64)
    fused, plain = _both(model64, x)
    assert fused.dtype == np.float64
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12 * np.abs(plain).max())


@pytest.mark.parametrize("net,shape", [(Net1d, (2, 2, 20)), (Net3d, (2, 1, 8, 8, 8))])
def test_one_and_three_dimensional_folds_match_the_graph(tmp_path, net, shape):
    torch.manual_seed(1)
    x = np.random.default_rng(1).standard_normal(shape)
    model = _load(_randomise_bn(net()).eval(), x, tmp_path / "n.onnx", np.float64)
    assert any(s.op.startswith("Conv+BatchNormalization") for s in model._fast_steps)
    fused, plain = _both(model, x)
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12 * np.abs(plain).max())


def test_fold_is_the_onnx_formula():
    rng = np.random.default_rng(2)
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    scale, shift, mean, var = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4), rng.random(4) + 0.1
    x = rng.standard_normal((2, 3, 6, 6))
    conv = convolve.functional.conv2d
    want = (conv(x, w, b) - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) * scale[:, None, None] \
        + shift[:, None, None]
    wf, bf = fold_batch_norm(w, b, scale, shift, mean, var, 1e-3)
    np.testing.assert_allclose(conv(x, wf, bf), want, rtol=1e-12, atol=1e-12)
    wf, bf = fold_batch_norm(w, None, scale, shift, mean, var, 1e-3)  # a Conv without bias
    np.testing.assert_allclose(conv(x, wf, bf), want - (b * scale / np.sqrt(var + 1e-3))[:, None, None],
                               rtol=1e-12, atol=1e-12)


def test_changed_parameters_and_statistics_reach_the_next_fused_call(tmp_path):
    torch.manual_seed(3)
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16))
    model = _load(_randomise_bn(ResNetish()).eval(), x, tmp_path / "c.onnx", np.float64)
    first, _ = _both(model, x)
    bn = next(m for m in model.modules() if type(m).__name__ == "BatchNorm")
    conv = next(m for m in model.modules() if type(m).__name__ == "Conv")
    for change in (lambda: setattr(conv.weight, "data", conv.weight.data * 1.5),  # an optimiser's `p.data -= ...`
                   lambda: setattr(bn.weight, "data", bn.weight.data + 0.25),
                   lambda: model.load_state_dict({k: v + 0.1 if k.endswith("running_mean") else v
                                                  for k, v in model.state_dict().items()}),
                   lambda: bn.running_var.__setitem__(0, 7.0)):  # a buffer written in place
        change()
        fused, plain = _both(model, x)
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12 * np.abs(plain).max())
        assert not np.allclose(fused, first)
        first = fused


def test_fine_tuning_an_import_still_trains_batchnorm_and_the_plan_follows(tmp_path):
    torch.manual_seed(4)
    x = np.random.default_rng(4).standard_normal((4, 3, 16, 16)).astype(np.float32)
    model = _load(_randomise_bn(ResNetish()).eval(), x, tmp_path / "f.onnx")
    bns = [m for m in model.modules() if type(m).__name__ == "BatchNorm"]
    before = [(m.weight.data.copy(), m.bias.data.copy()) for m in bns]
    target = np.array([0, 1, 2, 3])
    opt = SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        loss = convolve.functional.cross_entropy(model(x), target)  # recorded: the unfused steps
        loss.backward()
        assert all(m.weight.grad is not None and np.abs(m.weight.grad).max() > 0 for m in bns)
        opt.step()
    assert all(not np.array_equal(m.weight.data, w) and not np.array_equal(m.bias.data, b)
               for m, (w, b) in zip(bns, before))
    fused, plain = _both(model, x)
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())


def test_a_conv_output_read_twice_or_returned_is_not_fused(tmp_path):
    class Two(tn.Module):
        def __init__(self):
            super().__init__()
            self.c = tn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            y = self.c(x)
            return torch.relu(y) + y, y  # y feeds two nodes and is an output

    x = np.random.default_rng(5).standard_normal((1, 2, 5, 5))
    path = tmp_path / "t.onnx"
    net = Two().double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.from_numpy(x), str(path), dynamo=False, input_names=["x"],
                          output_names=["a", "b"])
    model = convolve.onnx.load(path)
    assert [s.op for s in model._fast_steps] == [s.op for s in model._steps]
    with convolve.no_grad():
        a, b = model(x)
    with torch.no_grad():
        ta, tb = net(torch.from_numpy(x))
    np.testing.assert_allclose(a.data, ta.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.data, tb.numpy(), rtol=1e-12)
