"""The one downloader: resumable with HTTP Range, hash- and size-checked, atomic, locked, offline-aware.

Everything is served by the loopback HTTP server of conftest.py; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from superres.errors import DownloadError
from superres.models import download
from superres.models.download import fetch

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # a few chunks, so a cut falls in the middle
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(loopback):
    (loopback.root / "file.bin").write_bytes(PAYLOAD)
    return loopback


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".locks")


def test_full_download_is_checked_moved_into_place_and_reused(served, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    assert fetch(served.url("file.bin"), dest, SHA, len(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD and _entries(dest.parent) == ["file.bin"]
    assert served.requests == [("file.bin", None)]
    fetch(served.url("file.bin"), dest, SHA, len(PAYLOAD), progress=False)
    assert len(served.requests) == 1  # verified in place: the network is not touched again


def test_a_dropped_connection_is_resumed_with_a_range_request(served, tmp_path):
    served.cut["file.bin"] = 1_500_000
    dest = tmp_path / "file.bin"
    fetch(served.url("file.bin"), dest, SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert served.requests == [("file.bin", None), ("file.bin", "bytes=1500000-")]


def test_an_interrupted_download_continues_on_the_next_call(served, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    served.cut["file.bin"] = 2_000_000
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=r"kept in .*file\.bin\.part and the next try continues"):
        fetch(served.url("file.bin"), dest, SHA, progress=False)
    part = tmp_path / "file.bin.part"
    assert part.read_bytes() == PAYLOAD[:2_000_000] and not dest.exists()
    fetch(served.url("file.bin"), dest, SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert served.requests[-1] == ("file.bin", "bytes=2000000-")


def test_a_server_that_ignores_range_sends_the_whole_file_again(served, tmp_path):
    served.ranges = False
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(served.url("file.bin"), tmp_path / "file.bin", SHA, progress=False)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_a_complete_part_file_is_verified_without_downloading_again(served, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)  # cut off between the last byte and the rename
    fetch(served.url("file.bin"), tmp_path / "file.bin", SHA, len(PAYLOAD), progress=False)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD and served.requests == []


@pytest.mark.parametrize(
    "sha256, size, message",
    [
        ("0" * 64, None, f"has sha256 {SHA}, expected 0{{64}}; it was discarded"),
        ("deadbeef", None, "expected one starting with deadbeef"),
        (SHA, len(PAYLOAD) + 1, f"has {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1}"),
    ],
)
def test_a_file_that_does_not_verify_is_discarded(served, tmp_path, sha256, size, message):
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=message) as err:
        fetch(served.url("file.bin"), dest, sha256, size, progress=False)
    assert f"download {served.url('file.bin')} by hand" in str(err.value) and str(dest) in str(err.value)
    assert _entries(tmp_path) == ["www"]  # nothing installed, no .part left


def test_a_published_hash_prefix_is_enough(served, tmp_path):
    assert fetch(served.url("file.bin"), tmp_path / "f.bin", SHA[:8], progress=False).read_bytes() == PAYLOAD


def test_offline_says_what_would_be_downloaded_and_touches_no_network(served, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERRES_OFFLINE", "1")
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError) as err:
        fetch(served.url("file.bin"), dest, SHA, len(PAYLOAD), progress=False)
    message = str(err.value)
    assert message.startswith("SUPERRES_OFFLINE is set, so file.bin (3.2 MB) was not downloaded from http://127.0.0.1")
    assert f"check that its sha256 is {SHA}" in message and f"save it as {dest}" in message
    assert served.requests == [] and not dest.exists()
    monkeypatch.setenv("SUPERRES_OFFLINE", "0")
    assert fetch(served.url("file.bin"), dest, SHA, progress=False).is_file()


def test_free_space_is_checked_before_the_first_byte(served, tmp_path, monkeypatch):
    usage = download.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with pytest.raises(DownloadError, match=r"not enough free space .* needs 3\.2 MB, 1\.0 KB are free"):
        fetch(served.url("file.bin"), tmp_path / "file.bin", SHA, progress=False)
    assert _entries(tmp_path) == ["www"]


def test_http_errors_and_web_pages_are_one_clear_line(served, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(served.url("missing.bin"), tmp_path / "m.bin", SHA, progress=False)
    (served.root / "login.html").write_text("<html>sign in</html>")
    with pytest.raises(DownloadError, match="returned a web page instead of the file"):
        fetch(served.url("login.html"), tmp_path / "l.bin", None, progress=False)
    assert _entries(tmp_path) == ["www"]


def test_two_fetches_of_one_file_download_it_once(served, tmp_path):
    dest = tmp_path / "file.bin"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch(served.url("file.bin"), dest, SHA, progress=False)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [dest, dest] and dest.read_bytes() == PAYLOAD
    assert len(served.requests) == 1
