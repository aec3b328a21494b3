"""Tests for convolve.training: presets, the seeded run, exact resume, checkpoints, inference, errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convolve import Tensor
from convolve.data import load_default, write_idx
from convolve.training import (
    build_model,
    evaluate_checkpoint,
    load_checkpoint,
    load_model,
    model_config,
    predict_files,
    predict_proba,
    save_checkpoint,
    train,
)
from convolve.training._progress import progress_enabled


class Stop(Exception):
    """Raised from on_epoch_end to stop a run the way Ctrl-C would."""


def make_tiny_idx(root, n_train=192, n_test=64):
    """A small IDX dataset cut from the embedded Fashion-MNIST subset (balanced, deterministic)."""
    train, test = load_default()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pick_train = np.arange(0, len(train), len(train) // n_train)[:n_train]
    pick_test = np.arange(0, len(test), len(test) // n_test)[:n_test]
    write_idx(root / "train-images-idx3-ubyte", train.images[pick_train, 0])
    write_idx(root / "train-labels-idx1-ubyte", train.labels[pick_train].astype(np.uint8))
    write_idx(root / "t10k-images-idx3-ubyte.gz", test.images[pick_test, 0])
    write_idx(root / "t10k-labels-idx1-ubyte.gz", test.labels[pick_test].astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
    return make_tiny_idx(tmp_path_factory.mktemp("tiny-idx"))


def quiet(**kwargs):
    return dict(progress=False, log=lambda line: None, **kwargs)


# --- presets and configs ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet", "resnet"])
@pytest.mark.parametrize("channels, size, classes", [(1, (28, 28), 10), (3, (32, 32), 7), (3, (20, 24), 4)])
def test_presets_fit_any_input(name, channels, size, classes):
    model = build_model(model_config(name, channels, size, classes))
    x = Tensor(np.random.default_rng(0).random((2, channels, *size), dtype=np.float32))
    assert model(x).shape == (2, classes)


def test_lenet_is_the_issues_model():
    keys = {k: v.shape for k, v in build_model(model_config("lenet", 1, (28, 28), 10)).state_dict().items()}
    assert keys == {"0.weight": (32, 1, 3, 3), "0.bias": (32,), "3.weight": (64, 32, 3, 3), "3.bias": (64,),
                    "7.weight": (128, 3136), "7.bias": (128,), "9.weight": (10, 128), "9.bias": (10,)}


def test_resnet_has_residual_blocks_and_batchnorm():
    keys = build_model(model_config("resnet", 3, (32, 32), 10)).state_dict()
    assert "3.conv1.weight" in keys and "4.downsample.0.weight" in keys and "1.running_var" in keys


@pytest.mark.parametrize("config, match", [
    ({"model": "vgg", "in_channels": 1, "image_size": [28, 28], "num_classes": 10}, "model must be one of"),
    ({"model": "lenet", "in_channels": 1, "num_classes": 10}, "missing \\['image_size'\\]"),
    ({"model": "lenet", "in_channels": 0, "image_size": [28, 28], "num_classes": 10}, "in_channels must be"),
    ({"model": "lenet", "in_channels": 1, "image_size": [2, 28], "num_classes": 10}, "at least 4x4"),
    ({"model": "lenet", "in_channels": 1, "image_size": 28, "num_classes": 10}, "image_size must be \\[H, W\\]"),
])
def test_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        build_model(config)


# --- learning ------------------------------------------------------------------------------------


def test_short_seeded_run_on_embedded_data_learns(tmp_path):
    # chance is 10%; this run reaches ~80%, a broken gradient or optimiser stays far below 70%
    run = train(out=tmp_path / "run", epochs=2, limit=2400, batch_size=64, seed=0, **quiet())
    accuracy = run["history"][-1]["test_accuracy"]
    assert accuracy >= 0.70, f"test accuracy {accuracy:.3f} after a short run"
    assert run["history"][-1]["train_loss"] < run["history"][0]["train_loss"]


# --- exact resume --------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    dict(model="lenet", optimizer="adam", schedule="cosine", augment="crop+flip"),
    dict(model="resnet", optimizer="sgd", schedule="step", augment="none", limit=64),  # BN buffers too
])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, tiny_idx, settings):
    common = dict(data=tiny_idx, epochs=3, batch_size=32, seed=3, **settings, **quiet())
    whole = train(out=tmp_path / "whole", **common)

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train(out=tmp_path / "split", on_epoch_end=stop_after_first, **common)
    assert load_checkpoint(tmp_path / "split" / "last.npz").epoch == 1
    resumed = train(out=tmp_path / "split", resume=True, **quiet())  # settings come from the checkpoint

    a = load_checkpoint(tmp_path / "whole" / "last.npz")
    b = load_checkpoint(tmp_path / "split" / "last.npz")
    assert a.epoch == b.epoch == 3
    assert a.model_state.keys() == b.model_state.keys()
    for key in a.model_state:
        np.testing.assert_array_equal(a.model_state[key], b.model_state[key], err_msg=key)
    assert json.dumps(a.optimizer_state, default=np.ndarray.tolist) == json.dumps(
        b.optimizer_state, default=np.ndarray.tolist)
    exact = ("epoch", "train_loss", "test_loss", "test_accuracy", "lr")
    assert [{k: r[k] for k in exact} for r in whole["history"]] == [
        {k: r[k] for k in exact} for r in resumed["history"]]


def test_resume_can_extend_a_run(tmp_path, tiny_idx):
    common = dict(data=tiny_idx, batch_size=64, schedule="none", **quiet())
    train(out=tmp_path / "a", epochs=1, **common)
    lines = []
    run = train(out=tmp_path / "a", epochs=2, resume=True, progress=False, log=lines.append)
    assert [r["epoch"] for r in run["history"]] == [1, 2]
    assert any("resuming at epoch 2" in line for line in lines)
    whole = train(out=tmp_path / "b", epochs=2, **common)
    np.testing.assert_array_equal(whole["history"][-1]["train_loss"], run["history"][-1]["train_loss"])


# --- run directory and checkpoints ---------------------------------------------------------------


def test_run_writes_checkpoints_metrics_and_plot(tmp_path, tiny_idx):
    lines = []
    run = train(data=tiny_idx, out=tmp_path / "r", epochs=2, batch_size=64, progress=False, log=lines.append)
    out = tmp_path / "r"
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "last.npz", "loss_accuracy.png", "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2]
    for r in metrics["epochs"]:
        assert r["train_loss"] > 0 and r["test_loss"] > 0 and 0 <= r["test_accuracy"] <= 1
        assert r["images_per_second"] > 0
    assert metrics["best_accuracy"] == max(r["test_accuracy"] for r in metrics["epochs"])
    assert metrics["config"]["model"] == "lenet" and len(metrics["config"]["mean"]) == 1
    with Image.open(out / "loss_accuracy.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert sum(line.startswith("epoch ") for line in lines) == 2
    best = load_checkpoint(out / "best.npz")
    assert best.epoch == metrics["best_epoch"] and best.optimizer_state is None
    assert best.classes[9] == "Ankle boot" or best.classes == [str(i) for i in range(10)]
    assert run["best_accuracy"] == best.extra["best_accuracy"]


def test_checkpoint_round_trip_without_pickle(tmp_path):
    state = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "1.num_batches_tracked": np.array(4)}
    opt = {"state": {0: {"step": 3, "exp_avg": np.ones(3)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    save_checkpoint(tmp_path / "c.npz", state, {"model": "lenet"}, classes=["a", "b"], epoch=2,
                    optimizer_state=opt, extra={"note": "x"})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:  # readable with pickle disabled
        assert "model/0.weight" in npz.files and "__meta__" in npz.files
    c = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(c.model_state["0.weight"], state["0.weight"])
    assert c.optimizer_state["state"][0]["step"] == 3  # int keys survive
    np.testing.assert_array_equal(c.optimizer_state["state"][0]["exp_avg"], np.ones(3))
    assert (c.classes, c.epoch, c.extra) == (["a", "b"], 2, {"note": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_checkpoint_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.npz", {}, {}, classes=[], epoch=0)
    assert list(tmp_path.iterdir()) == []


# --- inference -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_idx):
    out = tmp_path_factory.mktemp("trained") / "run"
    train(data=tiny_idx, out=out, epochs=2, batch_size=32, **quiet())
    return out


def test_evaluate_checkpoint_matches_the_stored_accuracy(trained_run, tiny_idx):
    result = evaluate_checkpoint(trained_run / "best.npz", tiny_idx)
    stored = json.loads((trained_run / "metrics.json").read_text())["best_accuracy"]
    assert result["accuracy"] == stored and result["images"] == 64
    # without data it evaluates on what the run was trained on
    assert evaluate_checkpoint(trained_run / "best.npz")["accuracy"] == stored


def test_predict_files_agree_with_the_model_on_the_same_pixels(trained_run, tmp_path):
    _, test = load_default()
    files = []
    for i in (0, 1, 2):
        files.append(tmp_path / f"img{i}.png")
        Image.fromarray(test.images[i, 0]).save(files[-1])
    Image.fromarray(np.repeat(test.images[3, 0, :, :, None], 3, axis=2)).resize((56, 40)).save(tmp_path / "rgb.png")
    model, ckpt = load_model(trained_run / "best.npz")
    mean, std = ckpt.config["mean"][0], ckpt.config["std"][0]
    expected = predict_proba(model, ((test.images[:3].astype(np.float32) / 255) - mean) / std)
    results = predict_files(trained_run / "best.npz", [*files, tmp_path / "rgb.png"], top=3)
    assert len(results) == 4
    for (file, ranked), p in zip(results, expected):
        assert [name for name, _ in ranked] == [ckpt.classes[i] for i in np.argsort(-p)[:3]]
        np.testing.assert_allclose([q for _, q in ranked], np.sort(p)[::-1][:3], rtol=1e-6)
    assert len(results[3][1]) == 3 and results[3][1][0][1] >= results[3][1][1][1]  # RGB, resized: still works
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-12)


# --- errors --------------------------------------------------------------------------------------


def test_resume_with_another_architecture_names_keys_and_shapes(trained_run):
    before = {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()}
    with pytest.raises(ValueError, match=r"last\.npz: checkpoint does not fit this model.*0\.weight") as err:
        train(out=trained_run, resume=True, model="resnet", **quiet())
    assert "shape" in str(err.value) and "(32, 1, 3, 3)" in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in trained_run.iterdir()} == before


def test_missing_and_corrupt_checkpoints_name_the_file(tmp_path, trained_run):
    with pytest.raises(FileNotFoundError, match=r"nope\.npz: no such checkpoint file"):
        load_model(tmp_path / "nope.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((trained_run / "best.npz").read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"truncated\.npz: checkpoint is corrupt or truncated"):
        load_model(truncated)
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.zeros(3))
    with pytest.raises(ValueError, match=r"plain\.npz: not a convolve checkpoint"):
        load_model(plain)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"text\.npz: checkpoint is corrupt"):
        evaluate_checkpoint(text)


def test_bad_data_paths_explain_the_accepted_formats(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist; expected a directory of IDX files.*CIFAR-10"):
        train(data=tmp_path / "missing", out=tmp_path / "out", **quiet())
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"junk: not a known dataset format: expected IDX files.*CIFAR-10"):
        train(data=tmp_path / "junk", out=tmp_path / "out", **quiet())
    assert not (tmp_path / "out").exists()  # a failed start leaves no run directory


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=0), ValueError, "epochs must be a positive int, but got 0"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an int, but got 2.5"),
    (dict(optimizer="rmsprop"), ValueError, r"optimizer must be one of \['sgd', 'adam', 'adamw'\]"),
    (dict(model="vgg"), ValueError, "model must be one of"),
    (dict(lr=-1.0), ValueError, "lr must be a finite number > 0"),
    (dict(lr="fast"), TypeError, "lr must be a number"),
    (dict(augment="rotate"), ValueError, "augment must be one of"),
])
def test_bad_settings_fail_before_any_work(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        train(out=tmp_path / "out", **kwargs, **quiet())
    assert not (tmp_path / "out").exists()


def test_existing_run_is_not_overwritten_and_resume_needs_one(tmp_path, trained_run):
    with pytest.raises(ValueError, match="already holds a run.*resume"):
        train(out=trained_run, **quiet())
    with pytest.raises(FileNotFoundError, match=r"last\.npz: no such checkpoint file"):
        train(out=tmp_path / "empty", resume=True, **quiet())
    with pytest.raises(ValueError, match="resume needs out"):
        train(resume=True, **quiet())


def test_evaluate_refuses_data_of_another_shape(trained_run, tmp_path):
    folder = tmp_path / "colour"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), (10, 200, 30)).save(folder / name / "x.png")
    with pytest.raises(ValueError, match=r"expects 1x28x28 images in 10 classes, but .* has 1x32x32 images in 2"):
        evaluate_checkpoint(trained_run / "best.npz", folder)


def test_predict_errors_name_the_file(trained_run, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png: cannot be opened as an image"):
        predict_files(trained_run / "best.npz", [bad])
    with pytest.raises(FileNotFoundError, match=r"gone\.png: no such image file"):
        predict_files(trained_run / "best.npz", [tmp_path / "gone.png"])
    with pytest.raises(ValueError, match="top must be a positive int"):
        predict_files(trained_run / "best.npz", [bad], top=0)


def test_progress_bar_shows_loss_and_speed(tmp_path, tiny_idx, capsys):
    train(data=tiny_idx, out=tmp_path / "r", epochs=1, limit=64, batch_size=32, progress=True, log=print)
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err and "img/s" in captured.err and "loss " in captured.err
    assert "epoch 1/1  train loss" in captured.out


def test_progress_bar_off_without_a_terminal_or_in_ci(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(Tty()) is True
    assert progress_enabled(open(os.devnull, "w")) is False
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(Tty()) is False
