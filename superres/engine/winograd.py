"""Winograd's minimal filtering F(4×4, 3×3): 3×3 convs in a quarter of the multiplications.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 4×4 block of a
3×3 conv's output depends on a 6×6 window of its input. Transformed by fixed matrices — the input
window to ``Bᵀ d B``, the kernel to ``G g Gᵀ`` — the conv becomes an elementwise product of 6×6
arrays summed over input channels: 36 matrix products ``[tiles × C_in] @ [C_in × C_out]``, one per
position in the array, after which ``Aᵀ m A`` turns each 6×6 result back into 16 outputs. That is
36 multiply-adds per 16 outputs per channel pair instead of 144, 4× fewer; the transforms are a few
additions per value.

PyTorch's direct fp32 conv (oneDNN) already runs near this CPU's FMA peak (~80 % of it through
x4plus), so fewer multiplications is the only way to run faster in fp32: 2.2× on a dense block of
x4plus, 2.3× on a whole image (``bench/RESULTS.md``). PyTorch's CPU build
has no Winograd conv any more, and built from tensor operations the transforms cost more than the
products save (they move 2.25× the input through memory ~50 times). So the kernel is C++
(``csrc/winograd.cpp``, built by :mod:`superres.engine.kernels`): for each block of 32 tiles it
transforms the input, runs the 36 products with a register-blocked loop, and transforms back with
bias and activation (LeakyReLU, or PReLU with a slope per channel), all in cache.

Rounding: the transforms add values up to 5× and 8× apart, so an fp32 output differs from the direct
conv's by ~1e-6 of the input's scale instead of ~1e-7. Through x4plus's 350 convs that stays under
one 8-bit level. In bf16 the same amplification would cost levels, so this is for fp32 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞ (Lavin & Gray, §4.2). Bᵀ and Aᵀ are in the C++.
_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
# the kernel takes input and output channels in groups of 16
INPUT_CHANNEL_MULTIPLE = 16
OUTPUT_CHANNEL_MULTIPLE = 16


def transform_weight(conv: nn.Conv2d) -> torch.Tensor:
    """``G g Gᵀ`` for every (output, input) channel pair of a 3×3 conv: ``[36, C_in, C_out]`` fp32,
    computed in fp64 so that the only rounding is the final one."""
    g = torch.tensor(_G, dtype=torch.float64, device=conv.weight.device)
    weight = conv.weight.detach().to(torch.float64)  # [out, in, 3, 3]
    v = torch.einsum("ak,oikl,bl->abio", g, weight, g)
    return v.reshape(36, weight.shape[1], weight.shape[0]).to(torch.float32).contiguous()


def fits(conv: nn.Conv2d, input_groups: list[int]) -> bool:
    """Whether the kernel can run ``conv`` on inputs of these channel counts (fp32 3×3, stride 1, on CPU)."""
    return (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is not None
        and conv.weight.dtype == torch.float32
        and conv.weight.device.type == "cpu"
        and conv.out_channels % OUTPUT_CHANNEL_MULTIPLE == 0
        and all(c % INPUT_CHANNEL_MULTIPLE == 0 for c in input_groups)
    )


def prepare(module: Any, conv: nn.Conv2d) -> WinogradConv:
    """``conv`` for the kernel in ``module`` (built by :mod:`superres.engine.kernels`); check :func:`fits` first."""
    assert conv.bias is not None
    return WinogradConv(module, transform_weight(conv), conv.bias.detach().float().contiguous())


@dataclass(frozen=True)
class WinogradConv:
    """One 3×3 conv for the kernel: :func:`transform_weight` of it, and its bias."""

    module: Any
    weight: torch.Tensor
    bias: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + self.bias.nbytes

    def rows(
        self,
        parts: list[torch.Tensor],
        first: int,
        lo: int,
        hi: int,
        height: int,
        out: torch.Tensor,
        slope: float | torch.Tensor | None,
    ) -> None:
        """Rows ``[lo, hi)`` of the conv over a map ``height`` rows high, into ``out``
        (``[N, C_out, hi - lo, width]``, channels last). Then LeakyReLU with ``slope`` (a float), or
        PReLU with a slope per output channel (a float32 tensor); no activation with ``None``.

        ``parts`` are the conv's input rows ``[first, …)`` — one row of context on each side, less at
        the map's top and bottom where the conv's zero padding stands in — as channel groups of
        ``[N, C_k, rows, width]`` channels-last fp32 tensors, concatenated by the kernel as it reads them."""
        slopes = slope if isinstance(slope, torch.Tensor) else _NO_SLOPES
        for n in range(out.shape[0]):  # the kernel takes one image at a time
            self.module.conv3x3(
                [p[n].permute(1, 2, 0) for p in parts],
                first,
                lo,
                hi,
                height,
                self.weight,
                self.bias,
                slope if isinstance(slope, float) else 0.0,
                slope is not None,
                slopes,
                out[n].permute(1, 2, 0),
            )


_NO_SLOPES = torch.empty(0)
