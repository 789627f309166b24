"""SRResNet, the SRGAN generator (Ledig et al., CVPR 2017, Fig. 4).

9×9 conv + PReLU, B residual blocks (conv-BN-PReLU-conv-BN + skip), conv-BN + a long skip over
all blocks, log2(scale) sub-pixel ×2 blocks (conv → PixelShuffle → PReLU), 9×9 conv, tanh.

The SRGAN authors released no code; parameter names follow the widely used PyTorch tutorial
implementation (``conv_block1.conv_block.0``, ``residual_blocks.N.conv_block1.conv_block.0``,
``subpixel_convolutional_blocks.N.conv``, ``conv_block3.conv_block.0``), so its state dicts load.

Value ranges are the paper's (§3.2 / §4.2): LR input in [0, 1], the tanh output in [-1, 1].
``forward`` maps that output back to [0, 1], so every superres network shares one convention.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ConvolutionalBlock(nn.Module):
    """Conv, optional BatchNorm, optional activation, kept in ``conv_block`` (an ``nn.Sequential``)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, batch_norm: bool = False, activation: str | None = None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        if activation == "prelu":
            layers.append(nn.PReLU())
        elif activation == "tanh":
            layers.append(nn.Tanh())
        elif activation is not None:
            raise ValueError(f"unknown activation {activation!r}")
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class ResidualBlock(nn.Module):
    """conv3×3-BN-PReLU-conv3×3-BN with an identity skip (He et al.'s layout, SRGAN §2.2)."""

    def __init__(self, num_feat: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv_block1 = ConvolutionalBlock(num_feat, num_feat, 3, batch_norm, "prelu")
        self.conv_block2 = ConvolutionalBlock(num_feat, num_feat, 3, batch_norm, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block2(self.conv_block1(x))


class SubPixelConvolutionalBlock(nn.Module):
    """Sub-pixel convolution ×2 (Shi et al.): conv to 4·C channels, PixelShuffle(2), PReLU."""

    def __init__(self, num_feat: int = 64, factor: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_feat, num_feat * factor**2, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(factor)
        self.prelu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class SRResNet(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        scale: int = 4,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        num_up = int(math.log2(scale))
        if scale < 2 or 2**num_up != scale:
            raise ValueError(f"SRResNet upsamples by powers of two (2, 4, 8); got scale {scale}")
        self.scale = scale
        self.conv_block1 = ConvolutionalBlock(num_in_ch, num_feat, 9, False, "prelu")
        self.residual_blocks = nn.Sequential(*(ResidualBlock(num_feat, batch_norm) for _ in range(num_block)))
        self.conv_block2 = ConvolutionalBlock(num_feat, num_feat, 3, batch_norm, None)
        self.subpixel_convolutional_blocks = nn.Sequential(
            *(SubPixelConvolutionalBlock(num_feat, 2) for _ in range(num_up))
        )
        self.conv_block3 = ConvolutionalBlock(num_feat, num_out_ch, 9, False, "tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_block1(x)
        feat = feat + self.conv_block2(self.residual_blocks(feat))
        out = self.conv_block3(self.subpixel_convolutional_blocks(feat))
        return (out + 1.0) / 2.0
