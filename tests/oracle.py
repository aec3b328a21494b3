"""The one PyTorch comparison helper: same seeded data through convolve and PyTorch.

Compares output shape, dtype and values, then backpropagates the same random output gradient
through both and compares every input gradient.
"""

from __future__ import annotations

import numpy as np
import torch

import convolve
import convolve.functional as F

TOL = {np.float64: 1e-10, np.float32: 1e-5}


def random_inputs(shapes: dict, dtype=np.float64, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {k: (None if s is None else rng.standard_normal(s).astype(dtype)) for k, s in shapes.items()}


def assert_close(ours, theirs, dtype, what):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch {theirs.shape}"
    tol = TOL[np.dtype(dtype).type]
    scale = max(1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * scale, err_msg=what)


def compare(op: str, arrays: dict, kwargs=None, *, ours_kwargs=None, torch_op=None, torch_kwargs=None,
            torch_pre=None, grad=True, seed=1):
    """Run ``F.<op>(**arrays, **kwargs)`` and the PyTorch equivalent; compare forward and gradients.

    `arrays` maps argument names (input, weight, bias) to arrays or None. `torch_pre` may transform
    the torch input tensor first (e.g. an explicit F.pad the torch op lacks); `torch_op` defaults to
    ``torch.nn.functional.<op>``. Returns our output array.
    """
    kwargs = kwargs or {}
    ours_fn = getattr(F, op)
    torch_fn = torch_op or getattr(torch.nn.functional, op)
    dtype = next(a.dtype for a in arrays.values() if a is not None)

    tensors = {k: (None if a is None else convolve.Tensor(a.copy(), requires_grad=grad)) for k, a in arrays.items()}
    y = ours_fn(**tensors, **kwargs, **(ours_kwargs or {}))
    y_plain = ours_fn(**{k: (None if a is None else a.copy()) for k, a in arrays.items()}, **kwargs, **(ours_kwargs or {}))
    assert isinstance(y, convolve.Tensor) and isinstance(y_plain, np.ndarray)
    np.testing.assert_array_equal(y.data, y_plain)

    ts = {k: (None if a is None else torch.tensor(a, requires_grad=grad)) for k, a in arrays.items()}
    t_args = dict(ts)
    if torch_pre is not None:
        t_args["input"] = torch_pre(t_args["input"])
    ty = torch_fn(**t_args, **(torch_kwargs if torch_kwargs is not None else kwargs))
    assert y.dtype == dtype, f"output dtype {y.dtype} != input dtype {dtype}"
    assert_close(y.data, ty.detach().numpy(), dtype, f"{op} forward")
    if grad:
        gy = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
        y.backward(gy)
        ty.backward(torch.tensor(gy))
        for k, t in ts.items():
            if t is not None:
                assert tensors[k].grad is not None, f"no gradient for {k}"
                assert_close(tensors[k].grad, t.grad.numpy(), dtype, f"{op} d/d{k}")
    return y.data


def draw_channels(draw, depthwise, c_max=4, cg_max=3, n_max=3):
    """(groups, C_in per group, C_out, N) of a random convolution, drawn with Hypothesis's `draw`:
    depthwise (one input channel per group, a multiplier of 1 or 2) or 1-2 groups."""
    from hypothesis import strategies as st

    if depthwise:
        C = draw(st.integers(1, c_max))
        groups, Cg, O = C, 1, C * draw(st.integers(1, 2))
    else:
        groups = draw(st.sampled_from([1, 2]))
        Cg, O = draw(st.integers(1, cg_max)), groups * draw(st.integers(1, 3))
    return groups, Cg, O, draw(st.integers(1, n_max))
