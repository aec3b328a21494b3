"""`OnnxModel`: an imported graph as a convolve Module -- a fixed list of steps built once at load."""

from __future__ import annotations

from typing import Any, Dict

from dataclasses import dataclass

import numpy as np

from ..autograd import Tensor, as_array, is_grad_enabled
from ..nn.module import Module
from ._fold import resolve

__all__ = ["OnnxModel", "Step", "InputSpec"]


@dataclass
class Step:
    """One runtime node: ``outputs = fn(*env[inputs])``; `free` lists values dead after it."""

    fn: object
    inputs: list
    outputs: list
    op: str
    name: str
    symbolic: bool = False  # some input holds dimensions known only at call time
    free: tuple = ()
    learned: bool = False  # it holds parameters (its output is a Tensor even under no_grad)


@dataclass
class InputSpec:
    name: str
    shape: tuple  # ints, dimension names (str) or None per axis
    dtype: np.dtype


class OnnxModel(Module):
    """A network imported from ONNX (see :func:`convolve.onnx.load`).

    Calling it with the graph's inputs, positionally (Tensors or arrays), returns the output, or a
    tuple when the graph has several. Every weight is a Parameter, so ``parameters()``,
    ``state_dict()``, optimisers and ``backward`` work as for any convolve model.

    Attributes
    ----------
    input_specs : list of InputSpec
        Name, shape (a str for a dynamic axis) and dtype of each graph input.
    output_names : list of str
    opset : int
    """

    def __init__(self, steps, inputs, outputs, consts, opset, sources, fast_steps=None):
        super().__init__()
        object.__setattr__(self, "_steps", steps)
        # the inference plan (see `_fuse`): run when nothing is recorded for backward
        object.__setattr__(self, "_fast_steps", steps if fast_steps is None else fast_steps)
        object.__setattr__(self, "_learned", _learned_values(steps))
        self.input_specs, self.output_names, self.opset = inputs, outputs, opset
        object.__setattr__(self, "_consts", consts)
        object.__setattr__(self, "_sources", sources)  # state_dict key -> (initializer, shape, transposed)
        object.__setattr__(self, "_trace", None)

    def _bind(self, inputs):
        if len(inputs) != len(self.input_specs):
            names = ", ".join(s.name for s in self.input_specs)
            raise TypeError(f"the model takes {len(self.input_specs)} input(s) ({names}), but got {len(inputs)}")
        env = dict(self._consts)
        dims: Dict[Any, Any] = {}
        for spec, x in zip(self.input_specs, inputs):
            if not isinstance(x, Tensor):
                x = np.asarray(x)
                if x.dtype != spec.dtype:
                    if x.dtype.kind not in "fiub":
                        raise TypeError(f"input {spec.name!r} must be numeric ({spec.dtype}), but got dtype {x.dtype}")
                    x = x.astype(spec.dtype)
            elif x.dtype != spec.dtype:
                raise TypeError(f"input {spec.name!r} must have dtype {spec.dtype}, but got a Tensor of dtype "
                                f"{x.dtype}; convert it with .astype(np.{spec.dtype})")
            shape = as_array(x).shape
            want = "(" + ", ".join("?" if d is None else str(d) for d in spec.shape) + ")"
            if len(shape) != len(spec.shape):
                raise ValueError(f"input {spec.name!r} must be {len(spec.shape)}-D with shape {want}, "
                                 f"but got shape {shape}")
            for axis, (d, n) in enumerate(zip(spec.shape, shape)):
                if isinstance(d, int) and d != n:
                    raise ValueError(f"input {spec.name!r} must have shape {want}, but got {shape} "
                                     f"(axis {axis} is {n}, the model needs {d})")
                if isinstance(d, str):
                    if dims.setdefault(d, n) != n:
                        raise ValueError(f"dimension {d!r} is {dims[d]} in one input but {n} in input {spec.name!r}")
            env[spec.name] = x
        return env, dims

    def _records(self, inputs) -> bool:
        """Whether this call is recorded for backward (then the graph runs step by step, unfused)."""
        if not is_grad_enabled():
            return False
        return (any(isinstance(x, Tensor) and x.requires_grad for x in inputs)
                or any(p.requires_grad for p in self.parameters()))

    def forward(self, *inputs):
        env, dims = self._bind(inputs)
        trace = self._trace
        fast = trace is None and not self._records(inputs)
        for step in self._fast_steps if fast else self._steps:
            args = [env[name] if name else None for name in step.inputs]
            if step.symbolic:
                args = [resolve(a, dims) for a in args]
            try:
                out = step.fn(*args)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"{step.op} node {step.name!r}: {exc}") from exc
            if len(step.outputs) == 1:
                env[step.outputs[0]] = out
            else:
                for name, value in zip(step.outputs, out):
                    if name:
                        env[name] = value
            if trace is not None:
                trace(step, args, env)
            for name in step.free:
                env.pop(name, None)
        outs = tuple(resolve(env[name], dims) for name in self.output_names)
        if fast:  # fused steps return arrays where the step-by-step path returns Tensors
            outs = tuple(Tensor(o) if name in self._learned and isinstance(o, np.ndarray) else o
                         for name, o in zip(self.output_names, outs))
        return outs[0] if len(outs) == 1 else outs

    def onnx_state_dict(self):
        """The weights under their ONNX initializer names and layouts (for converting weights)."""
        out = {}
        state = self.state_dict()
        for key, (init, shape, transposed) in self._sources.items():
            a = np.asarray(state[key])
            out[init] = (a.T if transposed else a).reshape(shape)
        return out

    def extra_repr(self):
        ins = ", ".join(f"{s.name}{list(s.shape)}" for s in self.input_specs)
        return f"inputs: {ins}; {len(self._steps)} steps; opset {self.opset}"


def _learned_values(steps):
    """Names of the values that depend on some parameter (Tensors on the step-by-step path)."""
    learned: set = set()
    for s in steps:
        if s.learned or any(n in learned for n in s.inputs):
            learned.update(s.outputs)
    return learned
