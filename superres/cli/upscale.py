"""``superres upscale INPUT... -o OUTPUT [--model M]``: upscale image files and folders.

Output naming: into the folder OUTPUT as ``<stem><suffix>.<ext>``, where the suffix defaults to
``_x<factor>`` and the extension to the input's own (``png`` when superres cannot write the input's
format). With a single input file, an OUTPUT that ends in an image extension is the output file.

A file that cannot be read or upscaled is reported in one line and skipped; the others still finish,
and the exit code is 1. An input file is never written over; an existing output is skipped unless
``--overwrite``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

if TYPE_CHECKING:
    from rich.progress import TaskID

    from superres.engine.inference import Upscaler


def register(app: typer.Typer) -> None:
    app.command(name="upscale")(upscale_command)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path | None  # None: no valid target; ``problem`` says why
    problem: str | None = None


def upscale_command(
    inputs: Annotated[
        list[Path], typer.Argument(metavar="INPUT", help="Image files and/or folders (their images, not sub-folders).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder, or output file for one input.")],
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Weights file (.safetensors, .pth) or a name from `superres models`."),
    ] = "superres-x4",
    outscale: Annotated[
        Optional[float], typer.Option("--outscale", "-s", help="Final factor (default: the model's scale).")
    ] = None,
    tile: Annotated[
        Optional[int], typer.Option("--tile", help="Tile size in LR px; 0 = whole image (default: fit memory).")
    ] = None,
    tile_pad: Annotated[
        Optional[int],
        typer.Option(
            "--tile-pad",
            help="Context around tiles in LR px (default: enough for seamless output; for RRDBNet, "
            "the overlap of regions on images too large to run block-wise).",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32, fp16, bf16.")] = "auto",
    winograd: Annotated[
        bool,
        typer.Option(
            "--winograd/--no-winograd",
            help="fp32 RRDBNet on CPU: Winograd F(4×4,3×3) convs, ~2× faster, within 1 level of the direct "
            "conv (compiled once on first use).",
        ),
    ] = True,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", help="CPU threads for the network (default: torch's, one per physical core)."),
    ] = None,
    suffix: Annotated[
        Optional[str], typer.Option("--suffix", help="Added to output names (default _x<factor>).")
    ] = None,
    ext: Annotated[
        Optional[str], typer.Option("--ext", help="Output format: png, jpg or webp (default: the input's).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Upscale images with a super-resolution model, seamlessly tiled to fit memory."""
    from superres.engine.inference import load_model
    from superres.errors import SuperresError

    if threads is not None:
        if threads < 1:
            _fail(f"--threads must be ≥ 1, not {threads}")
        import torch

        torch.set_num_threads(threads)  # one thread per free core: oversubscribed cores spin at every barrier
    if outscale is not None and outscale <= 0:
        _fail(f"--outscale must be > 0, not {outscale:g}")
    if ext is not None and f".{ext.lower().lstrip('.')}" not in (".png", ".jpg", ".jpeg", ".webp"):
        _fail(f"--ext {ext}: use png, jpg or webp")

    sources, missing = collect_inputs(inputs)
    for path in missing:
        typer.echo(f"error: {path}: no such file or folder", err=True)
    if not sources:
        _fail("no images to upscale" + (f" in {', '.join(map(str, inputs))}" if not missing else ""))

    try:
        upscaler = load_model(
            model, device=device, precision=precision, tile=tile, tile_pad=tile_pad, winograd=winograd
        )
        factor = outscale if outscale is not None else upscaler.scale
        jobs = plan_jobs(sources, output, suffix if suffix is not None else f"_x{factor:g}", ext)
    except SuperresError as err:
        _fail(str(err))

    failed = len(missing) + _run(jobs, upscaler, outscale, overwrite)
    if failed:
        raise typer.Exit(code=1)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def collect_inputs(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(image files to process, inputs that do not exist). Folders give their image files, sorted."""
    from superres.imageio import FOLDER_IMAGE_EXTENSIONS

    sources: list[Path] = []
    missing: list[Path] = []
    for path in inputs:
        if path.is_dir():
            sources += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_IMAGE_EXTENSIONS)
        elif path.is_file():
            sources.append(path)
        else:
            missing.append(path)
    return sources, missing


def plan_jobs(sources: list[Path], output: Path, suffix: str, ext: str | None) -> list[Job]:
    """Where each source goes. Problems (would overwrite an input or another output) are per job."""
    from superres.errors import ConfigError
    from superres.imageio import FOLDER_IMAGE_EXTENSIONS, WRITE_FORMATS

    as_file = not output.is_dir() and output.suffix.lower() in FOLDER_IMAGE_EXTENSIONS | set(WRITE_FORMATS)
    if as_file:
        if len(sources) != 1:
            raise ConfigError(f"{output} names one file but there are {len(sources)} inputs; give a folder")
        if ext is not None and output.suffix.lower().lstrip(".") != ext.lower().lstrip("."):
            raise ConfigError(f"--ext {ext} disagrees with the output file {output.name}")
        targets = [output]
    else:
        targets = [output / f"{source.stem}{suffix}{_extension(source, ext)}" for source in sources]

    inputs = {source.resolve() for source in sources}
    jobs: list[Job] = []
    claimed: dict[Path, Path] = {}
    for source, target in zip(sources, targets, strict=True):
        resolved = target.resolve()
        if resolved in inputs:
            jobs.append(
                Job(source, None, f"the output {target} is an input file; choose another -o, --suffix or --ext")
            )
        elif resolved in claimed:
            jobs.append(Job(source, None, f"the output {target} is already the output of {claimed[resolved]}"))
        else:
            claimed[resolved] = source
            jobs.append(Job(source, target))
    return jobs


def _extension(source: Path, ext: str | None) -> str:
    from superres.imageio import WRITE_FORMATS

    if ext is not None:
        return f".{ext.lower().lstrip('.')}"
    own = source.suffix.lower()
    # an input format we can write holds the output too (same mode and depth); others become PNG
    return own if own in WRITE_FORMATS else ".png"


def _run(jobs: list[Job], upscaler: Upscaler, outscale: float | None, overwrite: bool) -> int:
    """Process the jobs with progress bars; returns the number that failed.

    The jobs to upscale go through :func:`superres.engine.pipeline.upscale_files`, which reads the next
    image and writes the previous one while the network runs; messages still come job by job, in order.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from superres.engine.pipeline import upscale_files
    from superres.errors import SuperresError

    failed = written = skipped = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bars:
        images = bars.add_task("images", total=len(jobs))
        verdicts: list[bool | SuperresError | OSError] = []
        for job in jobs:
            try:
                verdicts.append(_ready(job, overwrite))
            except (SuperresError, OSError) as err:
                verdicts.append(err)
        ready = [job for job, verdict in zip(jobs, verdicts) if verdict is True]
        network_bars: dict[int, TaskID] = {}  # by index in ``ready``

        def progress_for(index: int) -> Callable[[int, int], None]:
            bars.update(images, description=ready[index].source.name)
            task = network_bars[index] = bars.add_task("  network", total=None, visible=False)

            def on_step(done: int, total: int) -> None:  # regions, and RRDBNet's blocks in each
                bars.update(task, completed=done, total=total, visible=total > 1)

            return on_step

        pairs = [(job.source, job.target) for job in ready]
        with closing(upscale_files(upscaler, pairs, outscale, overwrite, progress_for)) as outcomes:
            numbered = enumerate(outcomes)
            for job, verdict in zip(jobs, verdicts):
                error = None if isinstance(verdict, bool) else verdict
                caught: tuple[Warning, ...] = ()
                if verdict is True:
                    index, outcome = next(numbered)
                    error, caught = outcome.error, outcome.warnings
                    if index in network_bars:  # a file that could not be read never reached the network
                        bars.remove_task(network_bars.pop(index))
                if verdict is False:
                    typer.echo(f"skipped: {job.target} exists (pass --overwrite to replace it)", err=True)
                    skipped += 1
                elif error is None:
                    typer.echo(f"{job.source} → {job.target}")
                    written += 1
                else:
                    message = str(error) if str(job.source) in str(error) else f"{job.source}: {error}"
                    typer.echo(f"error: {message}", err=True)
                    failed += 1
                for text in dict.fromkeys(str(warning) for warning in caught):  # once each
                    typer.echo(f"warning: {job.source.name}: {text}", err=True)
                bars.advance(images)
    summary = f"{written} written, {skipped} skipped, {failed} failed"
    typer.echo(summary, err=bool(failed))
    return failed


def _ready(job: Job, overwrite: bool) -> bool:
    """Whether to upscale ``job``: False to skip it (its output exists); raises what stops it."""
    from superres.errors import SuperresError

    if job.target is None:
        raise SuperresError(job.problem)
    if job.target.exists() and not overwrite:
        return False
    job.target.parent.mkdir(parents=True, exist_ok=True)
    return True
