"""``superres data list|fetch|add|prepare|verify``: datasets by name in the data home."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional, TypeVar

import typer

T = TypeVar("T")

HELP = """Datasets by name in the data home ($SUPERRES_DATA, else the user cache folder).

A new machine: superres data fetch Set5 Set14 DIV2K, then superres data prepare DIV2K --workers 8,
then superres train srresnet. Your own images: superres data add NAME FOLDER."""

_SCALES_HELP = "LR scales, e.g. --scales 2,3,4 or -s 2 -s 4 (numbers after the other arguments count too)."


def register(app: typer.Typer) -> None:
    data = typer.Typer(name="data", help=HELP, no_args_is_help=True)
    data.command(name="list")(list_command)
    data.command(name="fetch")(fetch_command)
    data.command(name="add")(add_command)
    data.command(name="prepare")(prepare_command)
    data.command(name="verify")(verify_command)
    app.add_typer(data, name="data")


def _run(action: Callable[[], T]) -> T:
    """The library call; an error the user can fix is one line on stderr and exit code 1."""
    from superres.errors import SuperresError

    try:
        return action()
    except SuperresError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue", file=sys.stderr)
        raise typer.Exit(code=130) from None


def _scales(values: list[str] | None, extra: list[str] | None = None) -> tuple[int, ...] | None:
    parts = [p for v in (values or []) + (extra or []) for p in v.split(",") if p.strip()]
    try:
        return tuple(int(p) for p in parts) if parts else None
    except ValueError:
        print(f"error: scales are whole numbers, e.g. --scales 2,3,4; got {' '.join(parts)}", file=sys.stderr)
        raise typer.Exit(code=2) from None


def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The known datasets and the ones you added: what they are, size, terms, source, whether installed."""
    from superres.datasets.home import DATA_ENV, data_home, overview

    rows = overview()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    typer.echo(f"data home: {data_home()}   (set ${DATA_ENV} to use another folder)\n")
    for row in rows:
        status = f"installed: {' '.join(row['installed'])}" if row["installed"] else "not installed"
        typer.echo(f"{row['name']:<12} {status}   {row['path'] if row['installed'] else ''}".rstrip())
        typer.echo(f"{'':<12} {' · '.join(d for d in (row['description'], row['size']) if d)}")
        if row["licence"]:
            typer.echo(f"{'':<12} terms: {row['licence']}")
        typer.echo(f"{'':<12} {row['source']}\n")


def fetch_command(
    names: Annotated[list[str], typer.Argument(help="Datasets (see `superres data list`) or 'benchmarks'.")],
    scales: Annotated[Optional[list[str]], typer.Option("--scales", "-s", help="LR folders to fetch too.")] = None,
    keep_archives: Annotated[bool, typer.Option("--keep-archives", help="Keep the downloaded archives.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Download, check and unpack datasets into the data home (resumable; run again to continue)."""
    from superres.datasets.fetch import fetch_datasets

    words = [n for n in names if not n.replace(",", "").isdigit()]
    numbers = [n for n in names if n.replace(",", "").isdigit()]
    _run(lambda: fetch_datasets(words, _scales(scales, numbers), keep_archives=keep_archives, progress=progress))


def add_command(
    name: Annotated[str, typer.Argument(help="Name for the dataset (e.g. Set5, MyPhotos).")],
    path: Annotated[Path, typer.Argument(help="Folder or archive (.zip, .tar.gz, …) of HR images.")],
    extra: Annotated[Optional[list[str]], typer.Argument(hidden=True)] = None,
    link: Annotated[bool, typer.Option("--link/--copy", help="Link the folder instead of copying it.")] = False,
    scales: Annotated[Optional[list[str]], typer.Option("--scales", "-s", help=_SCALES_HELP)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Register your own HR images as a dataset; LR ×2/×3/×4 made by MATLAB-bicubic imresize where absent."""
    from superres.datasets.add import add_dataset

    chosen = _scales(scales, extra)
    _run(lambda: add_dataset(name, path, link=link, scales=chosen or (2, 3, 4), progress=progress))


def prepare_command(
    name: Annotated[str, typer.Argument(help="An installed dataset.")],
    extra: Annotated[Optional[list[str]], typer.Argument(hidden=True)] = None,
    crop: Annotated[int, typer.Option("--crop", help="Sub-image size (BasicSR: 480).")] = 480,
    step: Annotated[int, typer.Option("--step", help="Distance between sub-images (BasicSR: 240).")] = 240,
    min_size: Annotated[
        int, typer.Option("--min-size", help="Add an edge-aligned crop when more pixels than this are left.")
    ] = 0,
    scales: Annotated[Optional[list[str]], typer.Option("--scales", "-s", help=_SCALES_HELP)] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Prepare again, replacing earlier sub-images.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Cut training sub-images with their LR, as BasicSR's extract_subimages.py (resumable, parallel)."""
    from superres.datasets.prepare import PrepareSettings, prepare_dataset

    settings = PrepareSettings(crop, step, min_size, _scales(scales, extra) or (2, 3, 4))
    _run(lambda: prepare_dataset(name, settings, workers=workers, force=force, progress=progress))


def verify_command(
    names: Annotated[list[str], typer.Argument(help="Installed datasets.")],
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Recompute the hashes of an installed dataset and count its files; report what is missing or changed."""
    from superres.datasets.verify import verify_dataset

    reports = [_run(lambda name=name: verify_dataset(name, progress=progress)) for name in names]
    for report in reports:
        for line in report.lines():
            typer.echo(line)
    if not all(report.ok for report in reports):
        raise typer.Exit(code=1)
