"""State dicts to and from .npz and .safetensors without PyTorch; PyTorch models round-trip exactly."""

import json
import os
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as st_load, save_file as st_save

import convolve
import convolve.nn as nn
from convolve.interop import load_state_dict_file, save_state_dict
from oracle import assert_close

ALL_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]


def _sample():
    rng = np.random.default_rng(0)
    sd = {f"t{i}.{np.dtype(dt).name}": (rng.standard_normal((2, 3)) * 50).astype(dt) for i, dt in enumerate(ALL_DTYPES)}
    sd["scalar"] = np.array(7, dtype=np.int64)  # like num_batches_tracked
    sd["empty"] = np.zeros((0, 4), np.float32)
    sd["transposed"] = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not contiguous
    return sd


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip_keeps_keys_order_dtypes_shapes_values(tmp_path, suffix):
    sd = _sample()
    path = save_state_dict(sd, tmp_path / f"w{suffix}", metadata={"config": json.dumps({"a": 1})})
    back, meta = load_state_dict_file(path, with_metadata=True)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape, k
        np.testing.assert_array_equal(back[k], sd[k])
    assert json.loads(meta["config"]) == {"a": 1}
    assert os.listdir(tmp_path) == [f"w{suffix}"]  # no temporary file left behind


def test_safetensors_agrees_with_the_reference_library_both_ways(tmp_path):
    sd = _sample()
    save_state_dict(sd, tmp_path / "ours.safetensors")
    theirs = st_load(str(tmp_path / "ours.safetensors"))
    for k in sd:
        assert theirs[k].dtype == sd[k].dtype and theirs[k].shape == sd[k].shape
        np.testing.assert_array_equal(theirs[k], sd[k])
    st_save({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(tmp_path / "ref.safetensors"), metadata={"m": "x"})
    back, meta = load_state_dict_file(tmp_path / "ref.safetensors", with_metadata=True)
    assert meta == {"m": "x"} and set(back) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k])
    data = (tmp_path / "ours.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0  # data section aligned


class TorchCNN(torch.nn.Module):
    """The same architecture as `_ours()`, written against torch.nn."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3, padding="same"), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d((3, 3)))
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.2), torch.nn.Linear(54, 5))

    def forward(self, x):
        return self.head(self.features(x))


def _ours():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(4, 6, 3, padding="same"), nn.ReLU(), nn.AdaptiveAvgPool2d((3, 3))),
        nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(54, 5)))


def _rename(key):  # TorchCNN's "features."/"head." are our "0."/"1."
    return key.replace("features.", "0.", 1).replace("head.", "1.", 1)


def _trained_torch_model():
    torch.manual_seed(0)
    tm = TorchCNN()
    opt = torch.optim.SGD(tm.parameters(), lr=0.1)
    x = torch.randn(8, 1, 10, 10)
    for _ in range(3):  # so running stats and num_batches_tracked are not defaults
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tm(x), torch.arange(8) % 5).backward()
        opt.step()
    return tm.eval()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_pytorch_export_loads_and_gives_the_same_logits(tmp_path, suffix):
    tm = _trained_torch_model()
    sd = {_rename(k): v.detach().numpy() for k, v in tm.state_dict().items()}
    path = tmp_path / f"torch{suffix}"
    if suffix == ".npz":
        np.savez(path, **sd)
    else:
        st_save(sd, str(path))
    model = _ours()
    model.load_state_dict(load_state_dict_file(path))
    model.eval()
    assert int(model[0][1].num_batches_tracked) == 3
    x = np.random.default_rng(1).standard_normal((4, 1, 10, 10)).astype(np.float32)
    assert_close(model(x).data, tm(torch.tensor(x)).detach().numpy(), np.float32, "logits")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_our_export_loads_into_pytorch_and_gives_the_same_logits(tmp_path, suffix):
    nn.init.seed(3)
    model = _ours()
    x = np.random.default_rng(2).standard_normal((4, 1, 10, 10)).astype(np.float32)
    model(convolve.Tensor(x))  # one training-mode pass moves the running stats
    model.eval()
    path = save_state_dict(model.state_dict(), tmp_path / f"ours{suffix}")
    loaded = st_load(str(path)) if suffix == ".safetensors" else dict(np.load(path, allow_pickle=False))
    tm = TorchCNN()
    tm.load_state_dict({k: torch.tensor(loaded[_rename(k)]) for k in tm.state_dict()}, strict=True)
    tm.eval()
    assert_close(model(x).data, tm(torch.tensor(x)).detach().numpy(), np.float32, "logits")


def test_torch_tensors_are_accepted_when_saving(tmp_path):
    tm = _trained_torch_model()
    save_state_dict(tm.state_dict(), tmp_path / "direct.safetensors")
    back = load_state_dict_file(tmp_path / "direct.safetensors")
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(back[k], v.numpy())


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "w.safetensors"
    save_state_dict({"a": np.ones(3)}, path)
    with pytest.raises(TypeError, match="dtype complex128"):
        save_state_dict({"a": np.ones(3), "b": np.ones(2, complex)}, path)
    np.testing.assert_array_equal(load_state_dict_file(path)["a"], np.ones(3))
    assert os.listdir(tmp_path) == ["w.safetensors"]


def _corrupt_files(tmp_path):
    save_state_dict({"a": np.arange(10.0), "b": np.ones((2, 2), np.float32)}, tmp_path / "good.safetensors")
    good = (tmp_path / "good.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", good[:8])
    cases = {
        "truncated": good[:-5],
        "tiny": good[:5],
        "huge_header": struct.pack("<Q", 1 << 40) + good[8:],
        "bad_json": good[:8] + b"#" + good[9:],
        "bad_dtype": good.replace(b'"F64"', b'"X64"'),
        "no_shape": good.replace(b'"shape"', b'"shapf"'),
    }
    for name, data in cases.items():
        (tmp_path / f"{name}.safetensors").write_bytes(data)
    return list(cases)


@pytest.mark.parametrize("name, match", [
    ("truncated", r"data_offsets .* do not fit .*truncated"),
    ("tiny", "only 5 bytes long"),
    ("huge_header", "header length .* exceeds the file size"),
    ("bad_json", "bad JSON header"),
    ("bad_dtype", "has dtype 'X64', which is unsupported"),
    ("no_shape", "needs dtype, shape and data_offsets"),
])
def test_corrupt_safetensors_errors_name_the_file(tmp_path, name, match):
    _corrupt_files(tmp_path)
    with pytest.raises(ValueError, match=match) as info:
        load_state_dict_file(tmp_path / f"{name}.safetensors")
    assert f"{name}.safetensors" in str(info.value)


def test_bad_npz_and_pickled_npz_are_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.npz.*not a readable .npz"):
        load_state_dict_file(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="obj.npz.*needs pickle"):
        load_state_dict_file(tmp_path / "obj.npz")


@pytest.mark.parametrize("call, exc, match", [
    (lambda p: save_state_dict({"a": np.ones(1)}, p / "w.pt"), ValueError, r"must end in .npz or .safetensors"),
    (lambda p: save_state_dict({"a": np.ones(1)}, p / "missing" / "w.npz"), FileNotFoundError, "does not exist"),
    (lambda p: save_state_dict([1, 2], p / "w.npz"), TypeError, "mapping of names to arrays"),
    (lambda p: save_state_dict({1: np.ones(1)}, p / "w.npz"), TypeError, "keys must be non-empty strings"),
    (lambda p: save_state_dict({"__metadata__": np.ones(1)}, p / "w.npz"), ValueError, "reserved"),
    (lambda p: save_state_dict({"a": np.ones(1)}, p / "w.npz", metadata={"a": 1}), TypeError, "str -> str"),
    (lambda p: load_state_dict_file(p / "nope.safetensors"), FileNotFoundError, "nope.safetensors"),
])
def test_argument_errors(tmp_path, call, exc, match):
    with pytest.raises(exc, match=match):
        call(tmp_path)
    assert os.listdir(tmp_path) == []
