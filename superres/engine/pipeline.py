"""Upscaling a batch of image files with decoding and encoding off the network's path.

:func:`upscale_files` does what :meth:`Upscaler.upscale_file <superres.engine.inference.Upscaler.upscale_file>`
does, file after file, but in three stages that overlap::

    reader thread     read 1   read 2        read 3
    caller's thread            network 1     network 2     network 3
    writer thread                            write 1       write 2      write 3

Decoding a PNG or JPEG, and above all encoding one (zlib, libjpeg, libwebp; 16-bit PNG through pypng,
which is pure Python), takes a noticeable share of a fast network's time: SRVGGNetCompact ×4 on a
256×256 image, 2 CPU threads, spends ~0.33 s writing the PNG for ~0.6–1.2 s of network
(``bench/bench_folder.py``). Pillow's codecs, zlib and torch release the GIL for most of their
work, so the stages really run side by side when there is a free core (pypng's row loop does not,
so 16-bit PNG output overlaps less).

Memory stays bounded: the reader works at most one image ahead of the network and the writer holds
one finished image behind it, so at most two decoded inputs and two outputs are alive at once.

:func:`overlap` is that scheme on its own, for any items: video frames go through it too
(:mod:`superres.video.transcode`: decoder thread → network → encoder thread).

Each job ends in a :class:`FileOutcome`, yielded in the order of the jobs: the file written, or the
error that stopped it (:class:`~superres.errors.SuperresError` or :class:`OSError`, naming the file; running
out of memory is one of them, see :func:`superres.errors.about`: one bad file never stops the batch),
with the warnings raised while that job was read, upscaled and written.

Outputs are written atomically (:func:`superres.imageio.atomic_path`): a batch killed at any moment
leaves complete outputs and, at most, hidden ``.part`` temporaries, which the next batch writing into
that folder removes (:func:`superres.imageio.remove_stale_parts`).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from superres.errors import ImageError, SuperresError, about
from superres.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageData,
    check_target,
    read_image,
    remove_stale_parts,
    write_image,
)

if TYPE_CHECKING:
    from superres.engine.inference import Progress, Upscaler

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

# What goes wrong with one file (unreadable, damaged, unwritable, out of memory) and is reported for
# that file; anything else is a bug and propagates.
JOB_ERRORS = (SuperresError, OSError)

_Job = tuple[int, "ImageData | SuperresError | OSError"]  # a job's index and its image, or what stopped it


@dataclass(frozen=True)
class FileOutcome:
    """What became of one job: ``written`` is the target when it was written, else ``error`` says why."""

    source: Path
    target: Path
    written: Path | None
    error: SuperresError | OSError | None
    warnings: tuple[Warning, ...] = ()


def upscale_files(
    upscaler: Upscaler,
    jobs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    outscale: float | None = None,
    overwrite: bool = False,
    progress_for: Callable[[int], Progress | None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Iterator[FileOutcome]:
    """Upscale each ``(source, target)`` file; yields one :class:`FileOutcome` per job, in order.

    Output files equal those of ``upscaler.upscale_file(source, target, outscale, overwrite)``
    (:func:`check_target` says which targets are refused; here also a target that is another job's source;
    ``max_pixels`` as there). ``progress_for(i)`` is called as the network starts on job ``i`` and may
    return a tile progress callback for it. The network runs in the caller's thread, during ``next()``;
    reading and writing run in two background threads.

    While the batch runs, a warning raised for a job — by its read, its network or its write, in
    whichever thread — is collected into its outcome and not shown, and the process-wide warning
    filter is "always" (see :func:`_collect_warnings_per_job`). Consume the iterator to the end, or
    close it (``contextlib.closing``), to restore both and stop the threads.
    """
    jobs = [(Path(source), Path(target)) for source, target in jobs]
    if not jobs:
        return
    for folder in dict.fromkeys(target.parent for _, target in jobs):
        remove_stale_parts(folder)  # what a killed run left there; never a result, never another live run's
    inputs = frozenset(source.resolve() for source, _ in jobs)
    caught: list[list[Warning]] = [[] for _ in jobs]
    with _collect_warnings_per_job() as on_job:

        def read(index: int) -> _Job:
            return index, _attempt(on_job, caught[index], _check_and_read, *jobs[index], overwrite, inputs, max_pixels)

        def upscale(job: _Job) -> _Job:
            index, image = job
            if isinstance(image, JOB_ERRORS):
                return job
            progress = progress_for(index) if progress_for is not None else None
            return index, _attempt(on_job, caught[index], _upscale, upscaler, jobs[index][0], image, outscale, progress)

        def write(job: _Job) -> FileOutcome:
            index, image = job
            if isinstance(image, JOB_ERRORS):
                result: Path | SuperresError | OSError = image
            else:
                result = _attempt(on_job, caught[index], _write, jobs[index][1], image, overwrite)
            if isinstance(result, JOB_ERRORS):
                return FileOutcome(*jobs[index], written=None, error=result, warnings=tuple(caught[index]))
            return FileOutcome(*jobs[index], written=result, error=None, warnings=tuple(caught[index]))

        yield from overlap(map(read, range(len(jobs))), upscale, write)


def overlap(items: Iterable[A], work: Callable[[A], B], finish: Callable[[B], C]) -> Iterator[C]:
    """``finish(work(item))`` for each item, in order, in three stages that run side by side.

    ``next(items)`` runs in a reader thread, one item ahead of ``work``; ``work`` runs in the caller's
    thread, during ``next()`` on this generator; ``finish`` runs in a writer thread, one item behind
    ``work``. So at most two items and two results are alive at once. Each stage sees its items in
    order, one at a time. An exception in any stage propagates here, after the threads have stopped (and
    ``items``, if it is a generator, has been closed in the reader thread); callers that want to go on
    after a failed item return its error as a value instead.
    """
    iterator = iter(items)
    end = object()
    with (
        ThreadPoolExecutor(1, thread_name_prefix="superres-read") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="superres-write") as writer,
    ):
        try:
            reading = reader.submit(next, iterator, end)
            behind: Future[C] | None = None  # the result being finished
            while (item := reading.result()) is not end:
                reading = reader.submit(next, iterator, end)  # read while ``work`` runs: one item ahead
                result = work(item)  # type: ignore[arg-type]  # not ``end``
                # the previous item's finish overlapped this work; wait for it, so that only one result is
                # ever being finished, before handing this one to the writer
                finished = behind.result() if behind is not None else end
                behind = writer.submit(finish, result)
                if finished is not end:
                    yield finished  # type: ignore[misc]
            last = behind.result() if behind is not None else end
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator left early ends in the thread it ran in
                reader.submit(close).result()
    if last is not end:
        yield last  # type: ignore[misc]  # with the threads stopped


def _check_and_read(
    source: Path, target: Path, overwrite: bool, inputs: frozenset[Path], max_pixels: int | None
) -> ImageData:
    with about(source):
        check_target(source, target, overwrite)
        if target.resolve() in inputs:  # the reader may get to that job before or after this one is written
            raise ImageError(f"{target}: is the input of another job; superres never writes over its inputs")
        return read_image(source, max_pixels)


def _upscale(
    upscaler: Upscaler, source: Path, image: ImageData, outscale: float | None, progress: Progress | None
) -> ImageData:
    """The upscaled image, with the source's ICC profile and EXIF."""
    with about(source):
        return replace(image, pixels=upscaler.upscale(image.pixels, outscale, progress))


def _write(target: Path, image: ImageData, overwrite: bool) -> Path:
    with about(target):
        return write_image(target, image, overwrite)


def _attempt(function: Callable[..., T], *args: Any) -> T | SuperresError | OSError:
    try:
        return function(*args)
    except JOB_ERRORS as err:
        return err


@contextmanager
def _collect_warnings_per_job() -> Iterator[Callable[..., Any]]:
    """Yields ``on_job(caught, function, *args)``: runs ``function`` and appends to ``caught`` the
    warnings it raises — in whichever thread it runs.

    ``warnings.catch_warnings`` swaps process-wide state (the filters and ``warnings.showwarning``),
    so three threads entering it per job would record each other's warnings and restore each other's
    state out of order. Instead it is entered once, here, around the whole batch, with a
    ``showwarning`` that appends to the list of the job the *raising thread* is working on (a
    thread-local). Each job is in one stage at a time, so its list is never appended to by two
    threads at once. Warnings from threads that are working on no job go to the handler that was
    in place before.
    """
    current = threading.local()

    def on_job(caught: list[Warning], function: Callable[..., T], *args: Any) -> T:
        current.caught = caught
        try:
            return function(*args)
        finally:
            current.caught = None

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # every warning of every job, not once per process
        previous = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, *rest: Any) -> None:
            caught = getattr(current, "caught", None)
            if caught is None:
                previous(message, category, filename, lineno, *rest)
            else:
                caught.append(message if isinstance(message, Warning) else category(message))

        warnings.showwarning = show
        yield on_job
