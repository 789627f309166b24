"""Benchmark evaluation the way the SR papers do it: ``evaluate(model, data_root)``.

Data layout (as ``superres data fetch/add`` install them in the data home, and the usual releases)::

    <root>/<Set>/HR/                  ground truth (or HR_mod<scale>/, preferred when present)
    <root>/<Set>/LR_bicubic/X<scale>/ LR inputs, same file name (or ``<stem>x<scale>.<ext>``)

HR images whose size is not a multiple of the scale are cropped to one, keeping the top-left
corner. Without an LR folder the LR is made from the HR with our MATLAB-exact ``imresize``.
Scoring follows :mod:`superres.quality.metrics` (Y of BT.601, border = scale, 8-bit output).

Grayscale HR images (Set14's ``bridge``) are handled as the literature does: the model gets the
gray LR replicated to RGB, its output is turned back into gray with the full-range BT.601 luma
(which returns a replicated gray image unchanged), and the gray values are scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from superres.errors import ImageError, SuperresError
from superres.imageio import ImageData, read_image, write_image
from superres.quality.imresize import imresize
from superres.quality.metrics import PROTOCOL_RGB, PROTOCOL_Y, psnr, rgb_to_y, ssim

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


# Makes the LR of a uint8 HR image (file name and scale given) instead of the LR files: the
# real-world benchmark's recipes (superres.train.degrade.recipes) are such functions.
Degrade = Callable[[np.ndarray, str, int], np.ndarray]


class SupportsUpscale(Protocol):
    """What ``evaluate`` needs from a model: an integer ``scale`` and uint8 RGB in → uint8 RGB out."""

    scale: int

    def upscale(self, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Bicubic:
    """The baseline row of every table: MATLAB bicubic upscaling of the LR."""

    scale: int = 4
    arch: str = "bicubic"
    precision: str = "float64"

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return imresize(image, float(self.scale))


@dataclass(frozen=True)
class ImageScore:
    psnr: float
    ssim: float
    niqe: float | None = None  # of the SR output, when asked for (no-reference: lower looks more natural)


@dataclass
class DatasetResult:
    psnr: float  # mean over images of the per-image PSNR, as the papers average
    ssim: float
    n: int
    lr_source: str
    seconds: float
    images: dict[str, ImageScore] = field(default_factory=dict)
    niqe: float | None = None


@dataclass
class EvalReport:
    protocol: dict[str, Any]
    results: dict[str, DatasetResult]

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": dict(self.protocol), "results": {name: asdict(r) for name, r in self.results.items()}}

    def to_json(self, indent: int | None = 2) -> str:
        """``{"protocol": {...}, "results": {"Set5": {"psnr", "ssim", "n", "images": {...}}}}`` as text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def protocol_line(self) -> str:
        p = self.protocol
        return f"×{p['scale']} · {p['description']} · model {p['model']}"


def evaluate(
    model: str | Path | SupportsUpscale,
    data_root: str | Path,
    datasets: Sequence[str] = ("Set5", "Set14", "BSD100"),
    scale: int | None = 4,
    y_only: bool = True,
    save_images: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    device: str = "auto",
    precision: str = "fp32",
    tile: int | None = None,
    degrade: Degrade | None = None,
    degrade_name: str | None = None,
    niqe: bool = False,
) -> EvalReport:
    """Score ``model`` on benchmark sets under ``data_root``; see the module docstring.

    ``model`` is ``"bicubic"``, a weights path or name for :func:`superres.engine.inference.load_model`,
    or an object with ``.upscale(uint8 RGB array)`` and ``.scale`` (an ``Upscaler``).
    ``scale=None`` takes the model's own scale (4 for bicubic). ``save_images`` writes each SR
    output to ``<save_images>/<Set>/<stem>.png``; existing files are an error unless ``overwrite``.
    ``device``, ``precision`` and ``tile`` go to ``load_model`` when ``model`` is a path or name;
    precision defaults to fp32 so that published numbers do not depend on the hardware.
    ``degrade`` makes each LR from its HR instead (the real-world benchmark; ``degrade_name`` names it
    in the report). ``niqe`` also scores each output with NIQE (:mod:`superres.quality.niqe`).
    """
    upscaler, model_name = resolve_model(model, scale, device, precision, tile)
    scale = int(upscaler.scale)
    root = Path(data_root)
    sets = [_DatasetFiles.find(root, name, scale, degrade) for name in datasets]
    save_dir = Path(save_images) if save_images is not None else None
    if save_dir is not None and not overwrite:
        _refuse_existing_outputs(save_dir, sets)

    results = {
        files.name: _evaluate_dataset(upscaler, files, scale, y_only, save_dir, overwrite, progress, niqe)
        for files in sets
    }
    protocol = {
        "model": model_name,
        "precision": str(getattr(upscaler, "precision", "unknown")),
        "scale": scale,
        "channel": "Y" if y_only else "RGB",
        "crop_border": scale,
        "description": PROTOCOL_Y if y_only else PROTOCOL_RGB,
        "psnr_peak": 255,
        "ssim": {"window": 11, "sigma": 1.5, "K1": 0.01, "K2": 0.03, "region": "valid"},
        "sr_output": "clamped and rounded to uint8",
        "hr": f"cropped to a multiple of {scale}, top-left kept",
        "lr": f"LR_bicubic/X{scale} files where present, else superres.quality.imresize (MATLAB bicubic)",
    }
    if degrade is not None:
        protocol["lr"] = f"made from the HR by the degradation recipe {degrade_name or degrade!r}"
        protocol["description"] += f" · LR degraded: {degrade_name or 'custom'}"
    if niqe:
        protocol["niqe"] = f"NIQE of the SR output (Y, border {scale}); lower is more natural"
    return EvalReport(protocol=protocol, results=results)


def resolve_model(
    model: str | Path | SupportsUpscale, scale: int | None, device: str, precision: str, tile: int | None
) -> tuple[SupportsUpscale, str]:
    if scale is not None and scale < 1:
        raise SuperresError(f"scale must be a positive integer, not {scale}")
    if isinstance(model, str) and model == "bicubic":
        return Bicubic(scale if scale is not None else 4), "bicubic"
    if isinstance(model, (str, Path)):
        from superres.engine.inference import load_model

        upscaler, name = load_model(model, device=device, precision=precision, tile=tile), str(model)
    else:
        upscaler, name = model, str(getattr(model, "arch", type(model).__name__))
    if scale is not None and int(upscaler.scale) != scale:
        raise SuperresError(f"the model upscales ×{upscaler.scale}, but scale {scale} was asked for")
    return upscaler, name


@dataclass(frozen=True)
class _DatasetFiles:
    name: str
    hr_paths: tuple[Path, ...]
    lr_dir: Path | None  # None: LR made with imresize (or ``degrade``)
    degrade: Degrade | None = None

    @staticmethod
    def find(root: Path, name: str, scale: int, degrade: Degrade | None = None) -> _DatasetFiles:
        set_dir = root / name
        # HR_mod<s> is what the X<s> LR files were cut from when HR itself is cropped for ×4.
        hr_dir = next((d for d in (set_dir / f"HR_mod{scale}", set_dir / "HR") if d.is_dir()), None)
        if hr_dir is None:
            raise SuperresError(f"dataset {name!r} not found: expected HR images in {set_dir / 'HR'}")
        hr_paths = tuple(sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not hr_paths:
            raise SuperresError(f"no images in {hr_dir}")
        lr_dir = set_dir / "LR_bicubic" / f"X{scale}"
        use_files = lr_dir.is_dir() and degrade is None
        return _DatasetFiles(name, hr_paths, lr_dir if use_files else None, degrade)

    def lr_path(self, hr_path: Path, scale: int) -> Path:
        assert self.lr_dir is not None
        # Same name, or BasicSR's <stem>x<s>; LR made from JPEG HR by `superres data add` is PNG.
        stem = hr_path.stem
        names = (hr_path.name, f"{stem}x{scale}{hr_path.suffix}", f"{stem}.png", f"{stem}x{scale}.png")
        for candidate in dict.fromkeys(names):
            if (self.lr_dir / candidate).is_file():
                return self.lr_dir / candidate
        raise SuperresError(f"no LR image for {hr_path.name} in {self.lr_dir}")

    def read_pair(self, hr_path: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) as uint8, HR cropped to a multiple of ``scale``; gray images stay 2-D."""
        hr = crop_to_multiple(read_uint8(hr_path), scale)
        if self.degrade is not None:
            return self.degrade(hr, hr_path.name, scale), hr
        if self.lr_dir is None:
            return make_lr(hr, scale), hr
        lr_path = self.lr_path(hr_path, scale)
        lr = read_uint8(lr_path)
        expected = (hr.shape[0] // scale, hr.shape[1] // scale)
        if lr.shape[:2] != expected:
            raise SuperresError(
                f"{lr_path} is {lr.shape[1]}×{lr.shape[0]}, expected {expected[1]}×{expected[0]} "
                f"(HR {hr.shape[1]}×{hr.shape[0]} / {scale})"
            )
        return lr, hr


@dataclass(frozen=True)
class BenchmarkImage:
    name: str
    lr: np.ndarray  # h×w×3, or h×w for a gray image, uint8
    hr: np.ndarray  # (scale·h)×(scale·w)[×3] uint8


def load_benchmark(folder: str | Path, scale: int, degrade: Degrade | None = None) -> list[BenchmarkImage]:
    """All (LR, HR) pairs of one benchmark set folder (``<Set>``), read as ``evaluate`` reads them."""
    folder = Path(folder).expanduser()
    files = _DatasetFiles.find(folder.parent, folder.name, scale, degrade)
    return [BenchmarkImage(p.stem, *files.read_pair(p, scale)) for p in files.hr_paths]


def _refuse_existing_outputs(save_dir: Path, sets: Iterable[_DatasetFiles]) -> None:
    for files in sets:
        for hr_path in files.hr_paths:
            target = _output_path(save_dir, files.name, hr_path)
            if target.exists():
                raise SuperresError(f"{target} exists; choose another --save-images folder or pass --overwrite")


def _output_path(save_dir: Path, dataset: str, hr_path: Path) -> Path:
    return save_dir / dataset / f"{hr_path.stem}.png"


def _evaluate_dataset(
    upscaler: SupportsUpscale,
    files: _DatasetFiles,
    scale: int,
    y_only: bool,
    save_dir: Path | None,
    overwrite: bool,
    progress: bool,
    niqe: bool = False,
) -> DatasetResult:
    from tqdm import tqdm

    start = time.perf_counter()
    images: dict[str, ImageScore] = {}
    for hr_path in tqdm(files.hr_paths, desc=files.name, unit="img", disable=not progress, leave=False):
        lr, hr = files.read_pair(hr_path, scale)
        sr = super_resolve(upscaler, lr, hr.shape, hr_path)
        if save_dir is not None:
            target = _output_path(save_dir, files.name, hr_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, ImageData(pixels=sr, format="PNG"), overwrite=overwrite)
        images[hr_path.name] = score_image(sr, hr, scale, y_only, niqe)
    if files.degrade is not None:
        lr_source = "degraded"
    else:
        lr_source = "imresize" if files.lr_dir is None else f"LR_bicubic/X{scale}"
    return DatasetResult(
        psnr=float(np.mean([s.psnr for s in images.values()])),
        ssim=float(np.mean([s.ssim for s in images.values()])),
        n=len(images),
        lr_source=lr_source,
        seconds=time.perf_counter() - start,
        images=images,
        niqe=float(np.mean([s.niqe for s in images.values()])) if niqe else None,
    )


def network_input(lr: np.ndarray) -> np.ndarray:
    """Networks take RGB: a gray LR image is replicated to three channels (scored as gray after)."""
    return np.repeat(lr[..., None], 3, axis=2) if lr.ndim == 2 else lr


def score_image(sr: np.ndarray, hr: np.ndarray, scale: int, y_only: bool = True, niqe: bool = False) -> ImageScore:
    """PSNR/SSIM of one uint8 SR output against its HR; a gray HR is compared with the output's luma.

    With ``niqe``, also the output's NIQE (its luma, the same border cropped), which needs no HR.
    """
    scored = _to_gray(sr) if hr.ndim == 2 else sr
    naturalness = None
    if niqe:
        from superres.quality.niqe import niqe as niqe_score

        naturalness = float(niqe_score(scored, crop_border=scale))
    return ImageScore(
        psnr=psnr(scored, hr, crop_border=scale, y_only=y_only),
        ssim=ssim(scored, hr, crop_border=scale, y_only=y_only),
        niqe=naturalness,
    )


def super_resolve(upscaler: SupportsUpscale, lr: np.ndarray, hr_shape: tuple[int, ...], name: Path) -> np.ndarray:
    if not isinstance(upscaler, Bicubic):
        lr = network_input(lr)
    sr = np.asarray(upscaler.upscale(lr))
    if sr.dtype != np.uint8 or sr.shape[:2] != tuple(hr_shape[:2]):
        raise SuperresError(
            f"the model turned {name.name} ({lr.shape[1]}×{lr.shape[0]}) into a {sr.dtype} image of "
            f"shape {sr.shape}; expected uint8 {hr_shape[1]}×{hr_shape[0]}"
        )
    if len(hr_shape) == 3 and sr.ndim == 2:
        raise SuperresError(f"the model returned a gray image for the RGB image {name.name}")
    return sr


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma, 8 bit: the studio-range Y with its offset and scale undone."""
    if rgb.ndim == 2:
        return rgb
    luma = (rgb_to_y(rgb) - 16.0) * 255.0 / 219.0
    return np.floor(np.clip(luma, 0, 255) + 0.5).astype(np.uint8)


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR the protocol uses where no LR file is given: MATLAB-bicubic ``imresize`` of the uint8 HR.

    ``hr`` must already be cropped to a multiple of ``scale`` (see :func:`crop_to_multiple`).
    """
    return imresize(hr, 1 / scale)


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def read_uint8(path: Path) -> np.ndarray:
    """An 8-bit image as uint8: ``H×W`` for grayscale files, ``H×W×3`` RGB otherwise (alpha dropped)."""
    pixels = read_image(path).pixels
    if pixels.dtype != np.uint8:
        raise ImageError(f"{path}: {pixels.dtype} pixels; the benchmark protocol is defined on 8-bit images")
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = pixels[..., :-1] if pixels.shape[2] == 4 else pixels[..., 0]
    return pixels
