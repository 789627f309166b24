"""What a video file holds, read before any frame is upscaled.

:func:`probe` opens the file, picks the video stream to upscale, decodes its first frame (which proves a
decoder exists and tells the pixel format, colour tags and rotation the decoder reports) and then reads
every packet of that stream without decoding it: the timestamps of all frames and which ones are
keyframes, the points where the output may be cut into segments (:mod:`superres.video.segments`).
Reading packets costs little next to upscaling (a disk read of the file, no decoding).

The same pass finds damage: a demuxer error, FFmpeg reporting one (``File ended prematurely``), or a
stream that stops short of the duration its container declares. Frames up to the damage are upscaled;
the caller is told where it is.

**Colour.** Frames go to the network as RGB, so YUV needs a matrix and a range. Where the source
tags them they are used; where it does not, the matrix is what players assume (BT.709 from 720 lines
up, BT.601 below; ITU-R BT.709-6, BT.601-7) and the range is limited. The output is tagged with the
matrix actually used, so an SD source that becomes HD after ×4 does not change colour when a player
would otherwise switch to BT.709 for it.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from superres.errors import VideoError
from superres.video import require_av

# AVColorSpace → the matrix swscale knows it by (libavutil/pixfmt.h, libswscale/swscale.h)
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
_MATRIX_TAGS = {"ITU709": 1, "FCC": 4, "ITU601": 6, "SMPTE240M": 7, "BT2020": 9}
RGB_SPACE = 0  # AVCOL_SPC_RGB
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True)
class Colour:
    """How the source's samples become RGB, and the tags its output carries (FFmpeg's enums)."""

    matrix: str | None  # swscale's name for the YUV matrix; None: the frames are RGB already
    full_range: bool
    space: int  # AVColorSpace of ``matrix`` (RGB_SPACE for RGB frames)
    primaries: int  # AVColorPrimaries, copied (2: unspecified)
    trc: int  # AVColorTransferCharacteristic, copied


@dataclass(frozen=True)
class Damage:
    """Where the video stream breaks off: frames before it are upscaled, none after."""

    seconds: float  # where the last good frame ends
    frames: int  # frames before the damage
    reason: str

    def describe(self) -> str:
        return f"damaged or truncated at {clock(self.seconds)} (after frame {self.frames}): {self.reason}"


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    stream: int  # index of the video stream that is upscaled
    codec: str
    width: int
    height: int
    pix_fmt: str
    deep: bool  # more than 8 bits per sample
    time_base: Fraction
    rate: Fraction  # average frame rate, for encoders' rate control (timestamps are kept as they are)
    sample_aspect: Fraction | None
    display_matrix: tuple[int, ...] | None  # rotation/flip, as FFmpeg's 3×3 fixed-point matrix
    colour: Colour
    frame_pts: tuple[int, ...]  # every frame's timestamp, in presentation order
    keyframes: tuple[int, ...]  # timestamps of the keyframes, where decoding may start
    damage: Damage | None

    @property
    def frames(self) -> int:
        return len(self.frame_pts)


def clock(seconds: float) -> str:
    """``1:02:03.450`` / ``2:03.450``."""
    minutes, rest = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:06.3f}" if hours else f"{minutes}:{rest:06.3f}"


def probe(path: str | Path) -> VideoInfo:
    """Read what ``path`` holds (see the module docstring); :class:`VideoError` says what is wrong with it."""
    av = require_av()
    path = Path(path)
    with _open(av, path) as container:
        stream = _video_stream(av, path, container)
        first = _first_frame(av, path, container, stream)
        side_data = {entry.type.name: bytes(entry) for entry in first.side_data}
        matrix = side_data.get("DISPLAYMATRIX")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        described = {
            "path": path,
            "stream": stream.index,
            "codec": stream.codec_context.name,
            "width": first.width,
            "height": first.height,
            "pix_fmt": first.format.name,
            "deep": any(component.bits > 8 for component in first.format.components),
            "time_base": stream.time_base,
            "rate": Fraction(rate),
            "sample_aspect": stream.codec_context.sample_aspect_ratio,
            "display_matrix": _matrix(matrix) if matrix is not None and len(matrix) == 36 else None,
            "colour": _colour(first),
        }
    with _open(av, path) as container:  # the scan reads from the start (seeking back is not exact everywhere)
        frame_pts, keyframes, damage = _scan(av, container, container.streams[described["stream"]])
    if not frame_pts:
        raise VideoError(f"{path}: its video stream has no frames")
    return VideoInfo(**described, frame_pts=tuple(frame_pts), keyframes=tuple(keyframes), damage=damage)


def _matrix(data: bytes) -> tuple[int, ...]:
    """FFmpeg's display matrix: 9 little-endian int32 (16.16 fixed point, the last column 2.30)."""
    return tuple(int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, 36, 4))


def _open(av: Any, path: Path) -> Any:
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        with ffmpeg_log(av):
            return av.open(str(path))
    except av.FFmpegError as err:
        raise VideoError(f"{path}: not a video file FFmpeg can read ({reason(err)})") from None


@contextmanager
def ffmpeg_log(av: Any) -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's errors in this thread while the block runs, as (level, component, message), none printed;
    errors raised meanwhile carry the last one (``err.log``)."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # PyAV passes nothing on below its level (by default: nothing)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(level)


def reason(err: Exception) -> str:
    """FFmpeg's message, without errno and file name, with its last logged error."""
    text = getattr(err, "strerror", None) or str(err)
    log = getattr(err, "log", None)
    if log:
        text += f": {str(log[-1]).strip()}"
    return text


def _video_stream(av: Any, path: Path, container: Any) -> Any:
    """The first video stream that is not a cover picture; its codec must be one FFmpeg can decode."""
    cover = av.stream.Disposition.attached_pic
    videos = [s for s in container.streams.video if not s.disposition & cover]
    if not videos:
        kinds = sorted({s.type for s in container.streams if s.type != "video"}) or ["nothing"]
        raise VideoError(f"{path}: has no video stream (it holds {', '.join(kinds)})")
    stream = videos[0]
    if stream.codec_context is None:
        raise VideoError(f"{path}: its video stream is in a codec this FFmpeg cannot decode")
    return stream


def _first_frame(av: Any, path: Path, container: Any, stream: Any) -> Any:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as err:
        raise VideoError(f"{path}: its first video frame cannot be decoded ({reason(err)})") from None
    raise VideoError(f"{path}: no video frame could be decoded")


def _scan(av: Any, container: Any, stream: Any) -> tuple[list[int], list[int], Damage | None]:
    """Timestamps of all frames and of the keyframes (sorted), and the damage if the stream breaks off."""
    frame_pts: list[int] = []
    keyframes: list[int] = []
    end = None  # where the last good packet ends
    problem = None
    with ffmpeg_log(av) as logs:
        try:
            for packet in container.demux(stream):
                pts = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or pts is None:
                    continue
                if packet.is_corrupt:
                    problem = "a corrupt packet"
                    break
                frame_pts.append(pts)
                if packet.is_keyframe:
                    keyframes.append(pts)
                end = max(end or pts, pts + (packet.duration or 0))
        except av.FFmpegError as err:
            problem = reason(err)
    frame_pts.sort()
    keyframes.sort()
    if problem is None and logs:
        problem = str(logs[-1][-1]).strip()
    if problem is None and end is not None:
        problem = _short_of_declared(container, stream, frame_pts, end)
    if problem is None or not frame_pts:
        return frame_pts, keyframes, None
    return frame_pts, keyframes, Damage(float((end or 0) * stream.time_base), len(frame_pts), problem)


def _short_of_declared(container: Any, stream: Any, frame_pts: list[int], end: int) -> str | None:
    """A message when the stream ends more than a frame before the duration its container declares."""
    declared = stream.duration
    if declared is None:
        tag = stream.metadata.get("DURATION")  # Matroska writes it per track
        if tag is None:
            return None
        hours, minutes, seconds = tag.split(":")
        declared = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) / stream.time_base)
    start = stream.start_time or 0
    gaps = [b - a for a, b in itertools.pairwise(frame_pts)] or [0]
    if end - start < declared - 1.5 * statistics.median(gaps):
        return f"the stream ends before the {float(declared * stream.time_base):.3f} s its container declares"
    return None


def _colour(frame: Any) -> Colour:
    if frame.format.is_rgb:
        return Colour(None, True, RGB_SPACE, frame.color_primaries, frame.color_trc)
    matrix = _MATRICES.get(frame.colorspace) or ("ITU709" if frame.height >= 720 else "ITU601")
    full = frame.color_range == _FULL_RANGE or frame.format.name.startswith("yuvj")
    return Colour(matrix, full, _MATRIX_TAGS[matrix], frame.color_primaries, frame.color_trc)
