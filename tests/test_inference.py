"""The inference engine: golden outputs, seamless tiles, colour modes, precision fallback, memory back-off."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import superres.engine.budget as budget
import superres.engine.colour as colour
import superres.engine.devices as devices
import superres.engine.inference as inference
from superres.archs import RRDBNet, SRResNet
from superres.engine.inference import Upscaler, all_finite, load_model, resolve_model_path
from superres.engine.tiling import Tile, pad_to_multiple, tile_grid
from superres.errors import ConfigError, ImageError, WeightsError
from superres.models.detect import ModelInfo, describe

X4PLUS = "RealESRGAN_x4plus_fp16round.pth"
ANIME = "realesr-animevideov3.pth"
REFERENCE = Path("reference_outputs") / "realesrgan_x4plus"


@pytest.fixture(scope="session")
def x4plus(shared: Path) -> Upscaler:
    """RRDBNet ×4 with the real Real-ESRGAN weights, loaded once per session."""
    return load_model(shared / "weights" / X4PLUS, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def anime(shared: Path) -> Upscaler:
    """SRVGGNetCompact ×4 (0.6 M parameters): real weights, fast enough for 256×256 images."""
    return load_model(shared / "weights" / ANIME, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def lenna(shared: Path) -> np.ndarray:
    return np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "lenna.png").convert("RGB"))


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


def _tiny(arch_scale: int = 4, seed: int = 0) -> tuple[nn.Module, object]:
    """A small random RRDBNet and its ModelInfo, for properties that need no trained weights."""
    torch.manual_seed(seed)
    hparams = {"scale": arch_scale, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    network = RRDBNet(**hparams).eval()
    return network, describe("RRDBNet", hparams, network)


# -- golden outputs ------------------------------------------------------------------------------


@pytest.mark.slow
def test_reproduces_official_real_esrgan_outputs(x4plus: Upscaler, shared: Path) -> None:
    inputs = sorted((shared / REFERENCE / "inputs").glob("*.png"))
    assert [path.stem for path in inputs] == ["16x16", "32x32", "64x64"]
    for path in inputs:
        ours = np.asarray(x4plus.upscale(Image.open(path)))
        official = np.asarray(Image.open(shared / REFERENCE / "outputs" / path.name).convert("RGB"))
        assert ours.shape == official.shape, path.name
        diff = _diff(ours, official)
        assert diff.max() <= 3 and diff.mean() <= 0.15, (path.name, diff.max(), diff.mean())


# -- tiling --------------------------------------------------------------------------------------


def test_tile_grid_covers_every_pixel_once() -> None:
    count = np.zeros((70, 45), int)
    for t in tile_grid(70, 45, 32, 8):
        count[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert (count == 1).all()


def test_tile_grid_reads_context_on_all_four_sides() -> None:
    """Every bound of every tile, row-major: core, then context ``pad`` px beyond it, clipped at the image."""
    (height, width), tile, pad = (20, 13), 8, 3
    cores = [(y0, min(y0 + 8, 20), x0, min(x0 + 8, 13)) for y0 in (0, 8, 16) for x0 in (0, 8)]
    expected = [
        Tile(y0, y1, x0, x1, max(y0 - 3, 0), min(y1 + 3, 20), max(x0 - 3, 0), min(x1 + 3, 13)) for y0, y1, x0, x1 in cores
    ]
    assert tile_grid(height, width, tile, pad) == expected
    # the same, spelt out for the middle-left tile: 3 px above and below, none left (the border), 3 right
    assert expected[2] == Tile(8, 16, 0, 8, 5, 19, 0, 11)
    assert tile_grid(20, 13, 8, 0) == [Tile(*core, *core) for core in cores]  # no context: the cores alone
    assert tile_grid(5, 4, 8, 3) == [Tile(0, 5, 0, 4, 0, 5, 0, 4)]  # one tile larger than the image


def test_core_of_cuts_the_context_out_of_the_output() -> None:
    t = Tile(8, 16, 8, 12, 5, 19, 5, 15)  # 14 × 10 px read, the 8 × 4 core 3 px down and 3 px right in it
    out = torch.arange(2 * 14 * 2 * 10 * 2).reshape(1, 2, 14 * 2, 10 * 2)  # the tile's output at scale 2
    np.testing.assert_array_equal(t.core_of(out, 2), out[..., 6:22, 6:14])
    np.testing.assert_array_equal(t.core_of(out[..., ::2, ::2]), out[..., ::2, ::2][..., 3:11, 3:7])


@pytest.mark.parametrize(("height", "width"), [(5, 6), (5, 8), (7, 8), (8, 7), (8, 8), (2, 3), (2, 9), (9, 3), (5, 2)])
def test_pad_to_multiple_mirrors_bottom_and_right(height: int, width: int) -> None:
    """Pixel-unshuffle needs H and W divisible by 4 (×1 models): the missing rows and columns are the image
    mirrored at its bottom and right edges, or the edge repeated where the image is too small to mirror."""
    x = torch.arange(3 * height * width, dtype=torch.float32).reshape(1, 3, height, width)
    rows, cols = -height % 4, -width % 4
    mode = "reflect" if rows < height and cols < width else "edge"
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, rows), (0, cols)), mode=mode)
    np.testing.assert_array_equal(pad_to_multiple(x, 4).numpy(), expected)
    np.testing.assert_array_equal(pad_to_multiple(x[0], 4).numpy(), expected[0])  # C×H×W as well
    if rows == cols == 0:
        assert pad_to_multiple(x, 4) is x  # nothing to do: no copy


@pytest.mark.parametrize(("tile", "crop"), [(32, (160, 256, 200, 296)), (24, (160, 256, 200, 296)), (40, (300, 344, 40, 115))])
def test_tiled_equals_untiled_exactly_in_fp32(anime: Upscaler, lenna: np.ndarray, tile: int, crop: tuple[int, ...]) -> None:
    """SRVGGNetCompact reads exactly its receptive field (num_conv + 2 = 18 px) around each tile: in fp32 by
    PyTorch's conv the tiled image is the untiled one, bit for bit (measured: max |Δ| 0 on every crop and tile
    tried), and one pixel less context shows (measured: 1 level on a few dozen pixels). By the Winograd kernel
    (the default on CPUs), whose 4×4 tiles fall elsewhere in each tile's rows, within a level."""
    photo = lenna[crop[0] : crop[1], crop[2] : crop[3]]

    def upscaler(**options: Any) -> Upscaler:
        return Upscaler(anime._module, anime.info, device="cpu", precision="fp32", winograd=False, **options)

    whole = upscaler(tile=0).upscale(photo)
    seen: list[int] = []
    tiled = upscaler(tile=tile)
    assert tiled.tile_pad == 18
    out = tiled.upscale(photo, progress=lambda d, n: seen.append(n))
    assert seen[0] == len(tile_grid(*photo.shape[:2], tile, 18)) > 2  # really tiled
    assert _diff(out, whole).max() == 0
    assert _diff(upscaler(tile=tile, tile_pad=17).upscale(photo), whole).max() >= 1
    # without context the seams show
    assert _diff(upscaler(tile=tile, tile_pad=0).upscale(photo), whole).max() > 8
    by_kernel = Upscaler(anime._module, anime.info, device="cpu", precision="fp32", tile=tile).upscale(photo)
    assert _diff(by_kernel, whole).max() <= 1


def test_tiled_bf16_is_within_a_level_of_untiled(anime: Upscaler, lenna: np.ndarray) -> None:
    """bf16 rounds a conv's sums differently for different input shapes, so tiles can differ from the whole
    image by its rounding (measured on this crop, tiles of 24: 1 level on 2804 of 110592 values; tiles of 32: 0)."""
    photo = lenna[160:256, 200:296]
    whole = Upscaler(anime._module, anime.info, device="cpu", precision="bf16", tile=0).upscale(photo)
    tiled = Upscaler(anime._module, anime.info, device="cpu", precision="bf16", tile=24).upscale(photo)
    assert _diff(tiled, whole).max() <= 1


@pytest.mark.parametrize(("scale", "num_block"), [(4, 4), (2, 3), (8, 2)])
def test_srresnet_tiled_equals_untiled_exactly_in_fp32(lenna: np.ndarray, scale: int, num_block: int) -> None:
    """SRResNet's context is its exact receptive field (9×9 convs, two per block, sub-pixel stages): tiles equal
    the whole image bit for bit in fp32, and one pixel less shows (measured: 1 level on 68–1159 pixels)."""
    torch.manual_seed(0)
    hparams = {"num_feat": 16, "num_block": num_block, "scale": scale}
    network = SRResNet(**hparams).eval()
    for parameter in network.parameters():
        if parameter.ndim == 4:  # conv weights of trained size: the default init is too small to show the edge
            parameter.data.mul_(2)
    info = describe("SRResNet", hparams, network)
    photo = lenna[200:264, 200:260]
    whole = Upscaler(network, info, device="cpu", precision="fp32", tile=0).upscale(photo)
    tiled = Upscaler(network, info, device="cpu", precision="fp32", tile=16)
    assert _diff(tiled.upscale(photo), whole).max() == 0
    short = Upscaler(network, info, device="cpu", precision="fp32", tile=16, tile_pad=tiled.tile_pad - 1)
    assert _diff(short.upscale(photo), whole).max() >= 1


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SUPERRES_SLOW"), reason="minutes on 2 cores; set SUPERRES_SLOW=1 to run")
def test_rrdbnet_default_pad_makes_tiles_seamless(
    x4plus: Upscaler, lenna: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measurement behind RRDBNET_TILE_PAD: real x4plus weights, 256×256 real image, regions of 64, fp32.

    (In bf16 the same regions differ by up to 4 levels on 0.2 % of the pixels, anywhere: bf16 rounding
    carries the tiny difference of a truncated context on; the block-wise stripes stay exact in bf16.)"""
    crop = lenna[128:384, 128:384]
    monkeypatch.setattr(budget, "CPU_BLOCKWISE_MEMORY", 1)  # no block-wise: overlapping regions instead
    whole = Upscaler(x4plus._module, x4plus.info, device="cpu", precision="fp32", tile=0).upscale(crop)
    tiled = Upscaler(x4plus._module, x4plus.info, device="cpu", precision="fp32", tile=64).upscale(crop)
    assert x4plus.tile_pad == budget.RRDBNET_TILE_PAD
    assert _diff(tiled, whole).max() <= 1


def test_size_multiple_padding_and_tiles_for_pixel_unshuffle_models() -> None:
    for scale, multiple in ((2, 2), (1, 4)):
        network, info = _tiny(scale)
        assert info.size_multiple == multiple
        image = (np.random.default_rng(scale).random((37, 23, 3)) * 255).astype(np.uint8)  # odd sizes
        whole = Upscaler(network, info, device="cpu", tile=0).upscale(image)
        assert whole.shape == (37 * scale, 23 * scale, 3)
        tiled = Upscaler(network, info, device="cpu", tile=12, tile_pad=24).upscale(image)
        assert _diff(tiled, whole).max() <= 1


def test_automatic_tile_fits_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    network, info = _tiny()
    upscaler = Upscaler(network, info, device="cpu", precision="fp32")
    per_pixel = budget.activation_bytes_per_pixel(info, "fp32")
    monkeypatch.setattr(inference, "memory_budget", lambda device: int(per_pixel * 300 * 300))
    assert upscaler.choose_tile(200, 250) == 250  # fits: the whole image at once
    tile = upscaler.choose_tile(1000, 1000)
    assert upscaler._tile_context == 0  # RRDBNet runs block-wise, in stripes that need no context
    assert 100 < tile <= 300 and tile**2 * per_pixel <= 300 * 300 * per_pixel


class _OutOfMemoryAbove(nn.Module):
    """Wraps a network and fails like a full GPU on inputs wider than ``limit``."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_halves_the_tile() -> None:
    network, info = _tiny()
    image = (np.random.default_rng(1).random((48, 48, 3)) * 255).astype(np.uint8)
    expected = Upscaler(network, info, device="cpu", tile=24, tile_pad=8).upscale(image)
    squeezed = Upscaler(_OutOfMemoryAbove(network, 40), info, device="cpu", tile=0, tile_pad=8)
    with pytest.warns(UserWarning, match="out of memory"):
        result = squeezed.upscale(image)
    np.testing.assert_array_equal(result, expected)


# -- colour modes --------------------------------------------------------------------------------


def test_gray_stays_gray(anime: Upscaler, shared: Path) -> None:
    bridge = Image.open(shared / "benchmarks" / "Set14" / "HR" / "bridge.png")  # a real gray image
    assert bridge.mode == "L"
    crop = bridge.crop((0, 0, 48, 40))
    out = anime.upscale(crop)
    assert out.mode == "L" and out.size == (192, 160)
    via_rgb = anime.upscale(crop.convert("RGB")).convert("L")
    assert _diff(np.asarray(out), np.asarray(via_rgb)).max() <= 1


def _rgba_with_hidden(photo: np.ndarray, hidden: int) -> np.ndarray:
    """A real photo with alpha: a 0 → 255 ramp over the left half, opaque right half, a fully
    transparent box in the ramp, and ``hidden`` as the colour under α = 0."""
    height, width = photo.shape[:2]
    alpha = np.full((height, width), 255, np.uint8)
    alpha[:, : width // 2] = np.linspace(0, 255, width // 2).round().astype(np.uint8)
    alpha[8:24, 4:20] = 0
    colour = np.where(alpha[:, :, None] == 0, np.uint8(hidden), photo)
    return np.dstack([colour, alpha])


def test_rgba_hidden_colour_cannot_bleed_and_soft_alpha_is_kept(anime: Upscaler, lenna: np.ndarray) -> None:
    photo = lenna[200:240, 200:264]
    black, white = (anime.upscale(_rgba_with_hidden(photo, hidden)) for hidden in (0, 255))
    assert black.shape == (160, 256, 4)
    # premultiplied SR: what lies under α = 0 has no influence on any visible pixel (no dark fringes)
    visible = black[:, :, 3] > 0
    assert _diff(black[visible], white[visible]).max() == 0
    # soft alpha (a ramp, a box inside it) has no hard edge: Lanczos, exactly; the box stays transparent
    alpha = _rgba_with_hidden(photo, 0)[:, :, 3]
    np.testing.assert_array_equal(black[:, :, 3], np.asarray(Image.fromarray(alpha).resize((256, 160), Image.LANCZOS)))
    assert black[44:84, 28:68, 3].max() == 0  # beyond the Lanczos support (3 LR px) from its edge
    # farther than the receptive field (18 px) from any transparency, colour is what plain RGB gives
    opaque = anime.upscale(photo)
    assert _diff(black[:, 216:, :3], opaque[:, 216:]).max() <= 1


def test_hard_alpha_edges_go_through_the_network(anime: Upscaler, shared: Path) -> None:
    butterfly = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "monarch.png").convert("L"))
    mask = np.where(butterfly[100:356, 200:456] > 128, 255, 0).astype(np.uint8)  # a hard HR alpha mask
    small = np.asarray(Image.fromarray(mask).resize((64, 64), Image.BICUBIC))
    photo = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "monarch.png").convert("RGB"))
    rgba = np.dstack([photo[:64, :64], small])
    alpha = anime.upscale(rgba)[:, :, 3]
    lanczos = np.asarray(Image.fromarray(small).resize((256, 256), Image.LANCZOS))
    assert _diff(alpha, mask).mean() < 0.75 * _diff(lanczos, mask).mean()  # sharper edges than Lanczos
    flat = ~colour.hard_alpha_edges(small).repeat(4, 0).repeat(4, 1)
    np.testing.assert_array_equal(alpha[flat], lanczos[flat])  # and exact away from them


def test_palette_with_transparency_comes_back_rgba(anime: Upscaler, lenna: np.ndarray) -> None:
    palette = Image.fromarray(lenna[:32, :32]).quantize(16)
    palette.info["transparency"] = 0
    out = anime.upscale(palette)
    assert out.mode == "RGBA" and out.size == (128, 128)
    assert np.asarray(out)[:, :, 3].min() == 0


def test_16bit_in_16bit_out(anime: Upscaler, lenna: np.ndarray) -> None:
    photo = lenna[100:140, 100:140]
    rng = np.random.default_rng(0)
    deep = photo.astype(np.uint16) * 257 + rng.integers(0, 257, photo.shape, dtype=np.uint16)
    out = anime.upscale(deep)
    assert out.dtype == np.uint16 and out.shape == (160, 160, 3)
    assert len(np.unique(out)) > 256  # really uses the 16-bit range
    eight = anime.upscale(photo)
    assert np.abs(out / 257.0 - eight).mean() < 1.0


def test_upscale_tensor_matches_upscale(anime: Upscaler, lenna: np.ndarray) -> None:
    photo = lenna[:24, :40]
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
    y = anime.upscale_tensor(torch.cat([x, x.flip(-1)]))
    assert y.shape == (2, 3, 96, 160) and y.dtype == torch.float32 and 0 <= y.min() and y.max() <= 1
    as_uint8 = (y[0].permute(1, 2, 0) * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(as_uint8, anime.upscale(photo))


# -- outscale ------------------------------------------------------------------------------------


def test_outscale_gives_the_requested_size(anime: Upscaler, lenna: np.ndarray) -> None:
    photo = lenna[:37, :50]
    out = anime.upscale(photo, outscale=2.5)
    assert out.shape == (round(37 * 2.5), round(50 * 2.5), 3)
    model_then_resize = np.asarray(Image.fromarray(anime.upscale(photo)).resize((125, 92), Image.LANCZOS))
    assert _diff(out, model_then_resize).mean() < 1
    rgba = anime.upscale(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)]), outscale=3)
    assert rgba.shape == (111, 150, 4) and (rgba[:, :, 3] == 200).all()


# -- precision -----------------------------------------------------------------------------------


class _NaNInLowPrecision(nn.Module):
    """×2 nearest upsampling that turns into NaN unless it runs in fp32: stands in for an overflow."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x, scale_factor=2, mode="nearest") * self.gain
        return y if y.dtype == torch.float32 else y * float("nan")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_nan_in_low_precision_reruns_the_tile_in_fp32(precision: str) -> None:
    info = ModelInfo("NaNInLowPrecision", 2, 3, 3, {}, num_params=1, size_multiple=1, half_precision_ok=True)
    upscaler = Upscaler(_NaNInLowPrecision(), info, device="cpu", precision=precision, tile=8)
    assert upscaler.precision == precision
    image = (np.random.default_rng(2).random((16, 16, 3)) * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match="rerun in fp32"):
        out = upscaler.upscale(image)
    np.testing.assert_array_equal(out, image.repeat(2, 0).repeat(2, 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_one_non_finite_value_anywhere_is_found(bad: float) -> None:
    out = torch.rand(1, 3, 64, 48).contiguous(memory_format=torch.channels_last)
    assert all_finite(out)
    for index in [(0, 0, 0, 0), (0, 2, 63, 47), (0, 1, 17, 29)]:
        broken = out.clone()
        broken[index] = bad
        assert not all_finite(broken)
    both = out.clone()
    both[0, 0, 0, 0], both[0, 0, 0, 1] = float("inf"), -float("inf")  # they sum to NaN: still found
    assert not all_finite(both)


def test_device_and_precision_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    network, info = _tiny()
    upscaler = Upscaler(network, info, device="cpu")  # "auto" is a GPU where there is one: see the end
    assert upscaler.device.type == "cpu"
    assert upscaler.precision == ("bf16" if devices.cpu_has_native_bf16() else "fp32")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision("auto", torch.device("cpu")) == "fp32"  # emulated bf16 is slow: fp32
    with pytest.raises(ConfigError, match="unknown precision"):
        Upscaler(network, info, device="cpu", precision="fp8")
    with pytest.raises(ConfigError, match="unknown device"):
        Upscaler(network, info, device="tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            Upscaler(network, info, device="cuda")
    # auto: CUDA, else MPS, else the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")


def test_bf16_output_is_close_to_fp32(anime: Upscaler, lenna: np.ndarray) -> None:
    photo = lenna[300:332, 300:332]
    low = Upscaler(anime._module, anime.info, device="cpu", precision="bf16").upscale(photo)
    assert _diff(low, anime.upscale(photo)).mean() < 1.5


# -- files and models ----------------------------------------------------------------------------


def test_upscale_file_keeps_orientation_and_never_writes_over_input(
    anime: Upscaler, tmp_path: Path, lenna: np.ndarray
) -> None:
    source = Image.fromarray(lenna[:20, :30])
    exif = source.getexif()
    exif[0x0112] = 6  # stored sideways: upright it is 30 high, 20 wide
    path = tmp_path / "turned.jpg"
    source.save(path, exif=exif.tobytes(), quality=95)
    written = anime.upscale_file(path, tmp_path / "up.png")
    assert Image.open(written).size == (80, 120)
    before = path.read_bytes()
    with pytest.raises(ImageError, match="is the input file"):
        anime.upscale_file(path, path, overwrite=True)
    with pytest.raises(ImageError, match="already exists"):
        anime.upscale_file(path, written)
    assert path.read_bytes() == before


def test_unknown_model_is_a_weights_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file"):
        resolve_model_path(tmp_path / "nope.pth")
    with pytest.raises(WeightsError):
        load_model("no-such-model")


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_tail_in_stripes_equals_the_whole_tail(scale: int) -> None:
    """The memory bound of a tile: RRDBNet's upsampling tail run row-stripe by row-stripe is exact."""
    from superres.archs import RRDBNet, SRResNet
    from superres.engine.blockwise import run_network

    torch.manual_seed(0)
    net = RRDBNet(scale=scale, num_feat=16, num_block=1, num_grow_ch=8).eval()
    x = torch.rand(1, 3, 40, 36)
    with torch.inference_mode():
        whole = net(x)
        striped = run_network(net, x, tail_budget=1)  # one LR row per stripe: the worst case
    assert striped.shape == whole.shape
    assert (striped - whole).abs().max() < 1e-5
