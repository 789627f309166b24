"""Additive Gaussian and Poisson noise (Real-ESRGAN §3.1 "Noise"), batched, per-sample strength.

Colour noise draws each RGB channel independently; gray noise draws one plane and adds it to all
three channels (Real-ESRGAN: "gray noise … the same noise on all three channels"). The formulas
follow BasicSR's ``generate_gaussian_noise_pt`` / ``generate_poisson_noise_pt`` so that its ranges
mean the same here. Random draws come from an explicit CPU generator and are moved to the images'
device, so a run draws the same numbers on a CPU and on a GPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale (used by BasicSR's Poisson gray noise).
_LUMA = (0.299, 0.587, 0.114)


def _per_sample(values: torch.Tensor | float, images: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=images.dtype).to(images.device).reshape(-1, 1, 1, 1)


def _randn(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


def gaussian_noise(
    images: torch.Tensor, sigma: torch.Tensor | float, gray: torch.Tensor | bool, generator: torch.Generator
) -> torch.Tensor:
    """Noise ``N(0, (σ/255)²)`` for ``B×C×H×W`` images in [0, 1]; ``sigma``, ``gray`` per sample or scalars."""
    b, c, h, w = images.shape
    sigma = _per_sample(sigma, images) / 255.0
    gray = _per_sample(gray, images)
    colour = _randn((b, c, h, w), generator, images)
    plane = _randn((b, 1, h, w), generator, images)
    return sigma * (colour * (1 - gray) + plane * gray)


def _poisson_plane(levels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Poisson noise of one image (``C×H×W``) quantized to 8 bit, with ``2^⌈log2(distinct values)⌉`` photons
    at full scale (BasicSR's count: an image of few levels gets few photons, hence strong noise)."""
    quantized = (levels.detach().float().cpu() * 255.0).round().clamp(0, 255) / 255.0
    distinct = int(torch.bincount((quantized * 255).round().long().flatten(), minlength=256).count_nonzero())
    photons = 2.0 ** math.ceil(math.log2(distinct))
    # NumPy's sampler: 5–10× faster than torch.poisson on a CPU, and the same on every device.
    counts = rng.poisson(quantized.numpy().astype(np.float64) * photons)
    return torch.from_numpy(counts / photons).float() - quantized


def poisson_noise(
    images: torch.Tensor, scale: torch.Tensor | float, gray: torch.Tensor | bool, generator: torch.Generator
) -> torch.Tensor:
    """Signal-dependent (shot) noise, ``scale`` times the Poisson noise of the image (or of its luma if gray)."""
    rng = np.random.default_rng(int(torch.randint(2**62, (), generator=generator)))
    gray = torch.as_tensor(gray).reshape(-1).expand(images.shape[0])
    luma = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
    planes = []
    for image, is_gray in zip(images, gray.tolist(), strict=True):
        if is_gray:
            planes.append(_poisson_plane((image * luma).sum(0, keepdim=True), rng).expand_as(image))
        else:
            planes.append(_poisson_plane(image, rng))
    noise = torch.stack(planes).to(images.device, images.dtype)
    return _per_sample(scale, images) * noise
