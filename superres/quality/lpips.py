"""LPIPS, the Learned Perceptual Image Patch Similarity (Zhang et al., "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", CVPR 2018), version 0.1 as the authors release it. Lower is more similar.

Eq. 1: features ŷˡ of an ImageNet network at five layers, each unit-normalised along channels, squared
differences weighted per channel by a learned 1×1 convolution wˡ (non-negative), averaged over space
and summed over layers::

    d(x, x₀) = Σ_l 1/(H_l W_l) Σ_{h,w} Σ_c w_c^l (ŷ^l_{hwc} − ŷ^l_{0hwc})²

(the paper writes ‖wˡ ⊙ (ŷˡ − ŷˡ₀)‖²; the released code, whose weights these are, applies wˡ to the
squared differences, as here). Images enter in [−1, 1], then shifted and scaled per channel by the
release's ``ScalingLayer``.

Weights: the backbone is torchvision's ImageNet AlexNet or VGG16 (``superres.archs.backbones``), the
heads are the release's ``alex.pth`` / ``vgg.pth`` (``lpips/weights/v0.1``, BSD-2-Clause). Both download
on first use from their official URLs and are checked against the SHA-256 pinned here (sources: the
torchvision file names carry the first 8 hex digits; the full digests and sizes agree across
independent manifests), or come from paths given by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from superres.archs.backbones import (
    ALEXNET_CHANNELS,
    ALEXNET_TAPS,
    VGG16_CHANNELS,
    VGG16_TAPS,
    alexnet_features,
    vgg16_features,
)
from superres.errors import ConfigError, WeightsError

Net = Literal["alex", "vgg"]

# The release's ScalingLayer: (x − shift) / scale after mapping [0, 1] to [−1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # normalize_tensor's guard against zero-length feature vectors

_HEADS = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1"
_TORCHVISION = "https://download.pytorch.org/models"


@dataclass(frozen=True)
class WeightFile:
    url: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


@dataclass(frozen=True)
class Variant:
    features: Callable[[], nn.Sequential]
    taps: tuple[int, ...]
    channels: tuple[int, ...]
    backbone: WeightFile
    head: WeightFile


VARIANTS: dict[str, Variant] = {
    "alex": Variant(
        alexnet_features,
        ALEXNET_TAPS,
        ALEXNET_CHANNELS,
        WeightFile(f"{_TORCHVISION}/alexnet-owt-7be5be79.pth",
                   "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", 244_408_911),
        WeightFile(f"{_HEADS}/alex.pth", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", 6_009),
    ),
    "vgg": Variant(
        vgg16_features,
        VGG16_TAPS,
        VGG16_CHANNELS,
        WeightFile(f"{_TORCHVISION}/vgg16-397923af.pth",
                   "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553_433_881),
        WeightFile(f"{_HEADS}/vgg.pth", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7_289),
    ),
}  # fmt: skip


class LPIPS(nn.Module):
    """LPIPS distance between two batches of RGB images in [0, 1] (``N×3×H×W``); returns ``[N]``.

    Built with random weights; :func:`load_lpips` gives it the released ones.
    """

    def __init__(self, net: Net = "alex") -> None:
        super().__init__()
        if net not in VARIANTS:
            raise ConfigError(f"unknown LPIPS network {net!r}; expected one of {', '.join(VARIANTS)}")
        variant = VARIANTS[net]
        self.net = net
        self.features = variant.features()
        self.taps = variant.taps
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in variant.channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def tap_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at the five taps for images in [0, 1]."""
        x = (x * 2 - 1 - self.shift) / self.scale
        out = []
        last = max(self.taps)
        for i, layer in enumerate(self.features[: last + 1]):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            shapes = f"{tuple(x.shape)}, {tuple(y.shape)}"
            raise ValueError(f"LPIPS compares two N×3×H×W batches of the same shape, got {shapes}")
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for lin, a, b in zip(self.lin, self.tap_features(x), self.tap_features(y), strict=True):
            diff = (unit_normalize(a) - unit_normalize(b)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total


def unit_normalize(features: torch.Tensor) -> torch.Tensor:
    """Each spatial position's feature vector scaled to unit length (the release's ``normalize_tensor``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)


# ------------------------------------------------------------------------------------- weights


def official_head_state(state: dict[str, torch.Tensor], layers: int = 5) -> dict[str, torch.Tensor]:
    """The release's head keys (``lin0.model.1.weight`` — index 1 behind a Dropout) as ours (``lin.0.weight``)."""
    out = {}
    for k in range(layers):
        for key in (f"lin{k}.model.1.weight", f"lins.{k}.model.1.weight", f"lin{k}.model.0.weight"):
            if key in state:
                out[f"{k}.weight"] = state[key]
                break
        else:
            raise WeightsError(f"not an LPIPS head file: no weight for layer {k} (expected key lin{k}.model.1.weight)")
    return out


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a torchvision classifier file (or a file of ``features`` alone)."""
    if any(key.startswith("features.") for key in state):
        return {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    return dict(state)


def weight_paths(net: Net) -> tuple[Path, Path]:
    """Where the (backbone, head) files of ``net`` live: the backbone where torchvision keeps it
    (``torch.hub.get_dir()/checkpoints``, so torchvision's own copy is used), the head in ``lpips/`` of
    the model cache (``$SUPERRES_CACHE``)."""
    from superres.models.registry import default_cache_dir

    variant = _variant(net)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / variant.backbone.filename
    return hub, default_cache_dir() / "lpips" / variant.head.filename


def weight_files(net: Net, download: bool = True, progress: bool = True) -> tuple[Path, Path]:
    """(backbone, head) files of ``net``, downloaded (resumable, hash-checked) first if needed."""
    from superres.errors import DownloadError
    from superres.models.download import fetch, manual_hint

    variant = _variant(net)
    paths = []
    for file, dest in zip((variant.backbone, variant.head), weight_paths(net), strict=True):
        if not download and not dest.is_file():
            raise WeightsError(f"LPIPS ({net}) needs its weights: {manual_hint(file.url, dest, file.sha256)}")
        try:
            paths.append(fetch(file.url, dest, file.sha256, file.size, progress=progress))
        except DownloadError as exc:
            raise DownloadError(f"LPIPS ({net}): {exc} (or pass --lpips-backbone and --lpips-head)") from None
    return paths[0], paths[1]


def load_lpips(
    net: Net = "alex",
    backbone: str | Path | None = None,
    head: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
    progress: bool = True,
) -> LPIPS:
    """LPIPS with the released weights: from the given paths, else from the cache (downloaded once)."""
    model = LPIPS(net)
    if backbone is None or head is None:
        cached_backbone, cached_head = weight_files(net, download=download, progress=progress)
        backbone, head = backbone or cached_backbone, head or cached_head
    _load_into(model.features, backbone_state(_read_state(Path(backbone))), f"{net} backbone", Path(backbone))
    _load_into(model.lin, official_head_state(_read_state(Path(head)), len(model.lin)), f"{net} head", Path(head))
    return model.to(device)


def _variant(net: str) -> Variant:
    if net not in VARIANTS:
        raise ConfigError(f"unknown LPIPS network {net!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[net]


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from superres.models.weights import read_state_dict  # safe: weights_only, tensors only

    return dict(read_state_dict(path)[0])


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit the LPIPS {what}: {str(exc).splitlines()[-1].strip()}") from exc


# ------------------------------------------------------------------------------------ images


def lpips_images(model: LPIPS, image: np.ndarray, reference: np.ndarray) -> float:
    """LPIPS between two uint8 images (``H×W×3``, or ``H×W`` gray, replicated to RGB)."""
    if image.shape != reference.shape:
        raise ValueError(f"images differ in shape: {image.shape} vs {reference.shape}")
    device = next(model.parameters()).device
    tensors = []
    for array in (image, reference):
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).float().div(255)
        tensors.append(tensor.unsqueeze(0).to(device))
    with torch.no_grad():
        return float(model(*tensors)[0])
