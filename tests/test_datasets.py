"""`superres data`: the data home, fetch (from a loopback server), safe unpacking, add, prepare, verify.

The archives are built here from the real benchmark images of ../shared and served on 127.0.0.1
in the layouts of the official releases; the catalog's entries are pointed at them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from superres.cli import app
from superres.datasets import catalog
from superres.datasets.add import add_dataset
from superres.datasets.archives import extract
from superres.datasets.catalog import Archive, Folder
from superres.datasets.fetch import fetch_datasets
from superres.datasets.home import data_home, locate, training_source
from superres.datasets.prepare import PrepareSettings, crop_starts, prepare_dataset
from superres.datasets.verify import verify_dataset
from superres.errors import DatasetError, DownloadError
from superres.models import download
from superres.quality.imresize import imresize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("SUPERRES_DATA", str(folder))
    return folder


def _benchmark_tar(shared: Path, path: Path) -> None:
    """Set5 as the EDSR benchmark.tar lays it out: benchmark/Set5/HR, benchmark/Set5/LR_bicubic/X4/<stem>x4.png."""
    with tarfile.open(path, "w") as tf:
        for f in sorted((shared / "benchmarks/Set5/HR").iterdir()):
            tf.add(f, f"benchmark/Set5/HR/{f.name}")
        for f in sorted((shared / "benchmarks/Set5/LR_bicubic/X4").iterdir()):
            tf.add(f, f"benchmark/Set5/LR_bicubic/X4/{f.stem}x4.png")


def _point_set5_at(monkeypatch, archive: Archive) -> None:
    set5 = dataclasses.replace(
        catalog.find("Set5"),
        folders=(Folder(archive, "benchmark/Set5/HR", "HR"), Folder(archive, "benchmark/Set5/LR_bicubic/X4", "LR_bicubic/X4", 4)),
        default_scales=(4,),
    )  # fmt: skip
    monkeypatch.setattr(catalog, "CATALOG", tuple(set5 if d.name == "Set5" else d for d in catalog.CATALOG))


@pytest.fixture
def set5_tar(shared, loopback, monkeypatch):
    """benchmark.tar on the loopback server, pinned by size and sha256 in the catalog."""
    tar = loopback.root / "benchmark.tar"
    _benchmark_tar(shared, tar)
    archive = Archive(loopback.url("benchmark.tar"), tar.stat().st_size, hashlib.sha256(tar.read_bytes()).hexdigest())
    _point_set5_at(monkeypatch, archive)
    return archive


def _quiet(lines: list[str]):
    return lines.append


# ------------------------------------------------------------------------------- catalog


def test_catalog_entries_are_official_and_pinned_where_published():
    expected = {"Set5", "Set14", "BSD100", "Urban100", "Manga109", "DIV2K", "DIV2K-valid", "Flickr2K"}
    assert set(catalog.names()) == expected
    for info in catalog.CATALOG:
        assert info.description and info.licence and info.homepage.startswith("http")
        if info.manual:
            assert not info.folders and info.explicit_only and "superres data add" in info.manual
            continue
        assert [f.target for f in info.folders if f.scale is None] == ["HR"]
        for f in info.folders:
            a = f.archive
            assert a.url.startswith("https://") and (a.sha256 or a.md5)
            assert a.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", a.sha256)
            assert a.md5 is None or re.fullmatch(r"[0-9a-f]{32}", a.md5)
            assert (a.size is None) == (a.sha256 is None)  # TFDS publishes both or neither
    assert catalog.get("DIV2K").size_text == "3.5 GB"
    assert [d.name for d in catalog.expand(["benchmarks", "Manga109", "set5"])] == [
        "Set5", "Set14", "BSD100", "Urban100", "Manga109",
    ]  # fmt: skip
    assert all(not catalog.get(n).explicit_only for g in catalog.GROUPS.values() for n in g)


def test_data_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERRES_DATA", str(tmp_path / "d"))
    assert data_home() == tmp_path / "d"
    monkeypatch.delenv("SUPERRES_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "xdg" / "superres" / "datasets"


# --------------------------------------------------------------------------------- fetch


def test_fetch_installs_the_layout_atomically_and_once(home, set5_tar, loopback):
    out: list[str] = []
    [folder] = fetch_datasets(["Set5"], progress=False, echo=out.append)
    assert folder == home / "Set5"
    assert sorted(p.name for p in (folder / "HR").iterdir()) == [
        "baby.png",
        "bird.png",
        "butterfly.png",
        "head.png",
        "woman.png",
    ]
    assert len(list((folder / "LR_bicubic" / "X4").iterdir())) == 5
    manifest = json.loads((folder / "dataset.json").read_text())
    assert set(manifest["folders"]) == {"HR", "LR_bicubic/X4"} and len(manifest["files"]) == 10
    assert sorted(p.name for p in home.iterdir()) == [".downloads", ".locks", "Set5"]  # no staging left
    assert [p.name for p in (home / ".downloads").iterdir()] == [".locks"]  # the archive is deleted once used
    fetch_datasets(["Set5"], progress=False, echo=out.append)
    assert out[-1] == f"Set5: already installed in {folder}" and len(loopback.requests) == 1


def test_interrupted_fetch_resumes_and_leaves_nothing_that_looks_installed(home, set5_tar, loopback, monkeypatch):
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    loopback.cut["benchmark.tar"] = 400_000
    with pytest.raises(DownloadError, match="the next try continues from there"):
        fetch_datasets(["Set5"], progress=False, echo=_quiet([]))
    assert not (home / "Set5").exists() and (home / ".downloads" / "benchmark.tar.part").stat().st_size == 400_000
    fetch_datasets(["Set5"], progress=False, echo=_quiet([]))
    assert loopback.requests[-1] == ("benchmark.tar", "bytes=400000-")
    assert len(list((home / "Set5" / "HR").iterdir())) == 5


def test_wrong_hash_installs_nothing(home, set5_tar, monkeypatch):
    _point_set5_at(monkeypatch, dataclasses.replace(set5_tar, sha256="f" * 64))
    with pytest.raises(DownloadError, match="expected f{64}; it was discarded"):
        fetch_datasets(["Set5"], progress=False, echo=_quiet([]))
    assert sorted(p.name for p in home.iterdir()) == [".downloads", ".locks"]
    assert [p.name for p in (home / ".downloads").iterdir()] == [".locks"]


def test_md5_is_the_check_where_only_an_md5_is_published(home, set5_tar, loopback, monkeypatch):
    md5 = hashlib.md5((loopback.root / "benchmark.tar").read_bytes()).hexdigest()
    _point_set5_at(monkeypatch, Archive(set5_tar.url, md5="0" * 32))
    with pytest.raises(DownloadError, match=f"has md5 {md5}, expected 0{{32}}; it was discarded"):
        fetch_datasets(["Set5"], progress=False, echo=_quiet([]))
    assert not (home / "Set5").exists() and not (home / ".downloads" / "benchmark.tar").exists()
    _point_set5_at(monkeypatch, Archive(set5_tar.url, md5=md5))
    assert (fetch_datasets(["Set5"], progress=False, echo=_quiet([]))[0] / "HR" / "baby.png").is_file()


def test_truncated_archive_is_refused_and_deleted(home, set5_tar, loopback, monkeypatch):
    tar = loopback.root / "benchmark.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    _point_set5_at(monkeypatch, Archive(set5_tar.url))  # nothing pinned: only unpacking can notice
    with pytest.raises(DatasetError, match="damaged or incomplete"):
        fetch_datasets(["Set5"], progress=False, echo=_quiet([]))
    assert not (home / "Set5").exists() and not (home / ".downloads" / "benchmark.tar").exists()
    assert [p.name for p in home.iterdir() if p.name.startswith(".Set5")] == []


def test_offline_fetch_says_where_to_put_the_file_and_then_uses_it(home, set5_tar, loopback, monkeypatch):
    monkeypatch.setenv("SUPERRES_OFFLINE", "1")
    result = CliRunner().invoke(app, ["data", "fetch", "Set5", "--no-progress"])
    assert result.exit_code == 1
    where = home / ".downloads" / "benchmark.tar"
    line = result.output.strip()
    assert line.startswith("error: SUPERRES_OFFLINE is set") and "\n" not in line
    assert set5_tar.url in line and set5_tar.sha256 in line and f"save it as {where}" in line
    assert loopback.requests == []
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes((loopback.root / "benchmark.tar").read_bytes())  # "by hand"
    result = CliRunner().invoke(app, ["data", "fetch", "Set5", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (home / "Set5" / "HR" / "baby.png").is_file() and loopback.requests == []


def test_manual_and_unknown_datasets_say_what_to_do(home):
    out: list[str] = []
    with pytest.raises(DatasetError, match=r"manga109\.org.*superres data add Manga109 PATH"):
        fetch_datasets(["Manga109"], progress=False, echo=out.append)
    assert "academic research only" in out[0]  # the terms are printed first
    with pytest.raises(DatasetError, match="unknown dataset 'Set50'.*superres data add Set50 PATH"):
        fetch_datasets(["Set50"], progress=False)
    with pytest.raises(DatasetError, match="publishes no LR ×8"):
        fetch_datasets(["DIV2K"], scales=[8], progress=False)


# ------------------------------------------------------------------------ safe unpacking


def _zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16  # S_IFLNK
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(path: Path, members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return path


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda d: _zip(d / "a.zip", {"ok/a.png": b"1", "../evil.png": b"x"}), "climbs out of the target folder"),
        (lambda d: _zip(d / "a.zip", {"/tmp/evil.png": b"x"}), "is an absolute path"),
        (lambda d: _zip(d / "a.zip", {"ok/a.png": b"1"}, symlink="ok/link.png"), "is a symbolic link"),
        (lambda d: _tar(d / "a.tar.gz", {"ok/a.png": b"1", "ok/../../evil.png": b"x"}), "climbs out"),
        (lambda d: _tar(d / "a.tar.gz", {"ok/a.png": b"1"}, {"ok/l.png": (tarfile.SYMTYPE, "/etc/passwd")}),
         "is a symbolic link"),
        (lambda d: _tar(d / "a.tar.gz", {"ok/a.png": b"1"}, {"ok/h.png": (tarfile.LNKTYPE, "ok/a.png")}),
         "is a hard link"),
        (lambda d: _tar(d / "a.tar.gz", {"C:/evil.png": b"x"}), "is an absolute path"),
    ],
)  # fmt: skip
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, make, why):
    (tmp_path / "src").mkdir()
    archive = make(tmp_path / "src")
    target = tmp_path / "out" / "inner"
    with pytest.raises(DatasetError, match=f"is unsafe: its member .* {why}.*; nothing was extracted"):
        extract(archive, target, progress=False)
    assert list(target.iterdir()) == [] and not (tmp_path / "out" / "evil.png").exists()


def test_add_refuses_an_unsafe_archive_and_installs_nothing(home, tmp_path):
    archive = _zip(tmp_path / "photos.zip", {"photos/a.png": _png(8, 8), "photos/../../../evil.png": b"x"})
    with pytest.raises(DatasetError, match="unsafe"):
        add_dataset("Photos", archive, progress=False, echo=_quiet([]))
    assert not (home / "Photos").exists() and [p.name for p in home.iterdir()] == [".locks"]


def _png(h: int, w: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- add, eval


def test_add_then_eval_without_data_root_reproduces_bicubic_set5(home, shared):
    runner = CliRunner()
    result = runner.invoke(app, ["data", "add", "Set5", str(shared / "benchmarks/Set5/HR"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (home / "Set5").iterdir()) == ["HR", "LR_bicubic", "dataset.json"]
    lr = np.asarray(Image.open(home / "Set5/LR_bicubic/X4/bird.png"))
    assert np.array_equal(lr, imresize(np.asarray(Image.open(shared / "benchmarks/Set5/HR/bird.png")), 0.25))

    result = runner.invoke(app, ["eval", "--model", "bicubic", "--datasets", "Set5", "--json", str(home / "r.json"),
                                 "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((home / "r.json").read_text())
    assert report["results"]["Set5"]["psnr"] == pytest.approx(28.43, abs=0.01)  # the literature's 28.42
    assert report["results"]["Set5"]["lr_source"] == "LR_bicubic/X4"

    result = runner.invoke(app, ["eval", "--model", "bicubic", "--datasets", "Set14", "--no-progress"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: Set14 is not installed in {home}; run `superres data fetch Set14` "
        "(about 250 MB with the other test sets) or pass --data-root DIR"
    )
    result = runner.invoke(app, ["data", "add", "Set5", str(shared / "benchmarks/Set5/HR")])
    assert result.exit_code == 1 and "already in" in result.output  # nothing is overwritten


def test_add_an_archive_or_a_link_and_verify_finds_changes(home, tmp_path, shared):
    archive = _zip(
        tmp_path / "mine.zip", {"mine/a.png": _png(24, 36, 1), "mine/sub/b.png": _png(30, 30, 2), "mine/notes.txt": b""}
    )
    add_dataset("Mine", archive, scales=(2, 3), progress=False, echo=_quiet([]))
    assert sorted(p.relative_to(home / "Mine").as_posix() for p in (home / "Mine").rglob("*.png")) == [
        "HR/a.png", "HR/sub/b.png", "LR_bicubic/X2/a.png", "LR_bicubic/X2/sub/b.png",
        "LR_bicubic/X3/a.png", "LR_bicubic/X3/sub/b.png",
    ]  # fmt: skip
    assert Image.open(home / "Mine/LR_bicubic/X3/sub/b.png").size == (10, 10)

    linked = add_dataset(
        "Linked", shared / "benchmarks/Set5/HR", link=True, scales=(4,), progress=False, echo=_quiet([])
    )
    assert (linked / "HR").is_symlink() and (linked / "HR").resolve() == (shared / "benchmarks/Set5/HR").resolve()

    assert verify_dataset("Mine", progress=False).ok
    (home / "Mine/HR/a.png").write_bytes(_png(24, 36, 9))
    (home / "Mine/LR_bicubic/X2/sub/b.png").unlink()
    (home / "Mine/HR/c.png").write_bytes(_png(8, 8))
    report = verify_dataset("Mine", progress=False)
    assert (report.changed, report.missing, report.unlisted) == (
        ["HR/a.png"],
        ["LR_bicubic/X2/sub/b.png"],
        ["HR/c.png"],
    )
    result = CliRunner().invoke(app, ["data", "verify", "Mine", "--no-progress"])
    assert result.exit_code == 1 and "changed: HR/a.png" in result.output


def test_list_shows_known_and_added_datasets(home, shared):
    add_dataset("Mine", shared / "benchmarks/Set5/HR", scales=(), progress=False, echo=_quiet([]))
    result = CliRunner().invoke(app, ["data", "list", "--json"])
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(catalog.names()) < set(rows) and rows["Mine"]["installed"] == ["HR"]
    assert rows["DIV2K"]["source"] == "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"
    assert rows["DIV2K"]["installed"] == [] and rows["DIV2K"]["size"] == "3.5 GB"
    text = CliRunner().invoke(app, ["data", "list"]).output
    assert f"data home: {home}" in text and "Manga109" in text and "terms: academic research only" in text


# ------------------------------------------------------------------------------- prepare


def test_crop_starts_follow_basicsr():
    assert crop_starts(1356, 480, 240, 0) == [0, 240, 480, 720, 876]  # the edge-aligned last crop
    assert crop_starts(960, 480, 240, 0) == [0, 240, 480]  # nothing left over: no extra crop
    assert crop_starts(725, 480, 240, 5) == [0, 240] and crop_starts(726, 480, 240, 5) == [0, 240, 246]
    assert crop_starts(300, 480, 240, 0) == [0]


def test_prepare_layout_lr_and_resume(home, shared, tmp_path, monkeypatch):
    from superres.datasets import prepare as prepare_module

    images = sorted((shared / "benchmarks/BSD100/HR").glob("10*.png"))[:3]  # 320 × 480 each (portrait)
    (tmp_path / "b3").mkdir()
    for f in images:
        (tmp_path / "b3" / f.name).symlink_to(f)
    add_dataset("B3", tmp_path / "b3", scales=(), progress=False, echo=_quiet([]))
    settings = PrepareSettings(crop=120, step=100, min_size=10, scales=(2, 4))

    real_cut, calls = prepare_module.cut_image, []

    def flaky_cut(path, stem, out, s):
        calls.append(stem)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second image
        return real_cut(path, stem, out, s)

    monkeypatch.setattr(prepare_module, "cut_image", flaky_cut)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("B3", settings, progress=False, echo=_quiet([]))
    assert not (home / "B3/sub/prepared.json").exists()  # not complete, so training will not use it
    monkeypatch.setattr(prepare_module, "cut_image", real_cut)
    out: list[str] = []
    sub = prepare_dataset("B3", settings, progress=False, echo=out.append)
    assert out[0] == "B3: resuming, 1 of 3 images already cut"

    first = np.asarray(Image.open(images[0]))
    h, w = first.shape[:2]
    tops, lefts = crop_starts(h, 120, 100, 10), crop_starts(w, 120, 100, 10)
    assert (tops, lefts) == ([0, 100, 200, 300, 360], [0, 100, 200])  # 360: aligned to the bottom edge
    names = sorted(p.name for p in (sub / "HR").iterdir())
    stem = images[0].stem
    assert [n for n in names if n.startswith(stem)] == [f"{stem}_s{k:03d}.png" for k in range(1, 16)]
    meta = (sub / "meta_info.txt").read_text().splitlines()
    assert meta[:2] == [f"{stem}_s001.png (120,120,3)", f"{stem}_s002.png (120,120,3)"] and len(meta) == len(names)
    # Crop 14 is row 5 (top 360, the edge-aligned one), column 2 (left 100), numbered row by row from 1.
    crop = np.asarray(Image.open(sub / "HR" / f"{stem}_s014.png"))
    assert np.array_equal(crop, first[360:480, 100:220])
    for scale in (2, 4):
        lr = np.asarray(Image.open(sub / "LR_bicubic" / f"X{scale}" / f"{stem}_s014.png"))
        assert np.array_equal(lr, imresize(crop, 1 / scale))  # our LR of a sub-image == imresize of that crop
    assert json.loads((sub / "prepared.json").read_text())["subimages"] == len(names) == 45
    assert sorted(p.name for p in sub.iterdir()) == ["HR", "LR_bicubic", "meta_info.txt", "prepared.json"]

    assert training_source("B3", None, 4).prepared and training_source("B3", None, 3).lr is None
    with pytest.raises(DatasetError, match="prepared with other settings .* pass --force"):
        prepare_dataset("B3", PrepareSettings(crop=96), progress=False, echo=_quiet([]))
    assert verify_dataset("B3", progress=False).ok


def test_prepare_with_worker_processes_gives_the_same_files(home, tmp_path):
    (tmp_path / "src").mkdir()
    for i, shape in enumerate([(50, 70), (40, 20), (61, 33)]):
        (tmp_path / "src" / f"{i}.png").write_bytes(_png(*shape, seed=i))
    add_dataset("P", tmp_path / "src", scales=(), progress=False, echo=_quiet([]))
    one = prepare_dataset("P", PrepareSettings(24, 16, 0, (2, 3)), progress=False, echo=_quiet([]))
    files = {p.relative_to(one): p.read_bytes() for p in one.rglob("*.png")}
    two = prepare_dataset(
        "P", PrepareSettings(24, 16, 0, (2, 3)), workers=2, force=True, progress=False, echo=_quiet([])
    )
    assert {p.relative_to(two): p.read_bytes() for p in two.rglob("*.png")} == files
    # 40 × 20: the width is shorter than the crop, so the crops are 18 wide (a multiple of 2 and 3).
    assert sorted(f.name for f in files if f.parts[0] == "HR" and f.name.startswith("1_")) == [
        "1_s001.png",
        "1_s002.png",
    ]
    assert Image.open(one / "HR" / "1_s002.png").size == (18, 24)
    assert Image.open(one / "LR_bicubic" / "X3" / "1_s002.png").size == (6, 8)
    # 61 × 33: rows 0, 16, 32 and 37 (edge), columns 0 and 9 (edge).
    assert np.array_equal(
        np.asarray(Image.open(one / "HR" / "2_s008.png")),
        np.asarray(Image.open(tmp_path / "src" / "2.png"))[37:61, 9:33],
    )
    assert (one / "meta_info.txt").read_text().count("\n") == len([f for f in files if f.parts[0] == "HR"])


# ------------------------------------------------------------------------------ training


def test_missing_datasets_are_one_line_naming_the_command(home):
    with pytest.raises(DatasetError) as err:
        locate("DIV2K", None)
    assert str(err.value) == (
        f"DIV2K is not installed in {home}; run `superres data fetch DIV2K` (3.5 GB) or pass data.root=… or a path"
    )
    with pytest.raises(DatasetError, match="no dataset 'MyPhotos' .* `superres data add MyPhotos PATH`"):
        locate("MyPhotos", None)
    result = CliRunner().invoke(app, ["train", "srresnet", "total_steps=2"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: DIV2K is not installed in {home}; run `superres data fetch DIV2K` (3.5 GB) or pass data.root=… or a path"
    ]
    result = CliRunner().invoke(app, ["data", "prepare", "Nope"])
    assert result.exit_code == 1 and "superres data add Nope PATH" in result.output


def test_tiny_training_run_reads_a_prepared_dataset_from_the_data_home(home, shared, tmp_path):
    t91 = sorted((shared / "train" / "T91").iterdir())[:6]
    (tmp_path / "t91").mkdir()
    for f in t91:
        (tmp_path / "t91" / f.name).symlink_to(f)
    runner = CliRunner()
    for args in (["data", "add", "T6", str(tmp_path / "t91"), "--scales", "4"],
                 ["data", "add", "Set5", str(shared / "benchmarks/Set5/HR"), "-s", "4"],
                 ["data", "prepare", "T6", "--crop", "64", "--step", "64", "--scales", "4"]):  # fmt: skip
        result = runner.invoke(app, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, [
        "train", "srresnet", "data.train=[T6]", "data.val=[Set5]", f"output_dir={tmp_path / 'runs'}", "total_steps=3",
        "model.num_block=1", "model.num_feat=8", "data.patch_size=32", "data.batch_size=2", "data.num_workers=0",
        "val_every=3", "save_every=3", "log_every=1", "threads=1", "tensorboard=false", "num_val_grids=1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    prepared = len((home / "T6/sub/meta_info.txt").read_text().splitlines())
    assert f"training on {prepared} prepared sub-images of T6, paired with their LR ×4" in result.output
    log = [json.loads(line) for line in (tmp_path / "runs/srresnet/log.jsonl").read_text().splitlines()]
    assert any("val/Set5/psnr" in entry for entry in log)
