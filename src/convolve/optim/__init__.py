"""Optimisers (SGD, Adam, AdamW) and learning-rate schedules, with PyTorch's update rules."""

from . import lr_scheduler as lr_scheduler
from .adam import Adam as Adam, AdamW as AdamW
from .lr_scheduler import CosineAnnealingLR as CosineAnnealingLR, LRScheduler as LRScheduler, StepLR as StepLR
from .optimizer import Optimizer as Optimizer
from .sgd import SGD as SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR", "lr_scheduler"]
