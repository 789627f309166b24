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
from test_readme_claims import DEFAULT_MODEL_ROW, readme_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bundled_model_is_detected_with_its_metadata() -> None:
    path = resolve(DEFAULT_MODEL, download=False)
    assert path.stat().st_size <= 20 * 2**20
    network, info = load_network(path)
    assert (info.arch, info.scale, info.layout) == (get(DEFAULT_MODEL).arch, 4, "superres")
    assert info.hparams["num_feat"] == 64 and info.hparams["num_conv"] == 16
    scores = json.loads(info.metadata["benchmarks"])
    for name, (psnr, ssim) in readme_scores(DEFAULT_MODEL_ROW).items():  # what the file says is what README says
        assert scores[name]["psnr"] == pytest.approx(psnr, abs=0.005) and scores[name]["ssim"] == ssim, name
    assert "superres_x4" in info.metadata["recipe"] and info.metadata["training_data"]


def test_readme_main_command_upscales_the_bundled_sample_offline(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "superres" / "assets" / "sample_lr.png"
    result = CliRunner().invoke(app, ["upscale", str(sample), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "sample_lr_x4.png")
    assert out.size == (256, 256) and out.mode == "RGB"
    # Not a blank or bicubic-flat image: it has the sample's detail.
    assert np.asarray(out).std() > 20
