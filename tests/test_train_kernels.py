"""The training-side kernels (pooling, batch norm, ReLU and their fused pairs) in both tiers.

Each runs with the compiled tier on and off and is compared with PyTorch on Hypothesis-generated
shapes, forward and gradient, float32 and float64. Max pooling ties are made on purpose (small
integer values): like PyTorch, the first maximum in the window wins.
"""

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import convolve.functional as F
from convolve import Tensor, engine_config, nn, no_grad
from convolve._engine import kernels

TIERS = [False] + ([True] if kernels.available() else [])
TOL = {np.float32: 2e-5, np.float64: 1e-10}


@contextlib.contextmanager
def tier(jit):
    before = engine_config.get_jit()
    engine_config.set_jit(jit)
    try:
        yield
    finally:
        engine_config.set_jit(before)


def close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    ours = ours.data if isinstance(ours, Tensor) else ours
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, what
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max(initial=0)), err_msg=what)


def run_both(ours, theirs, x, dtype, seed=0):
    """ours(Tensor x) vs theirs(torch x): forward, then the gradient of a random projection."""
    t = Tensor(x, requires_grad=True)
    tt = torch.tensor(x, requires_grad=True)
    out, tout = ours(t), theirs(tt)
    close(out, tout, dtype, "forward")
    r = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    (out * Tensor(r)).sum().backward()
    (tout * torch.from_numpy(r)).sum().backward()
    close(t.grad, tt.grad.numpy(), dtype, "input gradient")
    return out


def tied_input(rng, shape, dtype, nan=False):
    x = rng.integers(-2, 3, shape).astype(dtype)  # few distinct values: many ties
    if nan and x.size:
        x.flat[rng.integers(x.size)] = np.nan
    return x


pool_cases = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 3), "h": st.integers(1, 9), "w": st.integers(1, 9),
    "k": st.integers(1, 4), "s": st.integers(1, 3), "p": st.integers(0, 2), "d": st.integers(1, 2),
    "ceil": st.booleans(), "dtype": st.sampled_from([np.float32, np.float64]), "seed": st.integers(0, 2**16),
})


def _window_ok(c):
    """PyTorch's limits, and every window holds an input value (one made of padding only is
    undefined behaviour in PyTorch: its backward aborts)."""
    k, s, p, d = c["k"], c["s"], c["p"], c["d"]
    eff = d * (k - 1) + 1
    if p > k // 2:
        return False
    for n in (c["h"], c["w"]):
        span = n + 2 * p - eff
        if span < 0:
            return False
        o = (span + (s - 1 if c["ceil"] else 0)) // s + 1
        if c["ceil"] and (o - 1) * s >= n + p:
            o -= 1
        if any(all(not 0 <= i * s - p + j * d < n for j in range(k)) for i in range(o)):
            return False
    return True


@pytest.mark.parametrize("jit", TIERS)
@given(c=pool_cases.filter(_window_ok))
@settings(max_examples=30, deadline=None)
def test_max_pool2d_matches_pytorch_with_ties(jit, c):
    rng = np.random.default_rng(c["seed"])
    x = tied_input(rng, (c["n"], c["c"], c["h"], c["w"]), c["dtype"])
    kw = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], dilation=c["d"], ceil_mode=c["ceil"])
    with tier(jit):
        run_both(lambda t: F.max_pool2d(t, **kw), lambda t: torch.nn.functional.max_pool2d(t, **kw), x, c["dtype"])
        _, idx = F.max_pool2d(x, return_indices=True, **kw)
        _, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
        np.testing.assert_array_equal(idx, tidx.numpy())
        run_both(lambda t: F.relu_max_pool2d(t, **kw),
                 lambda t: torch.nn.functional.max_pool2d(torch.relu(t), **kw), x, c["dtype"])


@pytest.mark.parametrize("jit", TIERS)
@given(c=pool_cases.filter(_window_ok), nan=st.booleans())
@settings(max_examples=30, deadline=None)
def test_max_pool_without_gradient_matches_pytorch(jit, c, nan):
    """Under no_grad (and on arrays) the compiled tier keeps no picks: the values must not change."""
    rng = np.random.default_rng(c["seed"])
    x = tied_input(rng, (c["n"], c["c"], c["h"], c["w"]), c["dtype"], nan=nan)
    kw = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], dilation=c["d"], ceil_mode=c["ceil"])
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), **kw).numpy()
    threads = None
    if kernels.available():
        from convolve._engine.kernels import threads
    before = threads and threads.PARALLEL_MIN
    try:
        for threshold in (2**62, 0) if threads else (None,):  # the serial and the parallel compilation
            if threads:
                threads.PARALLEL_MIN = threshold
            with tier(jit), engine_config.options(threads=2):
                with no_grad():
                    y = F.max_pool2d(Tensor(x, requires_grad=True), **kw)
                    yr = F.relu_max_pool2d(Tensor(x, requires_grad=True), **kw)
                assert not y.requires_grad and not yr.requires_grad
                np.testing.assert_array_equal(y.data, want)
                np.testing.assert_array_equal(yr.data, np.maximum(want, 0))
                np.testing.assert_array_equal(F.max_pool1d(x[0], **kw), torch.nn.functional.max_pool1d(
                    torch.from_numpy(x[0]), **kw).numpy())
    finally:
        if threads:
            threads.PARALLEL_MIN = before


@pytest.mark.parametrize("jit", TIERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_place_equals_relu_in_both_compilations(jit, dtype):
    from convolve._engine import eltwise

    x = np.random.default_rng(7).standard_normal((3, 5, 130, 140)).astype(dtype)  # past PARALLEL_MIN
    x[0, 0, 0, :3] = [np.nan, -np.inf, np.inf]
    with tier(jit), engine_config.options(threads=2):
        for part in (x[:1, :1, :4, :4], x[0, :2], x):  # NumPy (tiny), serial and parallel compilations
            want, a = eltwise.relu(part), part.copy()
            assert eltwise.relu_(a) is a
            np.testing.assert_array_equal(a, want)
            np.testing.assert_array_equal(a, np.where(part < 0, 0, part))


@pytest.mark.parametrize("jit", TIERS)
@given(c=pool_cases.filter(_window_ok))
@settings(max_examples=20, deadline=None)
def test_max_pool1d_and_avg_pool_match_pytorch(jit, c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["n"], c["c"], c["h"], c["w"])).astype(c["dtype"])
    kw = dict(kernel_size=c["k"], stride=c["s"], padding=c["p"], ceil_mode=c["ceil"])
    with tier(jit):
        for include in (True, False):
            run_both(lambda t: F.avg_pool2d(t, count_include_pad=include, **kw),
                     lambda t: torch.nn.functional.avg_pool2d(t, count_include_pad=include, **kw), x, c["dtype"])
        x1 = tied_input(rng, (c["n"], c["c"], c["w"]), c["dtype"])
        kw1 = dict(kw, dilation=c["d"])
        run_both(lambda t: F.max_pool1d(t, **kw1), lambda t: torch.nn.functional.max_pool1d(t, **kw1), x1, c["dtype"])
        run_both(lambda t: F.avg_pool1d(t, **kw), lambda t: torch.nn.functional.avg_pool1d(t, **kw), x1, c["dtype"])


@pytest.mark.parametrize("jit", TIERS)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 2, 7, 9), (2, 2, 3, 6)])
def test_max_pool_nan_and_infinite_gradients_as_pytorch(jit, shape):
    rng = np.random.default_rng(1)
    x = tied_input(rng, shape, np.float64, nan=True)
    x.flat[rng.integers(x.size)] = -np.inf
    with tier(jit):
        for k, s in ((2, 2), (3, 1)):
            y, idx = F.max_pool2d(x, k, s, return_indices=True)
            ty, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, return_indices=True)
            np.testing.assert_array_equal(y, ty.numpy())
            np.testing.assert_array_equal(idx, tidx.numpy())
            for fn, tfn in ((F.max_pool2d, torch.nn.functional.max_pool2d),
                            (F.relu_max_pool2d, lambda t, k, s: torch.nn.functional.max_pool2d(torch.relu(t), k, s))):
                t = Tensor(x.copy(), requires_grad=True)
                tt = torch.tensor(x, requires_grad=True)
                out, tout = fn(t, k, s), tfn(tt, k, s)
                g = np.ones(out.shape)
                g.flat[0] = np.inf  # must reach only the picked input
                out.backward(g)
                tout.backward(torch.from_numpy(g))
                np.testing.assert_array_equal(t.grad, tt.grad.numpy())


@pytest.mark.parametrize("jit", TIERS)
@given(n=st.integers(2, 4), c=st.integers(1, 5), spatial=st.sampled_from([(), (7,), (5, 6), (2, 3, 4)]),
       dtype=st.sampled_from([np.float32, np.float64]), affine=st.booleans(), training=st.booleans(),
       relu=st.booleans(), seed=st.integers(0, 2**16), big=st.booleans())
@settings(max_examples=30, deadline=None)
def test_batch_norm_and_batch_norm_relu_match_pytorch(jit, n, c, spatial, dtype, affine, training, relu, seed, big):
    if big:  # past the compiled tier's size threshold
        spatial = spatial + (40, 30)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c) + spatial) * 3 + 1).astype(dtype)
    w = (rng.standard_normal(c) + 1).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    wt = Tensor(w, requires_grad=True) if affine else None
    bt = Tensor(b, requires_grad=True) if affine else None
    twt = torch.tensor(w, requires_grad=True) if affine else None
    tbt = torch.tensor(b, requires_grad=True) if affine else None
    ours = F.batch_norm_relu if relu else F.batch_norm
    act = lambda t: t  # noqa: E731
    with tier(jit):
        if relu:  # the ReLU's mask from our own unfused batch norm: at the kink float32 rounding may put
            # an output on either side of 0 in the two libraries (its gradient then differs by all of it)
            pre = F.batch_norm(x, rm.copy(), rv.copy(), w, b, training, 0.1, 1e-5)
            keep = torch.from_numpy((pre > 0).astype(dtype))
            act = lambda t: t * keep  # noqa: E731
        run_both(lambda t: ours(t, rm, rv, wt, bt, training, 0.1, 1e-5),
                 lambda t: act(torch.nn.functional.batch_norm(t, trm, trv, twt, tbt, training, 0.1, 1e-5)), x, dtype, seed)
    close(rm, trm.numpy(), dtype, "running_mean")
    close(rv, trv.numpy(), dtype, "running_var")
    if affine:
        close(wt.grad, twt.grad.numpy(), dtype, "weight gradient")
        close(bt.grad, tbt.grad.numpy(), dtype, "bias gradient")


@pytest.mark.parametrize("jit", TIERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_both_tiers_and_non_finite_gradients(jit, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50, 40)).astype(dtype)  # past the kernel threshold
    x[0, 0, :3] = [0.0, np.nan, -0.0]
    with tier(jit):
        t = Tensor(x, requires_grad=True)
        y = F.relu(t)
        tt = torch.tensor(x, requires_grad=True)
        np.testing.assert_array_equal(y.data, torch.relu(tt).detach().numpy())
        g = np.ones(x.shape, dtype)
        g[1, 0, :] = np.inf
        y.backward(g)
        torch.relu(tt).backward(torch.from_numpy(g))
        np.testing.assert_array_equal(t.grad, tt.grad.numpy())


@pytest.mark.parametrize("jit", TIERS)
def test_sequential_fuses_pairs_with_the_same_values_and_gradients(jit):
    """A CIFAR-shaped block: conv-BN-ReLU-conv-ReLU-MaxPool, against PyTorch, weights shared."""
    rng = np.random.default_rng(0)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    ours.double()
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten()).double()
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((5, 3, 8, 8))
    with tier(jit):
        run_both(ours, theirs, x, np.float64)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(p.grad, tp.grad.numpy(), np.float64, name)
    close(ours[1].running_var, theirs[1].running_var.numpy(), np.float64, "running_var")


def test_a_subclass_that_overrides_forward_is_not_fused():
    class Loud(nn.MaxPool2d):
        def forward(self, input):
            return super().forward(input) * 2

    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    out = nn.Sequential(nn.ReLU(), Loud(2))(x)
    np.testing.assert_array_equal(out, 2 * F.max_pool2d(np.maximum(x, 0), 2))


@pytest.mark.skipif(not kernels.available(), reason="numba cannot be imported here: only the NumPy tier runs")
@pytest.mark.parametrize("mode", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_launches_of_the_training_kernels(mode, dtype, monkeypatch):
    """Every pooling, batch norm and ReLU kernel through both of its compilations (`threads.pick`:
    the calling thread for small work, numba's threads for large), against PyTorch."""
    from convolve._engine.kernels import threads

    monkeypatch.setattr(threads, "PARALLEL_MIN", 0 if mode == "parallel" else 2**62)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 4, 9, 10)) * 2).astype(dtype)
    tf = torch.nn.functional
    cases = [
        (lambda t: F.max_pool2d(t, 2), lambda t: tf.max_pool2d(t, 2)),
        (lambda t: F.relu_max_pool2d(t, 2), lambda t: tf.max_pool2d(torch.relu(t), 2)),
        (lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: tf.max_pool2d(t, 3, 2, 1)),
        (lambda t: F.avg_pool2d(t, 3, 2, 1), lambda t: tf.avg_pool2d(t, 3, 2, 1)),
        (lambda t: F.relu(t), torch.relu),
        (lambda t: F.batch_norm(t, None, None, training=True), lambda t: tf.batch_norm(t, None, None, training=True)),
    ]
    with tier(True), engine_config.options(threads=2):
        for ours, theirs in cases:
            big = np.tile(x, (1, 1, 8, 8))  # past the elementwise kernels' size threshold
            run_both(ours, theirs, big, dtype)
