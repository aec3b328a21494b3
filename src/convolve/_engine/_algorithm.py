"""The interface every convolution algorithm of the engine implements.

An algorithm is a module (or an object, like Winograd's two tile sizes) with the attributes below.
The selector (`select`) asks every registered algorithm whether it `supports` a call, keeps those
whose smallest chunk fits the memory cap (`workspace`) and, by default, only the numerically
`local` ones, and runs the one with the least `cost`. Nothing outside the algorithm's module reads
its private helpers: what the selector needs to know is in these functions.

Every shape is channels-first and already padded: x (N, C, *S), w (O, C/groups, *K), outputs
(N, O, *P) with ``P = floor((S - dilation·(K-1) - 1) / stride) + 1``; `op` is one of
"forward", "grad_input", "grad_weight"; `itemsize` is the dtype's size in bytes (4 or 8).

Optional: ``pads_inside(op, pads, dilation, dtype) -> bool``. An algorithm that can apply zero padding
itself says so per call; `chunks` then passes the unpadded input and ``pads=`` ((before, after) per
axis) to that call instead of a padded copy, and `grad_input` returns the unpadded input's gradient.
"""

from __future__ import annotations

from typing import Optional, Protocol, Tuple

import numpy as np

__all__ = ["Algorithm", "OPS"]

Shape = Tuple[int, ...]
OPS = ("forward", "grad_input", "grad_weight")


class Algorithm(Protocol):
    """What the engine needs from one algorithm (a module satisfies it by defining these names;
    the three properties are plain module constants there)."""

    @property
    def name(self) -> str:
        """The name users pass as ``algorithm=``."""

    @property
    def local(self) -> bool:
        """Whether it meets the numerical-locality policy (see `convolve._engine`): only local
        algorithms are chosen automatically unless the precision setting is "fast"."""

    @property
    def reach(self) -> Optional[int]:
        """For a local algorithm, how many positions beyond an output's own window (and, for a tiled
        algorithm, beyond the output itself) its rounding and non-finite values can come from, counted
        in steps of the dilation (a dilated Winograd call tiles the subsampled grid): 0 for a direct
        sum over the window, the tile size - 1 for a tiled one; None if unbounded."""

    def supports(self, op: str, x_shape: Shape, w_shape: Shape, stride: Shape, dilation: Shape,
                 groups: int) -> Optional[str]:
        """None if this algorithm can run the call, else a sentence saying why not."""

    def workspace(self, op: str, x_shape: Shape, w_shape: Shape, stride: Shape, dilation: Shape,
                  groups: int, itemsize: int) -> int:
        """Bytes of temporaries one call allocates (inputs and the result not counted)."""

    def cost(self, op: str, x_shape: Shape, w_shape: Shape, stride: Shape, dilation: Shape,
             groups: int, itemsize: int) -> float:
        """Estimated seconds for one (unchunked) call; only asked for calls it supports."""

    def forward(self, x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray], stride: Shape,
                dilation: Shape, groups: int) -> np.ndarray:
        """y (N, O, *P) = correlation of x with w, plus bias."""

    def grad_input(self, gy: np.ndarray, w: np.ndarray, x_shape: Shape, stride: Shape, dilation: Shape,
                   groups: int) -> np.ndarray:
        """dL/dx (x_shape) from the output gradient gy (N, O, *P)."""

    def grad_weight(self, x: np.ndarray, gy: np.ndarray, w_shape: Shape, stride: Shape, dilation: Shape,
                    groups: int) -> np.ndarray:
        """dL/dw (w_shape) from the input and the output gradient."""
