"""Rebuild ``_embedded/fashion_mnist_subset.npz`` from the full Fashion-MNIST.

Not imported at run time. Run from the repository root::

    python -m convolve.data._make_embedded [SOURCE_DIR]

SOURCE_DIR holds the four Fashion-MNIST IDX files (default
``/usr/share/datasets/fashion-mnist``). The subset is 600 training and 100
test images per class, drawn without replacement with ``SEED`` and kept in
their original order; ``train_index`` / ``test_index`` record which images
of the full set were taken.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ._idx import load_idx_dir

SEED = 20170825  # Fashion-MNIST's release date
PER_CLASS = {"train": 600, "test": 100}
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
OUTPUT = Path(__file__).parent / "_embedded" / "fashion_mnist_subset.npz"


def balanced_indices(labels, per_class, rng):
    """Sorted indices taking ``per_class`` items of every class, without replacement."""
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
        for c in range(int(labels.max()) + 1)
    ]
    return np.sort(np.concatenate(chosen))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    train, test = load_idx_dir(source)
    if test is None:
        raise FileNotFoundError(f"{source}: the t10k-* test files are needed too")
    rng = np.random.default_rng(SEED)
    out = {}
    for split, ds in (("train", train), ("test", test)):
        index = balanced_indices(ds.labels, PER_CLASS[split], rng)
        out[f"x_{split}"] = ds.images[index, 0].astype(np.uint8)  # (N, 28, 28)
        out[f"y_{split}"] = ds.labels[index].astype(np.uint8)
        out[f"{split}_index"] = index.astype(np.int32)
    OUTPUT.parent.mkdir(exist_ok=True)
    np.savez_compressed(OUTPUT, **out)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1e6:.2f} MB)")
    for key, value in out.items():
        print(f"  {key}: {value.dtype} {value.shape}")


if __name__ == "__main__":
    main()
