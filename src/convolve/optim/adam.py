"""Adam and AdamW (PyTorch's update rules, bias-corrected, optional AMSGrad)."""

from __future__ import annotations

from typing import Tuple

import math

import numpy as np

from .optimizer import Optimizer, Params, check_hyper

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam exactly as ``torch.optim.Adam`` (L2 weight decay added to the gradient).

    For step t with gradient g::

        g = g + weight_decay * p                          (Adam; AdamW decays p instead, see below)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g²
        v_max = max(v_max, v)                             (amsgrad)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)

    Parameters
    ----------
    params : iterable of Parameter or of dicts
    lr : float
    betas : (float, float)
    eps, weight_decay : float
    amsgrad, maximize : bool

    Examples
    --------
    The first step moves every parameter by about `lr`, whatever the gradient's scale:

    >>> import numpy as np
    >>> from convolve import optim
    >>> from convolve.nn import Parameter
    >>> p = Parameter(np.zeros(2))
    >>> opt = optim.Adam([p], lr=1e-3)
    >>> p.grad = np.array([1e-4, 50.0]); opt.step(); np.round(p.data, 6)
    array([-0.001, -0.001])
    """

    decoupled = False

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if isinstance(betas, (list, tuple)) else betas,
                                      eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize))

    def _validate(self, group):
        super()._validate(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), but got {betas!r}")
        check_hyper("betas[0]", betas[0], 0.0, 1.0, open_high=True)
        check_hyper("betas[1]", betas[1], 0.0, 1.0, open_high=True)
        check_hyper("eps", group["eps"])
        check_hyper("weight_decay", group["weight_decay"])

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if maximize else p.grad
                st = self._state(p)
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = np.zeros_like(p.data)
                    st["exp_avg_sq"] = np.zeros_like(p.data)
                    if amsgrad:
                        st["max_exp_avg_sq"] = np.zeros_like(p.data)
                st["step"] += 1
                t = st["step"]
                if wd:
                    if self.decoupled:
                        p.data *= 1 - lr * wd
                    else:
                        g = g + wd * p.data
                m, v = st["exp_avg"], st["exp_avg_sq"]
                tmp = g - m  # one scratch array, reused: no other temporaries in the hot loop
                tmp *= 1 - b1
                m += tmp  # lerp towards g, as PyTorch
                np.multiply(g, 1 - b2, out=tmp)
                tmp *= g
                v *= b2
                v += tmp
                if amsgrad:
                    np.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
                    v = st["max_exp_avg_sq"]
                np.sqrt(v, out=tmp)
                tmp /= math.sqrt(1 - b2**t)
                tmp += eps
                np.divide(m, tmp, out=tmp)
                tmp *= lr / (1 - b1**t)
                p.data -= tmp


class AdamW(Adam):
    """AdamW exactly as ``torch.optim.AdamW``: decoupled decay ``p = p·(1 - lr·weight_decay)`` before the
    Adam step (default weight_decay 0.01); otherwise as :class:`Adam`."""

    decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
