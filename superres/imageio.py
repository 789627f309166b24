"""Reading and writing images without losing what the user put in them.

An image is read into :class:`ImageData`: its pixels as a NumPy array in one of four layouts, and the
metadata worth carrying to the output (ICC profile, EXIF).

    ========  ===========  ==========================================
    layout    shape        from Pillow modes
    ========  ===========  ==========================================
    gray      H×W          1, L, I;16 (16-bit gray)
    gray + α  H×W×2        LA, La, L with tRNS
    colour    H×W×3        RGB, P, CMYK, YCbCr, RGB with tRNS → RGBA
    colour+α  H×W×4        RGBA, RGBa, PA, P with tRNS
    ========  ===========  ==========================================

Pixels are ``uint8``, or ``uint16`` for 16-bit PNGs (and 16-bit gray from other formats). Pillow reads
16-bit colour PNGs as 8 bits, so every 16-bit PNG is decoded with pypng instead, and written with it.

Choices a user should know about:

* Palette images come back as RGB or RGBA: re-quantising an upscaled image to 256 colours would throw
  away the detail the network made. 1-bit images come back as 8-bit gray.
* EXIF orientation is applied to the pixels and reset to 1 in the EXIF kept for the output.
* JPEG and WebP hold 8 bits only: 16-bit data is rounded to 8 bits, with a warning. JPEG has no alpha:
  an image with alpha is composited onto white, with a warning (PNG or WebP keep alpha).
* Decoding is strict: a truncated or corrupt file is an :class:`ImageError`, never a partial image
  (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left False and every image is fully decoded on read).
* Writing never replaces an existing file unless ``overwrite=True``, and goes through a hidden temporary
  file beside the target (:func:`atomic_path`), so an interrupted write leaves no half-written image
  behind; :func:`remove_stale_parts` deletes what a killed process left of those temporaries.
* Inputs are bounded: more than ``max_pixels`` (:data:`DEFAULT_MAX_PIXELS`) is refused from the header,
  before decoding, and so are files of several frames (animations, multi-page TIFF): keeping only the
  first frame would be a silently wrong result (RELIABILITY.md says why superres refuses rather than
  upscaling frame by frame).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
from PIL import Image, ImageCms, UnidentifiedImageError

from superres.errors import ConfigError, ImageError, PixelLimitError, SuperresError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112  # EXIF 2.3, tag 274

# Formats superres writes, by file extension: (Pillow format name, holds alpha, holds 16 bits).
WRITE_FORMATS: dict[str, tuple[str, bool, bool]] = {
    ".png": ("PNG", True, True),
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".webp": ("WEBP", True, False),
}

# Still-image formats picked out of a folder; a file named explicitly is tried whatever its extension.
FOLDER_IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jfif",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".gif",
        ".tga",
        ".ppm",
        ".pgm",
        ".pnm",
        ".avif",
    }
)

JPEG_QUALITY = 95
WEBP_QUALITY = 95
# zlib level of written PNGs. With the default model a 1024² result takes 0.26 s at Pillow's default 6 and
# 0.06 s at 1 (+15 % bytes): at 6, writing was 84 % of a folder upscale (bench/bench_folder.py). 1 is also
# OpenCV's default, so Real-ESRGAN's own script writes PNGs this way. PNG is lossless at every level.
PNG_COMPRESS_LEVEL = 1

# Our own limit on the pixels of an input, checked from the header before anything is decoded.
# Pillow's hard limit (2 × 89.5 Mpx) still lets a 10000×10000 PNG of 12 KB through, which then costs
# gigabytes and minutes; 64 Mpx (8000×8000) is far above any photo a ×4 model is meant for, and
# ``max_pixels`` (``--max-pixels``) raises it.
DEFAULT_MAX_PIXELS = 64_000_000

# Formats whose extra frames are not part of the picture: an MPO (a camera's JPEG with the Multi-Picture
# extension, CIPA DC-007) holds the primary image first and previews or depth maps after it.
_SINGLE_PICTURE_FORMATS = frozenset({"MPO"})


@dataclass(frozen=True)
class ImageData:
    """Pixels plus what to keep of the source file. ``pixels`` uses one of the layouts in the module doc."""

    pixels: np.ndarray
    mode: str = ""  # the source's mode as decoded, e.g. "P", "CMYK", "I;16", "RGBA;16" (16-bit PNG)
    format: str | None = None  # "PNG", "JPEG", … of the source file
    icc_profile: bytes | None = None
    exif: bytes | None = None  # with orientation already applied (tag reset to 1)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def is_gray(self) -> bool:
        return self.channels in (1, 2)


# --------------------------------------------------------------------------------------------------
# Pillow images ↔ arrays


def pil_to_array(image: Image.Image) -> np.ndarray:
    """The pixels of a Pillow image in superres's layouts (see the module doc), uint8 or uint16."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA") and "transparency" not in image.info:
        return np.asarray(image)
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)  # I;16B is big-endian: make it native
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise ImageError("32-bit integer images are not supported (values outside 0…65535)")
        return values.astype(np.uint16)
    if mode == "F":
        raise ImageError("32-bit floating-point images are not supported; save the image as 8- or 16-bit")
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(image))
    # tRNS (a palette alpha table or a colour key) becomes a real alpha channel
    has_alpha = "transparency" in image.info or mode in ("LA", "La", "PA", "RGBA", "RGBa")
    gray = mode in ("1", "L", "LA", "La")
    target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
    try:
        return np.asarray(image.convert(target))
    except ValueError as exc:
        raise ImageError(f"images of mode {mode} are not supported ({exc})") from None


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """Print CMYK → sRGB through the file's ICC profile when it has one (Pillow's naive formula otherwise)."""
    profile = image.info.get("icc_profile")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: fall back to the formula rather than refuse the image
    return image.convert("RGB")


def array_to_pil(pixels: np.ndarray) -> Image.Image:
    """A Pillow image of ``pixels`` (uint8 any layout, or uint16 gray → mode I;16)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype == np.uint16:
        if channels != 1:
            raise ValueError("Pillow has no 16-bit colour mode; use a NumPy array for 16-bit colour images")
        return Image.fromarray(np.ascontiguousarray(pixels))  # mode I;16
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    # Pillow infers L, LA, RGB or RGBA from the channel count
    return Image.fromarray(np.ascontiguousarray(pixels.reshape(pixels.shape[:2]) if channels == 1 else pixels))


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``pixels`` upright for an EXIF orientation value (1–8), as ``ImageOps.exif_transpose`` does.

    Written for arrays so that 16-bit colour images, which Pillow cannot hold, are turned the same way.
    """
    flips = {
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # rotated 180°
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # camera rotated 90° counter-clockwise: turn clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, 1),
    }
    flip = flips.get(orientation)
    return pixels if flip is None else np.ascontiguousarray(flip(pixels))


# --------------------------------------------------------------------------------------------------
# Reading


def check_pixel_limit(width: int, height: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """A :class:`PixelLimitError` when ``width × height`` exceeds ``max_pixels`` (``None``: no limit of ours)."""
    if max_pixels is not None and width * height > max_pixels:
        raise PixelLimitError(
            f"{width}×{height} is {width * height / 1e6:.1f} Mpx, over the limit of {max_pixels / 1e6:g} Mpx "
            f"(a decompression bomb, or raise the limit with --max-pixels)"
        )


def probe_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image, from its header alone: nothing is decoded."""
    return _probe(data)[0]


def _probe(data: bytes) -> tuple[tuple[int, int], int, str | None]:
    """((width, height), number of frames, format) from the headers; frames are counted, not decoded."""
    with warnings.catch_warnings():  # Pillow's bomb warning: our own limit decides (check_pixel_limit)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            frames = 1 if image.format in _SINGLE_PICTURE_FORMATS else int(getattr(image, "n_frames", 1))
            return image.size, frames, image.format


def check_single_frame(frames: int, format: str | None = None, name: str = "FILE") -> None:
    """An :class:`ImageError` for a file of several frames: superres upscales one picture per file."""
    if frames <= 1:
        return
    if format == "TIFF":
        how = "save each page as an image (e.g. with Pillow's ImageSequence) and upscale those"
    else:  # as a video, `superres upscale` keeps every frame and its timing
        stem = Path(name).stem
        how = f"make it a video (e.g. `ffmpeg -i {name} {stem}.mp4`) and upscale that, or extract its frames"
    kind = "pages" if format == "TIFF" else "frames"
    raise ImageError(
        f"has {frames} {kind}; superres upscales single images and does not keep only the first: {how}"
    )


def read_image(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Decode ``path`` fully; any failure is an :class:`ImageError` naming the file and the reason.

    The pixel count is checked against ``max_pixels`` from the header, before decoding; a file of
    several frames (animation, multi-page TIFF) is refused (:func:`check_single_frame`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path), max_pixels)


def decode_image(data: bytes, name: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Decode encoded image bytes (an upload, say) like :func:`read_image`; errors name ``name``."""
    path = name
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        size, frames, format = _probe(data)
        check_pixel_limit(*size, max_pixels)
        check_single_frame(frames, format, Path(path).name)
        return _decode(data)
    except ImageError as exc:  # over the pixel limit, or a mode superres does not handle
        raise type(exc)(f"{path}: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit, where ours is off
        raise PixelLimitError(f"{path}: {exc}") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        # Pillow's decoders raise many types on damaged input (OSError, SyntaxError, ValueError, TypeError,
        # IndexError, struct.error, zlib.error, …), and Pillow's own fuzzing takes any Exception from a
        # decoder as the expected answer to bad bytes. (Our code in _decode runs on every valid test file.)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{path}: damaged or truncated image ({reason})") from None


def _decode(data: bytes) -> ImageData:
    # verify() walks the whole file and checks chunk checksums (a real check for PNG: it catches a
    # missing end of file that load() alone would accept); it leaves the image unusable, hence two opens.
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        exif = image.getexif()
        orientation = int(exif.get(_EXIF_ORIENTATION, 1))
        if _is_16bit_png(data):
            pixels, mode = _decode_png16(data)
        else:
            pixels, mode = pil_to_array(image), image.mode
        if _EXIF_ORIENTATION in exif:
            exif[_EXIF_ORIENTATION] = 1
        return ImageData(
            pixels=apply_orientation(pixels, orientation),
            mode=mode,
            format=image.format,
            # a CMYK profile does not describe the RGB pixels we made from it (they are sRGB)
            icc_profile=None if image.mode == "CMYK" else image.info.get("icc_profile") or None,
            exif=exif.tobytes() if len(exif) else None,
        )


def _is_16bit_png(data: bytes) -> bool:
    # PNG spec §11.2.2: the first chunk is IHDR; its 9th data byte (file offset 24) is the bit depth.
    return data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 24 and data[24] == 16


def _decode_png16(data: bytes) -> tuple[np.ndarray, str]:
    width, height, rows, info = png.Reader(bytes=data).asDirect()  # expands tRNS into alpha
    planes = info["planes"]
    pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)
    maxval = 2 ** info["bitdepth"] - 1
    if maxval != 65535:  # asDirect scales to the significant bits (sBIT); return full 16-bit range
        pixels = np.round(pixels * (65535 / maxval)).astype(np.uint16)
    mode = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[planes]
    return (pixels[:, :, 0] if planes == 1 else pixels), mode


# --------------------------------------------------------------------------------------------------
# Writing


def output_format(path: str | os.PathLike[str]) -> tuple[str, bool, bool]:
    """(Pillow format, holds alpha, holds 16 bits) for the extension of ``path``."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ImageError(
            f"{path}: cannot write {suffix or 'files without an extension'}; use one of {', '.join(WRITE_FORMATS)}"
        )
    return WRITE_FORMATS[suffix]


def can_hold(suffix: str, image: ImageData) -> bool:
    """Whether a file with this extension keeps ``image`` whole (its alpha and its bit depth)."""
    entry = WRITE_FORMATS.get(suffix.lower())
    if entry is None:
        return False
    _, alpha, sixteen = entry
    return (alpha or not image.has_alpha) and (sixteen or image.bit_depth == 8)


def check_target(source: str | os.PathLike[str], target: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse a target that is the source file itself, an existing file (unless ``overwrite``), or a
    format superres cannot write — before any work is done."""
    check_not_input(target, [source], ImageError)
    _writable_format(Path(target), overwrite)


def check_not_input(
    target: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]],
    error: type[SuperresError] = ConfigError,
) -> None:
    """Raise ``error`` if ``target`` is one of ``inputs`` — the same file, whatever the path (links,
    ``..``, case-insensitive file systems): no command of superres ever writes over its own input,
    ``overwrite`` or not. Every command that writes calls this before its work."""
    target = Path(target)
    if not target.exists():
        return
    for source in inputs:
        try:
            same = os.path.samefile(source, target)
        except OSError:  # the input does not exist (any more): it cannot be the target
            continue
        if same:
            where = "" if os.fspath(source) == os.fspath(target) else f" {source}"
            raise error(f"{target}: is the input file{where}; superres never writes over its inputs")


def _writable_format(path: Path, overwrite: bool) -> tuple[str, bool, bool]:
    """:func:`output_format` of ``path``, which must not exist unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: already exists (pass overwrite to replace it)")
    return output_format(path)


def write_image(
    path: str | os.PathLike[str], image: ImageData, overwrite: bool = False, quality: int | None = None
) -> Path:
    """Encode ``image`` by the extension of ``path`` (.png, .jpg/.jpeg, .webp); returns the path.

    ``quality`` (1–100) is JPEG's or WebP's (default 95); PNG is lossless and ignores it.
    """
    path = Path(path)
    if quality is not None and not 1 <= quality <= 100:
        raise ConfigError(f"quality must lie in 1…100, not {quality}")
    fmt, holds_alpha, holds_16 = _writable_format(path, overwrite)
    pixels = image.pixels
    if pixels.dtype == np.uint16 and not holds_16:
        warnings.warn(
            f"{path.name}: {fmt} holds 8 bits per channel; the 16-bit result is rounded to 8 bits", stacklevel=2
        )
        pixels = to_8bit(pixels)
    if image.has_alpha and not holds_alpha:
        warnings.warn(
            f"{path.name}: {fmt} has no alpha channel; transparent areas are composited onto white", stacklevel=2
        )
        pixels = flatten_on_white(pixels)

    try:
        with atomic_path(path, overwrite) as tmp, tmp.open("wb") as out:
            if pixels.dtype == np.uint16:
                _write_png16(out, pixels, image.icc_profile)
            else:
                _write_pillow(out, pixels, fmt, image, quality)
    except FileExistsError:
        raise ImageError(f"{path}: already exists (pass overwrite to replace it)") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 → uint8, rounded (65535 / 255 = 257)."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    """Composite a gray+α or colour+α uint8 image onto white; returns gray or colour."""
    alpha = pixels[..., -1:].astype(np.float32) / 255.0
    colour = pixels[..., :-1].astype(np.float32)
    flat = np.round(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return flat[..., 0] if flat.shape[-1] == 1 else flat


def _write_pillow(
    out: io.BufferedWriter, pixels: np.ndarray, fmt: str, image: ImageData, quality: int | None = None
) -> None:
    options: dict[str, object] = {}
    if image.icc_profile:
        options["icc_profile"] = image.icc_profile
    if image.exif:
        options["exif"] = image.exif
    if fmt == "JPEG":
        # 4:4:4 chroma: 4:2:0 would halve the colour resolution the network just doubled or quadrupled
        options.update(quality=quality or JPEG_QUALITY, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=quality or WEBP_QUALITY)
    elif fmt == "PNG":
        options.update(compress_level=PNG_COMPRESS_LEVEL)
    array_to_pil(pixels).save(out, format=fmt, **options)


class _Png16Writer(png.Writer):
    """pypng's writer plus an iCCP chunk, which pypng cannot write (PNG spec §11.3.3.3)."""

    def __init__(self, *args: object, icc_profile: bytes | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.icc_profile = icc_profile

    def write_preamble(self, outfile: io.BufferedWriter) -> None:
        super().write_preamble(outfile)
        if self.icc_profile:  # iCCP must come before IDAT; name, NUL, compression method 0, zlib data
            png.write_chunk(outfile, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(self.icc_profile))


def _write_png16(out: io.BufferedWriter, pixels: np.ndarray, icc_profile: bytes | None) -> None:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    height, width = pixels.shape[:2]
    writer = _Png16Writer(
        width, height, greyscale=channels <= 2, alpha=channels in (2, 4), bitdepth=16, icc_profile=icc_profile,
        compression=PNG_COMPRESS_LEVEL,
    )
    # PNG stores 16-bit samples big-endian; rows go in as packed bytes, one at a time, so the image is
    # never copied whole
    rows = (row.astype(">u2").tobytes() for row in pixels.reshape(height, -1))
    writer.write_packed(out, rows)


# --------------------------------------------------------------------------------------------------
# Atomic files: what every writer of superres (images, weights, checkpoints, reports) goes through

# .<name>.<pid>.<random>.part — see atomic_path
_PART_NAME = re.compile(r"^\..*\.(\d+)\.[A-Za-z0-9_]+\.part$")
_STALE_AFTER_S = 24 * 3600  # where a writer's liveness cannot be asked (not POSIX)


@contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """A temporary file beside ``path`` to write into; it becomes ``path`` when the block ends.

    The temporary is named ``.<name>.<pid>.<random>.part``: hidden, with an extension no reader picks
    from a folder, so a half-written file is never taken for a result, and with the writer's pid so
    that :func:`remove_stale_parts` can tell a killed writer's leftovers from a running one's. On
    success it is renamed onto ``path`` (atomic within a folder). Without ``overwrite`` it is hard-linked
    instead, which fails with :class:`FileExistsError` if ``path`` appeared meanwhile: a file someone
    else made is never replaced. On an exception the temporary is deleted and ``path`` is untouched.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.{os.getpid()}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make every output private
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(17, "already exists", str(path)) from None
    except OSError:  # a file system without hard links (FAT, some network shares): check, then rename
        if path.exists():
            raise FileExistsError(17, "already exists", str(path)) from None
        os.replace(tmp, path)


def remove_stale_parts(folder: str | os.PathLike[str]) -> int:
    """Delete the temporaries of :func:`atomic_path` that writers no longer alive left in ``folder``.

    A process killed mid-write (SIGKILL, power loss) cannot clean up after itself; the next run in that
    folder does. Returns the number of files removed.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        match = _PART_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or not _writer_gone(int(match[1]), entry):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass  # another run cleaned it first, or it is not ours to delete
    return removed


def _writer_gone(pid: int, entry: os.DirEntry[str]) -> bool:
    if pid == os.getpid():
        return False
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return time.time() - entry.stat().st_mtime > _STALE_AFTER_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, and someone else's (EPERM)
        return False
    return False
