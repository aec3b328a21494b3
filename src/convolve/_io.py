"""Write files whole or not at all: a temporary file in the same folder, then an atomic rename.

A reader never sees half a file, and a failure (or Ctrl-C) leaves nothing behind. Checkpoints,
exported weights, metrics and pictures are all written this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "check_writable_dir"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; when the ``with`` body succeeds it replaces `path`.

    The temporary file sits in the same folder, so ``os.replace`` is a rename, never a copy. If the
    body raises, the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file next to `path` (see `atomic_path`), flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def check_writable_dir(folder) -> Path:
    """Create `folder` if needed and make sure it is a folder we can write to."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a folder, but {str(folder)!r} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write to the output folder {str(folder)!r}")
    return folder


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
