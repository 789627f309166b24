"""Block-wise execution of RRDBNet (superres.tiling): exact tiles with 5 px of context, and regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import superres.inference as inference
from superres.archs import RRDBNet
from superres.detect import describe
from superres.inference import Upscaler, load_model
from superres.tiling import DENSE_BLOCK_CONTEXT, blockwise_map_bytes, rrdbnet_body_blockwise, tile_grid

pytestmark = pytest.mark.usefixtures("one_thread")


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize(
    ("scale", "size", "tile"), [(4, (37, 29), 8), (4, (40, 40), 13), (2, (30, 22), 8), (1, (32, 20), 8)]
)
def test_blockwise_body_equals_the_whole_image_body(scale: int, size: tuple[int, int], tile: int) -> None:
    torch.manual_seed(scale)
    net = RRDBNet(scale=scale, num_feat=16, num_block=2, num_grow_ch=8).eval()
    for p in net.parameters():  # weights of trained size: the default init is too small to show a wrong context
        p.data.mul_(5)
    x = torch.rand(1, 3, *size)
    with torch.inference_mode():
        whole = net.forward_body(x)
        blockwise = rrdbnet_body_blockwise(net, x, tile)
        assert len(tile_grid(*whole.shape[-2:], max(1, tile // net.unshuffle), 0)) > 1  # really tiled
        assert (blockwise - whole).abs().max() < 1e-4 * whole.abs().max()
        # the context is what makes it exact: one pixel less of it and a dense block's tiles differ
        block, inner = net.body[0].rdb1, torch.rand(1, 16, 24, 24)
        errors = []
        for context in (DENSE_BLOCK_CONTEXT, DENSE_BLOCK_CONTEXT - 1):
            out = torch.empty_like(inner)
            for t in tile_grid(24, 24, 8, context):
                out[..., t.y0 : t.y1, t.x0 : t.x1] = t.core_of(block(inner[..., t.py0 : t.py1, t.px0 : t.px1]))
            errors.append(float((out - block(inner)).abs().max()))
        assert errors[0] < 1e-6 < 1e-5 < errors[1], errors


def test_blockwise_tiles_equal_untiled_with_real_weights(shared: Path) -> None:
    """x4plus, 96×96 of a real photo: tiles of 32 with 5 px of context equal the untiled output,
    in fp32 and in bf16 (where both sides run bf16)."""
    x4plus = load_model(shared / "weights" / "RealESRGAN_x4plus_fp16round.pth", device="cpu", precision="fp32")
    lenna = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "lenna.png").convert("RGB"))
    crop = lenna[200:296, 200:296]
    for precision in ("fp32", "bf16"):
        whole = Upscaler(x4plus._module, x4plus.info, device="cpu", precision=precision, tile=0).upscale(crop)
        tiled = Upscaler(x4plus._module, x4plus.info, device="cpu", precision=precision, tile=32).upscale(crop)
        assert _diff(tiled, whole) <= 1, precision


def test_regions_when_the_feature_maps_do_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    hparams = {"scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    net = RRDBNet(**hparams).eval()
    info = describe("RRDBNet", hparams, net)
    image = (np.random.default_rng(0).random((64, 48, 3)) * 255).astype(np.uint8)
    whole = Upscaler(net, info, device="cpu", precision="fp32", tile=0).upscale(image)

    fits = Upscaler(net, info, device="cpu", precision="fp32", tile=16, tile_pad=24)
    assert fits.choose_region(64, 48, 16) == 64  # the whole image: one region, block-wise inside
    # room for the maps of a 56×56 region only: regions of 56 − 2·24 = 8 → at least the tile, 16
    monkeypatch.setattr(inference, "CPU_BLOCKWISE_MEMORY", blockwise_map_bytes(net, 40, 40, torch.float32))
    assert fits.choose_region(64, 48, 16) == 16
    seen: list[int] = []
    regions = fits.upscale(image, progress=lambda done, total: seen.append(total))
    assert seen[0] == len(tile_grid(64, 48, 16, 24)) == 12
    assert _diff(regions, whole) <= 1  # 24 px between regions covers this 1-block network's receptive field
    # room for 110 − 2·24 = 62 px on a 200-px side: four equal regions of 50, not 3 × 62 + a 14-px one
    monkeypatch.setattr(inference, "CPU_BLOCKWISE_MEMORY", blockwise_map_bytes(net, 110, 110, torch.float32))
    assert fits.choose_region(200, 150, 16) == 50
