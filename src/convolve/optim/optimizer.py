"""`Optimizer`: parameter groups, per-parameter state, zero_grad and state_dict (PyTorch's layout)."""

from __future__ import annotations

import copy
import numbers
from typing import Any, Dict, Iterable, List, Union

import numpy as np

from ..nn.parameter import Parameter

__all__ = ["Optimizer", "Params"]

#: what an optimiser takes: parameters, or groups ``{"params": [...], "lr": ...}``
Params = Union[Parameter, Iterable[Parameter], Iterable[Dict[str, Any]]]


def check_hyper(name, value, low=0.0, high=None, *, open_high=False):
    """A real number in [low, high] (or [low, high)): a TypeError naming it for a non-number, a
    ValueError for a number out of range (the policy of ``convolve._shared.checks``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, but got {value!r}")
    ok = value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        rng = f"in [{low}, {high}{')' if open_high else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a number {rng}, but got {value!r}")
    return value


class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts with "params" and hyper-parameters) and ``state``.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dicts
        Parameters to optimise, or groups ``{"params": [...], "lr": ...}`` whose keys override `defaults`.
    defaults : dict
        Hyper-parameters of groups that do not set them.

    Notes
    -----
    ``state_dict()`` returns ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``
    with parameters numbered across groups, as PyTorch; ``load_state_dict`` restores it into an
    optimiser built over the same parameters, so training resumes exactly. State arrays are copies.
    """

    def __init__(self, params: Params, defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.state: Dict[Any, Dict[str, Any]] = {}  # Parameter -> dict (keyed by object identity: Tensor defines no __hash__ override)
        self.param_groups: List[Dict[str, Any]] = []
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(
                "params must be an iterable of Parameters or of dicts (e.g. model.parameters()), but got a single "
                f"{type(params).__name__}"
            )
        groups: List[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with a 'params' entry, but got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizer can only optimize Parameters, but params[{i}] is {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group (or twice in one)")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} in parameter group; known: {sorted(self.defaults)}")
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        self._validate(full)
        full["params"] = params
        self.param_groups.append(full)

    def _validate(self, group: dict) -> None:
        """Check one group's hyper-parameters (subclasses extend)."""
        check_hyper("lr", group["lr"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter this optimiser updates."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = np.zeros_like(p.data)

    def _state(self, p) -> dict:
        return self.state.setdefault(id(p), {})

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"state": {i: {name: array or number}}, "param_groups": [...]}`` (copies)."""
        index: Dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for pid, st in self.state.items():
            if pid in index:
                state[index[pid]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
        return {"state": state, "param_groups": copy.deepcopy(groups)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and per-parameter state saved by :meth:`state_dict`."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups' (from Optimizer.state_dict())")
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved)} parameter groups but this optimizer has {len(self.param_groups)}")
        for i, (s, g) in enumerate(zip(saved, self.param_groups)):
            if len(s["params"]) != len(g["params"]):
                raise ValueError(
                    f"parameter group {i} has {len(s['params'])} parameters in state_dict but {len(g['params'])} here"
                )
        params = {}
        for s, g in zip(saved, self.param_groups):
            for idx, p in zip(s["params"], g["params"]):
                params[int(idx)] = p
        new_state = {}
        for idx, st in state_dict["state"].items():
            p = params.get(int(idx))
            if p is None:
                raise ValueError(f"state_dict has state for parameter {idx}, which no group holds")
            entry = {}
            for k, v in st.items():
                if isinstance(v, np.ndarray) or (hasattr(v, "shape") and getattr(v, "ndim", 0) > 0):
                    v = np.asarray(v)
                    if v.shape != p.shape:
                        raise ValueError(f"state {k!r} of parameter {idx} has shape {v.shape}, but the parameter has {p.shape}")
                    v = v.astype(p.dtype, copy=True)
                entry[k] = v
            new_state[id(p)] = entry
        new_groups = []
        for s, g in zip(saved, self.param_groups):
            merged = {k: v for k, v in s.items() if k != "params"}
            merged["params"] = g["params"]
            new_groups.append(merged)
        self.param_groups = new_groups
        self.state = new_state
