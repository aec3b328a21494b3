"""Every subcommand: an OSError while writing (or reading) is one line on stderr and a non-zero exit,
never a traceback, and leaves no half-written file."""

import contextlib
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convolve._io
from convolve.cli import main
from test_training import make_tiny_idx

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def tiny_idx(tmp_path_factory):
    return make_tiny_idx(tmp_path_factory.mktemp("tiny-idx"), n_train=64, n_test=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_idx):
    out = tmp_path_factory.mktemp("cli-err") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--data", str(tiny_idx), "--epochs", "1", "--batch-size", "32",
                     "--out", str(out)]) == 0
    return out / "best.npz"


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray((np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint8)).save(path)
    return path


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


class FullStdout(io.StringIO):
    """A stdout on a full disk: every write fails (like ``> /dev/full``)."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


def one_line_error(capsys, command, pattern):
    err = capsys.readouterr().err
    assert err.startswith(f"convolve {command}: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert pattern in err, err
    return err


def no_temporaries(folder):
    leftovers = [p.name for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_disk_full_while_writing_demo_apply_and_train(tmp_path, tiny_idx, image, capsys, monkeypatch):
    monkeypatch.setattr(convolve._io.os, "fsync", disk_full)  # every atomic write fails at its flush
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-train"]) == 1
    one_line_error(capsys, "demo", "No space left on device")
    no_temporaries(tmp_path / "demo")
    assert not any(p.is_file() for p in (tmp_path / "demo").iterdir())

    assert main(["apply", str(image), "--kernel", "edge", "--out", str(tmp_path / "map.png")]) == 1
    one_line_error(capsys, "apply", "map.png")
    assert not (tmp_path / "map.png").exists()

    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_idx), "--epochs", "1", "--out", str(run)]) == 1
    one_line_error(capsys, "train", "No space left on device")
    no_temporaries(run)
    assert not (run / "last.npz").exists()


def test_permission_and_read_only_are_reported_before_training(tmp_path, tiny_idx, capsys, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(convolve._io.tempfile, "mkstemp", refused)  # root ignores chmod; refuse the probe
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "--data", str(tiny_idx), "--epochs", "1", "--out", str(tmp_path / "run")])
    assert code == 1
    one_line_error(capsys, "train", "Permission denied")
    assert "epoch" not in printed.getvalue() and "training" not in printed.getvalue()  # nothing trained

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(convolve._io.tempfile, "mkstemp", read_only)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-train"]) == 1
    one_line_error(capsys, "demo", "Read-only file system")


def test_missing_or_non_folder_parents(tmp_path, tiny_idx, image, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--data", str(tiny_idx), "--epochs", "1", "--out", str(blocker / "run")]) == 2
    one_line_error(capsys, "train", "where a folder should be")
    assert printed.getvalue() == ""
    assert main(["demo", "--out", str(blocker / "demo"), "--no-train"]) == 2
    one_line_error(capsys, "demo", "must be a folder")
    assert main(["apply", str(image), "--kernel", "edge", "--out", str(blocker / "map.png")]) == 2
    one_line_error(capsys, "apply", "is not a folder")
    assert main(["apply", str(image), "--kernel", "edge", "--out", str(tmp_path / "no" / "map.png")]) == 2
    one_line_error(capsys, "apply", "does not exist")
    assert blocker.read_text() == "x"


def test_full_stdout_in_explain_evaluate_and_predict(checkpoint, tiny_idx, image, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", FullStdout())
    assert main(["explain", "28x28x1", "conv 4 3"]) == 1
    one_line_error(capsys, "explain", "No space left on device")
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_idx)]) == 1
    one_line_error(capsys, "evaluate", "No space left on device")
    assert main(["predict", str(checkpoint), str(image)]) == 1
    one_line_error(capsys, "predict", "No space left on device")


def test_unreadable_checkpoint_is_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    real_open = open

    def no_permission(path, *args, **kwargs):
        if str(path) == str(checkpoint):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_permission)
    assert main(["evaluate", str(checkpoint)]) == 1
    one_line_error(capsys, "evaluate", "Permission denied")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fill stdout")
def test_real_full_device_on_stdout():
    env = {**os.environ, "PYTHONPATH": SRC}
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "convolve.cli", "explain", "64x64x3", "conv 8 5 pad=2"],
                           stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert r.stderr.startswith("convolve explain: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "No space left on device" in r.stderr and "Traceback" not in r.stderr


def test_import_under_python_OO():
    env = {**os.environ, "PYTHONPATH": SRC}
    code = "import convolve, convolve.training, convolve.explain, convolve.interop, convolve.cli; print('ok')"
    r = subprocess.run([sys.executable, "-OO", "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
