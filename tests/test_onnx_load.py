"""convolve.onnx.load on networks the tests define and export with PyTorch (offline, dynamo=False),
checked against PyTorch (float32, 1e-4 relative) and onnxruntime; fine-tuning through an import."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
tn = torch.nn
TF = torch.nn.functional

import convolve  # noqa: E402
import convolve.onnx  # noqa: E402
from convolve.optim import SGD  # noqa: E402

RTOL = 1e-4


def export(net, x, path, opset=13, dynamic=True, keep_bn=False):
    net.eval()
    kw = dict(do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE) if keep_bn else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, x, str(path), dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None,
                          **kw)
    return str(path)


def close(ours, want, what):
    ours = np.asarray(ours.data if isinstance(ours, convolve.Tensor) else ours)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(ours, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def check(net, x, path, batches=(2,), **kw):
    """Export `net`, load it, compare with PyTorch and onnxruntime at every batch size."""
    path = export(net, torch.from_numpy(x), path, **kw)
    model = convolve.onnx.load(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for b in batches:
        xb = rng.standard_normal((b,) + x.shape[1:]).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(xb)).numpy()
        ours = model(xb)
        close(ours, want, f"{path} vs PyTorch, batch {b}")
        close(ours, sess.run(None, {"x": xb})[0], f"{path} vs onnxruntime, batch {b}")
    return model


def _randomise_bn(net):
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, (tn.BatchNorm1d, tn.BatchNorm2d, tn.BatchNorm3d)):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return net


class Residual(tn.Module):
    def __init__(self, c, o, stride):
        super().__init__()
        self.conv1, self.bn1 = tn.Conv2d(c, o, 3, stride, 1, bias=False), tn.BatchNorm2d(o)
        self.conv2, self.bn2 = tn.Conv2d(o, o, 3, 1, 1, bias=False), tn.BatchNorm2d(o)
        self.down = tn.Sequential(tn.Conv2d(c, o, 1, stride, bias=False), tn.BatchNorm2d(o))

    def forward(self, x):
        return TF.relu(self.bn2(self.conv2(TF.relu(self.bn1(self.conv1(x))))) + self.down(x))


class ResNetish(tn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tn.Sequential(tn.Conv2d(3, 8, 3, padding=1), tn.BatchNorm2d(8), tn.ReLU(), tn.MaxPool2d(2))
        self.block = Residual(8, 16, 2)
        self.fc = tn.Linear(16 * 4, 5)

    def forward(self, x):
        x = TF.adaptive_avg_pool2d(self.block(self.stem(x)), 2)
        return self.fc(x.view(x.size(0), -1))  # Shape -> Gather -> Unsqueeze -> Concat -> Reshape


class InvertedResidual(tn.Module):
    def __init__(self, c, expand):
        super().__init__()
        h = c * expand
        self.body = tn.Sequential(tn.Conv2d(c, h, 1, bias=False), tn.BatchNorm2d(h), tn.ReLU6(),
                                  tn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), tn.BatchNorm2d(h), tn.ReLU6(),
                                  tn.Conv2d(h, c, 1, bias=False), tn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


class MobileNetish(tn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tn.Sequential(tn.Conv2d(3, 8, 3, stride=2, padding=1), tn.Hardswish())
        self.blocks = tn.Sequential(InvertedResidual(8, 4), InvertedResidual(8, 2))
        self.head = tn.Sequential(tn.AdaptiveAvgPool2d(1), tn.Flatten(), tn.Linear(8, 4), tn.Hardsigmoid())

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class Fire(tn.Module):
    def __init__(self, c, s, e):
        super().__init__()
        self.squeeze = tn.Conv2d(c, s, 1)
        self.e1, self.e3 = tn.Conv2d(s, e, 1), tn.Conv2d(s, e, 3, padding=1)

    def forward(self, x):
        x = TF.relu(self.squeeze(x))
        return torch.cat([TF.relu(self.e1(x)), TF.relu(self.e3(x))], 1)


class SqueezeNetish(tn.Module):
    def __init__(self):
        super().__init__()
        self.features = tn.Sequential(tn.Conv2d(3, 16, 3, stride=2), tn.ReLU(), tn.MaxPool2d(3, 2, ceil_mode=True),
                                      Fire(16, 4, 8), Fire(16, 4, 8), tn.MaxPool2d(3, 2, ceil_mode=True))
        self.classifier = tn.Sequential(tn.Dropout(0.5), tn.Conv2d(16, 6, 1), tn.ReLU(), tn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return TF.softmax(torch.flatten(self.classifier(self.features(x)), 1), dim=1)


class EncoderDecoder(tn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.enc = tn.Sequential(tn.Conv2d(2, 8, 3, stride=2, padding=1), tn.LeakyReLU(0.1),
                                 tn.Conv2d(8, 8, 3, stride=2, padding=1), tn.Tanh())
        self.up = tn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.out = tn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        y = torch.sigmoid(self.up(self.enc(x)))
        if self.mode == "nearest":
            y = TF.interpolate(y, scale_factor=2, mode="nearest")
        else:
            y = TF.interpolate(y, scale_factor=2, mode="bilinear", align_corners=self.mode == "corners")
        return self.out(y)


class AlexNetish(tn.Module):
    def __init__(self):
        super().__init__()
        # (PyTorch exports LocalResponseNorm as a Pad/AveragePool/If subgraph: LRN is tested by hand below)
        self.body = tn.Sequential(tn.Conv2d(3, 8, 5, stride=2, padding=2), tn.PReLU(8),
                                  tn.MaxPool2d(3, 2), tn.ReflectionPad2d(1), tn.Conv2d(8, 8, 3), tn.PReLU(),
                                  tn.ZeroPad2d((1, 0, 2, 1)), tn.AvgPool2d(2))
        self.fc = tn.Linear(8 * 5 * 4, 3)

    def forward(self, x):
        return TF.log_softmax(self.fc(torch.flatten(self.body(x), 1)), dim=1)


class Net1d(tn.Module):
    def __init__(self):
        super().__init__()
        self.body = tn.Sequential(tn.Conv1d(2, 6, 5, padding=2), tn.BatchNorm1d(6), tn.ReLU(), tn.MaxPool1d(2),
                                  tn.Conv1d(6, 6, 3, dilation=2, groups=2), tn.AvgPool1d(2), tn.Flatten(),
                                  tn.Linear(6 * 3, 3))

    def forward(self, x):
        return self.body(x)


class Net3d(tn.Module):
    def __init__(self):
        super().__init__()
        self.body = tn.Sequential(tn.Conv3d(1, 4, 3, padding=1), tn.BatchNorm3d(4), tn.ReLU(), tn.MaxPool3d(2),
                                  tn.Conv3d(4, 4, 3, stride=2, padding=1), tn.ReLU(),
                                  tn.ConvTranspose3d(4, 2, 2, stride=2), tn.AdaptiveAvgPool3d(1), tn.Flatten())

    def forward(self, x):
        return self.body(x)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("keep_bn,opset", [(True, 13), (False, 9)])
def test_residual_blocks_with_batchnorm_and_a_dynamic_batch(tmp_path, keep_bn, opset):
    torch.manual_seed(0)
    net = _randomise_bn(ResNetish())
    model = check(net, _x(2, 3, 16, 16), tmp_path / "res.onnx", batches=(1, 3), keep_bn=keep_bn, opset=opset)
    ops = {s.op for s in model._steps}
    assert ("BatchNormalization" in ops) == keep_bn
    assert not ops & {"Shape", "Gather", "Unsqueeze", "Concat"}  # the shape arithmetic was folded at load


@pytest.mark.parametrize("opset", [9, 13, 17])
def test_inverted_residual_with_depthwise_relu6_and_hard_activations(tmp_path, opset):
    torch.manual_seed(1)
    net = _randomise_bn(MobileNetish())
    model = check(net, _x(2, 3, 16, 16), tmp_path / "mb.onnx", opset=opset, keep_bn=True)
    assert "Clip" in {s.op for s in model._steps}


def test_fire_modules_with_concat_ceil_mode_pooling_dropout_and_softmax(tmp_path):
    torch.manual_seed(2)
    check(SqueezeNetish(), _x(2, 3, 33, 33), tmp_path / "sq.onnx", batches=(2, 1))


@pytest.mark.parametrize("mode,opset", [("nearest", 9), ("nearest", 11), ("bilinear", 13), ("corners", 17),
                                        ("bilinear", 20)])
def test_encoder_decoder_with_conv_transpose_and_resize(tmp_path, mode, opset):
    torch.manual_seed(3)
    check(EncoderDecoder(mode), _x(2, 2, 12, 16), tmp_path / "ed.onnx", opset=opset)


def test_prelu_reflection_and_zero_pad_and_log_softmax(tmp_path):
    torch.manual_seed(4)
    check(AlexNetish(), _x(2, 3, 29, 29), tmp_path / "alex.onnx", opset=11)


@pytest.mark.parametrize("net,shape", [(Net1d, (2, 2, 20)), (Net3d, (2, 1, 8, 8, 8))])
def test_one_and_three_dimensional_nets(tmp_path, net, shape):
    torch.manual_seed(5)
    check(_randomise_bn(net()), _x(*shape), tmp_path / "nd.onnx", keep_bn=True)


def test_an_imported_model_fine_tunes_with_the_same_gradients_as_pytorch(tmp_path):
    torch.manual_seed(6)
    net = _randomise_bn(ResNetish())
    x = _x(4, 3, 16, 16)
    model = convolve.onnx.load(export(net, torch.from_numpy(x), tmp_path / "ft.onnx", keep_bn=True))
    target = np.array([0, 1, 2, 3])
    loss = convolve.functional.cross_entropy(model(convolve.Tensor(x)), target)
    loss.backward()
    net.eval()
    tloss = TF.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(target))
    tloss.backward()
    close(loss, tloss.item(), "loss")
    grads = dict(net.named_parameters())
    checked = 0
    for key, (init, shape, transposed) in model._sources.items():
        p = dict(model.named_parameters()).get(key)
        if p is None or init not in grads:
            continue
        g = p.grad.T if transposed else p.grad
        close(g.reshape(shape), grads[init].grad.numpy(), f"gradient of {init}")
        checked += 1
    assert checked >= 10  # every conv, BN scale/shift and the classifier
    before = float(loss.data)
    opt = SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        loss = convolve.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
    assert float(convolve.functional.cross_entropy(model(x), target).data) < before
