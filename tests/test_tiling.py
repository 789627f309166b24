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
from superres.engine.stripes import MIN_STRIPE_ROWS, conv_rows, empty_rows, rows_with_context, stripe_rows, stripes
from superres.engine.tail import nearest_upsample_conv_weight, rrdbnet_tail_fast
from superres.engine.tiling import tile_grid
from superres.models.detect import describe
from superres.models.weights import load_network

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


def test_stripe_rows_and_stripes() -> None:
    assert stripe_rows(512, 48 * 512) == 48
    assert stripe_rows(1, 100) == 100 and stripe_rows(0, 100) == 100  # a one-pixel-wide map: rows are pixels
    assert stripe_rows(1000, 100) == MIN_STRIPE_ROWS
    assert stripes(20, 8) == [(0, 8), (8, 16), (16, 20)] and stripes(8, 8) == [(0, 8)]
    assert rows_with_context(0, 8, 20) == slice(0, 9) and rows_with_context(8, 16, 20) == slice(7, 17)
    assert rows_with_context(16, 20, 20) == slice(15, 20)


def test_conv_rows_are_the_convs_rows_whatever_window_holds_them() -> None:
    """Rows [lo, hi) of a 3×3 conv from any window that starts one row above them (or at the top), with the
    map's zero padding only at its top and bottom."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 5, 3, padding=1)
    x = torch.randn(2, 4, 12, 7)
    with torch.inference_mode():
        whole = conv(x)
        for lo, hi, stop in [(0, 3, 4), (0, 3, 12), (4, 9, 10), (4, 9, 12), (9, 12, 12), (0, 12, 12)]:
            first = max(lo - 1, 0)
            got = conv_rows(conv, x[:, :, first:stop], first, lo, hi, 12)
            assert got.shape == (2, 5, hi - lo, 7) and torch.allclose(got, whole[:, :, lo:hi], atol=1e-6), (lo, hi, stop)


def test_empty_rows_are_channels_last_on_the_maps_device() -> None:
    like = torch.empty(2, 3, 4, 5, dtype=torch.bfloat16, device="meta")
    rows = empty_rows(like, 7, 6)
    assert rows.shape == (2, 7, 6, 5) and rows.dtype == torch.bfloat16 and rows.device.type == "meta"
    assert rows.is_contiguous(memory_format=torch.channels_last)


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


@pytest.mark.slow  # ~10 s of CPU: runs in CI, not for every mutant
def test_x4plus_regions_with_the_default_context_equal_the_whole_image(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CI-sized version of test_rrdbnet_default_pad_makes_tiles_seamless: real x4plus (all 23 blocks: the
    first few alone carry a truncated context nowhere — 10 of them leave 6e-6 at 48 px), a 24×200 strip of a
    photo, the block-wise budget lowered so that it runs as two regions of 100 px, each read with
    RRDBNET_TILE_PAD of context. Measured max |tiled − whole| (float, 8-bit levels) with 80 px: 5.6e-5, 1;
    64 px: 1.6e-3, 1; 48 px: 1.0e-2, 3 (on 167 values). Two more strips of lenna: 8.2e-5 / 1.8e-4 with 80 px,
    2.5e-3 / 3.6e-3 with 48 px."""
    network, info = load_network(shared / "weights" / "RealESRGAN_x4plus_fp16round.pth")
    lenna = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "lenna.png").convert("RGB"))
    strip = torch.from_numpy(lenna[200:224, 100:300].copy()).permute(2, 0, 1)[None].float() / 255
    whole = Upscaler(network, info, device="cpu", precision="fp32", tile=0).upscale_tensor(strip)

    monkeypatch.setattr(budget, "CPU_BLOCKWISE_MEMORY", 1)  # no whole-image maps: regions of the tile's size
    regions = Upscaler(network, info, device="cpu", precision="fp32", tile=100)
    assert regions.tile_pad == budget.RRDBNET_TILE_PAD and regions.choose_region(24, 200, 100) == 100
    seen: list[int] = []
    tiled = regions.upscale_tensor(strip, progress=lambda done, total: seen.append(total))
    assert seen[0] == 2 * 23  # two regions of 23 blocks each
    assert (tiled - whole).abs().max() < 4e-4  # a tenth of a level
    assert _diff(_to_8bit(tiled), _to_8bit(whole)) <= 1


def _to_8bit(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


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
