"""convolve.onnx.save: convolve models written as ONNX, checked by reloading and by onnxruntime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import convolve  # noqa: E402
import convolve.nn as nn  # noqa: E402
import convolve.onnx  # noqa: E402
from convolve.training._models import lenet, resnet  # noqa: E402


def _randomise_stats(model, seed=1):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if getattr(m, "running_var", None) is not None:
            m.running_mean[...] = rng.uniform(-0.5, 0.5, m.running_mean.shape)
            m.running_var[...] = rng.uniform(0.5, 2, m.running_var.shape)
    return model


def roundtrip(model, shape, path, batch=3, **kw):
    """Save `model`; its output must equal onnxruntime's on the file and the reloaded model's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape[1:]).astype(np.float32)
    model.eval()
    convolve.onnx.save(model, x[:1], path, **kw)
    onnx.checker.check_model(onnx.load(str(path)))
    want = model(x).data
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    back = convolve.onnx.load(path)
    np.testing.assert_allclose(back(x).data, want, rtol=1e-5, atol=1e-6)
    return back


@pytest.mark.parametrize("preset,shape", [(lenet, (1, 1, 28, 28)), (resnet, (1, 3, 20, 20))])
def test_training_presets_export(tmp_path, preset, shape):
    nn.init.seed(0)
    model = _randomise_stats(preset(shape[1], 10, shape[2:]))
    back = roundtrip(model, shape, tmp_path / "preset.onnx")
    assert sum(p.data.size for p in back.parameters()) == sum(p.data.size for p in model.parameters())


@pytest.mark.parametrize("opset", [11, 17, 21])
def test_a_mixed_2d_model_exports_at_several_opsets(tmp_path, opset):
    nn.init.seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding="same", padding_mode="reflect"), nn.LeakyReLU(0.2),
        nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False, padding=1),
        nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(2), nn.Sigmoid(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(8, 3), nn.LogSoftmax(1))
    roundtrip(model, (1, 3, 9, 9), tmp_path / "mixed.onnx", opset=opset)


def test_1d_and_3d_models_export(tmp_path):
    nn.init.seed(2)
    one = nn.Sequential(nn.Conv1d(2, 3, 3, dilation=2), nn.BatchNorm1d(3), nn.MaxPool1d(2), nn.Flatten(),
                        nn.Linear(3 * 3, 2), nn.Softmax(1))
    roundtrip(_randomise_stats(one), (1, 2, 10), tmp_path / "one.onnx")
    three = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1, stride=(1, 2, 1)), nn.BatchNorm3d(2), nn.ReLU(),
                          nn.MaxPool3d(2), nn.AdaptiveAvgPool3d(1), nn.Flatten(start_dim=1))
    roundtrip(_randomise_stats(three), (1, 1, 4, 6, 4), tmp_path / "three.onnx")


def test_an_imported_model_is_written_back_with_its_fine_tuned_weights(tmp_path):
    nn.init.seed(3)
    model = _randomise_stats(resnet(3, 4))
    x = np.random.default_rng(4).standard_normal((2, 3, 12, 12)).astype(np.float32)
    convolve.onnx.save(model, x, tmp_path / "a.onnx")
    imported = convolve.onnx.load(tmp_path / "a.onnx")
    for p in imported.parameters():
        p.data += 0.01  # stands in for a training step
    convolve.onnx.save(imported, x, tmp_path / "b.onnx")
    again = convolve.onnx.load(tmp_path / "b.onnx")
    np.testing.assert_allclose(again(x).data, imported(x).data, rtol=1e-6)
    assert not np.allclose(again(x).data, model.eval()(x).data, rtol=1e-3)


def test_what_cannot_be_exported_is_named(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x * 2

    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"layer '1' of type Custom"):
        convolve.onnx.save(nn.Sequential(nn.ReLU(), Custom()), x, tmp_path / "c.onnx")
    with pytest.raises(ValueError, match="uneven windows"):
        convolve.onnx.save(nn.AdaptiveAvgPool2d(3), x, tmp_path / "c.onnx")
    with pytest.raises(ValueError, match="opset must be an int from 11 to 21"):
        convolve.onnx.save(nn.ReLU(), x, tmp_path / "c.onnx", opset=9)
    with pytest.raises(TypeError, match="model must be a convolve.nn.Module"):
        convolve.onnx.save(lambda v: v, x, tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()  # nothing half-written
