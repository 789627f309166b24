"""Training and validation data: random HR crops, their MATLAB-bicubic LR, and benchmark pairs.

Reproducibility is built into the sample stream rather than into worker processes: the
:class:`TrainSampler` hands the dataset ``(image index, seed)`` keys, and each sample's crop and
augmentation are drawn from a generator seeded by its key alone. A sample is therefore the same
whichever worker makes it and however many workers there are, and a resumed run, whose sampler
starts at the position it stopped at, sees exactly the samples the uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from superres.datasets.images import IMAGE_SUFFIXES, image_files
from superres.datasets.prepare import crop_starts
from superres.errors import ConfigError, ImageError

if TYPE_CHECKING:
    from superres.train.config import DegradationConfig

# A sample key: the image index and the words that seed the sample's random generator.
SampleKey = tuple[int, tuple[int, ...]]


# ---------------------------------------------------------------------------------------- files


def list_images(folder: str | Path) -> list[Path]:
    """All images below ``folder`` (recursively), sorted so the order is the same on every machine."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"image folder not found: {root}")
    files = image_files(root)
    if not files:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {root}")
    return files


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as an H×W×3 uint8 RGB array (grayscale replicated, 16-bit reduced to 8-bit)."""
    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                gray = np.asarray(img, dtype=np.float64) / 257.0
                return np.repeat(np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×C uint8 or float in [0, 1] → C×H×W float32 tensor."""
    array = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """C×H×W float tensor in [0, 1] → H×W×C uint8 (clamped and rounded, as the papers' metrics do)."""
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return array.transpose(1, 2, 0)


def bicubic_downscale(hr: np.ndarray, scale: int, quantize: bool = True) -> np.ndarray:
    """LR image from an HR float image in [0, 1] by MATLAB's bicubic ``imresize(hr, 1/scale)``.

    ``quantize`` makes 8-bit LR exactly as the benchmarks' ``LR_bicubic`` files were made: MATLAB
    resizes a uint8 image and rounds after each axis pass, so the crop goes through ``imresize`` as
    uint8. Training inputs then match test inputs level for level.
    """
    from superres.quality.imresize import imresize

    if quantize:
        hr8 = np.round(np.clip(hr, 0.0, 1.0) * 255.0).astype(np.uint8)
        return imresize(hr8, 1.0 / scale).astype(np.float32) / 255.0
    return np.asarray(imresize(hr, 1.0 / scale), dtype=np.float32)


def augment(images: Sequence[np.ndarray], rng: np.random.Generator, flip: bool, rotate: bool) -> list[np.ndarray]:
    """Apply one random flip / 90° rotation to all ``images`` alike (the 8 symmetries of the square)."""
    k = int(rng.integers(4)) if rotate else 0
    mirror = bool(rng.integers(2)) if flip else False
    out = []
    for image in images:
        if k:
            image = np.rot90(image, k, axes=(0, 1))
        if mirror:
            image = image[:, ::-1]
        out.append(np.ascontiguousarray(image))
    return out


# ------------------------------------------------------------------------------------ dataset


class TrainDataset(torch.utils.data.Dataset):
    """Random HR crops of ``patch_size`` and their ×``scale`` LR, as ``{"lr": C×h×w, "hr": C×H×W}``.

    Without ``lr_paths`` the LR is made from the HR crop by MATLAB-style bicubic downscaling (the
    degradation of the SRGAN and ESRGAN papers), or, with an enabled ``degradation``, by Real-ESRGAN's
    random high-order degradations (:mod:`superres.train.degrade.pipeline`), seeded by the sample's key.
    With ``lr_paths`` (one per HR image, ``scale`` times smaller) aligned crops are taken from both.
    Images smaller than the crop are skipped.
    Indexing takes a :data:`SampleKey` from :class:`TrainSampler`, or a plain index (seeded by it).
    """

    def __init__(
        self,
        hr_paths: Sequence[Path],
        scale: int,
        patch_size: int,
        lr_paths: Sequence[Path] | None = None,
        flip: bool = True,
        rotate: bool = True,
        quantize_lr: bool = True,
        cache_in_memory: bool = False,
        degradation: DegradationConfig | None = None,
    ) -> None:
        if patch_size % scale:
            raise ConfigError(f"the HR patch size ({patch_size}) must be a multiple of the scale ({scale})")
        if lr_paths is not None and len(lr_paths) != len(hr_paths):
            raise ConfigError("paired data needs exactly one LR image per HR image")
        self.scale = scale
        self.patch_size = patch_size
        self.flip = flip
        self.rotate = rotate
        self.quantize_lr = quantize_lr
        self.degradation = degradation if degradation is not None and degradation.enabled else None
        if self.degradation is not None and lr_paths is not None:
            raise ConfigError("degradations make the LR from the HR; they cannot be used with paired LR images")
        # Degraded crops carry context on every side, cropped away once degraded.
        self.crop_size = patch_size + 2 * (self.degradation.margin if self.degradation else 0)
        keep = [i for i, path in enumerate(hr_paths) if min(image_size(path)) >= self.crop_size]
        self.skipped = len(hr_paths) - len(keep)
        if not keep:
            raise ConfigError(f"no training image is at least {self.crop_size}×{self.crop_size} pixels")
        self.hr_paths = [Path(hr_paths[i]) for i in keep]
        self.lr_paths = [Path(lr_paths[i]) for i in keep] if lr_paths is not None else None
        if self.lr_paths is not None:
            for hr, lr in zip(self.hr_paths, self.lr_paths):
                (h, w), (lh, lw) = image_size(hr), image_size(lr)
                if (lh * scale, lw * scale) != (h, w):
                    raise ConfigError(f"{lr} is {lw}×{lh}, but its HR {hr.name} is {w}×{h} (scale {scale})")
        self._cache: dict[Path, np.ndarray] | None = {} if cache_in_memory else None

    def __len__(self) -> int:
        return len(self.hr_paths)

    def _read(self, path: Path) -> np.ndarray:
        if self._cache is None:
            return read_rgb(path)
        if path not in self._cache:
            self._cache[path] = read_rgb(path)
        return self._cache[path]

    def __getitem__(self, key: SampleKey | int) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (int(key), (int(key),))
        rng = np.random.default_rng(seed)
        hr_image = self._read(self.hr_paths[index])
        lr_patch = self.patch_size // self.scale
        if self.lr_paths is None:
            size = self.crop_size
            top = int(rng.integers(hr_image.shape[0] - size + 1))
            left = int(rng.integers(hr_image.shape[1] - size + 1))
            hr = hr_image[top : top + size, left : left + size]
            (hr,) = augment([hr], rng, self.flip, self.rotate)
            hr_float = hr.astype(np.float32) / 255.0
            if self.degradation is not None:
                return self._degraded(to_tensor(hr_float), seed)
            lr = bicubic_downscale(hr_float, self.scale, self.quantize_lr)
            return {"lr": to_tensor(lr), "hr": to_tensor(hr_float)}
        lr_image = self._read(self.lr_paths[index])
        top = int(rng.integers(lr_image.shape[0] - lr_patch + 1))
        left = int(rng.integers(lr_image.shape[1] - lr_patch + 1))
        lr = lr_image[top : top + lr_patch, left : left + lr_patch]
        s = self.scale
        hr = hr_image[top * s : (top + lr_patch) * s, left * s : (left + lr_patch) * s]
        lr, hr = augment([lr, hr], rng, self.flip, self.rotate)
        return {"lr": to_tensor(lr), "hr": to_tensor(hr)}

    def _degraded(self, hr: torch.Tensor, seed: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The sample's degraded pair (``where=loader``), or the HR crop with context for the trainer to degrade."""
        from superres.train.degrade.pipeline import Draw, generator_for, make_pair

        assert self.degradation is not None
        if self.degradation.where == "device":
            return {"hr_context": hr}
        pair = make_pair(hr[None], self.degradation, self.scale, Draw(generator_for(*seed)))
        return {key: value[0] for key, value in pair.items()}


def pair_lr_paths(hr_paths: Sequence[Path], hr_root: Path, lr_root: Path, scale: int) -> list[Path]:
    """For each HR image, the LR file of the same relative name (also ``NAMEx4.png``, BasicSR's style)."""
    if not lr_root.is_dir():
        raise ConfigError(f"LR folder not found: {lr_root}")
    found = []
    for hr in hr_paths:
        rel = hr.relative_to(hr_root)
        candidates = [
            lr_root / rel.parent / f"{stem}{suffix}"
            for stem in (rel.stem, f"{rel.stem}x{scale}")
            for suffix in (rel.suffix, *sorted(IMAGE_SUFFIXES))
        ]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            raise ConfigError(f"no LR image for {hr} in {lr_root} (looked for {rel.stem}.* and {rel.stem}x{scale}.*)")
        found.append(match)
    return found


# ------------------------------------------------------------------------------------ sampler


class TrainSampler(torch.utils.data.Sampler):
    """An endless, resumable stream of sample keys for one process of a (possibly distributed) run.

    Epoch ``e`` visits the images in a permutation drawn from ``(seed, e)`` — padded by wrapping to
    a multiple of ``world_size`` as ``DistributedSampler`` does — and rank ``r`` takes every
    ``world_size``-th entry from ``r``. Each key carries the seed ``(seed, e, position)``, so crops
    depend on where a sample sits in the global stream, not on which process or worker makes it.
    ``start`` is the number of samples this rank has already consumed (for resuming).
    """

    def __init__(self, num_images: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.num_images = num_images
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.per_rank = math.ceil(num_images / world_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng((self.seed, epoch)).permutation(self.num_images)
        padded = self.per_rank * self.world_size
        return np.resize(order, padded)  # np.resize repeats from the start to fill the padding

    def __iter__(self) -> Iterator[SampleKey]:
        position = self.start
        epoch, order = -1, np.empty(0, dtype=np.int64)
        while True:
            this_epoch, offset = divmod(position, self.per_rank)
            if this_epoch != epoch:
                epoch, order = this_epoch, self.epoch_order(this_epoch)
            global_position = offset * self.world_size + self.rank
            yield int(order[global_position]), (self.seed, epoch, global_position)
            position += 1

    def __len__(self) -> int:
        # The stream is endless; this is one epoch for this rank, for progress displays only.
        return self.per_rank


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's global generators from torch's per-worker seed.

    Samples are seeded by their keys and do not need this; it keeps any other randomness in a
    worker (user transforms, libraries) reproducible too.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: TrainDataset,
    batch_size: int,
    sampler: TrainSampler,
    num_workers: int,
    seed: int,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over the endless sampler; workers persist and prefetch so the model never waits."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        worker_init_fn=seed_worker,
        # Its own generator: creating the iterator then draws nothing from the global torch stream,
        # which a resumed run must find exactly as the uninterrupted run left it.
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
        drop_last=True,
    )


# ------------------------------------------------------------------------------- sub-images


def extract_subimages(
    folders: Sequence[str | Path], out_dir: str | Path, crop_size: int = 480, step: int = 240, min_size: int = 48
) -> Path:
    """Cut large images into overlapping ``crop_size`` tiles every ``step`` pixels, saved as PNG.

    Decoding a 2K image to take one 128-pixel patch wastes most of the work; training on
    pre-extracted sub-images (as BasicSR does for DIV2K: 480 px every 240) keeps workers ahead of
    the model (``superres data prepare`` stores the same, with LR, in the data home). Border tiles
    are aligned to the image edge unless at most ``min_size`` pixels are left over. The folder is
    built under a temporary name and renamed when complete, so an interrupted extraction is never
    mistaken for a finished one. An existing ``out_dir`` is reused.
    """
    out = Path(out_dir).expanduser()
    if out.is_dir():
        return out
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for folder_index, folder in enumerate(folders):
        root = Path(folder).expanduser()
        for path in list_images(root):
            image = read_rgb(path)
            h, w = image.shape[:2]
            tops = crop_starts(h, crop_size, step, min_size)
            lefts = crop_starts(w, crop_size, step, min_size)
            rel = path.relative_to(root).with_suffix("")
            stem = f"{folder_index}_" + "_".join(rel.parts)
            for i, top in enumerate(tops):
                for j, left in enumerate(lefts):
                    tile = image[top : top + crop_size, left : left + crop_size]
                    Image.fromarray(tile).save(tmp / f"{stem}_s{i:03d}_{j:03d}.png", compress_level=1)
    os.replace(tmp, out)
    return out

