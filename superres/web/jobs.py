"""The job queue: uploads wait on disk, a pool of worker threads runs them through the engine.

A job goes ``queued → running → done | failed | cancelled``. Workers (``workers`` threads, one by
default) take jobs in the order they came; each job reads its upload, gets its model from the one
shared :class:`~superres.web.catalog.ModelCache`, upscales with the same engine as ``superres
upscale`` and writes the result with :func:`superres.imageio.write_image`, which keeps mode, depth,
alpha, ICC profile and EXIF as the CLI does.

**Cancel** works between tiles (and RRDBNet's blocks): the engine's progress callback raises
:class:`JobCancelled` once a cancel is asked for; a queued job is dropped before it starts.

**Failures stay in their job.** A bad image, a bad weights file, a device that is not there: the job
fails with the error's one-line message and the workers go on. Even an unexpected exception (a bug)
fails only its job, with its traceback in the server's log.

**Memory stays bounded** however many jobs wait: a queued job is a file in the work folder and a
small record, only the ``workers`` running jobs hold pixels, and at most ``max_queue`` jobs may be
unfinished at once (:class:`QueueFull`, HTTP 503, past that).

**Results** live in the work folder under server-made names (the job's random id; a client's file
name only ever reaches a message or the download's name). They are deleted ``keep_minutes`` after
their job ends (60 by default), when the job is deleted, and with the whole folder when the server
stops or starts again.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from superres.errors import ConfigError, ImageError, SuperresError, about
from superres.imageio import DEFAULT_MAX_PIXELS, WRITE_FORMATS, ImageData, decode_image, write_image
from superres.models.registry import DEFAULT_MODEL
from superres.web.catalog import ModelCache, ModelKey, safe_label

log = logging.getLogger("superres.web")

# Marks a folder as ours: only such a folder (or an empty one) is ever emptied at start.
_MARKER = ".superres-serve"
# The formats a result can take, by the source's decoded format (others are written as PNG).
_SUFFIX_OF_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


class JobCancelled(Exception):
    """Raised from the engine's progress callback to stop a job between tiles or blocks."""


class QueueFull(SuperresError):
    """Too many unfinished jobs: the client should try again later."""


@dataclass(frozen=True)
class JobOptions:
    """What a client may choose for one image (validated by the app before a job is made)."""

    model: str = DEFAULT_MODEL
    partner: str | None = None  # blend with this model: network interpolation, strength α
    strength: float = 0.0
    outscale: float | None = None
    suffix: str | None = None  # ".png" | ".jpg" | ".webp"; None: the input's own if superres writes it, else PNG
    quality: int | None = None  # JPEG / WebP quality
    tile: int | None = None
    precision: str = "auto"
    device: str = "auto"

    def model_key(self) -> ModelKey:
        strength = self.strength if self.partner else 0.0
        return ModelKey(self.model, self.partner, strength, self.device, self.precision)


@dataclass
class Job:
    """One image's way through the queue. ``version`` goes up at every change (for the event stream)."""

    id: str
    name: str  # the client's file name made safe: for messages and the download's name only
    options: JobOptions
    input_path: Path
    state: JobState = JobState.QUEUED
    done: int = 0  # progress steps: tiles, and RRDBNet's blocks in each
    total: int = 0
    error: str | None = None
    note: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    output_path: Path | None = None
    width: int | None = None
    height: int | None = None
    output_bytes: int | None = None
    factor: float | None = None  # the output's scale: outscale, or the model's
    version: int = 0
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def changed(self) -> None:
        self.version += 1

    @property
    def download_name(self) -> str:
        suffix = self.output_path.suffix if self.output_path else ".png"
        return f"{Path(self.name).stem or 'image'}_x{self.factor or 0:g}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        seconds = None if self.started is None else (self.finished or time.time()) - self.started
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "progress": {"done": self.done, "total": self.total},
            "error": self.error,
            "note": self.note,
            "seconds": None if seconds is None else round(seconds, 3),
            "width": self.width,
            "height": self.height,
            "bytes": self.output_bytes,
            "download_name": self.download_name if self.state is JobState.DONE else None,
        }


def default_work_dir(port: int) -> Path:
    """``<tmp>/superres-serve-<uid>/port-<port>``: one folder per server; the parent must be ours alone."""
    parent = Path(tempfile.gettempdir()) / f"superres-serve-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    stat = parent.lstat()
    if parent.is_symlink() or stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise ConfigError(f"{parent} is not a private folder of this user; remove it, or pass another work folder")
    return parent / f"port-{port}"


def prepare_work_dir(path: Path) -> Path:
    """Empty (or create) the server's work folder: results never outlive a restart."""
    if path.exists():
        if not (path / _MARKER).exists() and any(path.iterdir()):
            raise ConfigError(f"{path} is not empty and was not made by superres serve; choose another folder")
        shutil.rmtree(path)
    path.mkdir(mode=0o700, parents=True)
    (path / _MARKER).touch()
    return path


class JobStore:
    """The jobs of one server: submit, look up, cancel, expire; runs them on ``workers`` threads."""

    def __init__(
        self,
        work_dir: Path,
        models: ModelCache,
        workers: int = 1,
        keep_minutes: float = 60.0,
        max_queue: int = 100,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be ≥ 1, not {workers}")
        self.work_dir = prepare_work_dir(work_dir)
        self.models = models
        self.workers = workers
        self.keep_seconds = keep_minutes * 60.0
        self.max_queue = max_queue
        self.max_pixels = max_pixels
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="superres-job")
        self._closed = threading.Event()
        self._janitor = threading.Thread(target=self._sweep, name="superres-expiry", daemon=True)
        self._janitor.start()

    # -- the API's verbs ---------------------------------------------------------------------------

    def submit(self, data: bytes, name: str, options: JobOptions) -> Job:
        """Queue an upload (already checked to decode). Raises :class:`QueueFull` past ``max_queue``."""
        job_id = secrets.token_hex(16)
        job = Job(job_id, safe_label(name), options, self.work_dir / f"{job_id}.input")
        with self._lock:
            if sum(other.state not in FINISHED for other in self._jobs.values()) >= self.max_queue:
                raise QueueFull(f"{self.max_queue} jobs are already waiting or running; try again later")
            self._jobs[job_id] = job  # holds its place in the queue while its file is written
        try:
            job.input_path.write_bytes(data)
        except OSError as exc:
            self.remove(job_id)
            raise ImageError(f"{job.name}: the server cannot store the upload ({exc.strerror or exc})") from None
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        """The job, or :class:`KeyError` (unknown, deleted or expired)."""
        with self._lock:
            return self._jobs[job_id]

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (a running one stops at its next tile); finished: no change."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state is JobState.QUEUED:
                self._finish(job, JobState.CANCELLED)
            job.cancel.set()
            return job

    def remove(self, job_id: str) -> None:
        """Forget a job and delete its files (a running job is cancelled first)."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            job.cancel.set()
            self._delete_files(job)

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [job.state for job in self._jobs.values()]
        return {state.value: states.count(state) for state in JobState}

    def zip_results(self, job_ids: list[str]) -> Path:
        """A zip (stored, not recompressed) of the finished results among ``job_ids``, in the work folder."""
        jobs = []
        for job_id in job_ids:
            try:
                job = self.get(job_id)
            except KeyError:
                continue
            if job.state is JobState.DONE and job.output_path is not None:
                jobs.append(job)
        if not jobs:
            raise ConfigError("none of these jobs has a result (unknown, unfinished or expired)")
        path = self.work_dir / f"{secrets.token_hex(16)}.zip"
        names: set[str] = set()
        try:
            with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
                for job in jobs:
                    name, stem, n = job.download_name, Path(job.download_name), 1
                    while name in names:  # two uploads of photo.png: photo_x4.png, photo_x4-2.png
                        n += 1
                        name = f"{stem.stem}-{n}{stem.suffix}"
                    names.add(name)
                    archive.write(job.output_path, name)
        except OSError as exc:  # a result expired meanwhile, or the disk is full
            path.unlink(missing_ok=True)
            raise ImageError(f"cannot make the zip ({exc.strerror or exc})") from None
        return path

    def expire(self, now: float | None = None) -> int:
        """Forget the jobs that finished more than ``keep_minutes`` ago; returns how many."""
        limit = (time.time() if now is None else now) - self.keep_seconds
        with self._lock:
            old = [job for job in self._jobs.values() if job.finished is not None and job.finished < limit]
        for job in old:
            self.remove(job.id)
        return len(old)

    def close(self) -> None:
        """Cancel what is left, stop the workers, delete the work folder."""
        self._closed.set()
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- the workers -------------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.state is not JobState.QUEUED:  # cancelled while it waited
                return
            job.state, job.started = JobState.RUNNING, time.time()
            job.changed()
        state = JobState.FAILED
        try:
            with about(job.name):  # running out of memory is this job's failure, in one line
                self._work(job)
            state = JobState.DONE
        except JobCancelled:
            state = JobState.CANCELLED
        except (SuperresError, OSError) as exc:
            job.error = str(exc)
        except Exception as exc:  # a bug: this job fails, the server and the other jobs go on
            log.exception("job %s (%s) failed", job.id, job.name)
            job.error = f"internal error ({type(exc).__name__}: {exc}); see the server's log"
        finally:
            job.input_path.unlink(missing_ok=True)
            with self._lock:
                self._finish(job, state)

    def _work(self, job: Job) -> None:
        options = job.options

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            job.changed()
            if job.cancel.is_set():
                raise JobCancelled

        image = decode_image(job.input_path.read_bytes(), job.name, self.max_pixels)
        progress(0, 0)
        upscaler = self.models.upscaler(options.model_key(), options.tile)
        job.factor = options.outscale or upscaler.scale
        progress(0, 0)
        result = replace(image, pixels=upscaler.upscale(image.pixels, options.outscale, progress))
        suffix = options.suffix or _SUFFIX_OF_FORMAT.get(image.format or "", ".png")
        job.note = _loss_note(result, suffix)
        path = write_image(self.work_dir / f"{job.id}{suffix}", result, quality=options.quality)
        job.output_path, job.output_bytes = path, path.stat().st_size
        job.width, job.height = result.width, result.height

    def _finish(self, job: Job, state: JobState) -> None:
        """(Under the lock.) A job's end: its state, its time; a cancelled job keeps no files."""
        if job.state in FINISHED:
            return
        job.state, job.finished = state, time.time()
        if state is not JobState.DONE or job.id not in self._jobs:  # failed, cancelled, or deleted meanwhile
            self._delete_files(job)
        job.changed()

    def _delete_files(self, job: Job) -> None:
        job.input_path.unlink(missing_ok=True)
        if job.output_path is not None:
            job.output_path.unlink(missing_ok=True)

    def _sweep(self) -> None:
        while not self._closed.wait(min(30.0, max(self.keep_seconds / 4, 0.05))):
            self.expire()


def _loss_note(image: ImageData, suffix: str) -> str | None:
    """What the chosen format drops from this image (the writer composites alpha and rounds 16 bits)."""
    _, holds_alpha, holds_16 = WRITE_FORMATS[suffix]
    kept = (("alpha", holds_alpha or not image.has_alpha), ("16-bit depth", holds_16 or image.bit_depth == 8))
    lost = [what for what, ok in kept if not ok]
    if not lost:
        return None
    return f"{suffix.lstrip('.').upper()} cannot hold the {' and '.join(lost)} of this image; choose PNG to keep it"
