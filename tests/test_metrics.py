"""PSNR/SSIM of the papers' protocol, checked against scikit-image and between NumPy and torch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from superres.quality.imresize import imresize
from superres.quality.metrics import psnr, psnr_batch, rgb_to_y, smallest_side, ssim, ssim_batch

BORDER = 4


@pytest.fixture(scope="module")
def pair(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """Set5 butterfly: HR and the bicubic upscale of its MATLAB LR."""
    bench = shared / "benchmarks" / "Set5"
    hr = np.asarray(Image.open(bench / "HR" / "butterfly.png"))
    lr = np.asarray(Image.open(bench / "LR_bicubic" / "X4" / "butterfly.png"))
    return hr, imresize(lr, 4.0)


def _skimage_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None = None) -> float:
    # scikit-image filters the whole image (reflect padding) and then drops (win - 1) / 2 = 5
    # pixels per side before averaging: the same mean as MATLAB's 'valid' filtering.
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=channel_axis,
    )


def _crop(a: np.ndarray) -> np.ndarray:
    return a[BORDER:-BORDER, BORDER:-BORDER]


def test_rgb_to_y_is_bt601_studio_range() -> None:
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(rgb)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966])
    # Floating-point input in [0, 1] gives Y on the 0–1 scale, like MATLAB's rgb2ycbcr(double).
    np.testing.assert_allclose(rgb_to_y(rgb / 255.0) * 255, rgb_to_y(rgb))
    # Not rounded: gray 77 has Y = 16 + 219 · 77 / 255 = 82.129...
    assert rgb_to_y(np.full((1, 1, 3), 77, np.uint8))[0, 0] == pytest.approx(16 + 219 * 77 / 255, abs=1e-12)


def test_psnr_y_matches_skimage(pair: tuple[np.ndarray, np.ndarray]) -> None:
    hr, sr = pair
    expected = peak_signal_noise_ratio(_crop(rgb_to_y(hr)), _crop(rgb_to_y(sr)), data_range=255)
    assert psnr(sr, hr, crop_border=BORDER) == pytest.approx(expected, abs=1e-4)
    # The literature's bicubic ×4 butterfly is about 22.1 dB; a wrong protocol is far off.
    assert 21.5 < psnr(sr, hr, crop_border=BORDER) < 22.7


def test_ssim_y_matches_skimage(pair: tuple[np.ndarray, np.ndarray]) -> None:
    hr, sr = pair
    expected = _skimage_ssim(_crop(rgb_to_y(hr)), _crop(rgb_to_y(sr)))
    assert ssim(sr, hr, crop_border=BORDER) == pytest.approx(expected, abs=1e-4)


def test_rgb_variants_match_skimage(pair: tuple[np.ndarray, np.ndarray]) -> None:
    hr, sr = pair
    expected_psnr = peak_signal_noise_ratio(_crop(hr), _crop(sr), data_range=255)
    expected_ssim = _skimage_ssim(_crop(hr).astype(np.float64), _crop(sr).astype(np.float64), channel_axis=2)
    assert psnr(sr, hr, crop_border=BORDER, y_only=False) == pytest.approx(expected_psnr, abs=1e-4)
    assert ssim(sr, hr, crop_border=BORDER, y_only=False) == pytest.approx(expected_ssim, abs=1e-4)
    # Y and RGB are different protocols and give different numbers.
    assert abs(psnr(sr, hr, BORDER, y_only=False) - psnr(sr, hr, BORDER)) > 0.1


def test_gray_images_are_scored_on_their_gray_values() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    expected = peak_signal_noise_ratio(_crop(a), _crop(b), data_range=255)
    assert psnr(a, b, crop_border=BORDER) == pytest.approx(expected, abs=1e-10)
    expected = _skimage_ssim(_crop(a).astype(np.float64), _crop(b).astype(np.float64))
    assert ssim(a, b, crop_border=BORDER) == pytest.approx(expected, abs=1e-4)


def test_identical_images() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(image, image, crop_border=2) == math.inf
    assert ssim(image, image, crop_border=2) == pytest.approx(1.0)


def test_bad_inputs_are_refused() -> None:
    image = np.zeros((32, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        psnr(image, image[:16], crop_border=0)
    with pytest.raises(TypeError, match="uint8"):
        psnr(image.astype(np.float32), image.astype(np.float32), crop_border=0)
    with pytest.raises(TypeError, match="uint8"):
        psnr(image, image.astype(np.float32), crop_border=0)  # either one
    with pytest.raises(ValueError, match=r"H×W×3 RGB or H×W gray images, got shape \(32, 20, 4\)"):
        psnr(np.zeros((32, 20, 4), np.uint8), np.zeros((32, 20, 4), np.uint8), crop_border=0)
    with pytest.raises(ValueError, match="crop_border must be >= 0, not -1"):
        psnr(image, image, crop_border=-1)
    with pytest.raises(ValueError, match="cropping 10 px leaves nothing of a 32×20 image"):
        psnr(image, image, crop_border=10)  # no columns left
    with pytest.raises(ValueError, match="cropping 10 px leaves nothing of a 20×32 image"):
        psnr(image.transpose(1, 0, 2), image.transpose(1, 0, 2), crop_border=10)  # no rows left
    with pytest.raises(ValueError, match=r"at least 11×11 pixels after cropping, got \(22, 10\)"):
        ssim(image, image, crop_border=5)
    with pytest.raises(ValueError, match=r"rgb_to_y needs an H×W×3 RGB image, got shape \(32, 20\)"):
        rgb_to_y(image[..., 0])
    with pytest.raises(TypeError, match="rgb_to_y takes uint8 or floating-point images, not int32"):
        rgb_to_y(image.astype(np.int32))


@pytest.mark.parametrize("border", [0, 4])
def test_smallest_side_is_what_ssim_takes(border: int) -> None:
    side = smallest_side(border)
    image = np.random.default_rng(border).integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
    assert side == 11 + 2 * border
    assert ssim(image, image, crop_border=border) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim(image[1:], image[1:], crop_border=border)


def test_smallest_inputs_are_scored() -> None:
    """No crop; one row or column left after cropping; the 11×11 SSIM needs; H×W×1 scored as gray."""
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    assert psnr(a, b, crop_border=0, y_only=False) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    assert psnr(a, b, crop_border=10, y_only=False) == pytest.approx(
        peak_signal_noise_ratio(a[10:11, 10:20], b[10:11, 10:20], data_range=255)
    )
    assert psnr(a[:, :21], b[:, :21], crop_border=10, y_only=False) == pytest.approx(
        peak_signal_noise_ratio(a[10:11, 10:11], b[10:11, 10:11], data_range=255)
    )
    assert ssim(a[:15, :15], b[:15, :15], crop_border=2, y_only=False) == pytest.approx(
        _skimage_ssim(a[2:13, 2:13].astype(np.float64), b[2:13, 2:13].astype(np.float64), channel_axis=2), abs=1e-4
    )
    gray_a, gray_b = a[..., 1], b[..., 1]
    assert psnr(gray_a[..., None], gray_b[..., None], crop_border=2) == psnr(gray_a, gray_b, crop_border=2)
    assert ssim(gray_a[..., None], gray_b[..., None], crop_border=2) == ssim(gray_a, gray_b, crop_border=2)
    # float32 RGB in [0, 1]: Y on the 0–1 scale, computed in float64
    y = rgb_to_y((a / 255).astype(np.float32))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y * 255, rgb_to_y(a), atol=1e-4)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("y_only", [True, False])
def test_torch_batch_agrees_with_numpy(pair: tuple[np.ndarray, np.ndarray], y_only: bool) -> None:
    hr, sr = pair
    noisy = np.clip(sr.astype(int) + np.random.default_rng(0).integers(-20, 21, sr.shape), 0, 255).astype(np.uint8)
    t_sr, t_hr = _to_tensor([sr, noisy]), _to_tensor([hr, hr])
    got_psnr = psnr_batch(t_sr, t_hr, crop_border=BORDER, y_only=y_only)
    got_ssim = ssim_batch(t_sr, t_hr, crop_border=BORDER, y_only=y_only)
    assert got_psnr.shape == got_ssim.shape == (2,)
    for i, image in enumerate((sr, noisy)):
        assert float(got_psnr[i]) == pytest.approx(psnr(image, hr, BORDER, y_only), abs=1e-4)
        assert float(got_ssim[i]) == pytest.approx(ssim(image, hr, BORDER, y_only), abs=1e-4)


def test_torch_batch_rounds_to_8_bit_first() -> None:
    # A network's output is continuous; scores are defined on its 8-bit rounding (with clamping).
    rng = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 48, 48, generator=rng)
    out = (hr + 0.05 * torch.randn(1, 3, 48, 48, generator=rng)).clamp(-0.1, 1.1)
    out_8bit = np.floor(np.clip(out[0].permute(1, 2, 0).double().numpy(), 0, 1) * 255 + 0.5).astype(np.uint8)
    hr_8bit = np.floor(hr[0].permute(1, 2, 0).double().numpy() * 255 + 0.5).astype(np.uint8)
    assert float(psnr_batch(out, hr, crop_border=4)[0]) == pytest.approx(psnr(out_8bit, hr_8bit, 4), abs=1e-4)
    assert float(ssim_batch(out, hr, crop_border=4)[0]) == pytest.approx(ssim(out_8bit, hr_8bit, 4), abs=1e-4)


def test_torch_batch_refuses_bad_inputs_and_scores_the_smallest() -> None:
    t = torch.rand(2, 3, 20, 32, generator=torch.Generator().manual_seed(5))
    u = torch.rand(2, 3, 20, 32, generator=torch.Generator().manual_seed(6))
    with pytest.raises(ValueError, match=r"batches differ in shape: \(2, 3, 20, 32\) vs \(1, 3, 20, 32\)"):
        psnr_batch(t, u[:1], crop_border=0)
    for shape in ((3, 20, 32), (2, 2, 20, 32)):
        with pytest.raises(ValueError, match=r"expected N×3×H×W or N×1×H×W tensors, got \("):
            psnr_batch(t.reshape(-1)[: np.prod(shape)].reshape(shape), u.reshape(-1)[: np.prod(shape)].reshape(shape), 0)
    with pytest.raises(ValueError, match="crop_border must be >= 0, not -1"):
        psnr_batch(t, u, crop_border=-1)
    with pytest.raises(ValueError, match=r"cropping 10 px leaves nothing of \(20, 32\) images"):
        psnr_batch(t, u, crop_border=10)  # no rows left
    with pytest.raises(ValueError, match=r"cropping 10 px leaves nothing of \(32, 20\) images"):
        psnr_batch(t.transpose(2, 3), u.transpose(2, 3), crop_border=10)  # no columns left
    with pytest.raises(ValueError, match=r"at least 11×11 pixels after cropping, got \(10, 22\)"):
        ssim_batch(t, u, crop_border=5)
    scores = psnr_batch(t, u, crop_border=0)
    assert scores.dtype == torch.float64 and scores.shape == (2,)
    eight = [(x.permute(0, 2, 3, 1).double().numpy() * 255 + 0.5).astype(np.uint8) for x in (t, u)]
    assert scores[1].item() == pytest.approx(psnr(eight[0][1], eight[1][1], crop_border=0), abs=1e-9)
    one_row = psnr_batch(t[:, :, :, :21], u[:, :, :, :21], crop_border=9)  # 2 × 3 pixels left
    assert one_row[0].item() == pytest.approx(psnr(eight[0][0][:, :21], eight[1][0][:, :21], crop_border=9), abs=1e-9)
    assert psnr_batch(t[:, :, :19, :21], u[:, :, :19, :21], crop_border=9)[0].item() == pytest.approx(
        psnr(eight[0][0][:19, :21], eight[1][0][:19, :21], crop_border=9), abs=1e-9
    )  # 1 × 3
    assert psnr_batch(t[:, :, :21, :19], u[:, :, :21, :19], crop_border=9)[0].item() == pytest.approx(
        psnr(eight[0][0][:21, :19], eight[1][0][:21, :19], crop_border=9), abs=1e-9
    )  # 3 × 1
    assert ssim_batch(t[:, :, :15, :15], u[:, :, :15, :15], crop_border=2)[0].item() == pytest.approx(
        ssim(eight[0][0][:15, :15], eight[1][0][:15, :15], crop_border=2), abs=1e-9
    )


def test_torch_batch_gray() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (30, 30), dtype=np.uint8)
    b = rng.integers(0, 256, (30, 30), dtype=np.uint8)
    ta = torch.from_numpy(a)[None, None].float() / 255
    tb = torch.from_numpy(b)[None, None].float() / 255
    assert float(psnr_batch(ta, tb, crop_border=2)[0]) == pytest.approx(psnr(a, b, 2), abs=1e-4)
    assert float(ssim_batch(ta, tb, crop_border=2)[0]) == pytest.approx(ssim(a, b, 2), abs=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
def test_torch_batch_rounds_exact_halves_away_from_zero(channels: int) -> None:
    """MATLAB's im2uint8 rounds k + 0.5 up to k + 1 (half away from zero); torch.round would take half of
    them down (0.5 → 0, 2.5 → 2). In float64, (k + 0.5) / 255 · 255 is k + 0.5 exactly for every k."""
    k = torch.arange(255, dtype=torch.float64)
    halves = (k + 0.5) / 255
    assert torch.equal(halves * 255, k + 0.5)  # really exact halves once scaled
    images = halves.reshape(1, 1, 15, 17).expand(2, channels, 15, 17)
    rounded_up = ((k + 1) / 255).reshape(1, 1, 15, 17).expand(2, channels, 15, 17)
    assert torch.isinf(psnr_batch(images, rounded_up, crop_border=0)).all()
    assert torch.isinf(psnr_batch(images, rounded_up, crop_border=0, y_only=False)).all()
    # just below the halves every value rounds down, one level from k + 1: MSE 1 (Y: (219/255)², the luma
    # of a one-level step on all three channels, 65.481 + 128.553 + 24.966 = 219, over 255)
    below = ((k + 0.5 - 1e-6) / 255).reshape(1, 1, 15, 17).expand(2, channels, 15, 17)
    level = 219 / 255 if channels == 3 else 1.0
    expected = 10 * math.log10(255**2 / level**2)
    assert psnr_batch(below, rounded_up, crop_border=0).tolist() == pytest.approx([expected] * 2, abs=1e-9)
    assert psnr_batch(below, rounded_up, crop_border=0, y_only=False).tolist() == pytest.approx(
        [10 * math.log10(255**2)] * 2, abs=1e-9
    )
