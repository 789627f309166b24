"""Errors a user can fix. The CLI prints them as one line and exits non-zero; no traceback."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager


class SuperresError(Exception):
    """Base class: the message says what was wrong and, where possible, what to do."""


class WeightsError(SuperresError):
    """A weights file could not be read, is unsafe, or has a layout we do not recognise."""


class ImageError(SuperresError):
    """An image could not be read or written."""


class PixelLimitError(ImageError):
    """An image has more pixels than the limit allows (a decompression bomb, or a limit to raise)."""


class ConfigError(SuperresError):
    """A configuration (preset, YAML, key=value override) is invalid."""


class VideoError(SuperresError):
    """A video could not be read, upscaled or joined (not a video, no video stream, damaged, unknown codec)."""


class DownloadError(SuperresError):
    """A file could not be downloaded, or did not verify; the message says how to get it by hand."""


class DatasetError(SuperresError):
    """A dataset is missing, incomplete or unsafe; the message names the command that fixes it."""


@contextmanager
def about(path: str | os.PathLike[str]) -> Iterator[None]:
    """Make what goes wrong inside the block an error about ``path``, one file of a batch.

    A :class:`SuperresError` whose message does not name ``path`` gets it as a prefix; running out of
    memory (``MemoryError``, from NumPy or Python) becomes a :class:`SuperresError` for that file, so a
    batch reports it and goes on with the next file instead of ending with a traceback.
    """
    name = os.fspath(path)
    try:
        yield
    except SuperresError as err:
        if name in str(err):
            raise
        named = copy.copy(err)
        named.args = (f"{name}: {err}",)
        raise named from None
    except MemoryError:
        raise SuperresError(f"{name}: out of memory (free memory; for images, a smaller --tile helps)") from None
