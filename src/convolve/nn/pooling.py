"""Pooling layers (max, average, adaptive); each calls the matching `convolve.functional` op."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

from .. import functional as F
from .._shared.checks import check_bool, check_ints, is_int
from .._shared.types import ArrayOrTensor, IntOrTuple, TensorLike
from .module import Module

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d",
]

def _check_window(nd: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> None:
    """Validate at construction, so a bad layer fails when built rather than mid-training."""
    check_ints("kernel_size", kernel_size, nd, minimum=1)
    if stride is not None:
        check_ints("stride", stride, nd, minimum=1)
    check_ints("padding", padding, nd, minimum=0)
    check_ints("dilation", dilation, nd, minimum=1)


def _check_output_size(nd: int, output_size: Any) -> None:
    sizes = (output_size,) * nd if is_int(output_size) or output_size is None else output_size
    if not isinstance(sizes, (tuple, list)) or len(sizes) != nd or not all(o is None or is_int(o) for o in sizes):
        raise TypeError(f"output_size must be an int or a tuple of {nd} (int or None), but got {output_size!r}")
    if any(o is not None and o <= 0 for o in sizes):
        raise ValueError(f"output_size must be positive (or None), but got {output_size!r}")


class _MaxPoolNd(Module):
    nd = 0

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 dilation: IntOrTuple = 1, return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        _check_window(self.nd, kernel_size, stride, padding, dilation)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices = check_bool("return_indices", return_indices)
        self.ceil_mode = check_bool("ceil_mode", ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def _after_relu(self, input: TensorLike) -> Any:
        """self(relu(input)) as one fused op (Sequential calls it for ReLU -> MaxPool); None if it cannot."""
        own = {1: MaxPool1d, 2: MaxPool2d, 3: MaxPool3d}[self.nd]
        if self.return_indices or type(self).forward is not own.forward:
            return None
        fused = {1: F.relu_max_pool1d, 2: F.relu_max_pool2d, 3: F.relu_max_pool3d}[self.nd]
        return fused(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class _AvgPoolNd(Module):
    nd = 0

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None, padding: IntOrTuple = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Optional[int] = None) -> None:
        super().__init__()
        _check_window(self.nd, kernel_size, stride, padding)
        if self.nd == 1:  # PyTorch keeps AvgPool1d's arguments as 1-tuples (visible in the repr)
            kernel_size = check_ints("kernel_size", kernel_size, 1, minimum=1)
            padding = check_ints("padding", padding, 1, minimum=0)
            stride = None if stride is None else check_ints("stride", stride, 1, minimum=1)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, check_bool("ceil_mode", ceil_mode)
        self.count_include_pad = check_bool("count_include_pad", count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptiveAvgPoolNd(Module):
    nd = 0

    def __init__(self, output_size: Union[int, None, Tuple[Optional[int], ...]]) -> None:
        super().__init__()
        _check_output_size(self.nd, output_size)
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"



class MaxPool1d(_MaxPoolNd):
    """1-D max pooling layer: ``F.max_pool1d`` with the same arguments (stride defaults to kernel_size).

    Shape
    -----
    - input: (N, C, L)
    - output: (N, C, L_out), ``out = floor_or_ceil((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.MaxPool1d(2)(np.ones((1, 3, 8))).shape
    (1, 3, 4)
    """

    nd = 1

    def forward(self, input: TensorLike) -> Any:
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling layer: ``F.max_pool2d`` with the same arguments (stride defaults to kernel_size).

    Shape
    -----
    - input: (N, C, H, W)
    - output: (N, C, H_out, W_out), ``out = floor_or_ceil((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.MaxPool2d(2)(np.ones((1, 3, 8, 8))).shape
    (1, 3, 4, 4)
    """

    nd = 2

    def forward(self, input: TensorLike) -> Any:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling layer: ``F.max_pool3d`` with the same arguments (stride defaults to kernel_size).

    Shape
    -----
    - input: (N, C, D, H, W)
    - output: (N, C, D_out, H_out, W_out), ``out = floor_or_ceil((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.MaxPool3d(2)(np.ones((1, 3, 8, 8, 8))).shape
    (1, 3, 4, 4, 4)
    """

    nd = 3

    def forward(self, input: TensorLike) -> Any:
        return F.max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling layer: ``F.avg_pool1d`` with the same arguments.

    Shape
    -----
    - input: (N, C, L)
    - output: (N, C, L_out), ``out = floor_or_ceil((in + 2*padding - kernel) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.AvgPool1d(3, stride=1, padding=1)(np.ones((1, 1, 4)))
    array([[[0.66666667, 1.        , 1.        , 0.66666667]]])
    """

    nd = 1

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling layer: ``F.avg_pool2d`` with the same arguments.

    Shape
    -----
    - input: (N, C, H, W)
    - output: (N, C, H_out, W_out), ``out = floor_or_ceil((in + 2*padding - kernel) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.AvgPool2d(2)(np.ones((1, 3, 8, 8))).shape
    (1, 3, 4, 4)
    """

    nd = 2

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling layer: ``F.avg_pool3d`` with the same arguments.

    Shape
    -----
    - input: (N, C, D, H, W)
    - output: (N, C, D_out, H_out, W_out), ``out = floor_or_ceil((in + 2*padding - kernel) / stride) + 1``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.AvgPool3d(2)(np.ones((1, 3, 8, 8, 8))).shape
    (1, 3, 4, 4, 4)
    """

    nd = 3

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-D adaptive average pooling to a fixed `output_size` (``F.adaptive_avg_pool1d``).

    Shape
    -----
    - input: (N, C, L)
    - output: (N, C, *output_size); cell i covers ``[floor(i·in/out), ceil((i+1)·in/out))``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.AdaptiveAvgPool1d(2)(np.arange(6.).reshape(1, 1, 6))
    array([[[1., 4.]]])
    """

    nd = 1

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2-D adaptive average pooling to a fixed `output_size` (``F.adaptive_avg_pool2d``).

    Shape
    -----
    - input: (N, C, H, W)
    - output: (N, C, *output_size); cell i covers ``[floor(i·in/out), ceil((i+1)·in/out))``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.AdaptiveAvgPool2d((1, None))(np.ones((1, 3, 7, 5))).shape   # None keeps W
    (1, 3, 1, 5)
    """

    nd = 2

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-D adaptive average pooling to a fixed `output_size` (``F.adaptive_avg_pool3d``).

    Shape
    -----
    - input: (N, C, D, H, W)
    - output: (N, C, *output_size); cell i covers ``[floor(i·in/out), ceil((i+1)·in/out))``.

    Examples
    --------
    >>> import numpy as np, convolve.nn as nn
    >>> nn.AdaptiveAvgPool3d(1)(np.ones((1, 3, 4, 5, 6))).shape
    (1, 3, 1, 1, 1)
    """

    nd = 3

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        return F.adaptive_avg_pool3d(input, self.output_size)


class AdaptiveMaxPool2d(Module):
    """2-D adaptive max pooling to a fixed `output_size` (``F.adaptive_max_pool2d``).

    Shape
    -----
    (N, C, H, W) -> (N, C, *output_size).
    """

    def __init__(self, output_size: Union[int, None, Tuple[Optional[int], ...]], return_indices: bool = False) -> None:
        super().__init__()
        _check_output_size(2, output_size)
        self.output_size, self.return_indices = output_size, check_bool("return_indices", return_indices)

    def forward(self, input: TensorLike) -> Any:
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
