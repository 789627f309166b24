"""Validation during training: PSNR/SSIM on a benchmark set by the papers' protocol, and image grids.

Scores come from :mod:`superres.quality.metrics` (Y channel of BT.601, ``scale`` border pixels cropped,
output rounded to 8 bits), so the numbers logged here are the numbers ``superres eval`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from superres.quality.evaluation import BenchmarkImage, network_input, score_image
from superres.train.data import to_tensor, to_uint8
from superres.train.runlog import RunLogger


@dataclass
class ValidationResult:
    name: str
    psnr: float
    ssim: float
    per_image: dict[str, tuple[float, float]] = field(default_factory=dict)
    grids: dict[str, np.ndarray] = field(default_factory=dict)


@torch.no_grad()
def validate(
    model: nn.Module,
    name: str,
    images: list[BenchmarkImage],
    scale: int,
    device: torch.device,
    channels_last: bool = False,
    num_grids: int = 0,
) -> ValidationResult:
    """Super-resolve every LR image whole (no tiling) with ``model`` in eval mode and score it."""
    was_training = model.training
    model.eval()
    per_image: dict[str, tuple[float, float]] = {}
    grids: dict[str, np.ndarray] = {}
    try:
        for i, item in enumerate(images):
            x = to_tensor(network_input(item.lr)).unsqueeze(0).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            sr = to_uint8(model(x)[0].float())
            score = score_image(sr, item.hr, scale)
            per_image[item.name] = (score.psnr, score.ssim)
            if i < num_grids:
                grids[item.name] = comparison_grid(item, sr, scale)
    finally:
        model.train(was_training)
    mean_psnr = float(np.mean([p for p, _ in per_image.values()]))
    mean_ssim = float(np.mean([s for _, s in per_image.values()]))
    return ValidationResult(name, mean_psnr, mean_ssim, per_image, grids)


def comparison_grid(item: BenchmarkImage, sr: np.ndarray, scale: int, gap: int = 4) -> np.ndarray:
    """Bicubic | SR | HR side by side (H×W×3 uint8), separated by white gaps."""
    from superres.quality.imresize import imresize

    bicubic = network_input(np.asarray(imresize(item.lr, float(scale)), dtype=np.uint8))
    h = item.hr.shape[0]
    spacer = np.full((h, gap, 3), 255, dtype=np.uint8)
    return np.concatenate([bicubic[:h], spacer, sr, spacer, network_input(item.hr)], axis=1)


def validate_sets(
    model: nn.Module,
    val_sets: dict[str, list[BenchmarkImage]],
    scale: int,
    device: torch.device,
    channels_last: bool,
    num_grids: int,
    step: int,
    run_dir: Path,
    log: RunLogger,
) -> dict[str, ValidationResult]:
    """Validate on every set; log the scores and write the sample grids of ``step``."""
    results = {}
    for name, images in val_sets.items():
        result = validate(model, name, images, scale, device, channels_last, num_grids)
        results[name] = result
        log.scalars(step, {f"val/{name}/psnr": result.psnr, f"val/{name}/ssim": result.ssim}, False)
        write_grids(run_dir, step, name, result.grids, log)
    log.message(
        f"step {step}: " + ", ".join(f"{r.name} PSNR {r.psnr:.2f} dB SSIM {r.ssim:.4f}" for r in results.values())
    )
    return results


def write_grids(run_dir: Path, step: int, dataset: str, grids: dict[str, np.ndarray], log: RunLogger) -> None:
    """The grids as PNG files under ``samples/step_…/`` (and to TensorBoard, when on)."""
    from superres.imageio import ImageData, write_image

    if not grids:
        return
    folder = run_dir / "samples" / f"step_{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, grid in grids.items():
        write_image(folder / f"{dataset}_{name}.png", ImageData(grid), overwrite=True)  # atomic
        log.image(step, f"samples/{dataset}/{name}", grid)
