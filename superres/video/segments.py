"""The output in segments: what lets a run resume, and torchrun share one video among processes.

The video is cut at source keyframes, every ``seconds`` or so (:func:`plan_segments`); a decoder can
start at a keyframe, so each segment is decoded, upscaled and encoded on its own. Beside the output
``OUT`` a folder ``OUT.parts/`` holds::

    plan.json      the source (size, mtime), the settings, and the segments [start, end, frames]
    00003.mp4      a finished segment: video only, encoded with the source's timestamps
    00003.json     its record (frames, damage): written after the segment, it marks the segment done

Both files of a segment appear atomically (temp file + rename), so an interrupted run leaves finished
segments and nothing half-written that looks finished. A rerun with the same plan skips the finished
ones. :func:`join` then copies the segments' packets and the source's other streams (audio, subtitles,
data) into the output — no re-encoding, timestamps as they are — and renames it into place.
"""

from __future__ import annotations

import bisect
import heapq
import io
import itertools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from superres.errors import ConfigError, VideoError
from superres.video import require_av
from superres.video.frames import CODECS, EncodeSettings
from superres.video.probe import Damage, VideoInfo, reason

SEGMENT_SECONDS = 10.0

# Output containers by extension (FFmpeg muxer names)
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Tags muxers write themselves; copying the source's would describe the source's file, not ours
_MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "handler_name"}


@dataclass(frozen=True)
class Segment:
    index: int
    start: int | None  # timestamp of its first frame (a keyframe); None: from the first frame
    end: int | None  # timestamp of the next segment's first frame; None: to the last frame
    frames: int


@dataclass(frozen=True)
class SegmentRecord:
    frames: int
    damage: Damage | None = None


def plan_segments(info: VideoInfo, seconds: float = SEGMENT_SECONDS) -> list[Segment]:
    """Cut at the first keyframe at least ``seconds`` after the previous cut."""
    if seconds <= 0:
        raise ConfigError(f"segments must be longer than 0 s, not {seconds:g}")
    ticks = seconds / info.time_base
    cuts: list[int] = []
    previous = info.frame_pts[0]
    for key in info.keyframes:
        if key - previous >= ticks:
            cuts.append(key)
            previous = key
    bounds: list[int | None] = [None, *cuts, None]
    segments = []
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        first = 0 if start is None else bisect.bisect_left(info.frame_pts, start)
        last = len(info.frame_pts) if end is None else bisect.bisect_left(info.frame_pts, end)
        segments.append(Segment(index, start, end, last - first))
    return segments


def output_format(target: Path, settings: EncodeSettings) -> str:
    """The muxer for ``target``, which must hold the codec (FFV1: Matroska only)."""
    fmt = CONTAINERS.get(target.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{target}: write video as {', '.join(CONTAINERS)}")
    if settings.codec == "ffv1" and fmt != "matroska":
        raise ConfigError(f"{target}: FFV1 goes into Matroska; name the output .mkv")
    return fmt


def parts_folder(target: Path) -> Path:
    """Where the segments of ``target`` are kept until they are joined."""
    return target.parent / f"{target.name}.parts"


class Parts:
    """The folder of one output's segments (see the module docstring)."""

    def __init__(self, target: Path, settings: EncodeSettings) -> None:
        self.folder = parts_folder(target)
        self.suffix = ".mkv" if CODECS[settings.codec].segment_format == "matroska" else ".mp4"

    def media(self, index: int) -> Path:
        return self.folder / f"{index:05d}{self.suffix}"

    def record(self, index: int) -> SegmentRecord | None:
        """The segment's record once it is finished, else None."""
        path = self.folder / f"{index:05d}.json"
        if not path.is_file():
            return None
        data = _read_json(path)
        try:
            damage = Damage(**data["damage"]) if data.get("damage") else None
            record = SegmentRecord(int(data["frames"]), damage)
        except (KeyError, TypeError, ValueError):
            raise VideoError(f"{path}: not a segment record of superres; delete {self.folder} to start over") from None
        return record if not record.frames or self.media(index).is_file() else None

    def start(self, plan: dict[str, Any]) -> None:
        """Make the folder for ``plan``, or check that the one there is for the same plan; remove what an
        interrupted run left half-written. Rank 0 alone calls it, before the others start."""
        path = self.folder / "plan.json"
        if path.is_file():
            held = _read_json(path)
            if held != plan:
                changed = sorted(
                    k
                    for k in {*held.get("settings", {}), *plan["settings"]}
                    if held.get("settings", {}).get(k) != plan["settings"].get(k)
                )
                what = f"other settings ({', '.join(changed)})" if changed else "another version of the source"
                raise VideoError(
                    f"{self.folder} holds segments made with {what}; rerun with the same settings, "
                    f"or delete it to start over"
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, json.dumps(plan, indent=1).encode())
        for leftover in self.folder.glob("*.part*"):
            leftover.unlink(missing_ok=True)

    def temp(self, index: int) -> Path:
        fd, name = tempfile.mkstemp(dir=self.folder, prefix=f"{index:05d}.", suffix=f".part{self.suffix}")
        os.fchmod(fd, 0o644)
        os.close(fd)
        return Path(name)

    def finish(self, index: int, temp: Path, record: SegmentRecord) -> None:
        """Put a finished segment in place: the media first, then the record that marks it done (a
        segment without frames, where the source broke off before it, has no media)."""
        if record.frames:
            os.replace(temp, self.media(index))
        else:
            temp.unlink(missing_ok=True)
        _write_atomic(self.folder / f"{index:05d}.json", json.dumps(asdict(record)).encode())

    def remove(self, segments: Iterable[Segment]) -> None:
        for segment in segments:
            self.media(segment.index).unlink(missing_ok=True)
            (self.folder / f"{segment.index:05d}.json").unlink(missing_ok=True)
        (self.folder / "plan.json").unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass  # something of the user's is in there: leave it


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VideoError(f"{path}: unreadable ({err}); delete {path.parent} to start over") from None
    if not isinstance(data, dict):
        raise VideoError(f"{path}: not a record of superres; delete {path.parent} to start over")
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the file private
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Joining


def check_streams(info: VideoInfo, settings: EncodeSettings, target: Path) -> list[str]:
    """Before any work: whether ``target``'s container holds the codec and the source's other streams.
    Returns warnings for data streams it cannot hold (they are left out); audio and subtitles that do
    not fit are an error."""
    av = require_av()
    fmt = output_format(target, settings)
    notes = []
    with av.open(str(info.path)) as source, av.open(io.BytesIO(), "w", format=fmt) as trial:
        try:
            trial.add_stream(CODECS[settings.codec].encoder)
        except ValueError:
            raise ConfigError(f"{target}: {fmt} cannot hold {settings.codec}; name the output .mkv") from None
        for stream in _other_streams(source, info):
            try:
                trial.add_stream_from_template(stream)
            except ValueError:
                codec = stream.codec_context.name if stream.codec_context else "?"
                what = f"{stream.type} stream #{stream.index} ({codec})"
                if stream.type in ("audio", "subtitle"):
                    raise ConfigError(
                        f"{target}: {fmt} cannot hold the {what} of {info.path.name}; name the output .mkv"
                    ) from None
                notes.append(f"{target.name}: the {what} is left out: {fmt} cannot hold it")
    return notes


def join(info: VideoInfo, parts: Parts, segments: list[Segment], target: Path, until: Damage | None) -> None:
    """Write ``target`` from the finished ``segments`` and the source's other streams (up to ``until``),
    atomically: nothing is at ``target`` until it is complete."""
    av = require_av()
    fmt = CONTAINERS[target.suffix.lower()]
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the output private
    os.close(fd)
    temp = Path(name)
    try:
        with av.open(str(info.path)) as source, av.open(str(temp), "w", format=fmt) as out:
            first = av.open(str(parts.media(segments[0].index)))
            with first:
                video = out.add_stream_from_template(first.streams.video[0])
                extradata = first.streams.video[0].codec_context.extradata
            _copy_tags(source.streams[info.stream], video)
            others = {}
            for stream in _other_streams(source, info):
                try:
                    others[stream.index] = out.add_stream_from_template(stream)
                except ValueError:
                    continue  # a data stream check_streams warned about
                _copy_tags(stream, others[stream.index])
            out.metadata.update({k: v for k, v in source.metadata.items() if k.lower() not in _MUXER_TAGS})
            if source.chapters():
                out.set_chapters(source.chapters())
            limit = None if until is None else until.seconds
            packets = heapq.merge(
                _timed(_segment_packets(av, parts, segments, extradata), 0),
                _timed(_source_packets(av, source, list(others), limit), 1),
                key=lambda item: item[:3],
            )
            last_dts = None
            for _, origin, _, packet in packets:
                if origin == 0:
                    last_dts = _monotonic(packet, last_dts)
                    packet.stream = video
                else:
                    packet.stream = others[packet.stream.index]
                out.mux(packet)
        os.replace(temp, target)
    except av.FFmpegError as err:
        raise VideoError(f"{target}: cannot write ({reason(err)})") from None
    finally:
        temp.unlink(missing_ok=True)


def _other_streams(source: Any, info: VideoInfo) -> list[Any]:
    """Everything but the upscaled video that has packets to copy (cover pictures, audio, subtitles, data)."""
    return [s for s in source.streams if s.index != info.stream and s.type in ("video", "audio", "subtitle", "data")]


def _copy_tags(source: Any, target: Any) -> None:
    target.metadata.update({k: v for k, v in source.metadata.items() if k.lower() not in _MUXER_TAGS})
    target.disposition = source.disposition


def _segment_packets(av: Any, parts: Parts, segments: list[Segment], extradata: bytes | None) -> Iterator[Any]:
    for segment in segments:
        with av.open(str(parts.media(segment.index))) as container:
            stream = container.streams.video[0]
            if stream.codec_context.extradata != extradata:
                raise VideoError(
                    f"{parts.media(segment.index)}: encoded with other codec headers than the first segment "
                    f"(another FFmpeg?); delete {parts.folder} to start over"
                )
            for packet in container.demux(stream):
                if packet.size:
                    yield packet


def _source_packets(av: Any, source: Any, indices: list[int], limit: float | None) -> Iterator[Any]:
    """The source's packets of ``indices`` before ``limit`` (seconds), up to where the file is readable."""
    if not indices:
        return
    try:
        for packet in source.demux([source.streams[i] for i in indices]):
            if packet.size == 0:
                continue
            if limit is not None and packet.pts is not None and packet.pts * packet.time_base >= limit:
                continue  # after the damage, where the video stops
            yield packet
    except av.FFmpegError:
        return  # damaged there: the video's own damage, found and reported by the probe or the decoder


def _timed(packets: Iterator[Any], order: int) -> Iterator[tuple[float, int, int, Any]]:
    """(decoding time in seconds, which input, sequence, packet), for merging inputs in time order."""
    seconds = float("-inf")
    for sequence, packet in enumerate(packets):
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None:
            seconds = float(stamp * packet.time_base)
        yield seconds, order, sequence, packet


def _monotonic(packet: Any, last_dts: int | None) -> int | None:
    """Keep decoding times increasing across segments. Each segment's encoder starts its decoding times
    early by its reordering delay; with a variable frame rate that can reach back past the previous
    segment's last one. Returns this packet's dts."""
    if packet.dts is None:
        return last_dts
    if last_dts is not None and packet.dts <= last_dts:
        if packet.pts is not None and packet.pts <= last_dts:
            raise VideoError("segments overlap in time; delete the .parts folder and start over")
        packet.dts = last_dts + 1
    return packet.dts
