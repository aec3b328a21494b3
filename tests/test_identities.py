"""Identities that need no reference, the seeds' numbers, the dtype policy and the reference oracle."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convolve
import convolve.functional as F
from convolve import _engine

rng = np.random.default_rng(0)


# --- the seeds' example: 64x64x3 image, 5x5x3 kernels -----------------------------------------------

def test_one_5x5x3_kernel_on_64x64x3_gives_60x60_unpadded_and_64x64_with_padding_2():
    x = rng.random((1, 3, 64, 64), dtype=np.float32)
    w = rng.random((1, 3, 5, 5), dtype=np.float32)
    assert F.conv2d(x, w).shape == (1, 1, 60, 60)
    assert F.conv2d(x, w, padding=2).shape == (1, 1, 64, 64)
    assert F.conv2d(x, w, padding="same").shape == (1, 1, 64, 64)
    # and position (i, j) is z = b + Σ w·x over the window at (i, j)
    b = np.array([0.25], np.float32)
    z = F.conv2d(x, w, b)
    i, j = 17, 42
    assert np.isclose(z[0, 0, i, j], b[0] + np.sum(w[0] * x[0, :, i : i + 5, j : j + 5]), rtol=1e-5)


def test_eight_kernels_give_a_64x64x8_volume_and_a_second_layer_of_5x5x8_kernels_stacks_on_it():
    x = rng.random((3, 64, 64), dtype=np.float32)  # unbatched (C, H, W)
    w1 = rng.random((8, 3, 5, 5), dtype=np.float32)
    v = F.conv2d(x, w1, padding=2)
    assert v.shape == (8, 64, 64)
    w2 = rng.random((4, 8, 5, 5), dtype=np.float32)  # kernel depth 8 = the volume's depth
    assert F.conv2d(v, w2, padding=2).shape == (4, 64, 64)
    # the same volume in the seeds' HxWxC layout
    hwc = F.conv2d(np.moveaxis(x, 0, -1), w1, padding=2, data_format="channels_last")
    assert hwc.shape == (64, 64, 8)
    np.testing.assert_array_equal(np.moveaxis(hwc, -1, 0), v)


def test_weight_sharing_parameter_count():
    # 8 kernels of 5x5x3 + 8 biases = 608 parameters whatever the image size: the layer's own count,
    # the explanation's count, and the same layer run on two image sizes
    import convolve.nn as nn
    from convolve.explain import explain

    conv = nn.Conv2d(3, 8, 5, padding=2)
    assert sum(p.data.size for p in conv.parameters()) == 608
    for size in (64, 200):
        assert conv(rng.random((1, 3, size, size), dtype=np.float32)).shape == (1, 8, size, size)
        assert explain(f"{size}x{size}x3", ["conv 8 5x5x3 pad=2"]).steps[0].params == 608


# --- identities -------------------------------------------------------------------------------------

@given(groups=st.integers(1, 4), cg=st.integers(1, 3), og=st.integers(1, 3), stride=st.integers(1, 2))
@settings(max_examples=20, deadline=None)
def test_grouped_conv_equals_per_group_convs_concatenated(groups, cg, og, stride):
    x = rng.standard_normal((2, groups * cg, 7, 6))
    w = rng.standard_normal((groups * og, cg, 3, 2))
    whole = F.conv2d(x, w, stride=stride, padding=1, groups=groups)
    parts = [F.conv2d(x[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og], stride=stride, padding=1) for g in range(groups)]
    np.testing.assert_allclose(whole, np.concatenate(parts, axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_all_ones_kernel_gives_window_sums(nd):
    x = rng.integers(0, 10, (1, 2) + (5, 4, 4)[:nd]).astype(np.float64)
    k = (3, 2, 2)[:nd]
    y = F.conv2d if nd == 2 else F.conv1d if nd == 1 else F.conv3d
    out = y(x, np.ones((1, 2) + k))
    windows = np.lib.stride_tricks.sliding_window_view(x[0], k, axis=tuple(range(1, nd + 1)))
    sums = windows.sum(axis=(0,) + tuple(range(nd + 1, 2 * nd + 1)))
    # exact for integers on GEMM; the cost model may pick FFT/Winograd, which round at ~1e-15
    np.testing.assert_allclose(out[0, 0], sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(y(x, np.ones((1, 2) + k), algorithm="gemm")[0, 0], sums)
    # average pooling with the same window is the sum divided by the window size
    pool = getattr(F, f"avg_pool{nd}d")(x, k, stride=1)
    np.testing.assert_allclose(pool.sum(axis=1), out[:, 0] / np.prod(k))


def test_zeros_in_zeros_out_and_bias_only():
    x = np.zeros((2, 3, 8, 8), np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    assert not F.conv2d(x, w, padding=1).any()
    b = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(F.conv2d(x, w, b, padding=1), np.broadcast_to(b[None, :, None, None], (2, 4, 8, 8)))
    assert not F.conv_transpose2d(x, w.transpose(1, 0, 2, 3).copy(), stride=2).any()


def test_identity_kernel_reproduces_the_input():
    x = rng.standard_normal((1, 1, 6, 6))
    k = np.zeros((1, 1, 3, 3))
    k[0, 0, 1, 1] = 1
    np.testing.assert_array_equal(F.conv2d(x, k, padding=1), x)


def test_transposed_conv_is_the_adjoint_of_conv():
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(x, w, stride=2, padding=1, dilation=1)
    g = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(g, w, stride=2, padding=1, output_padding=(0, 1))
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(y * g), np.sum(x * back), rtol=1e-10)


# --- the reference oracle and the default algorithm agree ------------------------------------------

@given(nd=st.sampled_from([1, 2, 3]), groups=st.sampled_from([1, 2]), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), seed=st.integers(0, 100))
@settings(max_examples=25, deadline=None)
def test_every_algorithm_equals_the_reference(nd, groups, stride, dilation, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((2, 2 * groups) + (7, 6, 5)[:nd])
    w = r.standard_normal((3 * groups, 2) + (3, 2, 2)[:nd])
    b = r.standard_normal(3 * groups)
    args = ((stride,) * nd, (dilation,) * nd, groups)
    ref = _engine.ALGORITHMS["reference"]
    y = ref.forward(x, w, b, *args)
    gy = r.standard_normal(y.shape)
    ran = []
    for name, algo in _engine.ALGORITHMS.items():
        def runs(op):  # each algorithm says which shapes it takes (None = supported)
            return algo.supports(op, x.shape, w.shape, *args) is None
        if runs("forward"):
            np.testing.assert_allclose(algo.forward(x, w, b, *args), y, rtol=1e-10, atol=1e-10, err_msg=name)
            ran.append(name)
        if runs("grad_input"):
            np.testing.assert_allclose(algo.grad_input(gy, w, x.shape, *args), ref.grad_input(gy, w, x.shape, *args),
                                       rtol=1e-10, atol=1e-10, err_msg=name)
        if runs("grad_weight"):
            np.testing.assert_allclose(algo.grad_weight(x, gy, w.shape, *args), ref.grad_weight(x, gy, w.shape, *args),
                                       rtol=1e-10, atol=1e-10, err_msg=name)
    assert "gemm" in ran  # the general algorithm takes every shape


def test_functional_algorithm_keyword_forces_the_reference():
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3))
    np.testing.assert_allclose(F.conv2d(x, w, algorithm="reference"), F.conv2d(x, w), rtol=1e-12)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        F.conv2d(x, w, algorithm="magic")


# --- dtype policy -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_stay_in_their_dtype(dtype):
    x = rng.standard_normal((1, 2, 6, 6)).astype(dtype)
    w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    X, W = convolve.Tensor(x, requires_grad=True), convolve.Tensor(w, requires_grad=True)
    for out in (F.conv2d(x, w), F.conv_transpose2d(x, w.transpose(1, 0, 2, 3).copy()), F.max_pool2d(x, 2),
                F.avg_pool2d(x, 2), F.pad(x, (1, 1)), F.unfold(x, 2)):
        assert out.dtype == dtype
    Y = F.conv2d(X, W, padding=1)
    Y.backward(np.ones(Y.shape, dtype))
    assert Y.dtype == X.grad.dtype == W.grad.dtype == dtype


def test_float16_is_computed_in_float32_and_returned_as_float16():
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    y16 = F.conv2d(x.astype(np.float16), w.astype(np.float16))
    assert y16.dtype == np.float16
    y32 = F.conv2d(x.astype(np.float16).astype(np.float32), w.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(y16, y32.astype(np.float16))
    assert F.max_pool2d(x.astype(np.float16), 2).dtype == np.float16


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.complex128])
def test_integer_bool_and_complex_input_is_refused(dtype):
    x = np.ones((1, 1, 4, 4), dtype)
    with pytest.raises(TypeError, match=r"input must be a float16, float32 or float64 array, but got dtype .*astype"):
        F.conv2d(x, np.ones((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="input must be a float"):
        F.max_pool2d(x, 2)


def test_nan_and_inf_propagate_like_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for NaN/inf propagation")
    x = rng.standard_normal((1, 1, 5, 5))
    x[0, 0, 1, 1], x[0, 0, 3, 4] = np.nan, np.inf
    w = rng.standard_normal((1, 1, 3, 3))
    ours = F.conv2d(x, w, padding=1)
    theirs = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[np.isfinite(theirs)], theirs[np.isfinite(theirs)], rtol=1e-10)
