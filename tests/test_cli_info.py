"""``superres info``: what a weights file holds, as text or JSON; a bad file is one line and exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from superres.cli import info as info_cli


@pytest.fixture
def app() -> typer.Typer:
    # A group of its own with just ``info`` (the callback keeps it a group, so the command is named).
    app = typer.Typer()
    app.callback()(lambda: None)
    info_cli.register(app)
    return app


def test_info_describes_realesrgan_x4plus(app: typer.Typer, shared: Path):
    result = CliRunner().invoke(app, ["info", str(shared / "weights/RealESRGAN_x4plus_fp16round.pth")])
    assert result.exit_code == 0, result.output
    assert "RRDBNet (BasicSR layout)" in result.stdout
    assert "×4" in result.stdout
    assert "16,697,987" in result.stdout
    assert "num_block=23" in result.stdout and "num_grow_ch=32" in result.stdout


def test_info_json_describes_animevideov3(app: typer.Typer, shared: Path):
    result = CliRunner().invoke(app, ["info", "--json", str(shared / "weights/realesr-animevideov3.pth")])
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert (described["arch"], described["scale"], described["num_params"]) == ("SRVGGNetCompact", 4, 621_424)
    assert described["hparams"]["num_conv"] == 16 and described["hparams"]["act_type"] == "prelu"
    assert described["file"].endswith("realesr-animevideov3.pth")


def test_info_prints_our_metadata(app: typer.Typer, tmp_path: Path):
    from superres.archs import SRVGGNetCompact
    from superres.models.weights import save_network

    path = save_network(
        tmp_path / "tiny.safetensors", SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2), "SRVGGNetCompact",
        {"num_feat": 4, "num_conv": 1, "upscale": 2}, {"provenance": "unit test"},
    )
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "SRVGGNetCompact (superres layout)" in result.stdout
    assert "provenance:" in result.stdout and "unit test" in result.stdout


@pytest.mark.parametrize("content", [b"hello, I am text\n", b""])
def test_info_on_a_bad_file_is_one_line_and_exit_1(app: typer.Typer, tmp_path: Path, content: bytes):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.pth" in lines[0]
    assert "Traceback" not in result.output
