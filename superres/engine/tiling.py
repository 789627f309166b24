"""The tile grid: an image cut into row-major tiles, each read with context around it.

A tile only sees its own pixels plus the context around it; with context as wide as the network's
receptive field, the tiled output equals the untiled one (:func:`superres.engine.budget.default_tile_pad`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom and right by reflection so H and W are multiples of ``multiple`` (pixel-unshuffle)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = round_up(height, multiple) - height, round_up(width, multiple) - width
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
