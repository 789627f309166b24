"""ONNX export: the file runs in onnxruntime, matches PyTorch at sizes it was not traced at, never clobbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from superres.archs import RRDBNet
from superres.errors import SuperresError
from superres.models import export as export_module
from superres.models.export import MAX_ABS_DIFF, export_onnx
from superres.models.weights import load_network, save_network

TINY_RRDB = {"num_feat": 16, "num_block": 2, "num_grow_ch": 8, "scale": 2}


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A small RRDBNet ×2 (pixel-unshuffle inside, so inputs must be even) with random weights."""
    torch.manual_seed(0)
    return save_network(tmp_path / "tiny.safetensors", RRDBNet(**TINY_RRDB).eval(), "RRDBNet", TINY_RRDB)


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def torch_output(weights: Path, x: torch.Tensor) -> torch.Tensor:
    network, _ = load_network(weights)
    with torch.inference_mode():
        return network(x)


def test_tiny_rrdbnet_matches_pytorch_at_two_new_sizes(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    report = export_onnx(tiny_weights, out)
    assert report.path == out and out.is_file()
    assert (report.arch, report.scale) == ("RRDBNet", 2)
    assert report.max_abs_diff <= MAX_ABS_DIFF

    onnx.checker.check_model(str(out))
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]

    for height, width in ((10, 26), (34, 6)):  # neither traced nor used by the export's own check
        x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height))
        got = run_onnx(out, x)
        assert got.shape == (1, 3, 2 * height, 2 * width)
        assert (got - torch_output(tiny_weights, x)).abs().max() <= MAX_ABS_DIFF


def test_realesr_animevideov3_runs_on_a_real_image(shared: Path, tmp_path: Path) -> None:
    weights = shared / "weights" / "realesr-animevideov3.pth"
    out = tmp_path / "anime.onnx"
    report = export_onnx(weights, out, opset=17)
    assert (report.arch, report.scale, report.opset) == ("SRVGGNetCompact", 4, 17)

    image = np.asarray(Image.open(shared / "benchmarks" / "Set5" / "LR_bicubic" / "X4" / "baby.png").convert("RGB"))
    for top, left, height, width in ((0, 0, 40, 56), (30, 20, 24, 32)):
        crop = image[top : top + height, left : left + width]
        x = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255
        got = run_onnx(out, x)
        assert got.shape == (1, 3, 4 * height, 4 * width)
        assert (got - torch_output(weights, x)).abs().max() <= MAX_ABS_DIFF


def test_refuses_to_overwrite_unless_asked(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"user data")
    with pytest.raises(SuperresError, match="already exists"):
        export_onnx(tiny_weights, out)
    assert out.read_bytes() == b"user data"

    export_onnx(tiny_weights, out, overwrite=True)
    onnx.checker.check_model(str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "tiny.safetensors"]


def test_a_graph_that_fails_the_check_is_not_written(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "MAX_ABS_DIFF", -1.0)  # no graph can pass
    with pytest.raises(SuperresError, match="does not reproduce PyTorch"):
        export_onnx(tiny_weights, tmp_path / "bad.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]


def test_cli_export_onnx(tiny_weights: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from superres.cli import app

    out = tmp_path / "cli.onnx"
    runner = CliRunner()
    result = runner.invoke(app, ["export-onnx", str(tiny_weights), "-o", str(out), "--opset", "17"])
    assert result.exit_code == 0, result.output
    assert "RRDBNet ×2" in result.output and "max |Δ|" in result.output
    assert onnx.load(str(out)).opset_import[0].version == 17

    again = runner.invoke(app, ["export-onnx", str(tiny_weights), "-o", str(out)])
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert "Traceback" not in again.output
