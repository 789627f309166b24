"""bf16 3×3 convs on AMX, the matrix tile units of Intel Xeons since Sapphire Rapids.

An AMX ``TDPBF16PS`` multiplies a 16×32 bf16 tile by a 32×16 one into 16×16 fp32 sums: 512
multiply-adds per cycle and core, 16× what AVX-512 does in fp32. oneDNN (PyTorch's CPU conv) uses
it for bf16 convs too, but the default model's convs are small (64 channels) and followed by PReLU,
which oneDNN cannot fuse: measured on one 512×512 map, 64 → 64 channels, one thread, a conv + PReLU
take 58 ms of CPU in PyTorch and 11–14 ms in this kernel (``csrc/amx.cpp``), of which the tile products
alone are ~6.5.

The conv is direct, as an implicit matrix product: the 16×32 input tile is 16 neighbouring pixels'
32 channels, read straight from channels-last rows (the channels of a pixel are contiguous), so no
im2col copy is made; the weights are packed once per conv (:func:`pack_weight`). Products are
rounded to bf16 (inputs and weights) and summed in fp32, as oneDNN's bf16 conv does; bias and
activation are applied in fp32 and the result stored in bf16 (or fp32, for a network's last conv).
Each output pixel's sum runs in the same order wherever the pixel lies in a tile or a stripe, so
tiled and untiled outputs are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# the kernel reads input channels 32 at a time and writes output channels 32 at a time
INPUT_CHANNEL_MULTIPLE = 32
OUTPUT_CHANNEL_MULTIPLE = 32


def fits(conv: nn.Conv2d, input_groups: list[int]) -> bool:
    """Whether the kernel can run ``conv`` (3×3, stride 1, CPU) on inputs of these channel counts.
    Output channels that are not a multiple of 32 are padded (:func:`pack_weight`)."""
    return (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.padding == (1, 1)
        and conv.groups == 1
        and conv.weight.device.type == "cpu"
        and all(c % INPUT_CHANNEL_MULTIPLE == 0 for c in input_groups)
    )


def padded_channels(channels: int) -> int:
    return -(-channels // OUTPUT_CHANNEL_MULTIPLE) * OUTPUT_CHANNEL_MULTIPLE


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[C_out, C_in, 3, 3]`` → the tiles the kernel loads: ``[9, C_in / 32, C_out' / 16, 16, 32]`` bf16.

    Tile (tap, input chunk, output block) holds row ``k`` = input channels ``2k`` and ``2k + 1`` of the
    chunk, interleaved for each of the block's 16 output channels (the pairs ``TDPBF16PS`` multiplies).
    ``C_out'`` is ``C_out`` padded with zero filters to a multiple of 32.
    """
    out_channels, in_channels = weight.shape[:2]
    padded = torch.zeros(padded_channels(out_channels), in_channels, 3, 3, dtype=torch.float32)
    padded[:out_channels] = weight.detach().float().cpu()
    taps = padded.permute(2, 3, 1, 0).reshape(9, in_channels // 32, 16, 2, padded.shape[0] // 16, 16)
    tiles = taps.permute(0, 1, 4, 2, 5, 3)  # tap, input chunk, output block, input pair, output, pair member
    return tiles.reshape(9, in_channels // 32, padded.shape[0] // 16, 16, 32).contiguous().to(torch.bfloat16)


def prepare(module: Any, conv: nn.Conv2d) -> AmxConv:
    """``conv`` for the kernel in ``module`` (built by :mod:`superres.engine.kernels`); check :func:`fits` first."""
    bias = torch.zeros(padded_channels(conv.out_channels))
    if conv.bias is not None:
        bias[: conv.out_channels] = conv.bias.detach().float()
    return AmxConv(module, pack_weight(conv.weight), bias, conv.out_channels)


@dataclass(frozen=True)
class AmxConv:
    """One 3×3 conv for the kernel: its packed weight, its bias (fp32, padded like the weight)."""

    module: Any
    weight: torch.Tensor
    bias: torch.Tensor
    out_channels: int

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + self.bias.nbytes

    @property
    def padded_out_channels(self) -> int:
        return self.bias.numel()

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
        """Rows ``[lo, hi)`` of the conv over a map ``height`` rows high, into ``out`` (``[N, C', hi - lo,
        width]`` bf16 or fp32, channels last, ``C'`` :attr:`padded_out_channels`): bias, then LeakyReLU
        with ``slope`` (a float), PReLU with a slope per output channel (a tensor), or nothing (``None``).

        ``parts`` are the conv's input rows ``[first, …)`` — at least one row of context on each side
        that lies in the map — as channel groups of ``[N, C_k, rows, width]`` channels-last bf16 tensors."""
        slopes = _slopes(slope, self.padded_out_channels)
        for n in range(out.shape[0]):
            self.module.conv3x3_amx(
                [p[n].permute(1, 2, 0) for p in parts], first, lo, hi, height, self.weight, self.bias, slopes,
                out[n].permute(1, 2, 0),
            )


def _slopes(slope: float | torch.Tensor | None, channels: int) -> torch.Tensor:
    """The kernel's activation: a float32 slope per output channel (padded), or none (empty)."""
    if slope is None:
        return torch.empty(0)
    if isinstance(slope, torch.Tensor):
        if slope.numel() == channels and slope.dtype == torch.float32 and slope.is_contiguous():
            return slope
        padded = torch.zeros(channels)
        padded[: slope.numel()] = slope.detach().float().flatten()
        return padded
    return torch.full((channels,), float(slope))
