"""Scores of any image files: NIQE alone, or PSNR / SSIM / LPIPS against reference images (``superres score``).

Unlike :func:`superres.quality.evaluation.evaluate`, nothing is upscaled here: the images are judged as
they are, e.g. outputs of another tool. PSNR and SSIM follow :mod:`superres.quality.metrics` (Y channel
of 8-bit images); ``crop`` pixels are cut from every border first (the papers crop the scale factor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superres.errors import ConfigError, ImageError, SuperresError
from superres.imageio import read_image
from superres.quality.evaluation import make_scorer
from superres.quality.metrics import psnr, ssim

NO_REFERENCE = ("niqe",)
FULL_REFERENCE = ("psnr", "ssim", "lpips")


@dataclass
class FileScore:
    path: Path
    reference: Path | None
    scores: dict[str, float]
    error: str | None = None


def parse_score_metrics(text: str | Sequence[str] | None, with_reference: bool) -> tuple[str, ...]:
    """The metrics asked for; default NIQE alone, or PSNR, SSIM and NIQE when references are given."""
    if text is None:
        return ("psnr", "ssim", "niqe") if with_reference else NO_REFERENCE
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in NO_REFERENCE + FULL_REFERENCE]
    if unknown or not names:
        raise ConfigError(f"unknown metric {unknown[0] if unknown else ''!r}; choose from niqe, psnr, ssim, lpips")
    needing = [m for m in names if m in FULL_REFERENCE]
    if needing and not with_reference:
        raise ConfigError(f"{', '.join(needing)} needs a reference image: give --ref HR… (one per image)")
    return tuple(dict.fromkeys(names))


def score_files(
    images: Sequence[str | Path],
    references: Sequence[str | Path] | None = None,
    metrics: str | Sequence[str] | None = None,
    niqe_channel: str = "y",
    crop: int = 0,
    lpips_net: str = "alex",
    lpips_weights: tuple[str | Path, str | Path] | None = None,
    device: str = "cpu",
) -> list[FileScore]:
    """Score each image (and its reference, same order). A file that fails gets ``error``, the others go on."""
    if references and len(references) != len(images):
        raise ConfigError(f"{len(images)} images but {len(references)} references: give one --ref per image")
    if crop < 0:
        raise ConfigError(f"--crop must be ≥ 0, not {crop}")
    if niqe_channel not in ("y", "gray"):
        raise ConfigError(f"--niqe-channel must be y or gray, not {niqe_channel!r}")
    chosen = parse_score_metrics(metrics, bool(references))
    lpips = make_scorer(1, chosen, lpips_net=lpips_net, lpips_weights=lpips_weights, device=device).lpips
    results = []
    for i, image in enumerate(images):
        reference = Path(references[i]) if references else None
        try:
            scores = _score_one(Path(image), reference, chosen, niqe_channel, crop, lpips)
            results.append(FileScore(Path(image), reference, scores))
        except (SuperresError, ValueError, OSError) as err:
            results.append(FileScore(Path(image), reference, {}, str(err)))
    return results


def _score_one(
    path: Path, reference: Path | None, metrics: Sequence[str], channel: str, crop: int, lpips
) -> dict[str, float]:
    image = _crop(_read_8bit(path), crop, path)
    ref = _crop(_read_8bit(reference), crop, reference) if reference is not None else None
    if ref is not None and ref.shape != image.shape:
        raise ImageError(f"{path} is {_size(image)} but its reference {reference} is {_size(ref)}")
    scores: dict[str, float] = {}
    for metric in metrics:
        if metric == "niqe":
            from superres.quality.niqe import niqe

            try:
                scores["niqe"] = niqe(image, channel=channel)  # type: ignore[arg-type]
            except ValueError as err:
                raise ImageError(f"{path}: {err}") from None
        elif metric == "psnr":
            scores["psnr"] = psnr(image, ref, crop_border=0)
        elif metric == "ssim":
            scores["ssim"] = ssim(image, ref, crop_border=0)
        elif metric == "lpips":
            from superres.quality.lpips import lpips_images

            scores["lpips"] = lpips_images(lpips, image, ref)
    return scores


def _read_8bit(path: Path) -> np.ndarray:
    """H×W×3 RGB or H×W gray uint8 (alpha dropped; 16-bit rounded to 8 bits, as the metrics are 8-bit)."""
    pixels = read_image(path).pixels
    if pixels.dtype == np.uint16:
        pixels = np.floor(pixels / 257.0 + 0.5).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = pixels[..., :-1]
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    return pixels


def _crop(image: np.ndarray, crop: int, path: Path) -> np.ndarray:
    if not crop:
        return image
    if min(image.shape[:2]) <= 2 * crop:
        raise ImageError(f"--crop {crop} leaves nothing of {path} ({_size(image)})")
    return image[crop:-crop, crop:-crop]


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}×{image.shape[0]}"
