"""The dataset shipped inside the package: a balanced Fashion-MNIST subset.

6000 training images (600 per class) and 1000 test images (100 per class),
28x28 greyscale, drawn with a fixed seed by ``_make_embedded.py``.
Fashion-MNIST is by Zalando Research under the MIT licence; see
``_embedded/LICENSE-fashion-mnist.txt``.
"""

from __future__ import annotations

from typing import Tuple

from importlib import resources

import numpy as np

from ._dataset import ArrayDataset

__all__ = ["load_default", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

EMBEDDED_FILE = "fashion_mnist_subset.npz"


def load_default() -> Tuple[ArrayDataset, ArrayDataset]:
    """Load the embedded Fashion-MNIST subset.

    Returns
    -------
    train : ArrayDataset
        6000 images, ``uint8`` of shape ``(6000, 1, 28, 28)``, 600 per class.
    test : ArrayDataset
        1000 images, ``uint8`` of shape ``(1000, 1, 28, 28)``, 100 per class.

    Examples
    --------
    >>> train, test = load_default()
    >>> train.images.shape, test.classes[9]
    ((6000, 1, 28, 28), 'Ankle boot')
    """
    resource = resources.files(__package__) / "_embedded" / EMBEDDED_FILE
    with resource.open("rb") as f, np.load(f) as npz:
        arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    train = ArrayDataset(arrays["x_train"], arrays["y_train"], FASHION_MNIST_CLASSES,
                         name="fashion-mnist-subset/train")
    test = ArrayDataset(arrays["x_test"], arrays["y_test"], FASHION_MNIST_CLASSES,
                        name="fashion-mnist-subset/test")
    return train, test
