"""The layer grammar of ``convolve explain``: compact layer specs that mirror the ``convolve.nn`` constructors.

Grammar (one layer per string; ``[..]`` optional, ``|`` alternatives)::

    conv     OUT KERNEL [stride=S] [pad=P] [dilation=D] [groups=G] [bias=no]   # Conv2d(C, OUT, KERNEL, ...)
    maxpool  KERNEL [stride=S] [pad=P] [dilation=D] [ceil=yes]                 # MaxPool2d
    avgpool  KERNEL [stride=S] [pad=P] [ceil=yes]                              # AvgPool2d
    linear   OUT [bias=no]                                                     # Linear(F, OUT)
    flatten | relu | tanh | sigmoid | batchnorm | dropout [P]

    KERNEL = 5 | 5x5 | 5x5x3  (the last number is the kernel depth, checked against the input depth)
    S, D   = 2 | 2x1            P = 2 | 2x1 | same | valid
    shape  = 64x64x3 (H x W x C, as the seeds write it) | 64x64 (one channel) | (3,64,64) | 3,64,64 | 10

Any layer may end with ``-> SHAPE``, the output its author expects (spec checking).
Aliases: ``conv2d``, ``pool`` = maxpool, ``fc``/``dense`` = linear, ``bn`` = batchnorm, ``s=``, ``padding=``,
``dil=``, ``g=``, ``k=``/``kernel=``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, List, Sequence, Union, cast

from .._geometry import pool_stride

__all__ = ["SpecError", "Layer", "parse_layer", "parse_layers", "parse_shape", "format_shape", "to_spec"]

KINDS = {
    "conv": "conv", "conv2d": "conv",
    "maxpool": "maxpool", "maxpool2d": "maxpool", "pool": "maxpool",
    "avgpool": "avgpool", "avgpool2d": "avgpool",
    "linear": "linear", "fc": "linear", "dense": "linear",
    "flatten": "flatten", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
    "batchnorm": "batchnorm", "batchnorm2d": "batchnorm", "bn": "batchnorm",
    "dropout": "dropout",
}
_KEYS = {
    "conv": {"stride", "padding", "dilation", "groups", "bias", "kernel"},
    "maxpool": {"stride", "padding", "dilation", "ceil", "kernel"},
    "avgpool": {"stride", "padding", "ceil", "kernel"},
    "linear": {"bias"},
    "dropout": {"p"},
}
_ALIASES = {"s": "stride", "pad": "padding", "p": "padding", "dil": "dilation", "d": "dilation",
            "g": "groups", "k": "kernel", "ceil_mode": "ceil"}
_USAGE = {
    "conv": "conv OUT KERNEL [stride=S] [pad=P] [dilation=D] [groups=G] [bias=no], e.g. 'conv 8 5x5 pad=2'",
    "maxpool": "maxpool KERNEL [stride=S] [pad=P] [dilation=D] [ceil=yes], e.g. 'maxpool 2'",
    "avgpool": "avgpool KERNEL [stride=S] [pad=P] [ceil=yes], e.g. 'avgpool 2'",
    "linear": "linear OUT [bias=no], e.g. 'linear 10'",
    "dropout": "dropout [P], e.g. 'dropout 0.5'",
}
_BOOL = {"yes": True, "true": True, "1": True, "on": True, "no": False, "false": False, "0": False, "off": False}


class SpecError(ValueError):
    """A malformed layer or shape spec; the message shows the spec with a caret under the bad token."""

    def __init__(self, message: str, text: str = "", start: int = 0, end: int | None = None, where: str = "") -> None:
        self.message, self.text, self.start = message, text, start
        self.end = max(end if end is not None else len(text), start + 1)
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        if not self.text:
            return head
        return f"{head}\n    {self.text}\n    {' ' * self.start}{'^' * (self.end - self.start)}"


@dataclass(frozen=True)
class Layer:
    """One parsed layer. Shapes are channels-first: a volume is (C, H, W), a flat vector (F,).

    ``padding`` is ``'same'``, ``'valid'`` or ``(pH, pW)``; ``expect`` is the stated output shape or None.
    """

    kind: str
    text: str
    # which of these are set depends on `kind` (parse_layer checks that each kind has what it needs:
    # conv and linear an `out`, conv and pooling a `kernel`); typed Any so code for one kind reads
    # them without a None check at every use
    out: Any = None  # int
    kernel: Any = None  # (kH, kW)
    depth: int | None = None
    stride: Any = None  # (sH, sW)
    padding: Any = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    bias: bool = True
    ceil: bool = False
    p: float = 0.5
    expect: Any = None  # the stated output shape (a tuple), or None
    spans: dict = field(default_factory=dict, compare=False, repr=False)

    def span(self, key: str) -> tuple:
        """(start, end) of the token that set `key` in `text` (the whole text if none did)."""
        return self.spans.get(key, (0, len(self.text)))


def _tokens(text: str):
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def _ints(tok: str, n_max: int, what: str, text: str, start: int, where: str) -> tuple:
    """'5' / '5x5' / '5x5x3' -> tuple of positive ints (at most n_max numbers)."""
    parts = tok.lower().split("x")
    if not (1 <= len(parts) <= n_max) or not all(p.isdigit() for p in parts):
        raise SpecError(f"expected {what}, but got {tok!r}", text, start, start + len(tok), where)
    values = tuple(int(p) for p in parts)
    if any(v == 0 for v in values):
        raise SpecError(f"{what} must be positive, but got {tok!r}", text, start, start + len(tok), where)
    return values


def _pair(values: tuple) -> tuple:
    return values * 2 if len(values) == 1 else values


def parse_shape(text: str, where: str = "shape") -> tuple:
    """'64x64x3' (H x W x C) | '64x64' (C = 1) | '(3,64,64)' / '3,64,64' (C, H, W) | '10' (flat)
    -> channels-first tuple: (C, H, W) or (F,)."""
    s = str(text).strip()
    if not s:
        raise SpecError("expected a shape like 64x64x3 or (3,64,64), but got nothing", str(text), 0, None, where)
    body = s[1:-1] if s.startswith("(") and s.endswith(")") else s
    lead = len(s) - len(s.lstrip("(")) if s.startswith("(") else 0
    if "," in body:
        parts = [p.strip() for p in body.split(",") if p.strip()]
        if len(parts) in (1, 3) and all(p.isdigit() and int(p) > 0 for p in parts):
            return tuple(int(p) for p in parts)
    elif "x" in body.lower():
        parts = body.lower().split("x")
        if len(parts) in (2, 3) and all(p.isdigit() and int(p) > 0 for p in parts):
            h, w, *c = (int(p) for p in parts)
            return (c[0] if c else 1, h, w)
    elif body.isdigit() and int(body) > 0:
        return (int(body),)
    raise SpecError(
        f"expected a shape like 64x64x3 (height x width x channels), 64x64, (3,64,64) (channels, height, "
        f"width) or 10 (flat features), but got {s!r}", s, lead, len(s), where,
    )


def format_shape(shape: tuple) -> str:
    """(C, H, W) -> 'HxWxC' (the seeds' way); (F,) -> 'F'."""
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}x{w}x{c}"
    return str(shape[0])


def _set(values: dict, spans: dict, key, value, span, text, where):
    if key in values:
        raise SpecError(f"{key} is given twice", text, span[0], span[1], where)
    values[key], spans[key] = value, span


def _pair_option(key, kind, val, text, vs, e, where):
    return _pair(_ints(val, 2, f"{key} like 2 or 2x1", text, vs, where))


def _padding_option(key, kind, val, text, vs, e, where):
    if val.lower() in ("same", "valid"):
        return val.lower()
    if val.isdigit() or re.fullmatch(r"\d+x\d+", val.lower()):
        return _pair(tuple(int(p) for p in val.lower().split("x")))
    raise SpecError(f"expected padding like 2, 2x1, same or valid, but got {val!r}", text, vs, e, where)


def _groups_option(key, kind, val, text, vs, e, where):
    return _ints(val, 1, "groups as a positive integer", text, vs, where)[0]


def _flag_option(key, kind, val, text, vs, e, where):
    if val.lower() not in _BOOL:
        raise SpecError(f"expected {key}=yes or {key}=no, but got {val!r}", text, vs, e, where)
    return _BOOL[val.lower()]


def _probability_option(key, kind, val, text, vs, e, where):
    return _probability(val, text, vs, e, where)


def _kernel_option(key, kind, val, text, vs, e, where):
    return _ints(val, 3 if kind == "conv" else 2, "a kernel size like 5x5", text, vs, where)


# how the value of each key=value option is read: reader(key, kind, value, text, start, end, where)
_OPTION_READERS = {
    "stride": _pair_option, "dilation": _pair_option, "padding": _padding_option, "groups": _groups_option,
    "bias": _flag_option, "ceil": _flag_option, "p": _probability_option, "kernel": _kernel_option,
}


def _split_expect(text: str, where: str) -> tuple:
    """'conv 8 5x5 -> 64x64x8' -> ('conv 8 5x5 ', (8, 64, 64)); without '->' the expectation is None."""
    if "->" not in text:
        return text, None
    at = text.index("->")
    shape_text = text[at + 2 :]
    offset = at + 2 + (len(shape_text) - len(shape_text.lstrip()))
    try:
        return text[:at], parse_shape(shape_text.strip(), where)
    except SpecError as exc:
        raise SpecError(exc.message, text, offset, len(text.rstrip()), where) from None


def _option(kind, tok, s, e, values, spans, text, where):
    """Read one key=value token into `values` (its span into `spans`)."""
    key, _, val = tok.partition("=")
    key = key.lower() if kind == "dropout" else _ALIASES.get(key.lower(), key.lower())
    if key not in _KEYS.get(kind, set()):
        allowed = sorted(_KEYS.get(kind, set()) - {"kernel"})
        hint = f"{kind} takes {', '.join(allowed)}" if allowed else f"{kind} takes no options"
        raise SpecError(f"unknown option {tok.partition('=')[0]!r} ({hint})", text, s, e, where)
    vs = s + len(tok) - len(val)
    _set(values, spans, key, _OPTION_READERS[key](key, kind, val, text, vs, e, where), (s, e), text, where)


def parse_layer(text: str, index: int | None = None) -> Layer:
    """Parse one layer spec (see the module docstring); raise SpecError pointing at the offending token.

    Examples
    --------
    >>> layer = parse_layer("conv 8 5x5x3 pad=2 -> 64x64x8")
    >>> layer.kind, layer.out, layer.kernel, layer.depth, layer.padding, layer.expect
    ('conv', 8, (5, 5), 3, (2, 2), (8, 64, 64))
    """
    if not isinstance(text, str):
        raise TypeError(f"a layer spec must be a string like 'conv 8 5x5 pad=2', but got {type(text).__name__}")
    where = f"layer {index}" if index is not None else "layer"
    body, expect = _split_expect(text, where)
    toks = _tokens(body)
    if not toks:
        raise SpecError(f"expected a layer ({', '.join(sorted(set(KINDS.values())))}), but got nothing",
                        text, 0, None, where)
    name, s0, e0 = toks[0]
    kind = KINDS.get(name.lower())
    if kind is None:
        raise SpecError(
            f"unknown layer {name!r}; expected one of: conv, maxpool, avgpool, linear, flatten, relu, tanh, "
            f"sigmoid, batchnorm, dropout", text, s0, e0, where,
        )
    values: dict = {}
    spans: dict = {"kind": (s0, e0)}
    positional = []
    for tok, s, e in toks[1:]:
        if "=" in tok:
            _option(kind, tok, s, e, values, spans, text, where)
        else:
            positional.append((tok, s, e))
    _positional(kind, positional, values, spans, text, where)
    if kind in ("conv", "maxpool", "avgpool") and "kernel" not in values:
        raise SpecError(f"{kind} needs a kernel size; expected {_USAGE[kind]}", text, len(body.rstrip()), None, where)
    if kind in ("conv", "linear") and "out" not in values:
        what = "the number of kernels" if kind == "conv" else "the number of output features"
        raise SpecError(f"{kind} needs {what}; expected {_USAGE[kind]}", text, len(body.rstrip()), None, where)
    kernel = values.get("kernel")
    depth = None
    if kernel is not None:
        if len(kernel) == 3:
            kernel, depth = kernel[:2], kernel[2]
        kernel = _pair(kernel)
    stride = values.get("stride")
    stride = pool_stride(stride, kernel) if kind in ("maxpool", "avgpool") else stride or (1, 1)
    return Layer(
        kind=kind, text=text.strip(), out=values.get("out"), kernel=kernel, depth=depth, stride=stride,
        padding=values.get("padding", (0, 0)), dilation=values.get("dilation", (1, 1)),
        groups=values.get("groups", 1), bias=values.get("bias", True), ceil=values.get("ceil", False),
        p=values.get("p", 0.5), expect=expect, spans=spans,
    )


def _positional(kind, positional, values, spans, text, where):
    """Positional arguments: conv OUT KERNEL, pool KERNEL, linear OUT, dropout P."""
    slots = {"conv": ["out", "kernel"], "maxpool": ["kernel"], "avgpool": ["kernel"], "linear": ["out"],
             "dropout": ["p"]}.get(kind, [])
    for tok, s, e in positional:
        free = [k for k in slots if k not in values]
        if not free:
            usage = _USAGE.get(kind, f"'{kind}' with nothing after it")
            raise SpecError(f"unexpected {tok!r}; expected {usage}", text, s, e, where)
        key = free[0]
        if key == "out":
            what = "the number of kernels (output channels)" if kind == "conv" else "the number of output features"
            v = _ints(tok, 1, what, text, s, where)[0]
        elif key == "kernel":
            v = _ints(tok, 3 if kind == "conv" else 2, "a kernel size like 5x5" + (" or 5x5x3" if kind == "conv" else ""),
                      text, s, where)
        else:
            v = _probability(tok, text, s, e, where)
        values[key], spans[key] = v, (s, e)


def _probability(tok, text, s, e, where) -> float:
    try:
        v = float(tok)
    except ValueError:
        v = -1.0
    if not 0 <= v < 1:
        raise SpecError(f"expected a dropout probability in [0, 1), but got {tok!r}", text, s, e, where)
    return v


def parse_layers(layers: Union[str, Sequence[Union[str, Layer]]]) -> List[Layer]:
    """A list of layer specs, or one string with layers separated by ';' or newlines -> [Layer]."""
    if isinstance(layers, str):
        layers = [part for part in re.split(r"[;\n]", layers) if part.strip()]
    out = []
    for i, item in enumerate(layers, start=1):
        out.append(item if isinstance(item, Layer) else parse_layer(item, i))
    return out


def to_spec(layer: Layer) -> str:
    """A Layer back in the grammar, defaults left out (the inverse of `parse_layer`, up to aliases)."""
    def pair(v):
        return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"

    parts = [layer.kind]
    if layer.kind == "conv":
        k = cast(tuple, layer.kernel)  # every conv layer has one (parse_layer checks)
        kernel = f"{k[0]}x{k[1]}" + (f"x{layer.depth}" if layer.depth is not None else "")
        parts += [str(layer.out), kernel]
    elif layer.kind in ("maxpool", "avgpool"):
        parts.append(pair(layer.kernel))
    elif layer.kind == "linear":
        parts.append(str(layer.out))
    elif layer.kind == "dropout":
        parts.append(str(layer.p))
    if layer.kind in ("conv", "maxpool", "avgpool"):
        default_stride = (1, 1) if layer.kind == "conv" else pool_stride(None, layer.kernel)
        if layer.stride != default_stride:
            parts.append(f"stride={pair(layer.stride)}")
        if layer.padding not in ((0, 0), "valid"):
            parts.append(f"pad={layer.padding if isinstance(layer.padding, str) else pair(layer.padding)}")
        if layer.dilation != (1, 1):
            parts.append(f"dilation={pair(layer.dilation)}")
    if layer.kind == "conv" and layer.groups != 1:
        parts.append(f"groups={layer.groups}")
    if layer.kind in ("conv", "linear") and not layer.bias:
        parts.append("bias=no")
    if layer.kind in ("maxpool", "avgpool") and layer.ceil:
        parts.append("ceil=yes")
    return " ".join(parts)
