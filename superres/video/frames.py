"""Frames as RGB arrays, out of a video and back into one (PyAV: FFmpeg's codecs and swscale).

:func:`decode` gives the frames of one stretch of the video, each as an H×W×3 array the engine takes
(uint8, or uint16 for sources deeper than 8 bits), with its timestamp. :class:`SegmentEncoder` turns
the upscaled arrays back into the output's pixel format and codec, each frame with the timestamp of
its source frame, so variable frame rates survive as they were.

Colour conversion both ways uses the source's matrix and range (:class:`~superres.video.probe.Colour`),
with swscale's accurate rounding and full chroma interpolation: a YUV 4:2:0 frame and its RGB differ
by the rounding of the format, not by a shifted hue or range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superres.errors import ConfigError, VideoError
from superres.video import require_av
from superres.video.probe import Damage, VideoInfo, ffmpeg_log, reason


@dataclass(frozen=True)
class Codec:
    """An output codec: its FFmpeg encoder and how superres sets it up."""

    encoder: str
    crf: int | None  # default constant-quality level; None: lossless, no CRF
    crf_max: int  # the codec's worst
    pix_fmts: tuple[str, str]  # default pixel format for 8-bit sources, and for deeper ones
    # Segments are written in a container that keeps the encoder's timestamps as they are, so that
    # joining them copies packets and changes no timestamp: MP4 stores decoding and presentation times
    # of reordered (B-)frames in the stream's own time base; FFV1 has no reordering, Matroska holds it.
    segment_format: str = "mp4"
    options: dict[str, str] = field(default_factory=dict)


# CRFs: x264's 18 is "visually lossless" (x264 docs); x265's 20 and SVT-AV1's and libvpx's 30 are about
# the same quality. FFV1 is lossless (RFC 9043); version 3 with slice CRCs is the archival setting.
CODECS = {
    "h264": Codec("libx264", 18, 51, ("yuv420p", "yuv420p10le")),
    "h265": Codec("libx265", 20, 51, ("yuv420p", "yuv420p10le"), options={"x265-params": "log-level=error"}),
    "av1": Codec("libsvtav1", 30, 63, ("yuv420p", "yuv420p10le")),
    "vp9": Codec("libvpx-vp9", 30, 63, ("yuv420p", "yuv420p10le"), options={"row-mt": "1"}),
    "ffv1": Codec("ffv1", None, 0, ("bgr0", "gbrp16le"), "matroska", {"level": "3", "slicecrc": "1"}),
}

# swscale flags for every conversion: accurate rounding, chroma interpolated at full resolution
_SWS_FLAGS = ("BICUBIC", "ACCURATE_RND", "FULL_CHR_H_INT", "FULL_CHR_H_INP")


@dataclass(frozen=True)
class EncodeSettings:
    """What the output's video stream is: codec, quality, pixel format (see :func:`encode_settings`)."""

    codec: str
    crf: int | None
    pix_fmt: str

    @property
    def rgb(self) -> bool:
        return self.pix_fmt.startswith(("gbr", "bgr", "rgb"))


def encode_settings(
    info: VideoInfo, size: tuple[int, int], codec: str = "h264", crf: int | None = None, pix_fmt: str | None = None
) -> EncodeSettings:
    """The settings for an output of ``size`` (width, height) from ``info``, checked against what the
    encoder supports: 10-bit and deeper sources stay 10-bit (16-bit RGB in FFV1) unless ``pix_fmt`` says
    otherwise."""
    av = require_av()
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    spec = CODECS[codec]
    try:
        supported = [f.name for f in av.Codec(spec.encoder, "w").video_formats or ()]
    except av.FFmpegError:
        raise ConfigError(f"--codec {codec}: this FFmpeg has no {spec.encoder} encoder") from None
    chosen = pix_fmt or spec.pix_fmts[info.deep]
    if chosen not in supported:
        raise ConfigError(f"--pix-fmt {chosen}: {spec.encoder} takes {', '.join(supported)}")
    if crf is not None and spec.crf is None:
        raise ConfigError(f"--crf does not apply to {codec}, which is lossless")
    if crf is not None and not 0 <= crf <= spec.crf_max:
        raise ConfigError(f"--crf {crf}: {codec} takes 0 (best) to {spec.crf_max}")
    layout = av.VideoFormat(chosen)
    step = (1024 // layout.chroma_width(1024), 1024 // layout.chroma_height(1024))  # chroma subsampling
    if size[0] % step[0] or size[1] % step[1]:
        raise ConfigError(
            f"the output would be {size[0]}×{size[1]}, but {chosen} needs sizes that are multiples of "
            f"{step[0]}×{step[1]}; choose another --outscale, or --pix-fmt yuv444p"
        )
    return EncodeSettings(codec, crf if crf is not None else spec.crf, chosen)


def _sws(av: Any) -> Any:
    flags = av.video.reformatter.Interpolation
    combined = flags[_SWS_FLAGS[0]]
    for name in _SWS_FLAGS[1:]:
        combined |= flags[name]
    return combined


@dataclass(frozen=True)
class Frame:
    pts: int
    pixels: np.ndarray  # H×W×3, uint8 or uint16


class Decoded:
    """The frames with ``start <= pts < end`` (``None``: open), as an iterator; ``damage`` is set when
    decoding broke off before ``end`` (the frames before it are all given)."""

    def __init__(self, info: VideoInfo, start: int | None, end: int | None) -> None:
        self.info, self.start, self.end = info, start, end
        self.damage: Damage | None = None
        self.count = 0

    def __iter__(self) -> Iterator[Frame]:
        av = require_av()
        try:
            yield from self._frames(av, seek=self.start is not None)
        except _SeekMissed:
            yield from self._frames(av, seek=False)  # decode from the start and skip up to ``start``

    def _frames(self, av: Any, seek: bool) -> Iterator[Frame]:
        info = self.info
        with ffmpeg_log(av), av.open(str(info.path)) as container:
            # One decoding thread. With FFmpeg's frame threads, a worker that logs (a damaged stream) while
            # PyAV's log capture is on needs the GIL, which the reading thread holds while closing the
            # decoder and waiting for that worker: a deadlock seen in CI-sized runs. Decoding is ~1 % of
            # a frame's time here (bench/bench_video.py), so the threads bought nothing.
            stream = container.streams[info.stream]
            if seek:
                container.seek(self.start, stream=stream, backward=True)
            last_end = None
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        if frame.pts is None or (self.start is not None and frame.pts < self.start):
                            continue  # before this stretch (an open GOP's leading frames, or before a seek point)
                        if seek and self.count == 0 and frame.pts > self.start:
                            raise _SeekMissed
                        if self.end is not None and frame.pts >= self.end:
                            return
                        self.count += 1
                        last_end = frame.pts + (frame.duration or 0)
                        yield Frame(frame.pts, to_array(av, frame, info))
            except av.FFmpegError as err:
                seconds = float((last_end or self.start or 0) * info.time_base)
                self.damage = Damage(seconds, self.count, reason(err))


class _SeekMissed(Exception):
    """The demuxer landed after the segment's first keyframe (a sparse or missing index)."""


def to_array(av: Any, frame: Any, info: VideoInfo) -> np.ndarray:
    """A decoded frame as RGB: uint8, or uint16 where the source has more than 8 bits."""
    target = "rgb48le" if info.deep else "rgb24"
    colour = info.colour
    if colour.matrix is None:
        return frame.to_ndarray(format=target, interpolation=_sws(av))
    ranges = av.video.reformatter.ColorRange
    return frame.to_ndarray(
        format=target,
        src_colorspace=colour.matrix,
        src_color_range=ranges.JPEG if colour.full_range else ranges.MPEG,
        dst_color_range=ranges.JPEG,
        interpolation=_sws(av),
    )


class SegmentEncoder:
    """Encodes upscaled RGB frames into one segment file (``close`` flushes; ``abort`` leaves it half)."""

    def __init__(self, path: Path, info: VideoInfo, settings: EncodeSettings, width: int, height: int) -> None:
        av = self._av = require_av()
        spec = CODECS[settings.codec]
        self.info, self.settings = info, settings
        try:
            self.container = av.open(str(path), "w", format=spec.segment_format)
        except (av.FFmpegError, OSError) as err:
            raise VideoError(f"{path}: cannot write ({reason(err)})") from None
        stream = self.container.add_stream(spec.encoder, rate=info.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        context = stream.codec_context
        context.time_base = stream.time_base = info.time_base  # each frame keeps its source's timestamp
        context.bit_rate = 0  # constant quality, not a bit rate
        if info.sample_aspect:
            context.sample_aspect_ratio = info.sample_aspect
        colour = info.colour
        context.color_primaries, context.color_trc = colour.primaries, colour.trc
        context.colorspace = 0 if settings.rgb else colour.space
        context.color_range = 2 if settings.rgb or colour.full_range else 1
        if info.display_matrix is not None:
            stream.set_display_matrix(info.display_matrix)
        options = dict(spec.options)
        if settings.crf is not None:
            options["crf"] = str(settings.crf)
        stream.options = options
        self.stream = stream
        ranges = av.video.reformatter.ColorRange
        self._range = ranges.JPEG if settings.rgb or colour.full_range else ranges.MPEG

    def write(self, frame: Frame) -> None:
        av = self._av
        pixels = frame.pixels
        source = "rgb48le" if pixels.dtype == np.uint16 else "rgb24"
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=source)
        if self.settings.rgb:
            picture = picture.reformat(format=self.settings.pix_fmt, interpolation=_sws(av))
        else:
            picture = picture.reformat(
                format=self.settings.pix_fmt,
                dst_colorspace=self.info.colour.matrix,
                dst_color_range=self._range,
                interpolation=_sws(av),
            )
        picture.pts, picture.time_base = frame.pts, self.info.time_base
        self._mux(picture)

    def close(self) -> None:
        self._mux(None)  # flush the encoder's delayed frames
        self.container.close()

    def abort(self) -> None:
        self.container.close()

    def _mux(self, picture: Any) -> None:
        try:
            for packet in self.stream.encode(picture):
                self.container.mux(packet)
        except self._av.FFmpegError as err:
            raise VideoError(f"{self.settings.codec} encoder: {reason(err)}") from None
