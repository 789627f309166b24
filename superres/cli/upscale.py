"""``superres upscale INPUT... -o OUTPUT [--model M]``: upscale image files, folders and videos.

Output naming: into the folder OUTPUT as ``<stem><suffix>.<ext>``, where the suffix defaults to
``_x<factor>`` and the extension to the input's own (``png`` when superres cannot write the input's
format; ``.mkv`` for a video whose container cannot hold the output codec). With a single input file,
an OUTPUT that ends in an image (or video) extension is the output file. Video files are recognised
by their extension and go through :mod:`superres.video` (``cli/upscale_video.py``).

A file that cannot be read or upscaled is reported in one line and skipped; the others still finish,
and the exit code is 1. An input file is never written over; an existing output is skipped unless
``--overwrite``, so rerunning an interrupted batch does the rest. Inputs over ``--max-pixels`` and files
of several frames (animations, multi-page TIFF) are refused from their headers.

Under ``torchrun --nproc_per_node=N -m superres upscale ...`` each process takes every N-th image and
its share of each video's segments, on its own device (``LOCAL_RANK``); rank 0 prints the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from superres.cli.upscale_video import Counts, Say, plan_video_jobs, run_videos

if TYPE_CHECKING:
    from rich.progress import TaskID

    from superres.engine.distributed import Group
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
        list[Path],
        typer.Argument(metavar="INPUT", help="Image files, folders (their images, not sub-folders) and/or videos."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder, or output file for one input.")],
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="Weights file (.safetensors, .pth) or a name from `superres models`."),
    ] = "superres-x4",
    strength: Annotated[
        Optional[float],
        typer.Option(
            "--strength",
            help="0…1: blend the model with its GAN partner (ESRGAN network interpolation) — 0 the model itself "
            "(smooth, highest PSNR), 1 the GAN model (sharp, invented texture). For superres-x4 and RRDB_PSNR_x4.",
        ),
    ] = None,
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
    codec: Annotated[
        str, typer.Option("--codec", help="Video: h264 (default), h265, av1, vp9, or ffv1 (lossless, in .mkv).")
    ] = "h264",
    crf: Annotated[
        Optional[int], typer.Option("--crf", help="Video quality, lower is better (default: h264 18, h265 20).")
    ] = None,
    pix_fmt: Annotated[
        Optional[str],
        typer.Option("--pix-fmt", help="Video pixel format (default: yuv420p, 10-bit for 10-bit sources)."),
    ] = None,
    segment: Annotated[
        float,
        typer.Option("--segment", help="Video: seconds per resumable segment, cut at source keyframes."),
    ] = 10.0,
    max_pixels: Annotated[
        Optional[int],
        typer.Option(
            "--max-pixels",
            help="Refuse inputs of more pixels than this, read from the header before decoding (a guard "
            "against decompression bombs; default 64,000,000); 0: no limit of superres's own.",
        ),
    ] = None,
) -> None:
    """Upscale images and videos with a super-resolution model, seamlessly tiled to fit memory."""
    from superres.engine.distributed import Ranks, device_for_rank, process_group
    from superres.engine.inference import load_model
    from superres.errors import SuperresError
    from superres.imageio import DEFAULT_MAX_PIXELS
    from superres.video.transcode import VideoOptions

    if threads is not None:
        cpus = os.cpu_count() or 1
        if not 1 <= threads <= cpus:  # more threads than CPUs only spin; a huge count would never start
            _fail(f"--threads must be between 1 and {cpus} (the CPUs here), not {threads}")
        import torch

        torch.set_num_threads(threads)  # one thread per free core: oversubscribed cores spin at every barrier
    if outscale is not None and outscale <= 0:
        _fail(f"--outscale must be > 0, not {outscale:g}")
    if ext is not None and f".{ext.lower().lstrip('.')}" not in (".png", ".jpg", ".jpeg", ".webp"):
        _fail(f"--ext {ext}: use png, jpg or webp")
    if max_pixels is not None and max_pixels < 0:
        _fail(f"--max-pixels must be ≥ 0 (0: no limit), not {max_pixels}")
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels or None

    sources, videos, missing = collect_inputs(inputs)
    ranks = Ranks.from_environment()
    say = Say(ranks.is_main)  # under torchrun, rank 0 reports
    for path in missing:
        say.error(f"{path}: no such file or folder")
    if not sources and not videos:
        _fail("no images to upscale" + (f" in {', '.join(map(str, inputs))}" if not missing else ""))

    try:
        if ranks.distributed:
            import torch

            device = device_for_rank(device, ranks.local_rank, torch.cuda.is_available())
        upscaler = load_model(
            model, device=device, precision=precision, tile=tile, tile_pad=tile_pad, winograd=winograd, strength=strength
        )
        factor = outscale if outscale is not None else upscaler.scale
        name_suffix = suffix if suffix is not None else f"_x{factor:g}"
        jobs = plan_jobs(sources, output, name_suffix, ext, inputs=len(sources) + len(videos))
        video_jobs = plan_video_jobs(videos, output, name_suffix, codec, single=len(sources) + len(videos) == 1)
        video_options = VideoOptions(codec, crf, pix_fmt, segment, outscale, overwrite)
    except SuperresError as err:
        _fail(str(err))

    with process_group(ranks) as group:
        counts = Counts(failed=len(missing))
        if jobs:
            counts = counts + _run(jobs, upscaler, outscale, overwrite, group, limit)
        if video_jobs:
            counts = counts + run_videos(video_jobs, upscaler, video_options, group, model)
        say(str(counts), err=bool(counts.failed))
    # Rank 0 alone exits non-zero for what failed: it has the whole report (the other ranks' failures
    # included), and torchrun stops every other process as soon as one exits non-zero.
    if counts.failed and ranks.is_main:
        raise typer.Exit(code=1)


def _fail(message: str) -> NoReturn:
    from superres.engine.distributed import Ranks

    Say(Ranks.from_environment().is_main).error(message)
    raise typer.Exit(code=1)


def collect_inputs(inputs: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """(image files, video files, inputs that do not exist). Folders give their image files, sorted;
    files given by name are videos by their extension (:data:`superres.video.VIDEO_EXTENSIONS`)."""
    from superres.imageio import FOLDER_IMAGE_EXTENSIONS
    from superres.video import is_video

    sources: list[Path] = []
    videos: list[Path] = []
    missing: list[Path] = []
    for path in inputs:
        if path.is_dir():
            sources += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_IMAGE_EXTENSIONS)
        elif path.is_file():
            (videos if is_video(path) else sources).append(path)
        else:
            missing.append(path)
    return sources, videos, missing


def plan_jobs(sources: list[Path], output: Path, suffix: str, ext: str | None, inputs: int | None = None) -> list[Job]:
    """Where each source goes. Problems (would overwrite an input or another output) are per job.
    ``inputs``: how many files there are in all, videos included (default: the sources)."""
    from superres.errors import ConfigError
    from superres.imageio import FOLDER_IMAGE_EXTENSIONS, WRITE_FORMATS
    from superres.video import VIDEO_EXTENSIONS

    if not sources:
        return []
    as_file = not output.is_dir() and output.suffix.lower() in FOLDER_IMAGE_EXTENSIONS | set(WRITE_FORMATS)
    if not as_file and output.suffix.lower() in VIDEO_EXTENSIONS and not output.is_dir():
        raise ConfigError(f"{output} names a video file, but {sources[0]} is an image; give a folder")
    if as_file:
        inputs = len(sources) if inputs is None else inputs
        if inputs != 1:
            raise ConfigError(f"{output} names one file but there are {inputs} inputs; give a folder")
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


def _run(
    jobs: list[Job], upscaler: Upscaler, outscale: float | None, overwrite: bool, group: Group, max_pixels: int | None
) -> Counts:
    """Process the jobs with progress bars; returns what became of them (all ranks' jobs, on rank 0).

    The jobs to upscale go through :func:`superres.engine.pipeline.upscale_files`, which reads the next
    image and writes the previous one while the network runs; messages still come job by job, in order.
    Under torchrun each rank takes every N-th job and holds its messages until rank 0 prints them all,
    in the order of the jobs.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from superres.cli.guard import finished
    from superres.engine.pipeline import upscale_files
    from superres.errors import SuperresError

    mine = group.ranks.share(list(enumerate(jobs)))
    held: list[tuple[int, str, bool]] = []  # (job, line, to stderr), printed by rank 0 at the end

    def say(index: int, text: str, err: bool = False) -> None:
        if group.ranks.distributed:
            held.append((index, text, err))
        else:
            typer.echo(text, err=err)

    counts = Counts()

    def record() -> None:  # what Ctrl-C reports as done
        finished(
            f"{counts.written} of {len(mine)} images written, {counts.skipped} skipped, {counts.failed} failed; the "
            f"written files are complete, and running the same command again does the rest (existing outputs are "
            f"skipped)"
        )

    record()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    console = Console(stderr=True)
    shown = console.is_terminal and group.ranks.is_main
    with Progress(*columns, console=console, transient=True, disable=not shown) as bars:
        images = bars.add_task("images", total=len(mine))
        verdicts: list[bool | SuperresError | OSError] = []
        for _, job in mine:
            try:
                verdicts.append(_ready(job, overwrite))
            except (SuperresError, OSError) as err:
                verdicts.append(err)
        ready = [job for (_, job), verdict in zip(mine, verdicts, strict=True) if verdict is True]
        network_bars: dict[int, TaskID] = {}  # by index in ``ready``

        def progress_for(index: int) -> Callable[[int, int], None]:
            bars.update(images, description=ready[index].source.name)
            task = network_bars[index] = bars.add_task("  network", total=None, visible=False)

            def on_step(done: int, total: int) -> None:  # regions, and RRDBNet's blocks in each
                bars.update(task, completed=done, total=total, visible=total > 1)

            return on_step

        pairs = [(job.source, job.target) for job in ready]
        outcomes = upscale_files(upscaler, pairs, outscale, overwrite, progress_for, max_pixels)
        with closing(outcomes):
            numbered = enumerate(outcomes)
            for (number, job), verdict in zip(mine, verdicts, strict=True):
                error = None if isinstance(verdict, bool) else verdict
                caught: tuple[Warning, ...] = ()
                if verdict is True:
                    index, outcome = next(numbered)
                    error, caught = outcome.error, outcome.warnings
                    if index in network_bars:  # a file that could not be read never reached the network
                        bars.remove_task(network_bars.pop(index))
                if verdict is False:
                    say(number, f"skipped: {job.target} exists (pass --overwrite to replace it)", err=True)
                    counts.skipped += 1
                elif error is None:
                    say(number, f"{job.source} → {job.target}")
                    counts.written += 1
                else:
                    message = str(error) if str(job.source) in str(error) else f"{job.source}: {error}"
                    say(number, f"error: {message}", err=True)
                    counts.failed += 1
                for text in dict.fromkeys(str(warning) for warning in caught):  # once each
                    say(number, f"warning: {job.source.name}: {text}", err=True)
                bars.advance(images)
                record()
    return _report(group, held, counts)


def _report(group: Group, held: list[tuple[int, str, bool]], counts: Counts) -> Counts:
    """Under torchrun: rank 0 prints every rank's held lines in job order and returns the sum of the counts."""
    if not group.ranks.distributed:
        return counts
    reports = group.gather((held, counts))
    if reports is None:  # not rank 0
        return counts
    lines = sorted((line for lines, _ in reports for line in lines), key=lambda line: line[0])  # stable: per job
    for _, text, err in lines:
        typer.echo(text, err=err)
    total = Counts()
    for _, rank_counts in reports:
        total = total + rank_counts
    return total


def _ready(job: Job, overwrite: bool) -> bool:
    """Whether to upscale ``job``: False to skip it (its output exists); raises what stops it."""
    from superres.errors import SuperresError

    if job.target is None:
        raise SuperresError(job.problem)
    if job.target.exists() and not overwrite:
        return False
    job.target.parent.mkdir(parents=True, exist_ok=True)
    return True
