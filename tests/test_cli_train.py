"""End-to-end tests of `convolve train | evaluate | predict` through convolve.cli.main."""

import contextlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from convolve.cli import main
from convolve.data import load_default
from test_training import make_tiny_idx


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
    return make_tiny_idx(tmp_path_factory.mktemp("tiny-idx"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_idx):
    """One tiny run through the CLI: its directory and what it printed."""
    out = tmp_path_factory.mktemp("cli") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "--data", str(tiny_idx), "--epochs", "2", "--batch-size", "32", "--limit", "128",
                     "--optimizer", "sgd", "--lr", "0.05", "--seed", "1", "--out", str(out)])
    assert code == 0
    return out, printed.getvalue().splitlines()


def test_train_writes_the_run_directory(cli_run):
    out, lines = cli_run
    assert sorted(p.name for p in out.iterdir()) == ["best.npz", "last.npz", "loss_accuracy.png", "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["optimizer"] == "sgd" and metrics["settings"]["limit"] == 128
    assert len(metrics["epochs"]) == 2
    for record in metrics["epochs"]:
        assert set(record) >= {"train_loss", "test_loss", "test_accuracy", "images_per_second"}
    with open(out / "loss_accuracy.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(out / "loss_accuracy.png") as im:
        im.verify()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert re.search(r"train loss [\d.]+  test loss [\d.]+  test acc +[\d.]+%  [\d,]+ img/s  [\d.]+ s", epoch_lines[0])


def test_evaluate_prints_the_stored_accuracy(cli_run, tiny_idx, capsys):
    out, _ = cli_run
    assert main(["evaluate", str(out / "best.npz"), "--data", str(tiny_idx)]) == 0
    printed = capsys.readouterr().out
    best = json.loads((out / "metrics.json").read_text())["best_accuracy"]
    assert f"test accuracy {100 * best:.2f}% ({round(best * 64)}/64)" in printed


def test_predict_prints_top_classes(cli_run, tmp_path, capsys):
    out, _ = cli_run
    _, test = load_default()
    grey, colour = tmp_path / "grey.png", tmp_path / "colour.jpg"
    Image.fromarray(test.images[5, 0]).save(grey)
    Image.fromarray(np.repeat(test.images[6, 0, :, :, None], 3, axis=2)).resize((64, 64)).save(colour)
    assert main(["predict", str(out / "best.npz"), str(grey), str(colour), "--top", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(grey) and printed[3] == str(colour)
    probs = [float(line.rsplit(maxsplit=1)[1].rstrip("%")) for line in printed if line.startswith("  ")]
    assert len(probs) == 4 and probs[0] >= probs[1] and probs[2] >= probs[3]
    assert all(0 <= p <= 100 for p in probs)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    assert "usage: convolve " + command in capsys.readouterr().out


def test_train_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--model", "--data", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--out",
                   "--resume", "--limit", "{lenet,resnet}", "{sgd,adam,adamw}"):
        assert option in text


def test_errors_are_one_line_with_exit_code_2(cli_run, tmp_path, capsys):
    out, _ = cli_run
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04garbage")
    cases = [
        (["evaluate", str(tmp_path / "missing.npz")], r"missing\.npz: no such checkpoint file"),
        (["evaluate", str(corrupt)], r"corrupt\.npz: checkpoint is corrupt or truncated"),
        (["train", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "o")],
         r"nodata does not exist; expected a directory of IDX files"),
        (["train", "--epochs", "0", "--out", str(tmp_path / "o")], r"epochs must be a positive int, but got 0"),
        (["train", "--resume", "--model", "resnet", "--out", str(out)],
         r"last\.npz: checkpoint does not fit this model .*0\.weight \(32, 1, 3, 3\) in the file vs \(16, 1, 3, 3\)"),
        (["predict", str(out / "best.npz"), str(tmp_path / "nothing.png")], r"nothing\.png: no such image file"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(message, err), (argv, err)
        assert err.count("\n") == 1 and err.startswith(f"convolve {argv[0]}: error: ")
    assert not (tmp_path / "o").exists()


def test_bad_choice_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--optimizer", "rmsprop"])
    assert exit.value.code == 2
    assert "invalid choice: 'rmsprop'" in capsys.readouterr().err
