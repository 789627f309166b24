"""Cutting work into pieces: the tile grid, and RRDBNet run exactly one dense block at a time.

Tiling an image bounds memory, but a tile only sees its own pixels plus the context around it. A
network whose receptive field is larger than that context gives slightly different pixels near
tile edges than it would on the whole image. Two ways to make pieces agree with the whole image:

* **Context as wide as the receptive field.** Cheap for shallow networks (SRVGGNetCompact: one
  pixel per conv), ruinous for RRDBNet ×4: its ~350 stacked 3×3 convs see 350 px around each
  pixel; the 80 px that were measured to be enough (``inference.RRDBNET_TILE_PAD``) still make a
  256-px tile cost (256 + 160)² / 256² = 2.6× the work of its core.
* **One block at a time, over the whole image** (:func:`rrdbnet_body_blockwise`). Keep three
  feature maps of the whole image (64 channels each) and run each Residual Dense Block over them
  in stripes of rows. Within a block, each of the five convs runs one row behind the conv before
  it — exactly the row below that the next conv reads — so every row of every conv is computed
  once, with no context recomputed at all (tiles with 5 px of context, the earlier scheme, cost
  (192 + 10)² / 192² = 1.11× the work). A stripe of ~24k pixels keeps a block's working set in
  cache, which makes it faster than the whole image at once. The cost is the memory of the three
  maps, which grows with the image: the engine uses this for regions of the image whose maps fit
  its budget, and overlapping regions (with the wide context above) beyond that.

In fp32 on CPU the stripes' convs can run by Winograd's F(4×4, 3×3) (:mod:`superres.winograd`),
which reads the block input and growth outputs where they lie instead of concatenating them.

RRDBNet's upsampling tail has a fast equivalent here too (:func:`rrdbnet_tail_fast`): the same
output from fewer multiply-adds, in cache-sized windows of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from superres.archs.rrdbnet import RESIDUAL_SCALE, ResidualDenseBlock, RRDBNet
from superres.winograd import WinogradConv, WinogradKernel
from superres.winograd import fits as winograd_fits

# Pixels of one block-wise stripe on CPU. Measured on x4plus (one dense block, 512² input, 2 threads,
# Zen 4 with 32 MB L3), GFLOP/s by stripe height at width 512 — fp32: 16 rows 172, 32: 178, 48: 178,
# 64: 182, 96: 160; bf16: 16: 339, 32: 348, 48: 356, 64: 350, 96: 334; the whole image at once: 134 / 256
# (tiles of 192 px with 5 px of context, the earlier scheme: 156 / 308 useful).
STRIPE_PIXELS = 48 * 512
# Fewest rows in a stripe: a growth output must be kept for up to 5 rows above a stripe (see
# dense_block_in_stripes), and those rows must come from the stripe before.
MIN_STRIPE_ROWS = 8
# Feature maps of the whole region that block-wise execution keeps: an RRDB's input, and the
# outputs of its first and second dense block (the third writes the RRDB's output in place).
BLOCKWISE_MAPS = 3


@dataclass(frozen=True)
class Tile:
    """A tile in pixels: the core ``[y0, y1) × [x0, x1)`` it produces, read with its context
    ``[py0, py1) × [px0, px1)``."""

    y0: int
    y1: int
    x0: int
    x1: int
    py0: int
    py1: int
    px0: int
    px1: int

    def core_of(self, out: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """The core of ``out``, the output for the padded tile at ``scale`` times its size."""
        top, left = (self.y0 - self.py0) * scale, (self.x0 - self.px0) * scale
        return out[..., top : top + (self.y1 - self.y0) * scale, left : left + (self.x1 - self.x0) * scale]


def tile_grid(height: int, width: int, tile: int, pad: int) -> list[Tile]:
    """Row-major tiles covering ``height × width``; context is clipped at the image border."""
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            tiles.append(
                Tile(y0, y1, x0, x1, max(y0 - pad, 0), min(y1 + pad, height), max(x0 - pad, 0), min(x1 + pad, width))
            )
    return tiles


def supports_blockwise(network: nn.Module) -> bool:
    return isinstance(network, RRDBNet)


def blockwise_map_bytes(network: RRDBNet, height: int, width: int, dtype: torch.dtype) -> int:
    """Memory of the whole-region feature maps :func:`rrdbnet_body_blockwise` keeps for ``height × width`` input."""
    unshuffle = network.unshuffle
    pixels = -(-height // unshuffle) * -(-width // unshuffle)
    return BLOCKWISE_MAPS * network.conv_first.out_channels * pixels * dtype.itemsize


def stripe_rows(width: int, pixels: int) -> int:
    """Rows of a block-wise stripe ``width`` pixels wide with about ``pixels`` pixels."""
    return max(MIN_STRIPE_ROWS, pixels // max(width, 1))


def _stripes(height: int, rows: int) -> list[tuple[int, int]]:
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


def _conv_rows(conv: nn.Conv2d, window: torch.Tensor, first: int, lo: int, hi: int, height: int) -> torch.Tensor:
    """Rows ``[lo, hi)`` of a 3×3 conv's output over a map ``height`` rows high, from ``window``: its
    input rows ``[first, …)``, one row of context on each side (less at the map's top and bottom,
    where the conv's zero padding stands in for it)."""
    border = lo == 0 or hi == height
    out = F.conv2d(window, conv.weight, conv.bias, padding=(1 if border else 0, 1))
    start = lo - first - (0 if border else 1)
    return out[:, :, start : start + hi - lo]


def _rows_with_context(lo: int, hi: int, height: int) -> slice:
    return slice(max(lo - 1, 0), min(hi + 1, height))


def dense_block_in_stripes(
    block: ResidualDenseBlock,
    x: torch.Tensor,
    target: torch.Tensor,
    rows: int,
    residual: bool = False,
    winograd: WinogradKernel | None = None,
) -> None:
    """``target = block(x)`` computed in stripes of ``rows`` rows; with ``residual``,
    ``target += β · block(x)`` (the RRDB's scaled skip, in place). ``target`` is not ``x``.
    With ``winograd`` (fp32 on CPU), the convs run by Winograd's F(4×4, 3×3) where their channels fit it.

    Conv j of the stripe ``[r0, r1)`` computes rows ``[r0 + 5 - j, r1 + 5 - j)`` (from 0 on the
    first stripe, to the bottom on the last): one row behind conv j - 1, whose output it reads one
    row above and below. So each row of each conv is computed exactly once. Growth output j
    (x1 … x4) is kept for the stripe after, for the 6 - j rows above its new ones that the later
    convs there still read.
    """
    height, convs = x.shape[-2], (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5)
    slope = block.lrelu.negative_slope
    groups = _dense_block_input_groups(block)
    fast = [winograd.prepare(conv, groups[:j]) if winograd else None for j, conv in enumerate(convs, start=1)]
    if not all(fast):  # all five by the kernel or none: the block as winograd_speeds_up judges it
        fast = [None] * len(convs)
    growth: dict[int, tuple[int, torch.Tensor]] = {}  # j → (first row, rows) of growth output j
    for r0, r1 in _stripes(height, rows):
        for j, (conv, prepared) in enumerate(zip(convs, fast), start=1):
            lag = len(convs) - j
            lo = 0 if r0 == 0 else min(r0 + lag, height)
            hi = height if r1 == height else min(r1 + lag, height)
            if lo >= hi:  # done by the stripe before
                continue
            window = _rows_with_context(lo, hi, height)
            earlier = (growth[k] for k in range(1, j))
            parts = [x[:, :, window]] + [g[:, :, window.start - at : window.stop - at] for at, g in earlier]
            rows_of = _ConvRows(conv, parts, window.start, lo, hi, height, prepared)
            if j < len(convs):
                keep = min(len(convs) + 1 - j, lo - growth[j][0]) if j in growth else 0
                kept = _empty_rows(x, conv.out_channels, keep + hi - lo)
                if keep:
                    previous = growth[j][1]
                    kept[:, :, :keep] = previous[:, :, previous.shape[2] - keep :]
                rows_of.activated_into(kept[:, :, keep:], slope)
                growth[j] = (lo - keep, kept)
            else:  # the same operations as ResidualDenseBlock and RRDB, so that bf16 rounds the same way
                result = rows_of.compute().mul_(RESIDUAL_SCALE).add_(x[:, :, lo:hi])
                if residual:
                    target[:, :, lo:hi].add_(result.mul_(RESIDUAL_SCALE))
                else:
                    target[:, :, lo:hi] = result


def _dense_block_input_groups(block: ResidualDenseBlock) -> list[int]:
    """Channels of the block input and of each growth output: conv j reads the first j groups."""
    return [block.conv1.in_channels] + [block.conv1.out_channels] * 4


def winograd_speeds_up(network: nn.Module) -> bool:
    """Whether ``network``'s body would run by Winograd (an RRDBNet whose dense blocks fit the kernel)."""
    if not isinstance(network, RRDBNet) or len(network.body) == 0:
        return False
    block = network.body[0].rdb1
    convs, groups = (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5), _dense_block_input_groups(block)
    return all(winograd_fits(conv, groups[:j]) for j, conv in enumerate(convs, start=1))


@dataclass
class _ConvRows:
    """Rows ``[lo, hi)`` of ``conv`` over a map ``height`` rows high, from its input rows ``[first, …)``
    given as channel groups (``parts``): by the direct conv, or by ``fast`` (the Winograd kernel's
    preparation of ``conv``), which reads the groups where they are."""

    conv: nn.Conv2d
    parts: list[torch.Tensor]
    first: int
    lo: int
    hi: int
    height: int
    fast: WinogradConv | None

    def compute(self) -> torch.Tensor:
        if self.fast is None:
            return _conv_rows(self.conv, torch.cat(self.parts, 1), self.first, self.lo, self.hi, self.height)
        out = _empty_rows(self.parts[0], self.conv.out_channels, self.hi - self.lo)
        self.fast.rows(self.parts, self.first, self.lo, self.hi, self.height, out, None)
        return out

    def activated_into(self, out: torch.Tensor, slope: float) -> None:
        """LeakyReLU of the rows, written into ``out``."""
        if self.fast is None:
            torch.ops.aten.leaky_relu.out(self.compute(), slope, out=out)
        else:  # the kernel applies it as it writes
            self.fast.rows(self.parts, self.first, self.lo, self.hi, self.height, out, slope)


def _empty_rows(like: torch.Tensor, channels: int, rows: int) -> torch.Tensor:
    shape = (like.shape[0], channels, rows, like.shape[-1])
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=torch.channels_last)


def rrdbnet_body_blockwise(
    network: RRDBNet,
    x: torch.Tensor,
    tile: int,
    on_block: Callable[[int, int], None] | None = None,
    winograd: WinogradKernel | None = None,
) -> torch.Tensor:
    """``network.forward_body(x)``, computed one dense block at a time in stripes of about ``tile²``
    pixels (on CPU at most ``STRIPE_PIXELS``, which run faster than larger ones); ``on_block(done, total)``
    is called after each RRDB. With ``winograd``, the dense blocks' convs run by F(4×4, 3×3) (fp32, CPU).

    Equal to the whole-image computation up to float rounding (the convs see other shapes), in
    the memory of three feature maps of ``x``'s size plus one stripe's working set.
    """
    # ×1 and ×2 models fold the input first (pixel-unshuffle): stripes are in folded pixels
    fold = network.unshuffle
    pixels = max(1, tile // fold) ** 2
    if x.device.type == "cpu":
        pixels = min(pixels, STRIPE_PIXELS)
    one_stripe = (x.shape[-2] // fold) * (x.shape[-1] // fold) <= pixels
    if one_stripe and winograd is None:  # the plain forward pass
        return network.forward_body(x)
    if fold > 1:
        x = F.pixel_unshuffle(x, fold)
    height, width = x.shape[-2:]
    rows = stripe_rows(width, pixels)
    shape = (x.shape[0], network.conv_first.out_channels, height, width)
    block_in, first, second = (
        torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        for _ in range(BLOCKWISE_MAPS)
    )

    _conv_in_rows(network.conv_first, x, block_in, rows, None)
    for done, rrdb in enumerate(network.body, start=1):
        dense_block_in_stripes(rrdb.rdb1, block_in, first, rows, winograd=winograd)
        dense_block_in_stripes(rrdb.rdb2, first, second, rows, winograd=winograd)
        # RRDB output = rdb3(…) · β + RRDB input, written over the input: nothing else reads it now
        dense_block_in_stripes(rrdb.rdb3, second, block_in, rows, residual=True, winograd=winograd)
        if on_block is not None:
            on_block(done, len(network.body))

    # forward_body: conv_first(x) + conv_body(body(conv_first(x))); conv_first is recomputed per
    # stripe (3 → 64 channels, cheap) rather than kept as a fourth map
    for r0, r1 in _stripes(height, rows):
        window = _rows_with_context(r0, r1, height)
        feat = _conv_rows(network.conv_first, x[:, :, window], window.start, r0, r1, height)
        body = _conv_rows(network.conv_body, block_in[:, :, window], window.start, r0, r1, height)
        torch.add(feat, body, out=first[:, :, r0:r1])
    return first


# -- the upsampling tail ---------------------------------------------------------------------------


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
    for r0, r1 in _stripes(height, rows):
        window = _rows_with_context(r0, r1, height)
        # the zero rows above and below the map come from the conv's padding, only where the map ends
        pad = 1 if r0 == 0 or r1 == height else 0
        phases = F.conv2d(x[:, :, window], weight, bias, padding=(pad, 1))
        for a in (0, 1):
            # conv row y starts at input row window.start - pad + y; phase a of row i starts at i + a - 1
            y0 = r0 + a - 1 - window.start + pad
            for b in (0, 1):
                phase = phases[:, (2 * a + b) * channels : (2 * a + b + 1) * channels, y0 : y0 + r1 - r0, b : b + width]
                torch.ops.aten.leaky_relu.out(phase, slope, out=out[:, :, 2 * r0 + a : 2 * r1 : 2, b::2])


def _conv_in_rows(
    conv: nn.Conv2d,
    x: torch.Tensor,
    out: torch.Tensor,
    rows: int,
    slope: float | None,
    winograd: WinogradKernel | None = None,
) -> None:
    """``out = conv(x)``, then ``leaky_relu`` unless ``slope`` is None, ``rows`` rows at a time
    (by ``winograd`` where the conv fits it)."""
    height = x.shape[-2]
    fast = winograd.prepare(conv, [x.shape[1]]) if winograd else None
    for r0, r1 in _stripes(height, rows):
        window = _rows_with_context(r0, r1, height)
        rows_of = _ConvRows(conv, [x[:, :, window]], window.start, r0, r1, height, fast)
        if slope is None:
            out[:, :, r0:r1] = rows_of.compute()
        else:
            rows_of.activated_into(out[:, :, r0:r1], slope)


class TailMaps:
    """Output-sized maps of :func:`rrdbnet_tail_fast`, kept from one call to the next.

    The engine runs the tail stripe by stripe (``inference.run_network``); a fresh map per stripe
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
    network: RRDBNet, feat: torch.Tensor, maps: TailMaps | None = None, winograd: WinogradKernel | None = None
) -> torch.Tensor:
    """``network.forward_tail(feat)``, equal up to float rounding, in less time on CPU (x4plus,
    36 × 512 feature rows, 2 threads: fp32 338 → 287 ms, bf16 173 → 149 ms, before reusing ``maps``).

    * Each nearest ×2 upsampling + 3×3 conv runs as one 2×2 conv at the lower resolution
      (:func:`nearest_upsample_conv_weight`): 4/9 of the multiply-adds, and no upsampled copy.
    * On CPU, every conv runs over windows of rows of about ``STRIPE_PIXELS`` output pixels, whose
      working set stays in cache (conv_hr + activation over a 144 × 2048 map: 157 ms whole, 107 ms
      in windows of 32 rows), and writes its activation straight into the next conv's input.
    * With ``winograd`` (fp32, CPU), conv_hr — the tail's largest conv, 64 → 64 at the output
      resolution — runs by F(4×4, 3×3).

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
    _conv_in_rows(network.conv_hr, x, hr, rows(x.shape[-1]), slope, winograd)
    out = maps.get("conv_last", feat, network.conv_last.out_channels, *x.shape[-2:])
    _conv_in_rows(network.conv_last, hr, out, rows(x.shape[-1]), None)
    return out
