"""Recognise a network from its state dict alone, spandrel-style: weight loading as data, not branches.

Two small registries drive everything:

* ``LAYOUTS`` — foreign key layouts of a family we support, each with the keys that identify it and a
  pure function that renames its keys to ours: the two layouts of the original ESRGAN code
  (Wang et al., ECCV-W 2018, github.com/xinntao/ESRGAN) → the BasicSR names that Real-ESRGAN
  (Wang et al., ICCV-W 2021) releases use and :class:`~superres.archs.RRDBNet` has.
* ``FAMILIES`` — one entry per architecture: the keys every state dict of it has, and a function that
  reads its constructor arguments from key names and tensor shapes.

:func:`detect` converts a foreign layout if one matches, then walks ``FAMILIES``. Adding an
architecture is adding one ``Family`` entry; adding a layout is adding one ``Layout`` entry.

Hyper-parameters, whether a file's metadata declares them or :func:`detect` reads them from key names,
are bounded by the tensors that must hold their weights (:func:`check_hparams`) before any network is
built: a file cannot ask for a billion blocks or a negative width.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from superres.archs import RRDBNet, SRResNet, SRVGGNetCompact
from superres.errors import WeightsError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know about a loaded network; the CLI prints it, the engine uses it."""

    arch: str
    scale: int
    in_channels: int
    out_channels: int
    hparams: dict[str, Any]  # constructor kwargs of the arch class, defaults filled in
    num_params: int
    size_multiple: int  # input H and W must be multiples of this (pixel-unshuffle); the engine pads
    half_precision_ok: bool
    metadata: dict[str, str] = field(default_factory=dict)  # provenance etc. from our own files
    layout: str = "superres"  # key layout the weights came in, e.g. "ESRGAN (old)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Detected:
    """The result of recognising a state dict: which network, built how, from which key layout."""

    arch: str
    hparams: dict[str, Any]
    layout: str


# --------------------------------------------------------------------------------------------------
# Reading shapes and key names


def _indices(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern``'s one group over all keys (block indices)."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state_dict if (m := regex.match(key))})


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return tuple(state_dict[key].shape)


def _rekey(state_dict: StateDict, rename: Callable[[str], str], layout: str) -> StateDict:
    converted: StateDict = {}
    for key, tensor in state_dict.items():
        new_key = rename(key)
        if new_key in converted:
            raise WeightsError(f"{layout} layout: two tensors map to {new_key!r}; the checkpoint is not clean")
        converted[new_key] = tensor
    return converted


# --------------------------------------------------------------------------------------------------
# Foreign layouts of RRDBNet (the original ESRGAN code, github.com/xinntao/ESRGAN) → BasicSR names

_OLD_RDB_CONV = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TRUNK_CONV = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")
_OLD_TOP_CONV = re.compile(r"model\.(\d+)\.(weight|bias)$")


def _esrgan_old_top_level_names(state_dict: StateDict) -> dict[int, str]:
    """Map the indices of the old model's top-level ``nn.Sequential`` to BasicSR names.

    The old RRDB_ESRGAN_x4_old_arch is the flattened Sequential
    ``[conv_first, ShortcutBlock(sub=[RRDB × nb, trunk conv]), (Upsample, Conv, LeakyReLU) × n_up,
    HRconv, LeakyReLU, conv_last]``, so the upsampling convs sit at 3, 6, 9, …, HRconv at 3·n_up + 2
    and conv_last at 3·n_up + 4 (×4: 3, 6, 8, 10).
    """
    convs = [i for i in _indices(state_dict, r"model\.(\d+)\.weight$") if i >= 2]
    n_up = len(convs) - 2
    expected = [3 * (i + 1) for i in range(n_up)] + [3 * n_up + 2, 3 * n_up + 4]
    if n_up < 0 or convs != expected:
        raise WeightsError(
            f"ESRGAN (old) layout: top-level convs at model.{convs} do not follow the ESRGAN pattern "
            f"(upsampling convs at 3, 6, …, then HRconv and conv_last two apart)"
        )
    names = {0: "conv_first", 3 * n_up + 2: "conv_hr", 3 * n_up + 4: "conv_last"}
    names.update({3 * (i + 1): f"conv_up{i + 1}" for i in range(n_up)})
    return names


def convert_esrgan_old(state_dict: StateDict) -> StateDict:
    """ESRGAN old layout (``model.0``, ``model.1.sub.N.RDBk.convj.0``, …) → BasicSR RRDBNet names."""
    num_block = len(_indices(state_dict, r"model\.1\.sub\.(\d+)\.RDB"))
    top_level = _esrgan_old_top_level_names(state_dict)

    def rename(key: str) -> str:
        if m := _OLD_RDB_CONV.match(key):
            block, rdb, conv, kind = m.groups()
            return f"body.{block}.rdb{rdb}.conv{conv}.{kind}"
        if (m := _OLD_TRUNK_CONV.match(key)) and int(m.group(1)) == num_block:
            return f"conv_body.{m.group(2)}"
        if (m := _OLD_TOP_CONV.match(key)) and int(m.group(1)) in top_level:
            return f"{top_level[int(m.group(1))]}.{m.group(2)}"
        return key  # left as is: a strict load will name it

    return _rekey(state_dict, rename, "ESRGAN (old)")


_ESRGAN_NEW_RULES = (
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\."), r"body.\1.rdb\2."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv(\d)\."), r"conv_up\1."),
    (re.compile(r"^HRconv\."), "conv_hr."),
)


def convert_esrgan_new(state_dict: StateDict) -> StateDict:
    """ESRGAN new layout (``RRDB_trunk.N.RDBk.convj``, ``trunk_conv``, ``upconvN``, ``HRconv``) → BasicSR."""

    def rename(key: str) -> str:
        for pattern, replacement in _ESRGAN_NEW_RULES:
            key = pattern.sub(replacement, key)
        return key

    return _rekey(state_dict, rename, "ESRGAN (new)")


@dataclass(frozen=True)
class Layout:
    name: str
    signature: tuple[str, ...]  # keys that identify the layout
    convert: Callable[[StateDict], StateDict]

    def matches(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return all(key in state_dict for key in self.signature)


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="ESRGAN (old)",
        signature=("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
        convert=convert_esrgan_old,
    ),
    Layout(
        name="ESRGAN (new)",
        signature=("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"),
        convert=convert_esrgan_new,
    ),
)


# --------------------------------------------------------------------------------------------------
# Hyper-parameters from shapes, one reader per family


# (number of ×2 upsampling stages, pixel-unshuffle factor) → scale. Real-ESRGAN makes ×2 and ×1 by
# folding the input with pixel-unshuffle (by 2 or 4) in front of the ×4 body.
_RRDB_SCALES = {(2, 4): 1, (2, 2): 2, (2, 1): 4, (3, 1): 8}


def _rrdbnet_hparams(sd: StateDict) -> dict[str, Any]:
    num_feat, folded_in = _shape(sd, "conv_first.weight")[:2]
    num_out_ch = _shape(sd, "conv_last.weight")[0]
    num_up = len(_indices(sd, r"conv_up(\d+)\.weight$"))
    # conv_first sees in_ch · u² channels after pixel-unshuffle by u. Every released RRDBNet maps RGB to
    # RGB, so a ratio of 4 or 16 to the output channels is read as unshuffle 2 or 4 (in = out).
    ratio = folded_in // num_out_ch if folded_in % num_out_ch == 0 else 0
    unshuffle = {4: 2, 16: 4}.get(ratio, 1) if num_up == 2 else 1
    scale = _RRDB_SCALES.get((num_up, unshuffle))
    if scale is None:
        raise WeightsError(
            f"RRDBNet with {num_up} ×2 upsampling stage(s) is not supported: superres builds ×4/×8 with "
            f"2/3 stages and ×2/×1 as Real-ESRGAN does (pixel-unshuffle + 2 stages), not as old ESRGAN ×1/×2 models"
        )
    return {
        "num_in_ch": folded_in // unshuffle**2,
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": num_feat,
        "num_block": len(_indices(sd, r"body\.(\d+)\.")),
        "num_grow_ch": _shape(sd, "body.0.rdb1.conv1.weight")[0],
    }


def _srvgg_hparams(sd: StateDict) -> dict[str, Any]:
    num_feat, num_in_ch = _shape(sd, "body.0.weight")[:2]
    last = _indices(sd, r"body\.(\d+)\.")[-1]
    final = _shape(sd, f"body.{last}.weight")
    # body = [conv, act, (conv, act) × num_conv, conv]: the final conv sits at 2·num_conv + 2.
    if last % 2 or len(final) != 4:
        raise WeightsError(f"SRVGGNetCompact: body.{last} should be the final conv; the body is malformed")
    # The input, nearest-upsampled, is added to the output, so out channels = in channels; the final
    # conv makes in_ch · scale² channels for the pixel shuffle.
    scale = math.isqrt(final[0] // num_in_ch)
    if scale * scale * num_in_ch != final[0]:
        raise WeightsError(f"SRVGGNetCompact: the final conv's {final[0]} channels are not {num_in_ch} · scale²")
    # PReLU has one weight per feature at body.1; LeakyReLU and ReLU leave no tensor, so they cannot be
    # told apart — LeakyReLU is assumed (every official release uses PReLU; our own files record it).
    act_type = "prelu" if "body.1.weight" in sd else "lrelu"
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_in_ch,
        "num_feat": num_feat,
        "num_conv": (last - 2) // 2,
        "upscale": scale,
        "act_type": act_type,
    }


def _srresnet_hparams(sd: StateDict) -> dict[str, Any]:
    num_feat, num_in_ch = _shape(sd, "conv_block1.conv_block.0.weight")[:2]
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": _shape(sd, "conv_block3.conv_block.0.weight")[0],
        "num_feat": num_feat,
        "num_block": len(_indices(sd, r"residual_blocks\.(\d+)\.")),
        # one sub-pixel convolution block per ×2 (SRGAN Fig. 4)
        "scale": 2 ** len(_indices(sd, r"subpixel_convolutional_blocks\.(\d+)\.")),
        # conv_block2 is conv(-BN) without activation: a tensor at index 1 can only be BatchNorm
        "batch_norm": "conv_block2.conv_block.1.weight" in sd,
    }


@dataclass(frozen=True)
class Family:
    arch: str
    network: type[nn.Module]
    layout: str  # name of the key layout the family's own checkpoints use
    signature: tuple[str, ...]  # keys every state dict of this family has
    read_hparams: Callable[[StateDict], dict[str, Any]]
    scale_hparam: str  # the constructor argument that holds the scale
    scales: tuple[int, ...]  # the scales the network builds
    counts: tuple[str, ...]  # constructor arguments that count layers or blocks (see check_hparams)
    size_multiple: Callable[[dict[str, Any]], int] = lambda hparams: 1
    # Real-ESRGAN runs RRDBNet and SRVGGNetCompact in fp16 by default; where a tile still overflows, the
    # engine reruns it in fp32. A family whose activations overflow fp16 routinely would set this False.
    half_precision_ok: bool = True

    def matches(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return all(key in state_dict for key in self.signature)


FAMILIES: tuple[Family, ...] = (
    Family(
        arch="RRDBNet",
        network=RRDBNet,
        layout="BasicSR",
        signature=("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"),
        read_hparams=_rrdbnet_hparams,
        scale_hparam="scale",
        scales=(1, 2, 4, 8),
        counts=("num_block",),
        # pixel-unshuffle by 4 (×1) or 2 (×2) needs H and W divisible by it
        size_multiple=lambda hparams: {1: 4, 2: 2}.get(hparams["scale"], 1),
    ),
    Family(
        arch="SRVGGNetCompact",
        network=SRVGGNetCompact,
        layout="Real-ESRGAN",
        signature=("body.0.weight", "body.0.bias"),
        read_hparams=_srvgg_hparams,
        scale_hparam="upscale",
        scales=tuple(range(1, 17)),
        counts=("num_conv",),
    ),
    Family(
        arch="SRResNet",
        network=SRResNet,
        layout="superres",
        signature=(
            "conv_block1.conv_block.0.weight",
            "conv_block2.conv_block.0.weight",
            "subpixel_convolutional_blocks.0.conv.weight",
            "conv_block3.conv_block.0.weight",
        ),
        read_hparams=_srresnet_hparams,
        scale_hparam="scale",
        scales=(2, 4, 8, 16),
        counts=("num_block",),
    ),
)


# --------------------------------------------------------------------------------------------------
# Public API


def family(arch: str) -> Family:
    """The registry entry for ``arch``; an unknown name is a WeightsError listing the known ones."""
    for entry in FAMILIES:
        if entry.arch == arch:
            return entry
    known = ", ".join(entry.arch for entry in FAMILIES)
    raise WeightsError(f"unknown architecture {arch!r}; superres knows {known}")


def complete_hparams(arch: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``hparams`` with the constructor's defaults filled in; unknown keys are a WeightsError."""
    parameters = inspect.signature(family(arch).network).parameters
    unknown = sorted(set(hparams) - set(parameters))
    if unknown:
        raise WeightsError(f"{arch} has no hyper-parameter(s) {', '.join(unknown)}; it takes {', '.join(parameters)}")
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **hparams}


def check_hparams(arch: str, hparams: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> None:
    """A :class:`WeightsError` unless every hyper-parameter is of its constructor default's type and
    within what ``state_dict`` can hold — checked before anything is built or allocated.

    Building even on the meta device costs memory and time per layer, so an absurd ``num_block`` from a
    file's metadata, or a block index like ``body.999999999`` in its key names, would run without bound.
    The bounds come from the tensors, not from limits of our own: a count of layers or blocks
    (``Family.counts``) is at most the number of tensors, since each layer has weights of its own; any
    other integer (features, channels) is a width, at least 1 and at most the largest tensor dimension;
    the scale is one the architecture builds. Whether the weights then fit exactly is checked on load.
    """
    entry = family(arch)
    kwargs = complete_hparams(arch, hparams)
    parameters = inspect.signature(entry.network).parameters
    tensors = len(state_dict)
    widest = max((size for tensor in state_dict.values() for size in tensor.shape), default=0)
    for name, value in kwargs.items():
        default = parameters[name].default
        kind = bool if isinstance(default, bool) else type(default)
        if kind in (bool, int, str) and (type(value) is not kind):
            raise WeightsError(f"{arch}: {name} must be {kind.__name__} (like {default!r}), not {value!r:.40}")
        if kind is str and len(value) > 64:
            raise WeightsError(f"{arch}: {name} is {len(value)} characters long; expected a name like {default!r}")
        if kind is not int:
            continue
        if name == entry.scale_hparam:
            if value not in entry.scales:
                builds = ", ".join(map(str, entry.scales))
                raise WeightsError(f"{arch}: {name} {value} is not a scale it builds ({builds})")
        elif name in entry.counts:
            if not 0 <= value <= tensors:
                raise WeightsError(f"{arch}: {name}={value}, but the file holds {tensors} tensors (at most that many)")
        elif not 1 <= value <= widest:
            raise WeightsError(f"{arch}: {name}={value} is not a width the tensors have (1 to {widest})")


def build_network(arch: str, hparams: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised ``arch`` network; build it under ``torch.device("meta")`` to skip the init."""
    kwargs = complete_hparams(arch, hparams)
    try:
        return family(arch).network(**kwargs)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"cannot build {arch} with {kwargs}: {exc}") from None


def describe(
    arch: str,
    hparams: Mapping[str, Any],
    network: nn.Module,
    metadata: Mapping[str, str] | None = None,
    layout: str = "superres",
) -> ModelInfo:
    """The :class:`ModelInfo` of ``network`` (works for in-memory networks as well as loaded ones)."""
    entry = family(arch)
    kwargs = complete_hparams(arch, hparams)
    return ModelInfo(
        arch=arch,
        scale=int(kwargs[entry.scale_hparam]),
        in_channels=int(kwargs["num_in_ch"]),
        out_channels=int(kwargs["num_out_ch"]),
        hparams=kwargs,
        num_params=sum(p.numel() for p in network.parameters()),
        size_multiple=entry.size_multiple(kwargs),
        half_precision_ok=entry.half_precision_ok,
        metadata=dict(metadata or {}),
        layout=layout,
    )


def _unknown_layout_message(state_dict: Mapping[str, torch.Tensor]) -> str:
    expected = "; ".join(f"{entry.arch} ({', '.join(entry.signature)})" for entry in FAMILIES)
    foreign = "; ".join(f"{layout.name} ({', '.join(layout.signature)})" for layout in LAYOUTS)
    sample = ", ".join(list(state_dict)[:5])
    return (
        f"unrecognised weights layout: expected keys of {expected}; or the {foreign} layouts; "
        f"found {len(state_dict)} tensors, e.g. {sample}"
    )


def detect(state_dict: StateDict) -> tuple[Detected, StateDict]:
    """Recognise the network behind ``state_dict``; return it and the state dict in our key names."""
    layout = next((entry for entry in LAYOUTS if entry.matches(state_dict)), None)
    if layout is not None:
        state_dict = layout.convert(state_dict)
    entry = next((candidate for candidate in FAMILIES if candidate.matches(state_dict)), None)
    if entry is None:
        raise WeightsError(_unknown_layout_message(state_dict))
    try:
        hparams = entry.read_hparams(state_dict)
    except (KeyError, IndexError, ValueError) as exc:
        raise WeightsError(f"looks like {entry.arch} ({entry.layout} keys) but is malformed: {exc!r}") from None
    hparams = complete_hparams(entry.arch, hparams)
    return Detected(entry.arch, hparams, layout.name if layout else entry.layout), state_dict
