"""Checkpoints: one ``.npz`` file holding weights, run config and training state, without pickle.

Layout of the archive (every entry a plain NumPy array, read with ``allow_pickle=False``)::

    __meta__             0-d unicode array: JSON with format, version, model config, class names,
                         epoch, history, and the optimiser/scheduler state skeletons
    model/<key>          one entry per state_dict key, PyTorch's names ("0.weight", "bn1.running_mean")
    optimizer/<i>        arrays of the optimiser state, referenced from the JSON skeleton
    scheduler/<i>        arrays of the scheduler state (usually none)

Nested state (dicts, lists, numbers, strings, arrays) is stored as a JSON skeleton in which every
array is replaced by ``{"__array__": "optimizer/3"}``, the name of its entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union, cast

import numpy as np

from ..nn import Module
from ..autograd import as_array
from .._io import atomic_write
from .._npz import NpzReader
from ._schema import check_config, check_meta, state_size

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "load_weights"]

FORMAT = "convolve-checkpoint"
VERSION = 1
META = "__meta__"
MAX_META_BYTES = 64 << 20  # the JSON is stored as UTF-32: 16 M characters


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` reads back.

    Attributes
    ----------
    path : Path
    config : dict
        The model config; ``build_model(config)`` rebuilds the architecture.
    classes : list of str
        Class names in label order.
    epoch : int
        Number of epochs completed when it was written.
    model_state : dict of str -> ndarray
        The model's ``state_dict`` with PyTorch key names.
    optimizer_state, scheduler_state : dict or None
        The optimiser's and scheduler's ``state_dict``, arrays restored.
    extra : dict
        Anything else the trainer stored (run settings, history, best accuracy, ...).
    """

    path: Path
    config: dict
    classes: list
    epoch: int
    model_state: dict
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    extra: dict = field(default_factory=dict)


def _flatten(obj, prefix, arrays):
    """`obj` as JSON-ready data; arrays move into `arrays` under ``prefix/<n>`` names."""
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, prefix, arrays), _flatten(v, prefix, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, prefix, arrays) for v in obj]
    obj = as_array(obj)  # a Tensor becomes its array
    if isinstance(obj, np.ndarray):
        name = f"{prefix}/{len(arrays)}"  # unique: the count only grows
        arrays[name] = obj
        return {"__array__": name}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint: {obj!r}")


def _unflatten(obj, npz, prefix):
    """Rebuild what `_flatten` stored; `obj` comes from the file, so every node is checked."""
    if isinstance(obj, dict):
        if "__array__" in obj:
            name = obj["__array__"]
            if not isinstance(name, str) or not name.startswith(prefix + "/") or name not in npz.keys:
                raise ValueError(f"the {prefix} state names an array {str(name)[:60]!r} that the file lacks")
            return npz.read(name)
        pairs = obj.get("__dict__")
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise ValueError(f"the {prefix} state holds a malformed mapping")
        # dict keys may be ints (PyTorch's optimiser state is keyed by parameter index)
        keys = [_unflatten(k, npz, prefix) for k, _ in pairs]
        if not all(isinstance(k, (str, int, float, bool)) or k is None for k in keys):
            raise ValueError(f"the {prefix} state has a mapping key that is not a string or number")
        return {k: _unflatten(v, npz, prefix) for k, (_, v) in zip(keys, pairs)}
    if isinstance(obj, list):
        return [_unflatten(v, npz, prefix) for v in obj]
    return obj


def save_checkpoint(path: Union[str, Path], model_state: Mapping[str, Any], config: Mapping[str, Any], *,
                    classes: Sequence[str], epoch: int, optimizer_state: Optional[Dict[str, Any]] = None,
                    scheduler_state: Optional[Dict[str, Any]] = None, extra: Optional[Dict[str, Any]] = None) -> None:
    """Write a checkpoint atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    path : str or Path
        Target file, conventionally ending in ``.npz``; its directory must exist.
    model_state : dict of str -> array
        ``model.state_dict()``.
    config : dict
        JSON-serialisable model config (see ``build_model``).
    classes : sequence of str
    epoch : int
        Epochs completed.
    optimizer_state, scheduler_state : dict, optional
        ``state_dict()`` of the optimiser and the learning-rate scheduler.
    extra : dict, optional
        JSON-serialisable extras kept under ``Checkpoint.extra``.
    """
    arrays = {f"model/{k}": np.asarray(as_array(v)) for k, v in model_state.items()}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "classes": [str(c) for c in classes],
        "epoch": int(epoch),
        "optimizer": None if optimizer_state is None else _flatten(optimizer_state, "optimizer", arrays),
        "scheduler": None if scheduler_state is None else _flatten(scheduler_state, "scheduler", arrays),
        "extra": extra or {},
    }
    arrays[META] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **cast(Dict[str, Any], arrays))


def load_checkpoint(path: Union[str, Path]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is not a readable convolve checkpoint (not an npz, truncated, no metadata,
        a newer format version), naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        with NpzReader(path) as npz:
            if META not in npz.keys:
                raise ValueError(
                    f"{path}: not a convolve checkpoint (no {META} entry; expected a file "
                    "written by `convolve train`)"
                )
            meta = _read_meta(path, npz)
            _check_sizes(meta["config"], npz)
            model_state = {k[len("model/"):]: npz.read(k) for k in npz.keys if k.startswith("model/")}
            optimizer = _unflatten(meta.get("optimizer"), npz, "optimizer")
            scheduler = _unflatten(meta.get("scheduler"), npz, "scheduler")
    except ValueError as err:
        text = str(err)
        if text.startswith(f"{path}: not a readable .npz file: it is"):  # say what the file is instead
            raise ValueError(f"{path}: checkpoint is corrupt or not a checkpoint at all: the file is "
                             + text.split(": it is ", 1)[1]) from None
        if text.startswith(str(path)):
            text = text[len(str(path)) + 2 :]
        if text.startswith(("not a convolve checkpoint", "checkpoint format version")):
            raise ValueError(f"{path}: {text}") from None
        raise ValueError(f"{path}: checkpoint is corrupt or truncated ({text})") from None
    except OSError as err:  # unreadable: permission, I/O error
        raise type(err)(err.errno, f"cannot read checkpoint {str(path)!r}: {err.strerror}") from None
    return Checkpoint(path, meta["config"], meta["classes"], meta["epoch"], model_state,
                      optimizer, scheduler, meta.get("extra", {}))


def _check_sizes(config, npz):
    """Before reading any array: the stored model must be the size its config describes, and the
    optimiser state a small multiple of it (Adam keeps two values per parameter)."""
    from ._models import PRESETS, build_model  # the presets import nn; keep this module light

    counts = {k: npz.nbytes(k) // max(1, npz.header(k)[1].itemsize) for k in npz.keys if k != META}
    have = sum(n for k, n in counts.items() if k.startswith("model/"))
    try:
        check_config(config, PRESETS)
    except ValueError:
        return  # a partial config (written by hand with save_checkpoint): nothing to compare with
    need = state_size(config, build_model)
    if have != need:
        raise ValueError(f"its config ({config['model']}, {config['in_channels']} channels, image "
                         f"{config['image_size']}, {config['num_classes']} classes) describes {need} "
                         f"model values but the file stores {have}")
    extra = sum(n for k, n in counts.items() if not k.startswith("model/"))
    if extra > 4 * need + (1 << 20):
        raise ValueError(f"its optimiser and scheduler state hold {extra} values, far more than a model "
                         f"of {need} values needs")


def _read_meta(path, npz):
    """The ``__meta__`` JSON, bounded in size and checked against the schema before anything else is read."""
    shape, dtype, _, _ = npz.header(META)
    if shape != () or dtype.kind != "U" or npz.nbytes(META) > MAX_META_BYTES:
        raise ValueError(f"its {META} entry must be one JSON string of at most {MAX_META_BYTES} bytes, "
                         f"but is {dtype} of shape {shape}")
    try:
        meta = json.loads(str(npz.read(META)))
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"its {META} entry is not valid JSON ({type(err).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        what = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"not a convolve checkpoint (format is {what!r})")
    check_meta(meta, VERSION)
    return meta


def load_weights(model: Module, state: Mapping[str, Any], source: Any) -> None:
    """``model.load_state_dict(state)`` (strict), with errors naming `source`.

    Raises
    ------
    ValueError
        One line naming `source`, the mis-shaped keys with both shapes, and the missing and
        unexpected keys (the first few of each, with counts), when the weights are for another
        architecture; the model is left unchanged.
    """
    current = {k: np.shape(v) for k, v in model.state_dict().items()}
    shapes = [f"{k} {tuple(np.shape(v))} in the file vs {current[k]} in the model"
              for k, v in state.items() if k in current and tuple(np.shape(v)) != current[k]]
    missing = [k for k in current if k not in state]
    unexpected = [k for k in state if k not in current]
    parts = [f"{what} ({len(keys)}): " + ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
             for what, keys in (("shape mismatch", shapes), ("missing keys", missing),
                                ("unexpected keys", unexpected)) if keys]
    if parts:
        raise ValueError(f"{source}: checkpoint does not fit this model (another architecture?); "
                         + "; ".join(parts))
    try:
        model.load_state_dict(state)
    except ValueError as err:  # e.g. a non-numeric array
        raise ValueError(f"{source}: {err}") from None
