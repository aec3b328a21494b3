"""A dask.distributed client for the CLI's ``--workers N`` (a local cluster) or ``--scheduler ADDRESS``."""

from __future__ import annotations

from typing import Any

import os
from contextlib import contextmanager

from .._shared.checks import check_int
from ._require import require

__all__ = ["connect", "local_cluster", "wants_cluster", "blas_threads_env"]


def blas_threads_env() -> dict:
    """This process's BLAS thread count as environment variables for worker processes."""
    given = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    threads = given or str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return {name: threads for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def wants_cluster(workers, scheduler) -> bool:
    """Whether the caller asked for a cluster (and not for both kinds at once)."""
    if workers is not None and scheduler is not None:
        raise ValueError(f"give workers or scheduler, not both (got workers={workers!r}, scheduler={scheduler!r})")
    if workers is not None:
        check_int("workers", workers, minimum=1)
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise ValueError(f"scheduler must be an address such as 'tcp://10.0.0.5:8786', but got {scheduler!r}")
    return workers is not None or scheduler is not None


@contextmanager
def connect(workers: Any = None, scheduler: Any = None) -> Any:
    """A ``distributed.Client``: to `scheduler`, or to a new local cluster of `workers` processes (closed after).

    Local workers are processes with one task thread each on 127.0.0.1. Their BLAS uses as many
    threads as this process's (dask would set 1): a matrix product split another way rounds
    differently, and results must be identical to the local run's. Workers of a `scheduler`
    are as their cluster made them; give them the driver's BLAS thread count for bitwise equality.
    """
    distributed = require("distributed")
    wants_cluster(workers, scheduler)
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    with local_cluster(int(workers)) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@contextmanager
def local_cluster(workers, **kwargs):
    """A ``distributed.LocalCluster`` of `workers` processes on 127.0.0.1, one task thread each, BLAS
    threads as in this process (set before the workers start: dask's default is 1). Closed after."""
    dask = require("dask")
    distributed = require("distributed")
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in blas_threads_env().items()}
    options = dict(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0")
    with dask.config.set(environ), distributed.LocalCluster(**{**options, **kwargs}) as cluster:
        yield cluster
