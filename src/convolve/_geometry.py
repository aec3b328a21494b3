"""Shape rules of sliding windows, written once: convolution, transposed convolution and pooling.

`convolve.functional` (conv, pooling) and `convolve.explain` (shapes, specs) both ask these
functions, so whatever ``F.max_pool2d`` refuses, ``explain`` refuses too, with the same numbers.
A broken rule raises `GeometryError`: a ValueError whose message is the functional API's, and
whose fields (`rule`, `dim` and the numbers) let a caller such as explain word it for its readers
without reading the message.

Per spatial dim, with pb/pe the padding before/after, k the kernel, s the stride, d the dilation:

- conv: ``out = floor((n + pb + pe - d·(k-1) - 1) / s) + 1``, and the dilated kernel
  ``d·(k-1) + 1`` must fit in the padded input;
- transposed conv: ``out = (n-1)·s - pb - pe + d·(k-1) + output_padding + 1``, with
  output_padding < stride or < dilation, and at least one output left after cropping;
- pooling (PyTorch's limits): padding <= k // 2, the same padding on both sides;
  ``out = floor or ceil((n + 2p - d·(k-1) - 1) / s) + 1``, and in ceil mode the last window must
  start inside the input or the left padding.
"""

from __future__ import annotations

from typing import Tuple

from ._shared.checks import check_ints, is_int

__all__ = ["GeometryError", "out_size", "same_padding", "padding_pairs", "conv_output", "transposed_output", "pool_stride",
           "pool_padding_limit", "pool_output"]

Ints = Tuple[int, ...]
Pairs = Tuple[Tuple[int, int], ...]


class GeometryError(ValueError):
    """A shape rule that does not hold. ``rule`` names it; ``dim`` is the spatial dim (0 = first);
    ``values`` holds the numbers the rule compared."""

    def __init__(self, message: str, rule: str = "", dim: int = -1, **values):  # message alone: re-raised copies
        super().__init__(message)
        self.rule, self.dim, self.values = rule, dim, values


def out_size(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> int:
    """Number of window positions: floor((size - dilation*(kernel-1) - 1) / stride) + 1."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(spatial, kernel, stride, dilation) -> Pairs:
    """'same' padding, TF/Keras convention: output = ceil(input / stride), the odd pixel at the end."""
    pairs = []
    for n, k, s, d in zip(spatial, kernel, stride, dilation):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def conv_output(spatial, kernel, stride, dilation, pairs) -> Ints:
    """Output sizes of a convolution of `spatial` padded by `pairs` ((before, after) per dim)."""
    outs = []
    for i, (n, k, s, d, (pb, pe)) in enumerate(zip(spatial, kernel, stride, dilation, pairs)):
        eff = d * (k - 1) + 1
        if n + pb + pe < eff:
            raise GeometryError(
                f"kernel size {eff} (kernel {k}, dilation {d}) is larger than the padded input "
                f"size {n + pb + pe} (input {n} + padding {pb}+{pe}) in spatial dimension {i}",
                "kernel_too_large", i, size=n, kernel=k, stride=s, dilation=d, before=pb, after=pe, span=eff)
        outs.append(out_size(n + pb + pe, k, s, d))
    return tuple(outs)


def transposed_output(spatial, kernel, stride, dilation, pairs, output_padding) -> Tuple[Ints, Pairs]:
    """(full frame per dim, (start, stop) that the padding leaves of it) of a transposed convolution;
    the output sizes are ``stop - start``."""
    full, crop = [], []
    for i, (n, k, s, d, (pb, pe), op) in enumerate(zip(spatial, kernel, stride, dilation, pairs, output_padding)):
        if op >= s and op >= d:
            raise GeometryError(
                f"output_padding must be smaller than either stride or dilation, but got output_padding={op}, "
                f"stride={s}, dilation={d} in spatial dimension {i}",
                "output_padding", i, output_padding=op, stride=s, dilation=d)
        f = (n - 1) * s + d * (k - 1) + 1 + op
        if f - pb - pe <= 0:
            raise GeometryError(
                f"padding {pb}+{pe} removes the whole output (size {f} before cropping) in spatial dimension {i}",
                "cropped_away", i, before=pb, after=pe, frame=f)
        full.append(f)
        crop.append((pb, f - pe))
    return tuple(full), tuple(crop)


def pool_stride(stride, kernel):
    """PyTorch's default: without a stride (None or an empty tuple) a pooling window moves by its size."""
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return stride


def pool_padding_limit(kernel: int) -> int:
    """The most padding a pooling window of `kernel` taps takes (PyTorch: half the kernel size, for
    max and average pooling alike; more would let a window see padding only)."""
    return kernel // 2


def pool_output(spatial, kernel, stride, padding, dilation, ceil_mode) -> Tuple[Ints, Ints]:
    """(output sizes, extra end padding that ceil mode needs) of a pooling window."""
    outs, extra = [], []
    for i, (n, k, s, p, d) in enumerate(zip(spatial, kernel, stride, padding, dilation)):
        eff = d * (k - 1) + 1
        limit = pool_padding_limit(k)
        if p > limit:
            raise GeometryError(
                f"padding should be at most half of the kernel size ({limit}), but got padding={p} "
                f"for kernel_size={k}, dilation={d} in spatial dimension {i}",
                "pool_padding", i, padding=p, kernel=k, dilation=d, limit=limit)
        span = n + 2 * p - eff
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p:  # the last window must start inside input or left pad
            o -= 1
        if o < 1 or span < 0:
            raise GeometryError(
                f"output size is too small: input size {n} with padding {p} is smaller than the "
                f"kernel size {eff} (kernel {k}, dilation {d}) in spatial dimension {i}",
                "kernel_too_large", i, size=n, kernel=k, stride=s, dilation=d, before=p, after=p, span=eff)
        outs.append(o)
        extra.append(max(0, (o - 1) * s + eff - (n + 2 * p)))
    return tuple(outs), tuple(extra)


def padding_pairs(padding, nd: int, name: str = "padding") -> tuple:
    """int | tuple of nd ints | tuple of nd (before, after) pairs  ->  nd (before, after) pairs."""
    if is_int(padding) or (
        isinstance(padding, (tuple, list)) and len(padding) == nd and all(is_int(p) for p in padding)
    ):
        pairs = tuple((p, p) for p in check_ints(name, padding, nd))
    elif (
        isinstance(padding, (tuple, list))
        and len(padding) == nd
        and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(v) for v in p) for p in padding)
    ):
        pairs = tuple((int(a), int(b)) for a, b in padding)
    else:
        raise TypeError(
            f"{name} must be 'valid', 'same', an int, a tuple of {nd} ints, or {nd} (before, after) "
            f"pairs, but got {padding!r}"
        )
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"{name} must be non-negative, but got {padding!r}")
    return pairs
