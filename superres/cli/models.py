"""``superres models``, ``superres demo`` and ``superres compare``: the model registry and the comparison figure."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

_MODELS_HELP = (
    "Model names (see `superres models`), weights files, or 'bicubic'. Repeat the option or separate "
    "with commas: -m superres-x4 -m RealESRGAN_x4plus."
)
_CROP_HELP = "Detail box X,Y,W,H in HR pixels for the zoomed row (default: the most detailed region)."


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _run(make_figure: Callable[[], Path]) -> None:
    """Run the library call; an error the user can fix is one line on stderr and exit code 1."""
    from superres.errors import SuperresError

    try:
        path = make_figure()
    except SuperresError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(code=1) from None
    typer.echo(f"wrote {path}")


def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the bundled model and the known third-party models, with where each one comes from."""
    from superres.models import registry

    cache = registry.default_cache_dir()
    rows = [
        {
            "name": entry.name,
            "arch": entry.arch,
            "scale": entry.scale,
            "license": entry.license,
            "source": entry.homepage,
            "status": registry.status(entry, cache),
            "path": str(registry.local_path(entry, cache)),
            "url": entry.url,
            "sha256": entry.sha256,
            "description": entry.description,
        }
        for entry in registry.MODELS
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return

    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for column in ("name", "arch", "scale", "license", "source", "status"):
        table.add_column(column, no_wrap=column in ("name", "scale", "status"), overflow="fold")
    for row in rows:
        source = row["source"].rstrip("/").rsplit("/", 1)[-1] if row["url"] else "superres"
        table.add_row(row["name"], row["arch"], f"x{row['scale']}", row["license"], source, row["status"])
    console = Console()
    console.print(table)
    console.print(
        f"download: fetched from its official URL on first use and checked against its sha256; cache: {cache} "
        f"(set ${registry.CACHE_ENV} to move it). `superres models --json` shows URLs and hashes."
    )


def demo(
    image: Optional[Path] = typer.Argument(None, help="HR image (default: the bundled sample photo)."),
    output: Path = typer.Option(Path("comparison.png"), "-o", "--output", help="Figure to write (.png, .jpg, .webp)."),
    models: Optional[list[str]] = typer.Option(None, "-m", "--models", help=_MODELS_HELP + " Default: superres-x4."),
    crop: Optional[str] = typer.Option(None, "--crop", help=_CROP_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Show what super-resolution does: HR | bicubic | models on the x4 MATLAB-bicubic LR of IMAGE."""
    from superres import demo as figure
    from superres.models import registry

    chosen = _split(models) or [registry.DEFAULT_MODEL]
    _run(
        lambda: figure.demo(
            image, output, chosen, detail=figure.parse_box(crop) if crop else None, overwrite=overwrite, device=device
        )
    )


def compare(
    image: Path = typer.Argument(..., help="HR image; the methods see its x4 MATLAB-bicubic LR."),
    more_models: Optional[list[str]] = typer.Argument(None, help="More models, so '--models A B C' works."),
    models: Optional[list[str]] = typer.Option(None, "-m", "--models", help=_MODELS_HELP),
    alpha_sweep: Optional[tuple[str, str]] = typer.Option(
        None,
        "--alpha-sweep",
        help="PSNR_MODEL GAN_MODEL: add network interpolations (ESRGAN 3.4) at alpha = 0, 0.2, ..., 1.",
    ),
    output: Path = typer.Option(Path("comparison.png"), "-o", "--output", help="Figure to write (.png, .jpg, .webp)."),
    crop: Optional[str] = typer.Option(None, "--crop", help=_CROP_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output file if it exists."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Compare any models (and interpolations between two of them) on IMAGE, with PSNR/SSIM and zoomed details."""
    from superres import demo as figure
    from superres.errors import ConfigError

    chosen = _split(models) + _split(more_models)

    def make_figure() -> Path:
        if not chosen and alpha_sweep is None:
            raise ConfigError("nothing to compare: give --models NAME ... and/or --alpha-sweep PSNR_MODEL GAN_MODEL")
        detail = figure.parse_box(crop) if crop else None
        return figure.demo(
            image, output, chosen, detail=detail, alpha_sweep=alpha_sweep, overwrite=overwrite, device=device
        )

    _run(make_figure)


def register(app: typer.Typer) -> None:
    app.command("models")(list_models)
    app.command("demo")(demo)
    app.command("compare")(compare)
