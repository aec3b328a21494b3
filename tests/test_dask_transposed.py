"""Transposed convolution on dask arrays: lazy, blockwise, the same numbers as in memory."""

import itertools

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
import dask  # noqa: E402

import convolve.functional as F  # noqa: E402
from convolve import Tensor  # noqa: E402
from convolve.dask._transposed import transposed_blocks  # noqa: E402

rng = np.random.default_rng(2)


def _check(nd, shape, chunks, wshape, kw, dtype=np.float64, bias=True, exact=False):
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape[1] * kw.get("groups", 1)).astype(dtype) if bias else None
    fn = getattr(F, f"conv_transpose{nd}d")
    want, lazy = fn(x, w, b, **kw), fn(da.from_array(x, chunks=chunks), w, b, **kw)
    assert isinstance(lazy, da.Array) and lazy.shape == want.shape and lazy.dtype == want.dtype
    got = lazy.compute(scheduler="sync")
    assert got.shape == want.shape and got.dtype == want.dtype
    if exact:
        np.testing.assert_array_equal(got, want)
    else:  # a block's shape may make the engine pick another algorithm than the whole: rounding only
        tol = 1e-12 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _valid_1d(kw, k):
    try:
        F.conv_transpose1d(np.zeros((1, 2, 7)), np.zeros((2, 3, k)), **kw)
        return True
    except ValueError:  # output_padding >= stride and dilation
        return False


def test_conv_transpose1d_every_geometry_and_chunking():
    """Stride below, equal to and above the kernel extent (gaps with only the bias), padding pairs,
    output_padding, dilation; chunks uneven and smaller than the kernel (down to one input each)."""
    geometries = [dict(stride=s, padding=p, output_padding=op, dilation=d)
                  for s, p, op, d in itertools.product([1, 2, 5], [1, ((3, 0),)], [0, 1], [1, 2])]
    geometries = [kw for kw in geometries if _valid_1d(kw, 3)] + [dict(stride=5, padding=2), dict(stride=3)]
    assert len(geometries) == 24  # 24, less the 2 with output_padding 1 but stride and dilation 1, plus 2
    for i, kw in enumerate(geometries):
        k = 1 if i >= 22 else 3  # the last two: a 1-tap kernel, stride 5 and 3 (outputs with only the bias)
        _check(1, (2, 2, 7), [(1, 2, (1, 2, 4)), (2, 2, 1)][i % 2], (2, 3, k), kw)


def test_conv_transpose2d_groups_dilation_and_pairs():
    _check(2, (2, 4, 13, 11), (1, 2, 4, 3), (4, 3, 3, 4),
           dict(stride=(2, 3), padding=((1, 2), (0, 3)), output_padding=(1, 0), groups=2, dilation=(1, 2)))
    _check(2, (1, 2, 9, 10), (1, 1, 2, (3, 3, 4)), (2, 2, 5, 2), dict(stride=1, padding=2, dilation=(2, 3)), bias=False)


def test_conv_transpose3d():
    _check(3, (1, 4, 5, 6, 7), (1, 4, 2, 4, 3), (4, 1, 2, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=4))


def test_conv_transpose_layouts_and_float32():
    _check(2, (2, 9, 8, 3), (1, 4, 3, 3), (3, 5, 3, 3), dict(stride=2, padding=1, output_padding=1,
                                                           data_format="channels_last"), dtype=np.float32)
    _check(1, (3, 20), (3, 6), (3, 2, 4), dict(stride=2), dtype=np.float32)  # unbatched (C, L)


def test_conv_transpose_forced_algorithm_is_bitwise():
    """With one algorithm everywhere each output is the same sum in the same order."""
    kw = dict(stride=(2, 3), padding=(1, 2), output_padding=(1, 0), groups=2, dilation=(1, 2))
    for algorithm in ("gemm", "direct"):
        _check(2, (2, 4, 13, 11), (1, 2, 4, 3), (4, 3, 3, 4), dict(kw, algorithm=algorithm), exact=True)


def test_blocks_follow_chunks_and_read_a_bounded_neighbourhood():
    # input chunks (4, 4, 3), stride 2, kernel 3, padding 1: input chunk start c -> output 2c - 1
    inputs, sizes, crops = transposed_blocks((4, 4, 3), 1, 1, 3, 2, 1, 1)
    assert sizes == [7, 8, 7] and sum(sizes) == (11 - 1) * 2 - 2 + 3 + 1
    assert inputs == [(0, 4), (3, 8), (7, 12)]  # its chunk, one input of each neighbour, a zero past the end
    for (a, b), n, (cb, ce) in zip(inputs, sizes, crops):
        assert (b - a - 1) * 2 + 3 - cb - ce == n  # the crop leaves exactly the block's outputs
    x = da.ones((1, 1, 11), chunks=(1, 1, (4, 4, 3)))
    y = F.conv_transpose1d(x, np.ones((1, 1, 3)), stride=2, padding=1, output_padding=1)
    assert y.chunks[2] == (7, 8, 7)
    assert sum(isinstance(k, tuple) for k in y.dask.layers[y.name]) == 3  # one task per output block


def test_nothing_is_computed_at_call_time():
    def boom():
        raise RuntimeError("computed")

    X = da.from_delayed(dask.delayed(boom)(), shape=(1, 3, 64, 64), dtype=np.float32)
    y = F.conv_transpose2d(X, np.ones((3, 2, 4, 4), np.float32), stride=2, padding=1)
    assert y.shape == (1, 2, 128, 128)
    with pytest.raises(RuntimeError, match="computed"):
        y.compute(scheduler="sync")


def test_errors_are_the_in_memory_ones():
    X = da.zeros((1, 3, 8, 8), chunks=4, dtype=np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="conv_transpose2d takes numeric padding"):
        F.conv_transpose2d(X, w, padding="same")
    with pytest.raises(ValueError, match="output_padding must be smaller than either stride or dilation"):
        F.conv_transpose2d(X, w, output_padding=1)
    with pytest.raises(ValueError, match=r"padding 9\+9 removes the whole output .*stand-in"):
        F.conv_transpose2d(da.zeros((2, 3, 2, 8), chunks=4, dtype=np.float32), w, padding=9)
    with pytest.raises(ValueError, match="input has 3 channels but the transposed weight expects 4"):
        F.conv_transpose2d(X, np.ones((4, 2, 3, 3), np.float32))
    with pytest.raises(TypeError, match="weight must be an in-memory array"):
        F.conv_transpose2d(X, da.ones((3, 2, 3, 3), chunks=3, dtype=np.float32))
    with pytest.raises(TypeError, match="weight requires grad"):
        F.conv_transpose2d(X, Tensor(w, requires_grad=True))
