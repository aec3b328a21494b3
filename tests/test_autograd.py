"""Finite-difference checks (float64) of every Tensor op and of the conv ops' gradients."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convolve
import convolve.functional as F
from convolve import Tensor


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f at x (float64)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def check(op, *shapes, seed=0, positive=False, eps=1e-6, rtol=1e-6):
    """d sum(op(*xs) * r)/d x_i by autograd equals central differences, for every argument."""
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(0.5, 2.0, s) if positive else rng.standard_normal(s) for s in shapes]
    out = op(*[Tensor(x) for x in xs])
    r = rng.standard_normal(out.shape)
    ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
    (op(*ts) * r).sum().backward()
    for i, x in enumerate(xs):
        def f(xi, i=i):
            args = [Tensor(v) for v in xs]
            args[i] = Tensor(xi)
            return float(np.sum(op(*args).data * r))
        np.testing.assert_allclose(ts[i].grad, numeric_grad(f, x.copy(), eps), rtol=rtol, atol=1e-7, err_msg=f"arg {i}")


@pytest.mark.parametrize(
    "name,op,shapes,positive",
    [
        ("add broadcast", lambda a, b: a + b, [(3, 4), (4,)], False),
        ("sub", lambda a, b: a - b, [(3, 1), (1, 4)], False),
        ("rsub scalar", lambda a: 2.0 - a, [(3,)], False),
        ("mul broadcast", lambda a, b: a * b, [(2, 3, 4), (3, 1)], False),
        ("div", lambda a, b: a / b, [(3, 4), (3, 4)], True),
        ("rdiv", lambda a: 1.5 / a, [(5,)], True),
        ("neg", lambda a: -a, [(4,)], False),
        ("pow", lambda a: a**3, [(4,)], False),
        ("matmul 2d", lambda a, b: a @ b, [(3, 4), (4, 2)], False),
        ("matmul batched", lambda a, b: a @ b, [(2, 3, 4), (4, 5)], False),
        ("matmul vec", lambda a, b: a @ b, [(3, 4), (4,)], False),
        ("vec matmul", lambda a, b: a @ b, [(4,), (4, 2)], False),
        ("sum axis", lambda a: a.sum(axis=1), [(3, 4, 2)], False),
        ("sum keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [(3, 4, 2)], False),
        ("mean", lambda a: a.mean(axis=0), [(3, 4)], False),
        ("var", lambda a: a.var(axis=(0, 2)), [(3, 4, 2)], False),
        ("max axis", lambda a: a.max(axis=1), [(3, 5)], False),
        ("exp", lambda a: a.exp(), [(4,)], False),
        ("log", lambda a: a.log(), [(4,)], True),
        ("sqrt", lambda a: a.sqrt(), [(4,)], True),
        ("tanh", lambda a: a.tanh(), [(4,)], False),
        ("sigmoid", lambda a: a.sigmoid(), [(6,)], False),
        ("relu", lambda a: a.relu(), [(6,)], False),
        ("reshape", lambda a: a.reshape(4, 3) * Tensor(np.arange(12.0).reshape(4, 3)), [(3, 4)], False),
        ("flatten", lambda a: a.flatten(1), [(2, 3, 4)], False),
        ("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 4)], False),
        ("transpose", lambda a: a.transpose(0, 2), [(2, 3, 4)], False),
        ("getitem slice", lambda a: a[1:, ::2], [(3, 4)], False),
        ("getitem repeated fancy", lambda a: a[np.array([0, 2, 0])], [(3, 2)], False),
        ("abs", lambda a: a.abs(), [(5,)], True),
    ],
)
def test_tensor_op_gradients(name, op, shapes, positive):
    check(op, *shapes, positive=positive)


def test_gradients_accumulate_and_graphs_share_nodes():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x
    (y + y).sum().backward()  # y used twice: gradient 2 * 2x
    np.testing.assert_allclose(x.grad, [4.0, 8.0])
    (x * 3.0).sum().backward()  # accumulates like PyTorch
    np.testing.assert_allclose(x.grad, [7.0, 11.0])


def test_backward_needs_grad_for_non_scalar_and_no_grad_records_nothing():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match="grad must be given"):
        (x * 2).backward()
    with convolve.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    z = F.conv2d(np.ones((1, 1, 3, 3)), Tensor(np.ones((1, 1, 2, 2))))  # Tensor without grad: Tensor out, no tape
    assert isinstance(z, Tensor) and not z.requires_grad


# Conv is bilinear: perturbing one argument at a time with a large step is exact, so the check is tight.
@given(
    nd=st.sampled_from([1, 2, 3]),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 1),
    groups=st.sampled_from([1, 2]),
    transposed=st.booleans(),
)
@settings(max_examples=25, deadline=None)
def test_conv_gradients_by_finite_differences(nd, stride, dilation, padding, groups, transposed):
    size = (6, 5, 5)[:nd]
    k = (2, 3, 2)[:nd]
    if transposed:
        op = getattr(F, f"conv_transpose{nd}d")
        shapes = [(1, 2 * groups) + size, (2 * groups, 1) + k, (groups,)]
        kw = dict(stride=stride, padding=padding, groups=groups, dilation=dilation, output_padding=stride - 1)
        if ((np.array(size) - 1) * stride + dilation * (np.array(k) - 1) + 1 - 2 * padding <= 0).any():
            return
    else:
        op = getattr(F, f"conv{nd}d")
        shapes = [(2, 2 * groups) + size, (groups, 2) + k, (groups,)]
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check(lambda x, w, b: op(x, w, b, **kw), *shapes, eps=1.0, rtol=1e-9)


@pytest.mark.parametrize("op,kw", [
    (F.max_pool2d, dict(kernel_size=2, stride=1, padding=1)),
    (F.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (F.avg_pool3d, dict(kernel_size=2)),
    (lambda x, **kw: F.pad(x, (1, 2, 2, 0), mode="reflect"), {}),
    (lambda x, **kw: F.unfold(x, (2, 2), stride=2, padding=1), {}),
])
def test_window_op_gradients_by_finite_differences(op, kw):
    shape = (1, 2, 4, 5, 3) if op is F.avg_pool3d else (1, 2, 4, 5)
    check(lambda x: op(x, **kw), shape)
