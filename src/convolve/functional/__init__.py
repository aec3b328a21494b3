"""Public ops with PyTorch's names, argument names and defaults.

Every op takes NumPy arrays (returns an array, records nothing) or `convolve.Tensor`s (returns a
Tensor and records its backward).
"""

from .activation import (
    leaky_relu as leaky_relu,
    log_softmax as log_softmax,
    relu as relu,
    sigmoid as sigmoid,
    softmax as softmax,
    tanh as tanh,
)
from .adaptive import (
    adaptive_avg_pool1d as adaptive_avg_pool1d,
    adaptive_avg_pool2d as adaptive_avg_pool2d,
    adaptive_avg_pool3d as adaptive_avg_pool3d,
    adaptive_max_pool2d as adaptive_max_pool2d,
)
from .loss import cross_entropy as cross_entropy, mse_loss as mse_loss, nll_loss as nll_loss
from .norm import batch_norm as batch_norm, batch_norm_relu as batch_norm_relu, dropout as dropout, linear as linear
from .conv import (
    conv1d as conv1d,
    conv2d as conv2d,
    conv3d as conv3d,
    conv_transpose1d as conv_transpose1d,
    conv_transpose2d as conv_transpose2d,
    conv_transpose3d as conv_transpose3d,
)
from .fold import fold as fold, unfold as unfold
from .hard import hardsigmoid as hardsigmoid, hardswish as hardswish, hardtanh as hardtanh, relu6 as relu6
from .lrn import local_response_norm as local_response_norm
from .prelu import prelu as prelu
from .resize import interpolate as interpolate
from .pad import pad as pad
from .pool import (
    avg_pool1d as avg_pool1d,
    avg_pool2d as avg_pool2d,
    avg_pool3d as avg_pool3d,
    max_pool1d as max_pool1d,
    max_pool2d as max_pool2d,
    max_pool3d as max_pool3d,
    relu_max_pool1d as relu_max_pool1d,
    relu_max_pool2d as relu_max_pool2d,
    relu_max_pool3d as relu_max_pool3d,
)

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "pad", "unfold", "fold",
    "relu", "leaky_relu", "tanh", "sigmoid", "softmax", "log_softmax",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d",
    "cross_entropy", "nll_loss", "mse_loss", "linear", "batch_norm", "dropout",
    "hardtanh", "relu6", "hardsigmoid", "hardswish", "prelu", "local_response_norm", "interpolate",
    "relu_max_pool1d", "relu_max_pool2d", "relu_max_pool3d", "batch_norm_relu",  # fused pairs (Sequential)
]
