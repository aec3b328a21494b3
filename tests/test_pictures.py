"""Pictures, animation, kernels, image reading and `convolve apply`: what is drawn is what the engine computes."""

import numpy as np
import pytest
from PIL import Image

from convolve import functional as F
from convolve.cli import main
from convolve.explain import (BANK, apply_kernel, bank_maps, get_kernel, kernel_bank_figure, kernels_figure,
                              load_image, load_kernel, next_layer, next_layer_figure, sample_image, save_map, slide,
                              sliding_gif, volume_figure)


def _step_image(h=10, w=16, at=8):
    x = np.zeros((1, h, w))
    x[:, :, at:] = 1.0
    return x


# --- kernels -------------------------------------------------------------------------------------------


def test_bank_and_aliases():
    assert set(BANK) == {"identity", "box_blur", "gaussian_blur", "sharpen", "laplacian", "edge", "sobel_x", "sobel_y"}
    assert np.array_equal(get_kernel("Sobel-X"), BANK["sobel_x"]) and np.array_equal(get_kernel("blur"), BANK["box_blur"])
    for name in ("box_blur", "gaussian_blur", "identity", "sharpen"):
        assert BANK[name].sum() == pytest.approx(1.0)  # brightness-preserving
    for name in ("laplacian", "edge", "sobel_x", "sobel_y"):
        assert BANK[name].sum() == 0  # flat regions give 0
    with pytest.raises(ValueError, match="kernel must be one of .* but got 'sobel_z'"):
        get_kernel("sobel_z")


def test_user_kernels(tmp_path):
    k = load_kernel("[[1,0,-1],[2,0,-2],[1,0,-1]]")
    assert k.shape == (3, 3) and k[1, 0] == 2
    np.save(tmp_path / "k3.npy", np.ones((3, 5, 5), dtype=np.float32))
    assert load_kernel(str(tmp_path / "k3.npy")).shape == (3, 5, 5)


@pytest.mark.parametrize("array, message", [
    (np.ones(3), r"has shape \(3,\) \(1-D\); expected a 2-D \(kH, kW\) kernel or a 3-D"),
    (np.ones((1, 1, 3, 3)), r"\(4-D\)"),
    (np.zeros((0, 3)), "is empty"),
    (np.array([[1.0, np.nan]]), "NaN or infinity"),
    (np.array([["a", "b"]]), "must hold numbers"),
])
def test_kernel_file_errors(tmp_path, array, message):
    path = tmp_path / "k.npy"
    np.save(path, array)
    with pytest.raises((ValueError, TypeError), match=message):
        load_kernel(str(path))


def test_kernel_spec_errors(tmp_path):
    with pytest.raises(ValueError, match="not a rectangular nested list"):
        load_kernel("[[1,0],[0]]")
    with pytest.raises(ValueError, match="not a rectangular nested list"):
        load_kernel("[[1,0],[0, x]]")
    with pytest.raises(FileNotFoundError, match="kernel file .*missing.npy' does not exist"):
        load_kernel(str(tmp_path / "missing.npy"))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="is not a readable .npy array"):
        load_kernel(str(tmp_path / "bad.npy"))


# --- reading images ------------------------------------------------------------------------------------


def test_image_modes(tmp_path):
    grey = (np.arange(48, dtype=np.uint8) * 5).reshape(6, 8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png")
    assert x.shape == (1, 6, 8) and x.dtype == np.float32 and x[0, 0, 1] == pytest.approx(5 / 255)
    rgb = np.zeros((6, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(np.dstack([rgb, np.full((6, 8), 128, np.uint8)])).save(tmp_path / "a.png")
    assert load_image(tmp_path / "c.png").shape == (3, 6, 8)
    a = load_image(tmp_path / "a.png")
    assert a.shape == (4, 6, 8) and a[3, 0, 0] == pytest.approx(128 / 255)
    assert load_image(tmp_path / "c.png", grey=True)[0, 0, 0] == pytest.approx(0.299, abs=1e-6)
    deep = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d16.png")
    assert Image.open(tmp_path / "d16.png").mode.startswith("I")
    assert load_image(tmp_path / "d16.png")[0, 0] == pytest.approx([0, 32768 / 65535, 1.0])
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    j = load_image(tmp_path / "c.jpg")
    assert j.shape == (3, 6, 8) and j[0].mean() > 0.9 and j[1].mean() < 0.1
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.gif")
    assert load_image(tmp_path / "p.gif").shape == (3, 6, 8)
    assert load_image(tmp_path / "c.png", size=(3, 4)).shape == (3, 3, 4)


def test_unreadable_images(tmp_path):
    (tmp_path / "fake.png").write_text("this is not a picture")
    with pytest.raises(ValueError, match="cannot read image .*fake.png.*not an image format"):
        load_image(tmp_path / "fake.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read image .*cut.png"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="is a folder"):
        load_image(tmp_path)


def test_sample_image():
    x = sample_image(64)
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1 and x.std() > 0.05


# --- the feature maps ----------------------------------------------------------------------------------


def test_sobel_x_on_vertical_step_is_nonzero_only_along_the_step():
    r = apply_kernel(_step_image(), "sobel_x")  # valid conv: output column j reads input columns j..j+2
    m = r.map
    assert m.shape == (8, 14)
    cols = np.nonzero(np.abs(m).sum(axis=0))[0]
    assert list(cols) == [6, 7]  # the two windows that straddle the step between columns 7 and 8
    assert np.all(m[:, 6:8] == 4)  # 1 + 2 + 1 on the bright side, rising to the right -> positive
    sy = apply_kernel(_step_image(), "sobel_y").map
    assert not sy.any()  # no horizontal edge


def test_bank_maps_are_engine_conv(tmp_path):
    x = sample_image(32).astype(np.float64)
    maps = kernel_bank_figure(x, BANK, tmp_path / "bank.png")
    grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None, None]
    for name, k in BANK.items():
        assert np.allclose(maps[name], F.conv2d(grey, k[None, None])[0, 0], atol=1e-6)  # grey is float32
    assert np.allclose(maps["identity"], grey[0, 0, 1:-1, 1:-1], atol=1e-6)
    img = Image.open(tmp_path / "bank.png")
    assert img.format == "PNG" and img.size[0] > 1000
    assert bank_maps(x, {"k": np.ones((2, 2))}, padding=1)["k"].shape == (33, 33)
    with pytest.raises(ValueError, match="must be 2-D"):
        bank_maps(x, {"deep": np.ones((3, 3, 3))})


def test_apply_depth_rules(tmp_path):
    rgba = np.random.default_rng(0).random((4, 9, 9)).astype(np.float32)
    k3 = np.random.default_rng(1).standard_normal((3, 3, 3))
    r = apply_kernel(rgba, k3)
    assert r.note.startswith("3 colour channels") and np.allclose(r.map, F.conv2d(rgba[None, :3].astype(np.float64),
                                                                                    k3[None])[0, 0])
    with pytest.raises(ValueError, match="kernel depth 2 must equal the image's 4 channels"):
        apply_kernel(rgba, np.ones((2, 3, 3)))
    r = apply_kernel(rgba[:3], "sobel_x", stride=2, padding=1, dilation=2)
    assert r.map.shape == ((9 + 2 - 4 - 1) // 2 + 1,) * 2


def test_save_map_colours(tmp_path):
    m = np.array([[-2.0, 0.0, 2.0]])
    save_map(m, tmp_path / "m.png")
    px = np.asarray(Image.open(tmp_path / "m.png").convert("RGB")).astype(int)
    assert px.shape == (1, 3, 3)
    assert px[0, 0, 2] > px[0, 0, 0] and px[0, 2, 0] > px[0, 2, 2]  # blue for < 0, red for > 0
    assert np.all(px[0, 1] > 235)  # 0 is (near) white: the scale is centred
    save_map(m, tmp_path / "m.npy")
    assert np.array_equal(np.load(tmp_path / "m.npy"), m)
    with pytest.raises(ValueError, match="out must end in"):
        save_map(m, tmp_path / "m.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "m.png"]


def test_cli_apply(tmp_path, capsys):
    Image.fromarray((_step_image()[0] * 255).astype(np.uint8)).save(tmp_path / "step.png")
    out = tmp_path / "edges.npy"
    assert main(["apply", str(tmp_path / "step.png"), "--kernel", "[[-1,0,1],[-2,0,2],[-1,0,1]]", "--out", str(out),
                 "--figure", str(tmp_path / "fig.png")]) == 0
    m = np.load(out)
    assert list(np.nonzero(np.abs(m).sum(axis=0))[0]) == [6, 7]
    assert (tmp_path / "fig.png").exists()
    text = capsys.readouterr().out
    assert "feature map 8x14" in text and "step.png: 10x16x1" in text
    assert main(["apply", str(tmp_path / "step.png"), "--kernel", "edge", "--padding", "same",
                 "--out", str(tmp_path / "e.png")]) == 0
    assert Image.open(tmp_path / "e.png").size == (16, 10)


def test_cli_apply_errors_leave_nothing(tmp_path, capsys):
    (tmp_path / "fake.png").write_text("no")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    np.save(tmp_path / "k1.npy", np.ones(3))
    cases = [
        (["apply", str(tmp_path / "fake.png"), "--kernel", "edge", "--out", str(tmp_path / "o.png")], "cannot read image"),
        (["apply", str(tmp_path / "ok.png"), "--kernel", str(tmp_path / "k1.npy"), "--out", str(tmp_path / "o.png")],
         r"has shape \(3,\) \(1-D\)"),
        (["apply", str(tmp_path / "ok.png"), "--kernel", "edge", "--out", str(tmp_path / "o.txt")], "out must end in"),
        (["apply", str(tmp_path / "ok.png"), "--kernel", "edge", "--out", str(tmp_path / "no" / "o.png")],
         "folder .* does not exist"),
        (["apply", str(tmp_path / "ok.png"), "--kernel", "[[1,2,3]]", "--padding", "0", "--dilation", "5",
          "--out", str(tmp_path / "o.png")], "larger than the padded input"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        import re
        assert re.search(message, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.png", "k1.npy", "ok.png"]


# --- the animation -------------------------------------------------------------------------------------


def test_slide_one_frame_per_position_and_last_frame_is_engine_output(tmp_path):
    rng = np.random.default_rng(0)
    x, w = rng.random((5, 5)), get_kernel("sobel_x")
    s = slide(x, w, bias=0.1, padding=1)
    engine = F.conv2d(x[None, None], w[None, None], np.array([0.1]), padding=1)[0, 0]
    assert s.frames == 25 and s.positions[0] == (0, 0) and s.positions[-1] == (4, 4)
    assert np.array_equal(s.map_at(s.frames - 1), engine)
    assert np.isnan(s.map_at(10)).sum() == 25 - 11  # the map fills one cell per frame
    for f in (0, 9, 20, 24):
        i, j = s.positions[f]
        assert s.z(f) == pytest.approx(engine[i, j])  # the written-out sum is the engine's value
    sliding_gif(s, tmp_path / "one.gif")
    gif = Image.open(tmp_path / "one.gif")
    assert gif.n_frames == 25
    gif.seek(24)
    assert gif.info["duration"] >= 1000  # the finished map is held


def test_slide_three_channels_and_subsampling(tmp_path):
    rng = np.random.default_rng(1)
    x, w = rng.random((3, 12, 12)), rng.standard_normal((3, 3, 3))
    s = slide(x, w, bias=-0.2, stride=1, padding=0, max_frames=15)
    engine = F.conv2d(x[None], w[None], np.array([-0.2]))[0, 0]
    assert engine.shape == (10, 10)
    # documented subsample: every ceil(100 / 15) = 7th position, plus the last one
    assert s.positions == [(p // 10, p % 10) for p in range(0, 100, 7)] + [(9, 9)]
    assert np.array_equal(s.map_at(s.frames - 1), engine)
    assert s.window(5).shape == (3, 3, 3)
    i, j = s.positions[5]
    assert np.array_equal(s.window(5), x[:, i:i + 3, j:j + 3])
    sliding_gif(s, tmp_path / "three.gif")
    assert Image.open(tmp_path / "three.gif").n_frames == s.frames == 16
    with pytest.raises(ValueError, match="input has 3 channels but the kernel has depth 1"):
        slide(x, np.ones((3, 3)))
    with pytest.raises(ValueError, match="max_frames must be a positive int"):
        slide(x, w, max_frames=0)


def test_gif_into_missing_folder_leaves_nothing(tmp_path):
    s = slide(np.ones((4, 4)), np.ones((2, 2)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sliding_gif(s, tmp_path / "missing" / "a.gif")
    assert list(tmp_path.iterdir()) == []


# --- the volume and the next layer ---------------------------------------------------------------------


def test_next_layer_sums_the_whole_volume(tmp_path):
    rng = np.random.default_rng(2)
    v, w, b = rng.standard_normal((8, 12, 12)), rng.standard_normal((4, 8, 5, 5)), rng.standard_normal(4)
    r = next_layer_figure(v, w, b, (3, 7), tmp_path / "next.png", kernel_index=2, padding=2)
    engine = F.conv2d(v[None], w, b, padding=2)[0, 2]
    assert np.array_equal(r.output, engine)
    assert r.z == pytest.approx(engine[3, 7]) and r.z == pytest.approx(r.bias + r.partial.sum())
    padded = np.pad(v, ((0, 0), (2, 2), (2, 2)))
    assert np.array_equal(r.windows, padded[:, 3:8, 7:12])
    assert r.partial == pytest.approx((w[2] * r.windows).sum(axis=(1, 2)))
    with pytest.raises(ValueError, match="kernel depth = input depth"):
        next_layer(v, w[:, :3], b, (0, 0))
    with pytest.raises(ValueError, match="position must lie in the 8x8 output"):
        next_layer(v, w, b, (8, 0))


def test_volume_and_kernel_figures(tmp_path):
    x = sample_image(16).astype(np.float64)
    w = np.random.default_rng(3).standard_normal((4, 3, 3, 3))
    v = F.conv2d(x[None], w, padding=1)[0]
    volume_figure(x, v, tmp_path / "v.png")
    kernels_figure(w, tmp_path / "k.png")
    for name in ("v.png", "k.png"):
        assert Image.open(tmp_path / name).format == "PNG"


def test_cli_apply_16bit_and_rgba(tmp_path, capsys):
    deep = (np.tile(np.arange(12), (6, 1)) * 5000).astype(np.uint16)  # rises to the right, beyond 8 bits
    Image.fromarray(deep).save(tmp_path / "d16.png")
    assert main(["apply", str(tmp_path / "d16.png"), "--kernel", "sobel_x", "--out", str(tmp_path / "d.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "d.npy"), 8 * 5000 / 65535, atol=1e-5)  # (1+2+1) * 2 steps
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    k = np.zeros((3, 3, 3))
    k[1, 1, 1] = 1.0  # picks the green channel
    np.save(tmp_path / "green.npy", k)
    assert main(["apply", str(tmp_path / "a.png"), "--kernel", str(tmp_path / "green.npy"), "--out",
                 str(tmp_path / "g.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "g.npy"), 200 / 255)
    assert "3 colour channels (alpha left out)" in capsys.readouterr().out
