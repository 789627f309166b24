"""Convolutions computed a stripe of rows at a time: the primitive under RRDBNet's block-wise body
(:mod:`superres.engine.blockwise`) and its fast tail (:mod:`superres.engine.tail`).

A 3×3 conv's output rows ``[lo, hi)`` need its input rows ``[lo - 1, hi + 1)``: a stripe with one row of
context on each side, clipped at the map's top and bottom, where the conv's zero padding stands in for
it. Stripes of ~``STRIPE_PIXELS`` keep a conv's working set in cache, which is faster on a CPU than
whole maps, and lets later convs start on rows before earlier ones have finished the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from superres.engine.amx import AmxConv
from superres.engine.kernels import CpuKernels
from superres.engine.winograd import WinogradConv

# Pixels of one block-wise stripe on CPU. Measured on x4plus (one dense block, 512² input, 2 threads,
# Zen 4 with 32 MB L3), GFLOP/s by stripe height at width 512 — fp32: 16 rows 172, 32: 178, 48: 178,
# 64: 182, 96: 160; bf16: 16: 339, 32: 348, 48: 356, 64: 350, 96: 334; the whole image at once: 134 / 256
# (tiles of 192 px with 5 px of context, the earlier scheme: 156 / 308 useful).
STRIPE_PIXELS = 48 * 512


# Fewest rows in a stripe: a growth output must be kept for up to 5 rows above a stripe (see
# dense_block_in_stripes), and those rows must come from the stripe before.
MIN_STRIPE_ROWS = 8


def stripe_rows(width: int, pixels: int) -> int:
    """Rows of a block-wise stripe ``width`` pixels wide with about ``pixels`` pixels."""
    return max(MIN_STRIPE_ROWS, pixels // max(width, 1))


def stripes(height: int, rows: int) -> list[tuple[int, int]]:
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


def rows_with_context(lo: int, hi: int, height: int) -> slice:
    return slice(max(lo - 1, 0), min(hi + 1, height))


def conv_rows(conv: nn.Conv2d, window: torch.Tensor, first: int, lo: int, hi: int, height: int) -> torch.Tensor:
    """Rows ``[lo, hi)`` of a 3×3 conv's output over a map ``height`` rows high, from ``window``: its
    input rows ``[first, …)``, one row of context on each side (less at the map's top and bottom,
    where the conv's zero padding stands in for it)."""
    border = lo == 0 or hi == height
    out = F.conv2d(window, conv.weight, conv.bias, padding=(1 if border else 0, 1))
    start = lo - first - (0 if border else 1)
    return out[:, :, start : start + hi - lo]


@dataclass
class ConvRows:
    """Rows ``[lo, hi)`` of ``conv`` over a map ``height`` rows high, from its input rows ``[first, …)``
    given as channel groups (``parts``): by the direct conv, or by ``fast`` (a compiled kernel's
    preparation of ``conv``: Winograd in fp32, AMX in bf16), which reads the groups where they are."""

    conv: nn.Conv2d
    parts: list[torch.Tensor]
    first: int
    lo: int
    hi: int
    height: int
    fast: WinogradConv | AmxConv | None

    def compute(self) -> torch.Tensor:
        if self.fast is None:
            return conv_rows(self.conv, torch.cat(self.parts, 1), self.first, self.lo, self.hi, self.height)
        out = empty_rows(self.parts[0], self.conv.out_channels, self.hi - self.lo)
        self.fast.rows(self.parts, self.first, self.lo, self.hi, self.height, out, None)
        return out

    def activated_into(self, out: torch.Tensor, slope: float) -> None:
        """LeakyReLU of the rows, written into ``out``."""
        if self.fast is None:
            torch.ops.aten.leaky_relu.out(self.compute(), slope, out=out)
        else:  # the kernel applies it as it writes
            self.fast.rows(self.parts, self.first, self.lo, self.hi, self.height, out, slope)


def _fast(kernels: CpuKernels, conv: nn.Conv2d, x: torch.Tensor) -> WinogradConv | AmxConv | None:
    if x.dtype != torch.bfloat16:
        return kernels.prepare(conv, [x.shape[1]])
    prepared = kernels.prepare_amx(conv, [x.shape[1]])
    return prepared if prepared is not None and prepared.padded_out_channels == conv.out_channels else None


def empty_rows(like: torch.Tensor, channels: int, rows: int) -> torch.Tensor:
    shape = (like.shape[0], channels, rows, like.shape[-1])
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=torch.channels_last)


def conv_in_rows(
    conv: nn.Conv2d,
    x: torch.Tensor,
    out: torch.Tensor,
    rows: int,
    slope: float | None,
    winograd: CpuKernels | None = None,
) -> None:
    """``out = conv(x)``, then ``leaky_relu`` unless ``slope`` is None, ``rows`` rows at a time
    (by the compiled kernels ``winograd`` where the conv fits one: Winograd in fp32, AMX in bf16)."""
    height = x.shape[-2]
    fast = None if winograd is None else _fast(winograd, conv, x)
    for r0, r1 in stripes(height, rows):
        window = rows_with_context(r0, r1, height)
        rows_of = ConvRows(conv, [x[:, :, window]], window.start, r0, r1, height, fast)
        if slope is None:
            out[:, :, r0:r1] = rows_of.compute()
        else:
            rows_of.activated_into(out[:, :, r0:r1], slope)
