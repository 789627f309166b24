"""The comparison figure behind ``superres demo`` / ``superres compare``, and the bundled sample images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superres import demo
from superres.errors import ConfigError, ImageError
from superres.quality.imresize import imresize
from superres.quality.metrics import psnr, ssim

ASSETS = Path(demo.__file__).resolve().parent / "assets"


def _nearest(lr: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)


@pytest.fixture(scope="module")
def hr() -> np.ndarray:
    return demo.load_rgb(demo.sample_image())


@pytest.fixture(scope="module")
def comparison(hr: np.ndarray) -> demo.Comparison:
    return demo.compare(hr, [demo.bicubic_method(), demo.Method("nearest", _nearest)], title="test")


def test_bundled_samples_are_small_licensed_and_consistent(hr: np.ndarray):
    assert demo.sample_image() == ASSETS / "sample.png"
    assert hr.shape == (256, 256, 3) and hr.dtype == np.uint8
    assert (ASSETS / "sample.png").stat().st_size < 200_000
    lr = demo.load_rgb(ASSETS / "sample_lr.png")
    np.testing.assert_array_equal(lr, imresize(hr, 0.25))  # the x4 MATLAB-bicubic LR of the HR sample
    attribution = (ASSETS / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC0" in attribution and "chelsea" in attribution


def test_scores_are_the_metrics_of_the_shown_images(hr: np.ndarray, comparison: demo.Comparison):
    np.testing.assert_array_equal(comparison.lr, imresize(hr, 0.25))
    bicubic, nearest = comparison.results
    np.testing.assert_array_equal(bicubic.image, imresize(imresize(hr, 0.25), 4.0))
    for result in comparison.results:
        assert result.psnr == psnr(result.image, hr, crop_border=4)
        assert result.ssim == ssim(result.image, hr, crop_border=4)
    assert bicubic.psnr > nearest.psnr + 1.0  # sanity: bicubic beats pixel repetition


def test_figure_has_one_labelled_column_per_method(comparison: demo.Comparison):
    figure = demo.render(comparison)
    assert [cell.label for cell in figure.cells] == ["HR (ground truth)", "bicubic", "nearest"]
    assert figure.image.width == 2 * demo.MARGIN + 3 * 256 + 2 * demo.GAP
    pixels = np.asarray(figure.image)
    box = comparison.detail
    for cell, shown in zip(figure.cells[1:], comparison.results):
        left, top, right, bottom = cell.image_box
        np.testing.assert_array_equal(pixels[top:bottom, left:right], shown.image)  # full resolution, untouched
        left, top, right, bottom = cell.zoom_box
        crop = shown.image[box.y : box.y + box.h, box.x : box.x + box.w]
        zoom = (right - left) // box.w
        assert zoom >= 4
        np.testing.assert_array_equal(pixels[top:bottom, left:right], np.repeat(np.repeat(crop, zoom, 0), zoom, 1))
    strips = []
    for cell in figure.cells:
        left, top, right, bottom = cell.caption_box
        strip = pixels[top:bottom, left:right]
        assert (strip != 255).any(axis=2).sum() > 200, f"no caption drawn for {cell.label}"
        strips.append(strip)
    assert not np.array_equal(strips[1], strips[2])  # the captions say different things
    # The HR panel marks the zoomed region with a red frame.
    left, top, _, _ = figure.cells[0].image_box
    assert tuple(pixels[top + box.y, left + box.x + box.w // 2]) == demo.BOX


def test_detail_box_finds_the_textured_region():
    rng = np.random.default_rng(0)
    image = np.full((128, 160, 3), 120, np.uint8)
    image[72:104, 96:128] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    box = demo.detail_box(image, 32, step=4, margin=4)
    assert box == demo.Box(96, 72, 32, 32)
    assert demo.default_detail_size(image, 4) == 32
    edge = np.full((64, 64, 3), 120, np.uint8)
    edge[:16, :16] = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    box = demo.detail_box(edge, 16, step=4, margin=4)
    assert box.x >= 4 and box.y >= 4 and box.x % 4 == 0 and box.y % 4 == 0  # the ignored border is avoided


def test_odd_sizes_are_cropped_and_tiny_or_bad_inputs_are_refused(hr: np.ndarray):
    odd = hr[:101, :99]
    result = demo.compare(odd, [demo.bicubic_method()])
    assert result.hr.shape == (100, 96, 3) and result.results[0].image.shape == (100, 96, 3)
    with pytest.raises(ImageError, match="at least 32"):
        demo.compare(hr[:30, :60], [demo.bicubic_method()])
    with pytest.raises(ConfigError, match="does not fit"):
        demo.compare(hr, [demo.bicubic_method()], detail=demo.Box(200, 200, 64, 64))
    with pytest.raises(ConfigError, match="X,Y,W,H"):
        demo.parse_box("1,2,3")
    assert demo.parse_box("8,16,32,24") == demo.Box(8, 16, 32, 24)
    with pytest.raises(ImageError, match="expected"):
        demo.compare(hr, [demo.Method("wrong scale", lambda lr: lr)])


def test_large_images_are_shown_shrunk_but_scored_at_full_size(hr: np.ndarray):
    big = np.tile(hr, (3, 3, 1))  # 768×768
    result = demo.compare(big, [demo.bicubic_method()])
    figure = demo.render(result)
    left, top, right, bottom = figure.cells[1].image_box
    assert (right - left, bottom - top) == (demo.MAX_PANEL, demo.MAX_PANEL)
    assert result.results[0].image.shape == big.shape


def test_a_model_of_another_scale_is_resized_to_x4():
    class TwoTimes:
        scale = 2
        asked: list[float | None] = []

        def upscale(self, image: np.ndarray, outscale: float | None = None) -> np.ndarray:
            self.asked.append(outscale)
            return _nearest(image)

    model = TwoTimes()
    method = demo.upscaler_method("x2 model", model)
    assert method.upscale(np.zeros((8, 8, 3), np.uint8)).shape == (32, 32, 3)
    assert model.asked == [4]


def test_demo_with_bicubic_writes_once_and_never_overwrites(tmp_path: Path):
    out = tmp_path / "figs" / "comparison.png"
    assert demo.demo(output=out, models=["bicubic"]) == out
    with Image.open(out) as image:
        assert image.size[0] == 2 * demo.MARGIN + 2 * 256 + demo.GAP
    before = out.read_bytes()
    with pytest.raises(ImageError, match="already exists; pass --overwrite"):
        demo.demo(output=out, models=["bicubic"])
    assert out.read_bytes() == before
    demo.demo(output=out, models=["bicubic"], detail=demo.Box(0, 0, 128, 64), overwrite=True)
    assert out.read_bytes() != before
    with pytest.raises(ImageError, match="cannot write"):
        demo.demo(output=tmp_path / "figure.gif", models=["bicubic"])


def test_demo_with_a_compact_model_is_fast(shared: Path, tmp_path: Path):
    weights = shared / "weights" / "realesr-animevideov3.pth"
    start = time.perf_counter()
    out = demo.demo(output=tmp_path / "c.png", models=[str(weights)], device="cpu")
    elapsed = time.perf_counter() - start
    with Image.open(out) as image:
        assert image.width == 2 * demo.MARGIN + 3 * 256 + 2 * demo.GAP
    assert elapsed < 30  # a few seconds on a laptop CPU; generous for a loaded CI machine

    method = demo.model_method(str(weights), device="cpu")
    assert method.label == "realesr-animevideov3"
    hr = demo.load_rgb(demo.sample_image())
    (result,) = demo.compare(hr, [method]).results
    assert result.psnr == psnr(result.image, hr, crop_border=4)
    # measured 28.97 dB: an anime model on a photo, below bicubic's 29.79 (test_readme_claims), far above garbage
    assert result.psnr == pytest.approx(28.97, abs=0.01)


def test_alpha_sweep_runs_from_the_psnr_to_the_gan_model(shared: Path, tmp_path: Path):
    import torch

    from superres.engine.inference import Upscaler
    from superres.models.weights import load_network, save_network

    psnr_path = shared / "weights" / "realesr-animevideov3.pth"
    net, info = load_network(psnr_path)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(0.9)
    other_path = save_network(tmp_path / "other.safetensors", net, info.arch, info.hparams)

    small = demo.load_rgb(demo.sample_image())[64:192, 64:192]  # 128×128 keeps the sweep quick
    methods = demo.interpolation_methods(str(psnr_path), str(other_path), alphas=(0.0, 0.5, 1.0), device="cpu")
    assert [m.label for m in methods] == ["alpha = 0", "alpha = 0.5", "alpha = 1"]
    lr = imresize(small, 0.25)
    ends = [
        Upscaler(*load_network(path), device="cpu", precision="fp32").upscale(lr) for path in (psnr_path, other_path)
    ]
    outputs = [m.upscale(lr) for m in methods]
    np.testing.assert_array_equal(outputs[0], ends[0])
    np.testing.assert_array_equal(outputs[-1], ends[1])
    assert not np.array_equal(outputs[1], outputs[0]) and not np.array_equal(outputs[1], outputs[-1])

    Image.fromarray(small).save(tmp_path / "small.png")
    sweep = (str(psnr_path), str(other_path))
    out = demo.demo(tmp_path / "small.png", tmp_path / "sweep.png", models=[], alpha_sweep=sweep)
    with Image.open(out) as image:
        # HR, bicubic and the six alphas 0, 0.2, ..., 1; 128-px images are shown enlarged to MIN_PANEL.
        panel = 2 * 128
        assert image.width == 2 * demo.MARGIN + 8 * panel + 7 * demo.GAP


def test_cli_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import typer
    from typer.testing import CliRunner

    from superres.cli import models as models_cli

    app = typer.Typer()
    models_cli.register(app)
    runner = CliRunner()
    out = tmp_path / "fig.png"

    result = runner.invoke(app, ["demo", "-o", str(out), "-m", "bicubic", "--crop", "64,64,64,64"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output
    result = runner.invoke(app, ["demo", "-o", str(out), "-m", "bicubic"])
    assert result.exit_code == 1 and "already exists" in result.output

    sample = str(demo.sample_image())
    result = runner.invoke(app, ["compare", sample, "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 1 and "nothing to compare" in result.output
    args = ["compare", sample, "--models", "bicubic", "no-such-model", "-o", str(tmp_path / "c.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "unknown model 'no-such-model'" in result.output
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "d.png"), "-m", "bicubic", "--crop", "1,2"])
    assert result.exit_code == 1 and "X,Y,W,H" in result.output
