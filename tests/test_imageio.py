"""Image reading and writing: every mode comes back as it went in, and broken files are clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from superres.errors import ImageError, PixelLimitError
from superres.imageio import ImageData, apply_orientation, read_image, write_image


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    """A real RGB photo (Set5 bird HR), 8-bit."""
    return np.asarray(Image.open(shared / "benchmarks" / "Set5" / "HR" / "bird.png").convert("RGB"))


def _save(path: Path, image: Image.Image, **options: object) -> Path:
    image.save(path, **options)
    return path


def test_8bit_layouts_round_trip(tmp_path: Path, photo: np.ndarray) -> None:
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    alpha = np.linspace(0, 255, photo.shape[1]).astype(np.uint8)[None, :].repeat(photo.shape[0], 0)
    for name, pixels, mode in [
        ("gray", gray, "L"),
        ("gray_alpha", np.dstack([gray, alpha]), "LA"),
        ("rgb", photo, "RGB"),
        ("rgba", np.dstack([photo, alpha]), "RGBA"),
    ]:
        path = write_image(tmp_path / f"{name}.png", ImageData(pixels))
        image = read_image(path)
        assert image.mode == mode and image.bit_depth == 8
        assert image.has_alpha == (mode in ("LA", "RGBA"))
        np.testing.assert_array_equal(image.pixels, pixels)


def _zlib_level_class(png_bytes: bytes) -> int:
    """FLEVEL of the first IDAT's zlib header (RFC 1950): 0 fastest (level 0-1), 1 fast, 2 default (6), 3 max."""
    at = png_bytes.index(b"IDAT") + 4
    return png_bytes[at + 1] >> 6


def test_pngs_are_written_at_the_fast_zlib_level_losslessly(tmp_path: Path, photo: np.ndarray) -> None:
    """Level 1, as OpenCV (and so Real-ESRGAN) writes them: zlib's default 6 made writing most of a folder upscale."""
    for name, pixels in [("eight", photo), ("sixteen", photo.astype(np.uint16) * 257 + 3)]:
        path = write_image(tmp_path / f"{name}.png", ImageData(pixels))
        assert _zlib_level_class(path.read_bytes()) == 0
        np.testing.assert_array_equal(read_image(path).pixels, pixels)
    buffer = io.BytesIO()  # the check itself tells levels apart
    Image.fromarray(photo).save(buffer, format="PNG")
    assert _zlib_level_class(buffer.getvalue()) == 2


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_keeps_all_16_bits(tmp_path: Path, photo: np.ndarray, channels: int) -> None:
    # 16-bit values with content below the 8-bit step, so an 8-bit detour would show
    rng = np.random.default_rng(channels)
    wide = photo.astype(np.uint16) * 257 + rng.integers(0, 257, photo.shape, dtype=np.uint16)
    planes = np.dstack([wide, wide[:, :, :1]])[:, :, :channels] if channels != 3 else wide
    pixels = planes[:, :, 0] if channels == 1 else planes
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = write_image(tmp_path / "deep.png", ImageData(pixels, icc_profile=profile))
    image = read_image(path)
    assert image.pixels.dtype == np.uint16 and image.bit_depth == 16
    assert image.mode == {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels]
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.icc_profile == profile
    assert Image.open(path).info.get("icc_profile") == profile  # other readers see it too


def test_pillow_16bit_gray_is_kept(tmp_path: Path) -> None:
    ramp = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    path = _save(tmp_path / "ramp.png", Image.fromarray(ramp))
    image = read_image(path)
    assert image.pixels.dtype == np.uint16 and image.pixels.ndim == 2
    np.testing.assert_array_equal(image.pixels, ramp)


def test_palette_with_trns_becomes_rgba(tmp_path: Path, photo: np.ndarray) -> None:
    palette = Image.fromarray(photo).quantize(64)
    table = [0] + [255] * 63  # palette entry 0 fully transparent
    path = _save(tmp_path / "pal.png", palette, transparency=bytes(table))
    image = read_image(path)
    assert image.mode == "P" and image.pixels.shape[2] == 4
    index = np.asarray(palette)
    np.testing.assert_array_equal(image.pixels[:, :, 3], np.where(index == 0, 0, 255))
    np.testing.assert_array_equal(image.pixels[:, :, :3], np.asarray(palette.convert("RGB")))

    opaque = read_image(_save(tmp_path / "pal_opaque.png", palette))
    assert opaque.pixels.shape[2] == 3


def test_one_bit_and_cmyk(tmp_path: Path, photo: np.ndarray) -> None:
    bilevel = read_image(_save(tmp_path / "bw.png", Image.fromarray(photo).convert("1")))
    assert bilevel.pixels.ndim == 2 and set(np.unique(bilevel.pixels)) <= {0, 255}
    cmyk = read_image(_save(tmp_path / "print.jpg", Image.fromarray(photo).convert("CMYK"), quality=95))
    assert cmyk.mode == "CMYK" and cmyk.pixels.shape == photo.shape
    assert np.abs(cmyk.pixels.astype(int) - photo).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, photo: np.ndarray, orientation: int) -> None:
    source = Image.fromarray(photo[:40, :60])
    exif = source.getexif()
    exif[0x0112] = orientation
    path = _save(tmp_path / "turned.jpg", source, exif=exif.tobytes(), quality=95)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, np.asarray(ImageOps.exif_transpose(Image.open(path))))
    if orientation >= 5:
        assert image.pixels.shape[:2] == (60, 40)
    kept = Image.Exif()
    kept.load(image.exif)
    assert kept.get(0x0112) == 1  # the output must not be turned a second time


def test_apply_orientation_on_16bit_colour() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3)
    np.testing.assert_array_equal(apply_orientation(pixels, 6), np.rot90(pixels, -1))
    np.testing.assert_array_equal(apply_orientation(pixels, 1), pixels)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def test_broken_files_are_one_line_errors(tmp_path: Path, photo: np.ndarray) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    png8 = _encode(photo, "PNG")
    png16 = write_image(tmp_path / "deep.png", ImageData(photo.astype(np.uint16) * 257)).read_bytes()
    cases = {
        "empty.png": b"",
        "text.png": b"this is not an image\n",
        "half.png": png8[: len(png8) // 2],
        "no_end.png": png8[:-12],  # all pixel data but no IEND chunk: still a truncated file
        "deep_half.png": png16[: len(png16) // 2],
        "half.jpg": _encode(photo, "JPEG")[:2000],
        "float.tif": _encode(photo[:, :, 0].astype(np.float32), "TIFF"),  # a mode superres does not take
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ImageError) as caught:
            read_image(path)
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, message
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "missing.png")


def test_write_never_replaces_without_overwrite(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(ImageError, match="already exists"):
        write_image(path, ImageData(photo))
    assert path.read_bytes() == b"precious"
    write_image(path, ImageData(photo), overwrite=True)
    np.testing.assert_array_equal(read_image(path).pixels, photo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary files left


def test_jpeg_flattens_alpha_on_white_with_a_warning(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, : photo.shape[1] // 2] = 0
    with pytest.warns(UserWarning, match="composited onto white"):
        write_image(tmp_path / "flat.jpg", ImageData(np.dstack([photo, alpha])))
    flat = read_image(tmp_path / "flat.jpg").pixels.astype(int)
    assert flat.shape == photo.shape
    assert flat[:, : photo.shape[1] // 2 - 8].min() >= 250  # transparent half is white
    assert np.abs(flat[:, photo.shape[1] // 2 + 8 :] - photo[:, photo.shape[1] // 2 + 8 :]).mean() < 3


def test_16bit_to_webp_warns_and_rounds(tmp_path: Path, photo: np.ndarray) -> None:
    with pytest.warns(UserWarning, match="8 bits"):
        write_image(tmp_path / "deep.webp", ImageData(photo.astype(np.uint16) * 257))
    assert read_image(tmp_path / "deep.webp").bit_depth == 8


def test_unknown_output_extension(tmp_path: Path, photo: np.ndarray) -> None:
    with pytest.raises(ImageError, match="cannot write .gif"):
        write_image(tmp_path / "x.gif", ImageData(photo))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width × height`` (8-bit gray) followed by a tiny all-zero IDAT stream."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    import time

    from superres.imageio import DEFAULT_MAX_PIXELS, decode_image

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(10000, 10000))  # 100 Mpx claimed in ~100 bytes
    start = time.perf_counter()
    with pytest.raises(PixelLimitError, match=r"bomb.png: 10000×10000 is 100.0 Mpx, over the limit of 64 Mpx"):
        read_image(bomb)
    assert time.perf_counter() - start < 1.0  # refused from the header, not after decoding
    with pytest.raises(ImageError, match="over the limit of 0.0001 Mpx"):
        decode_image(_png_header_only(11, 10), "upload", max_pixels=100)
    assert DEFAULT_MAX_PIXELS == 64_000_000
    # under the limit (and with the limit lifted) the same header goes on to the real decoder
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode_image(_png_header_only(8, 8), "small")
