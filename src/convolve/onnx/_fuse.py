"""The inference plan of an imported graph: what runs when nothing is recorded for backward.

A Conv whose output feeds only a BatchNormalization runs with the normalisation folded into its
weights and bias (ONNX's formula ``(conv - mean) / sqrt(var + eps) * scale + B`` per channel); a
following Add (the residual) and Relu are applied in place on the convolution's fresh output
instead of allocating a new array each. The trainable modules are untouched: the folded copy is
recomputed whenever one of the parameters it came from changes (their version counters and
identities) or the running statistics change, and the recorded path (fine-tuning) runs the
graph's steps one by one as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, List, Optional

import numpy as np

from .._engine import constants, eltwise
from ..autograd import as_array
from ._modules import BatchNorm, Conv

__all__ = ["FusedConv", "inference_steps"]


class FusedConv:
    """``relu(bn(conv(x)) + other)`` (each part optional) as one step; called as ``fn(x[, other])``.

    Shape
    -----
    (N, C_in, *spatial) [, anything that broadcasts to the output] -> (N, C_out, *out_spatial).
    """

    def __init__(self, conv: Conv, bn: Optional[BatchNorm], add: bool, relu: bool):
        self.conv, self.bn, self.add, self.relu = conv, bn, add, relu
        self._key: Any = None
        self._stats: Any = None
        self._folded: Any = None

    def weights(self):
        """(weight, bias) arrays of the convolution, with the BatchNormalization folded in."""
        conv, bn = self.conv, self.bn
        if bn is None:  # a read-only view of the parameter, new whenever the parameter is assigned
            key: Any = ((id(conv.weight), conv.weight._version),)
            if key != self._key:
                self._key = key
                self._folded = (constants.mark(conv.weight.data.view()), None if conv.bias is None else conv.bias.data)
            return self._folded[0], None if conv.bias is None else conv.bias.data
        params = (conv.weight, conv.bias, bn.weight, bn.bias)
        key = tuple((id(p), p._version) if p is not None else None for p in params) + (bn.eps,)
        mean, var = bn.running_mean, bn.running_var
        if (key != self._key or not np.array_equal(mean, self._stats[0])
                or not np.array_equal(var, self._stats[1])):
            w, b = fold_batch_norm(conv.weight.data, None if conv.bias is None else conv.bias.data,
                                   bn.weight.data, bn.bias.data, mean, var, bn.eps)
            self._folded = (constants.mark(w), b)  # the engine may keep what it derives from w
            self._key, self._stats = key, (np.array(mean), np.array(var))
        return self._folded

    def __call__(self, x, other=None):
        w, b = self.weights()
        xa = as_array(x)
        y = as_array(self.conv.run(xa, w, b))
        if not isinstance(y, np.ndarray) or np.may_share_memory(y, xa):  # never write into the input
            y = np.array(y)
        if self.add:
            o = as_array(other)
            if o.dtype == y.dtype and np.broadcast_shapes(y.shape, o.shape) == y.shape:
                np.add(y, o, out=y)
            else:
                y = y + o
        if self.relu:
            eltwise.relu_(y)
        return y


def fold_batch_norm(w, b, scale, shift, mean, var, eps):
    """Conv weights and bias with an inference BatchNormalization after it folded in, computed in
    float64 and returned in w's dtype: ``w * s`` and ``(b - mean) * s + shift``, s = scale / sqrt(var + eps).

    Shape
    -----
    w (C_out, C_in/groups, *kernel), b None or (C_out,), the rest (C_out,) -> ((C_out, ...), (C_out,)).
    """
    s = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    wf = (np.asarray(w, np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    b0 = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)
    bf = ((b0 - np.asarray(mean, np.float64)) * s + np.asarray(shift, np.float64)).astype(w.dtype)
    return wf, bf


def inference_steps(steps: List[Any], outputs: List[str], opset: int, step_type) -> List[Any]:
    """The steps to run without recording: each Conv chain (Conv [BatchNormalization] [Add] [Relu],
    every intermediate used only by the next) becomes one `FusedConv` step at the chain's last place."""
    uses = Counter(n for s in steps for n in s.inputs if n)
    uses.update(outputs)
    consumer = {n: i for i, s in enumerate(steps) for n in s.inputs if n}

    claimed: set = set()  # steps already in a chain (two convs can meet at one Add)

    def next_step(value, op):
        """The index of the only step that reads `value`, if it is an `op` (and nothing else reads it)."""
        i = consumer.get(value)
        if uses[value] != 1 or i is None or i in claimed:
            return None
        return i if steps[i].op == op and not steps[i].symbolic else None

    chains = {}  # index of a chain's last step -> its fused step
    for i, s in enumerate(steps):
        if s.op != "Conv" or not isinstance(s.fn, Conv) or s.symbolic or len(s.outputs) != 1:
            continue
        taken, out, bn, extra = [i], s.outputs[0], None, []
        j = next_step(out, "BatchNormalization")
        if j is not None and isinstance(steps[j].fn, BatchNorm) and steps[j].inputs[0] == out and len(steps[j].outputs) == 1:
            bn, out = steps[j].fn, steps[j].outputs[0]
            taken.append(j)
        j = next_step(out, "Add") if opset >= 7 else None
        if j is not None and len(steps[j].inputs) == 2 and out in steps[j].inputs:
            other = steps[j].inputs[1] if steps[j].inputs[0] == out else steps[j].inputs[0]
            extra, out = [other], steps[j].outputs[0]
            taken.append(j)
        j = next_step(out, "Relu")
        if j is not None:
            out = steps[j].outputs[0]
            taken.append(j)
        if len(taken) == 1:
            continue
        claimed.update(taken)
        last = steps[taken[-1]]
        fn = FusedConv(s.fn, bn, bool(extra), last.op == "Relu")
        op = "+".join(steps[t].op for t in taken)
        chains[taken[-1]] = step_type(fn, [s.inputs[0]] + extra, [out], op, s.name)
    fast = []
    for i, s in enumerate(steps):
        if i in chains:
            fast.append(chains[i])
        elif i not in claimed:
            fast.append(replace(s))  # a copy: each plan has its own `free` lists
    return fast

