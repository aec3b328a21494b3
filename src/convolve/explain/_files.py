"""Write files whole or not at all: temp file in the same folder, then an atomic rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "check_writable_dir"]


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` and rename the result to `path`; on any error nothing is left behind."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent or ".")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def check_writable_dir(folder) -> Path:
    """Create `folder` if needed and make sure it is a folder we can write to."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a folder, but {str(folder)!r} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write to the output folder {str(folder)!r}")
    return folder
