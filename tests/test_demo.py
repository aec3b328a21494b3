"""convolve demo: the seeds' example end to end; what it prints and draws is what the engine computed."""

import numpy as np
import pytest
from PIL import Image

from convolve import functional as F, nn
from convolve.cli import build_parser
from convolve.explain import demo as demo_mod
from convolve.explain import run_demo, sample_image
from convolve.explain.learned import feature_maps_figure, layer_outputs, learned_filters_figure

EXPECTED = ["01_kernel_bank.png", "02_slide_1channel.gif", "03_slide_3channel.gif", "04_layer1_kernels.png",
            "05_layer1_volume.png", "06_layer2_reads_volume.png", "explanation.txt"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines = []
    return run_demo(out / "convolve-demo", train=False, say=lines.append, kernels=["[[1,0,-1],[2,0,-2],[1,0,-1]]"]), lines


def test_demo_writes_every_picture(demo):
    res, _ = demo
    assert [p.name for p in res.files] == EXPECTED
    assert sorted(p.name for p in res.out.iterdir()) == sorted(EXPECTED)  # nothing else, no temp files
    for p in res.files[:-1]:
        img = Image.open(p)
        assert img.size[0] > 400 and img.size[1] > 300


def test_demo_volumes_are_the_engines(demo):
    res, _ = demo
    x = sample_image(64).astype(np.float64)
    w1, b1 = demo_mod.first_layer()
    w2, b2 = demo_mod.second_layer()
    assert w1.shape == (8, 3, 5, 5) and w2.shape == (16, 8, 5, 5)
    v1 = F.conv2d(x[None], w1, b1, padding=2)[0]
    assert np.array_equal(res.arrays["input"], x) and np.array_equal(res.arrays["volume1"], v1)
    assert res.arrays["volume1"].shape == (8, 64, 64)  # 64x64x3, 8 kernels 5x5x3, padding 2 -> 64x64x8
    assert np.array_equal(res.arrays["volume2"], F.conv2d(v1[None], w2, b2, padding=2)[0])
    user = res.arrays["bank"]["yours 1"]  # the user's literal kernel, computed on the grey photo
    assert np.allclose(user, -res.arrays["bank"]["sobel_x"])
    nl = res.arrays["next_layer"]
    assert nl.z == pytest.approx(res.arrays["volume2"][0, 26, 20])


def test_demo_animations(demo):
    res, _ = demo
    s1, s3 = res.arrays["slide_1channel"], res.arrays["slide_3channel"]
    assert s1.frames == 64 and s3.frames == 36  # 8x8 padding 1 -> 8x8 positions; 8x8x3 no padding -> 6x6
    assert s3.weight.shape == (3, 3, 3)
    assert Image.open(res.out / "02_slide_1channel.gif").n_frames == 64
    assert Image.open(res.out / "03_slide_3channel.gif").n_frames == 36
    engine = F.conv2d(s3.input[None], s3.weight[None], np.array([s3.bias]))[0, 0]
    assert np.array_equal(s3.map_at(s3.frames - 1), engine)


def test_demo_text(demo):
    res, lines = demo
    text = "\n".join(lines)
    assert text == res.text
    assert "[1] conv 8 5x5x3 pad=2  ->  64x64x8" in text and "[2] conv 16 5x5x8 pad=2  ->  64x64x16" in text
    assert "engine check: conv2d really gave 64x64x8 and 64x64x16" in text
    assert "WRONG: conv with 8 kernels of 5x5x3 and padding=1 gives 62x62x8, not 64x64x8" in text
    assert f"Pictures written to {res.out}/" in text
    assert "learned filters skipped" in text
    assert (res.out / "explanation.txt").read_text().startswith("convolve demo: the seeds' example")


def test_demo_refuses_bad_output(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out must be a folder"):
        run_demo(tmp_path / "file", train=False, say=lambda s: None)
    with pytest.raises(FileNotFoundError, match="checkpoint .* does not exist"):
        run_demo(tmp_path / "d", checkpoint=tmp_path / "nope.npz", say=lambda s: None)
    with pytest.raises(ValueError, match="needs a 2-D"):
        run_demo(tmp_path / "k", kernels=["[[[1]]]"], say=lambda s: None)
    assert not (tmp_path / "k").exists()
    pytest.importorskip("convolve.training", reason="the training package reads checkpoints")
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        run_demo(tmp_path / "e", checkpoint=tmp_path / "bad.npz", say=lambda s: None)
    assert list((tmp_path / "e").iterdir()) == []  # refused before any picture was drawn


def test_demo_cli_wiring():
    args = build_parser().parse_args(["demo", "--out", "somewhere", "--no-train"])
    assert args.out == "somewhere" and args.no_train and args.checkpoint is None
    assert args.func.__name__ == "_run_demo"


def test_learned_pictures_from_a_checkpoint(tmp_path):
    training = pytest.importorskip("convolve.training", reason="the training package provides checkpoints")
    model = training.lenet(1, 10, (28, 28))
    cfg = training.model_config("lenet", 1, (28, 28), 10)
    path = tmp_path / "model.npz"
    training.save_checkpoint(path, model.state_dict(), cfg, classes=[str(i) for i in range(10)], epoch=3)
    files = demo_mod._learned(tmp_path, path, False, lambda s: None)
    assert [f.name for f in files] == ["07_learned_filters.png", "08_learned_feature_maps.png"]
    assert all(Image.open(f).format == "PNG" for f in files)


def test_learned_filters_and_maps_are_the_models(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 2))
    w = learned_filters_figure(model, tmp_path / "f.png")
    assert np.array_equal(w, model[0].weight.data)
    x = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    outs = feature_maps_figure(model, x, tmp_path / "m.png")
    assert [o.shape for _, _, o in outs] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (64,), (2,)]
    assert np.allclose(outs[0][2], F.conv2d(x, model[0].weight.data, model[0].bias.data, padding=1), atol=1e-6)
    assert np.allclose(outs[-1][2], model(x[None]).data[0], atol=1e-6)
    with pytest.raises(ValueError, match="no Conv2d layer"):
        learned_filters_figure(nn.Sequential(nn.Linear(2, 2)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="must have sub-modules"):
        layer_outputs(nn.Linear(2, 2), x)


def test_failed_quick_training_is_reported_not_fatal(tmp_path):
    pytest.importorskip("convolve.training", reason="the quick run uses the training package")
    (tmp_path / "quick-training").mkdir()
    (tmp_path / "quick-training" / "best.npz").write_bytes(b"damaged")
    said = []
    assert demo_mod._learned(tmp_path, None, True, said.append) == []
    assert "learned filters skipped: the quick training run failed" in said[-1]
