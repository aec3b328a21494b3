"""`train`: a whole run, from arguments to checkpoints, metrics and plot, resumable exactly."""

from __future__ import annotations

from pathlib import Path

from ..nn import init
from ._checkpoint import load_weights, load_checkpoint, save_checkpoint
from ._loop import evaluate, train_epoch
from ._metrics import EpochRecord, format_epoch, plot_history, write_metrics
from ._models import build_model, model_config
from ._progress import progress_bar, progress_enabled
from ._setup import (channel_stats, load_data, make_loaders, make_optimizer, make_scheduler,
                     resolve_settings)

__all__ = ["train", "LAST", "BEST", "METRICS", "PLOT"]

LAST, BEST, METRICS, PLOT = "last.npz", "best.npz", "metrics.json", "loss_accuracy.png"


def _default_out(model):
    """``runs/<model>``, or the first free ``runs/<model>-2``, ``-3``, ..."""
    out, n = Path("runs") / model, 1
    while out.exists():
        n += 1
        out = Path("runs") / f"{model}-{n}"
    return out


def train(data=None, out=None, *, model=None, epochs=None, batch_size=None, lr=None, optimizer=None,
          weight_decay=None, momentum=None, schedule=None, augment=None, seed=None, limit=None,
          resume=False, progress=None, log=print, on_epoch_end=None):
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

    Returns
    -------
    dict
        ``{"out": Path, "history": [per-epoch dicts], "best_epoch", "best_accuracy", "config"}``.
    """
    given = dict(model=model, data=data, epochs=epochs, batch_size=batch_size, lr=lr,
                 optimizer=optimizer, weight_decay=weight_decay, momentum=momentum,
                 schedule=schedule, augment=augment, seed=seed, limit=limit)
    ckpt = None
    if resume:
        if out is None:
            raise ValueError("resume needs out: the run directory that holds last.npz")
        ckpt = load_checkpoint(Path(out) / LAST)
        settings = resolve_settings(given, ckpt.extra.get("settings"))
    else:
        settings = resolve_settings(given)
        out = _default_out(settings["model"]) if out is None else out
        if (Path(out) / LAST).exists():
            raise ValueError(
                f"{out} already holds a run ({LAST}); pass resume=True (--resume) to continue it "
                "or choose another out directory"
            )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a directory, but {out} is a file")

    train_set, test_set, test_split = load_data(settings["data"], settings["seed"], settings["limit"])
    if ckpt is not None and "mean" in ckpt.config:
        mean, std = ckpt.config["mean"], ckpt.config["std"]  # keep the run's normalisation
    else:
        mean, std = channel_stats(train_set)
    c, h, w = train_set.image_shape
    config = {**model_config(settings["model"], c, (h, w), train_set.num_classes), "mean": mean, "std": std}

    init.seed(settings["seed"])
    net = build_model(config)
    opt = make_optimizer(net, settings)
    sched = make_scheduler(opt, settings)
    history, best_acc, best_epoch, start = [], -1.0, 0, 0
    if ckpt is not None:
        load_weights(net, ckpt.model_state, ckpt.path)
        opt.load_state_dict(ckpt.optimizer_state)
        start = ckpt.epoch
        history = ckpt.extra["history"]
        best_acc, best_epoch = ckpt.extra["best_accuracy"], ckpt.extra["best_epoch"]
        init.set_rng_state(ckpt.extra["rng"])
        sched = _restore_schedule(opt, sched, ckpt, settings, log)
        if start >= settings["epochs"]:
            log(f"{out}: all {start} epochs are done; pass a larger epochs to train on")
    train_loader, test_loader = make_loaders(train_set, test_set, settings, (mean, std))

    show = progress_enabled() if progress is None else bool(progress)
    verb = f"resuming at epoch {start + 1}" if start else "training"
    log(f"{verb} {settings['model']} on {train_set.name or settings['data']} ({len(train_set)} images "
        f"{c}x{h}x{w}, {train_set.num_classes} classes; test: {len(test_set)} images, {test_split}); "
        f"{settings['optimizer']} lr {settings['lr']:g}, batch {settings['batch_size']}, "
        f"{settings['epochs']} epochs, {settings['schedule']} schedule -> {out}")
    for epoch in range(start, settings["epochs"]):
        train_loader.set_epoch(epoch)  # the data order depends on (seed, epoch) only
        lr_now = opt.param_groups[0]["lr"]
        bar = progress_bar(len(train_loader), f"epoch {epoch + 1}/{settings['epochs']}", show)
        try:
            train_loss, images, seconds = train_epoch(net, train_loader, opt, bar)
        finally:
            bar.close()
        if sched is not None:
            sched.step()
        test_loss, test_acc = evaluate(net, test_loader)
        record = EpochRecord(epoch + 1, train_loss, test_loss, test_acc, images / seconds, seconds, lr_now)
        history.append(record)
        improved = test_acc > best_acc
        if improved:
            best_acc, best_epoch = test_acc, epoch + 1
        out.mkdir(parents=True, exist_ok=True)
        info = {"settings": settings, "history": history, "best_accuracy": best_acc,
                "best_epoch": best_epoch, "test_split": test_split, "test_accuracy": test_acc,
                "test_loss": test_loss}
        state = net.state_dict()
        save_checkpoint(out / LAST, state, config, classes=train_set.classes, epoch=epoch + 1,
                        optimizer_state=opt.state_dict(),
                        scheduler_state=None if sched is None else sched.state_dict(),
                        extra={**info, "rng": init.get_rng_state()})
        if improved:  # weights only: evaluate and predict need nothing more
            save_checkpoint(out / BEST, state, config, classes=train_set.classes, epoch=epoch + 1,
                            extra=info)
        write_metrics(out / METRICS, history, config=config, settings=settings, classes=train_set.classes,
                      test_split=test_split, best_epoch=best_epoch, best_accuracy=best_acc)
        plot_history(out / PLOT, history, title=f"{settings['model']} on {train_set.name or 'data'}")
        log(format_epoch(record, settings["epochs"]))
        if on_epoch_end is not None:
            on_epoch_end(record)
    if history:
        log(f"best test accuracy {100 * best_acc:.2f}% at epoch {best_epoch}; wrote {out / BEST}, "
            f"{out / LAST}, {out / METRICS}, {out / PLOT}")
    return {"out": out, "history": history, "best_epoch": best_epoch, "best_accuracy": best_acc,
            "config": config}


def _restore_schedule(opt, sched, ckpt, settings, log):
    """Reload the scheduler; if the run is extended, re-plan it for the new length instead."""
    if sched is None:
        return None
    planned = ckpt.extra["settings"]["epochs"]
    if planned == settings["epochs"] and ckpt.scheduler_state is not None:
        sched.load_state_dict(ckpt.scheduler_state)
        return sched
    # a new length: the same schedule planned for settings["epochs"], fast-forwarded
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] = settings["lr"]
    sched = make_scheduler(opt, settings)
    for _ in range(ckpt.epoch):
        sched.step()
    log(f"note: the {settings['schedule']} schedule was planned for {planned} epochs; "
        f"re-planned for {settings['epochs']}")
    return sched
