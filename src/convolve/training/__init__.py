"""Training: model presets, the training loop, checkpoints, metrics, inference.

>>> from convolve.training import train, evaluate_checkpoint, predict_files
>>> run = train(epochs=3, out="runs/demo")                        # doctest: +SKIP
>>> evaluate_checkpoint("runs/demo/best.npz")["accuracy"]         # doctest: +SKIP
"""

from ._checkpoint import Checkpoint, load_weights, load_checkpoint, save_checkpoint
from ._inference import evaluate_checkpoint, load_images, load_model, predict_files
from ._loop import evaluate, predict_proba, train_epoch
from ._models import PRESETS, build_model, lenet, model_config, resnet
from ._run import train

__all__ = [
    "train", "train_epoch", "evaluate", "predict_proba",
    "PRESETS", "build_model", "model_config", "lenet", "resnet",
    "Checkpoint", "save_checkpoint", "load_checkpoint", "load_weights",
    "load_model", "evaluate_checkpoint", "predict_files", "load_images",
]
