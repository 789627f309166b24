"""The one downloader of superres: model weights, datasets and the VGG19 of the perceptual loss.

:func:`fetch` puts the file at ``url`` at ``dest`` so that ``dest`` only ever holds a complete,
verified file:

* **resumable** — bytes go to ``dest.part``; a download cut off (lost connection, Ctrl-C) continues
  from there with an HTTP ``Range`` request, at once (up to 3 tries while bytes keep arriving) or
  on the next call. A server that ignores ``Range`` sends the whole file again, which is handled.
* **checked** — size and SHA-256 (or the published prefix of it: torchvision names its files
  after the first 8 hex digits) before ``os.replace`` moves the file into place; a file that
  fails is deleted.
* **one at a time** — a lock file (``.locks/`` beside ``dest``) makes a second process wait and
  then find the file done, instead of writing into the same ``.part``.
* **free space first**, and a progress bar with speed and ETA (tqdm).
* **offline** — ``SUPERRES_OFFLINE=1`` forbids any network access; the error says what would
  have been downloaded, from where, its hash, and where to put it by hand.

Why not pooch: it hashes, retries and shows progress well, but restarts an interrupted download
from zero and keeps no ``.part`` — for DIV2K's 3.5 GB archive on a slow link, resuming matters
more than anything else here. urllib (standard library) does the rest.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from superres import __version__
from superres.errors import DownloadError

OFFLINE_ENV = "SUPERRES_OFFLINE"
ATTEMPTS = 3  # tries per call while a connection keeps dropping mid-file
TIMEOUT = 60.0  # seconds without a byte before a connection counts as lost
_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{8,64}")


def offline() -> bool:
    """True when ``SUPERRES_OFFLINE`` is set to anything but an empty string, 0, false, no or off."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def human_size(size: int | None) -> str:
    """``3.5 GB``, ``448.9 MB``: decimal units, as the hosts publish sizes."""
    if size is None:
        return "size unknown"
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def manual_hint(url: str, dest: Path, sha256: str | None) -> str:
    """How to do by hand what :func:`fetch` would have done."""
    check = ""
    if sha256:
        check = f", check that its sha256 {'is' if len(sha256) == 64 else 'starts with'} {sha256},"
    return f"download {url} by hand{check} and save it as {dest}"


def fetch(url: str, dest: Path, sha256: str | None, size: int | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) unless a verified file is already there.

    ``sha256``: the file's hex digest, or a prefix of at least 8 hex digits where only that is
    published; None when no hash is known (the caller then checks the content its own way).
    ``size``: the file's size in bytes where known. Raises :class:`DownloadError`.
    """
    dest = Path(dest).expanduser()
    if sha256 is not None and not _HEX.fullmatch(sha256.lower()):
        raise ValueError(f"sha256 must be 8 to 64 hex digits, not {sha256!r}")
    sha256 = sha256.lower() if sha256 else None
    hint = manual_hint(url, dest, sha256)
    if _complete(dest, sha256, size):
        return dest
    if offline():
        what = f"{dest.name} ({human_size(size)})" if size is not None else dest.name
        raise DownloadError(f"{OFFLINE_ENV} is set, so {what} was not downloaded from {url}; {hint}")
    from filelock import FileLock

    try:
        locks = dest.parent / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(locks / f"{dest.name}.lock")
        lock.acquire()
    except OSError as exc:
        raise DownloadError(f"cannot write to {dest.parent} ({exc.strerror or exc}); {hint}") from None
    try:
        if _complete(dest, sha256, size):  # another process finished it while we waited
            return dest
        part = dest.with_name(dest.name + ".part")
        _download(url, part, size, progress, hint)
        _verify(part, url, sha256, size, hint)
        os.replace(part, dest)
        return dest
    finally:
        lock.release()


def _complete(dest: Path, sha256: str | None, size: int | None) -> bool:
    if not dest.is_file() or (size is not None and dest.stat().st_size != size):
        return False
    return sha256 is None or sha256_file(dest).startswith(sha256)


class _Interrupted(Exception):
    """The connection dropped after ``received`` bytes of this try were written to the ``.part`` file."""

    def __init__(self, reason: str, received: int) -> None:
        super().__init__(reason)
        self.received = received


def _download(url: str, part: Path, size: int | None, progress: bool, hint: str) -> None:
    """Fill ``part`` with the whole file, resuming what is there; retry while bytes keep arriving."""
    for attempt in range(1, ATTEMPTS + 1):
        offset = part.stat().st_size if part.is_file() else 0
        if size is not None and offset >= size:
            if offset == size:
                return  # complete from an earlier try; verified next
            part.unlink()  # longer than the file can be: start again
            offset = 0
        try:
            _transfer(url, part, offset, size, progress, hint)
            return
        except _Interrupted as exc:
            kept = part.stat().st_size if part.is_file() else 0
            if exc.received == 0 or attempt == ATTEMPTS:
                if kept == 0:
                    part.unlink(missing_ok=True)
                    raise DownloadError(f"could not download {url} ({exc}); {hint}") from None
                raise DownloadError(
                    f"could not download {url} ({exc}); the {human_size(kept)} received are kept in {part} "
                    f"and the next try continues from there, or {hint}"
                ) from None
            time.sleep(0.2 * attempt)


def _transfer(url: str, part: Path, offset: int, size: int | None, progress: bool, hint: str) -> None:
    from tqdm import tqdm

    headers = {"User-Agent": f"superres/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: the .part may be complete; verify decides
            return
        raise DownloadError(f"could not download {url} (HTTP {exc.code} {exc.reason}); {hint}") from None
    except (OSError, http.client.HTTPException) as exc:  # refused, DNS, TLS, timeout: nothing received
        raise DownloadError(f"could not download {url} ({getattr(exc, 'reason', None) or exc}); {hint}") from None
    with response:
        if response.headers.get_content_type() == "text/html":
            raise DownloadError(
                f"{url} returned a web page instead of the file (some hosts, such as Google Drive, ask a "
                f"browser to confirm large downloads); {hint}"
            )
        resumed = offset > 0 and getattr(response, "status", None) == 206
        if resumed and not str(response.headers.get("Content-Range", "")).startswith(f"bytes {offset}-"):
            raise DownloadError(
                f"{url} answered a request for the bytes from {offset} on with another range "
                f"({response.headers.get('Content-Range')}); delete {part} to start again, or {hint}"
            )
        start = offset if resumed else 0  # a 200 answer to a Range request is the whole file again
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        total = start + expected if expected is not None else size
        _check_free_space(part.parent, (total - start) if total is not None else None, url)
        received = 0
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
        ) as bar:  # fmt: skip
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise _Interrupted(str(getattr(exc, "reason", None) or exc or type(exc).__name__), received) from None
        if expected is not None and received < expected:
            raise _Interrupted(f"the connection closed after {received} of {expected} bytes", received)


def _check_free_space(folder: Path, needed: int | None, url: str) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(
            f"not enough free space in {folder} for {url}: it needs {human_size(needed)}, "
            f"{human_size(free)} are free; free some space or choose a folder on another disk"
        )


def _verify(part: Path, url: str, sha256: str | None, size: int | None, hint: str) -> None:
    """Delete ``part`` and raise unless it has the expected size and hash."""
    found_size = part.stat().st_size
    if size is not None and found_size != size:
        part.unlink()
        raise DownloadError(
            f"the file downloaded from {url} has {found_size} bytes, expected {size}; it was discarded. {hint}"
        )
    if sha256 is not None:
        found = sha256_file(part)
        if not found.startswith(sha256):
            part.unlink()
            expected = sha256 if len(sha256) == 64 else f"one starting with {sha256}"
            raise DownloadError(
                f"the file downloaded from {url} has sha256 {found}, expected {expected}; it was discarded. {hint}"
            )
