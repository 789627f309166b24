"""``superres data add NAME PATH``: a folder or archive of your own HR images becomes a dataset.

The images are copied (or, with ``link=True``, the folder is linked, so nothing is duplicated and
later changes show). A source laid out like a dataset (``HR/`` and ``LR_bicubic/X<s>/``) keeps its
LR images; otherwise the LR for each scale is made with our MATLAB-exact ``imresize`` from the HR
cropped to a multiple of the scale — exactly what ``superres eval`` would compute on the fly, so
scores do not change, they just start faster. Built in a hidden folder of the data home and
renamed into place when complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from superres.datasets.archives import extract, is_archive
from superres.datasets.home import MANIFEST, data_home, dataset_dir, staging_dir, write_json
from superres.datasets.images import copy_images, file_hashes, image_files, save_png
from superres.errors import DatasetError


def add_dataset(
    name: str,
    source: str | os.PathLike[str],
    link: bool = False,
    scales: Sequence[int] = (2, 3, 4),
    home: Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Path:
    """Install ``source`` (a folder or archive of HR images) as dataset ``name``; returns its folder."""
    from filelock import FileLock

    home = home or data_home()
    folder = dataset_dir(name, home)
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetError(f"{source} does not exist; give a folder or an archive of HR images")
    if is_archive(source) and link:
        raise DatasetError(f"{source} is an archive; it can be unpacked (the default) but not linked")
    if any(s < 2 for s in scales):
        raise DatasetError(f"LR scales must be 2 or more, not {', '.join(map(str, scales))}")
    home.mkdir(parents=True, exist_ok=True)
    (home / ".locks").mkdir(exist_ok=True)
    with FileLock(home / ".locks" / f"{folder.name}.lock"):
        if folder.exists():
            raise DatasetError(f"{name} is already in {folder}; pick another name, or delete that folder first")
        staging = staging_dir(home, folder.name)
        try:
            origins = _build(staging, source, link, sorted(set(scales)), progress)
            manifest = {
                "name": folder.name,
                "folders": origins,
                "files": file_hashes(staging, image_files(staging)),
            }
            write_json(staging / MANIFEST, manifest)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    lr = ", ".join(f"×{s}" for s in sorted(set(scales))) or "none"
    echo(f"{folder.name}: {len(image_files(folder / 'HR'))} HR images in {folder}, {origins['HR']} (LR {lr})")
    return folder


def _build(staging: Path, source: Path, link: bool, scales: list[int], progress: bool) -> dict[str, str]:
    """Lay out HR and LR in ``staging``; returns where each folder came from, for the manifest."""
    root = source
    if is_archive(source):
        unpacked = staging / ".unpacked"
        extract(source, unpacked, progress=progress)
        root = _single_top_folder(unpacked)
    elif not source.is_dir():
        raise DatasetError(f"{source} is neither a folder nor an archive (.zip, .tar, .tar.gz, …)")
    hr_root = root / "HR" if (root / "HR").is_dir() else root
    hr_files = image_files(hr_root)
    if not hr_files:
        raise DatasetError(f"no images (.png, .jpg, …) in {hr_root}")
    origin = f"{'linked to' if link else 'unpacked from' if root is not source else 'copied from'} {source.resolve()}"
    origins = {"HR": origin}
    if link:
        (staging / "HR").symlink_to(hr_root.resolve(), target_is_directory=True)
    elif root is not source:
        os.replace(hr_root, staging / "HR")  # unpacked into the staging folder already: move, don't copy
    else:
        copy_images(hr_files, hr_root, staging / "HR")
    for scale in scales:
        given = root / "LR_bicubic" / f"X{scale}"
        target = staging / "LR_bicubic" / f"X{scale}"
        if hr_root is not root and given.is_dir():
            if link:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(given.resolve(), target_is_directory=True)
            else:
                copy_images(image_files(given), given, target)
            origins[f"LR_bicubic/X{scale}"] = origin
        else:
            _make_lr(staging / "HR", target, scale, progress)
            origins[f"LR_bicubic/X{scale}"] = "made from HR by superres.quality.imresize (MATLAB bicubic)"
    shutil.rmtree(staging / ".unpacked", ignore_errors=True)
    return origins


def _make_lr(hr_dir: Path, lr_dir: Path, scale: int, progress: bool) -> None:
    """LR ×``scale`` of every HR image, as ``superres eval`` makes it (same name, PNG)."""
    from tqdm import tqdm

    from superres.quality.evaluation import crop_to_multiple, make_lr, read_uint8

    files = image_files(hr_dir)
    for path in tqdm(files, desc=f"making LR ×{scale}", unit="img", disable=not progress, leave=False):
        hr = crop_to_multiple(read_uint8(path), scale)
        rel = path.relative_to(hr_dir).with_suffix(".png")
        save_png(lr_dir / rel, make_lr(hr, scale))


def _single_top_folder(folder: Path) -> Path:
    """An archive that holds one folder (``Set5/…``) is that folder; files at the top are taken as they are."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder
