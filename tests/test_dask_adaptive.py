"""Adaptive pooling on dask arrays: lazy, blockwise, the same numbers as in memory."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
import dask  # noqa: E402

import convolve.functional as F  # noqa: E402
from convolve.dask._adaptive import adaptive_blocks  # noqa: E402

rng = np.random.default_rng(3)


def _check(fn, x, chunks, *args, exact=False):
    want, lazy = fn(x, *args), fn(da.from_array(x, chunks=chunks), *args)
    if not isinstance(want, tuple):
        want, lazy = (want,), (lazy,)
    for got, w, lz in zip(dask.compute(*lazy, scheduler="sync"), want, lazy):
        assert isinstance(lz, da.Array) and lz.shape == w.shape and lz.dtype == w.dtype
        assert got.shape == w.shape and got.dtype == w.dtype
        if exact:
            np.testing.assert_array_equal(got, w)
        else:  # contractions with matrices of another size: BLAS may sum in another order
            tol = 1e-12 if w.dtype == np.float64 else 1e-5
            np.testing.assert_allclose(got, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("output_size", [1, (5, 7), (None, 3), (40, 50), (37, 1)], ids=str)
def test_adaptive_pool2d_matches_memory(output_size):
    """Global pooling, cells smaller and larger than the chunks, overlapping cells (output > input)."""
    x = rng.standard_normal((2, 3, 37, 41))
    _check(F.adaptive_avg_pool2d, x, (1, 2, 10, 9), output_size)
    _check(F.adaptive_max_pool2d, x, (1, 2, 10, 9), output_size, True, exact=True)
    _check(F.adaptive_max_pool2d, x, (1, 2, 3, 2), output_size, False, exact=True)  # chunks smaller than a cell


def test_adaptive_max_pool2d_ties_nan_and_minus_inf():
    """Each cell is pooled whole in one task over the same values in the same order: the same picks."""
    x = np.round(rng.standard_normal((1, 2, 20, 21)))
    x[0, 0, :5] = -np.inf
    x[0, 1, 3, 3] = x[0, 1, 4, 4] = np.nan
    _check(F.adaptive_max_pool2d, x, (1, 2, 3, 4), (7, 6), True, exact=True)


def test_adaptive_avg_pool_1d_3d_unbatched_float32():
    _check(F.adaptive_avg_pool1d, rng.standard_normal((3, 50)).astype(np.float32), (3, 7), 4)
    _check(F.adaptive_avg_pool3d, rng.standard_normal((1, 2, 9, 10, 11)), (1, 1, 4, 3, 5), (3, None, 4))
    _check(F.adaptive_max_pool2d, rng.standard_normal((2, 9, 10)).astype(np.float32), (1, 4, 3), 4, True, exact=True)


def test_blocks_follow_chunks_and_read_their_cells():
    intervals, cells = adaptive_blocks((10, 10, 10, 7), 5)  # n = 37 -> 5 cells: [0, 8), [7, 15), [14, 23), ...
    assert cells == [(0, 1), (1, 2), (2, 4), (4, 5)]  # chunk starts 10, 20, 30 -> cells 10*5//37, ...
    assert intervals == [(0, 8), (7, 15), (14, 30), (29, 37)]
    y = F.adaptive_avg_pool1d(da.ones((1, 1, 37), chunks=(1, 1, (10, 10, 10, 7))), 5)
    assert y.chunks[2] == (1, 1, 2, 1)


def test_nothing_is_computed_and_errors_are_the_in_memory_ones():
    def boom():
        raise RuntimeError("computed")

    X = da.from_delayed(dask.delayed(boom)(), shape=(1, 3, 64, 64), dtype=np.float32)
    y, idx = F.adaptive_max_pool2d(X, (3, 5), return_indices=True)
    assert F.adaptive_avg_pool2d(X, 1).shape == (1, 3, 1, 1) and y.shape == idx.shape == (1, 3, 3, 5)
    with pytest.raises(RuntimeError, match="computed"):
        idx.compute(scheduler="sync")
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(X, 0)
    with pytest.raises(TypeError, match="output_size must be an int or a tuple of 2 ints"):
        F.adaptive_max_pool2d(X, (1, 2, 3))
    with pytest.raises(ValueError, match=r"expects input of shape .* but got 3-D"):
        F.adaptive_avg_pool3d(X[0], 2)
