"""``superres eval``: score a model on Set5/Set14/BSD100 with the papers' protocol."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from superres.quality.evaluation import EvalReport

DEFAULT_DATASETS = ("Set5", "Set14", "BSD100")


def register(app: typer.Typer) -> None:
    app.command(name="eval")(eval_command)


def eval_command(
    model: Annotated[str, typer.Option("--model", "-m", help="'bicubic', a weights file or a model name.")],
    data_root: Annotated[
        Optional[Path],
        typer.Option(
            "--data-root", help="Folder holding <Set>/HR and <Set>/LR_bicubic/X<scale> (default: the data home)."
        ),
    ] = None,
    datasets: Annotated[
        Optional[list[str]],
        typer.Option("--datasets", "-d", help="Datasets to score (default Set5 Set14 BSD100)."),
    ] = None,
    more_datasets: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[DATASET]...", help="More dataset names, so '--datasets Set5 Set14' works."),
    ] = None,
    scale: Annotated[
        Optional[int], typer.Option("--scale", "-s", help="Upscaling factor (default: the model's; 4 for bicubic).")
    ] = None,
    y_only: Annotated[
        bool, typer.Option("--y-only/--rgb", help="Score luma Y as the papers (default) or RGB.")
    ] = True,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON.")] = None,
    save_images: Annotated[
        Optional[Path], typer.Option("--save-images", help="Write SR outputs to DIR/<Set>/<name>.png.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print every image's scores.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, mps.")] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="fp32 (default, reproducible), bf16, fp16 or auto.")
    ] = "fp32",
    tile: Annotated[Optional[int], typer.Option("--tile", help="Tile size for large images (0: none).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Evaluate like the papers: MATLAB bicubic LR, Y-channel PSNR/SSIM, border = scale.

    The table is printed before any file is written, so a --json or --save-images that cannot be
    written costs one line `error: …` (and exit code 1), never the scores.
    """
    from superres.errors import SuperresError
    from superres.imageio import check_not_input
    from superres.quality.evaluation import evaluate

    names = _dataset_names(datasets, more_datasets)
    if json_path is not None:
        if json_path.exists() and not overwrite:
            raise SuperresError(f"{json_path} exists; choose another --json file or pass --overwrite")
    if data_root is None:
        data_root, names = _data_home_with(names)
    if json_path is not None:
        check_not_input(json_path, [Path(model), *(p for name in names for p in (data_root / name).rglob("*"))])
    report = evaluate(
        model,
        data_root,
        datasets=names,
        scale=scale,
        y_only=y_only,
        save_images=save_images,
        progress=progress,
        overwrite=overwrite,
        device=device,
        precision=precision,
        tile=tile,
    )
    _print_report(report, verbose)
    problems = []
    if report.save_errors:
        problems.append(f"{len(report.save_errors)} SR image(s) not saved, e.g. {report.save_errors[0]}")
    if json_path is not None:
        try:
            _write_json(json_path, report.to_json() + "\n", overwrite)
        except OSError as exc:
            problems.append(f"cannot write {json_path} ({exc.strerror or exc}); the scores are printed above")
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(code=1)


def _write_json(path: Path, text: str, overwrite: bool) -> None:
    from superres.imageio import atomic_path

    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _data_home_with(names: list[str]) -> tuple[Path, list[str]]:
    """The data home and the datasets' folder names, once every one is there (else one line naming the command)."""
    from superres.datasets.home import data_home, require

    home = data_home()
    return home, [require(name, home, alternative="pass --data-root DIR").name for name in names]


def _dataset_names(option: list[str] | None, arguments: list[str] | None) -> list[str]:
    names = [part for value in (option or []) + (arguments or []) for part in value.split(",") if part]
    return names or list(DEFAULT_DATASETS)


def _print_report(report: EvalReport, verbose: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if verbose:
        for name, result in report.results.items():
            table = Table(title=f"{name} — per image", title_justify="left")
            table.add_column("image")
            table.add_column("PSNR (dB)", justify="right")
            table.add_column("SSIM", justify="right")
            for image, score in result.images.items():
                table.add_row(image, f"{score.psnr:.2f}", f"{score.ssim:.4f}")
            console.print(table)

    p = report.protocol
    table = Table(title=f"{p['model']} ×{p['scale']} ({p['channel']}, {p['precision']})", title_justify="left")
    table.add_column("dataset")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    table.add_column("n", justify="right")
    table.add_column("LR")
    table.add_column("time", justify="right")
    for name, result in report.results.items():
        table.add_row(
            name, f"{result.psnr:.2f}", f"{result.ssim:.4f}", str(result.n), result.lr_source, f"{result.seconds:.1f} s"
        )
    console.print(table)
    console.print(f"protocol: {report.protocol_line()}", style="dim", soft_wrap=True)
