"""``--strength α``: superres-x4 blended with its bundled GAN partner, once, at load time (ESRGAN §3.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import superres
from superres.cli import app
from superres.errors import ConfigError
from superres.models import registry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 24×32 crop of the bundled sample's LR."""
    sample = Path(superres.__file__).parent / "assets" / "sample_lr.png"
    return np.asarray(Image.open(sample).convert("RGB"))[:24, :32]


def test_superres_x4_names_its_bundled_partner() -> None:
    assert registry.gan_partner("superres-x4") == "superres-x4-gan"
    assert registry.status(registry.get("superres-x4-gan")) == "bundled"


@pytest.mark.parametrize(("strength", "same_as"), [(0.0, "superres-x4"), (1.0, "superres-x4-gan")])
def test_the_ends_reproduce_the_two_models_exactly(photo: np.ndarray, strength: float, same_as: str) -> None:
    blended = superres.load_model("superres-x4", device="cpu", precision="fp32", strength=strength)
    alone = superres.load_model(same_as, device="cpu", precision="fp32")
    np.testing.assert_array_equal(blended.upscale(photo), alone.upscale(photo))


def test_half_strength_is_the_mean_of_the_weights(photo: np.ndarray) -> None:
    half = superres.load_model("superres-x4", device="cpu", precision="fp32", strength=0.5)
    psnr, gan = (superres.load_model(n, device="cpu", precision="fp32") for n in ("superres-x4", "superres-x4-gan"))
    state, a, b = (m._module.state_dict() for m in (half, psnr, gan))
    for key, value in state.items():
        torch.testing.assert_close(value, (a[key] + b[key]) / 2)
    out = half.upscale(photo).astype(int)
    assert not np.array_equal(out, psnr.upscale(photo)) and not np.array_equal(out, gan.upscale(photo))
    assert half.info.metadata["interpolation_alpha"] == "0.5"


def test_refused_for_a_model_without_a_partner(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="superres-x4-gan has no GAN partner"):
        superres.load_model("superres-x4-gan", strength=0.5)
    with pytest.raises(ConfigError, match="names its GAN partner.*models with one: superres-x4"):
        superres.load_model(str(registry.local_path(registry.get("superres-x4"))), strength=0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        superres.load_model("superres-x4", strength=1.5)


def test_cli_strength_works_offline(photo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERRES_OFFLINE", "1")
    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path / "empty-cache"))
    source = tmp_path / "photo.png"
    Image.fromarray(photo).save(source)
    runner = CliRunner()
    result = runner.invoke(app, ["upscale", str(source), "-o", str(tmp_path / "half.png"), "--strength", "0.5"])
    assert result.exit_code == 0, result.output
    expected = superres.load_model("superres-x4", device="cpu", strength=0.5).upscale(photo)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "half.png")), expected)

    refused = runner.invoke(
        app, ["upscale", str(source), "-o", str(tmp_path / "x.png"), "-m", "superres-x4-gan", "--strength", "0.5"]
    )
    assert refused.exit_code == 1 and not (tmp_path / "x.png").exists()
    assert refused.stderr.strip().splitlines() == [
        f"error: superres-x4-gan has no GAN partner to blend with, so --strength does not apply ({_hint()})"
    ]


def _hint() -> str:
    return (
        "models with one: superres-x4, superres-x4-real, RRDB_PSNR_x4; any two files of one architecture blend with "
        "`superres interpolate`"
    )
