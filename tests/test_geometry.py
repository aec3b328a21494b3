"""One set of shape rules: explain and the functional API accept and refuse the same layers and
agree on every output size (Hypothesis over generated specs), because both ask convolve._geometry."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convolve.functional as F
from convolve import _geometry
from convolve.explain import explain
from convolve.explain import shapes


def _pair(v):
    return f"{v[0]}x{v[1]}"


@st.composite
def layers(draw):
    """(spec text, functional call on an (N, C, H, W) array, input (C, H, W))."""
    kind = draw(st.sampled_from(["conv", "maxpool", "avgpool"]))
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    two = lambda lo, hi: (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))  # noqa: E731
    kernel, stride = two(1, 5), two(1, 3)
    dilation = two(1, 3) if kind != "avgpool" else (1, 1)
    parts = [kind] + ([str(draw(st.integers(1, 4)))] if kind == "conv" else []) + [_pair(kernel),
                                                                                  f"stride={_pair(stride)}"]
    if kind == "conv" and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid"]))
        parts.append(f"pad={padding}")
    else:
        padding = two(0, 3)
        parts.append(f"pad={_pair(padding)}")
    if dilation != (1, 1):
        parts.append(f"dilation={_pair(dilation)}")
    ceil = kind != "conv" and draw(st.booleans())
    if ceil:
        parts.append("ceil=yes")
    spec = " ".join(parts)
    if kind == "conv":
        out = int(parts[1])
        call = lambda x: F.conv2d(x, np.zeros((out, c) + kernel), stride=stride, padding=padding,  # noqa: E731
                                  dilation=dilation)
    elif kind == "maxpool":
        call = lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil)  # noqa: E731
    else:
        call = lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil)  # noqa: E731
    return spec, call, (c, h, w)


@given(layers())
@settings(max_examples=300, deadline=None)
def test_explain_and_functional_agree_on_accepting_and_on_shapes(layer):
    spec, call, chw = layer
    steps = explain(chw, [spec]).steps
    try:
        y = call(np.zeros((1,) + chw))
    except ValueError as refused:
        assert steps[0].problem is not None, f"functional refuses {spec!r} on {chw} ({refused}); explain accepts"
    else:
        assert steps[0].problem is None, f"explain refuses {spec!r} on {chw}: {steps[0].problem}"
        assert steps[0].out_shape == y.shape[1:], spec


def test_maxpool_padding_beyond_half_the_kernel_is_refused_by_both():
    """The case that showed two rule sets: dilation made explain allow pad=2 for a 3-wide window."""
    with pytest.raises(ValueError, match=r"padding should be at most half of the kernel size \(1\), but got padding=2"):
        F.max_pool2d(np.zeros((1, 1, 9, 9)), 3, padding=2, dilation=2)
    step = explain((1, 9, 9), ["maxpool 3 dilation=2 pad=2"]).steps[0]
    assert step.out_shape is None
    assert step.problem.startswith("padding 2 is more than half the 3-wide pooling window (1 at most")


def test_the_rules_are_written_once():
    """explain and functional take their rules from convolve._geometry; explain's control flow no
    longer searches its own messages for words."""
    import convolve.functional.conv as conv
    import convolve.functional.pool as pool

    src = inspect.getsource(shapes)
    assert "functional.pool" not in src and "not in r for r in reasons" not in src
    assert shapes.conv_output is conv.conv_output is _geometry.conv_output
    assert shapes.pool_output is pool.pool_output is _geometry.pool_output


def test_geometry_errors_carry_the_rule_and_its_numbers():
    with pytest.raises(_geometry.GeometryError) as info:
        _geometry.conv_output((4, 9), (3, 11), (1, 1), (1, 1), ((0, 0), (0, 0)))
    assert (info.value.rule, info.value.dim, info.value.values["span"]) == ("kernel_too_large", 1, 11)
    assert isinstance(info.value, ValueError)
    assert _geometry.transposed_output((5,), (3,), (2,), (1,), ((1, 1),), (1,)) == ((12,), ((1, 11),))
