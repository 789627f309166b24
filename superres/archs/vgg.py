"""VGG19 feature extractor for the perceptual (content) loss of SRGAN (§2.2.1) and ESRGAN (§3.3).

The network is torchvision's ``vgg19().features`` rebuilt layer for layer, so its parameter names
are ``features.N.weight`` / ``features.N.bias`` and torchvision's ImageNet weight file
(``vgg19-dcbb9e9d.pth``) loads as it is; torchvision itself is not needed. Only the layers up to
the requested one are built.

Layers are named as in the papers: ``conv5_4`` is the 4th convolution of the 5th block (before the
last max-pool). SRGAN's "VGG54" takes it *after* its ReLU; ESRGAN §3.3 takes it *before* the
activation, where the features are denser and keep brightness information.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from superres.errors import ConfigError, WeightsError

# torchvision's VGG19 ("configuration E", Simonyan & Zisserman): channels per conv, "M" = max-pool.
VGG19_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"
)  # fmt: skip

# ImageNet statistics the torchvision weights were trained with; inputs in [0, 1] are normalised by them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# File name torchvision's model zoo stores the ImageNet VGG19 weights under, in torch hub's cache.
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"


def vgg19_layer_names() -> list[str]:
    """Names of the 37 layers of ``vgg19().features`` in index order: conv1_1, relu1_1, …, pool5."""
    names: list[str] = []
    block, conv = 1, 1
    for item in VGG19_CONFIG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def hub_cache_weights() -> Path:
    """Where torchvision would have cached its ImageNet VGG19 weights on this machine."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_FILE


def find_vgg19_weights(path: str | Path | None = None) -> Path | None:
    """The weights file to use: ``path`` when given (it must exist), else torch hub's cache, else None."""
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"VGG19 weights file not found: {file}")
        return file
    cached = hub_cache_weights()
    return cached if cached.is_file() else None


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


class VGGFeatureExtractor(nn.Module):
    """Frozen VGG19 up to ``layer``; input RGB in [0, 1], output that layer's feature map.

    ``weights``: a path, or None to use torch hub's cached torchvision file when present. With no
    weights to be found, a perceptual loss would silently train against random features, so this
    raises :class:`ConfigError` unless ``allow_random=True`` (meant for tests and smoke runs).
    """

    def __init__(
        self,
        layer: str = "conv5_4",
        after_activation: bool = False,
        normalize_input: bool = True,
        weights: str | Path | None = None,
        allow_random: bool = False,
    ) -> None:
        super().__init__()
        names = vgg19_layer_names()
        if not layer.startswith("conv") or layer not in names:
            convs = ", ".join(n for n in names if n.startswith("conv"))
            raise ConfigError(f"unknown VGG19 layer {layer!r}; expected one of {convs}")
        self.layer = layer
        self.after_activation = after_activation
        last = names.index(layer) + (1 if after_activation else 0)
        self.features = nn.Sequential(*_vgg19_layers()[: last + 1])
        self.normalize_input = normalize_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        file = find_vgg19_weights(weights)
        if file is not None:
            self._load(file)
            self.weights_source = str(file)
        elif allow_random:
            self._init_random()
            self.weights_source = "random"
        else:
            raise ConfigError(
                "no VGG19 ImageNet weights found for the perceptual loss: pass a path "
                f"(e.g. loss.vgg.weights=/path/{TORCHVISION_VGG19_FILE}) or place torchvision's file at "
                f"{hub_cache_weights()}; loss.vgg.allow_random=true trains against random features "
                "(only useful for tests)"
            )
        self.requires_grad_(False)
        self.eval()

    def _load(self, file: Path) -> None:
        state = read_vgg19_state_dict(file)
        wanted = self.features.state_dict().keys()
        missing = [key for key in (f"features.{k}" for k in wanted) if key not in state]
        if missing:
            raise WeightsError(f"{file} is not a VGG19 weight file: it lacks {', '.join(missing[:3])}")
        ours = {key: state[f"features.{key}"] for key in wanted}
        try:
            self.features.load_state_dict(ours, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{file} does not fit VGG19: {str(exc).splitlines()[-1].strip()}") from exc

    def _init_random(self) -> None:
        # torchvision's VGG initialisation, from a fixed seed: every run gets the same random features,
        # and the caller's random stream is left untouched.
        generator = torch.Generator().manual_seed(0)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        # A loss network never trains; keep it in eval mode whatever the parent module does.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_input:
            x = (x - self.mean) / self.std
        return self.features(x)


def _vgg19_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in VGG19_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            in_ch = int(item)
    return layers
