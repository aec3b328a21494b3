"""convolve explain: the layer grammar, the walk (shapes, parameters, receptive field), spec checking, model
summaries, and the CLI. Numbers are checked against what the engine and the modules really produce."""

import numpy as np
import pytest

from convolve import Tensor, functional as F, nn, no_grad
from convolve.cli import main
from convolve.explain import SpecError, explain, model_from_spec, parse_layer, parse_shape, summary
from convolve.explain.spec import to_spec

# --- grammar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, shape", [
    ("64x64x3", (3, 64, 64)), ("28x28", (1, 28, 28)), ("(3,64,64)", (3, 64, 64)), ("3, 32, 16", (3, 32, 16)),
    ("10", (10,)), ("(2048,)", (2048,)), ("64X32x1", (1, 64, 32)),
])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["64x64x", "0x4x3", "abc", "(3,64)", "", "4x4x4x4"])
def test_parse_shape_rejects(text):
    with pytest.raises(SpecError, match="expected a shape like 64x64x3"):
        parse_shape(text)


def test_parse_conv_all_options():
    layer = parse_layer("conv 16 5x3x4 stride=2x1 pad=1x2 dilation=2 groups=2 bias=no -> 10x10x16")
    assert (layer.kind, layer.out, layer.kernel, layer.depth) == ("conv", 16, (5, 3), 4)
    assert (layer.stride, layer.padding, layer.dilation, layer.groups, layer.bias) == ((2, 1), (1, 2), (2, 2), 2, False)
    assert layer.expect == (16, 10, 10)


def test_parse_aliases_and_defaults():
    assert parse_layer("pool 2").stride == (2, 2)  # pooling stride defaults to the kernel, as in PyTorch
    assert parse_layer("conv2d 8 k=3 s=2 padding=same").padding == "same"
    assert parse_layer("fc 10 bias=false").bias is False
    assert parse_layer("avgpool 3 stride=1 ceil=yes").ceil is True
    assert parse_layer("dropout 0.25").p == 0.25 and parse_layer("dropout p=0.1").p == 0.1
    assert parse_layer("bn").kind == "batchnorm"


@pytest.mark.parametrize("text", [
    "conv 8 5x5 pad=2", "conv 16 5x5x8 stride=2 pad=same", "maxpool 3 stride=2 pad=1 dilation=2 ceil=yes",
    "avgpool 2", "linear 10 bias=no", "flatten", "relu", "conv 4 3x1 stride=1x2 pad=0x1 groups=2",
])
def test_to_spec_round_trip(text):
    layer = parse_layer(text)
    assert parse_layer(to_spec(layer)) == layer


@pytest.mark.parametrize("text, token, message", [
    ("conv 8 5y5 pad=2", "5y5", "expected a kernel size like 5x5"),
    ("conv eight 5x5", "eight", "expected the number of kernels"),
    ("conv 8 5x5 padd=2", "padd=2", "unknown option 'padd'"),
    ("conv 8 5x5 pad=two", "two", "expected padding like 2, 2x1, same or valid"),
    ("conv 8 5x5 pad=1 pad=2", "pad=2", "padding is given twice"),
    ("conv 8 5x5 stride=0", "0", "stride like 2 or 2x1 must be positive"),
    ("linear 10 20", "20", "unexpected '20'; expected linear OUT"),
    ("convolution 8 5x5", "convolution", "unknown layer 'convolution'"),
    ("maxpool 2 bias=no", "bias=no", "unknown option 'bias' .maxpool takes"),
    ("dropout 1.5", "1.5", "dropout probability"),
    ("relu 3", "3", "unexpected '3'"),
    ("conv 8 5x5 -> 64x64y8", "64x64y8", "expected a shape"),
])
def test_malformed_layer_points_at_token(text, token, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_layer(text, 2)
    err = info.value
    assert text[err.start:err.end] == token
    lines = str(err).splitlines()
    assert lines[0].startswith("layer 2: ")
    assert lines[1].strip() == text and lines[2].strip() == "^" * len(token)
    assert lines[2].index("^") - lines[1].index(text[0]) == text.index(token, err.start)  # caret under the token


@pytest.mark.parametrize("text, message", [("conv 8", "conv needs a kernel size"), ("conv", "conv needs"),
                                           ("maxpool", "maxpool needs a kernel size"), ("linear", "linear needs")])
def test_missing_arguments(text, message):
    with pytest.raises(SpecError, match=message):
        parse_layer(text)


def test_layer_spec_type():
    with pytest.raises(TypeError, match="layer spec must be a string"):
        parse_layer(3)


# --- the walk: the seeds' numbers -----------------------------------------------------------------


def test_seed_example_numbers():
    e = explain("64x64x3", ["conv 8 5x5 pad=2", "conv 16 5x5x8 pad=2"])
    s1, s2 = e.steps
    assert s1.out_shape == (8, 64, 64) and s2.out_shape == (16, 64, 64)
    assert s1.formula == ["H = W = floor((64 + 2*2 - 1*(5-1) - 1) / 1) + 1 = 64"]
    assert (s1.weights, s1.biases) == (8 * 5 * 5 * 3, 8)
    assert s1.fc_params == 64 * 64 * 3 * 64 * 64 * 8 + 64 * 64 * 8  # fully connected, same input and output
    assert s1.flops == 64 * 64 * 8 * 2 * 75
    assert s1.rf == (5, 5) and s2.rf == (9, 9)
    assert e.total_params == 608 + 16 * 200 + 16
    text = str(e)
    assert "8 kernels x 5x5x3 = 600 weights + 8 biases = 608" in text
    assert "each output value sees 9x9 input pixels" in text
    assert "662,312x more" in text  # 402,685,952 / 608


def test_no_padding_shrinks():
    assert explain("64x64x3", ["conv 1 5x5"]).steps[0].out_shape == (1, 60, 60)


def test_receptive_field_and_jump():
    e = explain("32x32x1", ["conv 4 3x3 stride=2", "conv 4 3x3", "maxpool 2", "conv 4 3x3 dilation=2"])
    assert [s.rf for s in e.steps] == [(3, 3), (7, 7), (9, 9), (25, 25)]
    assert [s.jump for s in e.steps] == [(2, 2), (2, 2), (4, 4), (4, 4)]
    e = explain("8x8x1", ["conv 2 3x3", "flatten", "linear 3"])
    assert e.steps[1].rf == (3, 3) and e.steps[2].rf is None
    assert "the whole input" in str(e)


def test_same_padding_with_stride_is_asymmetric():
    s = explain("64x64x3", ["conv 16 5x5 stride=2 pad=same"]).steps[0]
    assert s.out_shape == (16, 32, 32) and s.padding == ((1, 2), (1, 2))
    assert "floor((64 + 1+2 - 1*(5-1) - 1) / 2) + 1 = 32" in s.formula[0]


def test_ceil_mode_formula_states_pytorch_rule():
    s = explain("(1,5,5)", ["maxpool 2 stride=2 pad=1 ceil=yes"]).steps[0]
    assert s.out_shape == (1, 3, 3) == F.max_pool2d(np.zeros((1, 5, 5)), 2, 2, 1, ceil_mode=True).shape
    assert s.formula == ["H = W = ceil((5 + 2*1 - 1*(2-1) - 1) / 2) + 1 = 4, minus the last window, which would "
                         "start in the padding: 3"]


def test_non_square_formula_has_two_lines():
    s = explain("(1,20,30)", ["conv 2 3x5 stride=1x2"]).steps[0]
    assert s.out_shape == (2, 18, 13) and len(s.formula) == 2


# --- spec checking ----------------------------------------------------------------------------------


def test_seed_claim_padding_one_is_wrong():
    step = explain("64x64x3", ["conv 8 5x5x3 pad=1 -> 64x64x8"]).steps[0]
    ok, message = step.check
    assert not ok and step.out_shape == (8, 62, 62)
    assert "padding=1 gives 62x62x8, not 64x64x8" in message
    assert "padding=2 (or padding=same) gives 64x64" in message
    assert "Use 'conv 8 5x5x3 pad=2'" in message
    for fixed in ("conv 8 5x5x3 pad=2 -> 64x64x8", "conv 8 5x5x3 pad=same -> 64x64x8"):
        assert explain("64x64x3", [fixed]).steps[0].check == (True, "64x64x8 as stated")


@pytest.mark.parametrize("layer, want, needle", [
    ("conv 8 5x5 pad=2", "32x32x8", "stride=2"),
    ("conv 8 5x5", "32x32x16", "16 kernels are needed"),
    ("maxpool 2", "21x21x3", "stride=3"),
    ("avgpool 3", "62x62x3", "stride=1"),
    ("conv 8 3x3 pad=1", "66x66x8", "padding=2"),
])
def test_suggestions_are_verified(layer, want, needle):
    step = explain("64x64x3", [f"{layer} -> {want}"]).steps[0]
    ok, message = step.check
    assert not ok and needle in message
    fixed = message.split("Use '")[1].rstrip("'")
    assert explain("64x64x3", [f"{fixed} -> {want}"]).ok  # the suggestion really gives the stated output


def test_unfixable_expectations_say_why():
    _, m = explain("64x64x3", ["maxpool 2 -> 64x64x8"]).steps[0].check
    assert "maxpool keeps the depth (3)" in m and "no padding or stride turns H = 64 into 64" in m
    _, m = explain("10", ["linear 5 -> 7"]).steps[0].check
    assert "'linear 7' gives 7" in m
    _, m = explain("4x4x2", ["flatten -> 4x4x2"]).steps[0].check
    assert "this layer outputs a flat vector" in m


def test_kernel_larger_than_padded_input():
    e = explain("4x4x3", ["conv 8 7x7", "relu"])
    assert not e.ok and len(e.steps) == 1 and e.steps[0].out_shape is None
    p = e.steps[0].problem
    assert "the 7x7 kernel does not fit" in p and "4 + 0+0 = 4" in p and "padding >= 2" in p
    assert "impossible" in e.table() and "stopped at layer 1" in str(e)
    assert explain("4x4x3", ["conv 8 7x7 pad=2"]).steps[0].out_shape == (8, 2, 2)  # the advice works
    p = explain("6x6x1", ["conv 1 3x3 dilation=3"]).steps[0].problem
    assert "spans 7 pixels (3 taps, dilation 3)" in p


def test_channel_mismatch_between_layers():
    e = explain("64x64x3", ["conv 8 5x5x3 pad=2", "conv 16 5x5x3"])
    p = e.steps[1].problem
    assert "kernels are 5x5x3 but the input volume 64x64x8 has depth 8" in p
    assert "previous layer made 8 maps" in p and "use 5x5x8 kernels" in p
    p = explain("8x8x6", ["conv 4 3x3 groups=4"]).steps[0].problem
    assert "groups=4 must divide both the input depth 6 and the number of kernels 4" in p
    assert explain("8x8x6", ["conv 4 3x3x3 groups=2"]).ok  # depth = channels / groups


@pytest.mark.parametrize("layers, needle", [
    (["linear 10"], "add 'flatten' before it (3 x 8 x 8 = 192 features)"),
    (["flatten", "conv 2 3x3"], "needs a volume"),
    (["maxpool 2 pad=2"], "more than half"),
    (["maxpool 2 pad=same"], "pooling takes a number as padding"),
    (["flatten", "batchnorm"], "needs a volume"),
])
def test_impossible_layers(layers, needle):
    e = explain("8x8x3", layers)
    assert not e.ok and needle in e.steps[-1].problem


def test_explain_input_errors():
    with pytest.raises(TypeError, match="input_shape must be"):
        explain([3, 64], ["relu"])
    with pytest.raises(SpecError, match="input: expected a shape"):
        explain("64x64xrgb", ["relu"])
    with pytest.raises(SpecError, match="layer 2: unknown layer 'conf'"):
        explain("64x64x3", "conv 8 5x5; conf 3")


# --- explain agrees with the engine and the modules ------------------------------------------------


def _random_stack(rng):
    """A random but possible stack of layers (explain decides possibility; only possible ones are kept)."""
    c, h = int(rng.integers(1, 4)), int(rng.integers(6, 20))
    layers = []
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.choice(["conv", "conv", "maxpool", "avgpool", "relu", "batchnorm"])
        k = int(rng.integers(1, 5))
        if kind == "conv":
            g = int(rng.choice([1, 1, 2]))
            pad = rng.choice(["0", "1", "2", "same", "valid", "1x0"])
            spec = (f"conv {g * int(rng.integers(1, 4))} {k}x{int(rng.integers(1, 4))} stride={int(rng.integers(1, 3))} "
                    f"pad={pad} dilation={int(rng.integers(1, 3))} groups={g} bias={rng.choice(['yes', 'no'])}")
        elif kind == "maxpool":
            spec = f"maxpool {k} stride={int(rng.integers(1, 3))} pad={int(rng.integers(0, k // 2 + 1))} " \
                   f"ceil={rng.choice(['yes', 'no'])}"
        elif kind == "avgpool":
            spec = f"avgpool {k} pad={int(rng.integers(0, k // 2 + 1))}"
        else:
            spec = str(kind)
        layers.append(spec)
    if rng.random() < 0.5:
        layers += ["flatten", f"linear {int(rng.integers(1, 6))}"]
    return f"{h}x{h + int(rng.integers(0, 3))}x{c}", layers


def test_random_stacks_match_engine_and_modules():
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 40:
        shape, layers = _random_stack(rng)
        e = explain(shape, layers)
        if not e.ok:
            continue
        model = model_from_spec(shape, layers)
        mods = list(model.children())
        x = Tensor(rng.standard_normal((2,) + e.input_shape).astype(np.float32))
        model.eval()
        with no_grad():
            for step, m in zip(e.steps, mods):
                x = m(x)
                assert x.shape[1:] == step.out_shape, (shape, layers, step.layer.text)
                assert sum(p.data.size for p in m.parameters()) == step.params, (shape, layers, step.layer.text)
                if step.layer.kind in ("conv", "maxpool", "avgpool"):  # the printed formula ends in the real size
                    ends = [int(line.rsplit(" ", 1)[1]) for line in step.formula]
                    assert ends in ([x.shape[2]], [x.shape[2], x.shape[3]]), (step.formula, x.shape)
        assert sum(p.data.size for p in model.parameters()) == e.total_params
        checked += 1


def test_shapes_match_functional_ops():
    # the same numbers straight from convolve.functional, no modules in between
    rng = np.random.default_rng(1)
    for _ in range(40):
        c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 30)), int(rng.integers(3, 30))
        k, s, d = (int(v) for v in rng.integers(1, 5, 3))
        p = str(rng.choice(["0", "1", "2", "same"]))
        step = explain((c, h, w), [f"conv 3 {k}x{k} stride={s} pad={p} dilation={d}"]).steps[0]
        x, wgt = np.zeros((1, c, h, w)), np.zeros((3, c, k, k))
        padding = int(p) if p.isdigit() else p
        if step.problem:
            assert "does not fit" in step.problem
            with pytest.raises(ValueError, match="larger than the padded input"):
                F.conv2d(x, wgt, stride=s, padding=padding, dilation=d)
        else:
            assert F.conv2d(x, wgt, stride=s, padding=padding, dilation=d).shape[1:] == step.out_shape
        pool = explain((c, h, w), [f"maxpool {k} stride={s} pad={min(int(p) if p.isdigit() else 0, k // 2)}"]).steps[0]
        if not pool.problem:
            y = F.max_pool2d(x, k, stride=s, padding=min(int(p) if p.isdigit() else 0, k // 2))
            assert y.shape[1:] == pool.out_shape


# --- summaries of convolve.nn models -----------------------------------------------------------------


def test_summary_of_a_model():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Sequential(nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6)), nn.Flatten(), nn.Linear(6 * 5 * 5, 10))
    s = summary(model, "14x14x1")
    names = [r.name for r in s.rows]
    assert names == ["0", "1", "2", "3", "3.0", "3.1", "4", "5"]
    assert [r.out_shape for r in s.rows] == [(4, 14, 14), (4, 14, 14), (4, 7, 7), (6, 5, 5), (6, 5, 5), (6, 5, 5),
                                              (150,), (10,)]
    assert s.total_params == sum(p.data.size for p in model.parameters()) == 40 + 222 + 12 + 1510
    assert s.rows[3].params == 222 + 12 and not s.rows[3].leaf
    text = str(s)
    assert "3.0 (Conv2d)" in text and "(234)" in text and "parameters: 1,784" in text
    assert model.training  # mode restored
    assert "forward" not in model[0].__dict__  # instrumentation removed
    with pytest.raises(TypeError, match="model must be a convolve.nn.Module"):
        summary("not a model", "14x14x1")


def test_summary_agrees_with_explain():
    layers = ["conv 8 5x5 pad=2", "relu", "conv 16 5x5 stride=2 pad=same", "maxpool 2", "flatten", "linear 10"]
    e = explain("64x64x3", layers)
    s = summary(model_from_spec("64x64x3", layers), "64x64x3")
    assert [r.out_shape for r in s.rows] == [st.out_shape for st in e.steps]
    assert [r.params for r in s.rows] == [st.params for st in e.steps]


def test_model_from_spec_refuses_impossible():
    with pytest.raises(ValueError, match="layer 2 'conv 16 5x5x3' is impossible: the kernels are 5x5x3"):
        model_from_spec("64x64x3", ["conv 8 5x5x3", "conv 16 5x5x3"])


# --- the command line ----------------------------------------------------------------------------------


def test_cli_explain(capsys):
    assert main(["explain", "64x64x3", "conv 8 5x5 pad=2", "conv 16 5x5 stride=2 pad=same", "maxpool 2",
                 "flatten", "linear 10"]) == 0
    out = capsys.readouterr().out
    assert "[2] conv 16 5x5 stride=2 pad=same  ->  32x32x16" in out and "total: 5 layers" in out
    assert main(["explain", "64x64x3", "conv 8 5x5 pad=2", "--table"]) == 0
    assert "1  conv 8 5x5 pad=2  64x64x8" in capsys.readouterr().out


def test_cli_explain_expect(capsys):
    assert main(["explain", "64x64x3", "conv 8 5x5x3 pad=1", "--expect", "64x64x8"]) == 1
    assert "WRONG: conv with 8 kernels of 5x5x3 and padding=1 gives 62x62x8" in capsys.readouterr().out
    assert main(["explain", "64x64x3", "conv 8 5x5x3 pad=2", "--expect", "64x64x8"]) == 0
    assert "OK: 64x64x8 as stated" in capsys.readouterr().out
    assert main(["explain", "4x4x3", "conv 8 7x7"]) == 1


def test_cli_explain_errors(capsys):
    assert main(["explain", "64x64x3", "conv 8 5y5 pad=2"]) == 2
    err = capsys.readouterr().err
    assert "convolve explain: error: layer 1: expected a kernel size like 5x5" in err
    assert "conv 8 5y5 pad=2\n" in err and "\n           ^^^\n" in err
    assert main(["explain", "64x64x3", "conv 8 5x5 -> 64x64x8", "--expect", "64x64x8"]) == 2
    assert "already states its output" in capsys.readouterr().err


def test_cli_model_summary(capsys):
    pytest.importorskip("convolve.training", reason="--model summarises the training presets")
    assert main(["explain", "28x28x1", "--model", "lenet"]) == 0
    out = capsys.readouterr().out
    assert "0 (Conv2d)" in out and "28x28x32" in out and "input 28x28x1 -> output 10" in out
    from convolve.training import lenet
    assert f"parameters: {sum(p.data.size for p in lenet().parameters()):,}" in out
    assert main(["explain", "28x28x1", "--model", "vgg"]) == 2
    assert "--model must be one of" in capsys.readouterr().err
    assert main(["explain", "28x28x1", "relu", "--model", "lenet"]) == 2
