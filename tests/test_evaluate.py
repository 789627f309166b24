"""``evaluate`` and ``superres eval``: the literature's bicubic row, data handling, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superres.errors import SuperresError
from superres.quality.evaluation import Bicubic, EvalReport, evaluate
from superres.quality.imresize import imresize
from superres.quality.metrics import psnr, ssim
from test_readme_claims import BICUBIC_ROWS, LITERATURE_BICUBIC_ROW, readme_scores

# Bicubic ×4, Y channel, border 4, as published (e.g. Kim et al. VDSR, Lim et al. EDSR tables).
LITERATURE_BICUBIC_X4 = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027), "BSD100": (25.96, 0.6675)}


@pytest.fixture(scope="module")
def bicubic_report(shared: Path) -> EvalReport:
    return evaluate("bicubic", shared / "benchmarks", datasets=tuple(LITERATURE_BICUBIC_X4), progress=False)


@pytest.mark.parametrize("name", list(LITERATURE_BICUBIC_X4))
def test_bicubic_matches_the_literature(bicubic_report: EvalReport, name: str) -> None:
    result = bicubic_report.results[name]
    psnr_ref, ssim_ref = LITERATURE_BICUBIC_X4[name]
    assert result.psnr == pytest.approx(psnr_ref, abs=0.03)
    assert result.ssim == pytest.approx(ssim_ref, abs=0.002)
    assert result.n == len(result.images) == {"Set5": 5, "Set14": 14, "BSD100": 100}[name]
    assert result.lr_source == "LR_bicubic/X4"


@pytest.mark.parametrize("row", BICUBIC_ROWS)
def test_bicubic_rows_of_the_readme_are_what_eval_measures(bicubic_report: EvalReport, row: str) -> None:
    for name, (psnr_claimed, ssim_claimed) in readme_scores(row).items():
        assert round(bicubic_report.results[name].psnr, 2) == psnr_claimed, name
        assert round(bicubic_report.results[name].ssim, 4) == ssim_claimed, name
    assert readme_scores(LITERATURE_BICUBIC_ROW) == LITERATURE_BICUBIC_X4


def _hr_only_root(shared: Path, tmp_path: Path, names: tuple[str, ...]) -> Path:
    """A data root whose sets have HR (linked, not copied) but no LR: evaluate makes the LR."""
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "HR").symlink_to(shared / "benchmarks" / name / "HR", target_is_directory=True)
    return tmp_path


def test_our_lr_changes_bicubic_psnr_by_under_a_hundredth(
    shared: Path, tmp_path: Path, bicubic_report: EvalReport
) -> None:
    names = tuple(LITERATURE_BICUBIC_X4)
    ours = evaluate("bicubic", _hr_only_root(shared, tmp_path, names), datasets=names, progress=False)
    for name in names:
        assert ours.results[name].lr_source == "imresize"
        assert abs(ours.results[name].psnr - bicubic_report.results[name].psnr) < 0.01


class _Nearest:
    """A stand-in model: nearest-neighbour upscaling of uint8 RGB, recording what it was given."""

    def __init__(self, scale: int = 4) -> None:
        self.scale = scale
        self.inputs: list[tuple[int, ...]] = []

    def upscale(self, image: np.ndarray) -> np.ndarray:
        self.inputs.append(image.shape)
        return image.repeat(self.scale, axis=0).repeat(self.scale, axis=1)


def test_a_model_object_is_scored_like_the_metrics_say(shared: Path) -> None:
    model = _Nearest()
    report = evaluate(model, shared / "benchmarks", datasets=("Set14",), progress=False)
    bench = shared / "benchmarks" / "Set14"

    hr = np.asarray(Image.open(bench / "HR" / "baboon.png"))
    sr = np.asarray(Image.open(bench / "LR_bicubic" / "X4" / "baboon.png")).repeat(4, 0).repeat(4, 1)
    score = report.results["Set14"].images["baboon.png"]
    assert score.psnr == pytest.approx(psnr(sr, hr, 4))
    assert score.ssim == pytest.approx(ssim(sr, hr, 4))

    # The grayscale bridge went in as RGB and was scored on its gray values.
    assert all(len(shape) == 3 and shape[2] == 3 for shape in model.inputs)
    gray_hr = np.asarray(Image.open(bench / "HR" / "bridge.png"))
    gray_sr = np.asarray(Image.open(bench / "LR_bicubic" / "X4" / "bridge.png")).repeat(4, 0).repeat(4, 1)
    assert gray_hr.ndim == 2
    assert report.results["Set14"].images["bridge.png"].psnr == pytest.approx(psnr(gray_sr, gray_hr, 4))
    # Nearest neighbour is well below bicubic: the model's output really was scored.
    assert report.results["Set14"].psnr < 25.5


def test_rgb_protocol(shared: Path) -> None:
    y = evaluate("bicubic", shared / "benchmarks", datasets=("Set5",), progress=False)
    rgb = evaluate("bicubic", shared / "benchmarks", datasets=("Set5",), y_only=False, progress=False)
    assert rgb.protocol["channel"] == "RGB" and y.protocol["channel"] == "Y"
    assert rgb.results["Set5"].psnr < y.results["Set5"].psnr - 1.0  # RGB PSNR is lower, as reported


def test_report_json_layout(shared: Path) -> None:
    report = evaluate("bicubic", shared / "benchmarks", datasets=("Set5",), progress=False)
    data = json.loads(report.to_json())
    assert set(data) == {"protocol", "results"}
    assert data["protocol"]["scale"] == 4 and data["protocol"]["crop_border"] == 4
    assert data["protocol"]["model"] == "bicubic"
    set5 = data["results"]["Set5"]
    assert set5["n"] == 5
    assert sorted(set5["images"]) == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
    assert set5["psnr"] == pytest.approx(np.mean([s["psnr"] for s in set5["images"].values()]))
    assert set5["ssim"] == pytest.approx(np.mean([s["ssim"] for s in set5["images"].values()]))


def _make_set(root: Path, name: str, images: dict[str, np.ndarray]) -> Path:
    (root / name / "HR").mkdir(parents=True)
    for file_name, pixels in images.items():
        Image.fromarray(pixels).save(root / name / "HR" / file_name)
    return root


def test_hr_not_a_multiple_of_the_scale_is_cropped_top_left(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (50, 43, 3), dtype=np.uint8)
    root = _make_set(tmp_path, "Odd", {"a.png": hr})
    report = evaluate("bicubic", root, datasets=("Odd",), progress=False)
    cropped = hr[:48, :40]
    expected = psnr(imresize(imresize(cropped, 0.25), 4.0), cropped, 4)
    assert report.results["Odd"].images["a.png"].psnr == pytest.approx(expected)


def test_save_images_never_overwrites_unless_asked(shared: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr"
    evaluate("bicubic", shared / "benchmarks", datasets=("Set5",), save_images=out, progress=False)
    saved = np.asarray(Image.open(out / "Set5" / "bird.png"))
    lr = np.asarray(Image.open(shared / "benchmarks" / "Set5" / "LR_bicubic" / "X4" / "bird.png"))
    np.testing.assert_array_equal(saved, imresize(lr, 4.0))

    before = (out / "Set5" / "bird.png").stat().st_mtime_ns
    with pytest.raises(SuperresError, match="exists"):
        evaluate("bicubic", shared / "benchmarks", datasets=("Set5",), save_images=out, progress=False)
    assert (out / "Set5" / "bird.png").stat().st_mtime_ns == before
    evaluate("bicubic", shared / "benchmarks", datasets=("Set5",), save_images=out, overwrite=True, progress=False)


def test_missing_dataset_and_wrong_scale_are_clear_errors(shared: Path) -> None:
    with pytest.raises(SuperresError, match="Urban100"):
        evaluate("bicubic", shared / "benchmarks", datasets=("Urban100",), progress=False)
    with pytest.raises(SuperresError, match="×2"):
        evaluate(_Nearest(scale=2), shared / "benchmarks", datasets=("Set5",), scale=4, progress=False)
    # scale=None takes the model's own: ×2 reads HR_mod2 and LR_bicubic/X2.
    report = evaluate(_Nearest(scale=2), shared / "benchmarks", datasets=("Set5",), scale=None, progress=False)
    assert report.protocol["scale"] == 2 and report.results["Set5"].lr_source == "LR_bicubic/X2"


def test_real_weights_on_set5(shared: Path) -> None:
    weights = shared / "weights" / "realesr-animevideov3.pth"
    report = evaluate(weights, shared / "benchmarks", datasets=("Set5",), device="cpu", progress=False)
    result = report.results["Set5"]
    assert report.protocol["model"] == str(weights) and report.protocol["precision"] == "fp32"
    assert result.n == 5
    # Measured 28.23 dB / 0.8268. A GAN-trained anime model lands near bicubic (28.43 / 0.8111)
    # in PSNR; a broken pipeline (misaligned, wrong colour order, unrounded) lands far off.
    assert 27.9 < result.psnr < 28.6
    assert 0.815 < result.ssim < 0.84


def test_bicubic_is_an_upscaler() -> None:
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Bicubic(scale=3).upscale(image), imresize(image, 3.0))


# ----------------------------------------------------------------------------- the command


def test_cli_prints_table_and_writes_json(shared: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from superres.cli import app

    json_path = tmp_path / "report.json"
    args = ["eval", "--model", "bicubic", "--data-root", str(shared / "benchmarks"), "--datasets", "Set5", "Set14"]
    result = CliRunner().invoke(app, [*args, "--json", str(json_path), "--no-progress", "--verbose"])
    assert result.exit_code == 0, result.output
    assert "28.43" in result.output and "26.00" in result.output  # Set5 and Set14 means
    assert "baby.png" in result.output  # --verbose lists images
    assert "protocol" in result.output
    assert set(json.loads(json_path.read_text())["results"]) == {"Set5", "Set14"}

    again = CliRunner().invoke(app, [*args, "--json", str(json_path), "--no-progress"])
    assert again.exit_code == 1 and "exists" in again.output


def test_cli_missing_dataset_is_one_line(shared: Path) -> None:
    from typer.testing import CliRunner

    from superres.cli import app

    args = ["eval", "--model", "bicubic", "--data-root", str(shared / "benchmarks"), "--datasets", "Nope"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1


def test_load_benchmark_reads_pairs_as_evaluate_does(shared: Path, tmp_path: Path) -> None:
    from superres.quality.evaluation import load_benchmark

    images = load_benchmark(shared / "benchmarks" / "Set14", scale=4)
    assert len(images) == 14
    for im in images:
        assert im.lr.dtype == np.uint8 and im.hr.shape[:2] == (im.lr.shape[0] * 4, im.lr.shape[1] * 4)
    bridge = next(im for im in images if im.name == "bridge")
    assert bridge.hr.ndim == 2 and bridge.lr.ndim == 2  # gray stays gray, scored on its own values
    # Without an LR folder the LR is made with our MATLAB bicubic; it matches MATLAB's own files inside.
    (tmp_path / "Mini" / "HR").mkdir(parents=True)
    Image.open(shared / "benchmarks" / "Set14" / "HR" / "bridge.png").save(tmp_path / "Mini" / "HR" / "bridge.png")
    (made,) = load_benchmark(tmp_path / "Mini", scale=4)
    inner = (slice(3, -3), slice(3, -3))
    assert np.array_equal(made.lr[inner], bridge.lr[inner])


def test_training_validation_scores_like_evaluate(shared: Path) -> None:
    """The trainer's validation and ``superres eval`` give the same numbers, gray images included."""
    import torch

    from superres.archs import SRVGGNetCompact
    from superres.engine.inference import Upscaler
    from superres.models.detect import describe
    from superres.quality.evaluation import load_benchmark, network_input, score_image
    from superres.train.validation import validate

    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=8, num_conv=2).eval()
    images = [im for im in load_benchmark(shared / "benchmarks" / "Set14", scale=4) if im.name in ("bridge", "baboon")]
    trained = validate(net, "Set14", images, scale=4, device=torch.device("cpu"))
    hparams = {"num_feat": 8, "num_conv": 2}
    upscaler = Upscaler(net, describe("SRVGGNetCompact", hparams, net), device="cpu", precision="fp32", tile=0)
    for im in images:
        expected = score_image(upscaler.upscale(network_input(im.lr)), im.hr, 4)
        assert trained.per_image[im.name][0] == pytest.approx(expected.psnr, abs=1e-3)
        assert trained.per_image[im.name][1] == pytest.approx(expected.ssim, abs=1e-4)
