"""``superres upscale``: batches, naming, bad files, never overwriting, modes kept end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from superres.cli import app
from superres.imageio import ImageData, read_image, write_image

REFERENCE = Path("reference_outputs") / "realesrgan_x4plus"


@pytest.fixture(scope="module")
def anime(shared: Path) -> str:
    return str(shared / "weights" / "realesr-animevideov3.pth")


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    """A 40×48 crop of a real photo (Set5 baby HR)."""
    return np.asarray(Image.open(shared / "benchmarks" / "Set5" / "HR" / "baby.png").convert("RGB"))[100:140, 100:148]


def _upscale(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["upscale", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_reproduces_official_outputs_through_the_cli(shared: Path, tmp_path: Path) -> None:
    inputs = [shared / REFERENCE / "inputs" / f"{name}.png" for name in ("16x16", "32x32")]
    model = str(shared / "weights" / "RealESRGAN_x4plus_fp16round.pth")
    # fp32: the golden outputs are fp32 ("auto" is bf16 on CPUs that have it, within 46 dB of fp32)
    args = ("-o", str(tmp_path), "--model", model, "--suffix", "", "--precision", "fp32", "--device", "cpu")
    code, out, err = _upscale(*map(str, inputs), *args)
    assert code == 0, err
    for source in inputs:
        ours = np.asarray(Image.open(tmp_path / source.name)).astype(int)
        official = np.asarray(Image.open(shared / REFERENCE / "outputs" / source.name).convert("RGB")).astype(int)
        diff = np.abs(ours - official)
        assert diff.max() <= 3 and diff.mean() <= 0.15


def test_bad_files_are_reported_and_the_rest_is_written(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a_good.png")
    Image.fromarray(photo).save(folder / "z_good.jpg", quality=95)
    whole = (folder / "a_good.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image at all\n")
    (folder / "readme.txt").write_text("not picked from a folder\n")

    code, out, err = _upscale(str(folder), "-o", str(tmp_path / "out"), "--model", anime)
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_good_x4.png", "z_good_x4.jpg"]
    assert Image.open(tmp_path / "out" / "a_good_x4.png").size == (192, 160)
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 3
    for name in ("truncated.png", "empty.png", "notes.png"):
        assert sum(name in line for line in error_lines) == 1, err
    assert "Traceback" not in out + err
    assert "2 written, 0 skipped, 3 failed" in err


def test_never_writes_over_inputs_or_existing_outputs(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    source = tmp_path / "pic.png"
    Image.fromarray(photo).save(source)
    original = source.read_bytes()

    code, _, err = _upscale(str(source), "-o", str(tmp_path), "--model", anime, "--suffix", "")
    assert code == 1 and "is an input file" in err
    code, _, err = _upscale(str(source), "-o", str(source), "--model", anime, "--overwrite")
    assert code == 1 and "is an input file" in err
    assert source.read_bytes() == original

    target = tmp_path / "out" / "pic_x4.png"
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    code, _, err = _upscale(str(source), "-o", str(target.parent), "--model", anime)
    assert code == 0 and "skipped" in err and target.read_bytes() == b"keep me"
    code, _, _ = _upscale(str(source), "-o", str(target.parent), "--model", anime, "--overwrite")
    assert code == 0 and Image.open(target).size == (192, 160)


def test_modes_and_depths_are_kept(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = Image.fromarray(photo)
    rgb.convert("L").save(folder / "gray.png")
    palette = rgb.quantize(32)
    palette.save(folder / "palette.gif", transparency=0)
    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    Image.fromarray(np.dstack([photo, alpha])).save(folder / "rgba.webp", lossless=True)
    deep = photo.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, photo.shape, dtype=np.uint16)
    write_image(folder / "deep.png", ImageData(deep))

    code, _, err = _upscale(str(folder), "-o", str(tmp_path / "out"), "--model", anime)
    assert code == 0, err
    out = tmp_path / "out"
    gray = read_image(out / "gray_x4.png")
    assert gray.pixels.ndim == 2 and gray.pixels.shape == (160, 192)
    assert read_image(out / "palette_x4.png").mode == "RGBA"  # GIF cannot be written: PNG, with alpha
    rgba = read_image(out / "rgba_x4.webp")
    assert rgba.mode == "RGBA" and rgba.pixels[:, 0, 3].max() <= 8 and rgba.pixels[:, -1, 3].min() >= 247
    sixteen = read_image(out / "deep_x4.png")
    assert sixteen.pixels.dtype == np.uint16 and sixteen.pixels.shape == (160, 192, 3)
    assert len(np.unique(sixteen.pixels)) > 256


def test_single_output_file_outscale_and_jpeg_alpha(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    source = tmp_path / "logo.png"
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])).save(source)
    target = tmp_path / "sub" / "big.jpg"
    code, out, err = _upscale(str(source), "-o", str(target), "--model", anime, "--outscale", "2.5", "--tile", "16")
    assert code == 0, err
    assert Image.open(target).size == (120, 100) and Image.open(target).mode == "RGB"
    assert "composited onto white" in err


def test_usage_errors(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    source = tmp_path / "pic.png"
    Image.fromarray(photo).save(source)
    code, _, err = _upscale(str(source), "-o", str(tmp_path / "out"), "--model", "no-such-model")
    assert code == 1 and "no-such-model" in err and "superres-x4" in err  # names the known models
    code, _, err = _upscale(str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--model", anime)
    assert code == 1 and "missing.png: no such file" in err
    code, _, err = _upscale(str(source), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nope.pth"))
    assert code == 1 and "nope.pth" in err and "no such file" in err
    two = tmp_path / "two.png"
    shutil.copy(source, two)
    code, _, err = _upscale(str(source), str(two), "-o", str(tmp_path / "x.png"), "--model", anime)
    assert code == 1 and "names one file but there are 2 inputs" in err
    assert not (tmp_path / "out").exists()
    code, _, err = _upscale(str(source), "-o", str(tmp_path / "out"), "--model", anime, "--threads", "0")
    assert code == 1 and "--threads must be between 1 and" in err


def test_threads_option_sets_the_network_threads(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    import torch

    source = tmp_path / "pic.png"
    Image.fromarray(photo).save(source)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the option has something to change
    try:
        code, _, err = _upscale(str(source), "-o", str(tmp_path / "out"), "--model", anime, "--threads", "1")
        assert code == 0, err
        assert torch.get_num_threads() == 1 and (tmp_path / "out" / "pic_x4.png").is_file()
    finally:
        torch.set_num_threads(before)


def test_tile_pad_and_device_reach_the_engine(tmp_path: Path, photo: np.ndarray, anime: str) -> None:
    """--device cpu --tile 16 with the default context (18 px for this network) is the untiled image, bit for
    bit in fp32; --tile-pad 0 shows the tiles' seams, and --tile-pad 17 one pixel short of the receptive field."""
    source = tmp_path / "pic.png"
    Image.fromarray(photo).save(source)
    common = ("--model", anime, "--device", "cpu", "--precision", "fp32", "--tile")

    def run(name: str, *args: str) -> np.ndarray:
        code, _, err = _upscale(str(source), "-o", str(tmp_path / f"{name}.png"), *common, *args)
        assert code == 0, err
        return np.asarray(Image.open(tmp_path / f"{name}.png")).astype(int)

    whole, tiled = run("whole", "0"), run("tiled", "16")
    no_context, short = run("no_context", "16", "--tile-pad", "0"), run("short", "16", "--tile-pad", "17")
    assert np.array_equal(tiled, whole)
    assert np.abs(no_context - whole).max() > 8
    assert 1 <= np.abs(short - whole).max() < np.abs(no_context - whole).max()


def test_no_winograd_runs_the_direct_conv(tmp_path: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 RRDBNet on CPU: by default through the Winograd kernel, with --no-winograd through PyTorch's conv,
    exactly as the library computes it with winograd=False."""
    import torch

    from superres.archs import RRDBNet
    from superres.engine.inference import Upscaler
    from superres.engine.kernels import CpuKernels
    from superres.models.detect import describe
    from superres.models.weights import save_network

    torch.manual_seed(0)
    hparams = {"scale": 4, "num_feat": 32, "num_block": 1, "num_grow_ch": 32}  # channels the kernel takes
    network = RRDBNet(**hparams).eval()
    weights = save_network(tmp_path / "rrdb.safetensors", network, "RRDBNet", hparams)
    source = tmp_path / "pic.png"
    Image.fromarray(photo[:16, :24]).save(source)
    loads: list[int] = []
    load = CpuKernels.load.__func__
    monkeypatch.setattr(CpuKernels, "load", classmethod(lambda cls, *a: loads.append(1) or load(cls, *a)))

    args = ("--model", str(weights), "--device", "cpu", "--precision", "fp32")
    code, _, err = _upscale(str(source), "-o", str(tmp_path / "direct.png"), *args, "--no-winograd")
    assert code == 0, err
    assert loads == []  # the kernel was not even built
    expected = Upscaler(network, describe("RRDBNet", hparams, network), device="cpu", precision="fp32", winograd=False)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "direct.png")), expected.upscale(photo[:16, :24]))
    if shutil.which("c++") is not None:  # where the kernel can be built, the default uses it
        code, _, err = _upscale(str(source), "-o", str(tmp_path / "fast.png"), *args)
        assert code == 0, err
        assert loads == [1]
