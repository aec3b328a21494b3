"""Crafted checkpoints and .npz archives: refused with a ValueError naming the file, before anything large
is decompressed or allocated."""

import gzip
import json
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from convolve import interop, nn
from convolve.training import build_model, load_checkpoint, load_model, model_config, save_checkpoint

CONFIG = model_config("lenet", 1, (8, 8), 3)


def good_checkpoint(path):
    model = build_model(CONFIG)
    save_checkpoint(path, model.state_dict(), CONFIG, classes=["a", "b", "c"], epoch=1)
    return path


def with_meta(path, meta, arrays=None):
    """A checkpoint whose ``__meta__`` is `meta` (any JSON text or object), with lenet weights."""
    arrays = dict(arrays if arrays is not None else
                  {f"model/{k}": v.data for k, v in build_model(CONFIG).state_dict().items()})
    text = meta if isinstance(meta, str) else json.dumps(meta)
    np.savez(path, __meta__=np.array(text), **arrays)
    return path


def meta(**changes):
    base = {"format": "convolve-checkpoint", "version": 1, "config": dict(CONFIG), "classes": ["a", "b", "c"],
            "epoch": 1, "optimizer": None, "scheduler": None, "extra": {}}
    for key, value in changes.items():
        if key.startswith("config_"):
            base["config"][key[len("config_"):]] = value
        else:
            base[key] = value
    return base


def test_a_good_checkpoint_loads(tmp_path):
    model, ckpt = load_model(good_checkpoint(tmp_path / "ok.npz"))
    assert ckpt.config == CONFIG and ckpt.classes == ["a", "b", "c"]


@pytest.mark.parametrize("content, what", [
    (gzip.compress(b"hello"), "a gzip file"),
    (pickle.dumps({"a": 1}, protocol=2), "a Python pickle"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "a PNG image"),
    (b"", "empty"),
    (b"\x93NUMPY\x01\x00", "a single NumPy .npy array"),
])
def test_not_a_zip_says_what_the_file_is(tmp_path, content, what):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="model.npz") as err:
        load_checkpoint(path)
    assert what in str(err.value)
    assert "allow_pickle" not in str(err.value)
    with pytest.raises(ValueError, match=f"model.npz.*{what}"):
        interop.load_state_dict_file(path)


@pytest.mark.parametrize("changes, match", [
    (dict(config_num_classes=10**12, classes=["a"]), r"config\.num_classes must be an int in \[1, 100000\]"),
    (dict(config_image_size=[10**6, 10**6]), r"config\.image_size must be an int in"),
    (dict(config_image_size=[4096, 4096]), r"describes \d+ model values but the file stores"),
    (dict(config_in_channels="3"), r"config\.in_channels must be an int"),
    (dict(config_in_channels=True), r"config\.in_channels must be an int"),
    (dict(config_image_size="28x28"), r"config\.image_size must be \[H, W\]"),
    (dict(config_mean=[0.5, 0.5]), r"config\.mean must be a list of 1 finite"),
    (dict(classes="abc"), r"classes must be a list of strings"),
    (dict(classes=["a", "b"]), r"num_classes is 3 but 2 class names"),
    (dict(epoch=-1), r"epoch must be an int"),
    (dict(epoch=1.5), r"epoch must be an int"),
    (dict(version="1"), r"version must be an int"),
    (dict(optimizer="adam"), r"optimizer must be a JSON object"),
    (dict(optimizer={"__array__": "model/0.weight"}), r"names an array .* that the file lacks"),
    (dict(optimizer={"__dict__": [[{"__dict__": []}, 1]]}), r"mapping key"),
    (dict(extra=[]), r"extra must be a JSON object"),
    (dict(extra={"x": json.loads("[" * 70 + "]" * 70)}),
     r"nested more than 64 levels"),
])
def test_crafted_metadata_is_refused_before_allocation(tmp_path, changes, match):
    path = with_meta(tmp_path / "evil.npz", meta(**changes))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"evil\.npz: .*" + match):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_deep_json_and_bad_json(tmp_path):
    deep = '{"a":' * 200_000 + "1" + "}" * 200_000
    with pytest.raises(ValueError, match=r"deep\.npz: .*not valid JSON|deep\.npz: .*nested"):
        load_checkpoint(with_meta(tmp_path / "deep.npz", deep))
    with pytest.raises(ValueError, match=r"bad\.npz: .*not valid JSON"):
        load_checkpoint(with_meta(tmp_path / "bad.npz", "{not json"))
    with pytest.raises(ValueError, match=r"list\.npz: not a convolve checkpoint"):
        load_checkpoint(with_meta(tmp_path / "list.npz", "[1, 2]"))
    path = tmp_path / "wide.npz"
    np.savez(path, __meta__=np.zeros(3))
    with pytest.raises(ValueError, match=r"wide\.npz: .*__meta__ entry must be one JSON string"):
        load_checkpoint(path)


def write_zeros_entry(zf, name, nbytes, header_shape=None):
    """A deflated .npy entry of `nbytes` zero bytes, streamed (never held in memory)."""
    header = {"descr": "|u1", "fortran_order": False, "shape": header_shape or (nbytes,)}
    with zf.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        chunk = bytes(1 << 20)
        for _ in range(nbytes >> 20):
            f.write(chunk)


def test_zip_bomb_checkpoint_is_refused_in_bounded_memory(tmp_path):
    path = good_checkpoint(tmp_path / "bomb.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        write_zeros_entry(zf, "model/extra.npy", 300 << 20)  # 300 MB of zeros, ~300 kB compressed
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.npz: .*describes \d+ model values but the file stores"):
            load_checkpoint(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # nothing of the 300 MB was decompressed


def patch_declared_size(path, name, size):
    """Rewrite the uncompressed size the central directory declares for `name` (a lying zip)."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    at = data.find(b"PK\x01\x02" + b"\0" * 0)
    while at != -1:
        n = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + n] == encoded:
            struct.pack_into("<I", data, at + 24, size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} not found")


def test_impossible_sizes_and_overlapping_entries(tmp_path):
    path = tmp_path / "lying.npz"
    np.savez_compressed(path, a=np.zeros(1000))
    patch_declared_size(path, "a.npy", 0xFFFF0000)  # 4 GB from ~50 compressed bytes
    with pytest.raises(ValueError, match=r"lying\.npz: entry 'a\.npy' claims 4294901760 bytes .*zip bomb"):
        interop.load_state_dict_file(path)

    short = tmp_path / "short.npz"
    np.savez(short, a=np.arange(10.0))
    patch_declared_size(short, "a.npy", 100)
    with pytest.raises(ValueError, match=r"short\.npz: .*"):
        interop.load_state_dict_file(short)

    overlap = tmp_path / "overlap.npz"
    np.savez(overlap, a=np.arange(10.0), b=np.arange(10.0))
    data = bytearray(overlap.read_bytes())
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)  # b's local header offset -> a's: shared bytes
    overlap.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"overlap\.npz: "):
        interop.load_state_dict_file(overlap)


def test_header_disagreeing_with_the_entry(tmp_path):
    path = tmp_path / "hdr.npz"
    with zipfile.ZipFile(path, "w") as zf:
        write_zeros_entry(zf, "a.npy", 1 << 20, header_shape=(10**12,))
    with pytest.raises(ValueError, match=r"hdr\.npz: entry 'a'.*header says shape \(1000000000000,\)"):
        interop.load_state_dict_file(path)


def test_object_arrays_need_pickle_and_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, a=np.array([nn.ReLU()], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: entry 'a' holds Python objects.*needs pickle"):
        interop.load_state_dict_file(path)
