"""SRVGGNetCompact, Real-ESRGAN's compact model (``realesr-animevideov3``, ``realesr-general-x4v3``).

A plain stack of 3×3 convs at LR resolution, one pixel-shuffle at the end, and the
nearest-neighbour upsampled input added back so the body learns only the residual.
Parameter names (``body.N``) match the official release files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "lrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {act_type!r}; expected prelu, lrelu or relu")


class SRVGGNetCompact(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
