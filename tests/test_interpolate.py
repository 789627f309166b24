"""Network interpolation (ESRGAN §3.4): α = 0 / 1 reproduce the inputs exactly; mismatches are refused."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from superres.archs import RRDBNet, SRResNet
from superres.errors import ConfigError, WeightsError
from superres.models.interpolation import interpolate, interpolate_state_dicts
from superres.models.weights import load_network, read_state_dict, save_network

SRRESNET = {"num_feat": 8, "num_block": 2, "scale": 4}


def _network(seed: int, **hparams) -> SRResNet:
    torch.manual_seed(seed)
    net = SRResNet(**{**SRRESNET, **hparams})
    with torch.no_grad():  # BN statistics that differ between the two models, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(seed * 100)
    return net


def test_state_dict_interpolation_ends_are_bit_exact():
    a = {"w": torch.tensor([-0.0, 1.5, float("nan"), 3.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([2.0, float("inf"), 1.0, -3.0]), "n": torch.tensor(7)}
    zero, one = interpolate_state_dicts(a, b, 0.0), interpolate_state_dicts(a, b, 1.0)
    # Compare bit patterns: -0.0 stays -0.0 and NaN stays NaN, which (1-α)a + αb would not give.
    assert torch.equal(zero["w"].view(torch.int32), a["w"].view(torch.int32))
    assert torch.equal(one["w"].view(torch.int32), b["w"].view(torch.int32))
    assert zero["n"].item() == 3 and one["n"].item() == 7
    assert zero["w"] is not a["w"]  # copies, not aliases


def test_state_dict_interpolation_blends_linearly():
    a, b = _network(1).state_dict(), _network(2).state_dict()
    mid = interpolate_state_dicts(a, b, 0.25)
    key = "conv_block1.conv_block.0.weight"
    assert torch.allclose(mid[key], 0.75 * a[key] + 0.25 * b[key], atol=1e-7)
    assert not torch.equal(mid[key], a[key]) and not torch.equal(mid[key], b[key])
    tracked = "residual_blocks.0.conv_block1.conv_block.1.num_batches_tracked"
    assert mid[tracked].item() == a[tracked].item()  # integers come from the nearer model


def test_state_dict_interpolation_refuses_mismatches():
    a = {"w": torch.zeros(2)}
    with pytest.raises(ConfigError):
        interpolate_state_dicts(a, a, 1.2)
    with pytest.raises(WeightsError, match="different parameters"):
        interpolate_state_dicts(a, {"v": torch.zeros(2)}, 0.5)
    with pytest.raises(WeightsError, match="shape"):
        interpolate_state_dicts(a, {"w": torch.zeros(3)}, 0.5)


@pytest.fixture()
def two_models(tmp_path):
    psnr = save_network(tmp_path / "psnr.safetensors", _network(1), "SRResNet", SRRESNET)
    gan = save_network(tmp_path / "gan.safetensors", _network(2), "SRResNet", SRRESNET)
    return psnr, gan


@pytest.mark.parametrize("alpha, source", [(0.0, "psnr"), (1.0, "gan")])
def test_file_interpolation_ends_reproduce_the_inputs(two_models, tmp_path, alpha, source):
    psnr, gan = two_models
    out = interpolate(psnr, gan, alpha, tmp_path / "out.safetensors")
    expected, _ = read_state_dict(psnr if source == "psnr" else gan)
    produced, metadata = read_state_dict(out)
    assert produced.keys() == expected.keys()
    assert all(torch.equal(produced[k], expected[k]) for k in expected)
    assert metadata["interpolation_alpha"] == repr(alpha)
    _, info = load_network(out)  # a normal model file: architecture and hyper-parameters declared
    assert info.arch == "SRResNet" and info.hparams["num_block"] == 2


def test_file_interpolation_refuses_other_architectures_and_sizes(two_models, tmp_path):
    psnr, _ = two_models
    torch.manual_seed(0)
    rrdb = save_network(
        tmp_path / "rrdb.safetensors",
        RRDBNet(num_feat=8, num_block=1, num_grow_ch=4),
        "RRDBNet",
        {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    )
    with pytest.raises(WeightsError, match="same architecture"):
        interpolate(psnr, rrdb, 0.5, tmp_path / "x.safetensors")
    deeper = save_network(
        tmp_path / "deep.safetensors", _network(3, num_block=3), "SRResNet", {**SRRESNET, "num_block": 3}
    )
    with pytest.raises(WeightsError, match="hyper-parameters"):
        interpolate(psnr, deeper, 0.5, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_interpolate_command(two_models, tmp_path):
    from superres.cli import app  # its errors are printed by the app's guard

    psnr, gan = two_models
    out = tmp_path / "blend.safetensors"
    runner = CliRunner()
    result = runner.invoke(app, ["interpolate", str(psnr), str(gan), "--alpha", "0.8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    blended, _ = read_state_dict(out)
    a, _ = read_state_dict(psnr)
    b, _ = read_state_dict(gan)
    key = "conv_block3.conv_block.0.weight"
    assert torch.allclose(blended[key], 0.2 * a[key] + 0.8 * b[key], atol=1e-7)
    again = runner.invoke(app, ["interpolate", str(psnr), str(gan), "--alpha", "0.8", "-o", str(out)])
    assert again.exit_code == 1 and "exists" in again.output  # never overwrites unless asked
    forced = runner.invoke(app, ["interpolate", str(psnr), str(gan), "-a", "0.5", "-o", str(out), "--overwrite"])
    assert forced.exit_code == 0, forced.output
