"""map_model over an image in a zarr store on disk that is larger than the memory of the cluster's workers."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
zarr = pytest.importorskip("zarr", reason="the dask extra is not installed")

import convolve.nn as nn  # noqa: E402
from convolve import Tensor, no_grad  # noqa: E402
from convolve.dask import map_model  # noqa: E402

LIMIT = 192 * 2**20  # bytes for the one worker process (~85 MiB of it is the idle process itself)
SIDE, CHUNK = 7296, 512  # a 203 MiB float32 image, 1 MiB chunks


@pytest.fixture(scope="module")
def small_cluster():
    """One worker process on 127.0.0.1 with 192 MiB (paused at 80%, killed at 95%), always closed.

    The compiled (numba) tier is off in the worker: compiling its kernels would take much of that memory.
    """
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=LIMIT, env={"CONVOLVE_JIT": "0"},
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _model():
    nn.init.seed(0)
    return nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=1)).eval()


def test_image_larger_than_worker_memory(small_cluster, tmp_path):
    client = small_cluster
    limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
    assert limits == [LIMIT]
    workers = list(client.scheduler_info()["workers"])
    image = da.random.default_rng(0).random((1, 1, SIDE, SIDE), chunks=(1, 1, CHUNK, CHUNK), dtype=np.float32)
    assert image.nbytes > sum(limits)  # 203 MiB on disk, 192 MiB of worker memory
    da.to_zarr(image, str(tmp_path / "image.zarr"))  # written by the workers, chunk by chunk
    model = _model()
    x = da.from_zarr(str(tmp_path / "image.zarr"))
    y = map_model(model, x)
    assert y.shape == (1, 1, SIDE // 2, SIDE // 2)
    da.to_zarr(y, str(tmp_path / "out.zarr"))  # computed on the workers, streamed to disk
    assert list(client.scheduler_info()["workers"]) == workers  # the worker was never killed for memory

    # three crops against the model in memory: two corners (true border) and an interior one
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    source = zarr.open_array(str(tmp_path / "image.zarr"), mode="r")
    margin = 4  # output positions next to a crop's inner edge see the crop's padding, not the image
    for r0, c0 in ((0, 0), (4096, 3072), (SIDE - 1024, SIDE - 1024)):
        with no_grad():
            want = np.asarray(model(Tensor(source[:, :, r0:r0 + 1024, c0:c0 + 1024])).data)
        got = stored[:, :, r0 // 2:r0 // 2 + 512, c0 // 2:c0 // 2 + 512]
        inner = (slice(None), slice(None)) + tuple(
            slice(0 if start == 0 else margin, 512 if start + 1024 == SIDE else 512 - margin) for start in (r0, c0))
        np.testing.assert_allclose(got[inner], want[inner], rtol=1e-5, atol=1e-5)
