"""PyTorch .pt/.pth files read without PyTorch (torch only writes them here, as the oracle), and
safetensors memory-mapped with bfloat16 and hostile headers."""

import json
import mmap
import os
import struct
import zipfile

import numpy as np
import pytest

from convolve import interop
from convolve.interop import load_state_dict_file

torch = pytest.importorskip("torch")


def base_of(a):
    """The object at the bottom of an array's chain of views (a memoryview is unwrapped)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def test_a_model_state_dict_loads_exactly_and_memory_mapped(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2))
    path = tmp_path / "m.pth"
    torch.save(model.state_dict(), path)
    sd = load_state_dict_file(path)
    assert list(sd) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert sd[k].dtype == v.numpy().dtype and sd[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(sd[k], v.numpy())
    assert isinstance(base_of(sd["0.weight"]), mmap.mmap)  # not read into memory
    sd["0.weight"][...] = 7  # copy-on-write: the array changes, the file does not
    np.testing.assert_array_equal(load_state_dict_file(path)["0.weight"], model.state_dict()["0.weight"].numpy())


def test_the_loaded_weights_give_pytorchs_output(tmp_path):
    from convolve import nn

    torch.manual_seed(1)
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(3 * 5 * 5, 4))
    torch.save(tmodel.state_dict(), tmp_path / "w.pt")
    ours = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(75, 4))
    ours.load_state_dict(load_state_dict_file(tmp_path / "w.pt"))
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32)
    expected = tmodel(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(ours(x).data), expected, rtol=1e-5, atol=1e-6)


def test_nested_views_sharing_storage_and_half_precision(tmp_path):
    base = torch.arange(40, dtype=torch.float32)
    obj = {
        "model": {"slice": base[3:19:3], "t": base[:20].view(4, 5).t(), "tied": base, "p": torch.nn.Parameter(base[:4])},
        "opt": [{"lr": 0.1, "buf": base[5:9]}],
        "half": torch.tensor([1.5, -2.0, 65504.0], dtype=torch.float16),
        "bf16": torch.tensor([1.5, -2.25, 3.0e38], dtype=torch.bfloat16),
        "ints": torch.arange(5, dtype=torch.int16)[1:],
        "epoch": 3, "name": "run",
    }
    torch.save(obj, tmp_path / "n.pt")
    sd, meta = load_state_dict_file(tmp_path / "n.pt", with_metadata=True)
    assert list(sd) == ["model.slice", "model.t", "model.tied", "model.p", "opt.0.buf", "half", "bf16", "ints"]
    for key, tensor in [("model.slice", base[3:19:3]), ("model.t", base[:20].view(4, 5).t()),
                        ("model.tied", base), ("model.p", base[:4]), ("opt.0.buf", base[5:9]),
                        ("ints", obj["ints"])]:
        np.testing.assert_array_equal(sd[key], tensor.numpy(), err_msg=key)
        assert sd[key].flags.c_contiguous
    for key in ("half", "bf16"):
        assert sd[key].dtype == np.float32
        np.testing.assert_array_equal(sd[key], obj[key].float().numpy())
    assert json.loads(meta["epoch"]) == 3 and json.loads(meta["name"]) == "run"
    assert json.loads(meta["opt.0.lr"]) == 0.1


def test_a_malicious_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"w": torch.ones(2), "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt.*names posix\.system|evil\.pt.*names os\.system"):
        load_state_dict_file(tmp_path / "evil.pt")
    assert not marker.exists()

    class Builtin:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    torch.save({"x": Builtin()}, tmp_path / "eval.pt")
    with pytest.raises(ValueError, match=r"eval\.pt.*(__builtin__|builtins)\.eval.*refused"):
        load_state_dict_file(tmp_path / "eval.pt")


def test_legacy_and_foreign_files_get_clear_errors(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"old\.pt.*legacy .*non-zip.* format"):
        load_state_dict_file(tmp_path / "old.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match=r"text\.pt.*not a PyTorch checkpoint: the file is text"):
        load_state_dict_file(tmp_path / "text.pt")
    with open(tmp_path / "arrays.pt", "wb") as f:
        np.savez(f, a=np.ones(2))  # a zip, but not torch's
    with pytest.raises(ValueError, match=r"arrays\.pt.*no data\.pkl"):
        load_state_dict_file(tmp_path / "arrays.pt")


def _rewrite(path, name, transform):
    """Copy a torch zip with one entry's bytes transformed (the zip stays well-formed)."""
    with zipfile.ZipFile(path) as src:
        items = [(i, src.read(i)) for i in src.infolist()]
    with zipfile.ZipFile(path, "w") as dst:
        for info, data in items:
            dst.writestr(info, transform(data) if info.filename.endswith(name) else data)


def test_tensors_reading_past_their_storage_are_refused(tmp_path):
    path = tmp_path / "big.pt"
    torch.save({"w": torch.ones(4)}, path)
    _rewrite(path, "data/0", lambda data: data[:8])  # storage shorter than the pickle says
    with pytest.raises(ValueError, match=r"big\.pt.*storage '0' should hold 4 elements"):
        load_state_dict_file(path)
    path = tmp_path / "offset.pt"
    torch.save({"w": torch.ones(4)}, path)
    # the tensor's size tuple (4,) -> (9,): it now reads past the end of its 4-element storage
    _rewrite(path, "data.pkl", lambda data: data.replace(b"K\x04\x85", b"K\x09\x85", 1))
    with pytest.raises(ValueError, match=r"offset\.pt.*reads past the end of its storage"):
        load_state_dict_file(path)


# --- safetensors ---------------------------------------------------------------------------------


def write_safetensors(path, header, body=b""):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


def test_safetensors_bfloat16_and_memory_map(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    tensors = {"bf": torch.tensor([[1.5, -2.25], [3.0e38, 0.0]], dtype=torch.bfloat16),
               "f": torch.arange(6, dtype=torch.float32)}
    st.save_file(tensors, str(tmp_path / "w.safetensors"))
    sd = load_state_dict_file(tmp_path / "w.safetensors")
    assert sd["bf"].dtype == np.float32
    np.testing.assert_array_equal(sd["bf"], tensors["bf"].float().numpy())
    np.testing.assert_array_equal(sd["f"], tensors["f"].numpy())
    assert isinstance(base_of(sd["f"]), mmap.mmap)
    sd["f"][0] = 42  # copy-on-write
    assert load_state_dict_file(tmp_path / "w.safetensors")["f"][0] == 0


@pytest.mark.parametrize("header, body, match", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), "overlap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, bytes(8), "do not fit"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, bytes(8), "do not fit"),
    ({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, bytes(8), "do not fit"),
    ({"__metadata__": ["not", "a", "dict"]}, b"", "__metadata__ must be a JSON object of strings"),
    ({"__metadata__": {"k": {"nested": 1}}}, b"", "__metadata__ must be a JSON object of strings"),
    ({"a": {"dtype": "F32", "shape": [[[[[2]]]]], "data_offsets": [0, 8]}}, bytes(8), "malformed shape"),
    ({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, bytes(8), "unsupported"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, True]}}, bytes(8), "malformed shape"),
])
def test_hostile_safetensors_headers(tmp_path, header, body, match):
    path = write_safetensors(tmp_path / "bad.safetensors", header, body)
    with pytest.raises(ValueError, match=match) as err:
        load_state_dict_file(path)
    assert "bad.safetensors" in str(err.value)


def test_deeply_nested_safetensors_header(tmp_path):
    text = ("[" * 100_000 + "]" * 100_000).encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(ValueError, match=r"deep\.safetensors.*(bad JSON header|not a JSON object)"):
        load_state_dict_file(path)
    path = write_safetensors(tmp_path / "deep2.safetensors", {"a": json.loads("[" * 50 + "]" * 50)})
    with pytest.raises(ValueError, match=r"deep2\.safetensors.*needs dtype, shape and data_offsets"):
        load_state_dict_file(path)


def test_save_refuses_pt_suffix_but_load_accepts_it(tmp_path):
    with pytest.raises(ValueError, match=r"must end in .npz or .safetensors"):
        interop.save_state_dict({"a": np.ones(1)}, tmp_path / "w.pt")
    assert os.listdir(tmp_path) == []
