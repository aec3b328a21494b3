"""The per-epoch progress bar (tqdm), silent where nobody watches."""

from __future__ import annotations

import os
import sys

__all__ = ["progress_enabled", "progress_bar"]


def progress_enabled(stream=None):
    """True when `stream` (default stderr) is a terminal and ``CI`` is not set to a true value."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(total, desc, enabled):
    """A tqdm bar over `total` batches, or a do-nothing stand-in when not `enabled`."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s, refresh=True):
        pass

    def close(self):
        pass
