"""The bundled default model (superres-x4): it loads, is what its registry entry says, and is good."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from superres.cli import app
from superres.models.registry import DEFAULT_MODEL, get, resolve
from superres.models.weights import load_network
from superres.quality.evaluation import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bundled_model_is_detected_with_its_metadata() -> None:
    path = resolve(DEFAULT_MODEL, download=False)
    assert path.stat().st_size <= 20 * 2**20
    network, info = load_network(path)
    assert (info.arch, info.scale, info.layout) == (get(DEFAULT_MODEL).arch, 4, "superres")
    assert info.hparams["num_feat"] == 64 and info.hparams["num_conv"] == 16
    scores = json.loads(info.metadata["benchmarks"])
    assert scores["Set5"]["psnr"] >= 30.8 and scores["Set14"]["psnr"] >= 27.6 and scores["BSD100"]["psnr"] >= 26.9
    assert "superres_x4" in info.metadata["recipe"] and info.metadata["training_data"]


def test_bundled_model_beats_bicubic_on_set5_by_2_db(shared: Path) -> None:
    root = shared / "benchmarks"
    ours = evaluate(DEFAULT_MODEL, root, datasets=("Set5",), progress=False, device="cpu").results["Set5"]
    bicubic = evaluate("bicubic", root, datasets=("Set5",), progress=False).results["Set5"]
    assert ours.psnr - bicubic.psnr >= 2.0
    assert ours.ssim > bicubic.ssim


def test_readme_main_command_upscales_the_bundled_sample_offline(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "superres" / "assets" / "sample_lr.png"
    result = CliRunner().invoke(app, ["upscale", str(sample), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "sample_lr_x4.png")
    assert out.size == (256, 256) and out.mode == "RGB"
    # Not a blank or bicubic-flat image: it has the sample's detail.
    assert np.asarray(out).std() > 20
