"""NIQE against MATLAB's known answer, and its vectorised block features against a block-by-block port."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superres.quality.imresize import imresize
from superres.quality.niqe import (
    _gamma_ratio,
    _nearest,
    _shape_grid,
    aggd_fit,
    block_features,
    niqe,
    niqe_of_plane,
    niqe_plane,
)

# The official release's computequality.m under MATLAB R2021a (../shared/README.md).
BABOON_NIQE = 5.72957338


@pytest.fixture(scope="module")
def baboon(shared: Path) -> np.ndarray:
    return np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "baboon.png").convert("RGB"))


def test_known_answer_matches_matlab(baboon: np.ndarray) -> None:
    assert niqe(baboon[:, :492], crop_border=0, channel="y") == pytest.approx(BABOON_NIQE, abs=1e-3)


def test_blurring_makes_an_image_less_natural(baboon: np.ndarray) -> None:
    blurred = imresize(imresize(baboon, 0.25), 4.0)
    assert niqe(blurred) > niqe(baboon) + 1.0


def _aggd_loop(vec: np.ndarray) -> tuple[float, float, float]:
    """estimateaggdparam.m line by line."""
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in gam])
    left = math.sqrt(np.mean(vec[vec < 0] ** 2))
    right = math.sqrt(np.mean(vec[vec > 0] ** 2))
    gammahat = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    alpha = gam[np.argmin((r_gam - rhatnorm) ** 2)]
    factor = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left * factor, right * factor


def _features_loop(block: np.ndarray) -> list[float]:
    """computefeature.m line by line (circshift = np.roll on the block)."""
    alpha, left, right = _aggd_loop(block.ravel())
    feat = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, left, right = _aggd_loop((block * np.roll(block, shift, axis=(0, 1))).ravel())
        feat += [alpha, (right - left) * math.gamma(2 / alpha) / math.gamma(1 / alpha), left, right]
    return feat


def test_vectorised_block_features_equal_the_per_block_port() -> None:
    rng = np.random.default_rng(0)
    # Laplacian coefficients of different spread per block, skewed in some: the fits differ per block.
    coeffs = rng.laplace(size=(96, 144)) * np.repeat(np.repeat(rng.uniform(0.2, 2, (2, 3)), 48, 0), 48, 1)
    coeffs[:48, :48] += 0.3
    got = block_features(coeffs, 48)
    blocks = [coeffs[i : i + 48, j : j + 48] for i in (0, 48) for j in (0, 48, 96)]
    np.testing.assert_allclose(got, np.array([_features_loop(b) for b in blocks]), rtol=1e-10)


def test_aggd_fit_of_an_empty_side_is_nan_and_alpha_the_grid_start() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a flat or one-sided block is expected, not worth a warning
        alpha, left, right = aggd_fit(np.array([[1.0, 2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    assert math.isnan(left[0]) and right[0] > 0 and alpha[0] == pytest.approx(0.2)
    assert math.isnan(left[1]) and math.isnan(right[1]) and alpha[1] == pytest.approx(0.2)


def test_nearest_grid_ratio_at_the_ends_and_on_ties() -> None:
    """The shape grid's ratios increase from 0.063 (α = 0.2) to 0.741 (α = 10): values beyond either end
    take the end; a value halfway between two ratios takes the lower one, as MATLAB's min does."""
    grid, ratios = _shape_grid()
    last = len(ratios) - 1
    values = np.array([0.0, ratios[0], (ratios[0] + ratios[1]) / 2, ratios[1] * 0.75 + ratios[2] * 0.25, 0.9, ratios[last]])
    np.testing.assert_array_equal(_nearest(ratios, values), [0, 0, 0, 1, last, last])
    k = 3  # an exact tie in float64 (as for about half the grid)
    halfway = (ratios[k] + ratios[k + 1]) / 2
    assert (ratios[k + 1] - halfway) ** 2 == (ratios[k] - halfway) ** 2
    assert _nearest(ratios, np.array([halfway]))[0] == k
    assert _gamma_ratio(np.full((2, 3), 2.0), 2, 1).shape == (2, 3)  # elementwise, any shape


def test_channels_and_border(baboon: np.ndarray) -> None:
    gray = niqe_plane(baboon, "gray")
    expected = np.floor(baboon.astype(np.float64) @ [0.298936021293775, 0.587043074451121, 0.114020904255103] + 0.5)
    np.testing.assert_array_equal(gray, expected)
    assert niqe(baboon, channel="gray") == pytest.approx(niqe_of_plane(gray))
    y = niqe_plane(baboon, "y")
    assert niqe(baboon, crop_border=4) == pytest.approx(niqe_of_plane(y[4:-4, 4:-4]))
    assert niqe(y.astype(np.uint8)) == pytest.approx(niqe(baboon))  # a gray image is scored as it is


def test_bad_input_is_refused(baboon: np.ndarray) -> None:
    with pytest.raises(ValueError, match="two 96×96 blocks"):
        niqe(baboon[:100, :100])
    with pytest.raises(ValueError, match="^NIQE needs at least two 96×96 blocks, but the image is 191×96$"):
        niqe(baboon[:96, :191])
    with pytest.raises(TypeError, match="uint8"):
        niqe(baboon.astype(np.float32))
    with pytest.raises(ValueError, match="^channel must be one of y, gray, not 'rgb'$"):
        niqe(baboon, channel="rgb")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^crop_border must be >= 0, not -1$"):
        niqe(baboon, crop_border=-1)
    with pytest.raises(ValueError, match=r"^NIQE takes H×W×3 RGB or H×W gray images, got shape \(480, 500, 4\)$"):
        niqe(np.dstack([baboon, baboon[..., :1]]))


def test_whole_blocks_and_the_smallest_image(baboon: np.ndarray) -> None:
    """Scored on whole 96×96 blocks from the top left, rows and columns counted apart; two blocks suffice;
    H×W×1 is gray; RGB's default channel is Y."""
    assert niqe(baboon[:200, :300]) == niqe(baboon[:192, :288])
    assert math.isfinite(niqe(baboon[:96, :192])) and math.isfinite(niqe(baboon[:192, :96]))
    gray = baboon[..., 1]
    assert niqe(gray[..., None]) == niqe(gray)
    np.testing.assert_array_equal(niqe_plane(baboon), niqe_plane(baboon, "y"))


def test_a_512_image_takes_well_under_a_second(baboon: np.ndarray) -> None:
    image = np.tile(baboon, (2, 2, 1))[:512, :512]
    niqe(image)  # the grid of shape ratios is built once
    times = []
    for _ in range(3):
        start = time.perf_counter()
        niqe(image)
        times.append(time.perf_counter() - start)
    assert sorted(times)[1] < 1.0  # ~0.04 s on one idle core; the issue asks for ≥ 5 per second
