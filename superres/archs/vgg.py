"""VGG19 feature extractor for the perceptual (content) loss of SRGAN (§2.2.1) and ESRGAN (§3.3).

The network is torchvision's ``vgg19().features`` rebuilt layer for layer, so its parameter names
are ``features.N.weight`` / ``features.N.bias`` and torchvision's ImageNet weight file
(``vgg19-dcbb9e9d.pth``) loads as it is; torchvision itself is not needed. Only the layers up to
the requested one are built. The network starts from torchvision's random initialisation (fixed
seed); :mod:`superres.train.vgg_weights` finds, downloads and loads the ImageNet weights.

Layers are named as in the papers: ``conv5_4`` is the 4th convolution of the 5th block (before the
last max-pool). SRGAN's "VGG54" takes it *after* its ReLU; ESRGAN §3.3 takes it *before* the
activation, where the features are denser and keep brightness information.
"""

from __future__ import annotations

import torch
from torch import nn

from superres.archs.backbones import conv_stack
from superres.errors import ConfigError

# torchvision's VGG19 ("configuration E", Simonyan & Zisserman): channels per conv, "M" = max-pool.
VGG19_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"
)  # fmt: skip

# ImageNet statistics the torchvision weights were trained with; inputs in [0, 1] are normalised by them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


class VGGFeatureExtractor(nn.Module):
    """Frozen VGG19 up to ``layer``; input RGB in [0, 1], output that layer's feature map.

    The weights are random (a fixed seed: the same for every run) until ImageNet weights are loaded
    into ``features``; ``weights_source`` says which ("random", or the file loaded).
    """

    def __init__(self, layer: str = "conv5_4", after_activation: bool = False, normalize_input: bool = True) -> None:
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
        self._init_random()
        self.weights_source = "random"
        self.requires_grad_(False)
        self.eval()

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
    return list(conv_stack(VGG19_CONFIG, pool=2))
