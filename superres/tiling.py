"""Cutting work into tiles: the tile grid, and RRDBNet run exactly one dense block at a time.

Tiling an image bounds memory, but a tile only sees its own pixels plus the context around it. A
network whose receptive field is larger than that context gives slightly different pixels near
tile edges than it would on the whole image. Two ways to make tiles agree with the whole image:

* **Context as wide as the receptive field.** Cheap for shallow networks (SRVGGNetCompact: one
  pixel per conv), ruinous for RRDBNet ×4: its ~350 stacked 3×3 convs see 350 px around each
  pixel; the 80 px that were measured to be enough (``inference.RRDBNET_TILE_PAD``) still make a
  256-px tile cost (256 + 160)² / 256² = 2.6× the work of its core.
* **One block at a time, over the whole image** (:func:`rrdbnet_body_blockwise`). Keep three
  feature maps of the whole image (64 channels each) and run each Residual Dense Block over them
  tile by tile. A dense block is five 3×3 convs deep, so 5 px of context per tile make every tile
  *exactly* what the whole-image block computes (zero padding only at the real image border),
  for about (256 + 10)² / 256² = 1.08× the work at tile 256. The cost is the memory of the three
  maps, which grows with the image: the engine uses this for regions of the image whose maps fit
  its budget, and overlapping regions (with the wide context above) beyond that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from superres.archs.rrdbnet import RESIDUAL_SCALE, RRDBNet

# Depth of one ResidualDenseBlock in 3×3 convs (conv1 → … → conv5): the context a block-wise tile needs.
DENSE_BLOCK_CONTEXT = 5
# Largest tile of a block-wise pass. Smaller tiles keep a dense block's working set in cache: measured
# on x4plus (one RRDB, 512² input, 2 threads, Zen 4 with 32 MB L3), useful GFLOP/s by tile —
# bf16: 64: 264, 96: 283, 128: 317, 192: 327, 256: 306, 512 (untiled): 246; fp32: 139–143 for 64–256, 123 untiled.
BLOCKWISE_TILE = 192
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
    element = torch.empty((), dtype=dtype).element_size()
    return BLOCKWISE_MAPS * network.conv_first.out_channels * pixels * element


Region = tuple[slice, slice]  # rows, columns (with context) of the whole-region maps


def _tiled_pass(
    target: torch.Tensor, tile: int, context: int, compute: Callable[[Region], torch.Tensor], residual: bool = False
) -> None:
    """``target[core] = compute(core + context)[core]`` over all tiles; with ``residual``,
    ``target[core] = compute(…)[core] · β + target[core]`` (the RRDB's scaled skip, in place)."""
    height, width = target.shape[-2:]
    for t in tile_grid(height, width, tile, context):
        out = t.core_of(compute((slice(t.py0, t.py1), slice(t.px0, t.px1))))
        core = target[..., t.y0 : t.y1, t.x0 : t.x1]
        core.copy_(out * RESIDUAL_SCALE + core if residual else out)


def rrdbnet_body_blockwise(network: RRDBNet, x: torch.Tensor, tile: int) -> torch.Tensor:
    """``network.forward_body(x)``, computed one dense block at a time in tiles of at most ``tile``
    px (and at most ``BLOCKWISE_TILE``, which runs faster than larger ones).

    Equal to the whole-image computation up to float rounding (the convs see other shapes), in
    the memory of three feature maps of ``x``'s size plus one tile's working set.
    """
    # ×1 and ×2 models fold the input first (pixel-unshuffle): tiles are in folded pixels
    tile = min(max(1, tile // network.unshuffle), BLOCKWISE_TILE)
    if max(x.shape[-2:]) <= tile * network.unshuffle:  # one tile: that is the plain forward pass
        return network.forward_body(x)
    if network.unshuffle > 1:
        x = F.pixel_unshuffle(x, network.unshuffle)
    shape = (x.shape[0], network.conv_first.out_channels, *x.shape[-2:])
    block_in, first, second = (
        torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        for _ in range(BLOCKWISE_MAPS)
    )

    _tiled_pass(block_in, tile, 1, lambda r: network.conv_first(x[..., r[0], r[1]]))
    context = DENSE_BLOCK_CONTEXT
    for rrdb in network.body:
        _tiled_pass(first, tile, context, lambda r, rrdb=rrdb: rrdb.rdb1(block_in[..., r[0], r[1]]))
        _tiled_pass(second, tile, context, lambda r, rrdb=rrdb: rrdb.rdb2(first[..., r[0], r[1]]))
        # RRDB output = rdb3(…) · β + RRDB input, written over the input: nothing else reads it now
        _tiled_pass(block_in, tile, context, lambda r, rrdb=rrdb: rrdb.rdb3(second[..., r[0], r[1]]), residual=True)

    # forward_body: conv_first(x) + conv_body(body(conv_first(x))); conv_first is recomputed per
    # tile (3 → 64 channels, cheap) rather than kept as a fourth map
    def trunk(r: Region) -> torch.Tensor:
        return network.conv_first(x[..., r[0], r[1]]) + network.conv_body(block_in[..., r[0], r[1]])

    _tiled_pass(first, tile, 1, trunk)
    return first
