"""What the rest of convolve calls in this package: the functional ops' dask-array path and the
command line's cluster runs. Importing it does not import dask (each function does when called).

- `conv`, `conv_transpose`, `max_pool`, `avg_pool`, `adaptive_avg_pool`, `adaptive_max_pool2d`: lazy,
  blockwise versions behind ``F.conv*d``, ``F.conv_transpose*d``, ``F.*_pool*d`` and
  ``F.adaptive_*_pool*d`` when the input is a ``dask.array.Array``;
- `connect`: a client for ``--workers N`` (a local cluster) or ``--scheduler ADDRESS``;
- `evaluate`, `predict_proba`: batches on the cluster's workers;
- `data_parallel`: synchronous data-parallel training steps on the cluster.
"""

from __future__ import annotations

from ._adaptive import adaptive_avg_pool, adaptive_max_pool2d
from ._cluster import connect
from ._inference import evaluate, predict_proba
from ._lazy import avg_pool, conv, max_pool
from ._train import data_parallel
from ._transposed import conv_transpose

__all__ = ["conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool2d", "connect",
           "evaluate", "predict_proba", "data_parallel"]
