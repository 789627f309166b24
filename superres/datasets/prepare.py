"""``superres data prepare NAME``: training sub-images, laid out as BasicSR's ``extract_subimages.py`` does.

Decoding a whole 2K PNG to cut one 128-pixel patch wastes most of a data worker's time; BasicSR
therefore cuts DIV2K into 480 × 480 crops every 240 pixels once, before training (Wang et al.,
BasicSR, ``scripts/data_preparation/extract_subimages.py``). The same here:

* crops start every ``step`` pixels; when more than ``min_size`` pixels would be left uncovered at
  the right or bottom edge, one more crop aligned to that edge is added (BasicSR's ``thresh_size``);
  a side shorter than ``crop`` gives one crop of that side, cut to a multiple of every scale;
* crop ``k`` (from 1, row by row) of image ``0001.png`` is ``0001_s{k:03d}.png``;
* the LR of each crop is our MATLAB-exact ``imresize`` of the uint8 HR crop, per scale — the LR the
  training loop would make of it, computed once;
* ``meta_info.txt`` lists each crop with its shape, as BasicSR's meta-info files do.

Output: ``<dataset>/sub/HR/``, ``<dataset>/sub/LR_bicubic/X<s>/``, ``meta_info.txt`` and
``prepared.json`` (the settings; written last, so its presence means complete). Each image is one
task for a worker process; a task writes its crops, then a marker — an interrupted run resumes with
the images that have no marker yet.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from superres.datasets.home import data_home, read_json_or_none, require, write_json
from superres.datasets.images import image_files, save_png
from superres.errors import DatasetError


@dataclass(frozen=True)
class PrepareSettings:
    crop: int = 480  # BasicSR's DIV2K settings: crop_size 480, step 240, thresh_size 0
    step: int = 240
    min_size: int = 0
    scales: tuple[int, ...] = (2, 3, 4)

    def check(self) -> None:
        if self.crop < 1 or self.step < 1 or self.min_size < 0:
            raise DatasetError("crop and step must be positive and min-size not negative")
        if not self.scales or any(s < 2 for s in self.scales):
            raise DatasetError(f"scales must be 2 or more, not {self.scales}")
        if self.crop % self.multiple:
            raise DatasetError(
                f"crop {self.crop} must be a multiple of every scale ({', '.join(map(str, self.scales))})"
            )

    @property
    def multiple(self) -> int:
        return math.lcm(*self.scales)


def crop_starts(length: int, crop: int, step: int, min_size: int) -> list[int]:
    """Where crops start along one side: every ``step``, plus an edge-aligned last one (BasicSR)."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > min_size:
        starts.append(length - crop)
    return starts


def prepare_dataset(
    name: str,
    settings: PrepareSettings = PrepareSettings(),
    workers: int = 1,
    force: bool = False,
    home: Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Path:
    """Cut dataset ``name``'s HR images into sub-images with their LR; returns the ``sub`` folder."""
    settings = PrepareSettings(settings.crop, settings.step, settings.min_size, tuple(sorted(set(settings.scales))))
    settings.check()
    folder = require(name, home or data_home(), alternative="add it with `superres data add NAME PATH`")
    out = folder / "sub"
    wanted = asdict(settings) | {"scales": list(settings.scales)}
    done = read_json_or_none(out / "prepared.json")
    started = read_json_or_none(out / ".settings.json")
    for existing in (done, started):
        if existing is not None and {k: existing.get(k) for k in wanted} != wanted and not force:
            raise DatasetError(
                f"{out} was prepared with other settings ({_describe(existing)}); pass --force to prepare "
                f"again with {_describe(wanted)}"
            )
    if done is not None and not force:
        echo(f"{folder.name}: already prepared in {out} ({done['subimages']} sub-images)")
        return out
    if force or (out.exists() and started is None):
        shutil.rmtree(out, ignore_errors=True)
    (out / ".done").mkdir(parents=True, exist_ok=True)
    write_json(out / ".settings.json", wanted)

    images = image_files(folder / "HR")
    if not images:
        raise DatasetError(f"no images in {folder / 'HR'}")
    stems = [_stem(path, folder / "HR") for path in images]
    todo = [(p, s) for p, s in zip(images, stems) if not (out / ".done" / f"{s}.txt").is_file()]
    if len(todo) < len(images):
        echo(f"{folder.name}: resuming, {len(images) - len(todo)} of {len(images)} images already cut")
    _run(todo, out, settings, workers, len(images), progress)

    lines = [line for s in stems for line in (out / ".done" / f"{s}.txt").read_text().splitlines()]
    (out / "meta_info.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    write_json(out / "prepared.json", wanted | {"images": len(images), "subimages": len(lines)})
    shutil.rmtree(out / ".done")
    (out / ".settings.json").unlink()
    echo(f"{folder.name}: {len(lines)} sub-images of {len(images)} images in {out}")
    return out


def _describe(settings: dict) -> str:
    scales = ", ".join(str(s) for s in settings.get("scales", ()))
    return f"crop {settings.get('crop')}, step {settings.get('step')}, min-size {settings.get('min_size')}, scales {scales}"


def _stem(path: Path, root: Path) -> str:
    return "_".join(path.relative_to(root).with_suffix("").parts)


def _run(
    todo: list[tuple[Path, str]], out: Path, settings: PrepareSettings, workers: int, total: int, progress: bool
) -> None:
    from tqdm import tqdm

    with tqdm(
        total=total, initial=total - len(todo), unit="img", desc="cutting sub-images", disable=not progress
    ) as bar:
        if workers <= 1:
            for path, stem in todo:
                cut_image(path, stem, out, settings)
                bar.update(1)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: the caller may hold threads (torch), which fork does not copy safely.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for future in as_completed([pool.submit(cut_image, path, stem, out, settings) for path, stem in todo]):
                future.result()
                bar.update(1)


def cut_image(path: Path, stem: str, out: Path, settings: PrepareSettings) -> list[str]:
    """Write the sub-images of one HR image and their LR, then its marker; returns its meta-info lines."""
    from superres.quality.evaluation import make_lr

    image = _read_rgb(path)
    (tops, ch), (lefts, cw) = (_along(length, settings) for length in image.shape[:2])
    lines = []
    if ch and cw:  # an image smaller than one scale multiple gives nothing
        index = 0
        for top in tops:
            for left in lefts:
                index += 1
                name = f"{stem}_s{index:03d}.png"
                tile = image[top : top + ch, left : left + cw]
                save_png(out / "HR" / name, tile)
                for scale in settings.scales:
                    save_png(out / "LR_bicubic" / f"X{scale}" / name, make_lr(tile, scale))
                lines.append(f"{name} ({ch},{cw},3)")
    marker = out / ".done" / f"{stem}.txt"
    tmp = marker.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    os.replace(tmp, marker)
    return lines


def _along(length: int, settings: PrepareSettings) -> tuple[list[int], int]:
    """Crop starts and crop size along one side; a side shorter than the crop is one crop, cut to a multiple."""
    if length < settings.crop:
        return [0], length - length % settings.multiple
    return crop_starts(length, settings.crop, settings.step, settings.min_size), settings.crop


def _read_rgb(path: Path):
    """The image as H×W×3 uint8: training is RGB (gray replicated, alpha dropped, 16 bit rounded to 8)."""
    import numpy as np

    from superres.imageio import read_image, to_8bit

    pixels = read_image(path).pixels
    if pixels.dtype != np.uint8:
        pixels = to_8bit(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] in (2, 4):
        pixels = pixels[..., :-1]
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels)
