"""The data home: one folder per dataset, found by name by ``train``, ``eval`` and ``superres data``.

``$SUPERRES_DATA`` if set, else the platform's user cache folder for superres (``~/.cache/superres/
datasets`` on Linux, via platformdirs). A dataset is ``<home>/<Name>/`` holding ``HR/`` and, where
made or fetched, ``LR_bicubic/X<s>/`` and the prepared sub-images ``sub/``; ``dataset.json`` (the
manifest) records where it came from and the SHA-256 of every file, for ``superres data verify``.
A folder that someone laid out by hand with an ``HR/`` inside counts as installed too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superres.errors import DatasetError

DATA_ENV = "SUPERRES_DATA"
MANIFEST = "dataset.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def data_home() -> Path:
    explicit = os.environ.get(DATA_ENV)
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("superres", appauthor=False) / "datasets"


def check_name(name: str) -> str:
    """A dataset name is one folder name: letters, digits and ``_ . + -``, not starting with a dot."""
    if not _NAME.fullmatch(name):
        raise DatasetError(f"{name!r} cannot name a dataset: use letters, digits and _ . + - (e.g. MyPhotos)")
    return name


def dataset_dir(name: str, home: Path | None = None) -> Path:
    return (home or data_home()) / check_name(name)


def is_installed(folder: Path) -> bool:
    return (folder / "HR").is_dir()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    return read_json_or_none(folder / MANIFEST)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically: a reader sees the old file or the new one, never half of one."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path`` that no other process picks (files made under it get the usual permissions)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def staging_dir(home: Path, name: str) -> Path:
    """A new hidden folder in the data home where a dataset is built before it is renamed into place."""
    folder = temporary_name(home / name)
    folder.mkdir(parents=True)
    return folder


def missing_message(name: str, home: Path, alternative: str) -> str:
    """The one line for a dataset that is not there, naming the command that installs it."""
    from superres.datasets import catalog

    info = catalog.find(name)
    if info is None:
        return f"no dataset {name!r} in {home}; add your images with `superres data add {name} PATH`, or {alternative}"
    if info.manual:
        return f"{info.name} is not installed in {home}; {info.manual}, or {alternative}"
    return (
        f"{info.name} is not installed in {home}; run `superres data fetch {info.name}` ({info.size_text}) "
        f"or {alternative}"
    )


def require(name: str, home: Path | None = None, alternative: str = "pass data.root=…") -> Path:
    """The folder of dataset ``name`` in the data home, or a :class:`DatasetError` naming the fix."""
    from superres.datasets import catalog

    home = home or data_home()
    info = catalog.find(name)
    folder = home / (info.name if info is not None else check_name(name))
    if not is_installed(folder):
        raise DatasetError(missing_message(name, home, alternative))
    return folder


# ---------------------------------------------------------------------------- for training


@dataclass(frozen=True)
class ImageSource:
    """Where training images come from: HR images, and LR images of the same names when paired."""

    hr: Path
    lr: Path | None = None
    prepared: bool = False  # sub-images from `superres data prepare`


def locate(entry: str, root: str | Path | None) -> Path:
    """The folder ``entry`` of ``data.train`` / ``data.val`` names: a dataset name or a path.

    Absolute paths are used as they are; anything else is looked up under ``root`` (the data home
    when ``root`` is None) and, when no root was given and nothing is there, in the working folder.
    """
    path = Path(entry).expanduser()
    if path.is_absolute():
        if not path.is_dir():
            raise DatasetError(f"image folder not found: {path}")
        return path
    base = Path(root).expanduser() if root is not None else data_home()
    if (base / path).is_dir():
        return base / path
    if root is None and path.is_dir():
        return path
    if len(path.parts) == 1:
        from superres.datasets import catalog

        info = catalog.find(entry)
        if info is not None and (base / info.name).is_dir():
            return base / info.name
        alternative = "pass data.root=… or a path" if root is None else "check data.root"
        raise DatasetError(missing_message(entry, base, alternative))
    raise DatasetError(f"image folder not found: {base / path}")


def training_source(entry: str, root: str | Path | None, scale: int) -> ImageSource:
    """HR images for training: prepared sub-images (paired with their ×``scale`` LR) when there, else whole images."""
    folder = locate(entry, root)
    if not is_installed(folder):
        return ImageSource(folder)  # a plain folder of images
    sub = folder / "sub"
    prepared = read_json_or_none(sub / "prepared.json")
    if prepared is not None and scale in prepared.get("scales", ()):
        return ImageSource(sub / "HR", sub / "LR_bicubic" / f"X{scale}", prepared=True)
    return ImageSource(folder / "HR")


def read_json_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def overview(home: Path | None = None) -> list[dict[str, Any]]:
    """One row per known dataset and per dataset added by the user: what it is and whether it is here."""
    from superres.datasets import catalog

    home = home or data_home()
    rows = []
    for info in catalog.CATALOG:
        folder = home / info.name
        rows.append({
            "name": info.name, "description": info.description, "images": info.images, "size": info.size_text,
            "licence": info.licence, "source": info.archives_for(info.default_scales)[0].url if info.folders
            else info.homepage, "installed": _installed_folders(folder), "path": str(folder),
        })  # fmt: skip
    known = {info.name for info in catalog.CATALOG}
    for folder in sorted(home.iterdir()) if home.is_dir() else ():
        if folder.name not in known and not folder.name.startswith(".") and is_installed(folder):
            rows.append({
                "name": folder.name, "description": "added by you", "images": None, "size": "", "licence": "",
                "source": ", ".join((read_manifest(folder) or {}).get("folders", {}).values())[:80],
                "installed": _installed_folders(folder), "path": str(folder),
            })  # fmt: skip
    return rows


def _installed_folders(folder: Path) -> list[str]:
    """``["HR", "X2", "X4", "sub"]``: what of the dataset is here."""
    if not is_installed(folder):
        return []
    lr = sorted((folder / "LR_bicubic").glob("X*"), key=lambda p: p.name)
    prepared = ["sub"] if (folder / "sub" / "prepared.json").is_file() else []
    return ["HR", *(p.name for p in lr), *prepared]
