"""The perception–distortion figure of a PSNR model and its GAN partner, blended by network interpolation.

ESRGAN (Wang et al., ECCV-W 2018, §3.4 and Fig. 2) blends the two networks' weights,
θ = (1 − α)·θ_PSNR + α·θ_GAN, and plots perceptual quality against distortion as α goes from 0 to 1;
Blau & Michaeli ("The Perception-Distortion Tradeoff", CVPR 2018) show that no method can be best at
both, so such a curve — not a single PSNR — describes a GAN-trained SR model. :func:`alpha_sweep`
scores one blend per α with :func:`~superres.quality.evaluation.evaluate_upscaler` (PSNR, SSIM, NIQE,
LPIPS when asked), plus reference points (bicubic, other models); :func:`draw_sweep` plots PSNR against
NIQE with Pillow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from superres.quality.evaluation import (
    DatasetResult,
    Degrade,
    evaluate_upscaler,
    make_scorer,
    parse_metrics,
    resolve_model,
)

DEFAULT_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class SweepPoint:
    label: str  # "α=0.4", "bicubic", a model name
    alpha: float | None  # None for reference points
    results: dict[str, DatasetResult]  # by dataset


@dataclass
class SweepReport:
    psnr_model: str
    gan_model: str
    protocol: dict[str, Any]
    points: list[SweepPoint]

    def to_dict(self) -> dict[str, Any]:
        points = [
            {"label": p.label, "alpha": p.alpha,
             "results": {name: {k: v for k, v in asdict(r).items() if k != "images"} for name, r in p.results.items()}}
            for p in self.points
        ]  # fmt: skip
        return {"psnr_model": self.psnr_model, "gan_model": self.gan_model, "protocol": self.protocol, "points": points}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @property
    def datasets(self) -> list[str]:
        return list(self.points[0].results) if self.points else []


def alpha_sweep(
    psnr_model: str | Path,
    gan_model: str | Path,
    data_root: str | Path,
    datasets: Sequence[str] = ("Set14", "BSD100"),
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    references: Sequence[str] = ("bicubic",),
    metrics: str | Sequence[str] = ("psnr", "ssim", "niqe"),
    lpips_net: str = "alex",
    lpips_weights: tuple[str | Path, str | Path] | None = None,
    device: str = "auto",
    precision: str = "fp32",
    tile: int | None = None,
    progress: bool = True,
    degrade: Degrade | None = None,
    degrade_name: str | None = None,
) -> SweepReport:
    """Score the blend of ``psnr_model`` and ``gan_model`` at each α, and each reference model; with
    ``degrade``, on LR made from each HR by that recipe (the real-world benchmark of :func:`evaluate`)."""
    from superres.engine.inference import Upscaler
    from superres.errors import ConfigError
    from superres.models.interpolation import blend_networks
    from superres.models.registry import resolve

    if not alphas:
        raise ConfigError("give at least one α for the sweep")
    bad = [a for a in alphas if not 0.0 <= a <= 1.0]
    if bad:
        raise ConfigError(f"α must lie in [0, 1], got {bad[0]:g}")
    chosen = parse_metrics(metrics)
    psnr_path, gan_path = resolve(psnr_model), resolve(gan_model)
    points: list[SweepPoint] = []
    scorer = None
    for alpha in alphas:
        network, info = blend_networks(psnr_path, gan_path, alpha)
        upscaler = Upscaler(network, info, device=device, precision=precision, tile=tile)
        if scorer is None:
            scorer = make_scorer(upscaler.scale, chosen, True, lpips_net, lpips_weights, device)
        report = evaluate_upscaler(upscaler, f"α={alpha:g}", data_root, datasets, scorer, progress=progress,
                                   degrade=degrade, degrade_name=degrade_name)  # fmt: skip
        points.append(SweepPoint(f"α={alpha:g}", float(alpha), report.results))
    for reference in references:
        upscaler, name = resolve_model(reference, scorer.scale, device, precision, tile)
        report = evaluate_upscaler(upscaler, name, data_root, datasets, scorer, progress=progress, degrade=degrade,
                                   degrade_name=degrade_name)  # fmt: skip
        points.append(SweepPoint(name, None, report.results))
    protocol = {k: v for k, v in report.protocol.items() if k not in ("model", "precision")}
    return SweepReport(str(psnr_model), str(gan_model), {**protocol, "precision": precision}, points)


# ------------------------------------------------------------------------------------ the figure

_COLOURS = ((200, 40, 40), (40, 90, 200), (30, 140, 60), (150, 60, 170))


def draw_sweep(report: SweepReport, path: str | Path, title: str | None = None) -> Path:
    """PSNR (y) against NIQE (x, lower = more natural) per dataset: the α curve and the reference points."""
    from PIL import Image, ImageDraw, ImageFont

    points = [(p, name, r) for p in report.points for name, r in p.results.items() if r.niqe is not None]
    if not points:
        from superres.errors import ConfigError

        raise ConfigError("the figure plots NIQE: include niqe in the metrics")
    width, height, margin = 820, 560, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    xs = [r.niqe for _, _, r in points]
    ys = [r.psnr for _, _, r in points]
    x_lo, x_hi = _padded(min(xs), max(xs))
    y_lo, y_hi = _padded(min(ys), max(ys))

    def xy(niqe: float, psnr: float) -> tuple[float, float]:
        return (
            margin + (width - 2 * margin) * (niqe - x_lo) / (x_hi - x_lo),
            height - margin - (height - 2 * margin) * (psnr - y_lo) / (y_hi - y_lo),
        )

    draw.rectangle([margin, margin, width - margin, height - margin], outline=(120, 120, 120))
    for value in _ticks(x_lo, x_hi):
        x, _ = xy(value, y_lo)
        draw.line([(x, height - margin), (x, height - margin + 5)], fill="black")
        draw.text((x - 10, height - margin + 8), f"{value:g}", fill="black", font=font)
    for value in _ticks(y_lo, y_hi):
        _, y = xy(x_lo, value)
        draw.line([(margin - 5, y), (margin, y)], fill="black")
        draw.text((margin - 42, y - 7), f"{value:g}", fill="black", font=font)
    # ASCII only: Pillow's built-in font has no Greek letters or arrows.
    x_label = "NIQE (lower = more natural, better to the left)"
    draw.text((width // 2 - 140, height - 30), x_label, fill="black", font=font)
    draw.text((8, margin - 22), "PSNR (dB, Y, border 4; higher = more faithful)", fill="black", font=font)
    head = title or (
        f"Perception-distortion: (1 - alpha) {Path(report.psnr_model).stem} + alpha {Path(report.gan_model).stem}"
    )
    draw.text((margin, 12), head, fill="black", font=font)

    for index, name in enumerate(report.datasets):
        colour = _COLOURS[index % len(_COLOURS)]
        curve = [(p, p.results[name]) for p in report.points if p.alpha is not None]
        line = [xy(r.niqe, r.psnr) for _, r in curve]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for (p, _), (x, y) in zip(curve, line, strict=True):
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
            draw.text((x + 6, y - 16), f"{p.alpha:g}", fill=colour, font=font)
        for p in report.points:
            if p.alpha is None:
                r = p.results[name]
                x, y = xy(r.niqe, r.psnr)
                draw.rectangle([x - 4, y - 4, x + 4, y + 4], outline=colour, width=2)
                draw.text((x + 6, y + 2), p.label, fill=colour, font=font)
        x, y = margin + 14, margin + 14 + 18 * index
        draw.ellipse([x - 4, y + 3, x + 4, y + 11], fill=colour)
        draw.text((x + 10, y), f"{name}, labelled by alpha", fill=colour, font=font)
    x, y = margin + 14, margin + 14 + 18 * len(report.datasets)
    draw.rectangle([x - 4, y + 3, x + 4, y + 11], outline="black", width=2)
    draw.text((x + 10, y), "reference points", fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def _padded(low: float, high: float) -> tuple[float, float]:
    span = max(high - low, 1e-6)
    return low - 0.08 * span, high + 0.08 * span


def _ticks(low: float, high: float) -> list[float]:
    """About five round values inside [low, high]."""
    raw = (high - low) / 5
    step = min((s for s in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0) if s >= raw), default=10.0)
    first = -(-low // step) * step
    return [round(first + i * step, 6) for i in range(int((high - first) / step) + 1)]
