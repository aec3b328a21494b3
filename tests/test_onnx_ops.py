"""Single ONNX ops written by hand (what exporters rarely emit): auto_pad, asymmetric pads, Softmax's
two axis rules, LRN, Resize modes, reductions -- each checked against onnxruntime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convolve  # noqa: E402
import convolve.onnx  # noqa: E402

RNG = np.random.default_rng(0)


def run_both(tmp_path, node, x, opset=13, inits=(), extra_inputs=()):
    """One-node graph: compare convolve's output with onnxruntime's; return the loaded model."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + list(x.shape[1:]))]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    path = str(tmp_path / f"{node.op_type}.onnx")
    onnx.save(model, path)
    ours = convolve.onnx.load(path)
    got = ours(x)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = np.asarray(getattr(got, "data", got))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return ours


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_auto_pad(tmp_path, auto_pad, stride):
    w = _x(3, 2, 4, 3)  # even kernel height: SAME_UPPER and SAME_LOWER differ
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[stride, stride])
    run_both(tmp_path, node, _x(2, 2, 7, 6), inits=[("w", w)])


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_pool_auto_pad(tmp_path, op, auto_pad):
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2], auto_pad=auto_pad)
    run_both(tmp_path, node, _x(1, 2, 7, 8))


@pytest.mark.parametrize("include", [0, 1])
def test_asymmetric_pool_pads_and_count_include_pad(tmp_path, include):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[0, 1, 2, 1],
                            count_include_pad=include)
    run_both(tmp_path, node, _x(1, 2, 6, 6))
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[0, 1, 2, 1], strides=[2, 1])
    run_both(tmp_path, node, _x(1, 2, 6, 6))


def test_conv_1d_and_3d_with_asymmetric_pads(tmp_path):
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[2, 0], dilations=[2])
    run_both(tmp_path, node, _x(2, 3, 9), inits=[("w", _x(4, 3, 3)), ("b", _x(4))])
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 0, 1, 0, 1, 1], strides=[1, 2, 1], group=2)
    run_both(tmp_path, node, _x(1, 4, 4, 5, 4), inits=[("w", _x(2, 2, 2, 2, 3))])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, 2), (11, -1), (13, 1), (13, -1)])
def test_softmax_axis_rules_before_and_after_opset_13(tmp_path, op, opset, axis):
    # before 13 the input is flattened to 2-D at `axis` (normalised over all following axes together)
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    run_both(tmp_path, node, _x(2, 3, 4, 5), opset=opset)


def test_lrn_matches_onnxruntime_and_pytorch(tmp_path):
    node = helper.make_node("LRN", ["x"], ["y"], size=3, alpha=1e-2, beta=0.75, bias=2.0)
    x = _x(2, 7, 4, 5)
    model = run_both(tmp_path, node, x)
    import torch

    want = torch.nn.functional.local_response_norm(torch.from_numpy(x), 3, 1e-2, 0.75, 2.0).numpy()
    np.testing.assert_allclose(model(x).data, want, rtol=1e-5, atol=1e-6)


def test_lrn_even_size_follows_the_onnx_window_not_pytorchs(tmp_path):
    # onnxruntime refuses even sizes and onnx.reference's LRN loops over the batch instead of the channels,
    # so the spec's formula itself is the oracle: channels [c - floor((size-1)/2), c + ceil((size-1)/2)]
    size, alpha, beta, bias = 4, 1e-2, 0.75, 2.0
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=alpha, beta=beta, bias=bias)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 7, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = str(tmp_path / "lrn4.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    x = _x(2, 7, 4, 5)
    want = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - (size - 1) // 2), min(7, c + size // 2 + 1)
        want[:, c] = x[:, c] / (bias + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
    np.testing.assert_allclose(convolve.onnx.load(path)(x).data, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,coord,nearest", [
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"), ("nearest", "tf_half_pixel_for_nn", "ceil"),
    ("linear", "half_pixel", "round_prefer_floor"), ("linear", "pytorch_half_pixel", "floor"),
    ("linear", "align_corners", "floor"), ("linear", "asymmetric", "floor"),
])
def test_resize_modes(tmp_path, mode, coord, nearest):
    scales = np.array([1, 1, 1.5, 2.25], np.float32)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=coord,
                            nearest_mode=nearest)
    run_both(tmp_path, node, _x(1, 2, 5, 4), inits=[("scales", scales)])
    sizes = np.array([1, 2, 3, 7], np.int64)  # sizes given: downsample one axis, upsample the other
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode, coordinate_transformation_mode=coord,
                            nearest_mode=nearest)
    run_both(tmp_path, node, _x(1, 2, 5, 4), inits=[("sizes", sizes)])


def test_upsample_opset_9(tmp_path):
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")
    run_both(tmp_path, node, _x(1, 2, 3, 4), opset=9, inits=[("scales", np.array([1, 1, 2, 3], np.float32))])


@pytest.mark.parametrize("op", ["GlobalMaxPool", "GlobalAveragePool"])
def test_global_pools_in_1d_2d_and_3d(tmp_path, op):
    for shape in [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5)]:
        run_both(tmp_path, helper.make_node(op, ["x"], ["y"]), _x(*shape))


@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_mean(tmp_path, opset):
    if opset < 18:
        node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)
        run_both(tmp_path, node, _x(2, 3, 4, 5), opset=opset)
    else:
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)
        run_both(tmp_path, node, _x(2, 3, 4, 5), opset=opset, inits=[("axes", np.array([-1, 1], np.int64))])


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_modes(tmp_path, mode):
    node = helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode=mode)
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    run_both(tmp_path, node, _x(1, 2, 4, 5), inits=[("pads", pads), ("value", np.array(0.5, np.float32))])


def test_gemm_with_alpha_beta_and_untransposed_weights(tmp_path):
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0)
    run_both(tmp_path, node, _x(3, 4), inits=[("w", _x(4, 6)), ("c", _x(6))])


@pytest.mark.parametrize("op,attrs", [("LeakyRelu", {"alpha": 0.2}), ("HardSigmoid", {}), ("HardSwish", {}),
                                      ("Elu", {}), ("Selu", {}), ("Softplus", {}), ("Softsign", {}),
                                      ("Sigmoid", {}), ("Tanh", {}), ("Relu", {})])
def test_activations(tmp_path, op, attrs):
    run_both(tmp_path, helper.make_node(op, ["x"], ["y"], **attrs), 4 * _x(2, 3, 4), opset=14)


@pytest.mark.parametrize("opset", [9, 13])
def test_clip_both_opset_forms(tmp_path, opset):
    if opset < 11:
        node = helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=1.0)
        run_both(tmp_path, node, _x(2, 3, 4), opset=opset)
    else:
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
        run_both(tmp_path, node, _x(2, 3, 4), opset=opset, inits=[("lo", np.array(-0.5, np.float32)),
                                                                  ("hi", np.array(1.0, np.float32))])


def test_transpose_squeeze_unsqueeze_and_sum(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Unsqueeze", ["t", "ax"], ["u"]),
             helper.make_node("Squeeze", ["u", "ax"], ["s"]),
             helper.make_node("Sum", ["s", "t", "k"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.array([1], np.int64), "ax"),
                                           numpy_helper.from_array(_x(3), "k")])
    path = str(tmp_path / "t.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    x = _x(2, 3, 4)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.asarray(convolve.onnx.load(path)(x).data), want, rtol=1e-6)
