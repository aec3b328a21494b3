"""Images, IDX files and datasets from hostile or careless sources: clear errors before any work."""

import contextlib
import gzip
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from convolve.cli import main
from convolve.data import ArrayDataset, load_image_folder, read_idx, read_image, write_idx
from convolve.data._trainable import check_trainable
from convolve.explain import load_image
from convolve.explain.apply import apply_kernel
from convolve.training import load_images


def png_claiming(path, width, height):
    """A small PNG whose header claims width x height pixels (its data is for 8x8)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    at = data.find(b"IHDR")
    struct.pack_into(">II", data, at + 4, width, height)
    struct.pack_into(">I", data, at + 17, zlib.crc32(bytes(data[at : at + 17])))
    path.write_bytes(bytes(data))
    return path


def test_16_bit_greyscale_is_read_the_same_everywhere(tmp_path):
    values = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    folder = tmp_path / "data" / "a"
    folder.mkdir(parents=True)
    path = folder / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really 16-bit on disk
    expected = np.rint(values / 65535 * 255).astype(np.uint8)
    got = read_image(path, "L")
    np.testing.assert_array_equal(got, expected)  # not saturated at 255
    assert (got == 255).mean() < 0.01
    np.testing.assert_array_equal(load_image_folder(tmp_path / "data").images[0, 0], expected)
    np.testing.assert_allclose(load_image(path)[0], values / 65535, atol=1e-6)  # explain/apply's reader
    config = {"in_channels": 1, "image_size": [16, 16]}
    np.testing.assert_allclose(load_images([path], config)[0, 0], expected / 255, atol=1e-7)  # predict's
    rgb = read_image(path, "RGB")
    assert rgb.shape == (16, 16, 3) and (rgb[..., 1] == expected).all()


def test_decompression_bombs_are_refused_before_decoding(tmp_path, capsys):
    bomb = png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    tracemalloc.start()
    try:
        for call in (lambda: read_image(bomb), lambda: load_image(bomb), lambda: apply_kernel(bomb, "edge")):
            with pytest.raises(ValueError, match=r"bomb\.png: it is 100000x100000 = 10000000000 pixels, more "
                                                 r"than max_pixels = 89478485.*--max-pixels"):
                call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    assert main(["apply", str(bomb), "--kernel", "edge", "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_pixels" in err and not (tmp_path / "o.png").exists()


def test_the_size_guard_can_be_raised(tmp_path, capsys):
    path = tmp_path / "big.png"
    Image.new("L", (1200, 1000), 40).save(path)
    with pytest.raises(ValueError, match="1200x1000 = 1200000 pixels, more than max_pixels = 1000000"):
        read_image(path, max_pixels=1_000_000)
    assert read_image(path, max_pixels=2_000_000).shape == (1000, 1200)
    assert load_image(path, max_pixels=1_200_000).shape == (1, 1000, 1200)
    with pytest.raises(ValueError, match="max_pixels must be a positive int"):
        read_image(path, max_pixels=0)
    out = tmp_path / "m.npy"
    assert main(["apply", str(path), "--kernel", "identity", "--max-pixels", "1000000", "--out", str(out)]) == 2
    assert "max_pixels = 1000000" in capsys.readouterr().err
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["apply", str(path), "--kernel", "identity", "--max-pixels", "2000000", "--out", str(out)]) == 0
    assert np.load(out).shape == (998, 1198)


def idx_header(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def test_gzip_bomb_idx_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:  # 200 MB of zeros behind a header claiming 28x28x10
        f.write(idx_header(0x08, (10, 28, 28)))
        chunk = bytes(1 << 20)
        for _ in range(200):
            f.write(chunk)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"ubyte\.gz: IDX file is longer than its header says"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20

    huge = tmp_path / "huge.gz"
    huge.write_bytes(gzip.compress(idx_header(0x08, (60000, 4096, 4096)) + bytes(1000)))
    with pytest.raises(ValueError, match=r"huge\.gz: IDX file is truncated: .*1006632960000 data bytes, but a "
                                         r"\d+-byte gzip file holds at most about"):
        read_idx(huge)


def test_idx_size_product_overflow_names_the_file(tmp_path):
    path = tmp_path / "overflow-idx3-ubyte"
    path.write_bytes(idx_header(0x0E, (2**32 - 1, 2**32 - 1, 2**32 - 1)) + bytes(64))
    with pytest.raises(ValueError, match=r"overflow-idx3-ubyte: IDX file is truncated: header says shape "
                                         r"\(4294967295, 4294967295, 4294967295\) of float64"):
        read_idx(path)


def idx_dir(root, train_images, train_labels, test_images=None, test_labels=None):
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", train_images)
    write_idx(root / "train-labels-idx1-ubyte", train_labels)
    if test_images is not None:
        write_idx(root / "t10k-images-idx3-ubyte", test_images)
        write_idx(root / "t10k-labels-idx1-ubyte", test_labels)
    return root


def run_train(data, tmp_path, capsys):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "epoch" not in printed.getvalue() and not (tmp_path / "run").exists()  # refused before training
    return err


def test_bad_training_data_is_refused_before_training(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((20, 8, 8)).astype(np.float32)
    labels = np.arange(20, dtype=np.uint8) % 2

    nan = images.copy()
    nan[7, 3, 3] = np.nan
    err = run_train(idx_dir(tmp_path / "nan", nan, labels), tmp_path, capsys)
    assert "train-images-idx3-ubyte: image 7 holds NaN or infinite values" in err

    inf = images.copy()
    inf[2, 0, 0] = np.inf
    err = run_train(idx_dir(tmp_path / "inf", images, labels, inf[:10], labels[:10]), tmp_path, capsys)
    assert "t10k-images-idx3-ubyte: image 2 holds NaN or infinite values" in err

    one_class = np.zeros(20, np.uint8)
    err = run_train(idx_dir(tmp_path / "one", images, one_class), tmp_path, capsys)
    assert "in one class ('0'); a classifier needs at least 2 classes" in err

    err = run_train(idx_dir(tmp_path / "sizes", images, labels, rng.random((10, 9, 9)).astype(np.float32),
                            labels[:10]), tmp_path, capsys)
    assert "training images are 8x8x1 (H x W x C) but the test images are 9x9x1" in err

    fashion = tmp_path / "fashion-mnist"
    err = run_train(idx_dir(fashion, images, (labels * 11).astype(np.uint8)), tmp_path, capsys)
    assert "train-labels-idx1-ubyte: labels must lie in 0..9" in err and "e.g. 11" in err


def test_check_trainable_on_arrays():
    train = ArrayDataset(np.zeros((4, 1, 4, 4), np.float32), [0, 1, 0, 1], ["a", "b"])
    check_trainable(train, train, "mine")  # fine
    other = ArrayDataset(np.zeros((2, 1, 4, 4), np.float32), [0, 1], ["a", "c"])
    with pytest.raises(ValueError, match=r"mine: the training classes \['a', 'b'\] differ"):
        check_trainable(train, other, "mine")


def test_every_command_that_reads_images_takes_max_pixels(tmp_path, capsys):
    """train and evaluate (image folders) have --max-pixels like predict and apply: over the limit
    one line and exit 2 before anything is written; raised, the same images are read."""
    data = tmp_path / "folder"
    for split in ("train", "test"):
        for k, label in enumerate(("a", "b")):
            (data / split / label).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (30, 40), 60 * k + 10 * i).save(data / split / label / f"{i}.png")  # 1200 pixels
    out = tmp_path / "run"
    train = ["train", "--data", str(data), "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-progress"]
    for argv in (train, ["evaluate", "x.npz", "--data", str(data)]):
        with pytest.raises(SystemExit):
            main([argv[0], "--help"])
        assert "--max-pixels N refuse larger images before decoding them (default: 89478485" in \
            " ".join(capsys.readouterr().out.split())
    assert main(train + ["--max-pixels", "1000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "30x40 = 1200 pixels, more than max_pixels = 1000" in err
    assert not out.exists()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(train + ["--max-pixels", "1200"]) == 0
    assert (out / "best.npz").exists()
    assert main(["evaluate", str(out / "best.npz"), "--data", str(data), "--max-pixels", "1199"]) == 2
    assert "more than max_pixels = 1199" in capsys.readouterr().err
    assert main(["evaluate", str(out / "best.npz"), "--data", str(data), "--max-pixels", "1200"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(train + ["--max-pixels", "0"])
    assert exit.value.code == 2 and "expected a positive int, but got '0'" in capsys.readouterr().err
