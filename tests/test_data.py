"""Training data: crops, MATLAB-bicubic LR, augmentation, paired folders, the resumable sampler."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from superres.errors import ConfigError
from superres.train.data import (
    TrainDataset,
    TrainSampler,
    augment,
    bicubic_downscale,
    extract_subimages,
    list_images,
    make_loader,
    pair_lr_paths,
    read_rgb,
)


def _coordinate_image(path, height, width):
    """An image whose pixels encode their own position, so a crop reveals where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x % 256, y % 256, (x // 256) * 16 + (y // 256)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def _dihedral(image):
    """The 8 flips / 90° rotations of an H×W×C array."""
    return [np.rot90(m, k, axes=(0, 1)) for m in (image, image[:, ::-1]) for k in range(4)]


def test_list_images_is_recursive_sorted_and_strict(shared, tmp_path):
    files = list_images(shared / "train")
    assert len(files) == 490  # BSDS500_train 199 + BSDS500_test 200 + T91 91 (shared/README.md)
    assert files == sorted(files)
    with pytest.raises(ConfigError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no images"):
        list_images(tmp_path)


def test_samples_are_real_crops_with_matlab_bicubic_lr(shared):
    paths = list_images(shared / "train" / "T91")[:6]
    ds = TrainDataset(paths, scale=4, patch_size=32)
    item = ds[(2, (0, 0, 5))]
    lr, hr = item["lr"], item["hr"]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
    assert lr.dtype == hr.dtype == torch.float32
    assert 0 <= float(hr.min()) and float(hr.max()) <= 1
    # LR = MATLAB-style imresize(HR, 1/4), rounded to 8-bit levels like the benchmarks' LR files.
    expected = bicubic_downscale(hr.numpy().transpose(1, 2, 0), 4)
    assert np.array_equal(lr.numpy().transpose(1, 2, 0), expected)
    assert np.allclose(lr.numpy() * 255, np.round(lr.numpy() * 255), atol=1e-4)
    # The HR patch is one of the 8 symmetries of some 32×32 window of the source image.
    source = read_rgb(paths[2])
    patch = np.round(hr.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(source, (32, 32, 3))[..., 0, :, :, :]
    assert any((windows == np.ascontiguousarray(v)).all(axis=(-3, -2, -1)).any() for v in _dihedral(patch))


def test_samples_depend_only_on_their_key(shared):
    paths = list_images(shared / "train" / "T91")[:4]
    ds = TrainDataset(paths, scale=4, patch_size=32)
    a, b = ds[(1, (0, 3, 7))], ds[(1, (0, 3, 7))]
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])
    c = ds[(1, (0, 3, 8))]
    assert not torch.equal(a["hr"], c["hr"])


def test_crops_come_from_the_right_place(tmp_path):
    source = _coordinate_image(tmp_path / "coords.png", 50, 70)
    ds = TrainDataset([tmp_path / "coords.png"], scale=2, patch_size=16, flip=False, rotate=False)
    for seed in range(5):
        hr = np.round(ds[(0, (seed,))]["hr"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        top, left = int(hr[0, 0, 1]), int(hr[0, 0, 0])
        assert np.array_equal(hr, source[top : top + 16, left : left + 16])


def test_augmentation_reaches_all_eight_symmetries():
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    seen = set()
    for seed in range(64):
        (out,) = augment([image], np.random.default_rng(seed), flip=True, rotate=True)
        seen.add(out.tobytes() + bytes(out.shape))
    assert len(seen) == 8
    (same,) = augment([image], np.random.default_rng(0), flip=False, rotate=False)
    assert np.array_equal(same, image)


def test_images_smaller_than_the_patch_are_skipped(tmp_path):
    _coordinate_image(tmp_path / "big.png", 40, 40)
    _coordinate_image(tmp_path / "small.png", 20, 40)
    ds = TrainDataset(list_images(tmp_path), scale=4, patch_size=32)
    assert len(ds) == 1 and ds.skipped == 1
    with pytest.raises(ConfigError, match="at least"):
        TrainDataset([tmp_path / "small.png"], scale=4, patch_size=32)
    with pytest.raises(ConfigError, match="multiple"):
        TrainDataset([tmp_path / "big.png"], scale=4, patch_size=30)


def test_paired_folders_give_aligned_crops(tmp_path):
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    for i in range(2):
        source = _coordinate_image(tmp_path / "hr" / f"im{i}.png", 48, 64)
        # BasicSR-style LR names (im0x4.png); nearest-neighbour LR makes the alignment checkable.
        Image.fromarray(source[::4, ::4]).save(tmp_path / "lr" / f"im{i}x4.png")
    hr_paths = list_images(tmp_path / "hr")
    lr_paths = pair_lr_paths(hr_paths, tmp_path / "hr", tmp_path / "lr", 4)
    assert [p.name for p in lr_paths] == ["im0x4.png", "im1x4.png"]
    ds = TrainDataset(hr_paths, scale=4, patch_size=16, lr_paths=lr_paths)

    def undo(image, k, mirror):  # inverse of augment(): un-mirror, then rotate back
        return np.rot90(image[:, ::-1] if mirror else image, -k, axes=(0, 1))

    for seed in range(8):
        item = ds[(0, (seed,))]
        lr = np.round(item["lr"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        hr = np.round(item["hr"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        assert lr.shape == (4, 4, 3) and hr.shape == (16, 16, 3)
        aligned = False
        for k, mirror in itertools.product(range(4), (False, True)):
            hr0, lr0 = undo(hr, k, mirror), undo(lr, k, mirror)
            top, left = int(hr0[0, 0, 1]), int(hr0[0, 0, 0])
            window = source[top : top + 16, left : left + 16]
            aligned |= np.array_equal(hr0, window) and np.array_equal(lr0, window[::4, ::4]) and top % 4 == 0
        assert aligned  # the same symmetry was applied to both, and the LR crop sits under the HR crop
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "lr" / "im1x4.png")
    with pytest.raises(ConfigError, match="scale 4"):
        TrainDataset(hr_paths, scale=4, patch_size=16, lr_paths=lr_paths)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no LR image"):
        pair_lr_paths(hr_paths, tmp_path / "hr", tmp_path / "empty", 4)


def test_sampler_covers_each_epoch_and_resumes_mid_stream():
    sampler = TrainSampler(num_images=10, seed=3)
    stream = list(itertools.islice(sampler, 30))
    for epoch in range(3):
        assert sorted(i for i, _ in stream[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    assert [i for i, _ in stream[:10]] != [i for i, _ in stream[10:20]]  # reshuffled every epoch
    resumed = list(itertools.islice(TrainSampler(10, seed=3, start=13), 17))
    assert resumed == stream[13:]


def test_distributed_sampler_ranks_split_the_same_global_stream():
    single = list(itertools.islice(TrainSampler(12, seed=1), 24))
    rank0 = list(itertools.islice(TrainSampler(12, seed=1, rank=0, world_size=2), 12))
    rank1 = list(itertools.islice(TrainSampler(12, seed=1, rank=1, world_size=2), 12))
    # Interleaved, the two ranks see exactly the single-process stream, seeds included: every
    # sample is the same crop whatever the number of processes.
    assert [k for pair in zip(rank0, rank1) for k in pair] == single
    # An odd count is padded by wrapping, as DistributedSampler does.
    odd = [TrainSampler(5, seed=0, rank=r, world_size=2) for r in (0, 1)]
    first_epoch = [i for s in odd for i, _ in itertools.islice(s, 3)]
    assert len(first_epoch) == 6 and set(first_epoch) == set(range(5))


def test_worker_processes_do_not_change_the_batches(shared):
    paths = list_images(shared / "train" / "T91")[:8]
    ds = TrainDataset(paths, scale=4, patch_size=16)

    def batches(workers):
        loader = make_loader(ds, 3, TrainSampler(len(ds), seed=0), num_workers=workers, seed=0)
        return list(itertools.islice(loader, 3))

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])


def test_extract_subimages(tmp_path):
    (tmp_path / "src").mkdir()
    source = _coordinate_image(tmp_path / "src" / "a.png", 70, 100)
    out = extract_subimages([tmp_path / "src"], tmp_path / "subs", crop_size=40, step=20, min_size=5)
    tiles = sorted(out.iterdir())
    # rows start at 0, 20 and (edge-aligned) 30; columns at 0, 20, 40, 60 (the last one reaches the edge)
    assert len(tiles) == 3 * 4
    tile = np.asarray(Image.open(out / "0_a_s002_001.png"))
    assert np.array_equal(tile, source[30:70, 20:60])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    assert extract_subimages([tmp_path / "src"], out) == out  # an existing cache is reused
