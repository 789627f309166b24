"""Fixed, seeded degradation recipes for the real-world benchmark (``superres eval --degrade NAME``).

The papers score models on MATLAB-bicubic LR, which no camera or website makes. A recipe turns a
benchmark HR image into the kind of LR users bring — blurred, noisy, JPEG-compressed — identically
on every machine and in every run: the noise is seeded by the recipe's seed and the image's file
name, the JPEG is Pillow's (libjpeg, 4:2:0), and the downscaling is our MATLAB-exact ``imresize``.

Order, as the classical degradation model ``y = ((x ⊛ k)↓s + n)_JPEG`` (Real-ESRGAN eq. 3):
Gaussian blur of the HR (optional) → MATLAB bicubic ÷ scale → 8-bit rounding → Gaussian noise
(per channel, in 8-bit levels), rounded and clipped → JPEG round trip (optional).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from superres.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    blur_sigma: float = 0.0  # HR pixels; 0 = no blur
    noise_sigma: float = 0.0  # 8-bit levels; 0 = no noise
    jpeg_quality: int | None = None
    seed: int = 0

    def __call__(self, hr: np.ndarray, image_name: str, scale: int) -> np.ndarray:
        """The LR (uint8, ``H/scale × W/scale``, gray stays gray) of a uint8 HR image."""
        from superres.quality.imresize import imresize

        image = hr
        if self.blur_sigma > 0:
            image = _gaussian_blur(image, self.blur_sigma)
        lr = imresize(image, 1.0 / scale)
        if self.noise_sigma > 0:
            rng = np.random.default_rng([self.seed, zlib.crc32(image_name.encode("utf-8"))])
            noisy = lr.astype(np.float64) + rng.normal(0.0, self.noise_sigma, lr.shape)
            lr = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        if self.jpeg_quality is not None:
            from superres.train.degrade.jpeg import jpeg_roundtrip

            lr = jpeg_roundtrip(lr, self.jpeg_quality)
        return lr


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "bicubic-noise4-jpeg45",
            "MATLAB bicubic, Gaussian noise σ 4, JPEG quality 45: a phone photo shared on the web",
            noise_sigma=4.0,
            jpeg_quality=45,
        ),
        Recipe("bicubic-jpeg30", "MATLAB bicubic, JPEG quality 30: a heavily recompressed web image", jpeg_quality=30),
        Recipe(
            "blur2-noise8",
            "Gaussian blur σ 2 (HR pixels), MATLAB bicubic, Gaussian noise σ 8: a soft, noisy low-light shot",
            blur_sigma=2.0,
            noise_sigma=8.0,
        ),
        Recipe("bicubic-noise10", "MATLAB bicubic, Gaussian noise σ 10: sensor noise, uncompressed", noise_sigma=10.0),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown degradation recipe {name!r}; known: {', '.join(RECIPES)}") from None


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur (±3σ support, reflected borders) of a uint8 image, rounded to uint8."""
    import torch

    from superres.train.degrade.kernels import filter2d, gaussian_kernel

    size = 2 * math.ceil(3 * sigma) + 1
    planes = image[..., None] if image.ndim == 2 else image
    tensor = torch.from_numpy(planes.astype(np.float64).transpose(2, 0, 1).copy())[None]
    blurred = filter2d(tensor, gaussian_kernel(size, sigma).double())[0].numpy().transpose(1, 2, 0)
    out = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    return out[..., 0] if image.ndim == 2 else out
