"""Tests for convolve.data: formats, errors, batching, augmentation, the embedded set."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convolve.data
from convolve.data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    ArrayDataset,
    Compose,
    DataLoader,
    RandomCrop,
    RandomFlip,
    detect_format,
    horizontal_flip,
    load_cifar10,
    load_dataset,
    load_default,
    load_idx_dir,
    load_image_folder,
    random_crop,
    read_idx,
    write_idx,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# --- helpers -----------------------------------------------------------------------------------


def idx_bytes(array, code=0x08):
    """IDX bytes built by hand from the spec, independently of write_idx."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def make_idx_dir(root, n_train=12, n_test=5, gz=False, sep="-", h=6, w=5, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        labels[0] = 9  # so the default class list always has 10 entries
        for kind, array, nd in (("images", images, 3), ("labels", labels, 1)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}{sep}idx{nd}-ubyte" + (".gz" if gz else "")
            (root / name).write_bytes(gzip.compress(data) if gz else data)
        arrays[prefix] = (images, labels)
    return arrays


def fabricate_cifar(root, n_per_batch=(4, 3), n_test=2, meta=True, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    names = [f"data_batch_{i + 1}" for i in range(len(n_per_batch))] + ["test_batch"]
    for name, n in zip(names, (*n_per_batch, n_test)):
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels,
                 b"data": images.reshape(n, 3072), b"filenames": [b"x.png"] * n}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        data[name] = (images, labels)
    if meta:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                         b"num_vis": 3072}, f, protocol=2)
    return data


def save_png(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def tiny_dataset(n=10, c=1, h=4, w=4):
    images = np.arange(n * c * h * w, dtype=np.int64).reshape(n, c, h, w) % 256
    return ArrayDataset(images.astype(np.uint8), np.arange(n) % 3, ["a", "b", "c"])


# --- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sep", ["-", "."])
def test_idx_dir_round_trip(tmp_path, gz, sep):
    arrays = make_idx_dir(tmp_path, gz=gz, sep=sep)
    train, test = load_idx_dir(tmp_path)
    for ds, (images, labels) in ((train, arrays["train"]), (test, arrays["t10k"])):
        assert ds.images.dtype == np.uint8 and ds.labels.dtype == np.int64
        assert ds.images.shape == (len(labels), 1, 6, 5)
        np.testing.assert_array_equal(ds.images[:, 0], images)
        np.testing.assert_array_equal(ds.labels, labels)
    assert train.classes == [str(i) for i in range(10)]
    assert detect_format(tmp_path) == "idx"


@pytest.mark.parametrize("folder, first", [("fashion-mnist", "T-shirt/top"), ("kmnist", "o"), ("mnist", "0")])
def test_idx_class_names_follow_the_folder_name(tmp_path, folder, first):
    make_idx_dir(tmp_path / folder)
    train, test = load_dataset(tmp_path / folder)
    assert train.classes[0] == first and test.classes == train.classes and len(train.classes) == 10


def test_idx_dir_without_test_split(tmp_path):
    make_idx_dir(tmp_path)
    for p in tmp_path.glob("t10k-*"):
        p.unlink()
    train, test = load_dataset(tmp_path)
    assert len(train) == 12 and test is None


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_idx_every_dtype(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_write_idx_matches_spec_bytes(tmp_path):
    array = np.array([[1, 2, 3], [4, 5, 258]], dtype=np.int32)
    write_idx(tmp_path / "a", array)
    assert (tmp_path / "a").read_bytes() == idx_bytes(array, code=0x0C)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="IDX can store .* but got dtype int64"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(12))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: not an IDX file: "
                       r"expected magic bytes 00 00, but found 12 34"):
        read_idx(path)


def test_idx_unknown_dtype_code(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX dtype code 0x07"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_data(tmp_path, gz):
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5]
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"x(\.gz)?: IDX file is truncated: "
                       r"header says shape \(3, 4, 4\) of uint8 = 48 data bytes, but found 43"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"\x00\x00")
    with pytest.raises(ValueError, match="longer than its header says: .* 4 data bytes, but found 6"):
        read_idx(path)


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x08\x03" + bytes(5))
    with pytest.raises(ValueError, match="IDX header is truncated: "
                       "3 dimensions need 16 header bytes, but the file has 9"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="expected a 4-byte header, but the file has 2 bytes"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 3, 3), np.uint8)))[:-10])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: gzip stream is truncated or corrupt"):
        read_idx(path)


def test_idx_label_count_mismatch(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte holds 12 images "
                       "but train-labels-idx1-ubyte holds 11 labels"):
        load_idx_dir(tmp_path)


def test_idx_missing_labels(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"found train-images-idx3-ubyte "
                       r"but no train-labels-idx1-ubyte\[\.gz\]"):
        load_idx_dir(tmp_path)


def test_idx_images_must_be_3d(tmp_path):
    make_idx_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((12, 30), np.uint8)))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, H, W\), "
                       r"but the header gives \(12, 30\)"):
        load_idx_dir(tmp_path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: no such IDX file"):
        read_idx(tmp_path / "nope")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"full Fashion-MNIST not installed at {FASHION_DIR}")
def test_real_fashion_mnist_and_embedded_subset_agree():
    train, test = load_dataset(FASHION_DIR)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(train.class_counts(), np.full(10, 6000))
    # The embedded file records where each of its images came from.
    path = Path(convolve.data.__file__).parent / "_embedded" / "fashion_mnist_subset.npz"
    with np.load(path) as npz:
        for split, full in (("train", train), ("test", test)):
            index = npz[f"{split}_index"]
            np.testing.assert_array_equal(npz[f"x_{split}"], full.images[index, 0])
            np.testing.assert_array_equal(npz[f"y_{split}"], full.labels[index])


# --- CIFAR-10 ----------------------------------------------------------------------------------


def test_cifar_round_trip(tmp_path):
    data = fabricate_cifar(tmp_path)
    train, test = load_cifar10(tmp_path)
    expected_images = np.concatenate([data["data_batch_1"][0], data["data_batch_2"][0]])
    expected_labels = data["data_batch_1"][1] + data["data_batch_2"][1]
    assert train.images.shape == (7, 3, 32, 32) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.images, expected_images)
    np.testing.assert_array_equal(train.labels, expected_labels)
    np.testing.assert_array_equal(test.images, data["test_batch"][0])
    assert train.classes == CIFAR10_CLASSES and test.classes == CIFAR10_CLASSES
    # the channel layout: the first 1024 values of a row are the red plane
    assert train.images[0, 0].tobytes() == expected_images[0].reshape(3072)[:1024].tobytes()


def test_cifar_detected_one_level_down(tmp_path):
    fabricate_cifar(tmp_path / "cifar-10-batches-py", meta=False)
    assert detect_format(tmp_path) == "cifar10"
    train, test = load_dataset(tmp_path)
    assert len(train) == 7 and len(test) == 2 and train.classes[0] == "airplane"


def test_cifar_reads_numpy1_module_names(tmp_path):
    # The published files were pickled by NumPy 1, whose arrays name numpy.core.multiarray.
    data = fabricate_cifar(tmp_path, n_per_batch=(3,), n_test=1)
    raw = (tmp_path / "data_batch_1").read_bytes()
    assert b"numpy._core.multiarray\n" in raw
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    (tmp_path / "data_batch_1").write_bytes(raw)
    train, _ = load_cifar10(tmp_path)
    np.testing.assert_array_equal(train.images, data["data_batch_1"][0])


def test_cifar_refuses_foreign_objects(tmp_path):
    fabricate_cifar(tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": os.getcwd, b"labels": []}, f)  # a reference to a function
    with pytest.raises(ValueError, match=r"data_batch_1: not a readable CIFAR batch "
                       r"\(refusing to load (posix|nt)\.getcwd"):
        load_cifar10(tmp_path)


def test_cifar_bad_data_shape(tmp_path):
    fabricate_cifar(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"data_batch_2: expected 'data' of uint8 with shape \(N, 3072\), "
                       r"but found uint8 with shape \(2, 100\)"):
        load_cifar10(tmp_path)


def test_cifar_label_count_mismatch(tmp_path):
    fabricate_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(ValueError, match="test_batch: 2 images but 1 labels"):
        load_cifar10(tmp_path)


def test_cifar_not_a_pickle(tmp_path):
    fabricate_cifar(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(b"hello")
    with pytest.raises(ValueError, match="data_batch_1: not a readable CIFAR batch"):
        load_cifar10(tmp_path)


# --- image folders -----------------------------------------------------------------------------


def test_image_folder_greyscale(tmp_path):
    rng = np.random.default_rng(0)
    grey = {name: rng.integers(0, 256, (5, 7), dtype=np.uint8) for name in ("b1", "b2", "a1")}
    save_png(tmp_path / "boots" / "1.png", grey["b1"], "L")
    save_png(tmp_path / "boots" / "2.png", grey["b2"], "L")
    save_png(tmp_path / "a-shirts" / "1.png", grey["a1"], "L")
    (tmp_path / "boots" / "notes.txt").write_text("not an image, ignored")
    ds = load_image_folder(tmp_path, mode="L")
    assert ds.classes == ["a-shirts", "boots"]
    assert ds.images.shape == (3, 1, 5, 7) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.labels, [0, 1, 1])
    np.testing.assert_array_equal(ds.images[:, 0], [grey["a1"], grey["b1"], grey["b2"]])
    assert detect_format(tmp_path) == "image-folder"


def test_image_folder_rgb_and_resize(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red plane only
    save_png(tmp_path / "red" / "x.png", rgb, "RGB")
    save_png(tmp_path / "grey" / "y.png", np.full((8, 8), 50, np.uint8), "L")
    ds = load_image_folder(tmp_path, mode="RGB", size=(4, 6))
    assert ds.images.shape == (2, 3, 4, 6)
    red = ds.images[ds.labels == ds.classes.index("red")][0]
    np.testing.assert_array_equal(red[0], 200)
    np.testing.assert_array_equal(red[1:], 0)
    grey = ds.images[ds.labels == ds.classes.index("grey")][0]
    np.testing.assert_array_equal(grey, 50)  # L -> RGB copies the value into every channel


def test_image_folder_split(tmp_path):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            save_png(tmp_path / split / cls / "0.png", np.full((3, 3), 9, np.uint8), "L")
    assert detect_format(tmp_path) == "image-folder-split"
    train, test = load_dataset(tmp_path, mode="L")
    assert train.classes == test.classes == ["cat", "dog"] and len(train) == len(test) == 2


def test_image_folder_sizes_differ(tmp_path):
    save_png(tmp_path / "a" / "0.png", np.zeros((3, 3), np.uint8), "L")
    save_png(tmp_path / "a" / "1.png", np.zeros((4, 3), np.uint8), "L")
    with pytest.raises(ValueError, match=r"1\.png: image is 3x4 \(W x H\) "
                       r"but .*0\.png is 3x3; pass size=\(H, W\)"):
        load_image_folder(tmp_path)


def test_image_folder_empty_class(tmp_path):
    save_png(tmp_path / "a" / "0.png", np.zeros((3, 3), np.uint8), "L")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"b: class folder has no images \(looked for .*\.png"):
        load_image_folder(tmp_path)


def test_image_folder_no_subfolders(tmp_path):
    with pytest.raises(ValueError, match="expected one subfolder of images per class, "
                       "but found no subfolders"):
        load_image_folder(tmp_path)


def test_image_folder_broken_image(tmp_path):
    save_png(tmp_path / "a" / "0.png", np.zeros((3, 3), np.uint8), "L")
    (tmp_path / "a" / "1.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ValueError, match=r"1\.png: cannot be opened as an image"):
        load_image_folder(tmp_path)


def test_image_folder_bad_mode_and_size(tmp_path):
    with pytest.raises(ValueError, match=r"mode must be one of \['L', 'RGB'\], but got 'CMYK'"):
        load_image_folder(tmp_path, mode="CMYK")
    with pytest.raises(TypeError, match="size must be an int or a pair"):
        load_image_folder(tmp_path, size="big")
    with pytest.raises(ValueError, match=r"size must be positive, but got \(H, W\) = \(0, 3\)"):
        load_image_folder(tmp_path, size=(0, 3))


# --- load_dataset / detect_format --------------------------------------------------------------


def test_unknown_format(tmp_path):
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(ValueError, match="not a known dataset format: "
                       "expected IDX files .* but found readme.md"):
        load_dataset(tmp_path)


def test_path_is_a_file(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="x.csv: expected a dataset directory .* but this is a file"):
        load_dataset(tmp_path / "x.csv")


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent: no such file or directory"):
        load_dataset(tmp_path / "absent")


# --- embedded default --------------------------------------------------------------------------


def test_embedded_default():
    train, test = load_default()
    assert train.images.shape == (6000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.class_counts(), np.full(10, 600))
    np.testing.assert_array_equal(test.class_counts(), np.full(10, 100))
    assert train.classes == FASHION_MNIST_CLASSES and train.classes[9] == "Ankle boot"
    assert train.images.max() > 200 and train.images.min() == 0  # real pictures, not blank
    same, _ = load_dataset("default")
    np.testing.assert_array_equal(same.labels, train.labels)


# --- ArrayDataset ------------------------------------------------------------------------------


def test_array_dataset_indexing():
    ds = tiny_dataset()
    image, label = ds[4]
    assert image.shape == (1, 4, 4) and label == 1 and isinstance(label, int)
    sub = ds[np.array([0, 3])]
    assert isinstance(sub, ArrayDataset) and len(sub) == 2 and sub.classes == ds.classes
    np.testing.assert_array_equal(sub.labels, [0, 0])


def test_array_dataset_errors():
    with pytest.raises(ValueError, match="there are 3 images but 2 labels"):
        ArrayDataset(np.zeros((3, 2, 2), np.uint8), [0, 1])
    with pytest.raises(TypeError, match="images must be uint8 .* but got dtype int32"):
        ArrayDataset(np.zeros((3, 2, 2), np.int32), [0, 1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1 .* from 0 to 2"):
        ArrayDataset(np.zeros((3, 2, 2), np.uint8), [0, 1, 2], ["a", "b"])
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\)"):
        ArrayDataset(np.zeros((3, 4), np.uint8), [0, 1, 2])
    with pytest.raises(TypeError, match="labels must be integers, but got dtype float64"):
        ArrayDataset(np.zeros((2, 2, 2), np.uint8), [0.0, 1.0])


# --- DataLoader --------------------------------------------------------------------------------


def test_loader_batches_cover_dataset_in_order():
    ds = tiny_dataset(n=10)
    loader = DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (4, 1, 4, 4) and y.dtype == np.int64
    np.testing.assert_allclose(np.concatenate([b[0] for b in batches]), ds.images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), ds.labels)


def test_loader_drop_last():
    loader = DataLoader(tiny_dataset(n=10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]
    assert len(DataLoader(tiny_dataset(n=8), batch_size=4, drop_last=True)) == 2


def test_loader_seeded_shuffle_is_reproducible_per_epoch():
    ds = ArrayDataset(np.zeros((50, 1, 2, 2), np.uint8), np.arange(50))  # labels reveal the order

    def order(loader):
        return np.concatenate([y for _, y in loader])

    a, b = DataLoader(ds, 8, shuffle=True, seed=3), DataLoader(ds, 8, shuffle=True, seed=3)
    a0, a1 = order(a), order(a)
    b0, b1 = order(b), order(b)
    np.testing.assert_array_equal(a0, b0)
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a0, a1)  # a new order each epoch
    assert not np.array_equal(a0, np.arange(50))
    np.testing.assert_array_equal(np.sort(a0), np.arange(50))  # a permutation
    b.set_epoch(1)
    np.testing.assert_array_equal(order(b), a1)
    assert not np.array_equal(order(DataLoader(ds, 8, shuffle=True, seed=4)), a0)


def test_loader_normalize():
    ds = tiny_dataset(n=6, c=2)
    x, _ = next(iter(DataLoader(ds, batch_size=6, normalize=((0.5, 0.25), (0.5, 2.0)))))
    raw = ds.images.astype(np.float32) / 255
    np.testing.assert_allclose(x[:, 0], (raw[:, 0] - 0.5) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(x[:, 1], (raw[:, 1] - 0.25) / 2.0, rtol=1e-6)
    x, _ = next(iter(DataLoader(ds, batch_size=6, normalize="dataset")))
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_loader_argument_errors():
    ds = tiny_dataset()
    with pytest.raises(ValueError, match="batch_size must be a positive int, but got 0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int, but got -1"):
        DataLoader(ds, seed=-1)
    with pytest.raises(TypeError, match="epoch must be an int, but got 1.5"):
        DataLoader(ds).set_epoch(1.5)
    with pytest.raises(TypeError, match="dataset must be an ArrayDataset, but got list"):
        DataLoader([1, 2, 3])
    with pytest.raises(ValueError, match="normalize mean must have 1 or 1 values .* but got 3"):
        DataLoader(ds, normalize=((0.1, 0.2, 0.3), 1.0))
    with pytest.raises(ValueError, match="normalize std must be positive"):
        DataLoader(ds, normalize=(0.5, 0.0))
    with pytest.raises(ValueError, match="normalize must be None, 'dataset' or a"):
        DataLoader(ds, normalize="imagenet")
    with pytest.raises(TypeError, match="augment must be None or callable"):
        DataLoader(ds, augment="flip")


# --- augmentation ------------------------------------------------------------------------------


def test_flip_really_flips():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    out = horizontal_flip(x, np.array([True, False]))
    np.testing.assert_array_equal(out[0, 0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(out[1], x[1])
    np.testing.assert_array_equal(x[0, 0], [[0, 1, 2], [3, 4, 5]])  # input untouched
    always = RandomFlip(p=1.0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(always, x[..., ::-1])


def test_random_crop_is_a_shifted_window():
    rng = np.random.default_rng(0)
    x = rng.random((16, 2, 5, 6)).astype(np.float32)
    out = random_crop(x, 2, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = []
    for i in range(len(x)):  # test-side reference: each output is one window of its padded image
        windows = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 6])]
        assert len(windows) == 1, f"crop {i} is not a window of its padded image"
        offsets.append(windows[0])
    dys, dxs = zip(*offsets)
    assert len(set(dys)) > 1 and len(set(dxs)) > 1  # both directions really move
    np.testing.assert_array_equal(random_crop(x, 0, rng), x)


def test_loader_augmentation_shapes_and_seeding():
    ds = tiny_dataset(n=9, c=3, h=8, w=8)
    augment = Compose([RandomCrop(padding=2), RandomFlip()])

    def epoch(seed):
        return [x for x, _ in DataLoader(ds, batch_size=4, seed=seed, augment=augment)]

    first, again = epoch(7), epoch(7)
    assert [x.shape for x in first] == [(4, 3, 8, 8), (4, 3, 8, 8), (1, 3, 8, 8)]
    assert all(x.dtype == np.float32 for x in first)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    plain = np.concatenate([x for x, _ in DataLoader(ds, batch_size=4)])
    assert not np.array_equal(np.concatenate(first), plain)


def test_augment_argument_errors():
    with pytest.raises(ValueError, match="padding must be a non-negative int, but got -1"):
        RandomCrop(-1)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], but got 2"):
        RandomFlip(2)
    with pytest.raises(ValueError, match=r"expects a batch of shape \(B, C, H, W\), but got \(3, 3\)"):
        random_crop(np.zeros((3, 3)), 1, np.random.default_rng(0))
