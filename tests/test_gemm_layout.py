"""The GEMM path's packing: im2col and its adjoint `fold_windows`, per tap and through rows (`by_rows`).

Both must equal their definitions exactly (they only copy, or add in another order) on Hypothesis
shapes, 1-D to 3-D, strides and dilations, both column layouts; and gemm must equal the reference
on layers that take the row path with stride 2 (the 7x7 stride-2 stem's shape class).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from convolve._engine import gemm
from convolve._engine.windows import by_rows, fold_windows, tap_slices, windows
from test_engine import _check


@st.composite
def packings(draw, k_max=5):
    """(x, kernel, stride, dilation): any dimension, kernels up to k_max (stride-2 row paths too)."""
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, k_max if nd < 3 else 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 5 if nd < 3 else 2)) for k, d in zip(kernel, dilation))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + spatial
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape)
    return x, kernel, stride, dilation


@given(case=packings(), batch_inner=st.booleans())
@settings(max_examples=60, deadline=None)
def test_im2col_equals_the_window_view(case, batch_inner):
    x, kernel, stride, dilation = case
    nd = len(kernel)
    cols, outs = gemm.im2col(x, kernel, stride, dilation, batch_inner=batch_inner)
    win = windows(x, kernel, stride, dilation)  # (N, C, *O, *K)
    expect = np.moveaxis(win, tuple(range(2 + nd, 2 + 2 * nd)), tuple(range(2, 2 + nd)))  # (N, C, *K, *O)
    if batch_inner:
        expect = np.moveaxis(expect, 0, 1 + nd)  # (C, *K, N, *O)
    assert outs == win.shape[2 : 2 + nd]
    np.testing.assert_array_equal(cols, expect)


@given(case=packings(), lead=st.sampled_from([(), (2,), (2, 3)]))
@settings(max_examples=60, deadline=None)
def test_fold_windows_adds_every_window_back(case, lead):
    x, kernel, stride, dilation = case
    nd, spatial = len(kernel), x.shape[2:]
    outs = windows(x, kernel, stride, dilation).shape[2 : 2 + nd]
    cols = np.random.default_rng(1).standard_normal(lead + kernel + outs)
    expect = np.zeros(lead + spatial)
    for k in np.ndindex(*kernel):  # the definition, one tap at a time
        expect[(Ellipsis,) + tap_slices(k, stride, dilation, outs)] += cols[(Ellipsis,) + k + (slice(None),) * nd]
    np.testing.assert_allclose(fold_windows(cols, spatial, stride, dilation), expect, rtol=1e-13, atol=1e-13)
    base = np.random.default_rng(2).standard_normal(lead + spatial)  # `out=` adds into what is there
    out = base.copy()
    assert fold_windows(cols, spatial, stride, dilation, out=out) is out
    np.testing.assert_allclose(out, base + expect, rtol=1e-13, atol=1e-13)


def test_row_path_is_taken_where_it_pays():
    assert by_rows((3, 3), (1, 1)) and by_rows((7, 7), (2, 2)) and by_rows((3, 3, 3), (1, 1, 1))
    assert not by_rows((3, 3), (2, 2)) and not by_rows((5,), (1,)) and not by_rows((1, 3), (1, 1))


@given(seed=st.integers(0, 2**16), nd=st.sampled_from([2, 3]), k=st.integers(4, 5), N=st.integers(1, 3),
       dtype=st.sampled_from([np.float64, np.float32]), blocked=st.booleans())
@settings(max_examples=20, deadline=None)
def test_gemm_on_strided_row_path_layers_equals_the_reference(seed, nd, k, N, dtype, blocked):
    r = np.random.default_rng(seed)
    kernel, stride = (k,) * nd, (2,) * nd
    spatial = tuple(int(s) for s in r.integers(k, k + (6 if nd == 2 else 2), nd))
    x = r.standard_normal((N, 3) + spatial)
    w = r.standard_normal((4, 3) + kernel)
    b = r.standard_normal(4)
    saved = gemm.BLOCK_BYTES
    gemm.BLOCK_BYTES = 64 if blocked else saved  # tiny blocks: the per-row-block path
    try:
        _check("gemm", x, w, b, stride, (1,) * nd, 1, dtype)
    finally:
        gemm.BLOCK_BYTES = saved
