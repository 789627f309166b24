"""Upscale a video: :func:`upscale_video`.

Each segment (:mod:`superres.video.segments`) runs through the folder pipeline's three stages
(:func:`superres.engine.pipeline.overlap`)::

    reader thread     decode 1   decode 2    decode 3
    caller's thread              network 1   network 2   network 3
    writer thread                            encode 1    encode 2    encode 3

so FFmpeg's decoder, swscale and the encoder (which release the GIL) work while the network does, and at
most two decoded and two upscaled frames are alive at once.

Under torchrun (a :class:`~superres.engine.distributed.Group` of several ranks) rank 0 probes the
source and plans the segments, every rank upscales its share of the unfinished ones into its own
files, and rank 0 joins them once all ranks are done. A segment that fails is reported with its rank;
the others finish, and a rerun does only what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from superres.engine.distributed import Group, Ranks
from superres.engine.pipeline import JOB_ERRORS, overlap
from superres.errors import SuperresError, VideoError
from superres.video.frames import Decoded, EncodeSettings, Frame, SegmentEncoder, encode_settings
from superres.video.probe import Damage, VideoInfo, clock, probe
from superres.video.segments import SEGMENT_SECONDS, Parts, Segment, SegmentRecord, check_streams, join, plan_segments

if TYPE_CHECKING:
    from superres.engine.inference import Upscaler

T = TypeVar("T")


@dataclass(frozen=True)
class VideoOptions:
    """How to encode the output (``superres upscale --codec/--crf/--pix-fmt/--segment``)."""

    codec: str = "h264"
    crf: int | None = None  # None: the codec's default (x264: 18)
    pix_fmt: str | None = None  # None: yuv420p, 10-bit for deeper sources; RGB for FFV1
    segment_seconds: float = SEGMENT_SECONDS
    outscale: float | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class VideoProgress:
    frames_done: int  # by this process so far (rank 0 also counts segments finished by an earlier run)
    frames_total: int


@dataclass(frozen=True)
class VideoOutcome:
    """What became of one video. ``written``: the output is complete. ``failed``: segments that could not
    be made, one line each (the finished ones are kept for a rerun). ``damage``: where the source broke
    off (the output holds the frames before it)."""

    source: Path
    target: Path
    written: bool
    frames: int
    segments: int
    resumed: int  # segments finished by an earlier run
    damage: Damage | None = None
    failed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Prepared:
    """Rank 0's plan, sent to every rank."""

    info: VideoInfo
    settings: EncodeSettings
    size: tuple[int, int]  # output width, height
    target: Path
    segments: list[Segment]
    todo: list[Segment]
    notes: list[str]


def upscale_video(
    upscaler: Upscaler,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    options: VideoOptions = VideoOptions(),
    progress: Callable[[VideoProgress], None] | None = None,
    group: Group | None = None,
    model: str = "",
) -> VideoOutcome:
    """Upscale ``source`` into ``target`` (container by extension: .mp4, .mkv, .mov, .webm), resuming
    from ``target``'s ``.parts`` folder when an earlier run with the same settings left one.

    ``model`` names the weights in the progress record, so that a rerun with other weights starts over
    instead of mixing; ``group`` shares the work among torchrun's processes (every rank calls this with
    the same arguments). Raises :class:`~superres.errors.VideoError` / ``ConfigError`` for what stops
    the whole video, on every rank.
    """
    group = group or Group(Ranks())
    source, target = Path(source), Path(target)
    prepared = _on_main(group, _prepare, upscaler, source, target, options, model)

    mine = group.ranks.share(prepared.todo)
    done = sum(s.frames for s in prepared.segments if s not in prepared.todo) if group.ranks.is_main else 0
    total = done + sum(s.frames for s in mine)

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(VideoProgress(done, total))

    if progress is not None:
        progress(VideoProgress(done, total))
    failures = []
    for segment in mine:
        try:
            _upscale_segment(upscaler, prepared, segment, options.outscale, tick)
        except JOB_ERRORS as err:
            where = f"segment {segment.index + 1} of {len(prepared.segments)} ({_span(prepared.info, segment)})"
            rank = f" on rank {group.ranks.rank}" if group.ranks.distributed else ""
            failures.append(f"{where}{rank}: {err}")

    gathered = group.gather(failures)  # every rank is done with its segments
    return _on_main(group, _finish, prepared, source, [line for lines in gathered or [] for line in lines])


def _on_main(group: Group, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` run by rank 0 alone, its result (or the error it raised) on every rank."""
    result: T | SuperresError | OSError | None = None
    if group.ranks.is_main:
        try:
            result = function(*args)
        except JOB_ERRORS as err:
            result = err
    result = group.broadcast(result)
    if isinstance(result, JOB_ERRORS):
        raise result
    return result  # type: ignore[return-value]  # rank 0's result


def _prepare(upscaler: Upscaler, source: Path, target: Path, options: VideoOptions, model: str) -> _Prepared:
    if target.exists():
        if source.exists() and os.path.samefile(source, target):
            raise VideoError(f"{target}: is the input file; superres never writes over its input")
        if not options.overwrite:
            raise VideoError(f"{target}: already exists (pass overwrite to replace it)")
    info = probe(source)
    factor = options.outscale if options.outscale is not None else upscaler.scale
    size = (round(info.width * factor), round(info.height * factor))
    settings = encode_settings(info, size, options.codec, options.crf, options.pix_fmt)
    notes = check_streams(info, settings, target)
    segments = plan_segments(info, options.segment_seconds)
    stat = source.stat()
    plan = {
        "version": 1,
        "source": {"name": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "settings": {
            "model": model or f"{upscaler.arch} ×{upscaler.scale}",
            "precision": upscaler.precision,
            "outscale": options.outscale,
            "codec": settings.codec,
            "crf": settings.crf,
            "pix_fmt": settings.pix_fmt,
            "segment_seconds": options.segment_seconds,
        },
        "segments": [[s.start, s.end, s.frames] for s in segments],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = Parts(target, settings)
    parts.start(plan)
    todo = [s for s in segments if parts.record(s.index) is None]
    return _Prepared(info, settings, size, target, segments, todo, notes)


def _upscale_segment(
    upscaler: Upscaler, prepared: _Prepared, segment: Segment, outscale: float | None, tick: Callable[[], None]
) -> None:
    """Decode, upscale and encode one segment into its own file; on any error nothing of it is left."""
    parts = Parts(prepared.target, prepared.settings)
    decoded = Decoded(prepared.info, segment.start, segment.end)
    temp = parts.temp(segment.index)
    encoder = SegmentEncoder(temp, prepared.info, prepared.settings, *prepared.size)

    def upscale(frame: Frame) -> Frame:
        return replace(frame, pixels=upscaler.upscale(frame.pixels, outscale))

    try:
        for _ in overlap(decoded, upscale, encoder.write):
            tick()
        encoder.close()
    except BaseException:  # Ctrl-C included: the segment is redone by the next run
        encoder.abort()
        temp.unlink(missing_ok=True)
        raise
    parts.finish(segment.index, temp, SegmentRecord(decoded.count, decoded.damage))


def _finish(prepared: _Prepared, source: Path, failures: list[str]) -> VideoOutcome:
    """Rank 0, after every rank is done: join the segments (up to the first damage), or report what failed."""
    parts = Parts(prepared.target, prepared.settings)
    resumed = len(prepared.segments) - len(prepared.todo)
    outcome = VideoOutcome(
        source, prepared.target, False, 0, len(prepared.segments), resumed, notes=tuple(prepared.notes)
    )
    records = [parts.record(s.index) for s in prepared.segments]
    if failures or any(record is None for record in records):
        return replace(outcome, failed=tuple(failures) or ("a segment was not finished",))
    kept: list[Segment] = []
    frames = 0
    damage = prepared.info.damage
    for segment, record in zip(prepared.segments, records, strict=True):
        assert record is not None
        if record.frames:
            kept.append(segment)
        frames += record.frames
        if record.damage is not None:  # decoding broke off inside this segment: nothing after it
            damage = record.damage
            break
    if damage is not None:
        damage = replace(damage, frames=frames)  # the frames actually decoded before it
    if not kept:
        raise VideoError(f"{source}: no frame could be decoded" + (f" ({damage.describe()})" if damage else ""))
    join(prepared.info, parts, kept, prepared.target, damage)
    parts.remove(prepared.segments)
    return replace(outcome, written=True, frames=frames, damage=damage)


def _span(info: VideoInfo, segment: Segment) -> str:
    start = info.frame_pts[0] if segment.start is None else segment.start
    end = "end" if segment.end is None else clock(float(segment.end * info.time_base))
    return f"{clock(float(start * info.time_base))}–{end}"
