"""Architecture detection and layout conversion on small in-memory networks (no files, no shared data)."""

from __future__ import annotations

import re

import pytest
import torch

from superres.archs import RRDBNet, SRResNet, SRVGGNetCompact
from superres.errors import WeightsError
from superres.models.detect import (
    FAMILIES,
    build_network,
    check_hparams,
    complete_hparams,
    convert_esrgan_new,
    convert_esrgan_old,
    describe,
    detect,
)


def _small_rrdbnet(scale: int) -> RRDBNet:
    return RRDBNet(scale=scale, num_feat=8, num_block=2, num_grow_ch=4)


# ---- independent re-keying into the original ESRGAN layouts (github.com/xinntao/ESRGAN) ----------


def to_esrgan_old(state_dict: dict[str, torch.Tensor], num_block: int, num_up: int) -> dict[str, torch.Tensor]:
    """BasicSR names → the old Sequential: model.0, model.1.sub.N.RDBk.convj.0, upconvs at 3, 6, …"""
    top = {"conv_first": 0, "conv_hr": 3 * num_up + 2, "conv_last": 3 * num_up + 4}
    top.update({f"conv_up{i + 1}": 3 * (i + 1) for i in range(num_up)})
    out = {}
    for key, tensor in state_dict.items():
        module, kind = key.rsplit(".", 1)
        if m := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)", module):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{kind}"] = tensor
        elif module == "conv_body":
            out[f"model.1.sub.{num_block}.{kind}"] = tensor
        else:
            out[f"model.{top[module]}.{kind}"] = tensor
    return out


def to_esrgan_new(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BasicSR names → RRDB_trunk.N.RDBk.convj, trunk_conv, upconvN, HRconv."""
    out = {}
    for key, tensor in state_dict.items():
        key = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", key)
        key = re.sub(r"^conv_up(\d)\.", r"upconv\1.", key)
        out[key.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.")] = tensor
    return out


# ---- detection round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_rrdbnet_every_scale_round_trips(scale: int):
    net = _small_rrdbnet(scale)
    detected, converted = detect(net.state_dict())
    assert detected.arch == "RRDBNet"
    assert detected.layout == "BasicSR"
    assert detected.hparams == {
        "num_in_ch": 3, "num_out_ch": 3, "scale": scale, "num_feat": 8, "num_block": 2, "num_grow_ch": 4,
    }
    rebuilt = build_network(detected.arch, detected.hparams)
    rebuilt.load_state_dict(converted, strict=True)
    info = describe(detected.arch, detected.hparams, rebuilt)
    assert info.scale == scale
    assert info.size_multiple == {1: 4, 2: 2}.get(scale, 1)
    assert info.num_params == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_srresnet_round_trips(scale: int, batch_norm: bool):
    net = SRResNet(num_feat=8, num_block=3, scale=scale, batch_norm=batch_norm)
    detected, converted = detect(net.state_dict())
    assert detected.arch == "SRResNet"
    assert detected.hparams == {
        "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 3, "scale": scale, "batch_norm": batch_norm,
    }
    build_network(detected.arch, detected.hparams).load_state_dict(converted, strict=True)


@pytest.mark.parametrize(("upscale", "act_type"), [(2, "prelu"), (4, "prelu"), (3, "lrelu")])
def test_srvgg_round_trips(upscale: int, act_type: str):
    net = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=upscale, act_type=act_type)
    detected, converted = detect(net.state_dict())
    assert detected.arch == "SRVGGNetCompact"
    assert detected.hparams == {
        "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 3, "upscale": upscale, "act_type": act_type,
    }
    build_network(detected.arch, detected.hparams).load_state_dict(converted, strict=True)


def test_grayscale_rrdbnet_x2_reads_channels_through_the_unshuffle():
    net = RRDBNet(num_in_ch=1, num_out_ch=1, scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    detected, _ = detect(net.state_dict())
    assert (detected.hparams["num_in_ch"], detected.hparams["scale"]) == (1, 2)


# ---- ESRGAN layouts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "num_up"), [(4, 2), (8, 3)])
def test_esrgan_old_layout_converts_back_exactly(scale: int, num_up: int):
    original = _small_rrdbnet(scale).state_dict()
    old = to_esrgan_old(original, num_block=2, num_up=num_up)
    assert "model.1.sub.0.RDB1.conv1.0.weight" in old and "model.1.sub.2.weight" in old
    converted = convert_esrgan_old(old)
    assert converted.keys() == original.keys()
    assert all(converted[key] is original[key] for key in original)
    detected, _ = detect(old)
    assert (detected.layout, detected.hparams["scale"]) == ("ESRGAN (old)", scale)


def test_esrgan_old_x4_indices_are_the_published_ones():
    keys = set(to_esrgan_old(_small_rrdbnet(4).state_dict(), num_block=2, num_up=2))
    assert {f"model.{i}.weight" for i in (0, 3, 6, 8, 10)} <= keys


def test_esrgan_new_layout_converts_back_exactly():
    original = _small_rrdbnet(4).state_dict()
    new = to_esrgan_new(original)
    assert {"RRDB_trunk.1.RDB3.conv5.weight", "trunk_conv.weight", "upconv2.bias", "HRconv.weight"} <= set(new)
    converted = convert_esrgan_new(new)
    assert converted.keys() == original.keys()
    assert all(converted[key] is original[key] for key in original)
    assert detect(new)[0].layout == "ESRGAN (new)"


def test_esrgan_old_x2_single_stage_is_refused_with_a_reason():
    # Old-ESRGAN ×2 has one nearest+conv stage and no pixel-unshuffle; superres builds ×2 the
    # Real-ESRGAN way, so such a model cannot be represented and must not load half-right.
    old = to_esrgan_old(_small_rrdbnet(4).state_dict(), num_block=2, num_up=2)
    del old["model.6.weight"], old["model.6.bias"]
    old = {re.sub(r"^model\.(8|10)\.", lambda m: f"model.{int(m[1]) - 3}.", k): v for k, v in old.items()}
    with pytest.raises(WeightsError, match="1 ×2 upsampling stage"):
        detect(old)


def test_esrgan_old_with_a_foreign_index_pattern_is_refused():
    old = to_esrgan_old(_small_rrdbnet(4).state_dict(), num_block=2, num_up=2)
    old["model.9.weight"] = old.pop("model.10.weight")
    with pytest.raises(WeightsError, match="do not follow the ESRGAN pattern"):
        convert_esrgan_old(old)


# ---- errors -------------------------------------------------------------------------------------


def test_unknown_layout_names_the_expected_families_and_what_was_found():
    state_dict = {f"encoder.layer{i}.weight": torch.zeros(2, 2) for i in range(7)}
    with pytest.raises(WeightsError) as excinfo:
        detect(state_dict)
    message = str(excinfo.value)
    assert "\n" not in message
    for entry in FAMILIES:
        assert entry.arch in message and entry.signature[0] in message
    assert message == (
        "unrecognised weights layout: expected keys of "
        "RRDBNet (conv_first.weight, body.0.rdb1.conv1.weight, conv_body.weight, conv_last.weight); "
        "SRVGGNetCompact (body.0.weight, body.0.bias); "
        "SRResNet (conv_block1.conv_block.0.weight, conv_block2.conv_block.0.weight, "
        "subpixel_convolutional_blocks.0.conv.weight, conv_block3.conv_block.0.weight); "
        "or the ESRGAN (old) (model.0.weight, model.1.sub.0.RDB1.conv1.0.weight); "
        "ESRGAN (new) (conv_first.weight, RRDB_trunk.0.RDB1.conv1.weight, trunk_conv.weight) layouts; "
        "found 7 tensors, e.g. encoder.layer0.weight, encoder.layer1.weight, encoder.layer2.weight, "
        "encoder.layer3.weight, encoder.layer4.weight"
    )


def test_esrgan_layouts_that_would_rename_two_tensors_to_one_are_refused():
    new = to_esrgan_new(_small_rrdbnet(4).state_dict())
    new["conv_body.weight"] = new["trunk_conv.weight"]  # both names for the trunk conv
    with pytest.raises(WeightsError, match="^ESRGAN \\(new\\) layout: two tensors map to 'conv_body.weight'; the checkpoint is not clean$"):
        detect(new)
    old = to_esrgan_old(_small_rrdbnet(4).state_dict(), num_block=2, num_up=2)
    old["conv_first.weight"] = old["model.0.weight"]
    with pytest.raises(WeightsError, match="^ESRGAN \\(old\\) layout: two tensors map to 'conv_first.weight'"):
        convert_esrgan_old(old)


def test_esrgan_old_edge_cases():
    """A conv at index 2 breaks the pattern; a ×1 model without upsampling follows it but is not supported;
    a parameter at an index the pattern has no name for is left for the strict load to report."""
    old = to_esrgan_old(_small_rrdbnet(4).state_dict(), num_block=2, num_up=2)
    with pytest.raises(WeightsError, match="do not follow the ESRGAN pattern"):
        convert_esrgan_old({**old, "model.2.weight": torch.zeros(1)})
    no_upsampling = {k: v for k, v in old.items() if not k.startswith(("model.3.", "model.6.", "model.8.", "model.10."))}
    no_upsampling.update({"model.2.weight": old["model.8.weight"], "model.2.bias": old["model.8.bias"]})
    no_upsampling.update({"model.4.weight": old["model.10.weight"], "model.4.bias": old["model.10.bias"]})
    with pytest.raises(WeightsError, match="RRDBNet with 0 ×2 upsampling stage\\(s\\) is not supported"):
        detect(no_upsampling)
    converted = convert_esrgan_old({**old, "model.7.bias": torch.zeros(1)})
    assert "model.7.bias" in converted and "conv_hr.bias" in converted


def test_rrdbnet_with_more_input_than_output_channels_is_not_unshuffled():
    """Only 4 or 16 input channels per output channel, in front of two ×2 stages, mean pixel-unshuffle."""
    for num_in_ch, scale in ((13, 4), (12, 8), (5, 4)):
        net = RRDBNet(num_in_ch=num_in_ch, num_out_ch=3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
        detected, _ = detect(net.state_dict())
        assert (detected.hparams["num_in_ch"], detected.hparams["scale"]) == (num_in_ch, scale)


def test_srvgg_body_that_does_not_end_in_the_final_conv_is_malformed():
    state_dict = SRVGGNetCompact(num_feat=8, num_conv=1).state_dict()  # body.0 … body.4, the final conv at 4
    with pytest.raises(WeightsError, match="^SRVGGNetCompact: body.5 should be the final conv; the body is malformed$"):
        detect({**state_dict, "body.5.weight": torch.zeros(48, 8, 3, 3)})
    with pytest.raises(WeightsError, match="^SRVGGNetCompact: the final conv's 50 channels are not 3 · scale²$"):
        detect({**state_dict, "body.4.weight": torch.zeros(50, 8, 3, 3)})


def test_describe_and_to_dict():
    net = SRVGGNetCompact(num_feat=8, num_conv=1)
    info = describe("SRVGGNetCompact", {"num_feat": 8, "num_conv": 1}, net)
    assert (info.layout, info.half_precision_ok, info.metadata, info.size_multiple) == ("superres", True, {}, 1)
    as_dict = info.to_dict()
    assert as_dict["arch"] == "SRVGGNetCompact" and as_dict["hparams"]["num_conv"] == 1
    assert as_dict["num_params"] == sum(p.numel() for p in net.parameters()) and as_dict["layout"] == "superres"


def test_hyper_parameters_are_bounded_by_the_tensors_before_anything_is_built():
    """check_hparams: types as the constructor's defaults, names of at most 64 characters, a scale the family
    builds, layer counts from 0 to the number of tensors, widths from 1 to the widest tensor dimension."""
    state_dict = {"a": torch.zeros(64, 3, 3, 3), "b": torch.zeros(64)}  # 2 tensors, widest 64
    check_hparams("RRDBNet", {"num_block": 0, "num_feat": 1, "num_grow_ch": 64, "scale": 8}, state_dict)
    check_hparams("RRDBNet", {"num_block": 2}, state_dict)
    check_hparams("SRVGGNetCompact", {"num_conv": 1, "act_type": "x" * 64}, state_dict)
    refused = [
        ("RRDBNet", {"num_block": "3"}, "RRDBNet: num_block must be int (like 23), not '3'"),
        ("SRResNet", {"num_block": 1, "batch_norm": 1}, "SRResNet: batch_norm must be bool (like True), not 1"),
        ("SRVGGNetCompact", {"num_conv": 1, "act_type": "x" * 65}, "SRVGGNetCompact: act_type is 65 characters long; expected a name like 'prelu'"),
        ("RRDBNet", {"scale": 3}, "RRDBNet: scale 3 is not a scale it builds (1, 2, 4, 8)"),
        ("RRDBNet", {"num_block": 3}, "RRDBNet: num_block=3, but the file holds 2 tensors (at most that many)"),
        ("RRDBNet", {"num_block": -1}, "RRDBNet: num_block=-1, but the file holds 2 tensors (at most that many)"),
        ("RRDBNet", {"num_feat": 65}, "RRDBNet: num_feat=65 is not a width the tensors have (1 to 64)"),
        ("RRDBNet", {"num_feat": 0}, "RRDBNet: num_feat=0 is not a width the tensors have (1 to 64)"),
    ]  # fmt: skip
    for arch, hparams, message in refused:
        with pytest.raises(WeightsError, match=f"^{re.escape(message)}$"):
            check_hparams(arch, hparams, state_dict)
    with pytest.raises(WeightsError, match=re.escape("SRVGGNetCompact: num_in_ch=1 is not a width the tensors have (1 to 0)")):
        check_hparams("SRVGGNetCompact", {"num_in_ch": 1, "num_conv": 0}, {})  # no tensors: nothing is wide enough


def test_malformed_family_keys_are_a_weights_error():
    state_dict = SRVGGNetCompact(num_feat=8, num_conv=1).state_dict()
    state_dict["body.0.weight"] = torch.zeros(8)  # a conv weight must be 4-D
    with pytest.raises(WeightsError, match="SRVGGNetCompact"):
        detect(state_dict)


def test_build_network_rejects_unknown_arch_and_hyper_parameters():
    with pytest.raises(WeightsError, match="RRDBNet, SRVGGNetCompact, SRResNet"):
        build_network("EDSR", {})
    with pytest.raises(WeightsError, match="^RRDBNet has no hyper-parameter\\(s\\) num_blocks, width; it takes num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch$"):
        build_network("RRDBNet", {"num_blocks": 3, "width": 2})
    with pytest.raises(WeightsError, match="scale"):
        build_network("RRDBNet", {"scale": 3})


def test_complete_hparams_fills_the_constructor_defaults():
    assert complete_hparams("SRResNet", {"scale": 2}) == {
        "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16, "scale": 2, "batch_norm": True,
    }
