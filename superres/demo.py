"""The comparison figure: HR | bicubic | each model, labelled with PSNR/SSIM, over a row of zoomed details.

The protocol is the SR benchmarks' (SRResNet §3.1, ESRGAN §4.1): the HR image is cropped to a
multiple of the scale, the LR input is made with MATLAB's bicubic ``imresize(HR, 1/4)``, and
every upscaled result is scored against the HR on the Y channel with a 4-pixel border ignored.
Whole images show the overall look; the zoom row (nearest-neighbour, so no resampling hides
anything) shows the detail region where the methods differ most, chosen as the window with the
most gradient energy in the HR image unless a box is given.

    >>> from superres.demo import demo
    >>> demo(output="comparison.png", models=["superres-x4", "RealESRGAN_x4plus"])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from superres.errors import ConfigError, ImageError
from superres.models.registry import DEFAULT_MODEL

SCALE = 4
BICUBIC = "bicubic"
DEFAULT_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MIN_SIZE = 32  # the LR image must keep 8×8 pixels, and SSIM's 11×11 window must fit after the border

# Figure geometry and colours (pixels).
MARGIN = 12
GAP = 8
FONT_SIZE = 14
TITLE_SIZE = 16
MAX_PANEL = 512  # larger images are shown shrunk; metrics always use full resolution
MIN_PANEL = 192  # smaller ones are enlarged (nearest) so the captions fit
BACKGROUND = (255, 255, 255)
TEXT = (34, 34, 34)
MUTED = (110, 110, 110)
BEST = (192, 41, 43)
BOX = (230, 40, 40)


class Box(NamedTuple):
    """A rectangle in HR pixel coordinates."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Method:
    """A way to go from the LR image (H×W×3 uint8) to an upscaled one (sH×sW×3 uint8)."""

    label: str
    upscale: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Result:
    label: str
    image: np.ndarray
    psnr: float
    ssim: float


@dataclass(frozen=True)
class Comparison:
    hr: np.ndarray
    lr: np.ndarray
    results: tuple[Result, ...]
    detail: Box
    scale: int
    title: str = ""


@dataclass(frozen=True)
class Cell:
    """Where one column of the figure was drawn (PIL boxes: left, top, right, bottom)."""

    label: str
    image_box: tuple[int, int, int, int]
    caption_box: tuple[int, int, int, int]
    zoom_box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Figure:
    image: Image.Image
    cells: tuple[Cell, ...]


# --------------------------------------------------------------------------- images


def sample_image() -> Path:
    """The bundled HR sample (CC0; see ``superres/assets/ATTRIBUTION.md``)."""
    return Path(str(resources.files("superres") / "assets" / "sample.png"))


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as H×W×3 uint8: gray is repeated, alpha composited onto white, 16 bits rounded to 8."""
    from superres.imageio import flatten_on_white, read_image, to_8bit

    pixels = read_image(path).pixels
    if pixels.dtype == np.uint16:
        pixels = to_8bit(pixels)
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = flatten_on_white(pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return pixels


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop to a multiple of ``scale`` keeping the top-left corner, as the benchmark HR images are."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def parse_box(text: str) -> Box:
    """``"X,Y,W,H"`` → :class:`Box`."""
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--crop takes X,Y,W,H in HR pixels, e.g. 96,64,64,64; got {text!r}") from None
    return Box(x, y, w, h)


def detail_box(hr: np.ndarray, size: int, step: int = 1, margin: int = 0) -> Box:
    """The ``size``×``size`` window with the most gradient energy (squared finite differences of luma).

    Windows start on a ``step`` grid (the scale, so the box covers whole LR pixels) and keep
    ``margin`` pixels away from the edges, which the metrics ignore.
    """
    luma = hr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = luma.shape
    lo = -(-margin // step) * step  # first grid position at least ``margin`` from the edge
    ys = np.arange(lo, max(lo, h - margin - size) + 1, step)
    xs = np.arange(lo, max(lo, w - margin - size) + 1, step)
    ys, xs = ys[ys + size <= h], xs[xs + size <= w]
    if ys.size == 0 or xs.size == 0:
        return Box(0, 0, min(size, w), min(size, h))
    y0, x0 = ys[:, None], xs[None, :]
    sums = integral[y0 + size, x0 + size] - integral[y0, x0 + size] - integral[y0 + size, x0] + integral[y0, x0]
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return Box(int(xs[ix]), int(ys[iy]), size, size)


def default_detail_size(hr: np.ndarray, scale: int) -> int:
    """A quarter of the shorter side, between 16 and 128 px, on the LR grid: zoomed ≥ ×4 in a panel."""
    size = min(128, max(16, min(hr.shape[:2]) // 4))
    return max(scale, size - size % scale)


# --------------------------------------------------------------------------- methods


def bicubic_method(scale: int = SCALE) -> Method:
    """MATLAB ``imresize(LR, scale)``, the baseline row of every SR results table."""
    from superres.quality.evaluation import Bicubic

    return Method(BICUBIC, Bicubic(scale).upscale)


def upscaler_method(label: str, upscaler, scale: int = SCALE) -> Method:
    """Wrap a :class:`superres.engine.inference.Upscaler`; a model of another scale is resized to ``scale``."""
    outscale = None if upscaler.scale == scale else scale
    return Method(label, lambda lr: upscaler.upscale(lr, outscale=outscale))


def model_label(spec: str) -> str:
    """A model's name in the figure: the registry name, or the file name without its folder and suffix."""
    return Path(spec).stem if Path(spec).expanduser().is_file() else spec


def model_method(spec: str, scale: int = SCALE, device: str = "auto") -> Method:
    """``"bicubic"``, a registry name (fetched if needed) or a weights file."""
    if spec.casefold() == BICUBIC:
        return bicubic_method(scale)
    from superres.engine.inference import load_model
    from superres.models import registry

    path = registry.resolve(spec)
    label = model_label(spec)
    # fp32 even on a GPU: the figure's PSNR/SSIM should be the model's own, not those of an fp16 copy; and
    # PyTorch's convs, not the faster CPU kernels (within a level of them): a figure the same on every CPU.
    return upscaler_method(label, load_model(path, device=device, precision="fp32", winograd=False), scale)


def interpolation_methods(
    psnr_spec: str, gan_spec: str, alphas: Sequence[float] = DEFAULT_ALPHAS, scale: int = SCALE, device: str = "auto"
) -> list[Method]:
    """One method per α of network interpolation (ESRGAN §3.4): θ = (1 − α)·θ_PSNR + α·θ_GAN."""
    from superres.engine.inference import Upscaler
    from superres.models import registry
    from superres.models.interpolation import blend_networks

    psnr_path, gan_path = registry.resolve(psnr_spec), registry.resolve(gan_spec)
    methods = []
    for alpha in alphas:
        net, info = blend_networks(psnr_path, gan_path, alpha)
        upscaler = Upscaler(net, info, device=device, precision="fp32")
        methods.append(upscaler_method(f"alpha = {alpha:g}", upscaler, scale))
    return methods


# --------------------------------------------------------------------------- comparison


def compare(
    hr: np.ndarray, methods: Sequence[Method], scale: int = SCALE, detail: Box | None = None, title: str = ""
) -> Comparison:
    """Make the ×``scale`` LR of ``hr``, run every method on it and score each against ``hr``."""
    from superres.quality.imresize import imresize
    from superres.quality.metrics import psnr, ssim

    hr = crop_to_multiple(hr, scale)
    height, width = hr.shape[:2]
    if min(height, width) < MIN_SIZE:
        raise ImageError(f"the image is {width}×{height}; the comparison needs at least {MIN_SIZE}×{MIN_SIZE} pixels")
    if detail is None:
        detail = detail_box(hr, default_detail_size(hr, scale), step=scale, margin=scale)
    elif min(detail) < 0 or min(detail.w, detail.h) < 1 or detail.x + detail.w > width or detail.y + detail.h > height:
        raise ConfigError(f"the detail box {tuple(detail)} (x, y, w, h) does not fit in the {width}×{height} image")
    lr = imresize(hr, 1.0 / scale)
    results = []
    for method in methods:
        sr = np.asarray(method.upscale(lr))
        if sr.shape != hr.shape:
            raise ImageError(f"{method.label} made a {sr.shape} image from the {lr.shape} input; expected {hr.shape}")
        results.append(Result(method.label, sr, psnr(sr, hr, crop_border=scale), ssim(sr, hr, crop_border=scale)))
    return Comparison(hr=hr, lr=lr, results=tuple(results), detail=detail, scale=scale, title=title)


# --------------------------------------------------------------------------- drawing


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1 with FreeType: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _fit(text: str, font, width: int) -> str:
    """``text``, shortened in the middle with ".." until it fits in ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    keep = len(text)
    while keep > 2:
        keep -= 1
        short = f"{text[: (keep + 1) // 2]}..{text[len(text) - keep // 2 :]}"
        if font.getlength(short) <= width:
            return short
    return ".."


def _wrap(text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _display_factor(width: int, height: int) -> float:
    if max(width, height) > MAX_PANEL:
        return MAX_PANEL / max(width, height)
    if width < MIN_PANEL:
        return float(-(-MIN_PANEL // width))  # whole factor: enlarged pixels stay square
    return 1.0


def _display(image: np.ndarray, factor: float) -> Image.Image:
    pil = Image.fromarray(image)
    if factor == 1.0:
        return pil
    size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
    return pil.resize(size, Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.NEAREST)


def render(comparison: Comparison) -> Figure:
    """Draw the figure: a title, the whole images with captions, and the zoomed details."""
    font, title_font = _font(FONT_SIZE), _font(TITLE_SIZE)
    hr, box = comparison.hr, comparison.detail
    factor = _display_factor(hr.shape[1], hr.shape[0])
    panel_w, panel_h = round(hr.shape[1] * factor), round(hr.shape[0] * factor)
    # Enlarge the detail by a whole factor to fill the panel width (shrink it only if it is too big).
    fit = min(panel_w / box.w, max(panel_h, MIN_PANEL) / box.h)
    zoom = float(int(fit)) if fit >= 1 else fit
    zoom_w, zoom_h = round(box.w * zoom), round(box.h * zoom)
    columns = [("HR (ground truth)", hr, None), *((r.label, r.image, r) for r in comparison.results)]
    width = 2 * MARGIN + len(columns) * panel_w + (len(columns) - 1) * GAP
    line = FONT_SIZE + 5

    title_lines = _wrap(comparison.title, title_font, width - 2 * MARGIN) if comparison.title else []
    footer = (
        f"PSNR and SSIM on the Y channel (BT.601), {comparison.scale}-pixel border ignored; best in red. "
        f"Bottom row: the box x={box.x}, y={box.y}, {box.w}x{box.h} px, enlarged {zoom:.3g}x (nearest neighbour)."
    )
    footer_lines = _wrap(footer, font, width - 2 * MARGIN)
    top = MARGIN + len(title_lines) * (TITLE_SIZE + 6) + (GAP if title_lines else 0)
    caption_h = 2 * line + 6
    zoom_top = top + panel_h + caption_h
    footer_top = zoom_top + zoom_h + GAP
    height = footer_top + len(footer_lines) * line + MARGIN

    figure = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    for i, text in enumerate(title_lines):
        draw.text((MARGIN, MARGIN + i * (TITLE_SIZE + 6)), text, font=title_font, fill=TEXT)

    best_psnr = max((r.psnr for r in comparison.results), default=None) if len(comparison.results) > 1 else None
    best_ssim = max((r.ssim for r in comparison.results), default=None) if len(comparison.results) > 1 else None
    cells = []
    for i, (label, image, result) in enumerate(columns):
        left = MARGIN + i * (panel_w + GAP)
        image_box = (left, top, left + panel_w, top + panel_h)
        figure.paste(_display(image, factor), image_box[:2])
        if result is None:
            x0, y0 = left + round(box.x * factor), top + round(box.y * factor)
            x1, y1 = x0 + round(box.w * factor) - 1, y0 + round(box.h * factor) - 1
            draw.rectangle((x0, y0, x1, y1), outline=BOX, width=2)

        caption_box = (left, top + panel_h, left + panel_w, zoom_top)
        y = top + panel_h + 4
        draw.text((left, y), _fit(label, font, panel_w), font=font, fill=TEXT)
        if result is None:
            draw.text((left, y + line), f"{hr.shape[1]}x{hr.shape[0]} px", font=font, fill=MUTED)
        else:
            psnr_text, ssim_text = f"PSNR {result.psnr:.2f} dB", f"  SSIM {result.ssim:.4f}"
            draw.text((left, y + line), psnr_text, font=font, fill=BEST if result.psnr == best_psnr else MUTED)
            x = left + font.getlength(psnr_text)
            draw.text((x, y + line), ssim_text, font=font, fill=BEST if result.ssim == best_ssim else MUTED)

        crop = image[box.y : box.y + box.h, box.x : box.x + box.w]
        zoom_left = left + (panel_w - zoom_w) // 2
        zoom_box = (zoom_left, zoom_top, zoom_left + zoom_w, zoom_top + zoom_h)
        resample = Image.Resampling.NEAREST if zoom >= 1 else Image.Resampling.LANCZOS
        figure.paste(Image.fromarray(crop).resize((zoom_w, zoom_h), resample), zoom_box[:2])
        cells.append(Cell(label, image_box, caption_box, zoom_box))

    for i, text in enumerate(footer_lines):
        draw.text((MARGIN, footer_top + i * line), text, font=font, fill=MUTED)
    return Figure(figure, tuple(cells))


def save_figure(image: Image.Image, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write the figure (.png, .jpg or .webp) atomically; an existing file is kept unless ``overwrite``."""
    from superres.imageio import ImageData, output_format, write_image

    path = Path(path)
    output_format(path)  # an unsupported extension fails here, before any work
    if path.exists() and not overwrite:
        raise ImageError(f"{path} already exists; pass --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot create the folder for {path} ({exc.strerror or exc})") from None
    return write_image(path, ImageData(np.asarray(image)), overwrite=overwrite)


# --------------------------------------------------------------------------- the command


def demo(
    image: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] = "comparison.png",
    models: Sequence[str] = (DEFAULT_MODEL,),
    detail: Box | None = None,
    alpha_sweep: tuple[str, str] | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    overwrite: bool = False,
    device: str = "auto",
) -> Path:
    """Compare bicubic and ``models`` (plus an α sweep between two models) on ``image`` and save the figure.

    ``image`` is the HR ground truth (default: the bundled sample); its ×4 LR is what the
    methods see. Returns the path written.
    """
    from superres.imageio import check_not_input, output_format

    output = Path(output)
    output_format(output)  # a bad extension or an existing file fails now, not after the models ran
    source = Path(image) if image is not None else sample_image()
    check_not_input(output, [source, *models, *(alpha_sweep or ())])
    if output.exists() and not overwrite:
        raise ImageError(f"{output} already exists; pass --overwrite to replace it")
    hr = load_rgb(source)

    methods = [bicubic_method(SCALE)]
    methods += [model_method(spec, SCALE, device) for spec in models if spec.casefold() != BICUBIC]
    if alpha_sweep is not None:
        methods += interpolation_methods(*alpha_sweep, alphas=alphas, scale=SCALE, device=device)
    height, width = crop_to_multiple(hr, SCALE).shape[:2]
    title = f"x{SCALE} super-resolution of {source.name}: LR {width // SCALE}x{height // SCALE} -> {width}x{height}"
    if alpha_sweep is not None:
        psnr_label, gan_label = (model_label(spec) for spec in alpha_sweep)
        title += f"; network interpolation from {psnr_label} (alpha = 0) to {gan_label} (alpha = 1)"
    comparison = compare(hr, methods, SCALE, detail, title)
    return save_figure(render(comparison).image, output, overwrite=overwrite)
