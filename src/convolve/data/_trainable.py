"""Data a classifier can be trained on: checked once, at load, before any training starts."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_finite", "check_trainable"]


def check_finite(images, source, chunk=1 << 16):
    """A ValueError naming `source` and the first image holding NaN or inf (float images only)."""
    if not np.issubdtype(images.dtype, np.floating):
        return
    for start in range(0, len(images), chunk):  # chunked: no full-size boolean temporary
        block = images[start : start + chunk]
        bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if bad.any():
            first = start + int(np.argmax(bad))
            raise ValueError(f"{source}: image {first} holds NaN or infinite values; clean the data before "
                             "training")


def check_trainable(train: Any, test: Any, source: Any) -> None:
    """Refuse data a classifier cannot be trained on.

    Checks: at least 2 classes among the training labels, train and test images of one shape, one
    class list, and no NaN or inf in float images. Each failure is a ValueError naming `source`.
    """
    present = np.unique(train.labels)
    if len(present) < 2:
        which = train.classes[present[0]] if len(present) else "none"
        raise ValueError(f"{source}: all {len(train)} training images are in one class ({which!r}); a classifier "
                         "needs at least 2 classes")
    if train.image_shape != test.image_shape:
        c, h, w = train.image_shape
        tc, th, tw = test.image_shape
        raise ValueError(f"{source}: the training images are {h}x{w}x{c} (H x W x C) but the test images are "
                         f"{th}x{tw}x{tc}; both splits must have one size")
    if list(train.classes) != list(test.classes):
        raise ValueError(f"{source}: the training classes {train.classes[:10]} differ from the test classes "
                         f"{test.classes[:10]}")
    check_finite(train.images, f"{source} (training split)")
    check_finite(test.images, f"{source} (test split)")
