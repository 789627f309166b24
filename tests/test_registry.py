"""Model registry: name resolution, the user cache, and hash-checked downloads (no real network)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import superres
from superres.errors import WeightsError
from superres.models import registry

PAYLOAD = b"not really weights, but bytes with a known hash\n" * 100


@pytest.fixture
def server(loopback):
    """(base URL, folder) of the loopback HTTP server."""
    return loopback.url("").rstrip("/"), loopback.root


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/model.pth"  # nothing listens there any more


def _entry(url: str, sha256: str = hashlib.sha256(PAYLOAD).hexdigest()) -> registry.ModelEntry:
    base = registry.get("realesr-animevideov3")
    return dataclasses.replace(base, name="test-model", filename="test-model.pth", url=url, sha256=sha256)


def _leftovers(folder: Path) -> list[str]:
    """What a download left in ``folder``, apart from the lock files that keep two processes apart."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".locks") if folder.exists() else []


def test_registry_entries_are_complete_and_pinned():
    assert len(set(registry.names())) == len(registry.MODELS)
    expected = {
        "superres-x4",
        "superres-x4-gan",
        "superres-x4-real",
        "superres-x4-real-gan",
        "RRDB_ESRGAN_x4",
        "RRDB_PSNR_x4",
        "RealESRGAN_x4plus",
        "RealESRGAN_x2plus",
        "RealESRNet_x4plus",
        "RealESRGAN_x4plus_anime_6B",
        "realesr-animevideov3",
        "realesr-general-x4v3",
    }
    assert set(registry.names()) == expected
    for entry in registry.MODELS:
        assert entry.arch in {"RRDBNet", "SRResNet", "SRVGGNetCompact"}
        assert entry.scale in {2, 4}
        assert entry.license and entry.description and entry.filename
        if entry.bundled:
            assert entry.sha256 is None and entry.name.startswith(registry.DEFAULT_MODEL)  # the -gan and -real partners
        else:
            assert entry.url.startswith("https://")
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        if entry.gan_partner is not None:  # --strength blends the two: same network
            partner = registry.get(entry.gan_partner)
            assert (partner.arch, partner.scale, partner.gan_partner) == (entry.arch, entry.scale, None)
    hashes = [e.sha256 for e in registry.MODELS if not e.bundled]
    assert len(set(hashes)) == len(hashes)
    # BasicSR names its release files after the first 8 hex digits of their sha256.
    esrgan = registry.get("RRDB_ESRGAN_x4")
    assert esrgan.sha256.startswith(esrgan.filename.rsplit("-", 1)[1].removesuffix(".pth"))


def test_bundled_file_agrees_with_its_entry_when_installed():
    entry = registry.get(registry.DEFAULT_MODEL)
    path = registry.local_path(entry)
    assert path == Path(superres.__file__).resolve().parent / "weights" / "superres_x4.safetensors"
    if not path.is_file():
        pytest.skip("the bundled default model has not been trained and shipped yet")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    assert metadata.get("arch") == entry.arch
    assert int(metadata.get("scale", 0)) == entry.scale


def test_get_is_case_insensitive_and_unknown_names_list_the_known_ones():
    assert registry.get("realesrgan_X4PLUS").name == "RealESRGAN_x4plus"
    with pytest.raises(WeightsError) as err:
        registry.get("no-such-model")
    assert "RealESRGAN_x4plus" in str(err.value) and "superres-x4" in str(err.value)


def test_resolve_existing_path_unknown_name_and_missing_file(tmp_path: Path):
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"x")
    assert registry.resolve(weights) == weights
    assert registry.resolve(str(weights)) == weights
    with pytest.raises(WeightsError, match="unknown model 'esrgan-xl'.*RRDB_ESRGAN_x4"):
        registry.resolve("esrgan-xl", cache_dir=tmp_path)
    with pytest.raises(WeightsError, match="no such file"):
        registry.resolve(tmp_path / "missing.pth", cache_dir=tmp_path)
    with pytest.raises(WeightsError, match="is a folder"):
        registry.resolve(tmp_path)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path / "c"))
    assert registry.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SUPERRES_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.default_cache_dir() == tmp_path / "xdg" / "superres" / "models"
    entry = registry.get("RealESRGAN_x4plus")
    assert registry.local_path(entry) == tmp_path / "xdg" / "superres" / "models" / "RealESRGAN_x4plus.pth"


def test_offline_known_name_says_which_url_to_fetch_and_where(tmp_path: Path):
    entry = registry.get("RealESRGAN_x4plus")
    with pytest.raises(WeightsError) as err:
        registry.resolve("RealESRGAN_x4plus", cache_dir=tmp_path, download=False)
    message = str(err.value)
    assert entry.url in message and entry.sha256 in message
    assert str(tmp_path / "RealESRGAN_x4plus.pth") in message and "--model PATH" in message


def test_missing_bundled_model_is_a_clear_error(tmp_path: Path):
    entry = dataclasses.replace(registry.get(registry.DEFAULT_MODEL), filename="not-shipped.safetensors")
    with pytest.raises(WeightsError, match="bundled model 'superres-x4' is not installed"):
        registry.fetch(entry, cache_dir=tmp_path)


def test_download_verifies_and_caches(server, tmp_path: Path):
    base, www = server
    (www / "model.pth").write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    entry = _entry(f"{base}/model.pth")
    path = registry.fetch(entry, cache_dir=cache, progress=False)
    assert path == cache / "test-model.pth" and path.read_bytes() == PAYLOAD
    assert _leftovers(cache) == ["test-model.pth"]
    assert registry.status(entry, cache) == "cached"
    # Second use: served from the cache, the network is not touched.
    (www / "model.pth").unlink()
    assert registry.fetch(entry, cache_dir=cache, progress=False) == path


def test_tampered_download_fails_and_is_not_kept(server, tmp_path: Path):
    base, www = server
    (www / "model.pth").write_bytes(PAYLOAD + b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="expected .*discarded") as err:
        registry.fetch(_entry(f"{base}/model.pth"), cache_dir=cache, progress=False)
    assert f"{base}/model.pth" in str(err.value)
    assert _leftovers(cache) == []


def test_corrupt_cached_file_is_replaced_by_a_verified_download(server, tmp_path: Path):
    base, www = server
    (www / "model.pth").write_bytes(PAYLOAD)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "test-model.pth").write_bytes(b"truncated")
    entry = _entry(f"{base}/model.pth")
    with pytest.raises(WeightsError, match="does not match the sha256"):
        registry.fetch(entry, cache_dir=cache, download=False)
    assert registry.fetch(entry, cache_dir=cache, progress=False).read_bytes() == PAYLOAD


def test_web_page_instead_of_file_is_explained(server, tmp_path: Path):
    base, www = server
    (www / "confirm.html").write_text("<html>Google Drive can't scan this file for viruses</html>")
    with pytest.raises(WeightsError, match="web page instead of the file"):
        registry.fetch(_entry(f"{base}/confirm.html"), cache_dir=tmp_path / "cache", progress=False)
    assert _leftovers(tmp_path / "cache") == []


def test_unreachable_server_gives_manual_instructions(tmp_path: Path):
    url = _closed_port_url()
    with pytest.raises(WeightsError) as err:
        registry.fetch(_entry(url), cache_dir=tmp_path / "cache", progress=False)
    message = str(err.value)
    assert message.startswith(f"could not download {url}")
    assert "by hand" in message and str(tmp_path / "cache" / "test-model.pth") in message
    assert _leftovers(tmp_path / "cache") == []


def test_file_url_download(tmp_path: Path):
    source = tmp_path / "source.pth"
    source.write_bytes(PAYLOAD)
    path = registry.fetch(_entry(source.as_uri()), cache_dir=tmp_path / "cache", progress=False)
    assert path.read_bytes() == PAYLOAD


def test_models_command_lists_every_model_with_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from superres.cli import models as models_cli

    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path))
    (tmp_path / "RealESRGAN_x2plus.pth").write_bytes(b"x")
    app = typer.Typer()
    models_cli.register(app)
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == set(registry.names())
    assert rows["RealESRGAN_x2plus"]["status"] == "cached"
    assert rows["RealESRGAN_x4plus"]["status"] == "download"
    assert rows["superres-x4"]["status"] in {"bundled", "missing"}
    assert rows["RealESRGAN_x4plus"]["sha256"] == registry.get("RealESRGAN_x4plus").sha256

    table = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert table.exit_code == 0, table.output
    for name in registry.names():
        assert name in table.output
