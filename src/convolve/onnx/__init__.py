"""Import ONNX networks as trainable convolve models, and export convolve models to ONNX.

Needs the optional ``onnx`` package (``pip install "convolve[onnx]"``); importing this module does
not import it -- the functions do, when called.

Examples
--------
>>> import convolve.onnx
>>> model = convolve.onnx.load("resnet18.onnx")            # doctest: +SKIP
>>> logits = model(images)                                  # doctest: +SKIP
>>> convolve.onnx.save(model, images[:1], "again.onnx")     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from ._node import OnnxUnsupportedError as OnnxUnsupportedError

__all__ = ["load", "save", "OnnxUnsupportedError"]


def load(path: Union[str, Path]) -> Any:
    """Build a convolve model from the ONNX file at `path`.

    The graph becomes convolve modules and functional calls once, here: weights become Parameters
    (trainable: ``backward`` and optimisers work), constants and shape arithmetic (Shape, Gather,
    Concat, Cast, ConstantOfShape, ...) are computed now, and a dimension left dynamic in the file
    (a batch axis, say) is read from the inputs at each call.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file, opset 6 to 21 (the ops of CNNs: see ``docs/onnx.md``).

    Returns
    -------
    OnnxModel
        A ``convolve.nn.Module``; call it with the graph's inputs positionally (Tensors or arrays):
        it returns the output, or a tuple when the graph has several.

    Raises
    ------
    FileNotFoundError
        No file at `path`.
    ValueError
        The file is not readable ONNX (truncated, not ONNX).
    OnnxUnsupportedError (a ValueError)
        An op, attribute or opset convolve does not import; the message names op, node and opset.
    ImportError
        The ``onnx`` package is missing (``pip install "convolve[onnx]"``).

    Shape
    -----
    The graph's own: inputs as declared in the file (dynamic axes take any size).
    """
    from ._loader import load as _load

    return _load(path)


def save(model: Any, example_input: Any, path: Union[str, Path], *, opset: int = 17, input_name: str = "input",
         output_name: str = "output", dynamic_batch: bool = True) -> Any:
    """Write convolve `model` to `path` as ONNX (see :func:`convolve.onnx._export.save`)."""
    from ._export import save as _save

    return _save(model, example_input, path, opset=opset, input_name=input_name, output_name=output_name,
                 dynamic_batch=dynamic_batch)
