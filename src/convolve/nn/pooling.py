"""Pooling layers (max, average, adaptive); each calls the matching `convolve.functional` op."""

from __future__ import annotations

from .. import functional as F
from .._shared.checks import check_bool, check_ints, is_int
from .module import Module

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d",
]

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}


def _check_window(nd, kernel_size, stride, padding, dilation=1):
    """Validate at construction, so a bad layer fails when built rather than mid-training."""
    check_ints("kernel_size", kernel_size, nd, minimum=1)
    if stride is not None:
        check_ints("stride", stride, nd, minimum=1)
    check_ints("padding", padding, nd, minimum=0)
    check_ints("dilation", dilation, nd, minimum=1)


def _check_output_size(nd, output_size):
    sizes = (output_size,) * nd if is_int(output_size) or output_size is None else output_size
    if not isinstance(sizes, (tuple, list)) or len(sizes) != nd or not all(o is None or (is_int(o) and o > 0) for o in sizes):
        raise ValueError(f"output_size must be a positive int or a tuple of {nd} (positive int or None), but got {output_size!r}")


def _make_max(nd):
    class MaxPool(Module):
        def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
            super().__init__()
            _check_window(nd, kernel_size, stride, padding, dilation)
            self.kernel_size = kernel_size
            self.stride = kernel_size if stride is None else stride
            self.padding, self.dilation = padding, dilation
            self.return_indices = check_bool("return_indices", return_indices)
            self.ceil_mode = check_bool("ceil_mode", ceil_mode)

        def forward(self, input):
            return _MAX[nd](input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

        def extra_repr(self):
            return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                    f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    MaxPool.__name__ = MaxPool.__qualname__ = f"MaxPool{nd}d"
    MaxPool.__doc__ = f"""{nd}-D max pooling layer: ``F.max_pool{nd}d`` with the same arguments (stride defaults to kernel_size).

    Shape
    -----
    ``out = floor_or_ceil((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1`` per spatial dim.
    """
    return MaxPool


def _make_avg(nd):
    class AvgPool(Module):
        def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                     divisor_override=None):
            super().__init__()
            _check_window(nd, kernel_size, stride, padding)
            if nd == 1:  # PyTorch keeps AvgPool1d's arguments as 1-tuples (visible in the repr)
                kernel_size, padding = (check_ints("kernel_size", kernel_size, 1, minimum=1)), check_ints("padding", padding, 1, minimum=0)
                stride = None if stride is None else check_ints("stride", stride, 1, minimum=1)
            self.kernel_size = kernel_size
            self.stride = kernel_size if stride is None else stride
            self.padding, self.ceil_mode = padding, check_bool("ceil_mode", ceil_mode)
            self.count_include_pad = check_bool("count_include_pad", count_include_pad)
            self.divisor_override = divisor_override

        def forward(self, input):
            return _AVG[nd](input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

        def extra_repr(self):
            return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    AvgPool.__name__ = AvgPool.__qualname__ = f"AvgPool{nd}d"
    AvgPool.__doc__ = f"""{nd}-D average pooling layer: ``F.avg_pool{nd}d`` with the same arguments.

    Shape
    -----
    ``out = floor_or_ceil((in + 2*padding - kernel) / stride) + 1`` per spatial dim.
    """
    return AvgPool


def _make_adaptive_avg(nd):
    class AdaptiveAvgPool(Module):
        def __init__(self, output_size):
            super().__init__()
            _check_output_size(nd, output_size)
            self.output_size = output_size

        def forward(self, input):
            return _ADAPTIVE_AVG[nd](input, self.output_size)

        def extra_repr(self):
            return f"output_size={self.output_size}"

    AdaptiveAvgPool.__name__ = AdaptiveAvgPool.__qualname__ = f"AdaptiveAvgPool{nd}d"
    AdaptiveAvgPool.__doc__ = f"""{nd}-D adaptive average pooling to a fixed `output_size` (``F.adaptive_avg_pool{nd}d``).

    Shape
    -----
    (N, C, *in) -> (N, C, *output_size); cell i covers ``[floor(i·in/out), ceil((i+1)·in/out))``.
    """
    return AdaptiveAvgPool


MaxPool1d, MaxPool2d, MaxPool3d = (_make_max(n) for n in (1, 2, 3))
AvgPool1d, AvgPool2d, AvgPool3d = (_make_avg(n) for n in (1, 2, 3))
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d = (_make_adaptive_avg(n) for n in (1, 2, 3))


class AdaptiveMaxPool2d(Module):
    """2-D adaptive max pooling to a fixed `output_size` (``F.adaptive_max_pool2d``).

    Shape
    -----
    (N, C, H, W) -> (N, C, *output_size).
    """

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        _check_output_size(2, output_size)
        self.output_size, self.return_indices = output_size, check_bool("return_indices", return_indices)

    def forward(self, input):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"
