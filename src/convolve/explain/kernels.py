"""The named kernel bank, and user kernels from a .npy file or a literal like "[[1,0,-1],[2,0,-2],[1,0,-1]]".

``conv2d`` computes cross-correlation (the kernel is not flipped), as in PyTorch: ``sobel_x`` below is
positive where brightness increases to the right, ``sobel_y`` where it increases downwards.
"""

from __future__ import annotations

from typing import Any

import ast
from pathlib import Path

import numpy as np

__all__ = ["BANK", "bank", "get_kernel", "load_kernel"]

BANK = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "box_blur": np.full((3, 3), 1 / 9),
    "gaussian_blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "edge": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
}
_ALIASES = {"blur": "box_blur", "box": "box_blur", "gaussian": "gaussian_blur", "gauss": "gaussian_blur",
            "outline": "edge", "edges": "edge", "sobelx": "sobel_x", "sobely": "sobel_y"}


def bank() -> dict:
    """All named kernels, name -> (3, 3) float64 array (copies)."""
    return {name: k.copy() for name, k in BANK.items()}


def get_kernel(name: str) -> np.ndarray:
    """One named kernel (case-insensitive; '-' and '_' alike; aliases blur, gaussian, outline, ...)."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in BANK:
        raise ValueError(f"kernel must be one of {sorted(BANK)} (or a .npy file or a literal like "
                         f"[[1,0,-1],[2,0,-2],[1,0,-1]]), but got {name!r}")
    return BANK[key].copy()


def _check(k, source: str) -> np.ndarray:
    if k.dtype == object or not (np.issubdtype(k.dtype, np.number) or k.dtype == bool):
        raise TypeError(f"kernel {source} must hold numbers, but holds {k.dtype}")
    if np.iscomplexobj(k):
        raise TypeError(f"kernel {source} must be real, but is complex")
    if k.ndim not in (2, 3):
        raise ValueError(f"kernel {source} has shape {k.shape} ({k.ndim}-D); expected a 2-D (kH, kW) kernel or a "
                         f"3-D (C, kH, kW) kernel whose depth C equals the image's channels")
    if k.size == 0:
        raise ValueError(f"kernel {source} is empty (shape {k.shape})")
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise ValueError(f"kernel {source} contains NaN or infinity")
    return k


def load_kernel(spec: Any) -> np.ndarray:
    """A kernel from a bank name, a .npy file, a literal string, or an array.

    Returns
    -------
    ndarray
        float64, (kH, kW) or (C, kH, kW).
    """
    if isinstance(spec, np.ndarray) or isinstance(spec, (list, tuple)):
        return _check(np.asarray(spec), "array")
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"kernel must be a name, a .npy path, a literal or an array, but got {type(spec).__name__}")
    text = str(spec).strip()
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
            k = np.array(value, dtype=np.float64)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise ValueError(f"kernel literal {text!r} is not a rectangular nested list of numbers like "
                             f"[[1,0,-1],[2,0,-2],[1,0,-1]] ({exc})") from None
        return _check(k, f"literal {text!r}")
    path = Path(text).expanduser()
    if path.suffix.lower() == ".npy" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"kernel file {text!r} does not exist")
        if path.suffix.lower() != ".npy":
            raise ValueError(f"kernel file {text!r} must be a NumPy .npy file")
        try:
            k = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"kernel file {text!r} is not a readable .npy array ({exc})") from None
        return _check(k, f"file {text!r}")
    return get_kernel(text)
