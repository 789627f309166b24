"""Block-wise execution of RRDBNet (superres.engine.blockwise, .stripes, .tail): exact lagged stripes, the fast
tail, and regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import superres.engine.budget as budget
import superres.engine.tail as tail
from superres.archs import RRDBNet
from superres.archs.rrdbnet import RESIDUAL_SCALE, ResidualDenseBlock
from superres.engine.blockwise import blockwise_map_bytes, dense_block_in_stripes, rrdbnet_body_blockwise
from superres.engine.inference import Upscaler, load_model
from superres.engine.stripes import MIN_STRIPE_ROWS, stripe_rows
from superres.engine.tail import nearest_upsample_conv_weight, rrdbnet_tail_fast
from superres.engine.tiling import tile_grid
from superres.models.detect import describe

pytestmark = pytest.mark.usefixtures("one_thread")


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize(
    ("scale", "size", "tile"), [(4, (37, 29), 8), (4, (40, 40), 13), (2, (30, 22), 8), (1, (48, 20), 8)]
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
        folded = (size[0] // net.unshuffle, size[1] // net.unshuffle)
        assert stripe_rows(folded[1], (tile // net.unshuffle) ** 2) < folded[0]  # really in stripes
        assert (blockwise - whole).abs().max() < 1e-4 * whole.abs().max()


def _trained_size_block() -> ResidualDenseBlock:
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_feat=16, num_grow_ch=8).eval()
    for p in block.parameters():  # weights of trained size: the default init is too small to show a wrong row
        p.data.mul_(5)
    return block


@pytest.mark.parametrize("rows", [MIN_STRIPE_ROWS, 9, 13])
def test_dense_block_in_stripes_equals_the_block(rows: int) -> None:
    """Every height up to a few stripes (stripes that end inside a block's 5-row lag included), plain and residual."""
    block = _trained_size_block()
    with torch.inference_mode():
        for height in range(1, 3 * rows + 2):
            x = torch.rand(1, 16, height, 7).contiguous(memory_format=torch.channels_last)
            whole = block(x)
            out = torch.full_like(x, float("nan"))
            dense_block_in_stripes(block, x, out, rows)
            assert (out - whole).abs().max() <= 1e-5 * whole.abs().max(), height
            skip = torch.rand_like(x)
            expected = skip + RESIDUAL_SCALE * whole
            dense_block_in_stripes(block, x, skip, rows, residual=True)
            assert (skip - expected).abs().max() <= 1e-5 * expected.abs().max(), height


def test_dense_block_in_stripes_computes_each_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the lagged stripes: no context is recomputed (tiles with 5 px of it would add 10 rows per cut)."""
    block = _trained_size_block()
    computed_rows: list[int] = []
    conv2d = F.conv2d

    def counting_conv2d(*args: object, **kwargs: object) -> torch.Tensor:
        out = conv2d(*args, **kwargs)
        computed_rows.append(out.shape[-2])
        return out

    monkeypatch.setattr(F, "conv2d", counting_conv2d)
    height, rows = 50, 8
    x = torch.rand(1, 16, height, 9)
    with torch.inference_mode():
        dense_block_in_stripes(block, x, torch.empty_like(x), rows)
    # five convs, each over every row once; the zero-padded first and last windows return one spare row
    assert sum(computed_rows) == 5 * (height + 2)


def test_nearest_upsample_conv_is_a_2x2_conv_per_phase() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 4, 3, 1, 1)
    x = torch.rand(1, 5, 6, 7)
    expected = conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    phases = torch.nn.functional.conv2d(x, nearest_upsample_conv_weight(conv), conv.bias.repeat(4), padding=1)
    for a in (0, 1):
        for b in (0, 1):
            k = 2 * a + b
            got = phases[:, 4 * k : 4 * k + 4, a : a + 6, b : b + 7]
            assert torch.allclose(got, expected[:, :, a::2, b::2], atol=1e-6), (a, b)


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_fast_tail_equals_the_tail(scale: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail, "STRIPE_PIXELS", 256)  # many windows of rows, at every resolution
    torch.manual_seed(scale)
    net = RRDBNet(scale=scale, num_feat=16, num_block=1, num_grow_ch=8).eval()
    for p in net.parameters():  # weights of trained size
        p.data.mul_(5)
    with torch.inference_mode():
        for height, width in ((1, 1), (3, 5), (17, 9), (40, 3)):
            feat = torch.randn(1, 16, height, width)
            expected = net.forward_tail(feat)
            got = rrdbnet_tail_fast(net, feat)
            assert got.shape == expected.shape
            assert (got - expected).abs().max() <= 1e-5 * expected.abs().max(), (height, width)


@pytest.mark.slow
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
    monkeypatch.setattr(budget, "CPU_BLOCKWISE_MEMORY", blockwise_map_bytes(net, 40, 40, torch.float32))
    assert fits.choose_region(64, 48, 16) == 16
    seen: list[int] = []
    regions = fits.upscale(image, progress=lambda done, total: seen.append(total))
    assert seen[0] == len(tile_grid(64, 48, 16, 24)) == 12
    assert _diff(regions, whole) <= 1  # 24 px between regions covers this 1-block network's receptive field
    # room for 110 − 2·24 = 62 px on a 200-px side: four equal regions of 50, not 3 × 62 + a 14-px one
    monkeypatch.setattr(budget, "CPU_BLOCKWISE_MEMORY", blockwise_map_bytes(net, 110, 110, torch.float32))
    assert fits.choose_region(200, 150, 16) == 50


def test_progress_counts_blocks_inside_one_region() -> None:
    """An RRDBNet image that runs as one region still moves the progress bar: once per RRDB, in order."""
    torch.manual_seed(0)
    hparams = {"scale": 4, "num_feat": 8, "num_block": 3, "num_grow_ch": 4}
    net = RRDBNet(**hparams).eval()
    image = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    upscaler = Upscaler(net, describe("RRDBNet", hparams, net), device="cpu", precision="fp32", tile=8)
    assert upscaler.choose_region(40, 30, 8) == 40  # one region
    seen: list[tuple[int, int]] = []
    upscaler.upscale(image, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
