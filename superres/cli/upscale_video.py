"""The video half of ``superres upscale`` (see :mod:`superres.video`): where outputs go, a progress bar
in frames, fps and time left, and one line per outcome.

Every rank of a torchrun calls :func:`run_videos` with the same jobs; each video is shared among them
by segments, and rank 0 alone prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.progress import Task
    from rich.text import Text

    from superres.engine.distributed import Group
    from superres.engine.inference import Upscaler
    from superres.video.transcode import VideoOptions, VideoProgress


@dataclass
class Counts:
    """Outcomes of ``superres upscale``'s jobs, for its summary line."""

    written: int = 0
    skipped: int = 0
    failed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.written + other.written, self.skipped + other.skipped, self.failed + other.failed)

    def __str__(self) -> str:
        return f"{self.written} written, {self.skipped} skipped, {self.failed} failed"


@dataclass(frozen=True)
class VideoJob:
    source: Path
    target: Path | None  # None: ``problem`` says why there is none
    problem: str | None = None


def plan_video_jobs(videos: list[Path], output: Path, suffix: str, codec: str, single: bool) -> list[VideoJob]:
    """Where each video goes: ``output`` itself when it is the only input and ``output`` names a video file,
    else ``output/<stem><suffix><ext>`` with the source's container where it holds the codec (else .mkv)."""
    from superres.errors import ConfigError
    from superres.imageio import FOLDER_IMAGE_EXTENSIONS
    from superres.video import VIDEO_EXTENSIONS
    from superres.video.segments import CONTAINERS

    named = output.suffix.lower()
    if videos and not output.is_dir() and named in (VIDEO_EXTENSIONS | FOLDER_IMAGE_EXTENSIONS) - set(CONTAINERS):
        what = "cannot be written" if named in VIDEO_EXTENSIONS else "is not a video"
        raise ConfigError(f"{output}: {named} {what}; name a folder, or a {', '.join(CONTAINERS)} file")
    if single and named in CONTAINERS and not output.is_dir():
        return [VideoJob(videos[0], output)]
    jobs = []
    for source in videos:
        own = source.suffix.lower()
        ext = own if own in CONTAINERS and codec != "ffv1" else ".mkv"
        target = output / f"{source.stem}{suffix}{ext}"
        if target.resolve() == source.resolve():
            jobs.append(VideoJob(source, None, f"the output {target} is the input; choose another -o or --suffix"))
        else:
            jobs.append(VideoJob(source, target))
    return jobs


def run_videos(jobs: list[VideoJob], upscaler: Upscaler, options: VideoOptions, group: Group, model: str) -> Counts:
    """Upscale the videos one after another, all ranks together; returns what became of them (rank 0)."""
    from superres.errors import SuperresError
    from superres.video.segments import parts_folder
    from superres.video.transcode import upscale_video

    counts = Counts()
    say = Say(group.ranks.is_main)
    for job in jobs:
        if job.target is None:
            say.error(f"{job.source}: {job.problem}")
            counts.failed += 1
            continue
        if group.broadcast(job.target.exists() and not options.overwrite):  # rank 0's view, so all ranks agree
            say(f"skipped: {job.target} exists (pass --overwrite to replace it)", err=True)
            counts.skipped += 1
            continue
        try:
            with _frame_bar(job.source.name, enabled=group.ranks.is_main) as update:
                outcome = upscale_video(upscaler, job.source, job.target, options, update, group, model)
        except SuperresError as err:
            say.error(str(err) if str(job.source) in str(err) else f"{job.source}: {err}")
            counts.failed += 1
            continue
        except KeyboardInterrupt:
            say(
                f"interrupted: the finished segments of {job.source} are kept in {parts_folder(job.target)}; "
                f"run the same command again to continue",
                err=True,
            )
            raise typer.Exit(code=130) from None
        for note in outcome.notes:
            say(f"warning: {note}", err=True)
        resumed = f", {outcome.resumed} of {outcome.segments} segments from an earlier run" if outcome.resumed else ""
        if outcome.written:
            say(f"{job.source} → {job.target} ({outcome.frames} frames{resumed})")
        for line in outcome.failed:
            say.error(f"{job.source}: {line}")
        if outcome.failed:
            say(
                f"{job.source}: finished segments are kept in {parts_folder(job.target)}; rerun to do the rest",
                err=True,
            )
        if outcome.damage is not None:
            say.error(f"{job.source}: {outcome.damage.describe()}; {job.target} holds the frames before it")
        ok = outcome.written and outcome.damage is None  # a damaged source counts as failed, though written
        counts.written += ok
        counts.failed += not ok
    return counts


class Say:
    """Lines from rank 0 only, under torchrun (where rank 0 knows every outcome); from the one process otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, err: bool = False) -> None:
        if self.enabled:
            typer.echo(text, err=err)

    def error(self, text: str) -> None:
        self(f"error: {text}", err=True)


@contextmanager
def _frame_bar(name: str, enabled: bool) -> Iterator[Callable[[VideoProgress], None]]:
    """A progress bar in frames, with fps and time left (on a terminal; nothing otherwise)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Fps(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text("" if task.speed is None else f"{task.speed:.1f} fps")

    console = Console(stderr=True)
    columns = (TextColumn(name), BarColumn(), MofNCompleteColumn(), TextColumn("frames"), Fps(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not (enabled and console.is_terminal)) as bars:
        task = bars.add_task(name, total=None)
        yield lambda progress: bars.update(task, completed=progress.frames_done, total=progress.frames_total)
