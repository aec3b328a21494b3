"""Atomic writes: a file appears whole or not at all."""

import os
import stat

import pytest

from convolve._io import atomic_path, atomic_write


def test_failure_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.png"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_success_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "w.npz"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_path_form_and_a_missing_folder(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        with open(tmp, "w") as f:
            f.write("ok")
    assert (tmp_path / "a.txt").read_text() == "ok"
    with pytest.raises(FileNotFoundError, match="folder .* does not exist"):
        with atomic_path(tmp_path / "no" / "a.txt"):
            pass
