"""``superres eval``: score models on Set5/Set14/BSD100 with the papers' protocol, or sweep α between a
PSNR model and its GAN partner (``--alpha-sweep``) for the perception–distortion figure.

Real-world inputs: ``--degrade RECIPE`` makes each LR from its HR by a fixed, seeded recipe (noise,
blur, JPEG; :mod:`superres.train.degrade.recipes`) instead of reading the bicubic LR files, and
``--photos DIR`` scores a folder of real photos (no HR) by NIQE alone. Repeating ``--model`` prints
the models side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from superres.quality.evaluation import EvalReport
    from superres.quality.sweep import SweepReport

DEFAULT_DATASETS = ("Set5", "Set14", "BSD100")


def register(app: typer.Typer) -> None:
    app.command(name="eval")(eval_command)


def eval_command(
    data_root: Annotated[
        Optional[Path],
        typer.Option(
            "--data-root", help="Folder holding <Set>/HR and <Set>/LR_bicubic/X<scale> (default: the data home)."
        ),
    ] = None,
    models: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="'bicubic', a weights file or a model name; repeat to compare."),
    ] = None,
    datasets: Annotated[
        Optional[list[str]],
        typer.Option("--datasets", "-d", help="Datasets to score (default Set5 Set14 BSD100; sweep: Set14 BSD100)."),
    ] = None,
    more_datasets: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="[DATASET|ALPHA]...",
            help="More dataset names, so '--datasets Set5 Set14' works; numbers are more α for '--alphas 0 0.5 1'.",
        ),
    ] = None,
    scale: Annotated[
        Optional[int], typer.Option("--scale", "-s", help="Upscaling factor (default: the model's; 4 for bicubic).")
    ] = None,
    degrade: Annotated[
        Optional[str],
        typer.Option(
            "--degrade",
            help="Real-world benchmark: the LR made from the HR by this recipe (bicubic-noise4-jpeg45, "
            "bicubic-jpeg30, blur2-noise8, bicubic-noise10).",
        ),
    ] = None,
    photos: Annotated[
        Optional[Path],
        typer.Option("--photos", help="A folder of real photos with no HR: NIQE of each model's outputs."),
    ] = None,
    y_only: Annotated[
        bool, typer.Option("--y-only/--rgb", help="Score luma Y as the papers (default) or RGB.")
    ] = True,
    metrics: Annotated[
        str, typer.Option("--metrics", help="psnr,ssim (always) and niqe (no-reference), lpips (against HR).")
    ] = "psnr,ssim",
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = "alex",
    lpips_backbone: Annotated[
        Optional[Path], typer.Option("--lpips-backbone", help="LPIPS backbone weights file (default: download once).")
    ] = None,
    lpips_head: Annotated[
        Optional[Path], typer.Option("--lpips-head", help="LPIPS head weights file, v0.1 (default: download once).")
    ] = None,
    strength: Annotated[
        Optional[float], typer.Option("--strength", help="Blend the model with its GAN partner, 0…1.")
    ] = None,
    alpha_sweep: Annotated[
        Optional[tuple[str, str]],
        typer.Option("--alpha-sweep", metavar="PSNR_MODEL GAN_MODEL", help="Score their blends α = 0…1 instead."),
    ] = None,
    alphas: Annotated[
        Optional[str], typer.Option("--alphas", help="α values of the sweep, e.g. '0 0.2 0.5 1' or 0,0.5,1.")
    ] = None,
    references: Annotated[
        Optional[list[str]],
        typer.Option("--reference", help="Extra reference points of the sweep (default: bicubic); repeatable."),
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Sweep: write the PSNR-vs-NIQE figure (PNG) here.")
    ] = None,
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
    """Evaluate like the papers: MATLAB bicubic LR, Y-channel PSNR/SSIM, border = scale; NIQE/LPIPS on request.

    --degrade: LR made from the HR by a fixed real-world recipe. --photos: NIQE on photos with no HR.

    The table is printed before any file is written, so a --json or --save-images that cannot be
    written costs one line `error: …` (and exit code 1), never the scores.
    """
    from superres.errors import ConfigError, SuperresError
    from superres.imageio import check_not_input
    from superres.quality.evaluation import evaluate

    models = models or []
    if photos is not None:
        _photos(models, photos, device, precision, tile, progress, json_path, overwrite)
        return
    words, numbers = _split_arguments(more_datasets, alphas is not None)
    lpips_weights = _lpips_weights(lpips_backbone, lpips_head)
    for path in (json_path, plot):
        if path is not None and path.exists() and not overwrite:
            raise SuperresError(f"{path} exists; choose another file or pass --overwrite")
    default = ("Set14", "BSD100") if alpha_sweep is not None else DEFAULT_DATASETS
    names = _dataset_names(datasets, words, default)
    if data_root is None:
        data_root, names = _data_home_with(names)
    inputs = [*(alpha_sweep or []), *models]
    for path in (json_path, plot):
        if path is not None:
            check_not_input(path, [Path(m) for m in inputs] + [p for n in names for p in (data_root / n).rglob("*")])
    recipe = None
    if degrade is not None:
        from superres.train.degrade.recipes import get_recipe

        recipe = get_recipe(degrade)
    if alpha_sweep is not None:
        from superres.quality.sweep import DEFAULT_ALPHAS, draw_sweep
        from superres.quality.sweep import alpha_sweep as sweep

        if models or save_images is not None or strength is not None:
            raise ConfigError("--alpha-sweep scores its own blends: drop --model, --strength and --save-images")
        chosen = _parse_alphas(alphas, numbers) if alphas is not None else list(DEFAULT_ALPHAS)
        sweep_report = sweep(
            *alpha_sweep,
            data_root,
            datasets=names,
            alphas=chosen,
            references=references or ["bicubic"],
            metrics=metrics if "niqe" in metrics else f"{metrics},niqe",
            lpips_net=lpips_net,
            lpips_weights=lpips_weights,
            device=device,
            precision=precision,
            tile=tile,
            progress=progress,
            degrade=recipe,
            degrade_name=degrade,
        )
        _print_sweep(sweep_report)
        if plot is not None:
            draw_sweep(sweep_report, plot)
        _finish(json_path, sweep_report.to_json(), overwrite, [])
        return
    if not models:
        raise ConfigError("give --model (or --alpha-sweep PSNR_MODEL GAN_MODEL, or --photos DIR)")
    if alphas is not None or plot is not None or references:
        raise ConfigError("--alphas, --reference and --plot belong to --alpha-sweep")
    if save_images is not None and len(models) > 1:
        raise ConfigError("--save-images takes one --model (the outputs of several would share names)")
    reports = []
    for model in models:
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
            metrics=metrics,
            lpips_net=lpips_net,
            lpips_weights=lpips_weights,
            strength=strength,
            degrade=recipe,
            degrade_name=degrade,
        )
        _print_report(report, verbose)
        reports.append(report)
    if len(reports) > 1:
        _print_comparison(reports)
    problems = []
    for report in reports:
        if report.save_errors:
            problems.append(f"{len(report.save_errors)} SR image(s) not saved, e.g. {report.save_errors[0]}")
    text = reports[0].to_json() if len(reports) == 1 else _reports_json(reports)
    _finish(json_path, text, overwrite, problems)


def _reports_json(reports: list[EvalReport]) -> str:
    import json

    return json.dumps({"reports": [r.to_dict() for r in reports]}, indent=2, ensure_ascii=False)


def _photos(
    models: list[str], folder: Path, device: str, precision: str, tile: int | None, progress: bool,
    json_path: Path | None, overwrite: bool,
) -> None:  # fmt: skip
    """``--photos``: each model's outputs on a folder of photos without HR, scored by NIQE."""
    import json

    from rich.console import Console
    from rich.table import Table

    from superres.errors import ConfigError
    from superres.quality.photos import evaluate_photos

    if not models:
        raise ConfigError("--photos needs at least one --model")
    if json_path is not None:
        from superres.imageio import check_not_input

        if json_path.exists() and not overwrite:
            raise ConfigError(f"{json_path} exists; choose another file or pass --overwrite")
        check_not_input(json_path, [Path(m) for m in models] + list(folder.rglob("*")))
    reports = [evaluate_photos(m, folder, device=device, precision=precision, tile=tile, progress=progress)
               for m in models]  # fmt: skip
    table = Table(title=f"NIQE of the outputs on {folder} (no reference; lower is more natural)", title_justify="left")
    for column in ("model", "NIQE", "n", "time"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for report in reports:
        table.add_row(report.model, f"{report.niqe:.3f}", str(len(report.images)), f"{report.seconds:.1f} s")
    Console().print(table)
    text = json.dumps({"photos": str(folder), "results": [r.to_dict() for r in reports]}, indent=2)
    _finish(json_path, text, overwrite, [])


def _finish(json_path: Path | None, text: str, overwrite: bool, problems: list[str]) -> None:
    """Write the JSON (after the table was printed), then report what could not be written in one line each."""
    if json_path is not None:
        try:
            _write_json(json_path, text + "\n", overwrite)
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


def _split_arguments(extra: list[str] | None, want_numbers: bool) -> tuple[list[str], list[str]]:
    """Extra positional words: numbers go to --alphas (when given), the rest are dataset names."""
    words, numbers = [], []
    for item in extra or []:
        (numbers if want_numbers and _is_number(item) else words).append(item)
    return words, numbers


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_alphas(option: str, more: list[str]) -> list[float]:
    from superres.errors import ConfigError

    parts = [p for p in option.replace(",", " ").split() + more if p]
    if not all(_is_number(p) for p in parts):
        raise ConfigError(f"--alphas takes numbers in [0, 1], got {' '.join(parts)!r}")
    return [float(p) for p in parts]


def _lpips_weights(backbone: Path | None, head: Path | None) -> tuple[Path, Path] | None:
    from superres.errors import ConfigError

    if (backbone is None) != (head is None):
        raise ConfigError("give both --lpips-backbone and --lpips-head, or neither")
    return None if backbone is None or head is None else (backbone, head)


def _dataset_names(option: list[str] | None, arguments: list[str] | None, default: tuple[str, ...]) -> list[str]:
    names = [part for value in (option or []) + (arguments or []) for part in value.split(",") if part]
    return names or list(default)


_FORMATS = {"psnr": ("PSNR (dB)", "{:.2f}"), "ssim": ("SSIM", "{:.4f}"), "niqe": ("NIQE", "{:.3f}"),
            "lpips": ("LPIPS", "{:.4f}")}  # fmt: skip


def _metric_cells(result, metrics: list[str]) -> list[str]:
    return [_FORMATS[m][1].format(getattr(result, m)) for m in metrics]


def _print_report(report: EvalReport, verbose: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    metrics = report.protocol.get("metrics", ["psnr", "ssim"])
    if verbose:
        for name, result in report.results.items():
            table = Table(title=f"{name} — per image", title_justify="left")
            table.add_column("image")
            for m in metrics:
                table.add_column(_FORMATS[m][0], justify="right")
            for image, score in result.images.items():
                table.add_row(image, *_metric_cells(score, metrics))
            console.print(table)

    p = report.protocol
    table = Table(title=f"{p['model']} ×{p['scale']} ({p['channel']}, {p['precision']})", title_justify="left")
    table.add_column("dataset")
    for m in metrics:
        table.add_column(_FORMATS[m][0], justify="right")
    table.add_column("n", justify="right")
    table.add_column("LR")
    table.add_column("time", justify="right")
    for name, result in report.results.items():
        table.add_row(name, *_metric_cells(result, metrics), str(result.n), result.lr_source, f"{result.seconds:.1f} s")
    console.print(table)
    console.print(f"protocol: {report.protocol_line()}", style="dim", soft_wrap=True)
    for m in ("niqe", "lpips"):
        if m in p:
            console.print(f"{m}: {p[m]}", style="dim", soft_wrap=True)


def _print_sweep(report: SweepReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    metrics = report.protocol["metrics"]
    table = Table(title=f"α sweep: (1 − α)·{report.psnr_model} + α·{report.gan_model}", title_justify="left")
    table.add_column("point")
    for name in report.datasets:
        for m in metrics:
            table.add_column(f"{name} {_FORMATS[m][0]}", justify="right")
    for point in report.points:
        cells = [c for name in report.datasets for c in _metric_cells(point.results[name], metrics)]
        table.add_row(point.label, *cells)
    console.print(table)
    for m in ("niqe", "lpips"):
        if m in report.protocol:
            console.print(f"{m}: {report.protocol[m]}", style="dim", soft_wrap=True)


def _print_comparison(reports: list[EvalReport]) -> None:
    """One row per model, every metric per dataset: the side-by-side view of several --model."""
    from rich.console import Console
    from rich.table import Table

    metrics = reports[0].protocol.get("metrics", ["psnr", "ssim"])
    datasets = list(reports[0].results)
    table = Table(title="side by side", title_justify="left")
    table.add_column("model")
    for name in datasets:
        for m in metrics:
            table.add_column(f"{name} {_FORMATS[m][0]}", justify="right")
    for report in reports:
        cells = [c for name in datasets for c in _metric_cells(report.results[name], metrics)]
        table.add_row(report.protocol["model"], *cells)
    Console().print(table)
