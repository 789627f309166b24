"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan, Bovik, IEEE SPL 2013), as the official
MATLAB release (``computequality.m``) computes it. Lower is more natural; no reference image is needed.

NIQE fits a multivariate Gaussian (MVG) to 36 natural-scene statistics of an image's 96×96 blocks and
reports its distance to the MVG of pristine photographs (eq. 10)::

    D = sqrt((ν₁ − ν₂)ᵀ ((Σ₁ + Σ₂) / 2)⁺ (ν₁ − ν₂))

Per block and per scale (the image, then MATLAB-bicubic ×½ with 48×48 blocks), 18 features: the
generalised Gaussian fitted to the MSCN coefficients (eq. 1: (I − μ)/(σ + 1), μ and σ from the 7×7 Gaussian
window, ``'replicate'`` borders) and the asymmetric GGD fitted to products of horizontal, vertical and
both diagonal neighbours (eqs. 2–8, ``circshift`` inside each block). The pristine ν₂, Σ₂ are the
release's ``modelparameters.mat`` (``data/niqe_pristine_params.npz``, notice in ``data/NOTICE.md``).

Channel: the SR literature (PIRM 2018, ESRGAN) scores the Y of MATLAB's ``rgb2ycbcr``, rounded to
integers; the release's own demo scores ``rgb2gray``. Both are here (``channel="y" | "gray"``).
Everything runs on whole arrays of blocks at once: ~0.05 s for a 512×512 image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

from superres.quality.imresize import imresize
from superres.quality.metrics import rgb_to_y

Channel = Literal["y", "gray"]
CHANNELS: tuple[str, ...] = ("y", "gray")
BLOCK = 96  # the release's block size, the one the pristine model was fitted with
_PRISTINE_FILE = "niqe_pristine_params.npz"

# MATLAB rgb2gray's weights (the inverse of its NTSC transform, rounded as MATLAB stores them).
_GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


@dataclass(frozen=True)
class PristineModel:
    mu: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    window: np.ndarray  # (7, 7), sums to one


@functools.lru_cache(maxsize=1)
def pristine_model() -> PristineModel:
    """The release's pristine MVG and window, read once from the package data."""
    with resources.files("superres.quality").joinpath("data", _PRISTINE_FILE).open("rb") as f:
        data = np.load(f)
        names = ("mu_pris_param", "cov_pris_param", "gaussian_window")
        mu, cov, window = (np.asarray(data[k], dtype=np.float64) for k in names)
    return PristineModel(mu.reshape(-1), cov, window / window.sum())


def niqe(image: np.ndarray, crop_border: int = 0, channel: Channel = "y") -> float:
    """NIQE of a uint8 image (``H×W×3`` RGB or ``H×W`` gray); ``crop_border`` pixels are cut off first."""
    plane = niqe_plane(image, channel)
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, not {crop_border}")
    if crop_border:
        plane = plane[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_of_plane(plane)


def niqe_plane(image: np.ndarray, channel: Channel = "y") -> np.ndarray:
    """The float64 plane NIQE scores: rounded Y (``rgb2ycbcr``) or ``rgb2gray`` of RGB, gray as it is."""
    if image.dtype != np.uint8:
        raise TypeError(f"NIQE takes uint8 images (round the SR output first), not {image.dtype}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"NIQE takes H×W×3 RGB or H×W gray images, got shape {image.shape}")
    if channel == "y":
        values = rgb_to_y(image)
    else:
        values = image.astype(np.float64) @ np.array(_GRAY_COEFFS)
    # MATLAB returns uint8 for uint8 input: rounded half away from zero (all values are positive).
    return np.floor(values + 0.5)


def niqe_of_plane(plane: np.ndarray, model: PristineModel | None = None) -> float:
    """NIQE of one float plane on the 0–255 scale (``computequality.m``), cropped to whole 96×96 blocks."""
    model = model or pristine_model()
    rows, cols = (plane.shape[0] // BLOCK) * BLOCK, (plane.shape[1] // BLOCK) * BLOCK
    if rows * cols < 2 * BLOCK * BLOCK:
        raise ValueError(
            f"NIQE needs at least two {BLOCK}×{BLOCK} blocks, but the image is {plane.shape[1]}×{plane.shape[0]}"
        )
    image = np.asarray(plane[:rows, :cols], dtype=np.float64)
    features = []
    for scale in (1, 2):
        features.append(block_features(mscn(image, model.window), BLOCK // scale))
        if scale == 1:
            image = imresize(image, 0.5)
    return mvg_distance(np.concatenate(features, axis=1), model.mu, model.cov)


def mscn(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients, (I − μ) / (σ + 1) (eq. 1)."""
    mu = _filter_replicate(image, window)
    sigma = np.sqrt(np.abs(_filter_replicate(image * image, window) - mu * mu))
    return (image - mu) / (sigma + 1.0)


def _filter_replicate(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``imfilter(image, window, 'replicate')`` for a separable, symmetric window, as two 1-D passes."""
    g = window.sum(axis=1)  # window = g gᵀ with sum(g) = 1
    half = g.size // 2
    padded = np.pad(image, half, mode="edge")
    rows, cols = image.shape
    vertical = sum(g[k] * padded[k : k + rows, :] for k in range(g.size))
    return sum(g[k] * vertical[:, k : k + cols] for k in range(g.size))


def block_features(coeffs: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of every ``block``×``block`` block (``computefeature.m``): ``(n_blocks, 18)``."""
    nh, nw = coeffs.shape[0] // block, coeffs.shape[1] // block
    blocks = coeffs[: nh * block, : nw * block].reshape(nh, block, nw, block).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(nh * nw, block, block)
    alpha, left, right = aggd_fit(blocks.reshape(len(blocks), -1))
    columns = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # horizontal, vertical, main and second diagonal
        products = blocks * np.roll(blocks, shift, axis=(1, 2))  # circshift wraps inside each block
        alpha, left, right = aggd_fit(products.reshape(len(blocks), -1))
        columns += [alpha, (right - left) * _gamma_ratio(alpha, 2, 1), left, right]  # eq. 8: the mean
    return np.stack(columns, axis=1)


def aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching fit of an asymmetric generalised Gaussian to each row (``estimateaggdparam.m``).

    Returns (α, β_l, β_r). The shape α is the grid value 0.2:0.001:10 whose ratio
    Γ(2/α)² / (Γ(1/α) Γ(3/α)) is nearest the sample's normalised r̂ (Lasmar et al. 2009).
    """
    squares = samples * samples
    negative, positive = samples < 0, samples > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((squares * negative).sum(axis=1) / negative.sum(axis=1))
        right_std = np.sqrt((squares * positive).sum(axis=1) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(samples).mean(axis=1) ** 2 / squares.mean(axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    grid, ratios = _shape_grid()
    alpha = grid[_nearest(ratios, r_hat_norm)]
    scale = np.sqrt(_gamma_ratio(alpha, 1, 3))
    return alpha, left_std * scale, right_std * scale


@functools.lru_cache(maxsize=1)
def _shape_grid() -> tuple[np.ndarray, np.ndarray]:
    grid = np.arange(0.2, 10.001, 0.001)  # as MATLAB's 0.2:0.001:10 (9801 values)
    ratios = np.array([math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a)) for a in grid])
    return grid, ratios


def _nearest(ratios: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest grid ratio (the grid is increasing); the lower one on a tie, 0 for NaN,
    as MATLAB's ``min`` of the squared differences picks."""
    upper = np.clip(np.searchsorted(ratios, values), 1, len(ratios) - 1)
    lower = upper - 1
    take_upper = (ratios[upper] - values) ** 2 < (ratios[lower] - values) ** 2
    index = np.where(take_upper, upper, lower)
    return np.where(np.isnan(values), 0, index)


def _gamma_ratio(alpha: np.ndarray, a: int, b: int) -> np.ndarray:
    """Γ(a/α) / Γ(b/α), elementwise."""
    return np.array([math.gamma(a / x) / math.gamma(b / x) for x in np.ravel(alpha)]).reshape(np.shape(alpha))


def mvg_distance(features: np.ndarray, mu_pristine: np.ndarray, cov_pristine: np.ndarray) -> float:
    """Eq. 10 between the MVG of ``features`` (rows with a NaN left out, as ``nanmean``/``nancov``) and
    the pristine MVG; the pseudo-inverse uses MATLAB's ``pinv`` tolerance."""
    mu = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    cov = np.cov(complete, rowvar=False)
    pooled = (cov_pristine + cov) / 2
    inverse = np.linalg.pinv(pooled, rcond=max(pooled.shape) * np.finfo(np.float64).eps)
    diff = mu_pristine - mu
    return float(np.sqrt(diff @ inverse @ diff))
