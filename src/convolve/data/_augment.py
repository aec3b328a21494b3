"""Batch augmentation: random crop with padding and horizontal flip.

Each works on a whole float batch ``(B, C, H, W)`` at once and draws its
randomness from the ``numpy.random.Generator`` it is given, so a seeded
``DataLoader`` gives the same augmented batches every run.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._shared.checks import check_int

__all__ = ["RandomCrop", "RandomFlip", "Compose", "random_crop", "horizontal_flip"]


def _check_batch(x):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"augmentation expects a batch of shape (B, C, H, W), but got {shape}")


def random_crop(x: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad each image by ``padding`` on every side, then cut a random ``H x W`` window.

    Parameters
    ----------
    x : numpy.ndarray
        Batch of shape ``(B, C, H, W)``.
    padding : int
        Border width; each image moves by up to ``padding`` pixels in each direction.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``.

    Notes
    -----
    With ``P = padding`` the padded image has ``(2P + 1)^2`` windows of size
    ``H x W``; offsets ``(dy, dx)`` in ``0..2P`` pick one per image, and
    ``(P, P)`` gives back the original.
    """
    _check_batch(x)
    if padding == 0:
        return x.copy()
    b = len(x)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(padded, x.shape[2:], axis=(2, 3))  # (B, C, 2P+1, 2P+1, H, W)
    dy = rng.integers(0, 2 * padding + 1, size=b)
    dx = rng.integers(0, 2 * padding + 1, size=b)
    return windows[np.arange(b), :, dy, dx]  # (B, C, H, W)


def horizontal_flip(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mirror left-right the images of ``x`` where ``mask`` is True.

    Parameters
    ----------
    x : numpy.ndarray
        Batch of shape ``(B, C, H, W)``.
    mask : numpy.ndarray of bool
        Shape ``(B,)``.

    Returns
    -------
    numpy.ndarray
        A new array; ``x`` is left unchanged.
    """
    _check_batch(x)
    return np.where(mask[:, None, None, None], x[..., ::-1], x)


class RandomCrop:
    """Random crop after zero padding; see :func:`random_crop`.

    Parameters
    ----------
    padding : int, default 4
        Border width in pixels, non-negative.
    """

    def __init__(self, padding: int = 4) -> None:
        self.padding = check_int("padding", padding, minimum=0)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_crop(x, self.padding, rng)

    def __repr__(self):
        return f"RandomCrop(padding={self.padding})"


class RandomFlip:
    """Horizontal flip of each image with probability ``p``.

    Parameters
    ----------
    p : float, default 0.5
        Chance that an image is mirrored, in [0, 1].
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], but got {p!r}")
        self.p = float(p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return horizontal_flip(x, rng.random(len(x)) < self.p)

    def __repr__(self):
        return f"RandomFlip(p={self.p})"


class Compose:
    """Apply augmentations in order, each as ``x = aug(x, rng)``.

    Parameters
    ----------
    augmentations : sequence of callable
        Each takes ``(x (B, C, H, W), rng)`` and returns a batch of the same shape.

    Examples
    --------
    >>> augment = Compose([RandomCrop(padding=2), RandomFlip()])
    """

    def __init__(self, augmentations: Sequence[Callable[[np.ndarray, np.random.Generator], np.ndarray]]) -> None:
        self.augmentations = list(augmentations)
        for aug in self.augmentations:
            if not callable(aug):
                raise TypeError(f"each augmentation must be callable as aug(x, rng), but got {aug!r}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for aug in self.augmentations:
            x = aug(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.augmentations!r})"
