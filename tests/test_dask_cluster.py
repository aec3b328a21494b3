"""Evaluation, prediction and synchronous data-parallel training on a local cluster of worker processes."""

import copy
import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

import convolve.nn as nn  # noqa: E402
import convolve.optim as optim  # noqa: E402
from convolve.cli import main as cli  # noqa: E402
from convolve.dask import _train  # noqa: E402
from convolve.dask._cluster import local_cluster  # noqa: E402
from convolve.training import evaluate_checkpoint, load_checkpoint, predict_files, train, train_epoch  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """Two worker processes (one task thread each, BLAS threads as here) on 127.0.0.1, closed after the tests."""
    with local_cluster(2) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def run(tmp_path_factory, client):
    """A tiny local training run on the embedded data (and the same run data-parallel on the cluster)."""
    out = tmp_path_factory.mktemp("runs")
    kw = dict(epochs=1, batch_size=32, limit=96, progress=False, log=lambda line: None)
    local = train(out=out / "local", **kw)
    spread = train(out=out / "spread", scheduler=client.scheduler.address, **kw)
    return local, spread


def test_evaluate_and_predict_on_the_cluster_equal_the_local_run(run, client, tmp_path):
    ckpt = run[0]["out"] / "best.npz"
    here = evaluate_checkpoint(ckpt, batch_size=100)
    there = evaluate_checkpoint(ckpt, batch_size=100, scheduler=client.scheduler.address)
    assert (there["loss"], there["accuracy"], there["images"]) == (here["loss"], here["accuracy"], here["images"])
    from PIL import Image

    files = []
    for i in range(3):
        f = tmp_path / f"img{i}.png"
        Image.fromarray((np.random.default_rng(i).random((28, 28)) * 255).astype(np.uint8)).save(f)
        files.append(f)
    assert predict_files(ckpt, files, top=4, scheduler=client.scheduler.address) == predict_files(ckpt, files, top=4)


def test_data_parallel_train_matches_the_local_run(run):
    local, spread = run
    a = np.load(local["out"] / "last.npz", allow_pickle=False)
    b = np.load(spread["out"] / "last.npz", allow_pickle=False)
    weights = [k for k in a.files if k.startswith("model/")]
    assert len(weights) == 8  # LeNet's four weights and four biases
    steps, lr = 3, 1e-3  # 96 images in batches of 32, Adam's default rate
    for k in weights:
        if a[k].dtype.kind == "f":  # float32 run: equal up to the order of the sums, which Adam can
            diff = np.abs(b[k] - a[k])  # amplify to at most ~2 lr per step where a gradient is ~0
            assert np.mean(diff <= 1e-5 + 1e-4 * np.abs(a[k])) > 0.999, k
            assert diff.max() <= 2 * lr * steps, k
    assert spread["history"][0]["test_accuracy"] == pytest.approx(local["history"][0]["test_accuracy"], abs=0.02)


def test_resume_on_the_cluster_continues_the_run(run, client):
    spread = run[1]
    more = train(out=spread["out"], resume=True, epochs=2, scheduler=client.scheduler.address, progress=False,
                 log=lambda line: None)
    assert [r["epoch"] for r in more["history"]] == [1, 2]
    assert load_checkpoint(spread["out"] / "last.npz").epoch == 2


def _tiny(dtype=np.float64):
    nn.init.seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3)).to(dtype)


def _batches(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, 1, 8, 8)), rng.integers(0, 3, n)) for n in sizes]


def _local_reference(batches):
    model = _tiny()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss, images, _ = train_epoch(model, batches, opt)
    return model, loss, images


def test_float64_data_parallel_equals_single_process_to_1e10(client):
    batches = _batches([10, 7, 9, 1])  # odd shards (4 + 3 of 7) and a batch smaller than the worker count
    want, want_loss, want_images = _local_reference(batches)
    model = _tiny()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    stats = _train.StepStats()
    loss, images, _ = _train.train_epoch(model, batches, opt, client, stats=stats)
    assert images == want_images == 27
    assert loss == pytest.approx(want_loss, rel=1e-10)
    for (name, p), q in zip(model.named_parameters(), want.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-10, err_msg=name)
    params = sum(p.data.nbytes for p in model.parameters())
    assert stats.steps == 4 and stats.bytes >= 4 * 2 * params  # weights out, gradients back


def test_batchnorm_running_statistics_are_averaged_by_shard_size(client):
    nn.init.seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).double()
    x, y = _batches([9])[0]
    shards = [slice(0, 5), slice(5, 9)]
    want = np.zeros(2)
    for s in shards:  # each replica updates its running mean from its shard's batch mean
        replica = copy.deepcopy(model)
        replica.train()
        from convolve import Tensor

        replica(Tensor(x[s]))
        want += replica[1].running_mean * (len(range(9)[s]) / 9)
    opt = optim.SGD(model.parameters(), lr=0.0)
    _train.train_epoch(model, [(x, y)], opt, client)
    np.testing.assert_allclose(model[1].running_mean, want, rtol=1e-12)
    assert int(model[1].num_batches_tracked) == 1


def test_a_worker_that_dies_mid_epoch_does_not_lose_the_run(client):
    batches = _batches([8, 8, 8, 8], seed=1)
    want, want_loss, _ = _local_reference(batches)
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]  # a worker process of this module's cluster

    def loader():
        for i, batch in enumerate(batches):
            if i == 2:  # the worker's process is killed between steps 2 and 3; its nanny starts a new one
                os.kill(pid, signal.SIGKILL)
            yield batch

    model = _tiny()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss, images, _ = _train.train_epoch(model, loader(), opt, client)
    assert images == 32 and loss == pytest.approx(want_loss, rel=1e-10)
    for p, q in zip(model.parameters(), want.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-10)


def test_cli_takes_workers_or_scheduler_not_both(capsys):
    with pytest.raises(SystemExit):
        cli(["evaluate", "x.npz", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_workers_must_be_positive():
    from convolve.dask._cluster import wants_cluster

    with pytest.raises(ValueError, match="workers"):
        wants_cluster(0, None)
    with pytest.raises(ValueError, match="not both"):
        wants_cluster(2, "tcp://127.0.0.1:8786")
