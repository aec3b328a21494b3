"""Datasets and mini-batches for ``convolve``.

Every loader gives :class:`ArrayDataset` objects (images ``(N, C, H, W)``,
``int64`` labels, class names); :class:`DataLoader` turns one into float32
batches. :func:`load_dataset` picks the loader from the path::

    train, test = load_dataset()                 # embedded Fashion-MNIST subset
    train, test = load_dataset("~/data/mnist")   # IDX, CIFAR-10 or image folders
    for x, y in DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...                                      # x (64, 1, 28, 28) float32, y (64,) int64
"""

from ._augment import Compose, RandomCrop, RandomFlip, horizontal_flip, random_crop
from ._cifar import CIFAR10_CLASSES, load_cifar10
from ._dataset import ArrayDataset
from ._default import FASHION_MNIST_CLASSES, load_default
from ._detect import detect_format, load_dataset
from ._folder import IMAGE_EXTENSIONS, load_image_folder, read_image
from ._idx import KMNIST_CLASSES, find_idx_files, load_idx_dir, read_idx, write_idx
from ._loader import DataLoader
from ._trainable import check_trainable

__all__ = [
    "ArrayDataset",
    "check_trainable",
    "DataLoader",
    "load_dataset",
    "detect_format",
    "load_default",
    "load_idx_dir",
    "find_idx_files",
    "read_idx",
    "write_idx",
    "load_cifar10",
    "load_image_folder",
    "read_image",
    "RandomCrop",
    "RandomFlip",
    "Compose",
    "random_crop",
    "horizontal_flip",
    "FASHION_MNIST_CLASSES",
    "KMNIST_CLASSES",
    "CIFAR10_CLASSES",
    "IMAGE_EXTENSIONS",
]
