"""Explain: shapes, parameters and pictures of convolutions, all computed by convolve's engine.

>>> from convolve.explain import explain
>>> print(explain("64x64x3", ["conv 8 5x5x3 pad=1 -> 64x64x8"]).steps[0].check[1])  # doctest: +ELLIPSIS
conv with 8 kernels of 5x5x3 and padding=1 gives 62x62x8, not 64x64x8: padding=2 (or padding=same) gives ...

Names are imported on first use, so ``convolve --help`` and the other commands do not pay for matplotlib.
"""

from importlib import import_module

_WHERE = {
    "explain": "shapes", "Explanation": "shapes", "Step": "shapes",
    "Layer": "spec", "SpecError": "spec", "parse_layer": "spec", "parse_shape": "spec",
    "summary": "summarize", "ModelSummary": "summarize", "model_from_spec": "summarize",
    "BANK": "kernels", "get_kernel": "kernels", "load_kernel": "kernels",
    "load_image": "images", "sample_image": "images", "to_grey": "images", "save_map": "images",
    "apply_kernel": "apply", "Applied": "apply",
    "slide": "animate", "sliding_gif": "animate", "Slide": "animate",
    "bank_maps": "pictures", "kernel_bank_figure": "pictures", "kernels_figure": "pictures",
    "volume_figure": "pictures", "next_layer": "pictures", "next_layer_figure": "pictures",
    "learned_filters_figure": "learned", "feature_maps_figure": "learned",
    "run_demo": "demo",
}

__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
