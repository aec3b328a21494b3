"""``convolve.nn.functional`` is `convolve.functional`, so ``import convolve.nn.functional as F`` works
as it does in PyTorch."""

from ..functional import *  # noqa: F401,F403 -- a deliberate alias
from ..functional import __all__ as __all__  # noqa: F401
