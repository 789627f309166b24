"""``superres score IMAGE... [--ref HR...] --metrics ...``: NIQE of any images, PSNR/SSIM/LPIPS against references."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command(name="score")(score_command)


def score_command(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Images to score, as they are.")],
    references: Annotated[
        Optional[list[Path]],
        typer.Option("--ref", help="Reference (HR) image for each IMAGE, in order; repeat: --ref a.png --ref b.png."),
    ] = None,
    metrics: Annotated[
        Optional[str],
        typer.Option("--metrics", help="niqe, psnr, ssim, lpips (default: niqe; with --ref psnr,ssim,niqe)."),
    ] = None,
    niqe_channel: Annotated[
        str,
        typer.Option("--niqe-channel", help="y: rounded Y of rgb2ycbcr (SR papers); gray: rgb2gray (NIQE release)."),
    ] = "y",
    crop: Annotated[int, typer.Option("--crop", help="Pixels cut from every border first (papers: the scale).")] = 0,
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = "alex",
    lpips_backbone: Annotated[
        Optional[Path], typer.Option("--lpips-backbone", help="LPIPS backbone weights file.")
    ] = None,
    lpips_head: Annotated[Optional[Path], typer.Option("--lpips-head", help="LPIPS head weights file (v0.1).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the scores as JSON.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Score images: NIQE needs nothing else (lower = more natural); PSNR, SSIM and LPIPS need --ref."""
    from superres.errors import SuperresError
    from superres.quality.score import score_files

    try:
        if (lpips_backbone is None) != (lpips_head is None):
            raise SuperresError("give both --lpips-backbone and --lpips-head, or neither")
        if json_path is not None and json_path.exists() and not overwrite:
            raise SuperresError(f"{json_path} exists; choose another --json file or pass --overwrite")
        weights = (lpips_backbone, lpips_head) if lpips_backbone is not None and lpips_head is not None else None
        results = score_files(images, references, metrics, niqe_channel, crop, lpips_net, weights)
    except SuperresError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(code=1) from None

    names = list(dict.fromkeys(m for r in results for m in r.scores))
    for r in results:
        if r.error is None:
            typer.echo(f"{r.path}: " + ", ".join(f"{m} {_format(m, v)}" for m, v in r.scores.items()))
        else:
            typer.echo(f"error: {r.error}", err=True)
    good = [r for r in results if r.error is None]
    if len(good) > 1:
        means = {m: sum(r.scores[m] for r in good) / len(good) for m in names}
        typer.echo(f"mean of {len(good)}: " + ", ".join(f"{m} {_format(m, v)}" for m, v in means.items()))
    if json_path is not None:
        data = [{"image": str(r.path), "reference": str(r.reference) if r.reference else None, **r.scores,
                 **({"error": r.error} if r.error else {})} for r in results]  # fmt: skip
        tmp = json_path.with_name(f".{json_path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(json_path)
    if len(good) < len(results):
        raise typer.Exit(code=1)


def _format(metric: str, value: float) -> str:
    return {"psnr": "{:.2f} dB", "ssim": "{:.4f}", "niqe": "{:.4f}", "lpips": "{:.4f}"}[metric].format(value)
