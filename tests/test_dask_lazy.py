"""Conv and pooling on dask arrays: lazy, blockwise, the same numbers as in memory."""

import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
import dask  # noqa: E402

import convolve.functional as F  # noqa: E402
from convolve.dask._lazy import stride_blocks  # noqa: E402
from convolve.dask._require import require  # noqa: E402

rng = np.random.default_rng(0)


def _pair(shape, chunks, dtype=np.float64):
    x = rng.standard_normal(shape).astype(dtype)
    return x, da.from_array(x, chunks=chunks)


def _same(lazy, eager, exact=False):
    assert isinstance(lazy, da.Array)
    assert lazy.shape == eager.shape and lazy.dtype == eager.dtype
    got = lazy.compute(scheduler="sync")
    assert got.shape == eager.shape and got.dtype == eager.dtype
    if exact:
        np.testing.assert_array_equal(got, eager)
    else:  # the engine may pick another algorithm for a block than for the whole: rounding only
        tol = 1e-12 if eager.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got, eager, rtol=tol, atol=tol)


CONV2D = [
    dict(),
    dict(padding=1),
    dict(padding="same"),
    dict(padding="same", stride=2),
    dict(stride=2, padding=(1, 2)),
    dict(stride=3, dilation=2, padding=((1, 2), (0, 3)), padding_mode="reflect"),
    dict(padding=2, padding_mode="circular"),
    dict(padding=3, padding_mode="replicate", stride=(2, 3)),
    dict(stride=4, dilation=(1, 3), padding="valid"),
]


@pytest.mark.parametrize("kw", CONV2D, ids=str)
def test_conv2d_matches_memory(kw):
    x, X = _pair((2, 4, 37, 41), (1, 2, 10, 9))  # uneven chunks, split channels
    w, b = rng.standard_normal((6, 2, 3, 4)), rng.standard_normal(6)
    _same(F.conv2d(X, w, b, groups=2, **kw), F.conv2d(x, w, b, groups=2, **kw))


@pytest.mark.parametrize("kw", [dict(padding=2, stride=3), dict(padding="same", dilation=3),
                                dict(padding=((0, 4),), padding_mode="reflect", stride=2)], ids=str)
def test_conv1d_matches_memory(kw):
    x, X = _pair((3, 2, 101), (2, 2, 17))
    w = rng.standard_normal((4, 1, 5))
    _same(F.conv1d(X, w, None, groups=2, **kw), F.conv1d(x, w, None, groups=2, **kw))


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=(1, 2, 3), padding=((1, 0), (2, 2), (0, 1)),
                                                      padding_mode="replicate"), dict(padding="same", dilation=2)],
                         ids=str)
def test_conv3d_matches_memory(kw):
    x, X = _pair((1, 3, 11, 13, 12), (1, 3, 4, 5, 7))
    w, b = rng.standard_normal((2, 3, 3, 2, 3)), rng.standard_normal(2)
    _same(F.conv3d(X, w, b, **kw), F.conv3d(x, w, b, **kw))


def test_conv_layouts_and_dtypes():
    x, X = _pair((2, 30, 28, 3), (1, 7, 11, 3), np.float32)  # channels-last
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    _same(F.conv2d(X, w, padding=1, stride=2, data_format="channels_last"),
          F.conv2d(x, w, padding=1, stride=2, data_format="channels_last"))
    _same(F.conv2d(X[0].transpose(2, 0, 1), w, padding="same"), F.conv2d(x[0].transpose(2, 0, 1), w, padding="same"))
    h, H = x.astype(np.float16), X.astype(np.float16)  # computed in float32, returned as float16
    _same(F.conv2d(H, w.astype(np.float16), data_format="channels_last"),
          F.conv2d(h, w.astype(np.float16), data_format="channels_last"), exact=False)


def test_conv_forced_algorithm_is_bitwise():
    x, X = _pair((1, 3, 40, 40), (1, 3, 13, 17))
    w = rng.standard_normal((4, 3, 3, 3))
    _same(F.conv2d(X, w, padding=1, algorithm="gemm"), F.conv2d(x, w, padding=1, algorithm="gemm"), exact=True)


POOL = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(3, 1), padding=(1, 0), ceil_mode=True),
]


@pytest.mark.parametrize("kw", POOL + [dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)], ids=str)
def test_max_pool_matches_memory_exactly(kw):
    x, X = _pair((2, 3, 37, 41), (1, 2, 10, 9))
    x[0, 0, 5, 5] = np.nan  # NaN wins, as in memory
    X = da.from_array(x, chunks=(1, 2, 10, 9))
    _same(F.max_pool2d(X, **kw), F.max_pool2d(x, **kw), exact=True)


@pytest.mark.parametrize("kw", POOL + [dict(kernel_size=3, padding=1, count_include_pad=False, ceil_mode=True, stride=2),
                                       dict(kernel_size=3, padding=1, divisor_override=5)], ids=str)
def test_avg_pool_matches_memory_exactly(kw):
    x, X = _pair((2, 3, 37, 41), (1, 2, 10, 9))
    _same(F.avg_pool2d(X, **kw), F.avg_pool2d(x, **kw), exact=True)


def test_pool_1d_3d_float32():
    x, X = _pair((2, 3, 50), (1, 3, 7), np.float32)
    _same(F.max_pool1d(X, 3, 2, 1), F.max_pool1d(x, 3, 2, 1), exact=True)
    _same(F.avg_pool1d(X, 4, 3, 2, ceil_mode=True), F.avg_pool1d(x, 4, 3, 2, ceil_mode=True), exact=True)
    x, X = _pair((1, 2, 9, 10, 11), (1, 2, 4, 3, 5), np.float32)
    _same(F.max_pool3d(X, 2), F.max_pool3d(x, 2), exact=True)
    _same(F.avg_pool3d(X, 3, 2, 1, count_include_pad=False), F.avg_pool3d(x, 3, 2, 1, count_include_pad=False),
          exact=True)


def test_nothing_is_computed_at_call_time():
    def boom():
        raise RuntimeError("computed")

    X = da.from_delayed(dask.delayed(boom)(), shape=(1, 3, 64, 64), dtype=np.float32)
    w = np.ones((2, 3, 3, 3), np.float32)
    ys = [F.conv2d(X, w, padding="same", stride=2), F.max_pool2d(X, 3, 2, 1), F.avg_pool2d(X, 2)]
    assert [y.shape for y in ys] == [(1, 2, 32, 32), (1, 3, 32, 32), (1, 3, 32, 32)]
    with pytest.raises(RuntimeError, match="computed"):
        ys[0].compute(scheduler="sync")


def test_blocks_follow_chunks_aligned_to_stride_with_halo():
    # unpadded chunks (10, 10, 10, 7), stride 3, extent 5, padding 2: block boundaries at (a + 2) // 3
    intervals, sizes = stride_blocks((10, 10, 10, 7), 2, 5, 3, (37 + 4 - 5) // 3 + 1)
    assert sizes == [4, 3, 3, 3]  # boundaries 12//3, 22//3, 32//3 = 4, 7, 10 of 13 outputs
    assert all(lo % 3 == 0 for lo, _ in intervals)  # every block starts on the stride's grid
    assert [hi - lo for lo, hi in intervals] == [(n - 1) * 3 + 5 for n in sizes]  # its chunk + a halo of 5 - 3
    x, X = _pair((1, 1, 37), (1, 1, (10, 10, 10, 7)))
    y = F.conv1d(X, np.ones((1, 1, 5)), stride=3, padding=2)
    assert y.chunks[2] == (4, 3, 3, 3)
    assert sum(isinstance(k, tuple) for k in y.dask.layers[y.name]) == 4  # one task per output block


def test_errors_name_the_argument():
    X = da.zeros((1, 3, 20, 20), chunks=10, dtype=np.float32)
    with pytest.raises(ValueError, match="input has 3 channels but weight expects 4"):
        F.conv2d(X, np.ones((2, 4, 3, 3), np.float32))
    with pytest.raises(TypeError, match="dtype int64"):
        F.conv2d(da.zeros((1, 3, 20, 20), chunks=10, dtype=np.int64), np.ones((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="kernel size 25 .* larger than the padded input size 20"):
        F.conv2d(X, np.ones((2, 3, 25, 3), np.float32))
    with pytest.raises(TypeError, match="weight must be an in-memory array"):
        F.conv2d(X, da.ones((2, 3, 3, 3), chunks=3, dtype=np.float32))
    with pytest.raises(TypeError, match="return_indices must be True or False"):
        F.max_pool2d(X, 2, return_indices="yes")
    with pytest.raises(ValueError, match="padding should be at most half of the kernel size"):
        F.max_pool2d(X, 2, padding=2)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, L\).*4-D input of shape \(1, 3, 20, 20\)"):
        F.conv1d(X, np.ones((2, 3, 3), np.float32))


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'pip install "convolve\[dask\]"'):
        require("dask.array")


def test_import_convolve_does_not_import_dask():
    code = ("import sys, convolve, convolve.functional, convolve.nn, convolve.dask, convolve.training; "
            "bad = [m for m in ('dask', 'distributed', 'zarr') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


INDICES = [
    (1, (2, 3, 50), (1, 3, (7, 1, 2, 40)), dict(kernel_size=4, stride=1, padding=2)),
    (2, (2, 3, 37, 41), (1, 2, 10, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, (1, 2, 23, 19), (1, 1, 2, 3), dict(kernel_size=(2, 3), stride=(3, 1), padding=(1, 0), dilation=2,
                                           ceil_mode=True)),
    (3, (1, 2, 9, 10, 11), (1, 2, 4, 3, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
]


@pytest.mark.parametrize("nd, shape, chunks, kw", INDICES, ids=str)
def test_max_pool_indices_match_memory(nd, shape, chunks, kw):
    """Ties (small integers), NaN and windows of -inf only at the padded border: the same picks as in
    memory, on chunks uneven and smaller than the window."""
    x = np.round(rng.standard_normal(shape))
    x.reshape(-1)[::17] = -np.inf
    flat = x.reshape(shape[:2] + (-1,))
    flat[0, 0, 5] = np.nan
    flat[-1, -1, : flat.shape[-1] // 3] = -np.inf  # a third of a plane -inf: windows of -inf only, padding around
    fn = getattr(F, f"max_pool{nd}d")
    want, want_idx = fn(x, return_indices=True, **kw)
    lazy, lazy_idx = fn(da.from_array(x, chunks=chunks), return_indices=True, **kw)
    assert isinstance(lazy_idx, da.Array) and lazy_idx.dtype == np.int64 and lazy_idx.shape == want_idx.shape
    got, got_idx = dask.compute(lazy, lazy_idx, scheduler="sync")
    np.testing.assert_array_equal(got, want)
    assert got_idx.dtype == want_idx.dtype == np.int64
    np.testing.assert_array_equal(got_idx, want_idx)
    assert got_idx.min() >= 0 and got_idx.max() < np.prod(shape[2:])  # every pick is inside its plane


def test_max_pool_indices_layouts_and_one_task_per_block():
    x, X = _pair((2, 12, 11, 3), (1, 5, 4, 3), np.float32)
    want = F.max_pool2d(x, 3, 2, 1, return_indices=True, data_format="channels_last")
    got = F.max_pool2d(X, 3, 2, 1, return_indices=True, data_format="channels_last")
    for g, w in zip(dask.compute(*got, scheduler="sync"), want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    want = F.max_pool1d(x[0, 0], 2, return_indices=True)  # unbatched (C, L)
    got = F.max_pool1d(X[0, 0], 2, return_indices=True)
    for g, w in zip(dask.compute(*got, scheduler="sync"), want):
        np.testing.assert_array_equal(g, w)
    y, idx = F.max_pool2d(da.zeros((1, 1, 20, 20), chunks=10), 2, return_indices=True)
    (joint,) = y.dask.dependencies[y.name]
    assert idx.dask.dependencies[idx.name] == {joint}  # values and indices are picked from one task per block
    assert sum(isinstance(k, tuple) for k in y.dask.layers[joint]) == 4
