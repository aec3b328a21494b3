"""The functional ops ONNX import needed (hard activations, PReLU, LRN, interpolate) against PyTorch,
forward and every gradient, through the one comparison helper."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import convolve.functional as F  # noqa: E402
from oracle import compare, random_inputs  # noqa: E402

TF = torch.nn.functional


@pytest.mark.parametrize("op,dtype", [("hardswish", np.float64), ("hardswish", np.float32), ("relu6", np.float64),
                                      ("relu6", np.float32), ("hardsigmoid", np.float32)])
def test_hard_activations_match_pytorch(op, dtype):
    x = random_inputs({"input": (2, 3, 5, 6)}, dtype)
    x["input"] *= 5  # reach both flat parts and the slope
    compare(op, x)


def test_hardsigmoid_float64_gradient_is_exactly_one_sixth_inside():
    # (PyTorch's float64 backward multiplies by float32(1/6), so it differs from the exact slope by 3e-8)
    import convolve

    a = np.linspace(-4, 4, 17)
    x = convolve.Tensor(a, requires_grad=True)
    y = F.hardsigmoid(x)
    np.testing.assert_allclose(y.data, TF.hardsigmoid(torch.tensor(a)).numpy(), rtol=1e-15)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.where(np.abs(a) < 3, 1 / 6, 0.0))


def test_hardtanh_matches_pytorch_and_checks_its_bounds():
    compare("hardtanh", random_inputs({"input": (4, 7)}), {"min_val": -0.5, "max_val": 0.25})
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        F.hardtanh(np.zeros(3), 1.0, 0.0)


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("shape", [(2, 4, 6), (2, 4, 5, 3), (1, 4, 2, 3, 3)])
def test_prelu_matches_pytorch(shape, channels):
    compare("prelu", random_inputs({"input": shape, "weight": (channels,)}))


def test_prelu_refuses_a_slope_per_something_else():
    with pytest.raises(ValueError, match=r"weight must have shape \(1,\) or \(4,\)"):
        F.prelu(np.zeros((2, 4, 3)), np.ones(3))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_local_response_norm_matches_pytorch(size):
    compare("local_response_norm", random_inputs({"input": (2, 6, 4, 5)}), {"size": size, "alpha": 0.05,
                                                                             "beta": 0.75, "k": 2.0})


def test_local_response_norm_in_3d_and_its_checks():
    compare("local_response_norm", random_inputs({"input": (1, 5, 3, 2, 4)}), {"size": 3})
    with pytest.raises(ValueError, match="size must be a positive int"):
        F.local_response_norm(np.zeros((1, 2, 3)), 0)


@pytest.mark.parametrize("kwargs", [
    {"size": (9, 4), "mode": "nearest"}, {"scale_factor": 2.5, "mode": "nearest"},
    {"size": (9, 4), "mode": "bilinear", "align_corners": False}, {"scale_factor": 1.5, "mode": "bilinear"},
    {"size": (3, 11), "mode": "bilinear", "align_corners": True}, {"scale_factor": (0.5, 2), "mode": "bilinear"},
])
def test_interpolate_2d_matches_pytorch(kwargs):
    compare("interpolate", random_inputs({"input": (2, 3, 6, 5)}), kwargs)


def test_interpolate_1d_and_3d_match_pytorch():
    compare("interpolate", random_inputs({"input": (2, 3, 7)}), {"size": 12, "mode": "linear"})
    compare("interpolate", random_inputs({"input": (1, 2, 3, 4, 2)}), {"scale_factor": 2, "mode": "trilinear"})
    compare("interpolate", random_inputs({"input": (1, 2, 3, 4, 2)}), {"scale_factor": 2, "mode": "nearest"})


def test_interpolate_checks_its_arguments():
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="mode 'bilinear' needs a 4-D input"):
        F.interpolate(np.zeros((1, 1, 4)), size=8, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners only applies"):
        F.interpolate(np.zeros((1, 1, 4, 4)), size=8, align_corners=True)
