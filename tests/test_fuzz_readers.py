"""Fuzzing the file readers: random truncations and bit flips of valid IDX, .npz, checkpoint,
safetensors, .pt and PNG files. Each either loads or raises the documented ValueError naming the
file (never another exception, never a hang), in bounded memory."""

import gzip
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from convolve.data import read_idx, read_image, write_idx
from convolve.explain import load_image
from convolve.interop import load_state_dict_file, save_state_dict
from convolve.training import build_model, load_model, model_config, save_checkpoint

CASES = 60  # per format: seeded, so every run tries the same files


def _idx(tmp_path):
    path = tmp_path / "v-idx3-ubyte"
    write_idx(path, np.arange(3 * 5 * 5, dtype=np.uint8).reshape(3, 5, 5))
    return path.read_bytes()


def _idx_gz(tmp_path):
    return gzip.compress(_idx(tmp_path))


def _npz(tmp_path):
    save_state_dict({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3)}, tmp_path / "v.npz",
                    metadata={"k": "v"})
    return (tmp_path / "v.npz").read_bytes()


def _safetensors(tmp_path):
    save_state_dict({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3)},
                    tmp_path / "v.safetensors", metadata={"k": "v"})
    return (tmp_path / "v.safetensors").read_bytes()


def _checkpoint(tmp_path):
    config = model_config("lenet", 1, (4, 4), 2)
    save_checkpoint(tmp_path / "c.npz", build_model(config).state_dict(), config, classes=["a", "b"], epoch=1)
    return (tmp_path / "c.npz").read_bytes()


def _png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format="PNG")
    return buf.getvalue()


def _pt(tmp_path):
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "h": torch.ones(2, dtype=torch.bfloat16)}, buf)
    return buf.getvalue()


FORMATS = {  # name: (valid bytes, file name, reader)
    "idx": (_idx, "f-idx3-ubyte", read_idx),
    "idx.gz": (_idx_gz, "f-idx3-ubyte.gz", read_idx),
    "npz": (_npz, "f.npz", load_state_dict_file),
    "checkpoint": (_checkpoint, "f.npz", load_model),
    "safetensors": (_safetensors, "f.safetensors", load_state_dict_file),
    "pt": (_pt, "f.pt", load_state_dict_file),
    "png": (_png, "f.png", lambda p: (read_image(p), load_image(p))),
}


def mutations(data, rng):
    for _ in range(CASES):
        if rng.random() < 0.35:
            yield data[: int(rng.integers(0, len(data)))]  # truncated
        else:
            b = bytearray(data)
            for _ in range(int(rng.integers(1, 9))):  # a few flipped bits
                i = int(rng.integers(0, len(b)))
                b[i] ^= 1 << int(rng.integers(0, 8))
            yield bytes(b)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mutated_files_load_or_raise_the_documented_error(tmp_path, fmt):
    make, name, read = FORMATS[fmt]
    valid = make(tmp_path)
    read_path = tmp_path / name
    read_path.write_bytes(valid)
    read(read_path)  # the unmutated file loads
    rng = np.random.default_rng(sum(map(ord, fmt)))  # seeded per format
    outcomes = {"loaded": 0, "refused": 0}
    tracemalloc.start()
    try:
        for data in mutations(valid, rng):
            read_path.write_bytes(data)
            try:
                read(read_path)
                outcomes["loaded"] += 1
            except ValueError as err:
                assert name in str(err), f"{fmt}: the error does not name the file: {err}"
                outcomes["refused"] += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcomes["refused"] > 0  # the mutations do reach the checks
    assert peak < 64 * 2**20, f"{fmt}: {peak / 2**20:.0f} MiB"
