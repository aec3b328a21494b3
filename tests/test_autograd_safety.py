"""Autograd as PyTorch keeps it safe: graphs freed after backward, version counters for in-place
changes, and every Tensor method checked forward and backward against PyTorch."""

import gc
import weakref

import numpy as np
import pytest
import torch

import convolve
import convolve.functional as F
from convolve import Tensor, autograd, optim
from convolve.nn import Linear


def test_second_backward_raises_unless_retain_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])  # the failed call wrote nothing

    tx = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    z, tz = (x * x * x).sum(), (tx * tx * tx).sum()
    z.backward(retain_graph=True)
    tz.backward(retain_graph=True)
    z.backward()
    tz.backward()
    np.testing.assert_allclose(x.grad, np.array([2.0, 4.0]) + tx.grad.numpy())  # 2x + 2 * 3x^2
    with pytest.raises(RuntimeError, match="freed"):
        z.backward()


def test_branch_through_a_freed_part_raises_before_writing():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x.exp()
    a, b = (h * 2).sum(), (h * 3).sum()
    a.backward()
    before = x.grad.copy()
    with pytest.raises(RuntimeError, match="freed"):
        b.backward()
    np.testing.assert_array_equal(x.grad, before)


def test_retain_graph_must_be_bool():
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="retain_graph must be a bool"):
        (x * 2).sum().backward(retain_graph="yes")


def test_backward_releases_saved_arrays():
    x = Tensor(np.ones(3), requires_grad=True)
    saved = np.arange(3.0)
    ref = weakref.ref(saved)
    y = autograd.record(x.data * saved, (x,), lambda g, s=saved: (g * s,))
    del saved
    y.sum().backward(retain_graph=True)
    gc.collect()
    assert ref() is not None  # kept for another backward
    y.sum().backward()
    gc.collect()
    assert ref() is None  # freed with the graph
    np.testing.assert_allclose(x.grad, 2 * np.arange(3.0))


@pytest.mark.parametrize("change", ["augmented", "assign"])
def test_changing_saved_data_in_place_raises(change):
    w = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    x = Tensor(np.array([0.5, 0.5, 0.5]))  # saved by mul even though it needs no grad
    loss = (w * x).sum()
    if change == "augmented":
        x.data *= 2
    else:
        x.data = x.data * 2
    with pytest.raises(RuntimeError, match="modified in place.*version 1.*version 0"):
        loss.backward()
    assert w.grad is None


def test_changing_a_saved_output_raises_but_an_unsaved_one_does_not():
    x = Tensor(np.array([0.1, 0.2]), requires_grad=True)
    y = x.exp()  # exp's backward reads its output
    y.data += 1
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()
    z = x * 2  # mul's backward does not read its output
    z.data += 1
    z.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_optimiser_steps_between_iterations_are_fine():
    convolve.nn.init.seed(0)
    layer = Linear(3, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    x = np.ones((4, 3), np.float32)
    for _ in range(3):
        opt.zero_grad()
        F.relu(layer(Tensor(x))).sum().backward()
        opt.step()
    # but a step between forward and backward invalidates the graph, as in PyTorch
    loss = layer(Tensor(x)).sum()
    layer.weight.data -= 0.1
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_transpose_two_dims_swaps_them_on_2d():
    a = np.arange(6.0).reshape(2, 3)
    t = Tensor(a, requires_grad=True)
    out = t.transpose(0, 1)
    np.testing.assert_array_equal(out.data, torch.from_numpy(a).transpose(0, 1).numpy())
    np.testing.assert_array_equal(Tensor(a).transpose(-1, 0).data, a.T)
    with pytest.raises(IndexError, match="out of range"):
        t.transpose(0, 2)
    with pytest.raises(ValueError, match="permutation"):
        t.permute(0, 0)


# Every Tensor method, forward and gradient, against PyTorch (float64, tight).
METHODS = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (4,)]),
    ("radd scalar", lambda a: 2.5 + a, lambda a: 2.5 + a, [(3,)]),
    ("sub", lambda a, b: a - b, lambda a, b: a - b, [(3, 1), (1, 4)]),
    ("rsub", lambda a: 2.0 - a, lambda a: 2.0 - a, [(3,)]),
    ("mul", lambda a, b: a * b, lambda a, b: a * b, [(2, 3, 4), (3, 1)]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (3, 4)]),
    ("rdiv", lambda a: 1.5 / a, lambda a: 1.5 / a, [(5,)]),
    ("neg", lambda a: -a, lambda a: -a, [(4,)]),
    ("pow", lambda a: a**3, lambda a: a**3, [(4,)]),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 2)]),
    ("matmul batched", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    ("matmul vec", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)]),
    ("vec matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4, 2)]),
    ("exp", lambda a: a.exp(), lambda a: a.exp(), [(4,)]),
    ("log", lambda a: a.abs().log(), lambda a: a.abs().log(), [(4,)]),
    ("sqrt", lambda a: a.abs().sqrt(), lambda a: a.abs().sqrt(), [(4,)]),
    ("abs", lambda a: a.abs(), lambda a: a.abs(), [(5,)]),
    ("abs builtin", lambda a: abs(a), lambda a: abs(a), [(5,)]),
    ("tanh", lambda a: a.tanh(), lambda a: a.tanh(), [(6,)]),
    ("sigmoid", lambda a: a.sigmoid(), lambda a: a.sigmoid(), [(6,)]),
    ("relu", lambda a: a.relu(), lambda a: a.relu(), [(2, 3)]),
    ("clip", lambda a: a.clip(-0.5, 0.7), lambda a: a.clamp(-0.5, 0.7), [(8,)]),
    ("sum", lambda a: a.sum(), lambda a: a.sum(), [(3, 4)]),
    ("sum axis", lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [(3, 4, 2)]),
    ("sum keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), lambda a: a.sum(dim=(0, 2), keepdim=True), [(3, 4, 2)]),
    ("mean", lambda a: a.mean(axis=0), lambda a: a.mean(dim=0), [(3, 4)]),
    ("var", lambda a: a.var(axis=(0, 2)), lambda a: a.var(dim=(0, 2), unbiased=False), [(3, 4, 2)]),
    ("var corrected", lambda a: a.var(axis=1, correction=1), lambda a: a.var(dim=1, unbiased=True), [(3, 4)]),
    ("max axis", lambda a: a.max(axis=1), lambda a: a.amax(dim=1), [(3, 5)]),
    ("max", lambda a: a.max(), lambda a: a.max(), [(3, 5)]),
    ("reshape", lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), [(3, 4)]),
    ("view tuple", lambda a: a.view((2, 6)), lambda a: a.view((2, 6)), [(3, 4)]),
    ("flatten", lambda a: a.flatten(1), lambda a: a.flatten(1), [(2, 3, 4)]),
    ("transpose 2d", lambda a: a.transpose(0, 1), lambda a: a.transpose(0, 1), [(3, 4)]),
    ("transpose 2d swapped", lambda a: a.transpose(1, 0), lambda a: a.transpose(1, 0), [(3, 4)]),
    ("transpose 3d", lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    ("transpose negative", lambda a: a.transpose(-1, -3), lambda a: a.transpose(-1, -3), [(2, 3, 4)]),
    ("T", lambda a: a.T, lambda a: a.T, [(3, 4)]),
    ("permute", lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    ("getitem", lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 4)]),
    ("getitem fancy", lambda a: a[np.array([0, 2, 0])], lambda a: a[torch.tensor([0, 2, 0])], [(3, 2)]),
    ("astype", lambda a: a.astype(np.float32) * 2, lambda a: a.float() * 2, [(3,)]),
]


@pytest.mark.parametrize("name,ours,theirs,shapes", METHODS, ids=[m[0] for m in METHODS])
def test_tensor_methods_match_pytorch(name, ours, theirs, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in shapes]
    ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
    tt = [torch.tensor(x, requires_grad=True) for x in xs]
    out, tout = ours(*ts), theirs(*tt)
    expected = tout.detach().numpy()
    assert out.shape == expected.shape, name
    tol = 1e-6 if expected.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.data, expected, rtol=tol, atol=tol)
    r = rng.standard_normal(out.shape)
    (out * Tensor(r.astype(out.dtype))).sum().backward()
    (tout * torch.tensor(r, dtype=tout.dtype)).sum().backward()
    for t, tt_ in zip(ts, tt):
        np.testing.assert_allclose(t.grad, tt_.grad.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)


def test_comparisons_match_pytorch():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    ta, tb = torch.tensor(a), torch.tensor(b)
    for op in ("__lt__", "__le__", "__gt__", "__ge__"):
        np.testing.assert_array_equal(getattr(Tensor(a), op)(Tensor(b)), getattr(ta, op)(tb).numpy())


def test_autograd_is_the_bottom_of_the_package():
    import ast
    import pathlib

    tree = ast.parse(pathlib.Path(autograd.__file__).read_text())
    relative = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    absolute = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert relative and all(m.startswith("_engine") for m in relative), relative  # arrays only, below it
    assert not [m for m in absolute if m.split(".")[0] == "convolve"], absolute
    assert F.relu is not autograd.relu and F.tanh.__module__ == "convolve.functional.activation"


def test_no_grad_is_per_thread_and_survives_interleaved_blocks():
    """Block 1 enters no_grad, block 2 enters, block 1 leaves, block 2 leaves (as dask workers may):
    with one global flag, block 2 would then record and grad mode would stay off everywhere."""
    import threading

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with convolve.no_grad():
            first_in.set()
            second_in.wait()
        first_out.set()

    def second():
        first_in.wait()
        with convolve.no_grad():
            second_in.set()
            first_out.wait()
            seen["inside"] = autograd.is_grad_enabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == {"inside": False}
    assert autograd.is_grad_enabled()
    assert (Tensor(np.ones(2), requires_grad=True) * 2).requires_grad
