"""PSNR and SSIM exactly as the SR papers' MATLAB scripts compute them.

The protocol behind every table since SRCNN (Dong et al. 2014) and used by SRResNet/SRGAN
(Ledig et al. 2017, §4.1) and ESRGAN (Wang et al. 2018, §4.1):

* the SR output is clamped and rounded to 8 bits before scoring;
* ``scale`` pixels are cropped from every border;
* scores are on the luma Y of ITU-R BT.601 studio range, MATLAB's ``rgb2ycbcr`` on
  ``im2double`` input — ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1] —
  kept in floating point, not rounded;
* a grayscale image is scored on its own gray values (the scripts convert only 3-channel
  images; this is what Set14's ``bridge`` gets in the published tables — taking Y of the gray
  replicated to RGB instead would lift the Set14 bicubic row from 26.00 to 26.09 dB);
* PSNR with peak 255;
* SSIM as Wang et al.'s ``ssim_index.m`` (IEEE TIP 2004): 11×11 Gaussian window, σ = 1.5,
  K = (0.01, 0.03), L = 255, statistics over the "valid" region only, no downsampling.

``y_only=False`` scores RGB instead (Real-ESRGAN-style reporting): PSNR over all channels,
SSIM averaged over the channels.

The NumPy functions take uint8 images (``H×W×3`` RGB or ``H×W`` gray). The ``*_batch`` torch
functions take ``N×C×H×W`` float tensors in [0, 1] (C = 3 RGB or 1 gray), round them to 8 bits
the same way and return one score per image, for validation during training.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

# BT.601 studio-range luma coefficients for R, G, B in [0, 1], and the offset (MATLAB rgb2ycbcr).
_Y_COEFFS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_PEAK = 255.0
# SSIM constants, Wang et al. 2004: C1 = (K1 L)^2, C2 = (K2 L)^2 (eqs. 7, 9); K1, K2 and the
# 11×11 Gaussian window with σ = 1.5 are the settings of §III-C.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * _PEAK) ** 2
_SSIM_C2 = (0.03 * _PEAK) ** 2

PROTOCOL_Y = (
    "Y of BT.601 studio range (gray images: gray values), SR rounded to 8 bit, "
    "border = scale cropped, PSNR peak 255, SSIM 11×11 Gaussian σ=1.5 valid"
)
PROTOCOL_RGB = (
    "RGB, SR rounded to 8 bit, border = scale cropped, PSNR peak 255 over all channels, "
    "SSIM 11×11 Gaussian σ=1.5 valid, mean over channels"
)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma Y of BT.601 studio range, as MATLAB's ``rgb2ycbcr(im2double(img))(:,:,1)``.

    ``img`` is ``H×W×3`` RGB. uint8 input gives float64 Y on the 0–255 scale (16–235, not
    rounded); floating-point input in [0, 1] gives Y on the 0–1 scale, like MATLAB.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an H×W×3 RGB image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return _Y_OFFSET + img.astype(np.float64) @ np.array(_Y_COEFFS) / _PEAK
    if np.issubdtype(img.dtype, np.floating):
        return (_Y_OFFSET + img.astype(np.float64) @ np.array(_Y_COEFFS)) / _PEAK
    raise TypeError(f"rgb_to_y takes uint8 or floating-point images, not {img.dtype}")


def psnr(img1: np.ndarray, img2: np.ndarray, crop_border: int, y_only: bool = True) -> float:
    """PSNR in dB between two uint8 images (``H×W×3`` or ``H×W``); ``inf`` if identical."""
    a, b = _prepare_pair(img1, img2, crop_border, y_only)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(_PEAK**2 / mse)


def smallest_side(crop_border: int) -> int:
    """The smallest height and width that SSIM can score: its 11×11 window inside the cropped border."""
    return _SSIM_WINDOW + 2 * crop_border


def ssim(img1: np.ndarray, img2: np.ndarray, crop_border: int, y_only: bool = True) -> float:
    """Mean SSIM between two uint8 images (``H×W×3`` or ``H×W``); RGB: mean over channels."""
    a, b = _prepare_pair(img1, img2, crop_border, y_only)
    if a.ndim == 2:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def _prepare_pair(
    img1: np.ndarray, img2: np.ndarray, crop_border: int, y_only: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The two float64 planes (or RGB stacks) on the 0–255 scale that the scores compare."""
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {img1.shape} vs {img2.shape}")
    if img1.dtype != np.uint8 or img2.dtype != np.uint8:
        raise TypeError(f"metrics take uint8 images (round the SR output first), got {img1.dtype}, {img2.dtype}")
    if img1.ndim == 3 and img1.shape[2] == 1:
        img1, img2 = img1[..., 0], img2[..., 0]
    if not (img1.ndim == 2 or (img1.ndim == 3 and img1.shape[2] == 3)):
        raise ValueError(f"metrics take H×W×3 RGB or H×W gray images, got shape {img1.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, not {crop_border}")

    if img1.ndim == 3 and y_only:
        a, b = rgb_to_y(img1), rgb_to_y(img2)
    else:
        a, b = img1.astype(np.float64), img2.astype(np.float64)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"cropping {crop_border} px leaves nothing of a {img1.shape[0]}×{img1.shape[1]} image")
    return a, b


def gaussian_window_1d() -> np.ndarray:
    """The separable factor of MATLAB's ``fspecial('gaussian', 11, 1.5)``, summing to one."""
    x = np.arange(_SSIM_WINDOW, dtype=np.float64) - (_SSIM_WINDOW - 1) / 2
    g = np.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(planes: ArrayT, g: np.ndarray) -> ArrayT:
    """``filter2(g gᵀ, plane, 'valid')`` over the last two axes, as two 1-D passes (the Gaussian
    is separable). Works on NumPy arrays and torch tensors alike."""
    n = g.size
    rows, cols = planes.shape[-2] - n + 1, planes.shape[-1] - n + 1
    vertical = sum(float(g[k]) * planes[..., k : k + rows, :] for k in range(n))
    return sum(float(g[k]) * vertical[..., k : k + cols] for k in range(n))


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    if min(a.shape) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}×{_SSIM_WINDOW} pixels after cropping, got {a.shape}")
    g = gaussian_window_1d()
    moments = [_filter_valid(x, g) for x in (a, b, a * a, b * b, a * b)]
    return float(_ssim_map(*moments).mean())


def _ssim_map(mu_a: ArrayT, mu_b: ArrayT, sq_a: ArrayT, sq_b: ArrayT, prod: ArrayT) -> ArrayT:
    """SSIM at every window from local means of a, b, a², b², ab (Wang et al. 2004, eq. 13)."""
    var_a = sq_a - mu_a**2
    var_b = sq_b - mu_b**2
    cov = prod - mu_a * mu_b
    return ((2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    )


# ----------------------------------------------------------------------------- torch, batched


def psnr_batch(t1: torch.Tensor, t2: torch.Tensor, crop_border: int, y_only: bool = True) -> torch.Tensor:
    """PSNR per image of two ``N×C×H×W`` float tensors in [0, 1]; float64 tensor ``[N]``."""
    a, b = _prepare_batch(t1, t2, crop_border, y_only)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * (_PEAK**2 / mse).log10()


def ssim_batch(t1: torch.Tensor, t2: torch.Tensor, crop_border: int, y_only: bool = True) -> torch.Tensor:
    """SSIM per image of two ``N×C×H×W`` float tensors in [0, 1]; float64 tensor ``[N]``."""
    import torch

    a, b = _prepare_batch(t1, t2, crop_border, y_only)
    if min(a.shape[-2:]) < _SSIM_WINDOW:
        size = tuple(a.shape[-2:])
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}×{_SSIM_WINDOW} pixels after cropping, got {size}")
    channels = a.shape[1]
    g = gaussian_window_1d()
    # All five local statistics in one pass, filtered like the NumPy version (float64 conv2d
    # on CPU is far slower than these 22 shifted sums).
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    stacked = _filter_valid(stacked, g)
    ssim_map = _ssim_map(*stacked.split(channels, dim=1))
    # Mean over each channel's map, then over channels: the RGB SSIM is the channel average.
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


def _prepare_batch(
    t1: torch.Tensor, t2: torch.Tensor, crop_border: int, y_only: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit-rounded float64 ``N×C×H×W`` (C = 1 for Y or gray) on the 0–255 scale, cropped."""
    import torch

    if t1.shape != t2.shape:
        raise ValueError(f"batches differ in shape: {tuple(t1.shape)} vs {tuple(t2.shape)}")
    if t1.ndim != 4 or t1.shape[1] not in (1, 3):
        raise ValueError(f"expected N×3×H×W or N×1×H×W tensors, got {tuple(t1.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, not {crop_border}")

    def to_8bit(t: torch.Tensor) -> torch.Tensor:
        # im2uint8: clamp, scale, round half away from zero (torch.round would round half to even).
        return (t.detach().to(torch.float64).clamp(0, 1) * _PEAK + 0.5).floor()

    a, b = to_8bit(t1), to_8bit(t2)
    if y_only and a.shape[1] == 3:
        coeffs = a.new_tensor(_Y_COEFFS).view(1, 3, 1, 1)
        a = _Y_OFFSET + (a * coeffs).sum(dim=1, keepdim=True) / _PEAK
        b = _Y_OFFSET + (b * coeffs).sum(dim=1, keepdim=True) / _PEAK
    if crop_border:
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    if a.shape[-1] < 1 or a.shape[-2] < 1:
        raise ValueError(f"cropping {crop_border} px leaves nothing of {tuple(t1.shape[-2:])} images")
    return a, b
