"""No-reference scoring on real photos: NIQE of a model's outputs on a folder with no HR.

A benchmark needs ground truth; a user's photos have none. NIQE (Mittal et al., IEEE SPL 2013,
:mod:`superres.quality.niqe`) measures how far an image's local statistics are from those of
pristine natural images — lower is more natural — so it can compare models on the photos that
matter to a user: bicubic, the PSNR-oriented and GAN models, third-party models.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superres.errors import SuperresError
from superres.quality.evaluation import IMAGE_SUFFIXES, SupportsUpscale, read_uint8, resolve_model, super_resolve


@dataclass
class PhotoReport:
    model: str
    folder: str
    niqe: float  # mean over the photos
    seconds: float
    images: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_photos(
    model: str | Path | SupportsUpscale,
    folder: str | Path,
    device: str = "auto",
    precision: str = "fp32",
    tile: int | None = None,
    progress: bool = True,
) -> PhotoReport:
    """Upscale every image in ``folder`` (not sub-folders) and score each output with NIQE."""
    from tqdm import tqdm

    from superres.quality.niqe import niqe

    upscaler, name = resolve_model(model, None, device, precision, tile)
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SuperresError(f"photo folder not found: {root}")
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise SuperresError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    start = time.perf_counter()
    scores: dict[str, float] = {}
    for path in tqdm(paths, desc=root.name, unit="img", disable=not progress, leave=False):
        lr = read_uint8(path)
        scale = int(upscaler.scale)
        sr = super_resolve(upscaler, lr, (lr.shape[0] * scale, lr.shape[1] * scale, *lr.shape[2:]), path)
        scores[path.name] = float(niqe(sr, crop_border=scale))
    return PhotoReport(name, str(root), float(np.mean(list(scores.values()))), time.perf_counter() - start, scores)
