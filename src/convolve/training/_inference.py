"""Using a checkpoint: rebuild its model, evaluate it on a dataset, classify image files."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pathlib import Path

import numpy as np

from .._shared.checks import check_int
from ..data import DataLoader
from ..data import read_image  # the loaders' own Pillow reader
from ..nn import Module
from ._checkpoint import Checkpoint, load_checkpoint, load_weights
from ._loop import evaluate, predict_proba
from ._models import PRESETS, build_model
from ._schema import check_config
from ._setup import load_data

__all__ = ["load_model", "evaluate_checkpoint", "predict_files", "load_images"]


def load_model(path: Union[str, Path]) -> Tuple[Module, Checkpoint]:
    """The model stored in a checkpoint, in eval mode, and the checkpoint itself.

    Returns
    -------
    model : convolve.nn.Module
    checkpoint : Checkpoint
        ``.config`` (architecture, image size, normalisation), ``.classes``, ``.epoch``, ...

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or corrupt file, or weights that do not fit the stored config (naming the keys
        and shapes), each naming the file.
    """
    ckpt = load_checkpoint(path)
    try:
        check_config(ckpt.config, PRESETS)  # load_checkpoint compared its size with the stored weights
        model = build_model(ckpt.config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{ckpt.path}: the stored model config is invalid ({err})") from None
    load_weights(model, ckpt.model_state, ckpt.path)
    model.eval()
    return model, ckpt


def _normalize(config):
    if "mean" not in config:
        return None
    return config["mean"], config["std"]


def evaluate_checkpoint(path: Union[str, Path], data: Union[str, Path, None] = None, batch_size: int = 256, *,
                        workers: Optional[int] = None, scheduler: Optional[str] = None,
                        max_pixels: Optional[int] = None) -> Dict[str, Any]:
    """Test loss and accuracy of a checkpoint on a dataset's test split.

    Parameters
    ----------
    path : str or Path
        A checkpoint written by :func:`train`.
    data : str or Path, optional
        Dataset directory; default: the one the checkpoint was trained on (``"default"``: the
        embedded subset). A source without a test split is split as in training (10% held out
        with the run's seed).
    batch_size : int
    workers, scheduler : int or str, optional
        Run the batches on a new local cluster of `workers` processes or on the dask cluster at
        `scheduler` (the model is sent once; the same numbers). Needs ``convolve[dask]``.
    max_pixels : int, optional
        Image folders: refuse images with more pixels (default 89,478,485) before decoding them.

    Returns
    -------
    dict
        ``loss``, ``accuracy`` (fraction), ``correct``, ``images``, ``dataset``, ``checkpoint``.
    """
    model, ckpt = load_model(path)
    settings = ckpt.extra.get("settings", {})
    if data is None:
        data = settings.get("data")  # the data it was trained on; "default" names the embedded set
    _, test, _ = load_data(None if data == "default" else data, settings.get("seed", 0), None, check=False,
                           max_pixels=max_pixels)
    c, h, w = test.image_shape
    want = (ckpt.config["in_channels"], *ckpt.config["image_size"])
    if (c, h, w) != want or test.num_classes != ckpt.config["num_classes"]:
        raise ValueError(
            f"{ckpt.path}: the model expects {want[0]}x{want[1]}x{want[2]} images in "
            f"{ckpt.config['num_classes']} classes, but {data or 'the default data'} has "
            f"{c}x{h}x{w} images in {test.num_classes} classes"
        )
    loader = DataLoader(test, batch_size, normalize=_normalize(ckpt.config))
    if workers is not None or scheduler is not None:
        from ..dask import hooks
        with hooks.connect(workers, scheduler) as client:
            loss, acc = hooks.evaluate(model, loader, client)
    else:
        loss, acc = evaluate(model, loader)
    return {"loss": loss, "accuracy": acc, "correct": int(round(acc * len(test))), "images": len(test),
            "dataset": test.name, "checkpoint": ckpt}


def load_images(files: Sequence[Union[str, Path]], config: Mapping[str, Any], invert: bool = False,
                max_pixels: Optional[int] = None) -> np.ndarray:
    """Image files as one normalised float32 batch the model of `config` takes.

    Each image is converted to greyscale or RGB to match ``in_channels`` and resized
    (bilinear) to ``image_size``; images over `max_pixels` pixels are refused before decoding.

    Shape
    -----
    returns ``(len(files), in_channels, H, W)`` float32.
    """
    channels = config["in_channels"]
    if channels not in (1, 3):
        raise ValueError(f"can only read image files for 1- or 3-channel models, this one takes {channels}")
    mode, size = ("L" if channels == 1 else "RGB"), tuple(config["image_size"])
    arrays = []
    for file in files:
        if not Path(file).is_file():
            raise FileNotFoundError(f"{file}: no such image file")
        a = read_image(Path(file), mode, size, max_pixels=max_pixels).astype(np.float32) / np.float32(255.0)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # (C, H, W)
        arrays.append(1.0 - a if invert else a)
    x = np.stack(arrays)
    if "mean" in config:
        mean = np.asarray(config["mean"], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(config["std"], np.float32).reshape(1, -1, 1, 1)
        x = (x - mean) / std
    return x.astype(np.float32, copy=False)


def predict_files(path: Union[str, Path], files: Sequence[Union[str, Path]], top: int = 3, invert: bool = False, *,
                  workers: Optional[int] = None, scheduler: Optional[str] = None,
                  max_pixels: Optional[int] = None) -> List[Tuple[Union[str, Path], List[Tuple[str, float]]]]:
    """The `top` most likely classes for each image file.

    `workers` / `scheduler` run the batches on a dask cluster, as in :func:`evaluate_checkpoint`.
    Images with more than `max_pixels` pixels (default 89,478,485) are refused before decoding.

    Returns
    -------
    list of (file, [(class name, probability), ...])
        Probabilities in descending order.
    """
    check_int("top", top, minimum=1)
    files = [str(f) for f in files]
    if not files:
        raise ValueError("give at least one image file to classify")
    model, ckpt = load_model(path)
    x = load_images(files, ckpt.config, invert, max_pixels)
    if workers is not None or scheduler is not None:  # batches on a cluster (workers/scheduler as in evaluate)
        from ..dask import hooks
        with hooks.connect(workers, scheduler) as client:
            probs = hooks.predict_proba(model, x, client)
    else:
        probs = predict_proba(model, x)  # (N, classes)
    results = []
    for file, p in zip(files, probs):
        order = np.argsort(-p, kind="stable")[: min(top, len(p))]
        results.append((file, [(ckpt.classes[i], float(p[i])) for i in order]))
    return results
