"""Adaptive pooling: pick the window per output cell so any input size maps to `output_size`.

Output cell i of a dimension of size In -> Out covers input ``[floor(i·In/Out), ceil((i+1)·In/Out))``
(PyTorch's formula). Box averages and box maxima are separable, so the average is one small matrix
per spatial dimension and the maximum is a gather of (ragged, -inf padded) windows.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np

from ..autograd import as_array, record
from .._shared.checks import check_bool
from .._shared.types import ArrayOrTensor, TensorLike
from ._args import as_input, check_rank, float_dtype, is_int

OutputSize = Union[int, None, Tuple[Optional[int], ...]]

__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d"]


def _bounds(n_in: int, n_out: int):
    i = np.arange(n_out)
    return (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)  # floor, ceil


def _output_size(output_size, nd, spatial):
    if is_int(output_size) or output_size is None:
        output_size = (output_size,) * nd
    if not isinstance(output_size, (tuple, list)) or len(output_size) != nd or not all(
        o is None or is_int(o) for o in output_size
    ):
        raise TypeError(f"output_size must be an int or a tuple of {nd} ints (None keeps that size), but got {output_size!r}")
    sizes = tuple(n if o is None else int(o) for o, n in zip(output_size, spatial))
    if any(o <= 0 for o in sizes):
        raise ValueError(f"output_size must be positive, but got {output_size!r}")
    if any(n == 0 for n in spatial):
        raise ValueError(f"adaptive pooling needs non-empty spatial dimensions, but got {spatial}")
    return sizes


def _prepare(nd, op, input, output_size):
    x = as_input(input, "input")
    float_dtype("input", x)
    batched = check_rank(x, nd, "input", op)
    a = as_array(x)
    spatial = a.shape[-nd:]
    return x, a, batched, _output_size(output_size, nd, spatial)


def _adaptive_avg(nd, input, output_size):
    if type(input).__module__.startswith("dask"):  # a dask array: lazy, blockwise (convolve.dask)
        from ..dask import hooks
        return hooks.adaptive_avg_pool(nd, input, output_size)
    x, a, batched, outs = _prepare(nd, f"adaptive_avg_pool{nd}d", input, output_size)
    lead = a.ndim - nd
    mats = []  # (Out, In) averaging matrix per spatial dim
    for n, o in zip(a.shape[lead:], outs):
        start, end = _bounds(n, o)
        j = np.arange(n)
        inside = (j >= start[:, None]) & (j < end[:, None])
        mats.append((inside / (end - start)[:, None]).astype(a.dtype))

    def apply(t, transpose):
        for k, m in enumerate(mats):  # contract spatial axis lead+k with m, keep axis order
            t = np.moveaxis(np.tensordot(t, m if transpose else m.T, axes=([lead + k], [0])), -1, lead + k)
        return t

    y = np.ascontiguousarray(apply(a, False))
    return record(y, (x,), lambda g: (apply(g, True),))


def adaptive_avg_pool1d(input: TensorLike, output_size: OutputSize) -> ArrayOrTensor:
    """Adaptive average pooling over L.

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, L) or (C, L).
    output_size : int or (int or None,)
        Target L_out; None keeps L.

    Returns
    -------
    ndarray or Tensor
        A Tensor when `input` is one.

    Shape
    -----
    (N, C, L) -> (N, C, L_out); cell i covers ``[floor(i·L/L_out), ceil((i+1)·L/L_out))``.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.adaptive_avg_pool1d(np.array([[[1., 2., 3., 4., 5.]]]), 2)     # cells [0, 3) and [2, 5)
    array([[[2., 4.]]])
    """
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input: TensorLike, output_size: OutputSize) -> ArrayOrTensor:
    """Adaptive average pooling over (H, W).

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, H, W) or (C, H, W).
    output_size : int or (int or None, int or None)
        Target (H_out, W_out); None keeps that input size.

    Returns
    -------
    ndarray or Tensor
        A Tensor when `input` is one.

    Shape
    -----
    (N, C, H, W) -> (N, C, H_out, W_out); cell i covers ``[floor(i·H/H_out), ceil((i+1)·H/H_out))``.

    Examples
    --------
    Global average pooling, as at the end of a ResNet:

    >>> import numpy as np, convolve.functional as F
    >>> F.adaptive_avg_pool2d(np.ones((8, 512, 7, 7)), 1).shape
    (8, 512, 1, 1)
    """
    return _adaptive_avg(2, input, output_size)


def adaptive_avg_pool3d(input: TensorLike, output_size: OutputSize) -> ArrayOrTensor:
    """Adaptive average pooling over (D, H, W).

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, D, H, W) or (C, D, H, W).
    output_size : int or tuple of 3 (int or None)
        Target (D_out, H_out, W_out); None keeps that input size.

    Returns
    -------
    ndarray or Tensor
        A Tensor when `input` is one.

    Shape
    -----
    (N, C, D, H, W) -> (N, C, *output_size); cells as in :func:`adaptive_avg_pool2d`.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.adaptive_avg_pool3d(np.ones((1, 2, 5, 6, 7)), (1, None, 3)).shape
    (1, 2, 1, 6, 3)
    """
    return _adaptive_avg(3, input, output_size)


def _ragged_index(n, o):
    """(Out, Kmax) input indices of each window and a mask of the real taps."""
    start, end = _bounds(n, o)
    k = int((end - start).max())
    idx = start[:, None] + np.arange(k)
    valid = idx < end[:, None]
    return np.minimum(idx, n - 1), valid


def adaptive_max_pool2d(input: TensorLike, output_size: OutputSize, return_indices: bool = False) -> Any:
    """Adaptive max pooling over (H, W); optionally also the flat index (h·W + w) of each maximum.

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, H, W) or (C, H, W).
    output_size : int or (int or None, int or None)
        Target (H_out, W_out); None keeps that input size.
    return_indices : bool
        Also return the int64 flat index of every maximum.

    Returns
    -------
    ndarray or Tensor, or a pair (output, indices)
        A Tensor when `input` is one.

    Shape
    -----
    (N, C, H, W) or (C, H, W) -> (..., H_out, W_out); windows as in :func:`adaptive_avg_pool2d`.
    Ties go to the first maximum in row-major order, as PyTorch.

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> y, idx = F.adaptive_max_pool2d(np.arange(16.).reshape(1, 4, 4), 2, return_indices=True)
    >>> y, idx
    (array([[[ 5.,  7.],
            [13., 15.]]]), array([[[ 5,  7],
            [13, 15]]]))
    """
    if type(input).__module__.startswith("dask"):  # a dask array: lazy, blockwise (convolve.dask)
        from ..dask import hooks
        return hooks.adaptive_max_pool2d(input, output_size, return_indices)
    return_indices = check_bool("return_indices", return_indices)
    x, a, batched, (oh, ow) = _prepare(2, "adaptive_max_pool2d", input, output_size)
    H, W = a.shape[-2:]
    ih, vh = _ragged_index(H, oh)  # (oh, kh)
    iw, vw = _ragged_index(W, ow)  # (ow, kw)
    win = a[..., ih[:, None, :, None], iw[None, :, None, :]]  # (..., oh, ow, kh, kw)
    mask = vh[:, None, :, None] & vw[None, :, None, :]
    if not mask.all():
        win = np.where(mask, win, -np.inf).astype(a.dtype, copy=False)
    flat = win.reshape(win.shape[:-2] + (-1,))
    arg = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    kw = iw.shape[1]
    # flat index of every maximum within its (H, W) plane
    r = ih[np.arange(oh)[:, None], arg // kw]  # broadcasts over leading axes via fancy indexing
    c = iw[np.arange(ow)[None, :], arg % kw]
    index = (r * W + c).astype(np.int64)

    def backward(g):
        lead = g.shape[:-2]
        planes = int(np.prod(lead, dtype=np.int64))
        offs = (np.arange(planes) * (H * W)).reshape(lead + (1, 1))
        gx = np.bincount((index + offs).ravel(), weights=g.ravel(), minlength=planes * H * W)
        return (gx.reshape(a.shape).astype(a.dtype, copy=False),)

    out = record(y, (x,), backward)
    return (out, index) if return_indices else out
