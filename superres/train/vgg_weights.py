"""ImageNet VGG19 weights for the perceptual loss: torchvision's file, downloaded on first use.

torchvision publishes the VGG19 it trained on ImageNet as ``vgg19-dcbb9e9d.pth``; the 8 hex digits
in the name are the start of the file's SHA-256, the check ``torch.hub`` itself makes, and the only
hash published for it — so that is what the download is checked against. The file goes where
torchvision keeps it (``torch.hub.get_dir()/checkpoints``), so a machine that already has
torchvision's copy uses it, and torchvision finds ours. The download goes through superres's one
downloader (resumable, atomic, ``SUPERRES_OFFLINE=1`` respected), and only the convolutions up to
the chosen layer are loaded into :class:`~superres.archs.vgg.VGGFeatureExtractor`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from superres.archs.vgg import VGGFeatureExtractor
from superres.errors import ConfigError, DownloadError, WeightsError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
VGG19_SHA256_PREFIX = "dcbb9e9d"


def hub_cache_weights() -> Path:
    """Where torchvision keeps (and superres downloads) its ImageNet VGG19 weights on this machine."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def vgg19_weights_file(path: str | Path | None = None, download: bool = True, progress: bool = True) -> Path | None:
    """The weights to use: ``path`` when given (it must exist), else torch hub's copy, fetched if needed.

    With ``download=False`` a missing copy gives None. A copy already in torch hub's folder is used
    as it is, as torchvision does; a download is checked against the published hash prefix.
    """
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"VGG19 weights file not found: {file}")
        return file
    cached = hub_cache_weights()
    if cached.is_file() or not download:
        return cached if cached.is_file() else None
    from superres.models.download import fetch

    try:
        return fetch(VGG19_URL, cached, VGG19_SHA256_PREFIX, progress=progress)
    except DownloadError as exc:
        raise DownloadError(f"VGG19 for the perceptual loss: {exc} (or pass loss.vgg.weights=PATH)") from None


def read_vgg19_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a VGG19 weight file (torchvision ``.pth`` or safetensors) safely, keys as ``features.N.*``."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read VGG19 weights from {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a VGG19 state dict (expected a dict of tensors)")
    # A file holding only ``vgg19().features`` has keys "0.weight", …; give them torchvision's prefix.
    if "0.weight" in state:
        state = {f"features.{key}": value for key, value in state.items()}
    return state


def load_vgg19_weights(extractor: VGGFeatureExtractor, file: Path) -> None:
    """Load the layers ``extractor`` has from ``file``; the rest of the file (deeper layers, classifier) is ignored."""
    state = read_vgg19_state_dict(file)
    wanted = extractor.features.state_dict().keys()
    missing = [key for key in (f"features.{k}" for k in wanted) if key not in state]
    if missing:
        raise WeightsError(f"{file} is not a VGG19 weight file: it lacks {', '.join(missing[:3])}")
    try:
        extractor.features.load_state_dict({key: state[f"features.{key}"] for key in wanted}, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{file} does not fit VGG19: {str(exc).splitlines()[-1].strip()}") from exc
    extractor.weights_source = str(file)


def perceptual_extractor(
    layer: str,
    after_activation: bool,
    weights: str | Path | None = None,
    allow_random: bool = False,
    progress: bool = True,
) -> VGGFeatureExtractor:
    """VGG19 up to ``layer`` with ImageNet weights: ``weights``, torch hub's copy, or a first-use download.

    ``allow_random`` (tests, smoke runs) uses weights that are already here but never downloads:
    without them the features stay random, which a real run must never train against silently.
    """
    extractor = VGGFeatureExtractor(layer, after_activation)
    file = vgg19_weights_file(weights, download=not allow_random, progress=progress)
    if file is not None:
        load_vgg19_weights(extractor, file)
    return extractor
