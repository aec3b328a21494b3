"""Learning-rate schedules: StepLR and CosineAnnealingLR with PyTorch's (recursive) formulas."""

from __future__ import annotations

import math

from .._shared.checks import check_int
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base: call ``step()`` once per epoch after ``optimizer.step()``; ``get_last_lr()`` reads the rates.

    Construction sets each group's ``initial_lr`` and performs the first step (epoch 0), as PyTorch.
    ``state_dict()``/``load_state_dict()`` save everything but the optimizer.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a convolve.optim.Optimizer, but got {type(optimizer).__name__}")
        check_int("last_epoch", last_epoch, minimum=-1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        elif any("initial_lr" not in g for g in optimizer.param_groups):
            raise ValueError("resuming a schedule (last_epoch != -1) needs 'initial_lr' in every parameter group")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._step_count = 0
        self.step()

    def get_lr(self) -> list:
        raise NotImplementedError

    def step(self) -> None:
        self._step_count += 1
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` saved (from a scheduler of the same class)."""
        if not isinstance(state_dict, dict) or not {"last_epoch", "base_lrs"} <= set(state_dict):
            raise TypeError("state_dict must be a dict from LRScheduler.state_dict() (with last_epoch and base_lrs)")
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(
                f"state_dict has {len(state_dict['base_lrs'])} learning rates but the optimizer has "
                f"{len(self.optimizer.param_groups)} parameter groups"
            )
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply the learning rate by `gamma` every `step_size` epochs.

    ``lr(epoch) = initial_lr · gamma ** (epoch // step_size)``.

    Examples
    --------
    >>> import numpy as np
    >>> from convolve import optim
    >>> from convolve.nn import Parameter
    >>> opt = optim.SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    >>> rates = []
    >>> for epoch in range(5):
    ...     rates.append(sched.get_last_lr()[0]); opt.step(); sched.step()
    >>> rates
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        check_int("step_size", step_size, minimum=1)
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return lrs
        return [lr * self.gamma for lr in lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial rate to `eta_min` over `T_max` epochs.

    ``lr(epoch) = eta_min + (initial_lr - eta_min) · (1 + cos(pi · epoch / T_max)) / 2``, computed with
    PyTorch's recursive update so the numbers agree with ``torch.optim.lr_scheduler.CosineAnnealingLR``
    (beyond T_max it rises again, periodically, as there).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        check_int("T_max", T_max, minimum=1)
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if e == 0:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and e > 0:  # built with last_epoch: closed form
            return [lo + (base - lo) * (1 + math.cos(e * math.pi / T)) / 2 for base in self.base_lrs]
        if (e - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2 for base, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (g["lr"] - lo) + lo
                for g in groups]
