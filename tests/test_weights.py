"""Weights I/O: real third-party checkpoints, the ESRGAN layouts, our safetensors format, hostile files."""

from __future__ import annotations

import json
import os
import pickle
import re
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


# ---- what the messages say, and the edges of each check -----------------------------------------


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_cut_pickle_of_any_protocol_is_corrupt_not_foreign(tmp_path: Path, protocol: int):
    path = tmp_path / "cut.pth"
    path.write_bytes(b"\x80" + bytes([protocol]) + b"}")  # a pickle header, an empty dict, then nothing
    with pytest.raises(WeightsError, match=r"corrupt or truncated PyTorch checkpoint \(EOFError\)$"):
        read_state_dict(path)  # an exception without a message is named by its type


def test_corrupt_files_name_what_went_wrong_in_one_short_line(tmp_path: Path):
    saved = tmp_path / "full.pth"
    torch.save({"w": torch.zeros(10)}, saved)
    (tmp_path / "cut.pth").write_bytes(saved.read_bytes()[:100])
    with pytest.raises(WeightsError, match=r"corrupt or truncated PyTorch checkpoint \((.+)\)$") as excinfo:
        read_state_dict(tmp_path / "cut.pth")
    detail = str(excinfo.value).split("checkpoint (", 1)[1][:-1]
    assert detail.startswith("PytorchStreamReader failed reading zip archive") and len(detail) == 200  # cut at 200
    (tmp_path / "one.pth").write_bytes(b"\x80")  # one byte is not "empty"
    with pytest.raises(WeightsError, match=r"one\.pth: not a PyTorch checkpoint \(neither a zip archive nor a pickle\)"):
        read_state_dict(tmp_path / "one.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"empty\.pth: the file is empty \(0 bytes\)"):
        read_state_dict(tmp_path / "empty.pth")
    (tmp_path / "text.safetensors").write_bytes(b"not a header at all")
    with pytest.raises(WeightsError, match=r"corrupt or truncated safetensors file \((?!None\)).+\)"):
        read_state_dict(tmp_path / "text.safetensors")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"weights\.bin: unsupported weights format; expected \.safetensors, \.pth, \.pt, \.ckpt$"):
        read_state_dict(tmp_path / "weights.bin")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_refusals_quote_the_unpicklers_reason(tmp_path: Path):
    path = tmp_path / "framed.pth"
    path.write_bytes(pickle.dumps({"w": [1, 2]}, protocol=5))  # framed: refused before any global
    with pytest.raises(WeightsError, match=r"it holds more than plain weights \(Unsupported operand 149\)"):
        read_state_dict(path)


def test_contents_that_are_not_tensors_name_the_file_and_the_key(tmp_path: Path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "dict.pth")
    with pytest.raises(WeightsError, match=rf"^{tmp_path / 'dict.pth'}: not a dict of tensors \('epoch' holds a int\)$"):
        read_state_dict(tmp_path / "dict.pth")
    save_file({}, tmp_path / "none.safetensors")
    with pytest.raises(WeightsError, match=rf"^{tmp_path / 'none.safetensors'}: holds no tensors$"):
        read_state_dict(tmp_path / "none.safetensors")
    with pytest.raises(WeightsError, match="^checkpoint: holds no tensors$"):
        unwrap_checkpoint({"params": {}})


def test_weights_that_do_not_fit_are_listed_three_at_a_time(tmp_path: Path):
    full = _small_srresnet().state_dict()
    block = [key for key in full if key.startswith("residual_blocks.1.")]  # none of them identify SRResNet
    three = {k: v for k, v in full.items() if k not in block[:3]}
    torch.save(three, tmp_path / "three.pth")
    listed = re.escape(f"3 missing ({', '.join(block[:3])})")
    with pytest.raises(WeightsError, match=rf"three\.pth as SRResNet: the weights do not fit the network: {listed}$"):
        load_network(tmp_path / "three.pth")
    four = {k: v for k, v in full.items() if k not in block[:4]}
    four["extra.weight"] = torch.zeros(2)
    four[block[5]] = torch.zeros(1, 2)
    shape = f"{block[5]} [1, 2] ≠ {list(full[block[5]].shape)}"
    expected = f"4 missing ({', '.join(block[:3])}, …); 1 unexpected (extra.weight); 1 of the wrong shape ({shape})"
    torch.save(four, tmp_path / "four.pth")
    with pytest.raises(WeightsError, match=re.escape(f"the weights do not fit the network: {expected}") + "$"):
        load_network(tmp_path / "four.pth")
    with pytest.raises(WeightsError, match=r"^saving SRResNet: the weights do not fit the network: 15 unexpected \(residual_blocks.1."):
        save_network(tmp_path / "m.safetensors", _small_srresnet(), "SRResNet", {**SMALL, "num_block": 1})


def test_half_precision_weights_load_as_float32_and_integer_buffers_stay_integer(tmp_path: Path):
    net = _small_srresnet()
    net.residual_blocks[0].conv_block1.conv_block[1].num_batches_tracked.fill_(7)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, tmp_path / "h.pth")
    loaded, _ = load_network(tmp_path / "h.pth")
    for key, tensor in loaded.state_dict().items():
        original = net.state_dict()[key]
        assert tensor.dtype == original.dtype, key  # float32 parameters, int64 counters
        assert torch.equal(tensor, original.half().to(original.dtype) if original.is_floating_point() else original)


def test_buffers_no_state_dict_fills_are_an_error():
    """A network with a buffer that is not saved (persistent=False) would stay on the meta device."""
    from superres.models.weights import _load_strict

    with torch.device("meta"):
        network = torch.nn.Linear(2, 2)
        for name in ("a", "b", "c", "d"):
            network.register_buffer(name, torch.zeros(3), persistent=False)
    with pytest.raises(RuntimeError, match=r"^net: tensors not in the state dict stay uninitialised: \['a', 'b', 'c'\]$"):
        _load_strict(network, {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}, "net")


def test_our_metadata_read_and_checked(tmp_path: Path):
    net = _small_srresnet()
    state_dict = {k: v.contiguous() for k, v in net.state_dict().items()}
    hparams = json.dumps(SMALL)
    save_file(state_dict, tmp_path / "old.safetensors", metadata={"arch": "SRResNet", "hparams": hparams})
    assert load_network(tmp_path / "old.safetensors")[1].layout == "superres"  # no format_version: version 1
    save_file(state_dict, tmp_path / "arch_only.safetensors", metadata={"arch": "SRResNet"})
    _, info = load_network(tmp_path / "arch_only.safetensors")  # half a declaration: recognised by its keys
    assert (info.layout, info.hparams["num_block"], info.metadata) == ("superres", 2, {})
    save_file(state_dict, tmp_path / "bad.safetensors", metadata={"arch": "SRResNet", "hparams": "{not json"})
    with pytest.raises(WeightsError, match=rf"^{tmp_path / 'bad.safetensors'}: unreadable superres metadata \("):
        load_network(tmp_path / "bad.safetensors")
    save_file(state_dict, tmp_path / "list.safetensors", metadata={"arch": "SRResNet", "hparams": "[1, 2]"})
    with pytest.raises(WeightsError, match=r"list\.safetensors: metadata 'hparams' is not a JSON object$"):
        load_network(tmp_path / "list.safetensors")


def test_saving_writes_sorted_json_into_new_folders_and_only_safetensors(tmp_path: Path):
    path = save_network(tmp_path / "a" / "b" / "m.safetensors", _small_srresnet(), "SRResNet", SMALL, {"scores": {"b": 1, "a": 2}})
    with safe_open(path, framework="pt") as file:
        header = file.metadata()
    assert header["scores"] == '{"a": 2, "b": 1}'
    assert header["hparams"] == json.dumps(dict(sorted({**SMALL, "num_in_ch": 3, "num_out_ch": 3, "batch_norm": True}.items())))
    with pytest.raises(WeightsError, match=r"m\.pth: superres saves weights as \.safetensors; name the file accordingly$"):
        save_network(tmp_path / "m.pth", _small_srresnet(), "SRResNet", SMALL)


def test_a_failed_write_raises_its_own_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import superres.models.weights as weights

    def disk_full(tensors, path, metadata=None):
        raise OSError(28, "No space left on device")  # before the temporary file exists

    monkeypatch.setattr(weights, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        save_network(tmp_path / "m.safetensors", _small_srresnet(), "SRResNet", SMALL)
    assert list(tmp_path.iterdir()) == []


def test_what_the_unpickler_said_is_passed_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """torch's refusals name a global, or give a reason (cut at 120 characters), or neither; an unpickling
    error that is none of these is "not readable"."""
    from superres.models.weights import _refusal

    assert _refusal(pickle.UnpicklingError("Weights only load failed. WeightsUnpickler error: " + "y" * 200)) == (
        "it holds more than plain weights (" + "y" * 120 + ")"
    )
    assert _refusal(pickle.UnpicklingError("Weights only load failed.")) == "it holds more than plain weights (see torch.load)"
    assert _refusal(pickle.UnpicklingError("invalid load key, 'x'.")) is None
    path = tmp_path / "m.pth"
    torch.save({"w": torch.zeros(1)}, path)

    def unreadable(*args, **kwargs):
        raise pickle.UnpicklingError("invalid load key, 'x'.\nmore")

    monkeypatch.setattr(torch, "load", unreadable)
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(path))}: not a readable PyTorch checkpoint \(invalid load key, 'x'\.\)$"):
        read_state_dict(path)


def test_first_line_of_an_error():
    from superres.models.weights import _first_line

    assert _first_line(EOFError()) == "EOFError" and _first_line(ValueError("  \n")) == "ValueError"
    assert _first_line(ValueError("first\nsecond")) == "first"
    assert _first_line(ValueError("x" * 300)) == "x" * 200


def test_pickles_are_opened_weights_only_whatever_torchs_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """torch ≥ 2.6 defaults to weights_only=True; superres asks for it, so an older torch is as safe."""
    torch.save(_small_srresnet().state_dict(), tmp_path / "m.pth")
    calls = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or load(*args, **kwargs))
    load_network(tmp_path / "m.pth")
    assert calls == [{"weights_only": True, "map_location": "cpu"}]


def test_write_errors_from_safetensors_become_what_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """safetensors reports I/O errors in its own type: a full disk becomes the OSError it is (errno, path),
    anything else one line naming the file."""
    import superres.models.weights as weights
    from safetensors import SafetensorError

    def failing(message: str):
        def save_file(tensors, path, metadata=None):
            raise SafetensorError(message)

        return save_file

    target = tmp_path / "m.safetensors"
    monkeypatch.setattr(weights, "save_file", failing("Error while serializing: No space left on device (os error 28)"))
    with pytest.raises(OSError) as excinfo:
        save_network(target, _small_srresnet(), "SRResNet", SMALL)
    assert (excinfo.value.errno, excinfo.value.strerror, excinfo.value.filename) == (28, os.strerror(28), str(target))
    monkeypatch.setattr(weights, "save_file", failing("invalid metadata\nsecond line"))
    with pytest.raises(WeightsError, match=rf"^{re.escape(str(target))}: cannot write \(invalid metadata\)$"):
        save_network(target, _small_srresnet(), "SRResNet", SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_appears_while_saving_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import superres.models.weights as weights

    target = tmp_path / "m.safetensors"
    save = weights.save_file

    def someone_else_writes_first(tensors, path, metadata=None):
        target.write_bytes(b"theirs")
        save(tensors, path, metadata=metadata)

    monkeypatch.setattr(weights, "save_file", someone_else_writes_first)
    with pytest.raises(FileExistsError):
        save_network(target, _small_srresnet(), "SRResNet", SMALL)
    assert target.read_bytes() == b"theirs" and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_nan_weights_are_refused_on_load_and_on_save(tmp_path: Path):
    net = _small_srresnet()
    broken = {k: v.clone() for k, v in net.state_dict().items()}
    broken["conv_block3.conv_block.0.bias"][0] = float("nan")
    broken["conv_block1.conv_block.0.weight"][0, 0, 0, 0] = float("inf")
    torch.save(broken, tmp_path / "nan.pth")
    path = tmp_path / "nan.pth"
    with pytest.raises(WeightsError, match=re.escape(
        f"{path} as SRResNet: 2 tensor(s) hold NaN or inf (conv_block1.conv_block.0.weight, "
        "conv_block3.conv_block.0.bias); the weights are damaged"
    ) + "$"):  # fmt: skip
        load_network(path)
    net.load_state_dict(broken)
    target = tmp_path / "nan.safetensors"
    with pytest.raises(WeightsError, match=re.escape(f"{target}: not saved: SRResNet: 2 tensor(s) hold NaN or inf")):
        save_network(target, net, "SRResNet", SMALL)
    assert not target.exists()
