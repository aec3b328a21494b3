"""Every bad input gets a clear error naming the argument, what was expected and what was given."""

import numpy as np
import pytest

import convolve
import convolve.data
import convolve.functional as F
import convolve.nn

x = np.zeros((1, 3, 8, 8), np.float32)
w = np.zeros((8, 3, 5, 5), np.float32)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.conv2d(np.zeros((1, 4, 8, 8), np.float32), w), ValueError,
     r"input has 4 channels but weight expects 3 \(input depth must equal kernel depth x groups = 3 x 1\)"),
    (lambda: F.conv2d(np.zeros((8, 8), np.float32), w), ValueError,
     r"conv2d expects input of shape \(N, C, H, W\) or unbatched \(C, H, W\).*got 2-D input of shape \(8, 8\)"),
    (lambda: F.conv2d(x, np.zeros((8, 3, 5), np.float32)), ValueError, r"expects a 4-D weight .* got 3-D weight"),
    (lambda: F.conv2d(np.zeros((1, 3, 4, 4), np.float32), w), ValueError,
     r"kernel size 5 \(kernel 5, dilation 1\) is larger than the padded input size 4"),
    (lambda: F.conv2d(np.zeros((1, 3, 2, 2), np.float32), w, padding=1), ValueError,
     r"larger than the padded input size 4 \(input 2 \+ padding 1\+1\)"),
    (lambda: F.conv2d(x, w, dilation=3), ValueError, r"kernel size 13 \(kernel 5, dilation 3\)"),
    (lambda: F.conv2d(x, w, stride=0), ValueError, r"stride must be positive, but got 0"),
    (lambda: F.conv2d(x, w, stride=(1, -2)), ValueError, r"stride must be positive, but got \(1, -2\)"),
    (lambda: F.conv2d(x, w, dilation=0), ValueError, r"dilation must be positive"),
    (lambda: F.conv2d(x, w, stride=1.5), TypeError, r"stride must be an int or a tuple of 2 ints, but got 1.5"),
    (lambda: F.conv2d(x, w, groups=2), ValueError, r"input has 3 channels but weight expects 6"),
    (lambda: F.conv2d(np.zeros((1, 6, 8, 8), np.float32), np.zeros((5, 3, 3, 3), np.float32), groups=2), ValueError,
     r"groups=2 must divide the weight's 5 output channels"),
    (lambda: F.conv2d(x, w, groups=0), ValueError, r"groups must be a positive int, but got 0"),
    (lambda: F.conv2d(x, w, padding="full"), ValueError, r"padding must be 'valid', 'same', an int or a tuple, but got 'full'"),
    (lambda: F.conv2d(x, w, padding=-1), ValueError, r"padding must be non-negative"),
    (lambda: F.conv2d(x, w, padding=(1, 2, 3)), TypeError, r"padding must be 'valid', 'same', an int, a tuple of 2 ints"),
    (lambda: F.conv2d(x, w, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of \['zeros', 'reflect', 'replicate', 'circular'\], but got 'mirror'"),
    (lambda: F.conv2d(np.zeros((1, 3, 5, 5), np.float32), w, padding=5, padding_mode="reflect"), ValueError,
     r"reflect padding 5 must be smaller than the input size 5"),
    (lambda: F.conv2d(np.zeros((1, 3, 5, 5), np.float32), w, padding=6, padding_mode="circular"), ValueError,
     r"circular padding 6 must be at most the input size 5"),
    (lambda: F.conv2d(x, w.astype(np.float64)), TypeError, r"input has dtype float32 but weight has dtype float64"),
    (lambda: F.conv2d(x, w, np.zeros(7, np.float32)), ValueError, r"bias must have shape \(8,\).*got \(7,\)"),
    (lambda: F.conv2d(x, w, data_format="NHWC"), ValueError,
     r"data_format must be one of \['channels_first', 'channels_last'\], but got 'NHWC'"),
    (lambda: F.conv2d(None, w), TypeError, r"input must be an array or a Tensor, but got None"),
    (lambda: F.conv_transpose2d(x, np.zeros((3, 2, 3, 3), np.float32), stride=2, output_padding=2), ValueError,
     r"output_padding must be smaller than either stride or dilation, but got output_padding=2, stride=2, dilation=1"),
    (lambda: F.conv_transpose2d(x, np.zeros((4, 2, 3, 3), np.float32)), ValueError,
     r"input has 3 channels but the transposed weight expects 4"),
    (lambda: F.conv_transpose2d(x, np.zeros((3, 2, 3, 3), np.float32), padding="same"), ValueError,
     r"conv_transpose2d takes numeric padding"),
    (lambda: F.conv_transpose2d(x, np.zeros((3, 2, 3, 3), np.float32), padding=5), ValueError,
     r"padding 5\+5 removes the whole output"),
    (lambda: F.max_pool2d(x, 3, padding=2), ValueError, r"padding should be at most half of the kernel size \(1\), but got padding=2"),
    (lambda: F.max_pool2d(x, 0), ValueError, r"kernel_size must be positive"),
    (lambda: F.avg_pool2d(x, 10), ValueError, r"output size is too small: input size 8 with padding 0 is smaller than the kernel size 10"),
    (lambda: F.avg_pool2d(x, 2, divisor_override=0), ValueError, r"divisor_override must be a non-zero int"),
    (lambda: F.max_pool1d(x, 2), ValueError, r"max_pool1d expects input of shape \(N, C, L\) or unbatched \(C, L\)"),
    (lambda: F.pad(x, (1, 1), mode="wrap"), ValueError, r"mode must be one of \['constant', 'reflect', 'replicate', 'circular'\]"),
    (lambda: F.pad(x, (1,)), TypeError, r"pad must be a tuple of an even number of ints"),
    (lambda: F.pad(x, (9, 0), mode="reflect"), ValueError, r"reflect padding of 9 needs an input dimension larger than the pad"),
    (lambda: F.pad(x, (0,) * 10), ValueError, r"pads 5 dimensions but input has only 4"),
    (lambda: F.unfold(x, "3"), TypeError, r"kernel_size must be an int or a tuple of ints"),
    (lambda: F.fold(np.zeros((1, 12, 5)), (4, 4), 2), ValueError, r"input has 5 columns but output_size=\(4, 4\)"),
])
def test_bad_input_is_refused_with_a_clear_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_errors_come_before_any_work_and_leave_inputs_untouched():
    X = convolve.Tensor(np.ones((1, 3, 8, 8), np.float32), requires_grad=True)
    before = X.data.copy()
    with pytest.raises(ValueError):
        F.conv2d(X, np.zeros((8, 4, 3, 3), np.float32))
    np.testing.assert_array_equal(X.data, before)
    assert X.grad is None


def test_tensor_errors():
    with pytest.raises(TypeError, match="requires_grad=True needs a floating-point Tensor, but data has dtype int64"):
        convolve.Tensor(np.array([1, 2]), requires_grad=True)
    t = convolve.Tensor(np.ones(3), requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"grad has shape \(2,\) but the Tensor has shape \(3,\)"):
        t.backward(np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        convolve.Tensor(np.ones(3)).backward()


# --- one validation policy: TypeError for a wrong type, ValueError for a wrong value -------------

@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(x, w, groups=1.5), r"groups must be an int, but got 1.5"),
    (lambda: F.conv2d(x, w, stride=1.5), r"stride must be an int or a tuple of 2 ints, but got 1.5"),
    (lambda: F.conv2d(x, w, groups=True), r"groups must be an int, but got True"),
    (lambda: F.avg_pool2d(x, 2, count_include_pad="no"), r"count_include_pad must be True or False, but got 'no'"),
    (lambda: F.avg_pool2d(x, 2, ceil_mode=1), r"ceil_mode must be True or False, but got 1"),
    (lambda: F.max_pool2d(x, 2, return_indices="yes"), r"return_indices must be True or False, but got 'yes'"),
    (lambda: F.max_pool2d(x, 2, ceil_mode=None), r"ceil_mode must be True or False, but got None"),
    (lambda: F.avg_pool2d(x, 2, divisor_override=2.0), r"divisor_override must be an int, but got 2.0"),
    (lambda: convolve.nn.Conv2d(3, 8, 3, bias="no"), r"bias must be True or False, but got 'no'"),
    (lambda: convolve.nn.Linear(3, 8, bias=0), r"bias must be True or False, but got 0"),
    (lambda: convolve.nn.BatchNorm2d(3, affine="false"), r"affine must be True or False, but got 'false'"),
    (lambda: convolve.nn.BatchNorm2d(3, track_running_stats=1), r"track_running_stats must be True or False"),
    (lambda: convolve.nn.MaxPool2d(2, ceil_mode="no"), r"ceil_mode must be True or False, but got 'no'"),
    (lambda: convolve.nn.AvgPool2d(2, count_include_pad="no"), r"count_include_pad must be True or False"),
    (lambda: convolve.nn.ReLU(inplace="yes"), r"inplace must be True or False"),
    (lambda: convolve.nn.Conv2d(3, 8, 3, groups=1.0), r"groups must be an int, but got 1.0"),
    (lambda: convolve.data.DataLoader(convolve.data.ArrayDataset(np.zeros((2, 1, 2, 2), np.float32), np.zeros(2, int)),
                                      shuffle="yes"), r"shuffle must be True or False"),
])
def test_wrong_types_are_type_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(x, w, groups=-1), r"groups must be a positive int, but got -1"),
    (lambda: F.max_pool2d(x, 2, stride=(1, 0)), r"stride must be positive, but got \(1, 0\)"),
    (lambda: convolve.nn.Conv2d(3, 8, 3, groups=0), r"groups must be a positive int, but got 0"),
    (lambda: convolve.nn.init.seed(-1), r"seed must be a non-negative int, but got -1"),
])
def test_wrong_values_are_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_bools_and_ints_are_accepted():
    y = F.avg_pool2d(x, np.int64(2), count_include_pad=np.bool_(False), ceil_mode=np.True_)
    assert y.shape == (1, 3, 4, 4)
    assert F.conv2d(x, w, groups=np.int32(1)).shape == (1, 8, 4, 4)


def test_checks_still_run_after_the_same_shapes_passed_them():
    """conv remembers which plain argument sets passed its checks (a small conv's checks cost more than
    its arithmetic); a value that would be refused must still be refused after a good call of the
    same shapes, with the same message, whatever its type."""
    b = np.zeros(8, np.float32)
    good = F.conv2d(x, w, b, stride=1, padding=1)
    assert good.shape == (1, 8, 6, 6)
    np.testing.assert_array_equal(F.conv2d(x, w, b, stride=1, padding=1), good)  # the remembered path
    for call, exc, match in [
        (lambda: F.conv2d(x, w, b, stride=True, padding=1), TypeError, r"stride must be an int or a tuple of 2 ints, but got True"),
        (lambda: F.conv2d(x, w, b, stride=np.int64(0), padding=1), ValueError, r"stride must be positive"),
        (lambda: F.conv2d(x, w, b, stride=[1, 0], padding=1), ValueError, r"stride must be positive"),
        (lambda: F.conv2d(x, w, b, stride=1, padding=1.0), TypeError, r"padding"),
        (lambda: F.conv2d(x, w, b, stride=1, padding=-1), ValueError, r"padding must be non-negative"),
        (lambda: F.conv2d(x, w, b, stride=1, padding=1, groups=True), TypeError, r"groups must be an int"),
        (lambda: F.conv2d(x, w, b.astype(np.float64), stride=1, padding=1), TypeError, r"bias has dtype float64"),
        (lambda: F.conv2d(x, w, np.zeros(7, np.float32), stride=1, padding=1), ValueError, r"bias must have shape \(8,\)"),
        (lambda: F.conv2d(x, w, b, stride=1, padding=1, padding_mode="mirror"), ValueError, r"padding_mode must be one of"),
        (lambda: F.conv2d(x, w, b, stride=1, padding=1, data_format="nchw"), ValueError, r"data_format must be one of"),
        (lambda: F.conv2d(x.astype(np.int32), w, b, stride=1, padding=1), TypeError, r"input must be a float16"),
        (lambda: F.conv2d(convolve.Tensor(x[:, :2]), w, b, stride=1, padding=1), ValueError, r"input has 2 channels"),
    ]:
        with pytest.raises(exc, match=match):
            call()
    assert F.conv2d(convolve.Tensor(x), convolve.Tensor(w), stride=(1, 1), padding=((1, 1), (1, 1))).shape == good.shape
