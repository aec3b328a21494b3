"""``convolve demo``: the seeds' example end to end on a real photo, every number and picture computed by the
engine.

64x64x3 photo -> 8 kernels of 5x5x3, padding 2 -> 64x64x8 -> 16 kernels of 5x5x8, padding 2 -> 64x64x16.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import numpy as np

from .. import functional as F
from .._io import atomic_write, check_writable_dir
from .animate import slide, sliding_gif
from .images import LUMA, resize, sample_image, to_grey
from .kernels import BANK, bank, get_kernel, load_kernel
from .pictures import kernel_bank_figure, kernels_figure, next_layer_figure, volume_figure
from .shapes import explain

__all__ = ["LAYERS", "SEED_CHECK", "first_layer", "second_layer", "run_demo", "DemoResult"]

LAYERS = ["conv 8 5x5x3 pad=2", "conv 16 5x5x8 pad=2"]
SEED_CHECK = "conv 8 5x5x3 pad=1 -> 64x64x8"  # the seed text's claim: padding 1 is wrong, 2 is right
FIRST_NAMES = ["blur", "vertical edges", "horizontal edges", "diagonal edges", "spots", "red - green",
               "blue - yellow", "brightness"]


def first_layer() -> tuple:
    """8 hand-made 5x5x3 kernels, the kind a trained first layer tends to learn, and zero biases.

    Shape
    -----
    weight (8, 3, 5, 5), bias (8,).
    """
    tri = np.array([1.0, 2, 3, 2, 1])
    blur = np.outer(tri, tri) / 81
    dx = np.outer(tri, [-1.0, -2, 0, 2, 1]) / 27
    diag = (dx + dx.T) / 2
    spot = -np.ones((5, 5)) / 16
    spot[1:4, 1:4] = 0
    spot[2, 2] = 1
    centre = np.zeros((5, 5))
    centre[2, 2] = 1
    grey = [k[None] * LUMA[:, None, None] for k in (blur, dx, dx.T, diag, spot, centre)]
    w = np.stack([grey[0], grey[1], grey[2], grey[3], grey[4],
                  np.stack([blur, -blur, 0 * blur]),                 # red - green
                  np.stack([-blur / 2, -blur / 2, blur]),            # blue - yellow
                  grey[5]])  # fmt: skip
    return w, np.zeros(8)


def second_layer(seed: int = 0) -> tuple:
    """16 random 5x5x8 kernels (He-uniform, like an untrained network) and small random biases."""
    rng = np.random.default_rng(seed)
    bound = np.sqrt(6 / (8 * 5 * 5))
    return rng.uniform(-bound, bound, (16, 8, 5, 5)), rng.uniform(-0.05, 0.05, 16)


@dataclass
class DemoResult:
    """What the demo computed and wrote; arrays are the engine's outputs."""

    out: Path
    files: list = field(default_factory=list)
    text: str = ""
    seconds: float = 0.0
    arrays: dict = field(default_factory=dict)


def _learned(out: Path, checkpoint, train: bool, say, loaded=None) -> list:
    """Learned filters and per-layer maps from a checkpoint (`loaded`: its (model, checkpoint) when already
    read), or from a short training run."""
    try:
        from ..training import load_model, train as train_run
        from ..data import load_default
    except ImportError as exc:  # the training package is optional for the demo
        say(f"(learned filters skipped: the training package is not available: {exc})")
        return []
    from .learned import feature_maps_figure, learned_filters_figure

    quick = checkpoint is None
    if checkpoint is None:
        if not train:
            say("(learned filters skipped: give --checkpoint PATH, or leave out --no-train)")
            return []
        run_dir = out / "quick-training"
        checkpoint = run_dir / "best.npz"
        if checkpoint.exists():
            say(f"reusing the quick training run in {run_dir} (delete it to train again)")
        else:
            say("training LeNet for 1 epoch on 1,000 embedded Fashion-MNIST images (a few seconds) ...")
        try:  # the pictures above are the demo's job; a failing optional training run must not sink it
            if not checkpoint.exists():
                train_run(out=run_dir, model="lenet", epochs=1, limit=1000, batch_size=64, progress=False,
                          log=lambda line: None)
            loaded = load_model(checkpoint)
        except (ValueError, RuntimeError, OSError) as exc:
            say(f"(learned filters skipped: the quick training run failed: {exc})")
            return []
    model, ckpt = loaded if loaded is not None else load_model(checkpoint)
    cfg = ckpt.config
    _, test = load_default()
    size = tuple(cfg.get("image_size", test.images.shape[2:]))
    img: np.ndarray = np.asarray(test.images[0], dtype=np.float32)
    img = img / 255 if test.images.dtype == np.uint8 else img  # what the DataLoader gives: [0, 1]
    label = f"a test image ({test.classes[int(test.labels[0])]})"
    if img.shape[0] != cfg.get("in_channels", img.shape[0]) or img.shape[1:] != size:
        img = sample_image(size, grey=cfg.get("in_channels", 3) == 1)  # a checkpoint trained on other images
        label = "the demo photo"
    mean = np.asarray(cfg.get("mean", [0.0]), dtype=np.float32)[:, None, None]
    std = np.asarray(cfg.get("std", [1.0]), dtype=np.float32)[:, None, None]
    files = [out / "07_learned_filters.png", out / "08_learned_feature_maps.png"]
    epochs = getattr(ckpt, "epoch", None)
    trained = f"after {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "trained"
    if quick:  # be honest about what a few seconds of training gives
        trained += " on 1,000 images: still close to the random start; train longer and pass --checkpoint"
    learned_filters_figure(model, files[0], title=f"Learned first-layer filters of {Path(checkpoint).name} "
                                                  f"({cfg.get('model', 'model')}, {trained}), blue < 0 < red")
    feature_maps_figure(model, (img - mean) / std, files[1], image=img,
                        title=f"Feature maps of {label} in each layer of {cfg.get('model', 'the model')} "
                              f"({trained}; first 8 maps of each layer)")
    return files


class _Listing:
    """The files the demo writes, each with what it shows: one write-and-list step per picture."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.entries: List[Tuple[Path, str]] = []

    def add(self, name: str, what: Union[str, Callable[[Any], str]], draw: Callable[[Path], Any]) -> Any:
        """Draw into ``out/name`` with `draw(path)`; list it with `what` (text, or text made from draw's result)."""
        path = self.out / name
        result = draw(path)
        self.entries.append((path, what(result) if callable(what) else what))
        return result


def _user_kernels(kernels: Sequence[Any]) -> Dict[str, np.ndarray]:
    """The extra 2-D kernels for the kernel-bank picture, read (and checked) before any work."""
    user = {}
    for i, spec in enumerate(kernels, start=1):
        k = load_kernel(spec)
        if k.ndim != 2:
            raise ValueError(f"kernel {spec!r} has shape {k.shape}; the kernel-bank picture reads the grey photo, "
                             f"so it needs a 2-D (kH, kW) kernel")
        name = str(spec) if str(spec).replace("-", "_").lower() in BANK else (
            Path(str(spec)).stem if str(spec).lower().endswith(".npy") else f"yours {i}")
        user[name] = k
    return user


def _explain_seed_example(emit: Callable[[str], None], v1: np.ndarray, v2: np.ndarray) -> None:
    """Print the explanation of the two layers, check it against the engine, and check the seed's claim."""
    emit("convolve demo: the seeds' example on a real photo (Chelsea the cat, CC0), computed by convolve's engine")
    emit("")
    emit(f"$ convolve explain 64x64x3 {' '.join(repr(s) for s in LAYERS)}")
    e = explain("64x64x3", LAYERS)
    emit(e.details())
    got = [tuple(v1.shape), tuple(v2.shape)]
    said = [s.out_shape for s in e.steps]
    if got != said:  # the explanation and the engine must agree; anything else is a bug to report
        raise RuntimeError(f"explain says {said} but the engine computed {got}")
    emit(f"engine check: conv2d really gave {' and '.join('x'.join(map(str, (s[1], s[2], s[0]))) for s in got)}")
    emit("")
    emit('The seed text says "8 kernels of 5x5x3 with padding=1 -> 64x64x8". Checking it:')
    emit(f"$ convolve explain 64x64x3 '{SEED_CHECK}'")
    check = explain("64x64x3", [SEED_CHECK]).steps[0].check
    emit(("OK: " if check[0] else "WRONG: ") + check[1])
    emit("")


def _draw_pictures(files: _Listing, res: "DemoResult", user: Dict[str, np.ndarray]) -> None:
    """Pictures 01-06: the kernel bank, two sliding-kernel GIFs, layer 1 and how layer 2 reads it."""
    x, v1 = res.arrays["input"], res.arrays["volume1"]
    w1, _ = first_layer()
    w2, b2 = second_layer()
    res.arrays["bank"] = files.add(
        "01_kernel_bank.png", "the kernel bank (identity, blurs, sharpen, laplacian, edge, Sobel x/y) and the "
                              "maps each makes of the photo",
        lambda p: kernel_bank_figure(x, {**bank(), **user}, p))
    # an 8x8 patch around the cat's left eye keeps every number in the animation legible
    patch = resize(x[:, 18:34, 8:24].astype(np.float32), 8).astype(np.float64)  # (3, 8, 8)
    res.arrays["slide_1channel"] = files.add(
        "02_slide_1channel.gif",
        lambda s: f"a 3x3 kernel sliding over one channel: window, map filling in, z = b + sum w*x ({s.frames} frames)",
        lambda p: sliding_gif(slide(to_grey(patch)[0], get_kernel("sobel_x"), bias=0.1, padding=1), p,
                              title="Sobel-x (3x3x1) sliding over an 8x8 grey patch of the photo"))
    w3 = np.stack([get_kernel("sobel_x"), get_kernel("sobel_y"), get_kernel("laplacian")])
    res.arrays["slide_3channel"] = files.add(
        "03_slide_3channel.gif",
        lambda s: f"a 3x3x3 kernel over an RGB input: kernel depth = input depth ({s.frames} frames)",
        lambda p: sliding_gif(slide(patch, w3, bias=-0.1, padding=0), p,
                              title="A 3x3x3 kernel sliding over an 8x8x3 RGB patch"))
    files.add("04_layer1_kernels.png", "layer 1: the 8 kernels of 5x5x3, one slice per colour channel",
              lambda p: kernels_figure(w1, p, names=FIRST_NAMES))
    files.add("05_layer1_volume.png", "layer 1 output: 8 feature maps stacked into a 64x64x8 volume",
              lambda p: volume_figure(x, v1, p, names=FIRST_NAMES))
    res.arrays["next_layer"] = files.add(
        "06_layer2_reads_volume.png",
        "layer 2: one 5x5x8 kernel reads the same window in all 8 maps; z = b + sum of 8 partial sums",
        lambda p: next_layer_figure(v1, w2, b2, (26, 20), p, kernel_index=0, padding=2, names=FIRST_NAMES))


def run_demo(out: Union[str, Path] = "convolve-demo", checkpoint: Union[str, Path, None] = None, train: bool = True,
             say: Callable[[str], Any] = print, kernels: Sequence[Any] = ()) -> DemoResult:
    """Run the demo, writing every picture into `out`; `say` receives each printed line.

    Parameters
    ----------
    out : str or Path
        Folder for the pictures (created; must be writable).
    checkpoint : str or Path, optional
        A trained checkpoint for the learned-filter pictures (07, 08).
    train : bool
        Without `checkpoint`, run a few-second training for those pictures (else skip them).
    say : callable
        Receives each line of the printed explanation.
    kernels : sequence
        Extra 2-D kernels for the kernel-bank picture: names, .npy paths or literals.

    Returns
    -------
    DemoResult
        The folder, the files written, the printed text and the engine's arrays.
    """
    start = time.perf_counter()
    user = _user_kernels(kernels)
    out = check_writable_dir(out)
    loaded = None
    if checkpoint is not None:  # read it before drawing anything: a bad checkpoint fails the demo up front
        if not Path(checkpoint).exists():
            raise FileNotFoundError(f"checkpoint {str(checkpoint)!r} does not exist")
        from ..training import load_model

        loaded = load_model(checkpoint)
    res = DemoResult(out=out.resolve())
    lines: List[str] = []

    def emit(text: str = "") -> None:
        lines.append(text)
        say(text)

    x = sample_image(64).astype(np.float64)  # (3, 64, 64)
    w1, b1 = first_layer()
    w2, b2 = second_layer()
    v1 = F.conv2d(x[None], w1, b1, padding=2)[0]  # (8, 64, 64)
    v2 = F.conv2d(v1[None], w2, b2, padding=2)[0]  # (16, 64, 64)
    res.arrays.update(input=x, volume1=v1, volume2=v2)
    _explain_seed_example(emit, v1, v2)

    files = _Listing(out)
    _draw_pictures(files, res, user)
    for p in _learned(out, checkpoint, train, emit, loaded):
        what = "learned first-layer filters" if "filters" in p.name else "feature maps of a test image, layer by layer"
        files.entries.append((p, what))

    def write_text(path: Path) -> None:
        with atomic_write(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    files.add("explanation.txt", "the explanation above", write_text)
    if checkpoint is None and (out / "quick-training" / "best.npz").exists():
        files.entries.append((out / "quick-training",
                              "the short training run behind 07/08 (reused next time; delete to retrain)"))
    res.files = [f for f, _ in files.entries if f.is_file()]
    res.seconds = time.perf_counter() - start
    emit(f"Pictures written to {res.out}/ :")
    width = max(len(f.name) for f, _ in files.entries)
    for f, what in files.entries:
        emit(f"  {f.name + ('/' if f.is_dir() else ''):<{width + 1}} {what}")
    emit(f"done in {res.seconds:.1f} s")
    res.text = "\n".join(lines)
    return res
