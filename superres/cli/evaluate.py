"""``superres eval``: score models on Set5/Set14/BSD100 with the papers' protocol, or the real-world one.

``--degrade RECIPE`` makes each LR from its HR by a fixed, seeded recipe (noise, blur, JPEG;
:mod:`superres.train.degrade.recipes`) instead of reading the bicubic LR files; ``--niqe`` adds the
no-reference NIQE of each output; ``--photos DIR`` scores a folder of real photos (no HR) by NIQE alone.
Repeating ``--model`` prints the models side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from superres.quality.evaluation import EvalReport

DEFAULT_DATASETS = ("Set5", "Set14", "BSD100")


def register(app: typer.Typer) -> None:
    app.command(name="eval")(eval_command)


def eval_command(
    models: Annotated[
        list[str],
        typer.Option("--model", "-m", help="'bicubic', a weights file or a model name; repeat to compare models."),
    ],
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
    degrade: Annotated[
        Optional[str],
        typer.Option("--degrade", help="Real-world benchmark: make the LR from the HR by this recipe "
                     "(bicubic-noise4-jpeg45, bicubic-jpeg30, blur2-noise8, bicubic-noise10)."),
    ] = None,
    niqe: Annotated[bool, typer.Option("--niqe", help="Also score every output with NIQE (no reference).")] = False,
    photos: Annotated[
        Optional[Path],
        typer.Option("--photos", help="A folder of real photos with no HR: NIQE of each model's outputs."),
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

    --degrade: LR made from the HR by a fixed real-world recipe. --photos: NIQE on photos with no HR.
    """
    from superres.errors import SuperresError

    names = _dataset_names(datasets, more_datasets)
    try:
        if json_path is not None and json_path.exists() and not overwrite:
            raise SuperresError(f"{json_path} exists; choose another --json file or pass --overwrite")
        if save_images is not None and len(models) > 1:
            raise SuperresError("--save-images takes one --model (the outputs of several would share names)")
        if photos is not None:
            payload = _photos(models, photos, device, precision, tile, progress)
        else:
            if data_root is None:
                data_root, names = _data_home_with(names)
            reports = _benchmarks(
                models, data_root, names, degrade, niqe, scale, y_only, save_images, overwrite, device, precision,
                tile, progress,
            )  # fmt: skip
            for report in reports:
                _print_report(report, verbose)
            if len(reports) > 1:
                _print_comparison(reports)
            payload = reports[0].to_dict() if len(reports) == 1 else {"reports": [r.to_dict() for r in reports]}
        if json_path is not None:
            import json

            json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except SuperresError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(code=1) from None


def _benchmarks(
    models: list[str], data_root: Path, names: list[str], degrade: str | None, niqe: bool, scale: int | None,
    y_only: bool, save_images: Path | None, overwrite: bool, device: str, precision: str, tile: int | None,
    progress: bool,
) -> list[EvalReport]:  # fmt: skip
    from superres.quality.evaluation import evaluate

    recipe = None
    if degrade is not None:
        from superres.train.degrade.recipes import get_recipe

        recipe = get_recipe(degrade)
    return [
        evaluate(
            model, data_root, datasets=names, scale=scale, y_only=y_only, save_images=save_images,
            progress=progress, overwrite=overwrite, device=device, precision=precision, tile=tile,
            degrade=recipe, degrade_name=degrade, niqe=niqe,
        )  # fmt: skip
        for model in models
    ]


def _photos(models: list[str], folder: Path, device: str, precision: str, tile: int | None, progress: bool) -> dict:
    from rich.console import Console
    from rich.table import Table

    from superres.quality.photos import evaluate_photos

    reports = [
        evaluate_photos(model, folder, device=device, precision=precision, tile=tile, progress=progress)
        for model in models
    ]
    table = Table(title=f"NIQE of the outputs on {folder} (no reference; lower is more natural)", title_justify="left")
    table.add_column("model")
    table.add_column("NIQE", justify="right")
    table.add_column("n", justify="right")
    table.add_column("time", justify="right")
    for report in reports:
        table.add_row(report.model, f"{report.niqe:.2f}", str(len(report.images)), f"{report.seconds:.1f} s")
    Console().print(table)
    return {"photos": str(folder), "results": [r.to_dict() for r in reports]}


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
    with_niqe = any(r.niqe is not None for r in report.results.values())
    if with_niqe:
        table.add_column("NIQE", justify="right")
    table.add_column("LR")
    table.add_column("time", justify="right")
    for name, result in report.results.items():
        niqe = [f"{result.niqe:.2f}"] if with_niqe else []
        table.add_row(
            name, f"{result.psnr:.2f}", f"{result.ssim:.4f}", str(result.n), *niqe, result.lr_source,
            f"{result.seconds:.1f} s",
        )  # fmt: skip
    console.print(table)
    console.print(f"protocol: {report.protocol_line()}", style="dim", soft_wrap=True)


def _print_comparison(reports: list[EvalReport]) -> None:
    """One row per model, PSNR (and NIQE) per dataset: the side-by-side view of several --model."""
    from rich.console import Console
    from rich.table import Table

    datasets = list(reports[0].results)
    with_niqe = any(r.niqe is not None for report in reports for r in report.results.values())
    table = Table(title="side by side: PSNR (dB)" + (" / NIQE" if with_niqe else ""), title_justify="left")
    table.add_column("model")
    for name in datasets:
        table.add_column(name, justify="right")
    for report in reports:
        cells = []
        for name in datasets:
            result = report.results[name]
            cells.append(f"{result.psnr:.2f}" + (f" / {result.niqe:.2f}" if result.niqe is not None else ""))
        table.add_row(report.protocol["model"], *cells)
    Console().print(table)
