"""Discriminators for adversarial training: SRGAN's (Ledig et al., Fig. 4) and ESRGAN's VGG-style one.

Both return one *logit* per image, not a probability: the sigmoid of the papers lives inside the
losses (:mod:`superres.train.losses`), where ``binary_cross_entropy_with_logits`` computes it stably and the
relativistic discriminator of ESRGAN needs the raw value C(x) anyway.
"""

from __future__ import annotations

import torch
from torch import nn

# SRGAN §2.2: "LeakyReLU activation (α = 0.2)"; ESRGAN keeps it.
LEAKY_SLOPE = 0.2


class DiscriminatorBlock(nn.Module):
    """Conv, optional BatchNorm, LeakyReLU, kept in ``conv_block`` like the generator's blocks."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, stride, 1)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class SRGANDiscriminator(nn.Module):
    """SRGAN discriminator (Ledig et al., CVPR 2017, Fig. 4 and §2.2).

    Eight 3×3 conv blocks whose width doubles from 64 to 512 every second block while strided
    convs halve the resolution (k3n64s1, k3n64s2, k3n128s1, k3n128s2, …, k3n512s2; BN everywhere but
    the first), then Dense(1024), LeakyReLU, Dense(1). The paper's 96×96 input reaches the dense
    layer as 6×6×512; an adaptive average pool to 6×6 (as in the PyTorch tutorial implementation,
    whose parameter names are kept) lets other patch sizes through the same weights.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_block: int = 8, fc_size: int = 1024) -> None:
        super().__init__()
        if num_block < 2 or num_block % 2:
            raise ValueError(f"num_block must be an even number ≥ 2, got {num_block}")
        blocks: list[nn.Module] = []
        in_ch = num_in_ch
        for i in range(num_block):
            out_ch = num_feat * 2 ** (i // 2)
            blocks.append(DiscriminatorBlock(in_ch, out_ch, stride=1 + i % 2, batch_norm=i > 0))
            in_ch = out_ch
        self.conv_blocks = nn.Sequential(*blocks)
        self.adaptive_pool = nn.AdaptiveAvgPool2d((6, 6))
        self.fc1 = nn.Linear(in_ch * 6 * 6, fc_size)
        self.leaky_relu = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.fc2 = nn.Linear(fc_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and the feature map after each strided block (for feature matching)."""
        features = []
        for i, block in enumerate(self.conv_blocks):
            x = block(x)
            if i % 2:
                features.append(x)
        feat = self.adaptive_pool(x)
        return self.fc2(self.leaky_relu(self.fc1(feat.flatten(1)))), features


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN discriminator (Wang et al., ECCV-W 2018, §4.1; BasicSR ``VGGStyleDiscriminator``).

    Five stages, each a 3×3 conv (stride 1) and a 4×4 conv (stride 2), widths 64-128-256-512-512,
    BN after every conv but the first, LeakyReLU(0.2); then Linear(→100), LeakyReLU, Linear(→1).
    The dense layer fixes the input size: 128×128 in the paper (4×4×512 features). Any multiple of
    32 is accepted here, so tests can use small patches. Parameter names are BasicSR's.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 (five stride-2 stages), got {input_size}")
        self.input_size = input_size
        nf = num_feat
        self.conv0_0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(nf, nf, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(nf, affine=True)

        self.conv1_0 = nn.Conv2d(nf, nf * 2, 3, 1, 1, bias=False)
        self.bn1_0 = nn.BatchNorm2d(nf * 2, affine=True)
        self.conv1_1 = nn.Conv2d(nf * 2, nf * 2, 4, 2, 1, bias=False)
        self.bn1_1 = nn.BatchNorm2d(nf * 2, affine=True)

        self.conv2_0 = nn.Conv2d(nf * 2, nf * 4, 3, 1, 1, bias=False)
        self.bn2_0 = nn.BatchNorm2d(nf * 4, affine=True)
        self.conv2_1 = nn.Conv2d(nf * 4, nf * 4, 4, 2, 1, bias=False)
        self.bn2_1 = nn.BatchNorm2d(nf * 4, affine=True)

        self.conv3_0 = nn.Conv2d(nf * 4, nf * 8, 3, 1, 1, bias=False)
        self.bn3_0 = nn.BatchNorm2d(nf * 8, affine=True)
        self.conv3_1 = nn.Conv2d(nf * 8, nf * 8, 4, 2, 1, bias=False)
        self.bn3_1 = nn.BatchNorm2d(nf * 8, affine=True)

        self.conv4_0 = nn.Conv2d(nf * 8, nf * 8, 3, 1, 1, bias=False)
        self.bn4_0 = nn.BatchNorm2d(nf * 8, affine=True)
        self.conv4_1 = nn.Conv2d(nf * 8, nf * 8, 4, 2, 1, bias=False)
        self.bn4_1 = nn.BatchNorm2d(nf * 8, affine=True)

        side = input_size // 32
        self.linear1 = nn.Linear(nf * 8 * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and the feature map after each of the five stages (for feature matching)."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator was built for {self.input_size}×{self.input_size} input, "
                f"got {tuple(x.shape[-2:])}; set the HR patch size to {self.input_size}"
            )
        features = []
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        features.append(feat)
        feat = self.lrelu(self.bn1_0(self.conv1_0(feat)))
        feat = self.lrelu(self.bn1_1(self.conv1_1(feat)))
        features.append(feat)
        feat = self.lrelu(self.bn2_0(self.conv2_0(feat)))
        feat = self.lrelu(self.bn2_1(self.conv2_1(feat)))
        features.append(feat)
        feat = self.lrelu(self.bn3_0(self.conv3_0(feat)))
        feat = self.lrelu(self.bn3_1(self.conv3_1(feat)))
        features.append(feat)
        feat = self.lrelu(self.bn4_0(self.conv4_0(feat)))
        feat = self.lrelu(self.bn4_1(self.conv4_1(feat)))
        features.append(feat)
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1)))), features
