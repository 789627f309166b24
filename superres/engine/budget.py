"""How much of the image runs at once: context around tiles, and the memory budgets that size them.

Tile sizes are chosen from an estimate of a network's activation memory per LR pixel (from its
structure, checked against measured peak RSS) and the free RAM or VRAM; the context around each tile
is what makes the tiled output equal the untiled one.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import torch

from superres.engine.devices import PRECISIONS

if TYPE_CHECKING:
    from superres.models.detect import ModelInfo

# Context in LR pixels around each RRDBNet tile. Its receptive field (~350 convs) covers any tile, so
# the pad was measured: RealESRGAN_x4plus on a 256×256 crop of Set14/lenna, interior tiles of 64,
# max (mean) |tiled − untiled| in 8-bit levels — pad 8: 51 (1.5), 16: 43 (0.97), 24: 26 (0.63),
# 32: 15 (0.34), 48: 3 (0.07), 64: 1 (0.012). Over the whole crop (lenna[128:384, 128:384], border
# tiles included) pad 64 still left max 3 (45 pixels > 1); 80: max 1 (mean 0.0027); 96: max 1 (0.0002).
# GAN-trained RRDBNets need far more context than the 10 px Real-ESRGAN uses. SRVGGNetCompact and
# SRResNet get their exact receptive field instead. (All in fp32. In bf16, 80 px leave max 4 levels on
# 0.2 % of the pixels, anywhere: rounding carries the tiny truncation difference on. Only images whose
# maps exceed the block-wise budget run as regions; block-wise stripes are exact in bf16 too.)
RRDBNET_TILE_PAD = 80


MIN_TILE = 16


# Memory for the upsampling tail of one tile (see run_network): stripes of rows keep within it.
TAIL_MEMORY = 256 << 20


# Activation memory a CPU may use for one tile when the tile size is chosen automatically.
CPU_TILE_MEMORY = 1 << 30


# Memory for the whole-region feature maps of RRDBNet's block-wise execution (superres.engine.blockwise) on a
# CPU. Regions whose maps fit are computed exactly, in stripes (superres.engine.blockwise); larger images
# are cut into overlapping regions of that size (with RRDBNET_TILE_PAD of context between them).
# 512 MiB: a 836×836 fp32 region (1180×1180 in bf16).
CPU_BLOCKWISE_MEMORY = 512 << 20


def default_tile_pad(info: ModelInfo) -> int:
    """Context around each tile (LR pixels) that makes tiled output equal untiled output."""
    hp = info.hparams
    if info.arch == "SRVGGNetCompact":  # num_conv + 2 convs 3×3, all at LR: exact
        return hp["num_conv"] + 2
    if info.arch == "SRResNet":  # 9×9, 2 convs per block, 1 conv, sub-pixel convs at ×1, ×2, …, 9×9 at ×scale
        stages = int(math.log2(info.scale))
        return math.ceil(4 + 2 * hp["num_block"] + 1 + sum(0.5**k for k in range(stages)) + 4 / info.scale)
    return RRDBNET_TILE_PAD


def _activation_channels(info: ModelInfo) -> tuple[float, float]:
    """(channels alive at LR size, at output size) at the network's memory peak, from its structure.

    Checked against measured peak RSS on CPU (fp32): SRVGGNetCompact ×4 ≈ 0.7–1.4 KB per LR pixel
    (estimate 1.3 KB). For RRDBNet this is one block-wise stripe; the whole-region feature maps have
    their own budget (:func:`blockwise_budget`) and the tail its own (``TAIL_MEMORY``).
    """
    hp = info.hparams
    if info.arch == "SRVGGNetCompact":  # conv in and out at LR; shuffle, upsampled input and sum at HR
        return 3 * hp["num_feat"], 3 * info.out_channels
    if info.arch == "SRResNet":  # block input + two convs + skip at LR; the last sub-pixel stage at HR
        return 4 * hp["num_feat"], 2 * hp["num_feat"]
    if info.arch == "RRDBNet":  # a dense block: its input (and a copy), four growth outputs, the largest
        # concatenation and conv5's output; the upsampling tail runs in stripes of TAIL_MEMORY (run_network)
        return 4 * hp["num_feat"] + 8 * hp["num_grow_ch"], 0
    return 3 * hp.get("num_feat", 64) + 8 * hp.get("num_grow_ch", 32), 3 * hp.get("num_feat", 64)  # unknown


def activation_bytes_per_pixel(info: ModelInfo, precision: str) -> float:
    """Estimated peak activation memory per LR input pixel."""
    lr_channels, hr_channels = _activation_channels(info)
    element = PRECISIONS[precision].itemsize
    return element * (lr_channels + hr_channels * info.scale**2)


def available_ram() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(device: torch.device) -> int:
    """Bytes of activation memory one tile may use: most of the free VRAM, or part of the free RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.7)
    available = available_ram()
    if available is None:
        return CPU_TILE_MEMORY
    return min(CPU_TILE_MEMORY, available // 4)


def blockwise_budget(device: torch.device) -> int:
    """Bytes the whole-region feature maps of block-wise execution may take (see superres.engine.blockwise)."""
    if device.type == "cpu":
        available = available_ram()
        return CPU_BLOCKWISE_MEMORY if available is None else min(CPU_BLOCKWISE_MEMORY, available // 8)
    return memory_budget(device) // 2
