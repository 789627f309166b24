"""Image files of a dataset: finding them, writing them atomically, hashing them for the manifest."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})


def image_files(folder: Path) -> list[Path]:
    """All images below ``folder`` (recursively, links followed), sorted the same on every machine."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def save_png(path: Path, pixels: np.ndarray) -> None:
    """Write ``pixels`` (uint8, H×W or H×W×3) as PNG through a temporary file, so ``path`` is whole or absent."""
    from PIL import Image

    from superres.datasets.home import temporary_name

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(np.ascontiguousarray(pixels)).save(f, format="PNG", compress_level=1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_images(files: Iterable[Path], source: Path, target: Path) -> None:
    """Copy image files (contents only: a read-only source gives a writable copy), keeping their relative paths."""
    for path in files:
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def file_hashes(folder: Path, paths: Iterable[Path], progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """``{path relative to folder (POSIX): sha256}`` for the manifest and ``superres data verify``."""
    from superres.models.download import sha256_file

    out = {}
    for path in paths:
        out[path.relative_to(folder).as_posix()] = sha256_file(path)
        if progress is not None:
            progress(1)
    return out
