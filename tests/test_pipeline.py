"""``superres.engine.pipeline.upscale_files``: same files as ``upscale_file``, per-job errors and warnings, real overlap."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import superres
from superres.engine import pipeline
from superres.engine.inference import Upscaler, load_model
from superres.engine.pipeline import FileOutcome, upscale_files
from superres.errors import ImageError
from superres.imageio import ImageData, read_image, write_image

WEIGHTS = Path(superres.__file__).parent / "weights" / "superres_x4.safetensors"
WAIT = 10.0  # seconds an event may take to come; only reached when the overlap is broken


@pytest.fixture(scope="module")
def upscaler(one_thread: None) -> Upscaler:
    return load_model(WEIGHTS, device="cpu")  # SRVGGNetCompact ×4: a fraction of a second per crop


@pytest.fixture(scope="module")
def baby(shared: Path) -> np.ndarray:
    """A 40×48 crop of Set5 baby, ×4 bicubic LR (MATLAB)."""
    image = Image.open(shared / "benchmarks" / "Set5" / "LR_bicubic" / "X4" / "baby.png").convert("RGB")
    return np.asarray(image)[40:80, 40:88]


@pytest.fixture(scope="module")
def butterfly(shared: Path) -> np.ndarray:
    image = Image.open(shared / "benchmarks" / "Set5" / "LR_bicubic" / "X4" / "butterfly.png").convert("RGB")
    return np.asarray(image)[8:48, 8:56]


def _folder(tmp_path: Path, baby: np.ndarray, butterfly: np.ndarray) -> list[tuple[Path, Path]]:
    """Five real crops in the formats and layouts superres handles, with their targets in ``out/``."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x013B] = "superres test"  # Artist
    Image.fromarray(baby).save(folder / "0_icc.png", icc_profile=srgb)
    Image.fromarray(butterfly).save(folder / "1_exif.jpg", quality=90, exif=exif.tobytes())
    deep = baby.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, baby.shape, dtype=np.uint16)
    write_image(folder / "2_deep.png", ImageData(deep))  # 16-bit: pypng both ways
    alpha = np.tile(np.linspace(0, 255, butterfly.shape[1]).astype(np.uint8), (butterfly.shape[0], 1))
    Image.fromarray(np.dstack([butterfly, alpha])).save(folder / "3_alpha.png")
    Image.fromarray(baby).convert("L").save(folder / "4_gray.webp", lossless=True)
    targets = ["0_icc.png", "1_exif.jpg", "2_deep.png", "3_alpha.jpg", "4_gray.webp"]  # 3: alpha → JPEG warns
    return [(source, out / name) for source, name in zip(sorted(folder.iterdir()), targets, strict=True)]


def test_outcomes_in_order_and_files_equal_upscale_file(
    upscaler: Upscaler, baby: np.ndarray, butterfly: np.ndarray, tmp_path: Path
) -> None:
    jobs = _folder(tmp_path, baby, butterfly)
    started: list[int] = []
    tiles: list[tuple[int, int, int]] = []

    def progress_for(index: int) -> Callable[[int, int], None]:
        started.append(index)
        return lambda done, total: tiles.append((index, done, total))

    outcomes = list(upscale_files(upscaler, jobs, progress_for=progress_for))

    assert [(o.source, o.target, o.written, o.error) for o in outcomes] == [(s, t, t, None) for s, t in jobs]
    assert started == [0, 1, 2, 3, 4] and {index for index, _, _ in tiles} == {0, 1, 2, 3, 4}
    for (source, target), outcome in zip(jobs, outcomes, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # alpha → JPEG, checked for the pipeline below
            one_by_one = upscaler.upscale_file(source, tmp_path / f"reference{target.suffix}")
        assert target.read_bytes() == one_by_one.read_bytes(), target.name
        one_by_one.unlink()
        texts = [str(warning) for warning in outcome.warnings]
        if source.name == "3_alpha.png":  # the writer's warning, for its own job
            assert len(texts) == 1 and "composited onto white" in texts[0]
        else:
            assert texts == [], source.name
    # metadata and depth survived the threads (the byte equality above already implies it; say it plainly)
    assert read_image(jobs[0][1]).icc_profile == read_image(jobs[0][0]).icc_profile is not None
    assert Image.open(jobs[1][1]).getexif()[0x013B] == "superres test"
    assert read_image(jobs[2][1]).pixels.dtype == np.uint16


def test_bad_jobs_are_reported_for_themselves_and_the_rest_is_written(
    upscaler: Upscaler, baby: np.ndarray, butterfly: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _folder(tmp_path, baby, butterfly)[:3]
    out = jobs[0][1].parent
    corrupt = tmp_path / "in" / "corrupt.png"
    whole = jobs[0][0].read_bytes()
    corrupt.write_bytes(whole[: len(whole) // 2])
    exists = out / "exists.png"
    exists.write_bytes(b"keep me")
    full_disk = out / "full_disk.png"
    jobs = [
        jobs[0],
        (corrupt, out / "corrupt.png"),  # damaged in the middle of the batch
        (jobs[1][0], full_disk),  # the writer fails
        (jobs[2][0], jobs[2][0]),  # the target is the source
        (jobs[2][0], exists),  # the target exists
        (jobs[1][0], out / "1.bmp"),  # a format superres cannot write
        jobs[2],
    ]
    reads: list[str] = []

    def read_image_spy(path: Path, max_pixels: int | None) -> ImageData:
        reads.append(Path(path).name)
        return read_image(path, max_pixels)

    def write_image_failing(path: Path, image: ImageData, overwrite: bool = False) -> Path:
        if Path(path) == full_disk:
            raise OSError(28, "No space left on device")
        return write_image(path, image, overwrite)

    monkeypatch.setattr(pipeline, "read_image", read_image_spy)
    monkeypatch.setattr(pipeline, "write_image", write_image_failing)
    source_bytes = jobs[3][0].read_bytes()

    outcomes = list(upscale_files(upscaler, jobs))

    assert [o.source for o in outcomes] == [source for source, _ in jobs]
    assert [o.written for o in outcomes] == [jobs[0][1], None, None, None, None, None, jobs[6][1]]
    assert isinstance(outcomes[1].error, ImageError) and "corrupt.png: damaged or truncated" in str(outcomes[1].error)
    assert isinstance(outcomes[2].error, OSError) and "No space left" in str(outcomes[2].error)
    assert "is the input file" in str(outcomes[3].error) and jobs[3][0].read_bytes() == source_bytes
    assert "already exists" in str(outcomes[4].error) and exists.read_bytes() == b"keep me"
    assert "cannot write .bmp" in str(outcomes[5].error)
    assert reads == ["0_icc.png", "corrupt.png", "1_exif.jpg", "2_deep.png"]  # refused before reading
    assert sorted(p.name for p in out.iterdir()) == sorted([jobs[0][1].name, "exists.png", jobs[6][1].name])

    # overwrite replaces an existing target, but never another job's source
    original = read_image(jobs[0][0]).pixels
    replaced, kept = upscale_files(upscaler, [(jobs[0][0], exists), (jobs[6][0], jobs[0][0])], overwrite=True)
    assert replaced.error is None and read_image(exists).pixels.shape == (160, 192, 3)
    assert "is the input of another job" in str(kept.error)
    assert np.array_equal(read_image(jobs[0][0]).pixels, original)


class _Choreography:
    """Read, network and write wrappers that record who ran what, and hold each stage until the overlap
    the pipeline promises has happened. Events, not sleeps: a broken overlap shows as a wait in vain.
    The two short waits give a pipeline that runs too far ahead (reads or writes) room to show it."""

    def __init__(self, upscaler: Upscaler) -> None:
        self.upscaler = upscaler
        self.lock = threading.Lock()
        self.events = {
            name: threading.Event() for name in ("read 1", "read 2", "network 0", "network 1", "network 2", "write 0")
        }
        self.seen: list[tuple[str, int, str]] = []  # (stage, job, thread name)
        self.reads = self.networks_done = self.writes_done = 0
        self.inputs_alive: list[int] = []  # at each read: reads started - networks finished
        self.outputs_behind: list[int] = []  # at each network start: networks started before - writes done
        self.in_vain: list[str] = []

    def _enter(self, stage: str, index: int) -> None:
        with self.lock:
            self.seen.append((stage, index, threading.current_thread().name))
        if f"{stage} {index}" in self.events:
            self.events[f"{stage} {index}"].set()

    def _wait_for(self, name: str) -> None:
        if not self.events[name].wait(WAIT):
            self.in_vain.append(name)

    def read_image(self, path: Path, max_pixels: int | None) -> ImageData:
        index = int(Path(path).stem)
        with self.lock:
            self.reads += 1
            self.inputs_alive.append(self.reads - self.networks_done)
        if index == 1:
            self._wait_for("network 0")  # the next image is read while the network runs, not before
        warnings.warn(f"read {index}", stacklevel=1)
        self._enter("read", index)
        return read_image(path, max_pixels)

    def upscale(self, pixels: np.ndarray, outscale: float | None, progress: object) -> np.ndarray:
        index = self.networks_done  # the network runs one job at a time
        with self.lock:
            self.outputs_behind.append(index - self.writes_done)
        self._enter("network", index)
        if index == 0:
            self._wait_for("read 1")  # image 2 is read (and warns) while the network works on image 1
            self.events["read 2"].wait(0.2)  # must not come: only one image read ahead
        if index == 1:
            self._wait_for("write 0")  # image 1 is written (and warns) while the network works on image 2
        warnings.warn(f"network {index}", stacklevel=1)
        out = self.upscaler.upscale(pixels, outscale, progress)
        with self.lock:
            self.networks_done += 1
        return out

    def write_image(self, path: Path, image: ImageData, overwrite: bool = False) -> Path:
        index = int(Path(path).stem.split("_")[0])
        if index == 0:
            self._wait_for("network 1")
        warnings.warn(f"write {index}", stacklevel=1)
        self._enter("write", index)
        if index == 0:
            self.events["network 2"].wait(0.2)  # must not come: only one output being written
        written = write_image(path, image, overwrite)
        with self.lock:
            self.writes_done += 1
        return written


def test_read_network_and_write_overlap_with_bounded_memory(
    upscaler: Upscaler, baby: np.ndarray, butterfly: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = []
    for index in range(4):
        Image.fromarray(baby if index % 2 else butterfly).save(tmp_path / f"{index}.png")
        jobs.append((tmp_path / f"{index}.png", tmp_path / f"{index}_x4.png"))
    play = _Choreography(upscaler)
    monkeypatch.setattr(pipeline, "read_image", play.read_image)
    monkeypatch.setattr(pipeline, "write_image", play.write_image)

    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        outcomes: list[FileOutcome] = []
        for outcome in upscale_files(play, jobs):  # type: ignore[arg-type]  # duck-typed Upscaler
            warnings.warn(f"consumer saw {outcome.source.name}", stacklevel=1)  # from a thread on no job
            outcomes.append(outcome)

    assert [o.written for o in outcomes] == [target for _, target in jobs]
    # overlap: image 2 was read before the network finished image 1, image 1 was written after
    # the network started on image 2 (each wrapper waited for that, and not in vain)
    assert play.in_vain == []
    main = threading.current_thread().name
    assert {(stage, thread.split("_")[0]) for stage, _, thread in play.seen} == {
        ("read", "superres-read"),
        ("network", main),
        ("write", "superres-write"),
    }
    # memory: the image being upscaled plus at most one read ahead; at most one output being written
    assert max(play.inputs_alive) == 2 and play.outputs_behind[:2] == [0, 1] and max(play.outputs_behind) == 1
    # warnings belong to the job whose read, network or write raised them, whichever thread did
    for index, outcome in enumerate(outcomes):
        assert sorted(str(w) for w in outcome.warnings) == [f"network {index}", f"read {index}", f"write {index}"]
    assert sorted(str(w.message) for w in outside) == [f"consumer saw {index}.png" for index in range(4)]


def test_closing_early_restores_warnings_and_stops_the_threads(
    upscaler: Upscaler, baby: np.ndarray, tmp_path: Path
) -> None:
    jobs = []
    for index in range(3):
        Image.fromarray(baby).save(tmp_path / f"{index}.png")
        jobs.append((tmp_path / f"{index}.png", tmp_path / f"{index}_x4.jpg"))
    showwarning, filters = warnings.showwarning, list(warnings.filters)

    with closing(upscale_files(upscaler, jobs)) as outcomes:
        first = next(outcomes)

    assert first.written == jobs[0][1]
    assert warnings.showwarning is showwarning and warnings.filters == filters
    assert not [t for t in threading.enumerate() if t.name.startswith("superres-")]
    assert list(upscale_files(upscaler, [])) == []
