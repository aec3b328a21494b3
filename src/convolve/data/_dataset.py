"""The in-memory dataset every loader returns."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["ArrayDataset"]


class ArrayDataset:
    """Images and integer labels held as two NumPy arrays.

    Parameters
    ----------
    images : numpy.ndarray
        ``uint8`` (0..255) or floating (taken as already in [0, 1]) array of
        shape ``(N, C, H, W)``. A 3-D array ``(N, H, W)`` is read as
        greyscale and given a channel axis of size 1.
    labels : array_like of int
        Class index of each image, shape ``(N,)``; stored as ``int64``.
    classes : sequence of str, optional
        Name of each class; ``labels`` index into it. Default: ``"0"``,
        ``"1"``, ... up to the largest label.
    name : str, optional
        Where the data came from, shown in ``repr``.

    Attributes
    ----------
    images : numpy.ndarray
        Shape ``(N, C, H, W)``.
    labels : numpy.ndarray
        ``int64``, shape ``(N,)``.
    classes : list of str
        Class names, ``len(classes) == num_classes``.

    Raises
    ------
    TypeError
        If ``images`` is not ``uint8`` or floating, or ``labels`` are not integers.
    ValueError
        If the shapes do not fit together or a label is outside ``classes``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ArrayDataset(np.zeros((4, 8, 8), np.uint8), [0, 1, 1, 0], ["cat", "dog"])
    >>> ds.images.shape, len(ds)
    ((4, 1, 8, 8), 4)
    >>> image, label = ds[2]
    >>> image.shape, ds.classes[label]
    ((1, 8, 8), 'dog')
    >>> len(ds[1:3])
    2
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Optional[Sequence[str]] = None,
                 name: str = "") -> None:
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            raise TypeError(
                f"images must be uint8 (0..255) or floating (0..1), but got dtype {images.dtype}"
            )
        if images.ndim == 3:
            images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (N, C, H, W) or (N, H, W), but got shape {images.shape}"
            )
        if labels.ndim != 1:
            raise ValueError(f"labels must have shape (N,), but got shape {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"labels must be integers, but got dtype {labels.dtype}")
        if len(labels) != len(images):
            raise ValueError(
                f"there are {len(images)} images but {len(labels)} labels; "
                "each image needs exactly one label"
            )
        labels = labels.astype(np.int64, copy=False)
        if classes is None:
            classes = [str(i) for i in range(int(labels.max()) + 1 if labels.size else 0)]
        classes = [str(c) for c in classes]
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"labels must lie in 0..{len(classes) - 1} (one per class), "
                f"but found values from {labels.min()} to {labels.max()}"
            )
        self.images = images
        self.labels = labels
        self.classes = classes
        self.name = str(name)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        """One ``(image, label)`` pair for an integer, a new dataset otherwise.

        An integer gives ``(image (C, H, W), int label)``; a slice, integer
        array or boolean mask gives an ``ArrayDataset`` holding that subset.
        """
        if isinstance(index, (int, np.integer)):
            return self.images[index], int(self.labels[index])
        return ArrayDataset(self.images[index], self.labels[index], self.classes, self.name)

    @property
    def num_classes(self):
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def image_shape(self):
        """Shape of one image, ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> np.ndarray:
        """Number of images in each class, an ``int64`` array of shape ``(num_classes,)``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self):
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
            f"dtype={self.images.dtype}, classes={self.num_classes})"
        )
