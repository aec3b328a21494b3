"""Model presets and the config dict that rebuilds one.

A config is plain JSON data, stored in every checkpoint, so ``evaluate`` and ``predict`` can rebuild
the network without the command line that made it::

    {"model": "lenet", "in_channels": 1, "image_size": [28, 28], "num_classes": 10}
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .. import nn

__all__ = ["PRESETS", "build_model", "model_config", "lenet", "resnet"]


def lenet(in_channels: int = 1, num_classes: int = 10, image_size: Tuple[int, int] = (28, 28)) -> nn.Sequential:
    """A LeNet-style CNN: conv32-relu-pool, conv64-relu-pool, fc128-relu, fc.

    Shape
    -----
    input ``(N, in_channels, H, W)`` -> logits ``(N, num_classes)``; the flattened features
    are ``64 * (H // 4) * (W // 4)`` (3136 for 28x28).
    """
    h, w = image_size
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )  # fmt: skip


def resnet(in_channels: int = 3, num_classes: int = 10, image_size: Optional[Tuple[int, int]] = None,
           widths: Sequence[int] = (16, 32, 64)) -> nn.Sequential:
    """A small ResNet: conv3x3-BN-ReLU stem, one residual block per width (stride 2 after the
    first), global average pool, linear classifier. Works for any image size >= 4.

    Shape
    -----
    input ``(N, in_channels, H, W)`` -> logits ``(N, num_classes)``.
    """
    del image_size  # the adaptive pool makes the head independent of it
    layers = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
              nn.ReLU()]
    width = widths[0]
    for i, out in enumerate(widths):
        layers.append(nn.BasicBlock(width, out, stride=1 if i == 0 else 2))
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)


PRESETS = {"lenet": lenet, "resnet": resnet}


def model_config(model: str, in_channels: int, image_size: Sequence[int], num_classes: int) -> Dict[str, Any]:
    """The config dict for preset `model` on images ``(in_channels, *image_size)``."""
    config = {"model": model, "in_channels": int(in_channels),
              "image_size": [int(s) for s in image_size], "num_classes": int(num_classes)}
    _check(config)
    return config


def _check(config):
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, but got {type(config).__name__}")
    missing = [k for k in ("model", "in_channels", "image_size", "num_classes") if k not in config]
    if missing:
        raise ValueError(f"config is missing {missing}; it needs model, in_channels, image_size, num_classes")
    if config["model"] not in PRESETS:
        raise ValueError(f"model must be one of {sorted(PRESETS)}, but got {config['model']!r}")
    size = config["image_size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) for s in size)):
        raise ValueError(f"image_size must be [H, W], but got {size!r}")
    smallest = 4
    if min(size) < smallest:
        raise ValueError(f"image_size must be at least {smallest}x{smallest} (two 2x2 poolings), but got {size}")
    for key in ("in_channels", "num_classes"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{key} must be a positive int, but got {config[key]!r}")


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build the network a config describes (fresh weights; load a state_dict to restore one).

    Parameters
    ----------
    config : dict
        ``model`` (one of ``PRESETS``), ``in_channels``, ``image_size`` ``[H, W]``, ``num_classes``;
        other keys (e.g. normalisation) are ignored here.

    Returns
    -------
    convolve.nn.Module
    """
    _check(config)
    preset = PRESETS[config["model"]]
    return preset(config["in_channels"], config["num_classes"], tuple(config["image_size"]))
