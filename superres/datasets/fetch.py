"""``superres data fetch NAME…``: download, check, unpack and lay out the catalog's datasets.

Archives are downloaded by :func:`superres.models.download.fetch` into ``<home>/.downloads`` (resumable,
hash-checked), checked against the catalog's MD5 where that is the only hash on record, unpacked
safely into a hidden staging folder, and the folders the catalog names are moved into the
``HR`` / ``LR_bicubic/X<s>`` layout. Only then does the dataset appear, by one rename (or, when LR
folders are added to an installed dataset, one rename per folder, with the manifest written last),
so a fetch that is cut off never leaves something that looks installed. Running it again is cheap:
what is installed is reported as such, and a download cut off continues where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from superres.datasets import catalog
from superres.datasets.archives import extract
from superres.datasets.catalog import Archive, DatasetInfo, Folder
from superres.datasets.home import MANIFEST, data_home, is_installed, read_manifest, staging_dir, write_json
from superres.datasets.images import file_hashes, image_files
from superres.errors import DatasetError, DownloadError
from superres.models.download import offline


def fetch_datasets(
    names: Sequence[str],
    scales: Sequence[int] | None = None,
    home: Path | None = None,
    keep_archives: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Install the named datasets (group names too) in the data home; returns their folders.

    ``scales``: the LR folders to fetch as well, where the dataset publishes them (default: the
    catalog's choice — all of them for the small test sets, none for DIV2K and Flickr2K, whose LR
    training makes itself). Archives are deleted once used unless ``keep_archives``.
    """
    home = home or data_home()
    infos = catalog.expand(list(names))
    for info in infos:
        if info.explicit_only or info.manual:
            echo(f"{info.name}: {info.licence}")
        if info.manual and not is_installed(home / info.name):
            raise DatasetError(info.manual)
        for scale in scales or ():
            if scale not in info.scales:
                raise DatasetError(
                    f"{info.name} publishes no LR ×{scale} (it has {', '.join(f'×{s}' for s in info.scales)}); "
                    f"training makes LR from the HR images, and `superres data prepare {info.name}` stores it"
                )
    home.mkdir(parents=True, exist_ok=True)
    used: dict[Archive, Path] = {}  # downloaded once, even when several datasets share the archive
    folders = [
        _fetch_one(info, tuple(scales) if scales is not None else info.default_scales, home, used, progress, echo)
        for info in infos
    ]
    if not keep_archives:  # kept after a failure, so that the next try does not download them again
        for path in used.values():
            path.unlink(missing_ok=True)
    return folders


def _fetch_one(
    info: DatasetInfo,
    scales: tuple[int, ...],
    home: Path,
    used: dict[Archive, Path],
    progress: bool,
    echo: Callable[[str], None],
) -> Path:
    from filelock import FileLock

    folder = home / info.name
    (home / ".locks").mkdir(exist_ok=True)
    with FileLock(home / ".locks" / f"{info.name}.lock"):
        manifest = read_manifest(folder)
        if manifest is None and folder.exists():
            if is_installed(folder):
                echo(f"{info.name}: already in {folder} (laid out by hand; left as it is)")
                return folder
            raise DatasetError(f"{folder} exists but holds no dataset; move it away and fetch again")
        todo = [f for f in info.folders_for(scales) if f.target not in (manifest or {}).get("folders", {})]
        if not todo:
            echo(f"{info.name}: already installed in {folder}")
            return folder
        for f in todo:
            if (folder / f.target).exists():
                raise DatasetError(f"{folder / f.target} exists but is not in {folder / MANIFEST}; move it away")
        staging = staging_dir(home, info.name)
        try:
            origins = _stage(info, todo, staging, home, used, progress, echo)
            _check_counts(info, staging, folder)
            manifest = manifest or {"name": info.name, "folders": {}, "files": {}}
            manifest["folders"].update(origins)
            manifest["files"].update(file_hashes(staging, image_files(staging)))
            if not folder.exists():
                write_json(staging / MANIFEST, manifest)
                os.replace(staging, folder)
            else:
                for f in todo:
                    (folder / f.target).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / f.target, folder / f.target)
                write_json(folder / MANIFEST, manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    lr = ", ".join(f"×{f.scale}" for f in todo if f.scale) or "none"
    echo(f"{info.name}: installed in {folder} ({len(image_files(folder / 'HR'))} HR images; LR added: {lr})")
    return folder


def _stage(
    info: DatasetInfo,
    todo: list[Folder],
    staging: Path,
    home: Path,
    used: dict[Archive, Path],
    progress: bool,
    echo: Callable[[str], None],
) -> dict[str, str]:
    """Download and unpack what ``todo`` needs into ``staging`` as HR / LR_bicubic/X<s>; returns the origins."""
    origins = {}
    for archive in dict.fromkeys(f.archive for f in todo):
        folders = [f for f in todo if f.archive == archive]
        if archive not in used:
            if not offline() and not (home / ".downloads" / archive.filename).is_file():
                echo(f"{info.name}: downloading {archive.url} ({archive.size_text})")
            used[archive] = _download(archive, home, progress)
        unpacked = staging / ".unpacked"
        try:
            extract(used[archive], unpacked, [f.source for f in folders], progress)
        except DatasetError:
            used.pop(archive).unlink()  # damaged or unsafe: never used again
            raise
        for f in folders:
            source = unpacked / f.source
            if not source.is_dir() or not image_files(source):
                used.pop(archive).unlink()
                raise DatasetError(
                    f"{archive.filename} has no images in {f.source}/: it is not the archive the catalog describes"
                )
            (staging / f.target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, staging / f.target)
            origins[f.target] = f"{archive.url} ({f.source})"
        shutil.rmtree(unpacked)
    return origins


def _download(archive: Archive, home: Path, progress: bool) -> Path:
    """The archive in ``<home>/.downloads``, fetched if needed and checked by SHA-256, size and/or MD5."""
    from superres.models.download import fetch

    dest = home / ".downloads" / archive.filename
    try:
        path = fetch(archive.url, dest, archive.sha256, archive.size, progress=progress)
    except DownloadError as exc:
        if archive.md5 is None:
            raise
        raise DownloadError(f"{exc} (its md5 is {archive.md5})") from None
    if archive.md5 is not None:
        found = _md5(path)
        if found != archive.md5:
            path.unlink()
            raise DownloadError(
                f"the file downloaded from {archive.url} has md5 {found}, expected {archive.md5}; it was discarded"
            )
    return path


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_counts(info: DatasetInfo, staging: Path, folder: Path) -> None:
    """Every LR folder has one image per HR image (a mismatch means a damaged or different archive)."""
    hr = staging / "HR" if (staging / "HR").is_dir() else folder / "HR"
    expected = len(image_files(hr))
    for lr in sorted((staging / "LR_bicubic").glob("X*")):
        found = len(image_files(lr))
        if found != expected:
            raise DatasetError(f"{info.name}: {lr.name} has {found} LR images for {expected} HR images; not installed")
