"""Mini-batches of float images from an :class:`ArrayDataset`."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import math

import numpy as np

from .._shared.checks import check_bool, check_int
from ._dataset import ArrayDataset

__all__ = ["DataLoader"]


def _to_unit_float(images):
    """uint8 0..255 -> float32 0..1; float images are taken as already in 0..1."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32)


def _channel_stats(dataset, normalize):
    """``normalize`` as per-channel ``(mean, std)`` arrays of shape (1, C, 1, 1), or None."""
    if normalize is None:
        return None
    channels = dataset.image_shape[0]
    if isinstance(normalize, str):
        if normalize != "dataset":
            raise ValueError(
                f"normalize must be None, 'dataset' or a (mean, std) pair, but got {normalize!r}"
            )
        x = _to_unit_float(dataset.images)
        mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
        std = x.std(axis=(0, 2, 3), dtype=np.float64)
    else:
        try:
            mean, std = normalize
        except (TypeError, ValueError):
            raise TypeError(
                f"normalize must be None, 'dataset' or a (mean, std) pair, but got {normalize!r}"
            ) from None
    mean = _per_channel(mean, channels, "mean")
    std = _per_channel(std, channels, "std")
    if np.any(std <= 0):
        raise ValueError(f"normalize std must be positive, but got {std.ravel().tolist()}")
    return mean, std


def _per_channel(value, channels, what):
    """A scalar or one value per channel as an array of shape (1, C, 1, 1)."""
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if array.size not in (1, channels):
        raise ValueError(
            f"normalize {what} must have 1 or {channels} values (one per channel), "
            f"but got {array.size}"
        )
    return np.broadcast_to(array, (channels,)).reshape(1, channels, 1, 1).copy()


class DataLoader:
    """Iterate over a dataset in mini-batches ``(x, y)``.

    Parameters
    ----------
    dataset : ArrayDataset
    batch_size : int, default 32
    shuffle : bool, default False
        Visit the images in a fresh random order every epoch.
    seed : int, optional
        Makes shuffling and augmentation reproducible: epoch ``e`` of two
        loaders with the same seed gives the same batches. Without a seed
        one is drawn at random when the loader is made.
    drop_last : bool, default False
        Leave out the final batch when it is smaller than ``batch_size``.
    augment : callable, optional
        ``augment(x, rng) -> x`` applied to each batch in [0, 1] before
        normalisation, e.g. ``Compose([RandomCrop(4), RandomFlip()])``.
    normalize : None, "dataset" or (mean, std), optional
        Subtract ``mean`` and divide by ``std`` per channel (scalars or one
        value per channel, in [0, 1] units). ``"dataset"`` computes them
        once from the whole dataset.

    Yields
    ------
    x : numpy.ndarray
        ``float32``, shape ``(B, C, H, W)``, in [0, 1] unless normalised.
    y : numpy.ndarray
        ``int64``, shape ``(B,)``.

    Notes
    -----
    Each ``iter(loader)`` uses the current ``epoch`` and then advances it by
    one; :meth:`set_epoch` chooses which epoch comes next.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ArrayDataset(np.zeros((10, 1, 4, 4), np.uint8), np.arange(10) % 2)
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
    >>> len(loader), [x.shape[0] for x, y in loader]
    (3, [4, 4, 2])
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int = 32, shuffle: bool = False, seed: Optional[int] = None,
                 drop_last: bool = False, augment: Optional[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = None,
                 normalize: Optional[Tuple[Sequence[float], Sequence[float]]] = None) -> None:
        if not isinstance(dataset, ArrayDataset):
            raise TypeError(f"dataset must be an ArrayDataset, but got {type(dataset).__name__}")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be None or callable as augment(x, rng), but got {augment!r}")
        self.dataset = dataset
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.shuffle = check_bool("shuffle", shuffle)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[arg-type]  # an int when drawn
        self.seed = check_int("seed", seed, minimum=0)
        self.drop_last = check_bool("drop_last", drop_last)
        self.augment = augment
        self._stats = _channel_stats(dataset, normalize)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch number ``epoch`` (its order and augmentation)."""
        self.epoch = check_int("epoch", epoch, minimum=0)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        # Separate streams for order and augmentation: switching augment on keeps the order.
        order_ss, augment_ss = np.random.SeedSequence([self.seed, self.epoch]).spawn(2)
        self.epoch += 1
        n = len(self.dataset)
        order = np.random.default_rng(order_ss).permutation(n) if self.shuffle else np.arange(n)
        return self._batches(order, np.random.default_rng(augment_ss))

    def _batches(self, order, augment_rng):
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = _to_unit_float(self.dataset.images[index])  # (B, C, H, W)
            if self.augment is not None:
                x = self.augment(x, augment_rng).astype(np.float32, copy=False)
            if self._stats is not None:
                mean, std = self._stats
                x = (x - mean) / std
            yield x, self.dataset.labels[index]

    def __repr__(self):
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, augment={self.augment!r})"
        )
