"""The onnx wheel's pytorch-converted backend cases, and clear errors for bad files and bad calls."""

import glob
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convolve  # noqa: E402
import convolve.onnx  # noqa: E402
from convolve.onnx import OnnxUnsupportedError  # noqa: E402

CASES = sorted(glob.glob(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data",
                                      "pytorch-converted", "test_*")))


def _tensors(folder, kind):
    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in sorted(glob.glob(f"{folder}/{kind}_*.pb"))]


@pytest.mark.skipif(not CASES, reason="this onnx wheel ships no backend test data")
@pytest.mark.parametrize("case", CASES, ids=[os.path.basename(c) for c in CASES])
def test_pytorch_converted_backend_cases(case):
    model = convolve.onnx.load(f"{case}/model.onnx")
    for folder in sorted(glob.glob(f"{case}/test_data_set_*")):
        inputs = _tensors(folder, "input")[: len(model.input_specs)]  # old files list weights as inputs too
        outs = model(*inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for ours, want in zip(outs, _tensors(folder, "output")):
            np.testing.assert_allclose(np.asarray(getattr(ours, "data", ours)), want, rtol=1e-4, atol=1e-5)


def _model(nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _save(model, path):
    onnx.save(model, str(path))
    return str(path)


def _conv_file(tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv0", pads=[1, 1, 1, 1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return _save(_model([node], [x], [y], [w]), tmp_path / "conv.onnx")


def test_a_truncated_file_says_so(tmp_path):
    good = _conv_file(tmp_path)
    data = open(good, "rb").read()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        convolve.onnx.load(bad)
    (tmp_path / "text.onnx").write_text("hello, I am not a model")
    with pytest.raises(ValueError, match="ONNX"):
        convolve.onnx.load(tmp_path / "text.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        convolve.onnx.load(tmp_path / "missing.onnx")


def test_an_unsupported_op_names_the_op_the_node_and_the_opset(tmp_path):
    node = helper.make_node("Einsum", ["x", "x"], ["y"], name="mixer", equation="ij,ij->i")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = _save(_model([node], [x], [y], opset=15), tmp_path / "einsum.onnx")
    with pytest.raises(OnnxUnsupportedError, match=r"Einsum \(node 'mixer', opset 15\).*not supported"):
        convolve.onnx.load(path)


def test_an_unsupported_attribute_is_refused_not_ignored(tmp_path):
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], storage_order=1)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    with pytest.raises(OnnxUnsupportedError, match=r"MaxPool \(node 'pool', opset 13\): storage_order"):
        convolve.onnx.load(_save(_model([node], [x], [y]), tmp_path / "p.onnx"))
    node = helper.make_node("Relu", ["x"], ["y"], name="act", flavour=3)
    with pytest.raises(OnnxUnsupportedError, match=r"Relu \(node 'act', opset 13\): attribute\(s\) \['flavour'\]"):
        convolve.onnx.load(_save(_model([node], [x], [y]), tmp_path / "r.onnx"))


def test_an_opset_out_of_range_is_refused(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    with pytest.raises(OnnxUnsupportedError, match="opset 5 is outside the supported range 6..21"):
        convolve.onnx.load(_save(_model([node], [x], [y], opset=5), tmp_path / "old.onnx"))


def test_wrong_input_shape_count_or_dtype_is_a_clear_error(tmp_path):
    model = convolve.onnx.load(_conv_file(tmp_path))
    assert model(np.ones((3, 1, 5, 5), np.float32)).shape == (3, 2, 5, 5)  # N is dynamic
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(N, 1, 5, 5\), but got \(1, 1, 6, 5\)"):
        model(np.ones((1, 1, 6, 5), np.float32))
    with pytest.raises(ValueError, match=r"input 'x' must be 4-D"):
        model(np.ones((1, 5, 5), np.float32))
    with pytest.raises(TypeError, match=r"takes 1 input\(s\) \(x\), but got 2"):
        model(np.ones((1, 1, 5, 5), np.float32), np.ones(1))
    with pytest.raises(TypeError, match="must have dtype float32"):
        model(convolve.Tensor(np.ones((1, 1, 5, 5))))
    # arrays of another numeric dtype are converted, like a float64 picture
    assert model(np.ones((1, 1, 5, 5))).dtype == np.float32


def test_a_missing_onnx_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "convolve\[onnx\]"'):
        convolve.onnx.load(tmp_path / "any.onnx")


def test_importing_convolve_onnx_does_not_import_onnx():
    import subprocess

    code = "import sys, convolve.onnx; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
