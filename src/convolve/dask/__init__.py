"""Scale-out on Dask: lazy conv and pooling on chunked arrays, whole models over huge images, and
evaluation, prediction and data-parallel training on a cluster.

Importing this package does not import dask; each function does when called (``pip install
"convolve[dask]"`` provides it). The functional ops need nothing from here: ``F.conv2d(x, w)`` with
a ``dask.array.Array`` x returns a lazy dask array.

>>> import dask.array as da, numpy as np, convolve.nn as nn
>>> from convolve.dask import map_model
>>> x = da.random.random((1, 3, 4096, 4096), chunks=(1, 3, 1024, 1024)).astype(np.float32)
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)).eval()
>>> y = map_model(model, x)          # lazy: (1, 8, 2048, 2048), nothing computed yet  # doctest: +SKIP
"""

from ._model import map_model, model_geometry

__all__ = ["map_model", "model_geometry"]
