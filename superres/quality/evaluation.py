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

Beyond PSNR and SSIM, ``metrics`` may add the perceptual side of the perception–distortion plane
(Blau & Michaeli, CVPR 2018): NIQE of the SR output alone (:mod:`superres.quality.niqe`; Y rounded,
border = scale, as PIRM 2018 and ESRGAN score) and LPIPS against the HR (:mod:`superres.quality.lpips`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from superres.errors import ImageError, SuperresError
from superres.imageio import ImageData, check_not_input, read_image, remove_stale_parts, write_image
from superres.quality.imresize import imresize
from superres.quality.metrics import PROTOCOL_RGB, PROTOCOL_Y, psnr, rgb_to_y, smallest_side, ssim

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
METRICS = ("psnr", "ssim", "niqe", "lpips")


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
    niqe: float | None = None  # when asked for: no-reference, lower is more natural
    lpips: float | None = None  # when asked for: against the HR, lower is more similar


@dataclass
class DatasetResult:
    psnr: float  # mean over images of the per-image PSNR, as the papers average
    ssim: float
    n: int
    lr_source: str
    seconds: float
    images: dict[str, ImageScore] = field(default_factory=dict)
    niqe: float | None = None
    lpips: float | None = None


@dataclass
class Scorer:
    """Scores one SR output against its HR: PSNR and SSIM always, NIQE and LPIPS when asked for."""

    scale: int
    y_only: bool = True
    niqe: bool = False
    lpips: Any = None  # a superres.quality.lpips.LPIPS, or None

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("psnr", "ssim") + ("niqe",) * self.niqe + ("lpips",) * (self.lpips is not None)

    def protocol(self) -> dict[str, str]:
        """How the perceptual metrics were computed, for the report."""
        out = {}
        if self.niqe:
            out["niqe"] = (
                "NIQE release (Mittal et al. 2013) of the SR output: Y of rgb2ycbcr rounded (gray images: gray "
                f"values), border {self.scale} cropped, 96×96 blocks"
            )
        if self.lpips is not None:
            net, c = self.lpips.net, self.scale
            out["lpips"] = f"LPIPS v0.1 {net} (Zhang et al. 2018) against HR, RGB, border {c} cropped"
        return out

    def __call__(self, sr: np.ndarray, hr: np.ndarray) -> ImageScore:
        base = score_image(sr, hr, self.scale, self.y_only)
        scored = _to_gray(sr) if hr.ndim == 2 else sr
        extra: dict[str, float] = {}
        if self.niqe:
            from superres.quality.niqe import niqe

            extra["niqe"] = niqe(scored, crop_border=self.scale, channel="y")
        if self.lpips is not None:
            from superres.quality.lpips import lpips_images

            c = self.scale
            extra["lpips"] = lpips_images(self.lpips, scored[c:-c, c:-c], hr[c:-c, c:-c])
        return ImageScore(base.psnr, base.ssim, **extra)


def parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    """``"psnr,ssim,niqe"`` or a sequence of names → validated names (PSNR and SSIM are always scored)."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise SuperresError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in names or m in ("psnr", "ssim"))


def make_scorer(
    scale: int,
    metrics: Sequence[str],
    y_only: bool = True,
    lpips_net: str = "alex",
    lpips_weights: tuple[str | Path, str | Path] | None = None,
    device: str = "cpu",
) -> Scorer:
    """A :class:`Scorer` for ``metrics``; LPIPS weights from ``lpips_weights`` (backbone, head) or the cache."""
    lpips_model = None
    if "lpips" in metrics:
        from superres.engine.devices import resolve_device
        from superres.quality.lpips import load_lpips

        backbone, head = lpips_weights if lpips_weights is not None else (None, None)
        lpips_model = load_lpips(lpips_net, backbone, head, device=resolve_device(device))  # type: ignore[arg-type]
    return Scorer(scale, y_only, "niqe" in metrics, lpips_model)


@dataclass
class EvalReport:
    protocol: dict[str, Any]
    results: dict[str, DatasetResult]
    # SR images that ``save_images`` could not write (one line each); the scores are complete regardless
    save_errors: list[str] = field(default_factory=list)

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
    metrics: str | Sequence[str] = ("psnr", "ssim"),
    lpips_net: str = "alex",
    lpips_weights: tuple[str | Path, str | Path] | None = None,
    strength: float | None = None,
    degrade: Degrade | None = None,
    degrade_name: str | None = None,
) -> EvalReport:
    """Score ``model`` on benchmark sets under ``data_root``; see the module docstring.

    ``model`` is ``"bicubic"``, a weights path or name for :func:`superres.engine.inference.load_model`,
    or an object with ``.upscale(uint8 RGB array)`` and ``.scale`` (an ``Upscaler``).
    ``scale=None`` takes the model's own scale (4 for bicubic). ``save_images`` writes each SR
    output to ``<save_images>/<Set>/<stem>.png``; existing files are an error unless ``overwrite``.
    ``device``, ``precision`` and ``tile`` go to ``load_model`` when ``model`` is a path or name;
    precision defaults to fp32 so that published numbers do not depend on the hardware.
    An SR image that cannot be written (a full disk) does not stop the scoring: it is listed in
    ``save_errors`` of the report.
    ``metrics``: ``psnr``, ``ssim`` (always), ``niqe``, ``lpips`` (``lpips_net`` alex or vgg; weights
    from ``lpips_weights`` = (backbone, head) paths, else downloaded once). ``strength`` blends a known
    model with its GAN partner (:func:`superres.engine.inference.load_model`). ``degrade`` makes each
    LR from its HR instead of the LR files (the real-world benchmark; ``degrade_name`` names it).
    """
    chosen = parse_metrics(metrics)
    upscaler, model_name = resolve_model(model, scale, device, precision, tile, strength)
    scale = int(upscaler.scale)
    scorer = make_scorer(scale, chosen, y_only, lpips_net, lpips_weights, device)
    save_dir = Path(save_images) if save_images is not None else None
    return evaluate_upscaler(
        upscaler, model_name, data_root, datasets, scorer, save_dir, overwrite, progress, degrade, degrade_name
    )


def evaluate_upscaler(
    upscaler: SupportsUpscale,
    model_name: str,
    data_root: str | Path,
    datasets: Sequence[str],
    scorer: Scorer,
    save_dir: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    degrade: Degrade | None = None,
    degrade_name: str | None = None,
) -> EvalReport:
    """:func:`evaluate` for a model and a :class:`Scorer` already made (the α sweep scores many models)."""
    scale, y_only = scorer.scale, scorer.y_only
    root = Path(data_root)
    sets = [_DatasetFiles.find(root, name, scale, degrade) for name in datasets]
    if save_dir is not None:
        _prepare_outputs(save_dir, sets, overwrite)

    save_errors: list[str] = []
    results = {
        files.name: _evaluate_dataset(upscaler, files, scorer, save_dir, overwrite, progress, save_errors)
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
        "metrics": list(scorer.metrics),
        **scorer.protocol(),
    }
    if degrade is not None:
        protocol["lr"] = f"made from the HR by the degradation recipe {degrade_name or 'custom'}"
        protocol["description"] += f" · LR degraded: {degrade_name or 'custom'}"
    return EvalReport(protocol=protocol, results=results, save_errors=save_errors)


def resolve_model(
    model: str | Path | SupportsUpscale,
    scale: int | None,
    device: str,
    precision: str,
    tile: int | None,
    strength: float | None = None,
) -> tuple[SupportsUpscale, str]:
    if scale is not None and scale < 1:
        raise SuperresError(f"scale must be a positive integer, not {scale}")
    if isinstance(model, str) and model == "bicubic":
        return Bicubic(scale if scale is not None else 4), "bicubic"
    if isinstance(model, (str, Path)):
        from superres.engine.inference import load_model

        upscaler = load_model(model, device=device, precision=precision, tile=tile, strength=strength)
        name = str(model) if strength is None else f"{model} strength {strength:g}"
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

    def inputs(self) -> list[Path]:
        """Every file the evaluation of this set reads (or might, for the LR)."""
        if self.lr_dir is None:
            return list(self.hr_paths)
        return [*self.hr_paths, *(p for p in self.lr_dir.iterdir() if p.is_file())]

    def read_pair(self, hr_path: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR, HR) as uint8, HR cropped to a multiple of ``scale``; gray images stay 2-D."""
        hr = crop_to_multiple(read_uint8(hr_path), scale)
        if min(hr.shape[:2]) < smallest_side(scale):
            raise ImageError(
                f"{hr_path}: {hr.shape[1]}×{hr.shape[0]} is too small to score: SSIM's 11×11 window needs "
                f"at least {smallest_side(scale)} px a side once the {scale}-px border is cropped"
            )
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


def _prepare_outputs(save_dir: Path, sets: list[_DatasetFiles], overwrite: bool) -> None:
    """Before any work: refuse outputs that exist (unless ``overwrite``) or that are inputs, make the
    folders (a folder that cannot be made is an error now, not after the scoring), clear old temporaries."""
    for files in sets:
        inputs = files.inputs()
        for hr_path in files.hr_paths:
            target = _output_path(save_dir, files.name, hr_path)
            check_not_input(target, inputs)
            if target.exists() and not overwrite:
                raise SuperresError(f"{target} exists; choose another --save-images folder or pass --overwrite")
        folder = save_dir / files.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SuperresError(f"cannot make {folder} for --save-images ({exc.strerror or exc})") from None
        remove_stale_parts(folder)


def _output_path(save_dir: Path, dataset: str, hr_path: Path) -> Path:
    return save_dir / dataset / f"{hr_path.stem}.png"


def _evaluate_dataset(
    upscaler: SupportsUpscale,
    files: _DatasetFiles,
    scorer: Scorer,
    save_dir: Path | None,
    overwrite: bool,
    progress: bool,
    save_errors: list[str],
) -> DatasetResult:
    from tqdm import tqdm

    start = time.perf_counter()
    scale = scorer.scale
    images: dict[str, ImageScore] = {}
    for hr_path in tqdm(files.hr_paths, desc=files.name, unit="img", disable=not progress, leave=False):
        lr, hr = files.read_pair(hr_path, scale)
        sr = super_resolve(upscaler, lr, hr.shape, hr_path)
        if save_dir is not None:
            try:
                write_image(_output_path(save_dir, files.name, hr_path), ImageData(sr, format="PNG"), overwrite)
            except SuperresError as err:
                save_errors.append(str(err))
        images[hr_path.name] = scorer(sr, hr)
    return DatasetResult(
        psnr=_mean(images, "psnr"),
        ssim=_mean(images, "ssim"),
        n=len(images),
        lr_source=_lr_source(files, scale),
        seconds=time.perf_counter() - start,
        images=images,
        niqe=_mean(images, "niqe"),
        lpips=_mean(images, "lpips"),
    )


def _mean(images: dict[str, ImageScore], metric: str) -> Any:
    values = [getattr(score, metric) for score in images.values()]
    return None if None in values else float(np.mean(values))


def _lr_source(files: _DatasetFiles, scale: int) -> str:
    if files.degrade is not None:
        return "degraded"
    return "imresize" if files.lr_dir is None else f"LR_bicubic/X{scale}"


def network_input(lr: np.ndarray) -> np.ndarray:
    """Networks take RGB: a gray LR image is replicated to three channels (scored as gray after)."""
    return np.repeat(lr[..., None], 3, axis=2) if lr.ndim == 2 else lr


def score_image(sr: np.ndarray, hr: np.ndarray, scale: int, y_only: bool = True) -> ImageScore:
    """PSNR/SSIM of one uint8 SR output against its HR; a gray HR is compared with the output's luma."""
    scored = _to_gray(sr) if hr.ndim == 2 else sr
    return ImageScore(
        psnr=psnr(scored, hr, crop_border=scale, y_only=y_only),
        ssim=ssim(scored, hr, crop_border=scale, y_only=y_only),
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
