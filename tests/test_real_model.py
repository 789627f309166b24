"""The bundled real-world model (superres-x4-real): what its entry says, and better than the default on
degraded inputs and real JPEGs — measured here, not only read from its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superres.models.registry import get, resolve
from superres.models.weights import load_network
from superres.quality.evaluation import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "superres-x4-real"


@pytest.fixture(scope="module")
def real_model_path() -> Path:
    return resolve(NAME, download=False)


def test_real_model_is_the_default_network_with_its_recipe_and_scores(real_model_path: Path) -> None:
    network, info = load_network(real_model_path)
    assert (info.arch, info.scale) == (get(NAME).arch, 4)
    assert info.hparams["num_feat"] == 64 and info.hparams["num_conv"] == 16  # interpolates with superres-x4
    assert "superres_x4_real" in info.metadata["recipe"] and "Real-ESRGAN" in info.metadata["degradation"]
    real = json.loads(info.metadata["real_world_benchmarks"])
    assert "bicubic-noise4-jpeg45" in real["protocol"] and set(real) >= {"Set14", "BSD100"}


def test_real_model_beats_bicubic_and_the_default_on_degraded_set5(shared: Path) -> None:
    from superres.train.degrade.recipes import get_recipe

    recipe = get_recipe("bicubic-noise4-jpeg45")
    scores = {
        model: evaluate(model, shared / "benchmarks", datasets=("Set5",), progress=False, device="cpu",
                        degrade=recipe).results["Set5"].psnr  # fmt: skip
        for model in ("bicubic", "superres-x4", NAME)
    }
    assert scores[NAME] - scores["bicubic"] >= 0.4 and scores[NAME] - scores["superres-x4"] >= 0.5


def test_real_model_does_not_sharpen_a_jpegs_block_grid(shared: Path) -> None:
    import superres
    from superres.quality.blockiness import block_grid_ratio
    from superres.quality.imresize import imresize
    from superres.train.degrade.jpeg import jpeg_roundtrip

    # The photo (a real JPEG of quality ~92, nearly gridless) saved again at quality 30, as a
    # messaging app would: now its 8×8 grid shows, and superres-x4 sharpens it into a mesh.
    photo = np.asarray(Image.open(shared / "train" / "BSDS500_test" / "102062.jpg").convert("RGB"))
    crop = jpeg_roundtrip(np.ascontiguousarray(photo[120:248, 248:376]), 30)
    ratios = {"bicubic": block_grid_ratio(imresize(crop, 4.0), 4)}
    for model in ("superres-x4", NAME):
        ratios[model] = block_grid_ratio(superres.load_model(model, device="cpu").upscale(crop), 4)
    assert ratios["superres-x4"] > ratios["bicubic"] + 0.2  # measured: 1.87 vs 1.50
    assert ratios[NAME] < ratios["bicubic"]  # measured: 1.35
