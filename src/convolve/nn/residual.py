"""A ResNet basic block: a graph that is not a chain (the input is added back)."""

from __future__ import annotations

from typing import Any, Optional

from .._shared.types import ArrayOrTensor, TensorLike
from .. import functional as F
from .batchnorm import BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .module import Module

__all__ = ["BasicBlock"]


class BasicBlock(Module):
    """conv3x3-bn-relu-conv3x3-bn, plus the shortcut, then relu (He et al. 2016; torchvision's names).

    The shortcut is the identity when shape is kept, else ``downsample`` = 1x1 conv (stride) + BatchNorm,
    so state_dict keys match torchvision: ``conv1.weight``, ``bn1.running_mean``, ``downsample.0.weight``,
    ``downsample.1.weight``, ...

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Stride of the first conv and of the projection.
    dtype : numpy float dtype, keyword-only

    Shape
    -----
    (N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, dtype: Any = None) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, dtype=dtype)
        self.bn1 = BatchNorm2d(out_channels, dtype=dtype)
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, dtype=dtype)
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype)
        self.downsample: Optional[Sequential]
        if stride != 1 or in_channels != out_channels:
            self.downsample = Sequential(Conv2d(in_channels, out_channels, 1, stride, bias=False, dtype=dtype),
                                         BatchNorm2d(out_channels, dtype=dtype))
        else:
            self.downsample = None

    def forward(self, input: TensorLike) -> ArrayOrTensor:
        out = F.relu(self.bn1(self.conv1(input)))
        out = self.bn2(self.conv2(out))
        identity = input if self.downsample is None else self.downsample(input)
        return F.relu(out + identity)
