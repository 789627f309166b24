"""The convolutional stacks of two ImageNet classifiers, as LPIPS uses them: AlexNet and VGG16.

Each is torchvision's ``alexnet().features`` / ``vgg16().features`` rebuilt layer for layer, so the
parameter names (``N.weight``, ``N.bias`` inside ``features``) are torchvision's and its ImageNet weight
files (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``) load as they are, without torchvision.
``*_TAPS`` are the indices of the ReLUs whose outputs LPIPS compares (Zhang et al., CVPR 2018, §3:
conv1–conv5 of AlexNet, and of VGG16 the last conv of each of its five blocks).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

# torchvision's AlexNet ("one weird trick" variant, Krizhevsky 2014): (out channels, kernel, stride, padding)
# per conv, "M" = 3×3 max-pool with stride 2.
ALEXNET_CONFIG: tuple[tuple[int, int, int, int] | str, ...] = (
    (64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M"
)  # fmt: skip
ALEXNET_TAPS = (1, 4, 7, 9, 11)  # relu1 … relu5
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)

# torchvision's VGG16 ("configuration D", Simonyan & Zisserman 2015): channels per 3×3 conv, "M" = 2×2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"
)  # fmt: skip
VGG16_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG16_CHANNELS = (64, 128, 256, 512, 512)


def alexnet_features() -> nn.Sequential:
    """``torchvision.models.alexnet().features``: 5 convs with ReLUs and 3 max-pools (13 layers)."""
    return conv_stack(ALEXNET_CONFIG, pool=3)


def vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features``: 13 3×3 convs with ReLUs and 5 max-pools (31 layers)."""
    return conv_stack(VGG16_CONFIG, pool=2)


def conv_stack(config: Sequence[int | tuple[int, int, int, int] | str], pool: int) -> nn.Sequential:
    """Convs with ReLUs and max-pools in torchvision's order and indices. An entry is "M" (a ``pool``×``pool``
    max-pool with stride 2), the out channels of a 3×3 conv (VGG), or (out channels, kernel, stride, padding)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=pool, stride=2))
            continue
        out_ch, kernel, stride, padding = item if isinstance(item, tuple) else (int(item), 3, 1, 1)
        layers += [nn.Conv2d(in_ch, out_ch, kernel, stride, padding), nn.ReLU(inplace=True)]
        in_ch = out_ch
    return nn.Sequential(*layers)
