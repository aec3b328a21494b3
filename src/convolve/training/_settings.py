"""The settings of a training run: one checked, immutable object (stored in checkpoints as a dict)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional

from .._shared.checks import check_choice, check_int, check_number
from ._models import PRESETS

__all__ = ["Settings", "DEFAULTS", "CHOICES", "DEFAULT_LR"]

CHOICES = {
    "model": tuple(PRESETS),
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("cosine", "step", "none"),
    "augment": ("none", "crop", "flip", "crop+flip"),
}
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


@dataclass(frozen=True)
class Settings:
    """What a run is asked to do; see :func:`convolve.training.train` for each field.

    ``lr=None`` means the optimiser's default rate (`DEFAULT_LR`); ``data=None`` the embedded
    Fashion-MNIST subset; ``limit=None`` every image. Build one with :meth:`resolve`, which checks
    every field.
    """

    model: str = "lenet"
    data: Optional[str] = None
    epochs: int = 5
    batch_size: int = 128
    lr: Optional[float] = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    augment: str = "none"
    seed: int = 0
    limit: Optional[int] = None

    @classmethod
    def resolve(cls, given: Mapping[str, Any], stored: Optional[Mapping[str, Any]] = None) -> "Settings":
        """Merge explicitly given settings over `stored` ones (a resumed run) or the defaults; check them.

        Parameters
        ----------
        given : mapping
            Settings the caller passed; None values mean "not given".
        stored : mapping, optional
            The settings of the run being resumed (as :meth:`as_dict` wrote them).

        Returns
        -------
        Settings
            Every field checked, with ``lr`` filled in.
        """
        unknown = sorted(set(given) - set(DEFAULTS))
        if unknown:
            raise TypeError(f"unknown training settings {unknown}; known: {sorted(DEFAULTS)}")
        base = dict(DEFAULTS if stored is None else {**DEFAULTS, **stored})
        if stored is None or given.get("optimizer") not in (None, stored.get("optimizer")):
            base["lr"] = None  # a new optimiser gets its own default rate unless lr is given
        s = {**base, **{k: v for k, v in given.items() if v is not None}}
        for key, allowed in CHOICES.items():
            check_choice(key, s[key], allowed)
        lr = s["lr"]
        return cls(
            model=s["model"],
            data=None if s["data"] is None else str(s["data"]),
            epochs=check_int("epochs", s["epochs"], minimum=1),
            batch_size=check_int("batch_size", s["batch_size"], minimum=1),
            lr=DEFAULT_LR[s["optimizer"]] if lr is None else check_number("lr", lr, minimum=0.0, strict_min=True),
            optimizer=s["optimizer"],
            weight_decay=check_number("weight_decay", s["weight_decay"], minimum=0.0),
            momentum=check_number("momentum", s["momentum"], minimum=0.0),
            schedule=s["schedule"],
            augment=s["augment"],
            seed=check_int("seed", s["seed"], minimum=0),
            limit=check_int("limit", s["limit"], minimum=1, allow_none=True),
        )

    def as_dict(self) -> Dict[str, Any]:
        """The settings as plain JSON-able values (what checkpoints and metrics.json store)."""
        return asdict(self)


#: every setting's default (``lr`` None: per optimiser, see DEFAULT_LR)
DEFAULTS: Dict[str, Any] = {f.name: f.default for f in fields(Settings)}
