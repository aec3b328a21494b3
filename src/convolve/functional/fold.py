"""`unfold` (im2col) and `fold` (col2im) for any number of spatial dims."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._engine.windows import fold_windows, out_size, windows
from ..autograd import as_array, record
from .._shared.checks import check_ints, is_int
from .._shared.types import ArrayOrTensor, IntOrTuple, TensorLike
from ._args import as_input, float_dtype

__all__ = ["unfold", "fold"]


def _nd(kernel_size: Any) -> int:
    # an int kernel means 2-D, as in PyTorch; a tuple's length gives the number of spatial dims
    return 2 if is_int(kernel_size) else len(kernel_size) if isinstance(kernel_size, (tuple, list)) else 0


def unfold(input: TensorLike, kernel_size: IntOrTuple, dilation: IntOrTuple = 1, padding: IntOrTuple = 0,
           stride: IntOrTuple = 1) -> ArrayOrTensor:
    """Extract every sliding window as a column (im2col).

    Parameters
    ----------
    input : ndarray or Tensor
        (N, C, *S) or unbatched (C, *S); the number of spatial dims is ``len(kernel_size)`` (2 for an int).
    kernel_size, dilation, padding, stride : int or tuple
        The windows, as in convolution.

    Returns
    -------
    ndarray or Tensor
        The columns; a Tensor when `input` is one.

    Shape
    -----
    (N, C, *S) -> (N, C * prod(kernel_size), L) with L = prod over dims of
    ``floor((S + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``; column entries are ordered
    channel first, then kernel offsets (as PyTorch).

    Examples
    --------
    A convolution is one matrix product with the columns:

    >>> import numpy as np, convolve.functional as F
    >>> x, w = np.arange(16.).reshape(1, 1, 4, 4), np.ones((1, 1, 3, 3))
    >>> cols = F.unfold(x, 3)                                    # (1, 1*3*3, 2*2)
    >>> cols.shape
    (1, 9, 4)
    >>> (w.reshape(1, -1) @ cols).reshape(1, 1, 2, 2)
    array([[[[45., 54.],
             [81., 90.]]]])
    >>> F.conv2d(x, w)
    array([[[[45., 54.],
             [81., 90.]]]])
    """
    nd = _nd(kernel_size)
    if nd == 0:
        raise TypeError(f"kernel_size must be an int or a tuple of ints, but got {kernel_size!r}")
    x = as_input(input, "input")
    float_dtype("input", x)
    a = as_array(x)
    if a.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"unfold with a {nd}-D kernel expects input of {nd + 2}-D (N, C, ...) or {nd + 1}-D (C, ...), but got shape {a.shape}")
    kernel = check_ints("kernel_size", kernel_size, nd, minimum=1)
    dilation = check_ints("dilation", dilation, nd, minimum=1)
    padding = check_ints("padding", padding, nd, minimum=0)
    stride = check_ints("stride", stride, nd, minimum=1)
    batched = a.ndim == nd + 2
    a4 = a if batched else a[None]
    for i, (n, k, d, p) in enumerate(zip(a4.shape[2:], kernel, dilation, padding)):
        if n + 2 * p < d * (k - 1) + 1:
            raise ValueError(f"kernel size {d * (k - 1) + 1} is larger than the padded input size {n + 2 * p} in spatial dimension {i}")
    xp = np.pad(a4, ((0, 0), (0, 0)) + tuple((p, p) for p in padding))
    win = windows(xp, kernel, stride, dilation)  # (N, C, *O, *K)
    perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    cols_shape = win.transpose(perm).shape  # (N, C, *K, *O)
    y = win.transpose(perm).reshape(a4.shape[0], a4.shape[1] * int(np.prod(kernel)), -1)
    interior = (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, a4.shape[2:]))

    def backward(g):
        gx = fold_windows(g.reshape(cols_shape), xp.shape[2:], stride, dilation)[interior]
        return (gx if batched else gx[0],)

    return record(y if batched else y[0], (x,), backward)


def fold(input: TensorLike, output_size: IntOrTuple, kernel_size: IntOrTuple, dilation: IntOrTuple = 1,
         padding: IntOrTuple = 0, stride: IntOrTuple = 1) -> ArrayOrTensor:
    """Sum columns back into an image (col2im): the adjoint of `unfold`.

    Overlapping windows add, so ``fold(unfold(x))`` multiplies each pixel by how many windows cover it.

    Parameters
    ----------
    input : ndarray or Tensor
        Columns as `unfold` returns them.
    output_size : int or tuple
        The spatial size of the image.
    kernel_size, dilation, padding, stride : int or tuple
        The windows the columns came from.

    Returns
    -------
    ndarray or Tensor
        The image; a Tensor when `input` is one.

    Shape
    -----
    (N, C * prod(kernel_size), L) or (C * prod(kernel_size), L) -> (N, C, *output_size).

    Examples
    --------
    >>> import numpy as np, convolve.functional as F
    >>> F.fold(F.unfold(np.ones((1, 1, 3, 3)), 2), (3, 3), 2)[0, 0]      # windows covering each pixel
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    nd = _nd(kernel_size)
    if nd == 0:
        raise TypeError(f"kernel_size must be an int or a tuple of ints, but got {kernel_size!r}")
    x = as_input(input, "input")
    float_dtype("input", x)
    a = as_array(x)
    output_size = check_ints("output_size", output_size, nd, minimum=1)
    kernel = check_ints("kernel_size", kernel_size, nd, minimum=1)
    dilation = check_ints("dilation", dilation, nd, minimum=1)
    padding = check_ints("padding", padding, nd, minimum=0)
    stride = check_ints("stride", stride, nd, minimum=1)
    if a.ndim not in (2, 3):
        raise ValueError(f"fold expects input of shape (N, C*prod(kernel_size), L) or (C*prod(kernel_size), L), but got {a.shape}")
    batched = a.ndim == 3
    a3 = a if batched else a[None]
    kp = int(np.prod(kernel))
    if a3.shape[1] % kp:
        raise ValueError(f"input's dimension 1 ({a3.shape[1]}) must be divisible by prod(kernel_size) = {kp}")
    outs = tuple(out_size(n + 2 * p, k, s, d) for n, p, k, s, d in zip(output_size, padding, kernel, stride, dilation))
    if any(o < 1 for o in outs) or int(np.prod(outs)) != a3.shape[2]:
        raise ValueError(
            f"input has {a3.shape[2]} columns but output_size={output_size} with these kernel_size, "
            f"dilation, padding and stride gives {int(np.prod(outs)) if all(o > 0 for o in outs) else 0} window positions {outs}"
        )
    N, C = a3.shape[0], a3.shape[1] // kp
    padded = tuple(n + 2 * p for n, p in zip(output_size, padding))
    cols = a3.reshape((N, C) + kernel + outs)
    interior = (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(padding, output_size))
    y = fold_windows(cols, padded, stride, dilation)[interior]

    def backward(g):
        gp = np.pad(g, ((0, 0), (0, 0)) + tuple((p, p) for p in padding))
        win = windows(gp, kernel, stride, dilation)
        perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
        gc = win.transpose(perm).reshape(a3.shape)
        return (gc if batched else gc[0],)

    if not batched:
        y = y[0]
        return record(y, (x,), lambda g: backward(g[None]))
    return record(np.ascontiguousarray(y), (x,), backward)
