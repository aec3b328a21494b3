"""`convolve.dask.map_model`: a fully convolutional model over a chunked image equals the model in memory."""

import re

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")

import convolve.nn as nn  # noqa: E402
from convolve import Tensor, no_grad  # noqa: E402
from convolve.autograd import is_grad_enabled  # noqa: E402
from convolve.dask import map_model, model_geometry  # noqa: E402
from convolve.explain import explain  # noqa: E402

rng = np.random.default_rng(1)


def _eval(model, dtype=np.float64):
    model = model.to(dtype).eval()
    for m in model.modules():  # running statistics that are not the identity
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean[...] = rng.standard_normal(m.running_mean.shape)
            m.running_var[...] = rng.random(m.running_var.shape) + 0.5
    return model


def _close(got, want):
    """Equal up to float rounding: a block's shape may make the engine pick another algorithm than the whole."""
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _in_memory(model, x):
    with no_grad():
        return np.asarray(model(Tensor(x)).data)


MODELS = {
    "conv-pool-bn": lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(8, 4, 5, padding=2), nn.BatchNorm2d(4), nn.Tanh()),
    "strided-reflect-ceil": lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, padding_mode="reflect"), nn.LeakyReLU(0.1),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), nn.Conv2d(8, 4, 3, padding="same", dilation=2),
        nn.Dropout(0.5), nn.Sigmoid()),
    "residual": lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BasicBlock(8, 8), nn.BasicBlock(8, 16, stride=2),
                                      nn.MaxPool2d(3, 2, 1)),
    "upsampling": lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                                        nn.ConvTranspose2d(8, 4, 2, stride=2), nn.ReLU(),
                                        nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)),
}


@pytest.mark.parametrize("name", MODELS)
def test_map_model_equals_model_in_memory(name):
    nn.init.seed(0)
    model = _eval(MODELS[name]())
    x = rng.standard_normal((2, 3, 53, 47))
    y = map_model(model, da.from_array(x, chunks=(1, 2, 16, 13)))  # uneven chunks, split channels
    want = _in_memory(model, x)
    assert isinstance(y, da.Array) and y.shape == want.shape and y.dtype == want.dtype
    _close(y.compute(scheduler="sync"), want)


def test_map_model_1d_and_3d():
    nn.init.seed(0)
    m1 = _eval(nn.Sequential(nn.Conv1d(2, 4, 5, padding=2, stride=2), nn.BatchNorm1d(4), nn.ReLU(), nn.MaxPool1d(3)))
    x = rng.standard_normal((2, 2, 301))
    _close(map_model(m1, da.from_array(x, chunks=(1, 2, 50))).compute(), _in_memory(m1, x))
    m3 = _eval(nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.AvgPool3d(2), nn.Conv3d(2, 1, 3, dilation=2)))
    x = rng.standard_normal((1, 1, 20, 18, 22))
    _close(map_model(m3, da.from_array(x, chunks=(1, 1, 7, 6, 9))).compute(), _in_memory(m3, x))


def test_map_model_transposed_1d_and_3d():
    """Transposed convs of every geometry: stride above the kernel, dilation, output_padding, groups."""
    nn.init.seed(0)
    m1 = _eval(nn.Sequential(nn.ConvTranspose1d(2, 4, 3, stride=3, padding=2, output_padding=1, dilation=2), nn.ReLU(),
                             nn.MaxPool1d(3, 2, 1), nn.ConvTranspose1d(4, 2, 4, stride=2, groups=2),
                             nn.ConvTranspose1d(2, 2, 1, stride=3)))
    x = rng.standard_normal((2, 2, 29))
    _close(map_model(m1, da.from_array(x, chunks=(1, 2, (3, 1, 7, 8, 10)))).compute(), _in_memory(m1, x))
    m3 = _eval(nn.Sequential(nn.ConvTranspose3d(2, 2, 3, stride=(1, 2, 3), padding=1, output_padding=(0, 1, 2),
                                                dilation=(2, 1, 1))))
    x = rng.standard_normal((1, 2, 5, 6, 4))
    _close(map_model(m3, da.from_array(x, chunks=(1, 2, 2, 4, 1))).compute(), _in_memory(m3, x))


def test_threads_leave_recording_on():
    """Blocks run on dask's threads; no_grad is one process-wide flag, so their model calls take turns."""
    nn.init.seed(0)
    model = _eval(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()))
    for _ in range(3):
        map_model(model, da.zeros((4, 1, 64, 64), chunks=(1, 1, 16, 16))).compute(scheduler="threads", num_workers=4)
        assert is_grad_enabled()


def test_halo_is_the_receptive_field_explain_computes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 4, 5, padding=2, stride=2, dilation=2),
                          nn.ReLU(), nn.AvgPool2d(3, stride=2))
    steps = explain("64x64x3", ["conv 8 3x3 pad=1", "maxpool 2", "conv 4 5x5 pad=2 stride=2 dilation=2", "relu",
                                "avgpool 3 stride=2"]).steps
    geometry = model_geometry(model)
    assert [g.receptive_field for g in geometry] == list(steps[-1].rf) == [28, 28]
    assert [1 / g.scale for g in geometry] == list(steps[-1].jump) == [8, 8]
    assert [g.alignment for g in geometry] == [8, 8] and geometry[0].offset == 1 * 1 + 2 * 2  # padding x jump, summed


def test_nothing_is_computed_and_the_model_is_stored_once():
    nn.init.seed(0)
    model = _eval(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()), np.float32)
    x = da.zeros((1, 1, 64, 64), chunks=16, dtype=np.float32)
    y = map_model(model, x)
    layer = y.dask.layers[y.name]
    assert sum(v is model for v in layer.values()) == 1 and sum(isinstance(k, tuple) for k in layer) == 16


@pytest.mark.parametrize("layer, name", [(nn.Flatten(), "'1' (Flatten)"), (nn.Linear(4, 2), "'1' (Linear)"),
                                         (nn.AdaptiveAvgPool2d(1), "'1' (AdaptiveAvgPool2d)")])
def test_layers_that_mix_all_positions_are_refused_by_name(layer, name):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), layer).eval()
    with pytest.raises(ValueError, match=re.escape(f"layer {name} mixes all positions")):
        map_model(model, da.zeros((1, 1, 8, 8), chunks=4))


def test_other_refusals():
    x = da.zeros((1, 1, 8, 8), chunks=4)
    with pytest.raises(ValueError, match="call model.eval\\(\\) first"):
        map_model(nn.Sequential(nn.Conv2d(1, 1, 3)), x)
    with pytest.raises(ValueError, match="padding='same' with stride"):
        map_model(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding="same")).eval(), x)
    with pytest.raises(TypeError, match="x must be a dask.array.Array"):
        map_model(nn.Sequential(nn.ReLU()).eval(), np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"layer '0' \(Conv1d\) is 1-D but the input has 2 spatial dims"):
        map_model(nn.Sequential(nn.Conv1d(1, 1, 3)).eval(), x)


class _Mystery(nn.Module):
    def forward(self, input):
        return input


def test_unknown_layers_are_refused_by_name():
    with pytest.raises(ValueError, match=r"layer '1' \(_Mystery\) is not a layer map_model knows"):
        map_model(nn.Sequential(nn.ReLU(), _Mystery()).eval(), da.zeros((1, 1, 8, 8), chunks=4))
