"""Run settings, data preparation and optimiser/scheduler construction for :func:`train`."""

from __future__ import annotations

from typing import Dict

from pathlib import Path

import numpy as np

from .. import optim
from ..data import ArrayDataset, Compose, DataLoader, RandomCrop, RandomFlip, load_dataset
from ..data import check_trainable
from ._settings import DEFAULT_LR, Settings

__all__ = ["load_data", "channel_stats", "make_loaders", "make_optimizer", "make_scheduler", "DATA_FORMATS_HELP"]

DATA_FORMATS_HELP = (
    "a directory of IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-... for the test split: MNIST, Fashion-MNIST, KMNIST), CIFAR-10 python batches "
    "(data_batch_1..5, test_batch), or image folders (one subfolder per class, optionally "
    "inside train/ and test/)"
)


def load_data(data, seed, limit, check=True, max_pixels=None):
    """Train and test datasets; a source without a test split gives 10% of train, seeded.

    Image-folder images over `max_pixels` pixels (default 89,478,485) are refused before decoding.

    Returns
    -------
    train, test : ArrayDataset
    test_split : str
        Where the test images come from, for the logs and ``metrics.json``.
    """
    if data is not None and not Path(data).exists():
        raise FileNotFoundError(f"data directory {data} does not exist; expected {DATA_FORMATS_HELP}")
    train, test = load_dataset(data, max_pixels=max_pixels)  # its errors name the file and the accepted formats
    test_split = "test"
    rng = np.random.default_rng([seed, 1])  # its own stream: unrelated to init and data order
    if test is None:
        if len(train) < 2:
            raise ValueError(f"{data}: need at least 2 images to hold some out for testing, found {len(train)}")
        order = rng.permutation(len(train))
        held = max(1, len(train) // 10)
        test, train = train[np.sort(order[:held])], train[np.sort(order[held:])]
        test_split = f"held-out 10% of the training images ({held}), seed {seed}"
    if limit is not None and limit < len(train):
        train = train[np.sort(rng.permutation(len(train))[:limit])]
    if check:  # for training: 2+ classes, one image size, finite values, before any training starts
        check_trainable(train, test, data or "the default data")
    return train, test, test_split


def channel_stats(dataset: ArrayDataset, chunk=8192):
    """Per-channel mean and standard deviation of the images in [0, 1] units (float64 sums)."""
    scale = 255.0 if dataset.images.dtype == np.uint8 else 1.0
    c = dataset.image_shape[0]
    s1, s2, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(dataset), chunk):
        x = dataset.images[i : i + chunk].astype(np.float64) / scale  # (B, C, H, W)
        s1 += x.sum(axis=(0, 2, 3))
        s2 += (x * x).sum(axis=(0, 2, 3))
        n += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    return [float(m) for m in mean], [float(max(s, 1e-6)) for s in std]


def _augmentation(name, image_size):
    if name == "none":
        return None
    pad = max(1, min(image_size) // 8)  # 3 px for 28x28, 4 px for 32x32
    parts: Dict[str, list] = {"crop": [RandomCrop(pad)], "flip": [RandomFlip()], "crop+flip": [RandomCrop(pad), RandomFlip()]}
    return Compose(parts[name])


def make_loaders(train, test, settings: Settings, normalize):
    """The shuffled, seeded training loader and the in-order test loader."""
    augment = _augmentation(settings.augment, train.image_shape[1:])
    train_loader = DataLoader(train, settings.batch_size, shuffle=True, seed=settings.seed,
                              augment=augment, normalize=normalize)
    test_loader = DataLoader(test, 256, shuffle=False, seed=0, normalize=normalize)
    return train_loader, test_loader


def make_optimizer(model, settings: Settings) -> optim.Optimizer:
    params = model.parameters()
    name, wd = settings.optimizer, settings.weight_decay
    lr = DEFAULT_LR[name] if settings.lr is None else settings.lr
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=settings.momentum, weight_decay=wd)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    return optim.AdamW(params, lr=lr, weight_decay=wd)


def make_scheduler(optimizer, settings: Settings):
    """Stepped once per epoch; None for a constant rate."""
    epochs = settings.epochs
    if settings.schedule == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=epochs)
    if settings.schedule == "step":
        return optim.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None
