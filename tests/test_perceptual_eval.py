"""NIQE and LPIPS in ``superres eval``, the α sweep and its figure, and ``superres score``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from superres.cli import app
from superres.quality.evaluation import evaluate
from superres.quality.imresize import imresize
from superres.quality.lpips import LPIPS
from superres.quality.niqe import niqe
from superres.quality.sweep import alpha_sweep, draw_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_root(shared: Path, tmp_path_factory) -> Path:
    """One 208×112 crop of Set14 baboon as a benchmark set "Tiny" (HR only: the LR is made by imresize)."""
    root = tmp_path_factory.mktemp("bench")
    (root / "Tiny" / "HR").mkdir(parents=True)
    hr = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "baboon.png").convert("RGB"))[:112, :208]
    Image.fromarray(hr).save(root / "Tiny" / "HR" / "baboon.png")
    return root


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory) -> tuple[Path, Path]:
    """Random AlexNet and head weights in the official file formats."""
    folder = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    model = LPIPS("alex")
    for lin in model.lin:
        lin.weight.uniform_(0, 1)
    torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()}, folder / "alexnet.pth")
    torch.save({f"lin{k}.model.1.weight": lin.weight for k, lin in enumerate(model.lin)}, folder / "alex.pth")
    return folder / "alexnet.pth", folder / "alex.pth"


def test_eval_scores_niqe_of_the_output_and_lpips_against_hr(tiny_root: Path, lpips_files, tmp_path: Path) -> None:
    report = evaluate("bicubic", tiny_root, datasets=["Tiny"], metrics="niqe,lpips", lpips_weights=lpips_files,
                      progress=False)  # fmt: skip
    result = report.results["Tiny"]
    hr = np.asarray(Image.open(tiny_root / "Tiny" / "HR" / "baboon.png"))
    sr = imresize(imresize(hr, 0.25), 4.0)
    assert result.niqe == pytest.approx(niqe(sr, crop_border=4))
    assert result.lpips is not None and result.lpips > 0
    assert report.protocol["metrics"] == ["psnr", "ssim", "niqe", "lpips"] and "border 4" in report.protocol["niqe"]

    out = tmp_path / "report.json"
    cli = CliRunner().invoke(app, ["eval", "-m", "bicubic", "--data-root", str(tiny_root), "-d", "Tiny",
                                   "--metrics", "psnr,niqe", "--json", str(out), "--no-progress"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert "NIQE" in cli.stdout
    saved = json.loads(out.read_text())["results"]["Tiny"]
    assert saved["niqe"] == pytest.approx(result.niqe) and saved["lpips"] is None

    bad = CliRunner().invoke(app, ["eval", "-m", "bicubic", "--data-root", str(tiny_root), "--metrics", "fid"])
    assert bad.exit_code == 1 and "unknown metric 'fid'" in bad.stderr


def test_alpha_sweep_ends_are_the_two_models_and_the_figure_is_drawn(tiny_root: Path, tmp_path: Path) -> None:
    report = alpha_sweep("superres-x4", "superres-x4-gan", tiny_root, ["Tiny"], alphas=[0.0, 1.0], progress=False)
    assert [p.label for p in report.points] == ["α=0", "α=1", "bicubic"]
    for point, model in zip(report.points[:2], ("superres-x4", "superres-x4-gan"), strict=True):
        alone = evaluate(model, tiny_root, datasets=["Tiny"], metrics="niqe", progress=False).results["Tiny"]
        assert (point.results["Tiny"].psnr, point.results["Tiny"].niqe) == (alone.psnr, alone.niqe)
    figure = draw_sweep(report, tmp_path / "sweep.png")
    assert Image.open(figure).size == (820, 560)

    plot, out = tmp_path / "cli.png", tmp_path / "cli.json"
    cli = CliRunner().invoke(app, ["eval", "--data-root", str(tiny_root), "--alpha-sweep", "superres-x4",
                                   "superres-x4-gan", "--alphas", "0", "0.5", "-d", "Tiny", "--plot", str(plot),
                                   "--json", str(out), "--no-progress"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    points = json.loads(out.read_text())["points"]
    assert [p["alpha"] for p in points] == [0.0, 0.5, None] and plot.is_file()
    assert points[0]["results"]["Tiny"]["psnr"] == pytest.approx(report.points[0].results["Tiny"].psnr)


def test_alpha_sweep_on_degraded_inputs_scores_what_eval_degrade_scores(tiny_root: Path, tmp_path: Path) -> None:
    from superres.train.degrade.recipes import get_recipe

    recipe = get_recipe("bicubic-noise4-jpeg45")
    report = alpha_sweep("superres-x4", "superres-x4-gan", tiny_root, ["Tiny"], alphas=[0.0], progress=False,
                         degrade=recipe, degrade_name=recipe.name)  # fmt: skip
    clean = alpha_sweep("superres-x4", "superres-x4-gan", tiny_root, ["Tiny"], alphas=[0.0], progress=False)
    for point, model in zip(report.points, ("superres-x4", "bicubic"), strict=True):
        alone = evaluate(model, tiny_root, datasets=["Tiny"], metrics="niqe", progress=False, degrade=recipe,
                         degrade_name=recipe.name).results["Tiny"]  # fmt: skip
        assert (point.results["Tiny"].psnr, point.results["Tiny"].niqe) == (alone.psnr, alone.niqe)
    assert report.points[0].results["Tiny"].psnr < clean.points[0].results["Tiny"].psnr - 0.5
    assert "bicubic-noise4-jpeg45" in report.protocol["description"]

    out = tmp_path / "cli.json"
    cli = CliRunner().invoke(app, ["eval", "--data-root", str(tiny_root), "--alpha-sweep", "superres-x4",
                                   "superres-x4-gan", "--alphas", "0", "-d", "Tiny", "--degrade",
                                   "bicubic-noise4-jpeg45", "--json", str(out), "--no-progress"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    points = json.loads(out.read_text())["points"]
    assert points[0]["results"]["Tiny"]["psnr"] == pytest.approx(report.points[0].results["Tiny"].psnr)


def test_score_command(tiny_root: Path, tmp_path: Path) -> None:
    hr_path = tiny_root / "Tiny" / "HR" / "baboon.png"
    hr = np.asarray(Image.open(hr_path))
    blurred = imresize(imresize(hr, 0.5), 2.0)
    Image.fromarray(blurred).save(tmp_path / "blurred.png")
    Image.fromarray(hr[:50, :50]).save(tmp_path / "small.png")
    runner = CliRunner()

    both = [str(hr_path), str(tmp_path / "blurred.png")]
    alone = runner.invoke(app, ["score", *both, "--json", str(tmp_path / "s.json")])
    assert alone.exit_code == 0, alone.output
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores[0]["niqe"] == pytest.approx(niqe(hr)) and scores[1]["niqe"] == pytest.approx(niqe(blurred))
    assert "mean of 2" in alone.stdout

    ref = runner.invoke(app, ["score", str(tmp_path / "blurred.png"), "--ref", str(hr_path), "--crop", "4",
                              "--metrics", "psnr,ssim", "--json", str(tmp_path / "r.json")])  # fmt: skip
    assert ref.exit_code == 0, ref.output
    from superres.quality.metrics import psnr

    assert json.loads((tmp_path / "r.json").read_text())[0]["psnr"] == pytest.approx(psnr(blurred, hr, 4))

    gray = runner.invoke(app, ["score", str(hr_path), "--niqe-channel", "gray"])
    assert gray.exit_code == 0 and f"{niqe(hr, channel='gray'):.4f}" in gray.stdout

    failing = runner.invoke(app, ["score", str(tmp_path / "small.png"), str(hr_path)])
    assert failing.exit_code == 1 and "niqe" in failing.stdout  # the good image is still scored
    assert failing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'small.png'}: NIQE needs at least two 96×96 blocks, but the image is 50×50"
    ]
    for args, message in (
        (["--metrics", "psnr"], "psnr needs a reference image"),
        (["--ref", str(tmp_path / "small.png"), "--metrics", "psnr"], "but its reference"),
        (["--ref", str(hr_path), "--ref", str(hr_path)], "1 images but 2 references"),
    ):
        bad = runner.invoke(app, ["score", str(hr_path), *args])
        assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.output
