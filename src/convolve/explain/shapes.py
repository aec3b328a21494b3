"""Walk a stack of layers from an input volume: output volume, the size formula with numbers, parameters,
the fully connected comparison, FLOPs, receptive field, activation memory, and spec checking.

Sizes and the rules that make a layer impossible come from `convolve._geometry`, the module that
``convolve.functional`` checks its calls with, so every number printed here is what it produces and every
layer refused here is one it refuses.
"""

from __future__ import annotations

from typing import Any

from dataclasses import dataclass, field, replace

import numpy as np

from .._geometry import GeometryError, conv_output, pool_output, same_padding
from .spec import Layer, format_shape, parse_layers, parse_shape, to_spec

__all__ = ["Step", "Explanation", "explain", "fmt_int", "fmt_bytes"]


def fmt_int(n: int) -> str:
    return f"{int(n):,}"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # unreachable; keeps linters quiet


@dataclass
class Step:
    """What one layer does to its input. Shapes are channels-first ((C, H, W) or (F,)).

    ``out_shape`` is None when the layer is impossible (``problem`` says why); ``check`` is None when no
    output was stated, otherwise (ok, message).
    """

    index: int
    layer: Layer
    in_shape: tuple
    out_shape: Any = None  # the output shape (a tuple); None until computed or when the layer is impossible
    padding: tuple | None = None  # ((top, bottom), (left, right)) actually used
    formula: list = field(default_factory=list)
    weights: int = 0
    biases: int = 0
    params_text: str = ""
    fc_params: int | None = None
    flops: int = 0
    flops_text: str = ""
    rf: tuple | None = None  # (rH, rW) in input pixels; None = the whole input
    jump: tuple = (1, 1)
    problem: str | None = None
    check: tuple | None = None
    extra_params: int = 0  # batchnorm running statistics are buffers, not parameters

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def activations(self) -> int:
        return int(np.prod(self.out_shape)) if self.out_shape else 0


@dataclass
class Explanation:
    """The result of :func:`explain`: one Step per layer reached, totals, and rendering."""

    input_shape: tuple
    steps: list
    itemsize: int = 4
    dtype: str = "float32"

    @property
    def ok(self) -> bool:
        """No impossible layer and every stated output matched."""
        return all(s.problem is None and (s.check is None or s.check[0]) for s in self.steps)

    @property
    def output_shape(self) -> Any:  # a tuple, or None when a layer is impossible
        return self.steps[-1].out_shape if self.steps else self.input_shape

    @property
    def total_params(self) -> int:
        return sum(s.params for s in self.steps)

    @property
    def total_flops(self) -> int:
        return sum(s.flops for s in self.steps)

    @property
    def total_activations(self) -> int:
        return sum(s.activations for s in self.steps)

    def details(self) -> str:
        lines = [f"input {format_shape(self.input_shape)}  {_chw(self.input_shape)}  "
                 f"{fmt_int(np.prod(self.input_shape))} values"]
        for s in self.steps:
            lines.append("")
            out = format_shape(s.out_shape) if s.out_shape else "impossible"
            lines.append(f"[{s.index}] {s.layer.text.split('->')[0].strip()}  ->  {out}"
                         + (f"  {_chw(s.out_shape)}" if s.out_shape else ""))
            if s.problem:
                lines.append(_label("problem", s.problem))
                continue
            for f in s.formula:
                lines.append(_label("output size", f) if f is s.formula[0] else _label("", f))
            if s.params_text:
                lines.append(_label("parameters", s.params_text))
            if s.fc_params is not None and s.layer.kind == "conv":
                ratio = s.fc_params / max(s.params, 1)
                lines.append(_label("vs dense", f"a fully connected layer {fmt_int(np.prod(s.in_shape))} -> "
                                    f"{fmt_int(s.activations)} would need {fmt_int(s.fc_params)} parameters, "
                                    f"{ratio:,.0f}x more (weight sharing: the same kernels at every position)"))
            if s.flops_text:
                lines.append(_label("FLOPs", s.flops_text))
            lines.append(_label("receptive field", _rf_text(s)))
            lines.append(_label("activations", f"{fmt_int(s.activations)} values = "
                                f"{fmt_bytes(s.activations * self.itemsize)} ({self.dtype}, per image)"))
            if s.check:
                lines.append(_label("check", ("OK: " if s.check[0] else "WRONG: ") + s.check[1]))
        lines.append("")
        lines.append(self.totals())
        return "\n".join(lines)

    def totals(self) -> str:
        if not self.ok and any(s.problem for s in self.steps):
            bad = next(s for s in self.steps if s.problem)
            return f"stopped at layer {bad.index}: {bad.layer.text.split('->')[0].strip()} is impossible (see above)"
        out = self.output_shape
        n = len(self.steps)
        line = (f"total: {n} layer{'s' if n != 1 else ''}, {format_shape(self.input_shape)} -> "
                f"{format_shape(out)}, {fmt_int(self.total_params)} parameters "
                f"({fmt_bytes(self.total_params * self.itemsize)}), {fmt_int(self.total_flops)} FLOPs and "
                f"{fmt_bytes(self.total_activations * self.itemsize)} of activations per image")
        wrong = [s for s in self.steps if s.check and not s.check[0]]
        if wrong:
            line += f"\n{len(wrong)} stated output(s) do not match: see WRONG above"
        return line

    def table(self) -> str:
        rows = [("#", "layer", "output", "params", "FLOPs", "RF", "memory")]
        rows.append(("0", "input", format_shape(self.input_shape), "", "", "1x1",
                     fmt_bytes(np.prod(self.input_shape) * self.itemsize)))
        for s in self.steps:
            if s.problem:
                rows.append((str(s.index), s.layer.text.split("->")[0].strip(), "impossible", "", "", "", ""))
                continue
            rf = f"{s.rf[0]}x{s.rf[1]}" if s.rf else "all"
            rows.append((str(s.index), s.layer.text.split("->")[0].strip(), format_shape(s.out_shape),
                         fmt_int(s.params), fmt_int(s.flops), rf, fmt_bytes(s.activations * self.itemsize)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        right = {3, 4}
        text = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                for r in rows]
        text.insert(1, "-" * len(text[0]))
        return "\n".join(text) + "\n" + self.totals()

    def __str__(self) -> str:
        return self.details()


def _label(name: str, text: str) -> str:
    return f"    {name:<16} {text}"


def _chw(shape) -> str:
    return f"(C,H,W) = ({', '.join(map(str, shape))})" if len(shape) == 3 else "(features)"


def _rf_text(s: Step) -> str:
    if s.rf is None:
        return "the whole input (every output reads every input value)"
    jump = "" if s.jump == (1, 1) else f"; neighbouring outputs are {s.jump[0]}x{s.jump[1]} input pixels apart"
    return f"each output value sees {s.rf[0]}x{s.rf[1]} input pixels{jump}"


def _hw(text_a: str, text_b: str) -> list:
    """One formula line when H and W work out identically, two otherwise."""
    if text_a.split(":", 1)[1] == text_b.split(":", 1)[1]:
        return ["H = W =" + text_a.split(":", 1)[1]]
    return [text_a, text_b]


def _size_text(dim, n, k, s, d, pb, pe, out, ceil=False) -> str:
    pad = f"2*{pb}" if pb == pe else f"{pb}+{pe}"
    rnd = "ceil" if ceil else "floor"
    span = n + pb + pe - d * (k - 1) - 1
    naive = (-(-span // s) if ceil else span // s) + 1
    text = f"{dim}: {rnd}(({n} + {pad} - {d}*({k}-1) - 1) / {s}) + 1 = {naive}"
    if naive != out:  # PyTorch's ceil_mode rule: no window may start in the right padding
        text += f", minus the last window, which would start in the padding: {out}"
    return text


# --- the solver behind spec checking -----------------------------------------------------------------


def _conv_size(n, k, s, d, p) -> int:
    """Output size along one dim, 0 if the layer would be impossible."""
    try:
        return conv_output((n,), (k,), (s,), (d,), ((p, p),))[0]
    except GeometryError:
        return 0


def _pool_size(n, k, s, d, p, ceil) -> int:
    """Output size along one dim, 0 if the pooling would be refused."""
    try:
        return pool_output((n,), (k,), (s,), (p,), (d,), ceil)[0][0]
    except GeometryError:
        return 0


def _fixes(layer: Layer, dim: int, n: int, target: int):
    """(stride, padding, same_also_works) that turns `n` into `target` along one dimension, changing as
    little as possible (padding first, then stride, then both), or None."""
    k, s, d = layer.kernel[dim], layer.stride[dim], layer.dilation[dim]
    if layer.kind == "conv":
        size = lambda s_, p_: _conv_size(n, k, s_, d, p_)  # noqa: E731
    else:
        size = lambda s_, p_: _pool_size(n, k, s_, d, p_, layer.ceil)  # noqa: E731
    p_max = n + target + d * k
    same = lambda s_: layer.kind == "conv" and -(-n // s_) == target  # noqa: E731
    pads = [p for p in range(p_max + 1) if size(s, p) == target]
    if pads:
        return s, pads[0], same(s)
    cur_p = layer.padding[dim] if isinstance(layer.padding, tuple) else 0
    strides = [st for st in range(1, n + 2 * cur_p + 1) if size(st, cur_p) == target]
    if strides:
        return strides[0], cur_p, same(strides[0])
    for total in range(1, n + p_max + 2):
        for st in range(1, total + 1):
            if total - st <= p_max and size(st, total - st) == target:
                return st, total - st, same(st)
    return None


def _pair_text(v) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def _expect_check(step: Step) -> tuple:
    """Compare the actual output to the stated one; say what would give the stated one."""
    layer, got, want = step.layer, step.out_shape, step.layer.expect
    if got == want:
        return True, f"{format_shape(want)} as stated"
    head = f"{layer.kind} {_what(step)}{_padding_words(step)} gives {format_shape(got)}, not {format_shape(want)}"
    if len(want) != len(got):
        shape = "a flat vector" if len(got) == 1 else "a volume (H x W x C)"
        return False, f"{head}: this layer outputs {shape}"
    if len(got) == 1:
        if layer.kind == "linear":
            return False, f"{head}: linear OUT gives OUT features; 'linear {want[0]}' gives {want[0]}"
        return False, f"{head}: {layer.kind} keeps the number of features ({got[0]})"
    reasons, changes = [], {}
    fixable = True  # False once a reason says no change of this layer's options can give `want`
    if want[0] != got[0]:
        if layer.kind == "conv":
            reasons.append(f"the output depth is the number of kernels, so {want[0]} kernels are needed")
            changes["out"] = want[0]
        else:
            reasons.append(f"{layer.kind} keeps the depth ({got[0]}); only a conv layer changes it")
            fixable = False
    if want[1:] != got[1:]:
        if layer.kind not in ("conv", "maxpool", "avgpool"):
            reasons.append(f"{layer.kind} keeps height and width ({got[1]}x{got[2]})")
            fixable = False
        else:
            fixes = [_fixes(layer, dim, step.in_shape[1 + dim], want[1 + dim]) for dim in (0, 1)]
            for dim, name in ((0, "H"), (1, "W")):
                if fixes[dim] is None:
                    fixable = False
                    reasons.append(f"no padding or stride turns {name} = {step.in_shape[1 + dim]} into "
                                   f"{want[1 + dim]} with a {layer.kernel[dim]}-wide "
                                   f"{'kernel' if layer.kind == 'conv' else 'window'}")
            if None not in fixes:
                stride = (fixes[0][0], fixes[1][0])
                pad = (fixes[0][1], fixes[1][1])
                changes["stride"] = stride
                changes["padding"] = "same" if fixes[0][2] and fixes[1][2] and pad != (0, 0) and \
                    isinstance(layer.padding, str) else pad
                same = " (or padding=same)" if fixes[0][2] and fixes[1][2] else ""
                what = f"padding={_pair_text(pad)}" if stride == layer.stride else \
                    f"stride={_pair_text(stride)} and padding={_pair_text(pad)}"
                reasons.append(f"{what}{same} gives {want[1]}x{want[2]} from {step.in_shape[1]}x{step.in_shape[2]}")
    text = f"{head}: " + "; ".join(reasons)
    fixed = replace(layer, **changes, expect=None) if fixable and changes else None
    if fixed is not None:
        trial = Step(index=step.index, layer=fixed, in_shape=step.in_shape)
        _conv(trial, (1, 1), (1, 1)) if fixed.kind == "conv" else _pool(trial, (1, 1), (1, 1))
        if trial.out_shape == want:  # verified by walking the corrected layer
            text += f". Use '{to_spec(fixed)}'"
    return False, text


def _what(step: Step) -> str:
    layer = step.layer
    if layer.kind == "conv":
        depth = step.in_shape[0] // layer.groups
        return f"with {layer.out} kernels of {layer.kernel[0]}x{layer.kernel[1]}x{depth}"
    if layer.kind in ("maxpool", "avgpool"):
        return f"{layer.kernel[0]}x{layer.kernel[1]}"
    return str(layer.out or "")


def _padding_words(step: Step) -> str:
    p = step.layer.padding
    if step.layer.kind not in ("conv", "maxpool", "avgpool"):
        return ""
    if isinstance(p, str):
        return f" and padding={p}"
    st = step.layer.stride
    stride = "" if st == (1, 1) or (step.layer.kind != "conv" and st == step.layer.kernel) else \
        f", stride={st[0] if st[0] == st[1] else f'{st[0]}x{st[1]}'}"
    return f" and padding={p[0] if p[0] == p[1] else f'{p[0]}x{p[1]}'}{stride}"


# --- one function per kind of layer -------------------------------------------------------------------


def _need_volume(step: Step) -> bool:
    if len(step.in_shape) == 3:
        return True
    step.problem = (f"{step.layer.kind} needs a volume (H x W x C) but its input is a flat vector of "
                    f"{step.in_shape[0]} features (flatten/linear came before it)")
    return False


def _window(step: Step, rf, jump) -> bool:
    """Conv and pooling: padding, output size and formula; False when the layer is impossible."""
    layer, (c, h, w) = step.layer, step.in_shape
    k, s, d = layer.kernel, layer.stride, layer.dilation
    if layer.padding == "same":
        if layer.kind != "conv":
            step.problem = "pooling takes a number as padding (like PyTorch's MaxPool2d), not 'same'"
            return False
        pairs = same_padding((h, w), k, s, d)
    elif layer.padding == "valid":
        pairs = ((0, 0), (0, 0))
    else:
        pairs = tuple((p, p) for p in layer.padding)
    step.padding = pairs
    try:  # the rules functional checks its calls with
        if layer.kind == "conv":
            outs = conv_output((h, w), k, s, d, pairs)
        else:
            outs = pool_output((h, w), k, s, tuple(pb for pb, _ in pairs), d, layer.ceil)[0]
    except GeometryError as broken:
        step.problem = _impossible(layer, broken, (h, w))
        return False
    lines = [_size_text(name, n, k[dim], s[dim], d[dim], *pairs[dim], outs[dim], layer.ceil and layer.kind != "conv")
             for dim, (name, n) in enumerate((("H", h), ("W", w)))]
    step.formula = _hw(*lines)
    step.rf = tuple(r + (kk - 1) * dd * j for r, kk, dd, j in zip(rf, k, d, jump))
    step.jump = tuple(j * ss for j, ss in zip(jump, s))
    step.out_shape = (c, outs[0], outs[1])
    return True


def _impossible(layer, broken: GeometryError, hw) -> str:
    """Why the layer cannot run, in the reader's terms, from the rule that failed."""
    v, dim = broken.values, broken.dim
    name, n = ("H", "W")[dim], hw[dim]
    k = layer.kernel
    if broken.rule == "pool_padding":
        return (f"padding {v['padding']} is more than half the {v['kernel']}-wide pooling window ({v['limit']} at "
                f"most, as in PyTorch): a window could then see only padding")
    if broken.rule == "kernel_too_large":
        eff, pb, pe, dl = v["span"], v["before"], v["after"], v["dilation"]
        span = f"{eff} pixels ({v['kernel']} taps, dilation {dl})" if dl > 1 else f"{eff} pixels"
        need = -(-(eff - n) // 2)
        return (f"the {k[0]}x{k[1]} kernel does not fit: along {name} it spans {span} but the padded "
                f"input has {n} + {pb}+{pe} = {n + pb + pe}, so the output would be "
                f"floor(({n} + {pb + pe} - {dl}*({v['kernel']}-1) - 1) / {v['stride']}) + 1 = "
                f"{(n + pb + pe - eff) // v['stride'] + 1} (< 1). Use padding >= {need}, a smaller kernel, "
                f"or a bigger input")
    return str(broken)


def _conv(step: Step, rf, jump):
    layer, c = step.layer, step.in_shape[0]
    g, kh, kw = layer.groups, layer.kernel[0], layer.kernel[1]
    if c % g or layer.out % g:
        step.problem = (f"groups={g} must divide both the input depth {c} and the number of kernels {layer.out} "
                        f"(each group of {c}/{g} input channels gets {layer.out}/{g} kernels)")
        return
    depth = c // g
    if layer.depth is not None and layer.depth != depth:
        prev = f" (the previous layer made {c} maps)" if step.index > 1 else ""
        group = f" / groups {g}" if g > 1 else ""
        step.problem = (f"the kernels are {kh}x{kw}x{layer.depth} but the input volume "
                        f"{format_shape(step.in_shape)} has depth {c}{prev}: input depth{group} must equal kernel "
                        f"depth, so use {kh}x{kw}x{depth} kernels")
        return
    if not _window(step, rf, jump):
        return
    step.out_shape = (layer.out,) + step.out_shape[1:]
    taps = depth * kh * kw
    step.weights, step.biases = layer.out * taps, layer.out if layer.bias else 0
    grp = f" (groups={g}: each kernel reads {depth} of the {c} channels)" if g > 1 else ""
    bias = f" + {layer.out} biases" if layer.bias else " (no bias)"
    step.params_text = (f"{layer.out} kernels x {kh}x{kw}x{depth} = {fmt_int(step.weights)} weights{bias} = "
                        f"{fmt_int(step.params)}{grp}")
    step.fc_params = int(np.prod(step.in_shape)) * step.activations + step.activations
    ops = 2 * taps if layer.bias else 2 * taps - 1
    step.flops = step.activations * ops
    plus = f"{taps} adds" if layer.bias else f"{taps - 1} adds"
    step.flops_text = (f"{fmt_int(step.activations)} outputs x ({taps} multiplies + {plus}: "
                       f"z = b + sum of {taps} w*x) = {fmt_int(step.flops)}")


def _pool(step: Step, rf, jump):
    if not _window(step, rf, jump):
        return
    kh, kw = step.layer.kernel
    n = step.activations
    if step.layer.kind == "maxpool":
        step.flops = n * (kh * kw - 1)
        step.flops_text = f"{fmt_int(n)} outputs x {kh * kw - 1} comparisons = {fmt_int(step.flops)}"
        step.params_text = f"none (each output is the largest of {kh}x{kw} values, channel by channel)"
    else:
        step.flops = n * kh * kw
        step.flops_text = f"{fmt_int(n)} outputs x ({kh * kw - 1} adds + 1 divide) = {fmt_int(step.flops)}"
        step.params_text = f"none (each output is the mean of {kh}x{kw} values, channel by channel)"


def _linear(step: Step):
    layer = step.layer
    if len(step.in_shape) != 1:
        f = int(np.prod(step.in_shape))
        step.problem = (f"linear needs a flat vector but its input is the volume {format_shape(step.in_shape)}; "
                        f"add 'flatten' before it ({' x '.join(map(str, step.in_shape))} = {fmt_int(f)} features)")
        return
    f = step.in_shape[0]
    step.out_shape = (layer.out,)
    step.weights, step.biases = f * layer.out, layer.out if layer.bias else 0
    bias = f" + {layer.out} biases" if layer.bias else " (no bias)"
    step.params_text = f"{fmt_int(f)} inputs x {layer.out} outputs = {fmt_int(step.weights)} weights{bias} = " \
                       f"{fmt_int(step.params)} (fully connected: no weight sharing)"
    step.formula = [f"{layer.out} features (linear {layer.out})"]
    step.flops = layer.out * (2 * f if layer.bias else 2 * f - 1)
    step.flops_text = f"{layer.out} outputs x ({f} multiplies + {f if layer.bias else f - 1} adds) = {fmt_int(step.flops)}"
    step.rf = None


def _elementwise(step: Step, rf, jump):
    layer, shape = step.layer, step.in_shape
    step.out_shape, step.rf, step.jump = shape, rf, jump
    n = int(np.prod(shape))
    step.formula = [f"unchanged: {format_shape(shape)}"]
    if layer.kind == "flatten":
        step.out_shape = (n,)
        step.formula = [f"{' x '.join(map(str, shape))} = {fmt_int(n)} features (C, H, W order)"]
        step.params_text = "none"
    elif layer.kind == "batchnorm":
        if len(shape) != 3:
            step.problem = "batchnorm here is BatchNorm2d and needs a volume (H x W x C), not a flat vector"
            return
        step.weights, step.biases = shape[0], shape[0]
        step.params_text = (f"{shape[0]} scales + {shape[0]} shifts = {2 * shape[0]} "
                            f"(plus {2 * shape[0]} running statistics, not trained)")
        step.flops = 2 * n
        step.flops_text = f"{fmt_int(n)} values x (1 multiply + 1 add) = {fmt_int(step.flops)} (inference)"
    elif layer.kind == "dropout":
        step.params_text = f"none (training zeroes each value with probability {layer.p}; identity at inference)"
    else:
        step.params_text = "none"
        step.flops = n
        step.flops_text = f"{fmt_int(n)} values x 1 = {fmt_int(n)}"


def explain(input_shape: Any, layers: Any, *, dtype: Any = "float32") -> Explanation:
    """Walk `layers` from `input_shape` and explain every step.

    Parameters
    ----------
    input_shape : str or tuple
        '64x64x3' (H x W x C, as the seeds write it), '(3,64,64)', or a channels-first tuple (C, H, W) / (F,).
    layers : list of str or Layer, or one str
        Layer specs in the grammar of :mod:`convolve.explain.spec`, e.g. ``["conv 8 5x5 pad=2", "maxpool 2"]``;
        a spec ending in ``-> SHAPE`` is checked against what the layer really gives.
    dtype : str
        Element type for the memory columns.

    Returns
    -------
    Explanation
        ``.steps`` (one :class:`Step` per layer, stopping at the first impossible one), ``.ok``, totals,
        ``str()`` / ``.details()`` and ``.table()``.

    Shape
    -----
    Conv/pool output per spatial dim: ``floor((in + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``;
    receptive field ``r_out = r_in + (kernel-1)*dilation*j_in``, ``j_out = j_in*stride``.
    """
    if isinstance(input_shape, str):
        shape = parse_shape(input_shape, "input")
    elif isinstance(input_shape, (tuple, list)) and len(input_shape) in (1, 3) and all(
            isinstance(v, (int, np.integer)) and v > 0 for v in input_shape):
        shape = tuple(int(v) for v in input_shape)
    else:
        raise TypeError(f"input_shape must be a string like '64x64x3' or a tuple (C, H, W) / (F,) of positive ints, "
                        f"but got {input_shape!r}")
    itemsize = np.dtype(dtype).itemsize
    parsed = parse_layers(layers)
    steps: list = []
    rf: Any = (1, 1)  # None once every value sees the whole input
    jump: Any = (1, 1)
    current = shape
    for i, layer in enumerate(parsed, start=1):
        step = Step(index=i, layer=layer, in_shape=current)
        steps.append(step)
        if layer.kind == "conv":
            if _need_volume(step):
                _conv(step, rf, jump)
        elif layer.kind in ("maxpool", "avgpool"):
            if _need_volume(step):
                _pool(step, rf, jump)
        elif layer.kind == "linear":
            _linear(step)
        else:
            _elementwise(step, rf, jump)
        if step.problem:
            break
        if layer.expect is not None:
            step.check = _expect_check(step)
        current, rf, jump = step.out_shape, step.rf, step.jump  # rf None: every value sees the whole input
    return Explanation(shape, steps, itemsize, str(np.dtype(dtype)))
