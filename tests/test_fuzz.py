"""Fuzzing (hypothesis): whatever bytes or numbers come in, superres answers with a result that is right
or with a clear :class:`~superres.errors.SuperresError` — never another exception, never unbounded
time or memory.

* image decoding: valid files of every format superres reads, mutated (bytes flipped, cut, inserted,
  header fields overwritten); encoding: random arrays in every layout and depth, to every format written;
* weights: our safetensors with a mutated header and metadata, random state dicts shaped like each
  architecture, mutated ``.pth`` archives;
* the CLI's numeric options, as arbitrary text.

In CI each property runs a few dozen derandomised examples (seconds). ``SUPERRES_FUZZ=1`` runs
``SUPERRES_FUZZ_EXAMPLES`` (default 20,000) random examples of each instead — the long run of RELIABILITY.md.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, features

from superres.errors import SuperresError
from superres.imageio import ImageData, decode_image, read_image, write_image

LONG = os.environ.get("SUPERRES_FUZZ") == "1"
LONG_EXAMPLES = int(os.environ.get("SUPERRES_FUZZ_EXAMPLES", "20000"))
FUZZ_MAX_PIXELS = 1 << 20  # decoding is bounded by our own limit; 1 Mpx keeps each example fast
SECONDS_PER_EXAMPLE = 20.0  # "never more than a set time": far above any honest example here
RSS_GROWTH_LIMIT_MB = 1500  # … and memory: the peak RSS may not grow by more than this over a property


def fuzz(ci_examples: int) -> Callable:
    """Hypothesis settings: a few derandomised examples in CI, many random ones with SUPERRES_FUZZ=1."""
    return settings(
        max_examples=LONG_EXAMPLES if LONG else ci_examples,
        derandomize=not LONG,
        deadline=None,  # time is bounded by the time_limit fixture, which also catches a hang
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.fixture
def bounded_memory() -> Iterator[None]:
    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    before = peak_mb()
    yield
    assert peak_mb() - before < RSS_GROWTH_LIMIT_MB, f"peak RSS grew by {peak_mb() - before:.0f} MB"


# -------------------------------------------------------------------------------- image decoding


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _seed_files() -> dict[str, bytes]:
    """Small valid files: every format superres picks from a folder, in its usual modes."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (6, 7, 4), dtype=np.uint8))
    gray = rgb.convert("L")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {
        "png-rgb": _encoded(rgb, "PNG"),
        "png-rgba-icc-exif": _encoded(rgba, "PNG", icc_profile=profile, exif=exif.tobytes()),
        "png-gray": _encoded(gray, "PNG"),
        "png-la": _encoded(rgba.convert("LA"), "PNG"),
        "png-palette-trns": _encoded(palette, "PNG", transparency=0),
        "png-1bit": _encoded(gray.convert("1"), "PNG"),
        "png-16bit-gray": _encoded(Image.fromarray(rng.integers(0, 65536, (6, 7), dtype=np.uint16)), "PNG"),
        "jpeg": _encoded(rgb, "JPEG", quality=90),
        "jpeg-gray": _encoded(gray, "JPEG"),
        "jpeg-cmyk": _encoded(rgb.convert("CMYK"), "JPEG"),
        "jpeg-progressive-exif": _encoded(rgb, "JPEG", progressive=True, exif=exif.tobytes()),
        "webp-lossless": _encoded(rgba, "WEBP", lossless=True),
        "webp-lossy": _encoded(rgb, "WEBP", quality=80),
        "bmp": _encoded(rgb, "BMP"),
        "bmp-palette": _encoded(palette, "BMP"),
        "tiff": _encoded(rgb, "TIFF"),
        "tiff-deflate": _encoded(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-16bit": _encoded(Image.fromarray(rng.integers(0, 65536, (6, 7), dtype=np.uint16)), "TIFF"),
        "gif": _encoded(palette, "GIF"),
        "tga": _encoded(rgba, "TGA"),
        "tga-rle": _encoded(rgb, "TGA", compression="tga_rle"),
        "ppm": _encoded(rgb, "PPM"),
        "pgm": _encoded(gray, "PPM"),
        "gif-animated": _encoded(palette, "GIF", save_all=True, append_images=[palette.rotate(90)]),
        "apng": _encoded(rgb, "PNG", save_all=True, append_images=[rgb.rotate(90)], duration=50),
    }
    from superres.imageio import _write_png16  # 16-bit colour PNG, as superres writes it

    wide = io.BytesIO()
    _write_png16(wide, rng.integers(0, 65536, (6, 7, 4), dtype=np.uint16), profile)
    seeds["png-16bit-rgba-icc"] = wide.getvalue()
    if features.check("avif"):
        seeds["avif"] = _encoded(rgb, "AVIF", quality=60)
    return seeds


SEEDS = _seed_files()


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "byte", "cut", "insert", "int32", "int16", "chunk"]))
        if operation == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif operation == "byte" and data:
            data[where] = draw(st.integers(0, 255))
        elif operation == "cut":
            del data[where:]
        elif operation == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=64))
        elif operation in ("int32", "int16"):  # widths, heights, lengths and offsets of headers
            size = 4 if operation == "int32" else 2
            value = draw(st.sampled_from([0, 1, 2 ** (8 * size) - 1, 2 ** (8 * size - 1), 10_000, 65_535]))
            order = draw(st.sampled_from([">", "<"]))
            data[where : where + size] = struct.pack(f"{order}{'I' if size == 4 else 'H'}", value)
        elif operation == "chunk" and len(data) > 8:  # a piece of the file repeated elsewhere
            start = draw(st.integers(0, len(data) - 2))
            piece = data[start : start + draw(st.integers(1, 64))]
            data[where:where] = piece
    return bytes(data)


def _check_decoded(image: ImageData) -> None:
    pixels = image.pixels
    assert pixels.dtype in (np.uint8, np.uint16)
    assert pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (2, 3, 4))
    assert 0 < image.width * image.height <= FUZZ_MAX_PIXELS


@pytest.mark.usefixtures("bounded_memory")
@fuzz(ci_examples=200)
@given(data=mutated_files())
def test_decoding_mutated_files_gives_an_image_or_an_image_error(time_limit, data: bytes) -> None:
    with time_limit(SECONDS_PER_EXAMPLE), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd files; that is not a failure
        try:
            image = decode_image(data, "fuzzed", max_pixels=FUZZ_MAX_PIXELS)
        except SuperresError:
            return
    _check_decoded(image)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_decodes_or_is_refused_as_meant(name: str) -> None:
    """The seeds are valid: mutations start from files that decode (multi-frame ones are refused)."""
    if name in ("gif-animated", "apng"):
        with pytest.raises(SuperresError, match="2 frames"):
            decode_image(SEEDS[name], name)
    else:
        _check_decoded(decode_image(SEEDS[name], name))


# -------------------------------------------------------------------------------- image encoding


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    channels = draw(st.sampled_from([0, 2, 3, 4]))  # 0: a 2-D gray image
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = (height, width) if channels == 0 else (height, width, channels)
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


@fuzz(ci_examples=60)
@given(pixels=arrays(), ext=st.sampled_from([".png", ".jpg", ".webp"]))
def test_encoding_any_array_round_trips(time_limit, pixels: np.ndarray, ext: str) -> None:
    with tempfile.TemporaryDirectory() as folder, time_limit(SECONDS_PER_EXAMPLE), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 16 → 8 bits and alpha → white are announced by warnings
        path = write_image(Path(folder) / f"out{ext}", ImageData(pixels))
        back = read_image(path)
        assert sorted(os.listdir(folder)) == [f"out{ext}"]  # no temporary left beside it
    assert back.pixels.shape[:2] == pixels.shape[:2]
    if ext == ".png":
        np.testing.assert_array_equal(back.pixels, pixels)  # PNG keeps every layout and depth exactly


# ------------------------------------------------------------------------------------------ weights


def _tiny_files() -> dict[str, bytes]:
    from safetensors.torch import save as save_safetensors

    from superres.archs import RRDBNet, SRResNet, SRVGGNetCompact
    from superres.models.detect import complete_hparams

    torch.manual_seed(0)
    models = {
        "SRVGGNetCompact": (SRVGGNetCompact, {"num_feat": 4, "num_conv": 1, "upscale": 2}),
        "RRDBNet": (RRDBNet, {"num_feat": 4, "num_block": 1, "num_grow_ch": 2, "scale": 2}),
        "SRResNet": (SRResNet, {"num_feat": 4, "num_block": 1, "scale": 2}),
    }
    files = {}
    for arch, (cls, hparams) in models.items():
        state = {k: v.contiguous() for k, v in cls(**hparams).state_dict().items()}
        metadata = {"format_version": "1", "arch": arch, "hparams": json.dumps(complete_hparams(arch, hparams))}
        files[f"{arch}.safetensors"] = save_safetensors(state, metadata)
        files[f"{arch}-bare.safetensors"] = save_safetensors(state)  # detected from key names and shapes
        buffer = io.BytesIO()
        torch.save({"params": state}, buffer)
        files[f"{arch}.pth"] = buffer.getvalue()
    return files


WEIGHTS = _tiny_files()
FOLDER = Path(tempfile.mkdtemp(prefix="superres-fuzz-"))


@pytest.fixture(scope="module")
def warm() -> None:
    """Load and run each seed once, untimed: first uses import and build things once per process."""
    from superres.engine.inference import load_model

    for name, data in WEIGHTS.items():
        path = FOLDER / f"warm-{name}"
        path.write_bytes(data)
        load_model(path, device="cpu", precision="fp32", tile=0).upscale(np.zeros((8, 8, 3), np.uint8))


def _load_and_run(data: bytes, suffix: str, time_limit: Callable) -> None:
    """The property for weights: a WeightsError-like SuperresError, or a network that upscales correctly."""
    from superres.engine.inference import Upscaler
    from superres.models.weights import load_network

    path = FOLDER / f"fuzzed{suffix}"
    path.write_bytes(data)
    with time_limit(SECONDS_PER_EXAMPLE), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            network, info = load_network(path)
            upscaler = Upscaler(network, info, device="cpu", precision="fp32", tile=0)
            out = upscaler.upscale(np.full((8, 8, 3), 128, np.uint8))
        except SuperresError:
            return
    assert out.shape == (8 * info.scale, 8 * info.scale, 3) and out.dtype == np.uint8


def _json_object(text: object) -> object:
    try:
        return json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _header(data: bytes) -> tuple[dict, bytes]:
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _with_header(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


ANY_VALUE = st.one_of(
    st.integers(-(2**63), 2**63),
    st.sampled_from([0, 1, 2, 3, 4, 8, 16, 64, -1, 10**9, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-4, 4), max_size=3),
)


@st.composite
def mutated_safetensors(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from([k for k in WEIGHTS if k.endswith(".safetensors")]))
    header, body = _header(WEIGHTS[name])
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(["hparams", "metadata", "tensor", "bytes"]))
        metadata = header.setdefault("__metadata__", {})
        if target == "hparams" and isinstance(hparams := _json_object(metadata.get("hparams")), dict):
            key = draw(st.sampled_from(sorted(hparams) + ["unknown_key"]))
            hparams[key] = draw(ANY_VALUE)
            metadata["hparams"] = json.dumps(hparams)
        elif target == "metadata":
            key = draw(st.sampled_from(["arch", "format_version", "hparams", "scale"]))
            metadata[key] = draw(st.one_of(st.text(max_size=12), ANY_VALUE.map(json.dumps)))
        elif target == "tensor":
            key = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
            field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "delete", "rename"]))
            if field == "dtype":
                header[key]["dtype"] = draw(st.sampled_from(["F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3"]))
            elif field == "shape":
                header[key]["shape"] = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 8, 10**6]), max_size=5))
            elif field == "data_offsets":
                header[key]["data_offsets"] = sorted(
                    draw(st.lists(st.integers(0, len(body) + 8), min_size=2, max_size=2))
                )
            elif field == "delete":
                del header[key]
            else:
                suffix = draw(st.sampled_from(["0", "7", "99", "2000000002", "-1"]))
                header[f"body.{suffix}.weight"] = header.pop(key)
        else:
            data = bytearray(_with_header(header, body))
            where = draw(st.integers(0, len(data) - 1))
            data[where] = draw(st.integers(0, 255))
            return bytes(data)
    return _with_header(header, body)


@pytest.mark.usefixtures("bounded_memory", "warm")
@fuzz(ci_examples=100)
@given(data=mutated_safetensors())
def test_loading_mutated_safetensors_gives_a_working_network_or_a_weights_error(time_limit, data: bytes) -> None:
    _load_and_run(data, ".safetensors", time_limit)


@st.composite
def random_state_dicts(draw: st.DrawFn) -> bytes:
    """Keys from the architectures' own names, with random indices and shapes."""
    from safetensors.torch import save as save_safetensors

    names = [
        "conv_first.weight", "conv_body.weight", "conv_last.weight", "conv_up1.weight", "conv_up2.weight",
        "conv_up3.weight", "conv_hr.weight", "body.{i}.rdb1.conv1.weight", "body.{i}.weight", "body.{i}.bias",
        "conv_block1.conv_block.0.weight", "conv_block2.conv_block.0.weight", "conv_block3.conv_block.0.weight",
        "subpixel_convolutional_blocks.{i}.conv.weight", "residual_blocks.{i}.conv_block1.conv_block.0.weight",
        "conv_block2.conv_block.1.weight", "model.0.weight", "model.1.sub.{i}.RDB1.conv1.0.weight",
        "model.{i}.weight", "RRDB_trunk.{i}.RDB1.conv1.weight", "trunk_conv.weight", "params", "module.x",
    ]  # fmt: skip
    state = {}
    for _ in range(draw(st.integers(1, 12))):
        name = draw(st.sampled_from(names)).format(i=draw(st.sampled_from([0, 1, 2, 5, 10**6, 2**40])))
        shape = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 12]), max_size=4))
        state[name] = torch.randn(shape) if draw(st.booleans()) else torch.zeros(shape, dtype=torch.int64)
    return save_safetensors(state)


@pytest.mark.usefixtures("bounded_memory", "warm")
@fuzz(ci_examples=100)
@given(data=random_state_dicts())
def test_random_state_dicts_give_a_working_network_or_a_weights_error(time_limit, data: bytes) -> None:
    _load_and_run(data, ".safetensors", time_limit)


@st.composite
def mutated_checkpoints(draw: st.DrawFn) -> bytes:
    data = bytearray(WEIGHTS[draw(st.sampled_from([k for k in WEIGHTS if k.endswith(".pth")]))])
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[where] = draw(st.integers(0, 255))
        else:
            del data[where:]
    return bytes(data)


@pytest.mark.usefixtures("warm")
@fuzz(ci_examples=60)
@given(data=mutated_checkpoints())
def test_loading_mutated_pth_files_gives_a_working_network_or_a_weights_error(time_limit, data: bytes) -> None:
    _load_and_run(data, ".pth", time_limit)


# ------------------------------------------------------------------------------- numeric options

OPTION_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["0", "1", "-1", "2", "1e3", "1e400", "nan", "-inf", "0x10", "", " ", "1_0", "٣", "²"]),
    st.text(max_size=6),
)


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("cli_fuzz")
    image = folder / "in.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(image)
    return tiny_model, image, folder / "out.png"


@fuzz(ci_examples=25)
@given(option=st.sampled_from(["--outscale", "--tile", "--tile-pad", "--threads", "--max-pixels"]), value=OPTION_VALUES)
def test_numeric_options_give_a_result_or_one_error_line(cli_files, time_limit, option: str, value: str) -> None:
    from typer.testing import CliRunner

    from superres.cli import app

    model, image, out = cli_files
    args = ["upscale", str(image), "-o", str(out), "-m", str(model), "--overwrite", option, value]
    with time_limit(SECONDS_PER_EXAMPLE):
        result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        upscaled = read_image(out).pixels
        factor = float(value) if option == "--outscale" else 2
        assert upscaled.shape == (round(10 * factor), round(12 * factor), 3)
    else:
        assert result.exit_code in (1, 2)
        assert any(line.startswith("error: ") for line in result.stderr.splitlines()), result.stderr
