"""Video: every frame through the engine, everything else kept as it was, resumable, spread over GPUs.

``superres upscale clip.mp4 -o big.mp4`` decodes the frames, upscales each one as the image path
would, and encodes them again; audio, subtitle and data streams are copied packet for packet, and
timestamps (variable frame rate included), rotation and colour tags are kept. The output is made in
segments that start at the source's keyframes, so an interrupted run continues where it stopped
and ``torchrun`` can give each process its own segments.

* :mod:`~superres.video.probe` — what the file holds: streams, keyframes, colour, damage.
* :mod:`~superres.video.frames` — frames to RGB arrays and back (PyAV, with the FFmpeg it bundles).
* :mod:`~superres.video.segments` — the plan, the progress record, and joining without re-encoding.
* :mod:`~superres.video.transcode` — :func:`upscale_video`, decoder → network → encoder in three threads.

PyAV is an optional dependency: ``pip install 'superres[video]'``. Nothing here is imported by
``import superres``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from superres.errors import ConfigError

# Containers superres treats as video when they are given as inputs (the content is probed anyway).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv", ".flv"}
    | {".3gp", ".ogv", ".nut", ".mxf"}
)


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video by its extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def require_av() -> ModuleType:
    """PyAV, or a :class:`ConfigError` that says how to install it."""
    try:
        import av
    except ImportError:
        raise ConfigError("video needs PyAV, which bundles FFmpeg: pip install 'superres[video]'") from None
    return av
