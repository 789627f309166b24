"""RRDBNet, the ESRGAN generator (Wang et al., ESRGAN, ECCV-W 2018, §3.1).

Parameter names follow BasicSR / Real-ESRGAN (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so their checkpoints load as they are.
The older ESRGAN layouts are converted to these names in :mod:`superres.models.detect`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ESRGAN §3.1: the residual of every dense block and of every RRDB is scaled by β = 0.2
# before it is added back, which keeps a deep BN-free network stable.
RESIDUAL_SCALE = 0.2


def _scaled_kaiming_init(modules: list[nn.Module], scale: float) -> None:
    """ESRGAN §3.1 "smaller initialisation": Kaiming-normal weights multiplied by ``scale`` (0.1).

    Skipped for a network built on the meta device to receive trained weights: there is nothing to
    draw, and PyTorch's meta ``normal_`` imports its symbolic-shape machinery (sympy), seconds of start-up.
    """
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.kaiming_normal_(m.weight)
                m.weight.data.mul_(scale)
                if m.bias is not None:
                    m.bias.data.zero_()


class ResidualDenseBlock(nn.Module):
    """Five 3×3 convs, each fed the concatenation of the block input and all earlier outputs."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        _scaled_kaiming_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-Residual Dense Block: three dense blocks inside one more scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN generator: no BN, ``num_block`` RRDBs, nearest-neighbour ×2 + conv upsampling.

    ``scale`` 4 and 8 upsample by 2 two or three times. ``scale`` 1 and 2 first fold the input
    with pixel-unshuffle (by 4 or 2) and then upsample ×4, as Real-ESRGAN does, so that all scales
    share the same body. Input and output are RGB in [0, 1].
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4, 8):
            raise ValueError(f"RRDBNet supports scale 1, 2, 4 or 8, not {scale}")
        self.scale = scale
        self.unshuffle = {1: 4, 2: 2}.get(scale, 1)
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if scale == 8:
            self.conv_up3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _upsample(self, conv: nn.Conv2d, feat: torch.Tensor) -> torch.Tensor:
        return self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tail(self.forward_body(x))

    # The two halves of ``forward``. The body runs at LR resolution; the tail upsamples, and its
    # receptive field is under 2 LR pixels, so an engine may run it in stripes to bound memory.
    TAIL_CONTEXT = 2

    def forward_body(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        return feat + self.conv_body(self.body(feat))

    def forward_tail(self, feat: torch.Tensor) -> torch.Tensor:
        """LR features → image, ×(scale · unshuffle) larger than ``feat``."""
        feat = self._upsample(self.conv_up1, feat)
        feat = self._upsample(self.conv_up2, feat)
        if self.scale == 8:
            feat = self._upsample(self.conv_up3, feat)
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
