"""Unpacking downloaded or user-given archives (zip, tar, tar.gz/bz2/xz) without trusting them.

Every member is checked before a single byte is written: a name that is absolute or climbs out
with ``..`` ("zip slip"), or a member that is not a plain file or folder (symbolic or hard link,
device, FIFO: the tar tricks that point a later file somewhere else), makes the whole archive
refused. Tar members are then extracted with tarfile's ``"data"`` filter where Python has it (3.12,
3.11.4+), a second line of defence. The uncompressed size is checked against the free space first.
"""

from __future__ import annotations

import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from superres.errors import DatasetError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, target: Path, prefixes: Sequence[str] | None = None, progress: bool = True) -> None:
    """Extract the members of ``archive`` below any of ``prefixes`` (all when None) into ``target``."""
    wanted = [PurePosixPath(p).parts for p in prefixes] if prefixes is not None else None
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target, wanted, progress)
        else:
            _extract_tar(archive, target, wanted, progress)
        for folder in target.rglob("*"):  # folders stored read-only would make the dataset hard to delete
            if folder.is_dir():
                folder.chmod(folder.stat().st_mode | stat.S_IRWXU)
    except DatasetError:
        raise
    except OSError as exc:
        if exc.errno is None:  # gzip/lzma format errors carry no errno; disk errors do
            raise _damaged(archive, exc) from None
        raise DatasetError(f"cannot unpack {archive.name} into {target}: {exc.strerror or exc}") from None
    except _DAMAGED as exc:
        raise _damaged(archive, exc) from None


def _damaged(archive: Path, exc: Exception) -> DatasetError:
    return DatasetError(f"{archive} is damaged or incomplete ({exc or type(exc).__name__}); get it again")


def member_path(archive: Path, name: str) -> PurePosixPath:
    """The member's path relative to the target, or a DatasetError if it would land outside it."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text):
        raise _unsafe(archive, name, "is an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "climbs out of the target folder with '..'")
    return PurePosixPath(*parts)


def _unsafe(archive: Path, name: str, why: str) -> DatasetError:
    return DatasetError(f"{archive} is unsafe: its member {name!r} {why}; nothing was extracted")


def _selected(path: PurePosixPath, wanted: list[tuple[str, ...]] | None) -> bool:
    return bool(path.parts) and (wanted is None or any(path.parts[: len(w)] == w for w in wanted))


def _check_space(target: Path, needed: int, archive: Path) -> None:
    free = shutil.disk_usage(target).free
    if needed > free:
        from superres.models.download import human_size

        raise DatasetError(
            f"not enough free space in {target} to unpack {archive.name}: it needs {human_size(needed)}, "
            f"{human_size(free)} are free"
        )


def _bar(total: int, archive: Path, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc=f"unpacking {archive.name}", disable=not progress, leave=False)


def _extract_zip(archive: Path, target: Path, wanted: list[tuple[str, ...]] | None, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        chosen = []
        for info in zf.infolist():
            path = member_path(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _unsafe(archive, info.filename, "is a symbolic link")
            if _selected(path, wanted):
                chosen.append((info, path))
        _check_space(target, sum(info.file_size for info, _ in chosen), archive)
        with _bar(len(chosen), archive, progress) as bar:
            for info, path in chosen:
                dest = target.joinpath(*path.parts)
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                bar.update(1)


def _extract_tar(archive: Path, target: Path, wanted: list[tuple[str, ...]] | None, progress: bool) -> None:
    with tarfile.open(archive) as tf:
        chosen = []
        for member in tf.getmembers():
            path = member_path(archive, member.name)
            if not (member.isfile() or member.isdir()):
                kind = "symbolic link" if member.issym() else "hard link" if member.islnk() else "special file"
                raise _unsafe(archive, member.name, f"is a {kind}")
            if _selected(path, wanted):
                chosen.append(member)
        _check_space(target, sum(m.size for m in chosen), archive)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with _bar(len(chosen), archive, progress) as bar:
            for member in chosen:
                tf.extract(member, target, **safe)
                bar.update(1)
