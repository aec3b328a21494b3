"""`train`: a whole run, from arguments to checkpoints, metrics and plot, resumable exactly.

The run is four steps, one function each: resolve the settings (new or resumed run), load the data,
build the model/optimiser/scheduler (restoring them when resuming), then per epoch train, evaluate
and write the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .._io import check_can_create_dir
from ..nn import init
from ._checkpoint import Checkpoint, load_checkpoint, load_weights, save_checkpoint
from ._loop import evaluate, train_epoch
from ._metrics import EpochRecord, format_epoch, plot_history, write_metrics
from ._models import build_model, model_config
from ._progress import progress_bar, progress_enabled
from ._settings import Settings
from ._setup import channel_stats, load_data, make_loaders, make_optimizer, make_scheduler

__all__ = ["train", "LAST", "BEST", "METRICS", "PLOT"]

LAST, BEST, METRICS, PLOT = "last.npz", "best.npz", "metrics.json", "loss_accuracy.png"


def _default_out(model: str) -> Path:
    """``runs/<model>``, or the first free ``runs/<model>-2``, ``-3``, ..."""
    out, n = Path("runs") / model, 1
    while out.exists():
        n += 1
        out = Path("runs") / f"{model}-{n}"
    return out


@dataclass
class _RunData:
    """The datasets of a run and what the model is built from."""

    train_set: Any
    test_set: Any
    test_split: str
    config: Dict[str, Any]  # model preset, input shape, classes, normalisation

    @property
    def normalize(self) -> Tuple[Any, Any]:
        return self.config["mean"], self.config["std"]


@dataclass
class _Progress:
    """Where the run stands: the epochs done, their records and the best so far."""

    start: int = 0
    history: List[Any] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0

    def add(self, record: Dict[str, Any]) -> bool:
        """Record an epoch (an :func:`EpochRecord`); return whether it is the best so far."""
        self.history.append(record)
        improved = record["test_accuracy"] > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = record["test_accuracy"], record["epoch"]
        return improved


def train(data: Union[str, Path, None] = None, out: Union[str, Path, None] = None, *, model: Optional[str] = None,
          epochs: Optional[int] = None, batch_size: Optional[int] = None, lr: Optional[float] = None,
          optimizer: Optional[str] = None, weight_decay: Optional[float] = None, momentum: Optional[float] = None,
          schedule: Optional[str] = None, augment: Optional[str] = None, seed: Optional[int] = None,
          limit: Optional[int] = None, resume: bool = False, progress: Optional[bool] = None,
          log: Callable[[str], Any] = print,
          on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]] = None, workers: Optional[int] = None,
          scheduler: Optional[str] = None, max_pixels: Optional[int] = None) -> Dict[str, Any]:
    """Train a preset CNN, writing ``last.npz``, ``best.npz``, ``metrics.json`` and a plot to `out`.

    Parameters
    ----------
    data : str or Path, optional
        Dataset directory (IDX, CIFAR-10 batches or image folders); None: the embedded
        Fashion-MNIST subset. A source without a test split gives 10% of its images to testing.
    out : str or Path, optional
        Run directory; default ``runs/<model>`` (or ``-2``, ``-3``, ... if taken). Created after
        the first epoch, so a run that fails to start leaves nothing behind.
    model : {"lenet", "resnet"}
    epochs, batch_size : int
        Defaults 5 and 128.
    lr : float
        Default 1e-3 for Adam/AdamW, 0.05 for SGD.
    optimizer : {"sgd", "adam", "adamw"}
        SGD uses `momentum` (default 0.9). All use `weight_decay` (default 0).
    schedule : {"cosine", "step", "none"}
        Per-epoch learning-rate schedule: cosine annealing over `epochs`, x0.1 every third of
        the run, or constant.
    augment : {"none", "crop", "flip", "crop+flip"}
        Random crop after padding by H//8 pixels, horizontal flip, or both.
    seed : int
        Seeds initialisation, dropout, data order and augmentation (default 0).
    limit : int, optional
        Train on this many images (a seeded subset).
    resume : bool
        Continue the run in `out` from ``last.npz``: weights, optimiser, scheduler, RNG and the
        data order, so it ends with the same weights as a run never stopped. Settings not given
        are those of the stored run; given ones override them (`epochs` to extend it).
    progress : bool, optional
        Show a tqdm bar per epoch; default: only when stderr is a terminal and ``CI`` is unset.
    log : callable
        Receives each line of the report (default ``print``).
    on_epoch_end : callable, optional
        ``on_epoch_end(record)`` after each epoch's files are written.
    workers, scheduler : int or str, optional
        Synchronous data parallelism on a new local cluster of `workers` processes, or on the dask
        cluster at address `scheduler` (see :mod:`convolve.dask`; needs ``convolve[dask]``).
    max_pixels : int, optional
        Image folders: refuse images with more pixels (default 89,478,485, Pillow's limit) before
        decoding them (a guard against decompression bombs). Not stored with the run.

    Returns
    -------
    dict
        ``{"out": Path, "history": [per-epoch dicts], "best_epoch", "best_accuracy", "config"}``.
    """
    given = dict(model=model, data=data, epochs=epochs, batch_size=batch_size, lr=lr,
                 optimizer=optimizer, weight_decay=weight_decay, momentum=momentum,
                 schedule=schedule, augment=augment, seed=seed, limit=limit)
    if workers is not None or scheduler is not None:  # the same run, each step's batch shared by a cluster
        from ..dask import hooks
        with hooks.data_parallel(workers, scheduler, log) as epoch_fn:
            return _train(given, out, resume, progress, log, on_epoch_end, epoch_fn, max_pixels)
    return _train(given, out, resume, progress, log, on_epoch_end, train_epoch, max_pixels)


def _train(given: Dict[str, Any], out: Union[str, Path, None], resume: bool, progress: Optional[bool],
           log: Callable[[str], Any], on_epoch_end: Optional[Callable[[Dict[str, Any]], Any]],
           epoch_fn: Callable[..., Any], max_pixels: Optional[int] = None) -> Dict[str, Any]:
    settings, ckpt, out = _resolve_run(given, out, resume)
    run = _load_run_data(settings, ckpt, max_pixels)
    net, opt, sched, done = _build(settings, run.config, ckpt, log)
    if done.start >= settings.epochs:
        log(f"{out}: all {done.start} epochs are done; pass a larger epochs to train on")
    train_loader, test_loader = make_loaders(run.train_set, run.test_set, settings, run.normalize)

    show = progress_enabled() if progress is None else bool(progress)
    _log_start(log, settings, run, done.start, out)
    for epoch in range(done.start, settings.epochs):
        train_loader.set_epoch(epoch)  # the data order depends on (seed, epoch) only
        lr_now = opt.param_groups[0]["lr"]
        bar = progress_bar(len(train_loader), f"epoch {epoch + 1}/{settings.epochs}", show)
        try:
            train_loss, images, seconds = epoch_fn(net, train_loader, opt, bar)
        finally:
            bar.close()
        if sched is not None:
            sched.step()
        test_loss, test_acc = evaluate(net, test_loader)
        record = EpochRecord(epoch + 1, train_loss, test_loss, test_acc, images / seconds, seconds, lr_now)
        improved = done.add(record)
        _write_epoch(out, settings, run, done, record, improved, net, opt, sched)
        log(format_epoch(record, settings.epochs))
        if on_epoch_end is not None:
            on_epoch_end(record)
    if done.history:
        log(f"best test accuracy {100 * done.best_acc:.2f}% at epoch {done.best_epoch}; wrote {out / BEST}, "
            f"{out / LAST}, {out / METRICS}, {out / PLOT}")
    return {"out": out, "history": done.history, "best_epoch": done.best_epoch, "best_accuracy": done.best_acc,
            "config": run.config}


def _resolve_run(given: Dict[str, Any], out: Union[str, Path, None],
                 resume: bool) -> Tuple[Settings, Optional[Checkpoint], Path]:
    """The checked settings, the checkpoint to resume from (or None) and the run directory."""
    ckpt = None
    if resume:
        if out is None:
            raise ValueError("resume needs out: the run directory that holds last.npz")
        ckpt = load_checkpoint(Path(out) / LAST)
        settings = Settings.resolve(given, ckpt.extra.get("settings"))
    else:
        settings = Settings.resolve(given)
        out = _default_out(settings.model) if out is None else out
        if (Path(out) / LAST).exists():
            raise ValueError(
                f"{out} already holds a run ({LAST}); pass resume=True (--resume) to continue it "
                "or choose another out directory"
            )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a directory, but {out} is a file")
    check_can_create_dir(out, "out")  # fail now, not after the first epoch
    return settings, ckpt, out


def _load_run_data(settings: Settings, ckpt: Optional[Checkpoint], max_pixels: Optional[int] = None) -> _RunData:
    """The datasets and the model config (a resumed run keeps its normalisation)."""
    train_set, test_set, test_split = load_data(settings.data, settings.seed, settings.limit, max_pixels=max_pixels)
    if ckpt is not None and "mean" in ckpt.config:
        mean, std = ckpt.config["mean"], ckpt.config["std"]
    else:
        mean, std = channel_stats(train_set)
    c, h, w = train_set.image_shape
    config = {**model_config(settings.model, c, (h, w), train_set.num_classes), "mean": mean, "std": std}
    return _RunData(train_set, test_set, test_split, config)


def _build(settings: Settings, config: Dict[str, Any], ckpt: Optional[Checkpoint],
           log: Callable[[str], Any]) -> Tuple[Any, Any, Any, _Progress]:
    """Model, optimiser and scheduler, fresh (seeded) or restored from `ckpt`, and the progress so far."""
    init.seed(settings.seed)
    net = build_model(config)
    opt = make_optimizer(net, settings)
    sched = make_scheduler(opt, settings)
    if ckpt is None:
        return net, opt, sched, _Progress()
    if ckpt.optimizer_state is None:
        raise ValueError(f"{ckpt.path} holds no optimiser state (a best.npz?); resume from the run's {LAST}")
    load_weights(net, ckpt.model_state, ckpt.path)
    opt.load_state_dict(ckpt.optimizer_state)
    init.set_rng_state(ckpt.extra["rng"])
    sched = _restore_schedule(opt, sched, ckpt, settings, log)
    done = _Progress(ckpt.epoch, ckpt.extra["history"], ckpt.extra["best_accuracy"], ckpt.extra["best_epoch"])
    return net, opt, sched, done


def _log_start(log: Callable[[str], Any], settings: Settings, run: _RunData, start: int, out: Path) -> None:
    c, h, w = run.train_set.image_shape
    verb = f"resuming at epoch {start + 1}" if start else "training"
    log(f"{verb} {settings.model} on {run.train_set.name or settings.data} ({len(run.train_set)} images "
        f"{c}x{h}x{w}, {run.train_set.num_classes} classes; test: {len(run.test_set)} images, {run.test_split}); "
        f"{settings.optimizer} lr {settings.lr:g}, batch {settings.batch_size}, "
        f"{settings.epochs} epochs, {settings.schedule} schedule -> {out}")


def _write_epoch(out: Path, settings: Settings, run: _RunData, done: _Progress, record: Dict[str, Any],
                 improved: bool, net: Any, opt: Any, sched: Any) -> None:
    """The files of one finished epoch: last.npz (everything to resume), best.npz, metrics, plot."""
    out.mkdir(parents=True, exist_ok=True)
    classes = run.train_set.classes
    info = {"settings": settings.as_dict(), "history": done.history, "best_accuracy": done.best_acc,
            "best_epoch": done.best_epoch, "test_split": run.test_split, "test_accuracy": record["test_accuracy"],
            "test_loss": record["test_loss"]}
    state = net.state_dict()
    save_checkpoint(out / LAST, state, run.config, classes=classes, epoch=record["epoch"],
                    optimizer_state=opt.state_dict(),
                    scheduler_state=None if sched is None else sched.state_dict(),
                    extra={**info, "rng": init.get_rng_state()})
    if improved:  # weights only: evaluate and predict need nothing more
        save_checkpoint(out / BEST, state, run.config, classes=classes, epoch=record["epoch"], extra=info)
    write_metrics(out / METRICS, done.history, config=run.config, settings=settings.as_dict(), classes=classes,
                  test_split=run.test_split, best_epoch=done.best_epoch, best_accuracy=done.best_acc)
    plot_history(out / PLOT, done.history, title=f"{settings.model} on {run.train_set.name or 'data'}")


def _restore_schedule(opt: Any, sched: Any, ckpt: Checkpoint, settings: Settings, log: Callable[[str], Any]) -> Any:
    """Reload the scheduler; if the run is extended, re-plan it for the new length instead."""
    if sched is None:
        return None
    planned = ckpt.extra["settings"]["epochs"]
    if planned == settings.epochs and ckpt.scheduler_state is not None:
        sched.load_state_dict(ckpt.scheduler_state)
        return sched
    # a new length: the same schedule planned for settings.epochs, fast-forwarded
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] = settings.lr
    sched = make_scheduler(opt, settings)
    for _ in range(ckpt.epoch):
        sched.step()
    log(f"note: the {settings.schedule} schedule was planned for {planned} epochs; "
        f"re-planned for {settings.epochs}")
    return sched
