"""Convolution layers: parameters (PyTorch's layout and default init) + one call to `convolve.functional`."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from .. import functional as F
from .._shared.checks import check_bool, check_int, check_ints, is_int
from .._shared.types import ArrayOrTensor, IntOrTuple, Padding, TensorLike
from ..functional.conv import PADDING_MODES
from . import init
from ._layer import empty_parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

def _padding_arg(padding, nd):
    """Keep strings and per-side pairs as given; ints become an nd-tuple (for the repr)."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, but got {padding!r}")
        return padding
    if is_int(padding) or (isinstance(padding, (tuple, list)) and all(is_int(p) for p in padding)):
        return check_ints("padding", padding, nd, minimum=0)
    return tuple(tuple(p) for p in padding)  # (before, after) pairs; the functional op validates them


class _ConvNd(Module):
    """What every conv layer shares: argument checks, the weight and bias, their init and the repr."""

    nd = 0
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding, dtype):
        super().__init__()
        nd = self.nd
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        self.groups = check_int("groups", groups, minimum=1)
        if in_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")
        allowed = ("zeros",) if self.transposed else PADDING_MODES
        if padding_mode not in allowed:
            raise ValueError(f"padding_mode must be one of {list(allowed)}, but got {padding_mode!r}")
        self.kernel_size = check_ints("kernel_size", kernel_size, nd, minimum=1)
        self.stride = check_ints("stride", stride, nd, minimum=1)
        self.dilation = check_ints("dilation", dilation, nd, minimum=1)
        self.padding = _padding_arg(padding, nd)
        if self.transposed and isinstance(self.padding, str):
            raise ValueError(f"ConvTranspose{nd}d takes numeric padding, but got {padding!r}")
        self.output_padding = check_ints("output_padding", output_padding, nd, minimum=0)
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = empty_parameter(shape, dtype)
        if check_bool("bias", bias):
            self.bias = empty_parameter((out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, *, generator: Any = None) -> None:
        """PyTorch's default: kaiming_uniform(a=sqrt(5)) weight, U(±1/sqrt(fan_in)) bias."""
        init.default_weight_and_bias_(self.weight, self.bias, generator=generator)

    def extra_repr(self) -> str:
        nd = self.nd
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * nd:
            s += f", padding={self.padding}"  # 'same' prints bare, as PyTorch
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _ConvTransposeNd(_ConvNd):
    transposed = True

    def _output_padding(self, input: Any, output_size: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """The output_padding that gives `output_size` (PyTorch's ``forward(input, output_size)``)."""
        nd = self.nd
        if output_size is None:
            return self.output_padding
        spatial = input.shape[-nd:]
        size = tuple(output_size)[-nd:] if isinstance(output_size, (tuple, list)) else None
        if size is None or len(size) != nd or not all(is_int(v) for v in size):
            raise TypeError(f"output_size must be a tuple of at least {nd} ints, but got {output_size!r}")
        pads = check_ints("padding", self.padding, nd) if not isinstance(self.padding[0], tuple) else None
        if pads is None:
            raise ValueError("output_size needs symmetric padding")
        result = []
        for i, (n, k, s, p, d, want) in enumerate(zip(spatial, self.kernel_size, self.stride, pads,
                                                        self.dilation, size)):
            smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
            if not smallest <= want < smallest + max(s, d):
                raise ValueError(
                    f"output_size {want} in spatial dimension {i} is not reachable: it must be in "
                    f"[{smallest}, {smallest + max(s, d) - 1}] for input size {n}"
                )
            result.append(want - smallest)
        return tuple(result)


_CONV_DOC = """
    Parameters
    ----------
    in_channels, out_channels : int
        Input depth and number of kernels.
    kernel_size : int or tuple of {nd} ints
    stride, dilation : int or tuple of {nd} ints
    padding : int, tuple, per-side (before, after) pairs, 'valid' or 'same'
    groups : int
        in_channels and out_channels must both divide by it.
    bias : bool
        Whether to learn a bias per output channel.
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}
    dtype : numpy float dtype, optional, keyword-only
        Parameter dtype (float32 by default).

    Attributes
    ----------
    weight : Parameter
        (out_channels, in_channels/groups, *kernel_size), kaiming_uniform(a=sqrt(5)) like PyTorch.
    bias : Parameter or None
        (out_channels,), U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Shape
    -----
    - input: {in_shape}
    - output: {out_shape}, ``out = floor((in + pad_total - dilation*(kernel-1) - 1) / stride) + 1``.
"""

_CONVT_DOC = """
    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of {nd} ints
    stride, padding, output_padding, dilation : int or tuple of {nd} ints
    groups : int
    bias : bool
    padding_mode : 'zeros'
        The only mode PyTorch supports here.
    dtype : numpy float dtype, optional, keyword-only

    Attributes
    ----------
    weight : Parameter
        (in_channels, out_channels/groups, *kernel_size) -- PyTorch's transposed layout.
    bias : Parameter or None
        (out_channels,).

    Shape
    -----
    - input: {in_shape}
    - output: {out_shape}, ``out = (in - 1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1``;
      ``forward(input, output_size=...)`` picks the output_padding that gives that size.
"""

_SHAPES = {1: ("(N, C_in, L)", "(N, C_out, L_out)"), 2: ("(N, C_in, H, W)", "(N, C_out, H_out, W_out)"),
           3: ("(N, C_in, D, H, W)", "(N, C_out, D_out, H_out, W_out)")}


def _doc(template: str, nd: int) -> Any:
    """Format the shared Parameters/Attributes/Shape sections into a layer's own docstring."""
    def decorate(cls: Any) -> Any:
        if cls.__doc__ is not None:  # None under python -OO
            in_shape, out_shape = _SHAPES[nd]
            sections = template.format(nd=nd, in_shape=in_shape, out_shape=out_shape).strip()
            cls.__doc__ = cls.__doc__.replace("{parameters}", sections + "\n")
        return cls
    return decorate


@_doc(_CONV_DOC, 1)
class Conv1d(_ConvNd):
    """1-D convolution layer: ``F.conv1d(input, weight, bias, stride, padding, dilation, groups, padding_mode)``.

    {parameters}
    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.Conv1d(2, 4, 3, padding=1)(np.ones((5, 2, 10), np.float32)).shape
    (5, 4, 10)
    """

    nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, dtype)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                        self.padding_mode)


@_doc(_CONV_DOC, 2)
class Conv2d(_ConvNd):
    """2-D convolution layer: ``F.conv2d(input, weight, bias, stride, padding, dilation, groups, padding_mode)``.

    {parameters}
    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> conv = nn.Conv2d(3, 8, 5, padding=2)                        # 8 kernels of 5x5x3
    >>> conv.weight.shape, conv.bias.shape
    ((8, 3, 5, 5), (8,))
    >>> conv(np.ones((1, 3, 64, 64), np.float32)).shape
    (1, 8, 64, 64)
    """

    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, dtype)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                        self.padding_mode)


@_doc(_CONV_DOC, 3)
class Conv3d(_ConvNd):
    """3-D convolution layer: ``F.conv3d(input, weight, bias, stride, padding, dilation, groups, padding_mode)``.

    {parameters}
    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.Conv3d(1, 2, 3, stride=2)(np.ones((1, 1, 9, 9, 9), np.float32)).shape
    (1, 2, 4, 4, 4)
    """

    nd = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, dtype)

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                        self.padding_mode)


@_doc(_CONVT_DOC, 1)
class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution layer: ``F.conv_transpose1d(...)``.

    {parameters}
    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1)(np.ones((1, 4, 8), np.float32)).shape
    (1, 2, 16)
    """

    nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", *, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, dtype)

    def forward(self, input: TensorLike, output_size: Optional[Sequence[int]] = None) -> ArrayOrTensor:
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


@_doc(_CONVT_DOC, 2)
class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer: ``F.conv_transpose2d(...)``.

    {parameters}
    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1)
    >>> x = np.ones((1, 8, 5, 5), np.float32)
    >>> up(x).shape, up(x, output_size=(10, 10)).shape             # output_size picks output_padding
    ((1, 4, 9, 9), (1, 4, 10, 10))
    """

    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", *, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, dtype)

    def forward(self, input: TensorLike, output_size: Optional[Sequence[int]] = None) -> ArrayOrTensor:
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


@_doc(_CONVT_DOC, 3)
class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution layer: ``F.conv_transpose3d(...)``.

    {parameters}
    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.ConvTranspose3d(2, 1, 2, stride=2)(np.ones((1, 2, 3, 3, 3), np.float32)).shape
    (1, 1, 6, 6, 6)
    """

    nd = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", *, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, dtype)

    def forward(self, input: TensorLike, output_size: Optional[Sequence[int]] = None) -> ArrayOrTensor:
        return F.conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)
