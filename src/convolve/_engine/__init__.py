"""Convolution algorithms behind one interface.

Every algorithm is a module (or object) implementing `_algorithm.Algorithm`, for channels-first,
already padded input:

- ``name`` (what ``algorithm=`` takes) and ``local`` (meets the numerical-locality policy below);
- ``supports(op, x_shape, w_shape, stride, dilation, groups)`` -> None, or a sentence saying why not;
- ``workspace(op, x_shape, w_shape, stride, dilation, groups, itemsize)`` -> bytes of temporaries;
- ``cost(op, x_shape, w_shape, stride, dilation, groups, itemsize)`` -> estimated seconds, from the
  machine model in `_cost`;
- ``forward(x, w, bias, stride, dilation, groups) -> y``
- ``grad_input(gy, w, x_shape, stride, dilation, groups) -> dL/dx``
- ``grad_weight(x, gy, w_shape, stride, dilation, groups) -> dL/dw``

Shapes: x (N, C, *S), w (O, C/groups, *K), y (N, O, *P) with
P = floor((S - dilation·(K-1) - 1) / stride) + 1.

Algorithms (`select.REGISTRY`): ``reference`` (the oracle), ``gemm`` (im2col), ``kn2row``
(shift-GEMM), ``winograd2`` and ``winograd4`` (F(2x2,3x3), F(4x4,3x3)), ``fft`` (global),
``tiled_fft`` (overlap-save in 32-wide tiles), ``depthwise`` and ``direct`` (tap by tap, no im2col).
Compiled kernels (numba, `kernels`) run inside winograd4, winograd2 (forward and input gradient),
direct and depthwise when the tier is on; their NumPy twins otherwise. `select.choose` takes the least
`cost` among those that support a call (for weights marked constant, `constants`, without the cost of
transforming them: an inference plan's Winograd kernel is transformed once);
`chunks` runs it under the memory cap. Adding an algorithm is one module plus one line in `select.REGISTRY`. Algorithms that
use the stride-1 "wide" layout take it from `windows` (`wide_applies` guards it).

Numerical locality (the policy the automatic choice keeps; docs/speed.md). For every output p of
an automatically chosen algorithm: where the exact result is NaN or inf, ours is too; where no NaN or
inf lies within ``reach`` positions (one tile) of p's window, ours is finite and within 64·u·A(p) of
the exact value (256·u·A(p) for Winograd F(4x4, 3x3), whose transforms magnify rounding up to
256-fold), u the dtype's unit roundoff and A(p) the largest Σ|w|·|x| over the windows within
``reach`` of p. Algorithms that meet it say ``local = True``; the global FFT does not (its rounding
follows the loudest value of the whole plane, one NaN reaches every output) and runs only when asked
for: ``algorithm="fft"`` or ``engine_config.set_precision("fast")``; ``tiled_fft`` keeps it local by
running it tile by tile. tests/test_locality.py checks the policy.

Why the gradients are convolutions too. Write the forward pass as
``y[n, o, p] = Σ_{c,k} w[o, c, k] · x[n, c, s·p + d·k]``. It is linear in x and in w, so:

- dL/dw[o, c, k] = Σ_{n,p} gy[n, o, p] · x[n, c, s·p + d·k]: a correlation of the input with the
  output gradient (the output gradient plays the kernel, dilated by the stride).
- dL/dx[n, c, i] = Σ_{o,k,p: s·p + d·k = i} gy[n, o, p] · w[o, c, k]: the transposed convolution of the
  output gradient, i.e. a convolution of gy spread out by the stride (zeros between samples) with
  the flipped kernel, channels in and out exchanged. `fold_windows` performs exactly this sum.

The transposed convolution's forward is ``grad_input`` and its gradients are ``forward`` and
``grad_weight`` with the roles of input and output exchanged: one engine, three uses.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from . import chunks, constants, trim
from .config import settings
from .select import ALGORITHMS, choose, tune
from .windows import out_size

__all__ = ["forward", "grad_input", "grad_weight", "ALGORITHMS", "choose", "check_size"]


@functools.lru_cache(maxsize=None)
def _memory_bytes() -> int:
    """This machine's physical memory (a large number where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**50


def check_size(shape, dtype, what, because="") -> None:
    """Refuse up front an array that could not fit in this machine's memory, naming its size."""
    nbytes = int(np.prod([int(s) for s in shape], dtype=object)) * np.dtype(dtype).itemsize
    if nbytes > _memory_bytes():
        raise ValueError(
            f"{what}{because} would be {tuple(int(s) for s in shape)} {np.dtype(dtype).name}: "
            f"{nbytes / 2**30:,.1f} GiB, more than this machine's memory ({_memory_bytes() / 2**30:,.1f} GiB)"
        )


def _pads(padding, nd):
    return None if padding is None else tuple((int(a), int(b)) for a, b in padding)


def _outs(x_shape, w_shape, stride, dilation, pads):
    xp = chunks.padded_shape(x_shape, pads)
    return tuple(out_size(s, k, st, d) for s, k, st, d in zip(xp[2:], w_shape[2:], stride, dilation))


def _trim(x_shape, w_shape, stride, dilation, pads, algorithm, mode="zeros"):
    """Drop the taps that read padding only (automatic choice and zero padding only)."""
    if algorithm is not None or pads is None or mode != "zeros":
        return None
    return trim.plan(x_shape[2:], w_shape[2:], stride, dilation, pads, _outs(x_shape, w_shape, stride, dilation, pads))


def _kept(t):
    return (slice(None), slice(None)) + t.taps


# (call, settings) -> algorithm: the cost model's answer for a shape is computed once (a small conv's
# choice otherwise costs more than its arithmetic). Bounded: cleared when it fills.
_choices: dict = {}
_CHOICES_MAX = 4096


def _dispatch(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm, run, constant=False):
    """run(the algorithm for this call); `constant`: the weights are marked constant (`constants`),
    so the costs leave out transforming them (`select.choose`)."""
    if algorithm is None and settings["autotune"]:
        return tune(op, x_shape, w_shape, stride, dilation, groups, dtype, run)
    key = (op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm, constant, tuple(settings.values()))
    algo = _choices.get(key)
    if algo is None:
        algo = choose(op, x_shape, w_shape, stride, dilation, groups, dtype, algorithm, constant)
        if len(_choices) >= _CHOICES_MAX:
            _choices.clear()
        _choices[key] = algo
    return run(algo)


# (op, shapes, stride, dilation, pads, algorithm) -> (output sizes, trim plan), computed and checked
# once per geometry: a small conv's call otherwise spends more on it than on its arithmetic.
# Stored only after the checks passed (check_size raises before anything is stored). Bounded.
_geometries: dict = {}


def _geometry(op, x_shape, w_shape, stride, dilation, pads, algorithm, dtype, mode="zeros"):
    key = (op, x_shape, w_shape, stride, dilation, pads, algorithm, dtype, mode)
    g = _geometries.get(key)
    if g is None:
        outs = _outs(x_shape, w_shape, stride, dilation, pads)
        if op == "forward":
            check_size((x_shape[0], w_shape[0]) + outs, dtype, "the output", f" of padding {pads}" if pads else "")
        g = (outs, _trim(x_shape, w_shape, stride, dilation, pads, algorithm, mode))
        if len(_geometries) >= _CHOICES_MAX:
            _geometries.clear()
        _geometries[key] = g
    return g


def forward(x, w, bias, stride, dilation, groups, algorithm=None, padding=None, padding_mode="zeros"):
    """y = conv(x padded by `padding`, w) + bias; x (N, C, *S), `padding` (before, after) per axis,
    `padding_mode` "zeros" or one of `edges.COPY_MODES` (pads already checked against the input size)."""
    stride, dilation, pads = tuple(stride), tuple(dilation), _pads(padding, x.ndim - 2)
    outs, t = _geometry("forward", x.shape, w.shape, stride, dilation, pads, algorithm, x.dtype, padding_mode)
    shape = (x.shape[0], w.shape[0]) + outs
    if x.size == 0 or w.size == 0 or (t is not None and t.empty):  # a sum over nothing (or over zeros)
        y = np.zeros(shape, dtype=x.dtype)
        if bias is not None:
            y += bias.reshape((1, -1) + (1,) * len(outs))
    else:
        wk, pk = (w, pads) if t is None else (w[_kept(t)], t.pads)
        xp = chunks.padded_shape(x.shape, pk)
        y = _dispatch("forward", xp, wk.shape, stride, dilation, groups, x.dtype, algorithm,
                      lambda a: chunks.forward(a, x, wk, bias, stride, dilation, groups, settings["memory_limit"], pk,
                                               padding_mode), constants.marked(wk))
    if t is not None and x.shape[0] and not np.isfinite(w).all():  # dropped taps: 0·inf is NaN
        bad = ~np.isfinite(w)
        bad[_kept(t)] = False
        y[:, bad.reshape(w.shape[0], -1).any(axis=1)] = np.nan
    return y


def grad_input(gy, w, x_shape, stride, dilation, groups, algorithm=None, padding=None, padding_mode="zeros"):
    """dL/dx for the unpadded x of shape `x_shape` (zero padding's part of the gradient dropped, a copy
    mode's sent back to the positions it copied)."""
    stride, dilation, x_shape, pads = tuple(stride), tuple(dilation), tuple(x_shape), _pads(padding, len(x_shape) - 2)
    t = _geometry("grad_input", x_shape, w.shape, stride, dilation, pads, algorithm, gy.dtype, padding_mode)[1]
    if gy.size == 0 or w.size == 0 or 0 in x_shape or (t is not None and t.empty):
        return np.zeros(x_shape, dtype=gy.dtype)
    wk, pk = (w, pads) if t is None else (w[_kept(t)], t.pads)  # dropped taps only reach padding
    return _dispatch("grad_input", chunks.padded_shape(x_shape, pk), wk.shape, stride, dilation, groups, gy.dtype,
                     algorithm, lambda a: chunks.grad_input(a, gy, wk, x_shape, stride, dilation, groups,
                                                            settings["memory_limit"], pk, padding_mode))


def grad_weight(x, gy, w_shape, stride, dilation, groups, algorithm=None, padding=None, padding_mode="zeros"):
    """dL/dw from x (padded by `padding` in `padding_mode`) and the output gradient."""
    stride, dilation, w_shape, pads = tuple(stride), tuple(dilation), tuple(w_shape), _pads(padding, x.ndim - 2)
    t = _geometry("grad_weight", x.shape, w_shape, stride, dilation, pads, algorithm, gy.dtype, padding_mode)[1]
    gw = np.zeros(w_shape, dtype=gy.dtype)
    if x.size == 0 or gy.size == 0 or 0 in w_shape:
        return gw
    if t is not None and not np.isfinite(gy).all():  # dropped taps: Σ gy·0 is NaN where gy is not finite
        gw[~np.isfinite(gy).all(axis=(0,) + tuple(range(2, gy.ndim)))] = np.nan
    if t is not None and t.empty:
        return gw
    if t is None:
        xp = chunks.padded_shape(x.shape, pads)
        return _dispatch("grad_weight", xp, w_shape, stride, dilation, groups, x.dtype, algorithm,
                         lambda a: chunks.grad_weight(a, x, gy, w_shape, stride, dilation, groups,
                                                      settings["memory_limit"], pads, padding_mode))
    kept = gw[_kept(t)].shape
    gw[_kept(t)] = _dispatch("grad_weight", chunks.padded_shape(x.shape, t.pads), kept, stride, dilation, groups,
                             x.dtype, algorithm, lambda a: chunks.grad_weight(a, x, gy, kept, stride, dilation, groups,
                                                                              settings["memory_limit"], t.pads))
    return gw
