"""Optimisers and schedules against torch.optim: updates, state_dict round trips, errors."""

import math

import numpy as np
import pytest
import torch

import convolve.optim as optim
from convolve.nn import Parameter
from oracle import assert_close

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]


def _pair(dtype, seed=0):
    """The same parameters in convolve and torch."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    return [Parameter(v.copy()) for v in values], [torch.tensor(v, requires_grad=True) for v in values]


def _grads(dtype, step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _run(ours, theirs, params, tparams, dtype, steps, start=0):
    for step in range(start, start + steps):
        for p, tp, g in zip(params, tparams, _grads(dtype, step)):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        ours.step()
        theirs.step()
        for i, (p, tp) in enumerate(zip(params, tparams)):
            assert p.data.dtype == dtype
            assert_close(p.data, tp.detach().numpy(), dtype, f"param {i} after step {step}")


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=0.02, maximize=True)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kw", CONFIGS)
def test_updates_match_torch(name, kw, dtype):
    params, tparams = _pair(dtype)
    _run(getattr(optim, name)(params, **kw), getattr(torch.optim, name)(tparams, **kw), params, tparams, dtype, 6)


@pytest.mark.parametrize("name, kw", CONFIGS)
def test_state_dict_round_trip_continues_identically(name, kw):
    params, tparams = _pair(np.float64)
    opt, topt = getattr(optim, name)(params, **kw), getattr(torch.optim, name)(tparams, **kw)
    _run(opt, topt, params, tparams, np.float64, 3)
    saved, saved_values = opt.state_dict(), [p.data.copy() for p in params]
    # keep stepping the original (the saved state must not change with it)
    _run(opt, topt, params, tparams, np.float64, 2, start=3)
    reference = [p.data.copy() for p in params]
    # a fresh optimiser over fresh parameters, restored, continues exactly like the original
    fresh = [Parameter(v.copy()) for v in saved_values]
    opt2 = getattr(optim, name)(fresh, lr=123.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kw["lr"]
    for step in range(3, 5):
        for p, g in zip(fresh, _grads(np.float64, step)):
            p.grad = g.copy()
        opt2.step()
    for a, b in zip(fresh, reference):
        np.testing.assert_array_equal(a.data, b)


def test_param_groups_and_zero_grad():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    ta, tb = torch.ones(3, dtype=torch.float64, requires_grad=True), torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    topt = torch.optim.SGD([{"params": [ta]}, {"params": [tb], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    for _ in range(3):
        a.grad, b.grad = np.full(3, 2.0), np.full(2, -1.0)
        ta.grad, tb.grad = torch.full((3,), 2.0, dtype=torch.float64), torch.full((2,), -1.0, dtype=torch.float64)
        opt.step()
        topt.step()
    np.testing.assert_allclose(a.data, ta.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-12)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    a.grad = np.ones(3)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, np.zeros(3))
    before = a.data.copy()
    opt.step()  # zero gradient, no momentum in group 0: unchanged
    np.testing.assert_array_equal(a.data, before)


def test_parameters_without_grad_are_skipped():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = optim.Adam([p, q], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(q.data, np.ones(2))
    assert not np.array_equal(p.data, np.ones(2))


def _sched_pair(kind, kw, last_epoch_steps=0):
    p, tp = Parameter(np.zeros(1)), torch.zeros(1, requires_grad=True)
    opt, topt = optim.SGD([p], lr=0.5), torch.optim.SGD([tp], lr=0.5)
    return opt, topt, getattr(optim, kind)(opt, **kw), getattr(torch.optim.lr_scheduler, kind)(topt, **kw)


@pytest.mark.parametrize("kind, kw", [
    ("StepLR", dict(step_size=3)),
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),  # runs past T_max: periodic, as torch
])
def test_schedules_match_torch(kind, kw):
    opt, topt, s, ts = _sched_pair(kind, kw)
    for epoch in range(25):
        assert math.isclose(s.get_last_lr()[0], ts.get_last_lr()[0], rel_tol=1e-12, abs_tol=1e-15), epoch
        assert math.isclose(opt.param_groups[0]["lr"], topt.param_groups[0]["lr"], rel_tol=1e-12, abs_tol=1e-15)
        opt.step()
        topt.step()
        s.step()
        ts.step()


def test_schedule_state_dict_resumes():
    opt, _, s, _ = _sched_pair("CosineAnnealingLR", dict(T_max=7))
    for _ in range(3):
        s.step()
    saved_sched, saved_opt = s.state_dict(), opt.state_dict()
    expected = []
    for _ in range(5):
        s.step()
        expected.append(s.get_last_lr()[0])
    p = Parameter(np.zeros(1))
    opt2 = optim.SGD([p], lr=0.5)
    s2 = optim.CosineAnnealingLR(opt2, T_max=7)
    opt2.load_state_dict(saved_opt)
    s2.load_state_dict(saved_sched)
    got = []
    for _ in range(5):
        s2.step()
        got.append(s2.get_last_lr()[0])
    assert got == expected


@pytest.mark.parametrize("call, exc, match", [
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=-1), ValueError, "lr must be a number >= 0"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=0.1, momentum=-0.5), ValueError, "momentum must be"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=0.1, nesterov=True), ValueError, "nesterov momentum requires"),
    (lambda: optim.Adam([Parameter(np.ones(1))], betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be a number in \[0.0, 1.0\)"),
    (lambda: optim.Adam([Parameter(np.ones(1))], eps=-1e-8), ValueError, "eps must be"),
    (lambda: optim.Adam([]), ValueError, "empty parameter list"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr="fast"), TypeError, "lr must be a number, but got 'fast'"),
    (lambda: optim.Adam([Parameter(np.ones(1))], eps=True), TypeError, "eps must be a number"),
    (lambda: optim.SGD([Parameter(np.ones(1))], lr=float("nan")), ValueError, "lr must be a number >= 0"),
    (lambda: optim.Adam(Parameter(np.ones(1))), TypeError, "iterable of Parameters"),
    (lambda: optim.Adam([np.ones(1)]), TypeError, r"params\[0\] is ndarray"),
    (lambda: optim.SGD([{"params": [Parameter(np.ones(1))], "betas": 1}]), ValueError, "unknown option"),
    (lambda: optim.StepLR(optim.SGD([Parameter(np.ones(1))]), step_size=0), ValueError, "step_size must be a positive int"),
    (lambda: optim.CosineAnnealingLR(optim.SGD([Parameter(np.ones(1))]), T_max=0), ValueError, "T_max must be"),
    (lambda: optim.StepLR(object(), step_size=1), TypeError, "optimizer must be"),
])
def test_optimizer_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_shared_parameter_in_two_groups_is_refused():
    p = Parameter(np.ones(1))
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_load_state_dict_checks_before_changing():
    p = Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(2)
    opt.step()
    other = optim.SGD([Parameter(np.ones(3)), Parameter(np.ones(1))], lr=0.2)
    with pytest.raises(ValueError, match="has 1 parameters in state_dict but 2 here"):
        other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.2
    wrong = optim.SGD([Parameter(np.ones(3))], lr=0.2, momentum=0.9)
    with pytest.raises(ValueError, match=r"has shape \(2,\), but the parameter has \(3,\)"):
        wrong.load_state_dict(opt.state_dict())
    assert wrong.state == {} and wrong.param_groups[0]["lr"] == 0.2


def test_schedule_load_state_dict_checks_its_input():
    opt, _, s, _ = _sched_pair("StepLR", dict(step_size=2))
    with pytest.raises(TypeError, match="LRScheduler.state_dict"):
        s.load_state_dict({"lr": 1})
    with pytest.raises(ValueError, match="2 learning rates but the optimizer has 1"):
        s.load_state_dict({**s.state_dict(), "base_lrs": [0.1, 0.2]})
