"""Max and average pooling through the compiled tier, for 1-D and 2-D windows on NCHW arrays.

`convolve.functional.pool` checks arguments and holds the NumPy twins; it calls here when
`usable` says the compiled kernels apply (numba on, float32/float64, 1 or 2 spatial dims).
Input ``(N, C, *S)``, outputs ``(N, C, *O)``; 1-D runs as H = 1. The kernels read contiguous
planes: a strided input (channels-last) is copied, in blocks of samples when the whole copy would
exceed the memory cap.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .config import settings

__all__ = ["usable", "max_pool", "max_pool_values", "max_pool_backward", "avg_pool", "avg_pool_backward"]


def usable(a: np.ndarray, nd: int) -> bool:
    """Whether the compiled pooling kernels take `a` (N, C, *spatial) with `nd` spatial dims."""
    return nd in (1, 2) and a.dtype in (np.float32, np.float64) and a.size > 0 and kernels.enabled()


def _blocks(n: int, strided, results) -> list:
    """Batch slices such that each block's copies of the `strided` arrays (those not C-contiguous)
    and its `results` (bytes, written into the whole results after) fit the memory cap."""
    copies = sum(a.nbytes for a in strided if not a.flags.c_contiguous)
    if not copies or n <= 1 or copies + results <= settings["memory_limit"]:
        return [slice(None)]
    nb = max(1, int(settings["memory_limit"] * n // (copies + results)))
    return [slice(i, i + nb) for i in range(0, n, nb)]


def _forward_in_blocks(fn, a: np.ndarray, shape, *args) -> np.ndarray:
    """``fn(a, *args)`` (one result of `shape`, a's dtype) over blocks of samples whose copies fit the cap."""
    blocks = _blocks(a.shape[0], (a,), int(np.prod(shape)) * a.itemsize)
    if len(blocks) == 1:
        return fn(a, *args)
    y = np.empty(shape, a.dtype)
    for b in blocks:
        y[b] = fn(a[b], *args)
    return y


def _gradient_in_blocks(fn, inputs, shape, *args) -> np.ndarray:
    """``fn(*inputs, shape, *args)`` (an input gradient of `shape`) over blocks of samples whose copies fit
    the cap; `inputs` are batch-first arrays, the first one gives the dtype."""
    g = inputs[0]
    blocks = _blocks(shape[0], inputs, int(np.prod(shape)) * g.itemsize)
    if len(blocks) == 1:
        return fn(*inputs, shape, *args)
    gx = np.empty(shape, g.dtype)
    for b in blocks:
        part = gx[b]
        part[...] = fn(*(t[b] for t in inputs), part.shape, *args)
    return gx


def _planes(a: np.ndarray, nd: int) -> np.ndarray:
    """(N, C, *S) as (N*C, H, W) (H = 1 for 1-D), contiguous."""
    s = a.shape[2:] if nd == 2 else (1,) + a.shape[2:]
    return np.ascontiguousarray(a).reshape((-1,) + s)


def _geom(win, nd):
    """(kh, kw, sh, sw, ph, pw, dh, dw) of a window (1-D: a 1 x k window)."""
    k, s, p, d = ((one,) + t if nd == 1 else t  # the H axis of 1-D: one row, no padding
                  for one, t in zip((1, 1, 0, 1), (win.kernel, win.stride, win.padding, win.dilation)))
    return k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1]


def _index_dtype(win):
    count = int(np.prod(win.kernel))
    return np.int8 if count < 2**7 else np.int16 if count < 2**15 else np.int64


def max_pool(a: np.ndarray, win, nd: int, relu: bool = False):
    """Max pooling of `a` over `win` (a PoolWindow); returns (y, arg) with arg the tap picked per output."""
    shape = a.shape[:2] + win.outs
    blocks = _blocks(a.shape[0], (a,), int(np.prod(shape)) * (a.itemsize + np.dtype(_index_dtype(win)).itemsize))
    if len(blocks) == 1:
        return _max_pool(a, win, nd, relu)
    y, arg = np.empty(shape, a.dtype), np.empty(shape, _index_dtype(win))
    for b in blocks:
        y[b], arg[b] = _max_pool(a[b], win, nd, relu)
    return y, arg


def _max_pool(a: np.ndarray, win, nd: int, relu: bool):
    from .kernels import pool as k
    from .kernels.threads import pick

    x = _planes(a, nd)
    oshape = x.shape[:1] + ((1,) + win.outs if nd == 1 else win.outs)
    y = np.empty(oshape, a.dtype)
    arg = np.empty(oshape, _index_dtype(win))
    g = _geom(win, nd)
    if g == (2, 2, 2, 2, 0, 0, 1, 1) and not any(win.extra):  # the common 2x2/2 window, specialised
        pick(k.max_pool2d_2x2, x.size)(x, relu, y, arg)
    else:
        pick(k.max_pool2d, y.size * g[0] * g[1])(x, *g, relu, y, arg)
    shape = a.shape[:2] + win.outs
    return y.reshape(shape), arg.reshape(shape)


def max_pool_values(a: np.ndarray, win, nd: int, relu: bool = False) -> np.ndarray:
    """Max pooling of `a` over `win` without the picks (no gradient will be asked for)."""
    return _forward_in_blocks(_max_pool_values, a, a.shape[:2] + win.outs, win, nd, relu)


def _max_pool_values(a, win, nd, relu):
    from .kernels import pool as k
    from .kernels.threads import pick

    x = _planes(a, nd)
    y = np.empty(x.shape[:1] + ((1,) + win.outs if nd == 1 else win.outs), a.dtype)
    g = _geom(win, nd)
    pick(k.max_pool2d_values, y.size * g[0] * g[1])(x, *g, relu, y)
    return y.reshape(a.shape[:2] + win.outs)


def max_pool_backward(g: np.ndarray, arg: np.ndarray, y: np.ndarray, shape, win, nd: int, relu: bool = False):
    """The input gradient (of `shape`) of max pooling: g routed to the picked taps."""
    return _gradient_in_blocks(_max_pool_backward, (g, arg, y), shape, win, nd, relu)


def _max_pool_backward(g, arg, y, shape, win, nd, relu):
    from .kernels import pool as k
    from .kernels.threads import pick

    gx = np.empty(shape, g.dtype)
    geom = _geom(win, nd)
    if geom == (2, 2, 2, 2, 0, 0, 1, 1) and not any(win.extra):
        pick(k.max_pool2d_2x2_backward, gx.size)(_planes(g, nd), _planes(arg, nd), _planes(y, nd), relu, _planes(gx, nd))
    else:
        pick(k.max_pool2d_backward, gx.size + g.size)(_planes(g, nd), _planes(arg, nd), _planes(y, nd), *geom, relu, _planes(gx, nd))
    return gx


def _div(div, win, nd, dtype):
    """The divisor of every output as a contiguous (OH, OW) array (1-D: (1, OW))."""
    outs = (1,) + win.outs if nd == 1 else win.outs
    return np.ascontiguousarray(np.broadcast_to(np.asarray(div, dtype), win.outs).reshape(outs))


def avg_pool(a: np.ndarray, win, nd: int, div) -> np.ndarray:
    """Average pooling: window sums over the input part divided by `div` (array over outputs, or a number)."""
    return _forward_in_blocks(_avg_pool, a, a.shape[:2] + win.outs, win, nd, div)


def _avg_pool(a, win, nd, div):
    from .kernels import pool as k
    from .kernels.threads import pick

    x = _planes(a, nd)
    kh, kw, sh, sw, ph, pw, _, _ = _geom(win, nd)
    y = np.empty(x.shape[:1] + ((1,) + win.outs if nd == 1 else win.outs), a.dtype)
    pick(k.avg_pool2d, y.size * kh * kw)(x, kh, kw, sh, sw, ph, pw, _div(div, win, nd, a.dtype), y)
    return y.reshape(a.shape[:2] + win.outs)


def avg_pool_backward(g: np.ndarray, shape, win, nd: int, div) -> np.ndarray:
    """The input gradient (of `shape`) of average pooling."""
    return _gradient_in_blocks(_avg_pool_backward, (g,), shape, win, nd, div)


def _avg_pool_backward(g, shape, win, nd, div):
    from .kernels import pool as k
    from .kernels.threads import pick

    kh, kw, sh, sw, ph, pw, _, _ = _geom(win, nd)
    gx = np.empty(shape, g.dtype)
    pick(k.avg_pool2d_backward, g.size * kh * kw + gx.size)(_planes(g, nd), kh, kw, sh, sw, ph, pw, _div(div, win, nd, g.dtype), _planes(gx, nd))
    return gx
