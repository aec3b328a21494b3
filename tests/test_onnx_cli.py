"""`convolve run`, `convolve explain MODEL.onnx` and `convolve convert` through convolve.cli.main."""

import contextlib
import io

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")

import convolve.nn as nn  # noqa: E402
import convolve.onnx  # noqa: E402
from convolve.cli import main  # noqa: E402
from convolve.interop import load_state_dict_file  # noqa: E402
from convolve.training._models import lenet  # noqa: E402


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small colour classifier saved as ONNX (fixed 12x12 input), and two pictures."""
    tmp = tmp_path_factory.mktemp("onnx-cli")
    nn.init.seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 36, 5))
    path = tmp / "clf.onnx"
    convolve.onnx.save(model, np.zeros((1, 3, 12, 12), np.float32), path)
    images = []
    for i in range(2):
        p = tmp / f"img{i}.png"
        Image.fromarray((np.random.default_rng(i).random((20, 16, 3)) * 255).astype(np.uint8)).save(p)
        images.append(p)
    (tmp / "labels.txt").write_text("\n".join(["cat", "dog", "fox", "owl", "elk"]))
    return model, path, images, tmp


def test_run_prints_the_top_classes_of_each_image_as_the_model_scores_them(classifier):
    model, path, images, tmp = classifier
    code, out, _ = cli("run", path, *images, "--top", "2", "--labels", tmp / "labels.txt", "--mean", "0.5",
                       "--std", "0.25")
    assert code == 0
    from convolve.data import read_image

    x = np.stack([read_image(p, "RGB", size=(12, 12)) for p in images]).astype(np.float32) / 255
    logits = model.eval()(np.ascontiguousarray(((x - 0.5) / 0.25).transpose(0, 3, 1, 2))).data
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    names = ["cat", "dog", "fox", "owl", "elk"]
    blocks = out.strip().split(f"{images[1]}:")
    for block, p in zip(blocks, probs):
        best = np.argsort(-p)[:2]
        lines = [ln for ln in block.splitlines() if "class" in ln]
        assert len(lines) == 2
        for line, i in zip(lines, best):
            assert line.split() == [f"{p[i]:.4f}", "class", str(i), names[i]]


def test_run_refuses_a_size_the_model_cannot_take_and_bad_options(classifier):
    _, path, images, tmp = classifier
    code, _, err = cli("run", path, images[0], "--size", "20")
    assert code == 2 and "does not match the model's fixed input 12x12" in err
    code, _, err = cli("run", path, images[0], "--std", "0,1,1")
    assert code == 2 and "--std values must be non-zero" in err
    (tmp / "short.txt").write_text("a\nb\n")
    code, _, err = cli("run", path, images[0], "--labels", tmp / "short.txt")
    assert code == 2 and "has 2 lines but the model scores 5 classes" in err


def test_explain_prints_the_table_of_the_real_graph(tmp_path):
    nn.init.seed(1)
    path = tmp_path / "lenet.onnx"
    convolve.onnx.save(lenet(1, 10, (28, 28)), np.zeros((1, 1, 28, 28), np.float32), path)
    code, out, _ = cli("explain", path)
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:] if line[:1].isdigit()]
    conv = next(r for r in rows if r[1] == "Conv")  # the first conv: 28x28x32, 320 params, 28*28*32*(2*9) FLOPs, 3x3 receptive field
    assert conv[3:7] == ["28x28x32", "320", f"{28 * 28 * 32 * 18:,}", "3x3"]
    assert "421,642 parameters" in out.splitlines()[-1]  # what explain --model lenet reports too


def test_explain_needs_a_shape_for_dynamic_spatial_axes(tmp_path):
    nn.init.seed(2)
    path = tmp_path / "fcn.onnx"
    convolve.onnx.save(nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()), np.zeros((1, 3, 8, 8), np.float32), path)
    m = onnx.load(str(path))
    for d, name in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], "HW"):
        d.dim_param = name
    onnx.save(m, str(path))
    code, _, err = cli("explain", path)
    assert code == 2 and "give one sample's shape" in err
    code, out, _ = cli("explain", path, "10x12x3")
    assert code == 0 and "8x10x2" in out


def test_convert_onnx_weights_to_safetensors_and_npz_and_back(classifier, tmp_path):
    model, path, images, _ = classifier
    assert cli("convert", path, tmp_path / "w.safetensors")[0] == 0
    state = load_state_dict_file(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(state["0.weight"], model[0].weight.data)
    state["0.weight"] = state["0.weight"] * 2
    from convolve.interop import save_state_dict

    save_state_dict(state, tmp_path / "w.npz")
    assert cli("convert", tmp_path / "w.npz", tmp_path / "new.onnx", "--graph", path)[0] == 0
    back = convolve.onnx.load(tmp_path / "new.onnx")
    np.testing.assert_array_equal(dict(back.named_parameters())["n0.weight"].data, 2 * model[0].weight.data)
    code, _, err = cli("convert", tmp_path / "w.npz", tmp_path / "x.onnx")
    assert code == 2 and "needs --graph" in err
    state["extra.weight"] = state.pop("4.bias")
    save_state_dict(state, tmp_path / "odd.npz")
    code, _, err = cli("convert", tmp_path / "odd.npz", tmp_path / "x.onnx", "--graph", path)
    assert code == 2 and "1 weight name(s) of" in err and "['extra.weight']" in err
    assert not (tmp_path / "x.onnx").exists()


def test_convert_a_pytorch_checkpoint_into_an_onnx_graph(tmp_path):
    torch = pytest.importorskip("torch")
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
    x = torch.randn(2, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, x, str(tmp_path / "g.onnx"), dynamo=False, input_names=["x"],
                          do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    with torch.no_grad():  # "fine-tuned" in PyTorch
        for p in net.parameters():
            p.mul_(1.5)
        net[1].running_mean.add_(0.3)
    torch.save(net.state_dict(), tmp_path / "tuned.pt")
    code, out, _ = cli("convert", tmp_path / "tuned.pt", tmp_path / "tuned.onnx", "--graph", tmp_path / "g.onnx")
    assert code == 0 and "initializers replaced" in out
    got = convolve.onnx.load(tmp_path / "tuned.onnx")(x.numpy()).data
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert cli("convert", tmp_path / "tuned.pt", tmp_path / "tuned.safetensors")[0] == 0
    assert set(load_state_dict_file(tmp_path / "tuned.safetensors")) == set(net.state_dict())


def test_run_has_the_image_size_guard(classifier):
    _, path, images, _ = classifier  # 16x20 = 320 pixels each
    code, _, err = cli("run", path, *images, "--max-pixels", "319")
    assert code == 2 and err.count("\n") == 1 and "16x20 = 320 pixels, more than max_pixels = 319" in err
    code, out, _ = cli("run", path, *images, "--max-pixels", "320")
    assert code == 0 and str(images[1]) in out
