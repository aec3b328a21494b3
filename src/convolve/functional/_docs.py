"""Docstring fragments shared by the functional ops, written once and formatted in (as PyTorch's
`convolution_notes`): each op keeps its own summary and examples, the common sections come from here."""

from __future__ import annotations

import textwrap
from typing import Any, Callable, Dict, TypeVar

__all__ = ["fill_doc", "SHAPES"]

F = TypeVar("F", bound=Callable[..., Any])

#: per number of spatial dims: the names used in Shape sections
SHAPES: Dict[int, Dict[str, str]] = {
    1: dict(in_shape="(N, C_in, L)", w_shape="(C_out, C_in/groups, kL)", out_shape="(N, C_out, L_out)",
            cl_shape="(N, L, C)", pair_example="(1, 2),", k="kL", shape="(N, C, L)", out="(N, C, L_out)"),
    2: dict(in_shape="(N, C_in, H, W)", w_shape="(C_out, C_in/groups, kH, kW)",
            out_shape="(N, C_out, H_out, W_out)", cl_shape="(N, H, W, C)", pair_example="(1, 2), (0, 1)",
            k="kH, kW", shape="(N, C, H, W)", out="(N, C, H_out, W_out)"),
    3: dict(in_shape="(N, C_in, D, H, W)", w_shape="(C_out, C_in/groups, kD, kH, kW)",
            out_shape="(N, C_out, D_out, H_out, W_out)", cl_shape="(N, D, H, W, C)",
            pair_example="(1, 1), (0, 1), (2, 0)", k="kD, kH, kW", shape="(N, C, D, H, W)",
            out="(N, C, D_out, H_out, W_out)"),
}

_DTYPE_NOTE = """\
dtype policy: float32 and float64 stay in their dtype; float16 is computed in float32 and returned
as float16; integer, bool and complex arrays are refused with a TypeError (convert explicitly).
NaN and inf propagate as in PyTorch."""

_RETURNS = """\
Returns
-------
ndarray or Tensor
    A Tensor (with its backward recorded) when any argument is a Tensor, else an array."""

FRAGMENTS = {
    "conv_parameters": """\
Parameters
----------
input : ndarray or Tensor
    {in_shape} (or unbatched without N; or channels-last, see `data_format`).
weight : ndarray or Tensor
    {w_shape}: C_out kernels, each C_in/groups deep (kernel depth = input depth / groups).
bias : ndarray or Tensor, optional
    (C_out,), one per kernel.
stride : int or tuple of {nd} ints
    Step between window positions.
padding : int, tuple, per-side pairs, 'valid' or 'same'
    An int or one int per spatial dim pads both sides; ``({pair_example})`` gives
    (before, after) per spatial dim (asymmetric). 'same' keeps output = ceil(input / stride), also
    for stride > 1 (TF/Keras convention: when the total padding is odd the extra pixel goes at the
    end; for stride 1 this equals PyTorch's 'same').
dilation : int or tuple of {nd} ints
    Spacing between kernel taps.
groups : int
    Split channels into `groups` independent convolutions (groups = C_in is depthwise).
padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}
    What the padding holds.
data_format : {{'channels_first', 'channels_last'}}, keyword-only
    'channels_last' reads input as {cl_shape} (Keras/JAX "NHWC") and returns output the same way;
    the weight layout does not change. Numbers are the same as channels-first.
algorithm : str, optional, keyword-only
    Force an engine algorithm by name (see ``convolve.engine_config.algorithms()``); None chooses.

{returns}

Shape
-----
- input: {in_shape}
- weight: {w_shape}
- output: {out_shape} where for each spatial dim
  ``out = floor((in + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``.

Notes
-----
{dtype_note}""",
    "convt_parameters": """\
Each input value spreads a weighted copy of its kernel over the output; overlapping copies add.

Parameters
----------
input : ndarray or Tensor
    {in_shape} (or unbatched without N; or channels-last with `data_format`).
weight : ndarray or Tensor
    (C_in, C_out/groups, {k}) -- PyTorch's transposed layout.
bias : ndarray or Tensor, optional
    (C_out,).
stride : int or tuple of {nd} ints
    Spacing of the kernel copies in the output.
padding : int, tuple of {nd} ints, or per-side (before, after) pairs
    Removes that many pixels from the ends of the full output.
output_padding : int or tuple of {nd} ints
    Adds pixels at the end; must be smaller than stride or dilation (it picks one of the input
    sizes a strided conv maps to the same output).
groups : int
    Split channels into `groups` independent transposed convolutions.
dilation : int or tuple of {nd} ints
    Spacing between kernel taps.
data_format : {{'channels_first', 'channels_last'}}, keyword-only
    As in conv{nd}d.
algorithm : str, optional, keyword-only
    As in conv{nd}d.

{returns}

Shape
-----
- input: {in_shape}
- weight: (C_in, C_out/groups, {k})
- output: {out_shape} where for each spatial dim
  ``out = (in - 1)*stride - pad_before - pad_after + dilation*(kernel-1) + output_padding + 1``.

Notes
-----
{dtype_note}""",
    "max_pool_parameters": """\
Parameters
----------
input : ndarray or Tensor
    {shape} or unbatched without N; channels-last with ``data_format='channels_last'``.
kernel_size : int or tuple of {nd} ints
    Window size.
stride : int or tuple of {nd} ints, optional
    Step between windows; defaults to kernel_size.
padding : int or tuple of {nd} ints
    Implicit -inf on both sides, at most half the kernel size.
dilation : int or tuple of {nd} ints
    Spacing between window taps.
ceil_mode : bool
    Use ceil instead of floor for the output size; a window must still start inside the input
    or the left padding.
return_indices : bool
    Also return the flat index (within each input plane) of every maximum.
data_format : {{'channels_first', 'channels_last'}}, keyword-only
    Where the channels are.

Returns
-------
ndarray or Tensor, or a pair (output, indices) with `return_indices`
    A Tensor (with its backward recorded) when `input` is a Tensor; indices are an int64 array.

Shape
-----
- input: {shape}
- output: {out} where for each spatial dim
  ``out = floor_or_ceil((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.

Notes
-----
Ties go to the first maximum in window order; a NaN in a window wins, as in PyTorch.""",
    "avg_pool_parameters": """\
Parameters
----------
input : ndarray or Tensor
    {shape} or unbatched without N; channels-last with ``data_format='channels_last'``.
kernel_size : int or tuple of {nd} ints
    Window size.
stride : int or tuple of {nd} ints, optional
    Step between windows; defaults to kernel_size.
padding : int or tuple of {nd} ints
    Implicit zeros on both sides, at most half the kernel size.
ceil_mode : bool
    As in max pooling; windows hanging past the padding divide by the part that fits.
count_include_pad : bool
    Whether zero padding counts in the divisor.
divisor_override : int, optional
    Divide by this instead.
data_format : {{'channels_first', 'channels_last'}}, keyword-only
    Where the channels are.

{returns}

Shape
-----
- input: {shape}
- output: {out} where for each spatial dim
  ``out = floor_or_ceil((in + 2*padding - kernel) / stride) + 1``.""",
}


def fill_doc(nd: int) -> Callable[[F], F]:
    """Format the shared fragments (for `nd` spatial dims) into a function's docstring.

    A docstring is None under ``python -OO``; it is then left alone.
    """

    def decorate(func: F) -> F:
        if func.__doc__ is not None:
            names = dict(SHAPES[nd], nd=str(nd), returns=_RETURNS, dtype_note=_DTYPE_NOTE)
            parts = {key: textwrap.indent(text.format(**names), "    ").lstrip() for key, text in FRAGMENTS.items()}
            func.__doc__ = func.__doc__.format(**parts)
        return func

    return decorate
