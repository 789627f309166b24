"""RRDBNet's upsampling tail, fast and exact: nearest ×2 + 3×3 conv as four 2×2 convs at the lower
resolution, every conv in cache-sized stripes of rows (:mod:`superres.engine.stripes`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from superres.archs.rrdbnet import RRDBNet
from superres.engine.kernels import CpuKernels
from superres.engine.stripes import STRIPE_PIXELS, conv_in_rows, rows_with_context, stripe_rows, stripes


def nearest_upsample_conv_weight(conv: nn.Conv2d) -> torch.Tensor:
    """Weights of a 2×2 conv that computes ``conv(nearest ×2 upsample(x))`` at the resolution of ``x``.

    Output pixel (2i + a, 2j + b) of the upsampled conv reads upsampled rows 2i + a - 1 … 2i + a + 1,
    which are input rows i - 1, i, i (phase a = 0) or i, i, i + 1 (a = 1): two input rows, with the
    taps that land on the same row summed. Same for columns. So each of the four phases (a, b) is a
    2×2 conv — 4/9 of the multiply-adds — and one conv with 4 · C_out outputs (phase-major) does all
    four. Summed in fp32, then cast back.
    """
    weight = conv.weight.float()
    taps_per_row = {0: ([0], [1, 2]), 1: ([0, 1], [2])}  # phase → the 3×3 taps on each of its two input rows
    phases = []
    for a in (0, 1):
        rows = torch.stack([weight[:, :, taps].sum(2) for taps in taps_per_row[a]], 2)
        for b in (0, 1):
            phases.append(torch.stack([rows[:, :, :, taps].sum(3) for taps in taps_per_row[b]], 3))
    return torch.cat(phases).to(conv.weight.dtype)


def _upsample_conv_in_rows(conv: nn.Conv2d, x: torch.Tensor, out: torch.Tensor, rows: int, slope: float) -> None:
    """``out = leaky_relu(conv(nearest ×2 upsample(x)))``, ``out`` twice ``x``'s size, computed as
    :func:`nearest_upsample_conv_weight` says, ``rows`` input rows at a time; each phase is written
    straight to its pixels of ``out``."""
    weight = nearest_upsample_conv_weight(conv)
    bias = None if conv.bias is None else conv.bias.repeat(4)
    height, width, channels = x.shape[-2], x.shape[-1], conv.out_channels
    for r0, r1 in stripes(height, rows):
        window = rows_with_context(r0, r1, height)
        # the zero rows above and below the map come from the conv's padding, only where the map ends
        pad = 1 if r0 == 0 or r1 == height else 0
        phases = F.conv2d(x[:, :, window], weight, bias, padding=(pad, 1))
        for a in (0, 1):
            # conv row y starts at input row window.start - pad + y; phase a of row i starts at i + a - 1
            y0 = r0 + a - 1 - window.start + pad
            for b in (0, 1):
                phase = phases[:, (2 * a + b) * channels : (2 * a + b + 1) * channels, y0 : y0 + r1 - r0, b : b + width]
                torch.ops.aten.leaky_relu.out(phase, slope, out=out[:, :, 2 * r0 + a : 2 * r1 : 2, b::2])


class TailMaps:
    """Output-sized maps of :func:`rrdbnet_tail_fast`, kept from one call to the next.

    The engine runs the tail stripe by stripe (``blockwise.run_network``); a fresh map per stripe
    (38 MB for conv_hr's output on a 512-px-wide bf16 stripe) costs page faults, as the kernel
    zeroes every page on first touch: measured, 0.8 s of system time in a 2.6 s tail (bf16, 512²).
    """

    def __init__(self) -> None:
        self._maps: dict[str, torch.Tensor] = {}

    def get(self, role: str, like: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
        """A ``like.shape[0] × channels × height × width`` channels-last map, reused when one fits."""
        kept = self._maps.get(role)
        fits = (
            kept is not None
            and (kept.shape[0], kept.shape[1], kept.shape[3]) == (like.shape[0], channels, width)
            and kept.shape[2] >= height
            and (kept.dtype, kept.device) == (like.dtype, like.device)
        )
        if not fits:
            shape = (like.shape[0], channels, height, width)
            kept = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=torch.channels_last)
            self._maps[role] = kept
        assert kept is not None
        return kept[:, :, :height]  # the first rows of a channels-last map: still dense


def rrdbnet_tail_fast(
    network: RRDBNet, feat: torch.Tensor, maps: TailMaps | None = None, winograd: CpuKernels | None = None
) -> torch.Tensor:
    """``network.forward_tail(feat)``, equal up to float rounding, in less time on CPU (x4plus,
    36 × 512 feature rows, 2 threads: fp32 338 → 287 ms, bf16 173 → 149 ms, before reusing ``maps``).

    * Each nearest ×2 upsampling + 3×3 conv runs as one 2×2 conv at the lower resolution
      (:func:`nearest_upsample_conv_weight`): 4/9 of the multiply-adds, and no upsampled copy.
    * On CPU, every conv runs over windows of rows of about ``STRIPE_PIXELS`` output pixels, whose
      working set stays in cache (conv_hr + activation over a 144 × 2048 map: 157 ms whole, 107 ms
      in windows of 32 rows), and writes its activation straight into the next conv's input.
    * With ``winograd`` (the compiled kernels), conv_hr — the tail's largest conv, 64 → 64 at the output
      resolution — runs by F(4×4, 3×3) in fp32, on AMX tiles in bf16.

    With ``maps``, the result is a view of one of them: use it before the next call with the same ``maps``.
    """
    slope = network.lrelu.negative_slope
    maps = TailMaps() if maps is None else maps
    pixels = STRIPE_PIXELS if feat.device.type == "cpu" else 1 << 62  # GPUs: whole maps

    def rows(width: int) -> int:
        return stripe_rows(width, pixels)

    x = feat
    for name in ("conv_up1", "conv_up2", "conv_up3"):
        conv = getattr(network, name, None)
        if conv is not None:
            up = maps.get(name, feat, conv.out_channels, 2 * x.shape[-2], 2 * x.shape[-1])
            # output windows of STRIPE_PIXELS: input windows of a quarter of that
            _upsample_conv_in_rows(conv, x, up, max(1, rows(x.shape[-1]) // 4), slope)
            x = up
    hr = maps.get("conv_hr", feat, network.conv_hr.out_channels, *x.shape[-2:])
    conv_in_rows(network.conv_hr, x, hr, rows(x.shape[-1]), slope, winograd)
    out = maps.get("conv_last", feat, network.conv_last.out_channels, *x.shape[-2:])
    conv_in_rows(network.conv_last, hr, out, rows(x.shape[-1]), None)
    return out
