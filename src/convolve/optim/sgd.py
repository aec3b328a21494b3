"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's rule)."""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, Params, check_hyper

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD exactly as ``torch.optim.SGD``.

    For each parameter p with gradient g::

        g = g + weight_decay * p                       (if weight_decay)
        buf = g            on the first step,
        buf = momentum * buf + (1 - dampening) * g     afterwards (if momentum)
        g = g + momentum * buf if nesterov else buf
        p = p - lr * g     (p + lr * g with maximize=True)

    Parameters
    ----------
    params : iterable of Parameter or of dicts
    lr : float
    momentum, dampening, weight_decay : float
    nesterov : bool
        Needs momentum > 0 and dampening = 0.
    maximize : bool

    Examples
    --------
    >>> import numpy as np
    >>> from convolve import optim
    >>> from convolve.nn import Parameter
    >>> p = Parameter(np.array([1.0, -2.0]))
    >>> opt = optim.SGD([p], lr=0.1)
    >>> p.grad = np.array([1.0, 1.0]); opt.step(); p.data
    array([ 0.9, -2.1])
    """

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _validate(self, group):
        super()._validate(group)
        for name in ("momentum", "dampening", "weight_decay"):
            check_hyper(name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if maximize else p.grad
                if wd:
                    g = g + wd * p.data
                if mom:
                    st = self._state(p)
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
                    else:
                        buf *= mom
                        buf += (1 - damp) * g
                    g = g + mom * buf if nesterov else buf
                p.data -= np.asarray(lr * g, dtype=p.dtype)
