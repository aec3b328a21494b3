"""The schema of a checkpoint's ``__meta__`` JSON, checked before anything it describes is allocated.

A crafted checkpoint can claim ``num_classes = 10**12`` or a 10**6 x 10**6 image, nest its JSON a
million levels deep or put a string where a number belongs. Every field is checked here for type and
range, the config against the stored classes and normalisation, and the size of the model the config
describes against the arrays the archive actually holds (from their .npy headers, before reading).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_meta", "check_config", "check_depth", "state_size", "LIMITS"]

# generous for any model this package trains; far below what would exhaust memory
LIMITS = {"in_channels": 4096, "num_classes": 100_000, "image_side": 16_384, "epoch": 10**9, "depth": 64}


def check_depth(obj, limit=LIMITS["depth"]):
    """Refuse JSON data nested deeper than `limit` (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise ValueError(f"its metadata is nested more than {limit} levels deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _int(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], but the file has {value!r}")
    return value


def _floats(value, name, length, positive=False):
    ok = isinstance(value, list) and len(value) == length and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        for v in value)
    if not ok:
        want = "positive " if positive else ""
        raise ValueError(f"{name} must be a list of {length} finite {want}numbers (one per channel), "
                         f"but the file has {str(value)[:80]}")


def _check_config_fields(config):
    """Type and range of the config fields that are present (a checkpoint may store a partial config)."""
    if not isinstance(config, dict):
        raise ValueError(f"config must be a JSON object, but the file has {type(config).__name__}")
    if "in_channels" in config:
        _int(config["in_channels"], "config.in_channels", 1, LIMITS["in_channels"])
    if "num_classes" in config:
        _int(config["num_classes"], "config.num_classes", 1, LIMITS["num_classes"])
    if "image_size" in config:
        size = config["image_size"]
        if not isinstance(size, list) or len(size) != 2:
            raise ValueError(f"config.image_size must be [H, W], but the file has {str(size)[:80]}")
        for s in size:
            _int(s, "config.image_size", 1, LIMITS["image_side"])
    if "mean" in config or "std" in config:
        c = config.get("in_channels", len(config.get("mean") or []))
        _floats(config.get("mean"), "config.mean", c)
        _floats(config.get("std"), "config.std", c, positive=True)


def check_config(config, presets):
    """A config complete enough to build its model: every field present, typed and in range."""
    _check_config_fields(config)
    if config.get("model") not in presets:
        raise ValueError(f"config.model must be one of {sorted(presets)}, but the file has {config.get('model')!r}")
    missing = [k for k in ("in_channels", "image_size", "num_classes") if k not in config]
    if missing:
        raise ValueError(f"config lacks {missing}")


def check_meta(meta, version):
    """Check the parsed ``__meta__`` of a checkpoint; a ValueError (without the file name) says what is wrong."""
    if not isinstance(meta, dict):
        raise ValueError(f"its metadata must be a JSON object, but is a {type(meta).__name__}")
    check_depth(meta)
    if not isinstance(meta.get("version"), int) or isinstance(meta.get("version"), bool):
        raise ValueError(f"version must be an int, but the file has {meta.get('version')!r}")
    if meta["version"] > version:
        raise ValueError(f"checkpoint format version {meta['version']} is newer than this convolve reads "
                         f"({version}); upgrade convolve")
    _check_config_fields(meta.get("config"))
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("classes must be a list of strings")
    if "num_classes" in meta["config"] and len(classes) != meta["config"]["num_classes"]:
        raise ValueError(f"config.num_classes is {meta['config']['num_classes']} but {len(classes)} class names "
                         "are stored")
    _int(meta.get("epoch"), "epoch", 0, LIMITS["epoch"])
    for key in ("optimizer", "scheduler"):
        if meta.get(key) is not None and not isinstance(meta[key], (dict, list)):
            raise ValueError(f"{key} must be a JSON object or null, but the file has {type(meta[key]).__name__}")
    if not isinstance(meta.get("extra", {}), dict):
        raise ValueError("extra must be a JSON object")


def state_size(config, build_model) -> int:
    """Number of values in the state_dict of the model `config` describes, without building a large one.

    LeNet's head grows with the image (``64 * (H//4) * (W//4)`` inputs); every other size is bounded by
    ``LIMITS``, so the rest is counted on a model built for a 4x4 image.
    """
    h, w = config["image_size"]
    small = build_model({**config, "image_size": [4, 4]})
    count = sum(int(np.size(v)) for v in small.state_dict().values())
    if config["model"] == "lenet":
        count += 128 * 64 * ((h // 4) * (w // 4) - 1)
    return count
