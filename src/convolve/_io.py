"""Write files whole or not at all: a temporary file in the same folder, then an atomic rename.

A reader never sees half a file, and a failure (or Ctrl-C) leaves nothing behind. Checkpoints,
exported weights, metrics and pictures are all written this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "check_writable_dir", "check_can_create_dir"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; when the ``with`` body succeeds it replaces `path`.

    The temporary file sits in the same folder, so ``os.replace`` is a rename, never a copy. If the
    body raises, the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(folder)!r} {what}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _naming(exc, path) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the permissions open() would
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file next to `path` (see `atomic_path`), flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _naming(exc: OSError, path) -> OSError:
    """The same kind of OSError, naming the file the user asked for rather than our temporary file."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, f"cannot write {str(path)!r}: {exc.strerror}")


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in `folder`: the one test that also holds for root and read-only mounts."""
    try:
        fd, name = tempfile.mkstemp(prefix=".convolve-probe.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write to {str(folder)!r} ({what}): {exc.strerror}") from None


def check_writable_dir(folder, what="out") -> Path:
    """Create `folder` if needed and make sure it is a folder we can write to.

    Raises
    ------
    ValueError
        `folder` (or one of its parents) is a file.
    OSError
        The folder cannot be created or written (permission, read-only file system, ...), naming it.
    """
    folder = Path(folder)
    check_can_create_dir(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot create {str(folder)!r} ({what}): {exc.strerror}") from None
    _probe(folder, what)
    return folder


def check_can_create_dir(folder, what="out") -> Path:
    """Make sure `folder` exists and is writable, or could be created, without creating anything.

    The nearest existing ancestor must be a folder we can write to (probed with a temporary file).

    Raises
    ------
    ValueError
        `folder` or one of its parents is a file.
    OSError
        The nearest existing folder cannot be written, naming it.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == folder else f"has a file {str(probe)!r} where a folder should be"
        raise ValueError(f"{what} must be a folder, but {str(folder)!r} {where}")
    _probe(probe if probe.exists() else Path.cwd(), what)
    return folder


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
