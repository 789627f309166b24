"""Weights I/O: real third-party checkpoints, the ESRGAN layouts, our safetensors format, hostile files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from test_detect import to_esrgan_new, to_esrgan_old

from superres.archs import SRResNet, SRVGGNetCompact
from superres.errors import WeightsError
from superres.models.weights import load_network, read_state_dict, save_network, unwrap_checkpoint

X4PLUS = "weights/RealESRGAN_x4plus_fp16round.pth"
ANIME = "weights/realesr-animevideov3.pth"
SMALL = {"num_feat": 8, "num_block": 2, "scale": 2}  # hyper-parameters of _small_srresnet


@pytest.fixture(scope="session")
def x4plus(shared: Path):
    """The x4plus network and description, loaded once for the whole session (67 MB)."""
    return load_network(shared / X4PLUS)


@pytest.fixture(scope="session")
def x4plus_io(x4plus, shared: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The golden 16×16 input and the loaded x4plus's output for it, computed once (forwards are slow)."""
    image = Image.open(shared / "reference_outputs/realesrgan_x4plus/inputs/16x16.png").convert("RGB")
    lr = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        return lr, x4plus[0](lr)


def _small_srresnet() -> SRResNet:
    torch.manual_seed(0)
    return SRResNet(**SMALL)


# ---- real checkpoints ---------------------------------------------------------------------------


def test_x4plus_is_detected_and_loads_strictly(x4plus):
    network, info = x4plus
    assert (info.arch, info.layout, info.scale) == ("RRDBNet", "BasicSR", 4)
    assert info.hparams == {
        "num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32,
    }
    assert info.num_params == 16_697_987
    assert (info.in_channels, info.out_channels, info.size_multiple, info.metadata) == (3, 3, 1, {})
    assert not network.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" and p.requires_grad for p in network.parameters())


@pytest.mark.slow
def test_x4plus_reproduces_the_golden_output(x4plus_io, shared: Path):
    # Guards the load itself: wrong or unassigned weights could still be "identical" across layouts.
    sr = (x4plus_io[1][0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    golden = Image.open(shared / "reference_outputs/realesrgan_x4plus/outputs/16x16.png").convert("RGB")
    assert np.abs(sr - np.asarray(golden, dtype=np.int16)).max() <= 3


def test_animevideov3_is_srvgg_compact_and_loads_strictly(shared: Path):
    network, info = load_network(shared / ANIME)
    assert info.arch == "SRVGGNetCompact"
    assert info.hparams == {
        "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu",
    }
    assert (info.scale, info.num_params) == (4, 621_424)
    state_dict, metadata = read_state_dict(shared / ANIME)  # the file wraps it as {"params": ...}
    assert metadata == {}
    assert all(torch.equal(network.state_dict()[key], tensor) for key, tensor in state_dict.items())


@pytest.mark.parametrize(("layout", "rekey"), [
    ("ESRGAN (old)", lambda sd: to_esrgan_old(sd, num_block=23, num_up=2)),
    ("ESRGAN (new)", to_esrgan_new),
])
@pytest.mark.slow
def test_x4plus_in_esrgan_layouts_gives_identical_output(x4plus, x4plus_io, tmp_path: Path, layout, rekey):
    path = tmp_path / "esrgan.pth"
    torch.save(rekey(x4plus[0].state_dict()), path)
    network, info = load_network(path)
    assert (info.layout, info.arch, info.scale, info.num_params) == (layout, "RRDBNet", 4, 16_697_987)
    lr, reference = x4plus_io
    with torch.inference_mode():
        assert torch.equal(network(lr), reference)


# ---- checkpoint wrappers ------------------------------------------------------------------------


def test_params_ema_is_preferred_over_params_and_wrappers_unwrap():
    ema, raw = {"w": torch.ones(1)}, {"w": torch.zeros(1)}
    assert unwrap_checkpoint({"params": raw, "params_ema": ema}) is ema
    assert unwrap_checkpoint({"state_dict": ema, "epoch": 3}) is ema
    assert unwrap_checkpoint({"model": ema}) is ema


def test_ddp_module_prefix_is_stripped(tmp_path: Path):
    net = _small_srresnet()
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    loaded, info = load_network(path)
    assert info.arch == "SRResNet"
    assert all(torch.equal(loaded.state_dict()[key], tensor) for key, tensor in net.state_dict().items())


def test_esrgan_old_model_prefix_is_not_mistaken_for_a_wrapper():
    state_dict = {"model.0.weight": torch.zeros(1)}
    assert unwrap_checkpoint(state_dict) is state_dict


# ---- our format ---------------------------------------------------------------------------------


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path: Path):
    net = _small_srresnet()
    net.residual_blocks[0].conv_block1.conv_block[1].running_mean.uniform_()  # non-trivial BN statistics
    metadata = {"provenance": "test run 7", "training_data": "BSDS500", "scores": {"Set5": 30.1}}
    path = save_network(tmp_path / "m.safetensors", net, "SRResNet", SMALL, metadata)
    loaded, info = load_network(path)
    assert (info.arch, info.layout, info.scale) == ("SRResNet", "superres", 2)
    assert info.metadata == {"provenance": "test run 7", "training_data": "BSDS500", "scores": '{"Set5": 30.1}'}
    assert loaded.state_dict().keys() == net.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[key], tensor) for key, tensor in net.state_dict().items())
    with safe_open(path, framework="pt") as file:
        header = file.metadata()
    assert header["arch"] == "SRResNet" and header["scale"] == "2" and header["format_version"] == "1"
    assert all(isinstance(value, str) for value in header.values())
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, unlike safetensors' own 0600


def test_declared_hyper_parameters_are_trusted_where_shapes_are_silent(tmp_path: Path):
    # ReLU and LeakyReLU leave no tensor; only the metadata can say which one the model was trained with.
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, act_type="relu")
    hparams = {"num_feat": 8, "num_conv": 2, "upscale": 2, "act_type": "relu"}
    path = save_network(tmp_path / "relu.safetensors", net, "SRVGGNetCompact", hparams)
    loaded, info = load_network(path)
    assert info.hparams["act_type"] == "relu"
    x = torch.randn(1, 3, 8, 8)  # negative inputs: ReLU and LeakyReLU differ
    with torch.inference_mode():
        assert torch.equal(loaded(x), net.eval()(x))


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path):
    net = _small_srresnet()
    path = save_network(tmp_path / "m.safetensors", net, "SRResNet", SMALL)
    before = path.read_bytes()
    with pytest.raises(WeightsError, match="already exists"):
        save_network(path, net, "SRResNet", SMALL, {"run": "2"})
    assert path.read_bytes() == before
    save_network(path, net, "SRResNet", SMALL, {"run": "2"}, overwrite=True)
    assert load_network(path)[1].metadata == {"run": "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary file left


def test_save_checks_hparams_against_the_module(tmp_path: Path):
    with pytest.raises(WeightsError, match="do not fit"):
        save_network(tmp_path / "m.safetensors", _small_srresnet(), "SRResNet", {**SMALL, "num_block": 3})
    with pytest.raises(ValueError, match="reserved"):
        save_network(tmp_path / "m.safetensors", _small_srresnet(), "SRResNet", SMALL, {"arch": "x"})
    assert not any(tmp_path.iterdir())


def test_newer_format_version_is_refused(tmp_path: Path):
    path = save_network(tmp_path / "m.safetensors", _small_srresnet(), "SRResNet", SMALL)
    state_dict, metadata = read_state_dict(path)
    save_file(state_dict, tmp_path / "future.safetensors", metadata={**metadata, "format_version": "99"})
    with pytest.raises(WeightsError, match="newer superres"):
        load_network(tmp_path / "future.safetensors")


def test_weights_that_do_not_fit_name_the_keys(tmp_path: Path):
    state_dict = _small_srresnet().state_dict()
    del state_dict["conv_block3.conv_block.0.bias"]
    torch.save(state_dict, tmp_path / "m.pth")
    with pytest.raises(WeightsError, match=r"1 missing \(conv_block3\.conv_block\.0\.bias\)"):
        load_network(tmp_path / "m.pth")


# ---- hostile and broken files -------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(("writer", "reason"), [
    ("torch.save", r"would run code \((posix|nt)\.system\)"),
    ("pickle protocol 2", r"would run code \((posix|nt)\.system\)"),
    ("pickle protocol 5", "holds more than plain weights"),  # framed pickles are refused before any global
])
def test_pickle_that_calls_a_function_is_refused_without_running_it(tmp_path: Path, writer: str, reason: str):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"params": {"conv.weight": _RunsCode(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    with pytest.raises(WeightsError, match=f"refused — .*{reason}"):
        load_network(path)
    assert not marker.exists()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.pth", b"", "empty"),
    ("empty.safetensors", b"", "empty"),
    ("text.pth", b"this is not a checkpoint\n", "not a PyTorch checkpoint"),
    ("text.safetensors", b"this is not a checkpoint\n", "corrupt or truncated safetensors"),
    ("weights.onnx", b"\x08\x07", "unsupported weights format"),
])
def test_broken_files_are_one_line_weights_errors(tmp_path: Path, name: str, content: bytes, message: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as excinfo:
        load_network(path)
    assert "\n" not in str(excinfo.value)


def test_truncated_files_are_weights_errors(tmp_path: Path, shared: Path):
    (tmp_path / "cut.pth").write_bytes(_truncated((shared / ANIME).read_bytes()))
    save_network(tmp_path / "full.safetensors", _small_srresnet(), "SRResNet", SMALL)
    (tmp_path / "cut.safetensors").write_bytes(_truncated((tmp_path / "full.safetensors").read_bytes()))
    for name in ("cut.pth", "cut.safetensors"):
        with pytest.raises(WeightsError, match="corrupt or truncated"):
            load_network(tmp_path / name)


def test_missing_file_and_non_tensor_contents(tmp_path: Path):
    with pytest.raises(WeightsError, match="no such file"):
        read_state_dict(tmp_path / "absent.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(WeightsError, match="holds a Tensor, not a dict"):
        read_state_dict(tmp_path / "tensor.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "dict.pth")
    with pytest.raises(WeightsError, match="not a dict of tensors"):
        read_state_dict(tmp_path / "dict.pth")
