"""Errors a user can fix. The CLI prints them as one line and exits non-zero; no traceback."""


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
