"""Layers and models: `Module`, `Parameter`, containers and PyTorch-compatible layers.

Every layer is thin: it owns its parameters (PyTorch's shapes, names and default initialisation)
and its ``forward`` is one call into `convolve.functional`, so ``state_dict()`` keys, shapes and
numbers interchange with PyTorch's for the same architecture.

Repeatable runs: ``convolve.nn.init.seed(s)`` resets the one NumPy Generator that every default
initialisation and every dropout mask draws from (``get_rng_state``/``set_rng_state`` save and
restore it for resuming); any init function, ``reset_parameters`` and ``Dropout`` also take an
explicit ``generator=``.

Examples
--------
>>> import numpy as np, convolve, convolve.nn as nn
>>> _ = nn.init.seed(0)
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
>>> model(np.zeros((1, 1, 5, 5), np.float32)).shape
(1, 2)
>>> list(model.state_dict())
['0.weight', '0.bias', '3.weight', '3.bias']
"""

from . import functional as functional, init as init, utils as utils
from .activation import LeakyReLU as LeakyReLU, LogSoftmax as LogSoftmax, ReLU as ReLU, Sigmoid as Sigmoid
from .activation import Softmax as Softmax, Tanh as Tanh
from .batchnorm import BatchNorm1d as BatchNorm1d, BatchNorm2d as BatchNorm2d, BatchNorm3d as BatchNorm3d
from .container import ModuleList as ModuleList, Sequential as Sequential
from .conv import Conv1d as Conv1d, Conv2d as Conv2d, Conv3d as Conv3d
from .conv import ConvTranspose1d as ConvTranspose1d, ConvTranspose2d as ConvTranspose2d
from .conv import ConvTranspose3d as ConvTranspose3d
from .dropout import Dropout as Dropout
from .linear import Flatten as Flatten, Identity as Identity, Linear as Linear
from .loss import CrossEntropyLoss as CrossEntropyLoss, MSELoss as MSELoss, NLLLoss as NLLLoss
from .module import IncompatibleKeys as IncompatibleKeys, Module as Module
from .parameter import Parameter as Parameter
from .pooling import AdaptiveAvgPool1d as AdaptiveAvgPool1d, AdaptiveAvgPool2d as AdaptiveAvgPool2d
from .pooling import AdaptiveAvgPool3d as AdaptiveAvgPool3d, AdaptiveMaxPool2d as AdaptiveMaxPool2d
from .pooling import AvgPool1d as AvgPool1d, AvgPool2d as AvgPool2d, AvgPool3d as AvgPool3d
from .pooling import MaxPool1d as MaxPool1d, MaxPool2d as MaxPool2d, MaxPool3d as MaxPool3d
from .residual import BasicBlock as BasicBlock

__all__ = [
    "init", "functional", "utils", "Module", "Parameter", "IncompatibleKeys", "Sequential", "ModuleList",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Dropout",
    "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax",
    "Linear", "Flatten", "Identity", "BasicBlock",
    "CrossEntropyLoss", "NLLLoss", "MSELoss",
]
