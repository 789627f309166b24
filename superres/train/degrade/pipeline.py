"""Real-ESRGAN's "high-order" degradation model, from an HR batch to its synthetic real-world LR.

Wang et al., "Real-ESRGAN" (ICCVW 2021) §3.2, Fig. 2: the classical model ``y = [(x ⊛ k)↓s + n]_JPEG``
applied twice, then the final resize back to ``HR / scale`` with a 2-D sinc filter and JPEG in random
order, the result rounded to 8 bit. The draws follow the authors' ``RealESRGANDataset`` (kernels,
per sample) and ``RealESRGANModel.feed_data`` (resize, noise type and the final order, per batch; noise
strength and JPEG quality, per sample). Called with one sample as the batch — as the DataLoader
workers do — every draw is per sample.

All randomness comes from one ``torch.Generator`` passed in; the trainer seeds it from the sample's
key (``where=loader``) or from ``(seed, step, rank)`` (``where=device``), which keeps exact resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from superres.train.config import DegradationConfig, StageConfig
from superres.train.degrade import jpeg as jpeg_ops
from superres.train.degrade import kernels as K
from superres.train.degrade.noise import gaussian_noise, poisson_noise

RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass
class Draw:
    """Random choices from one generator; the log says what was drawn (``superres degrade`` prints it)."""

    generator: torch.Generator
    log: list[str] = field(default_factory=list)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator, dtype=torch.float64))

    def chance(self, p: float) -> bool:
        return self.uniform(0.0, 1.0) < p

    def choice(self, options: tuple | list, probs: list[float] | None = None) -> object:
        weights = torch.tensor(probs if probs is not None else [1.0] * len(options), dtype=torch.float64)
        return options[int(torch.multinomial(weights, 1, generator=self.generator))]

    def note(self, text: str) -> None:
        self.log.append(text)


def generator_for(*words: int) -> torch.Generator:
    """A CPU generator seeded from integer words (e.g. a sample key) through NumPy's SeedSequence."""
    state = np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words] + [0x5EA1]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


# ---------------------------------------------------------------------------------- kernels


def random_kernel(draw: Draw, stage: StageConfig, kernel_range: list[int], label: str) -> torch.Tensor:
    """One blur kernel of a stage, padded to the largest size (``RealESRGANDataset.__getitem__``)."""
    size = int(draw.choice(list(range(kernel_range[0], kernel_range[1] + 1, 2))))
    if draw.chance(stage.sinc_prob):
        # Small kernels get only the milder cutoffs (authors' code): a 7-pixel sinc cannot ring at π/5.
        cutoff = draw.uniform(math.pi / 3, math.pi) if size < 13 else draw.uniform(math.pi / 5, math.pi)
        draw.note(f"{label}: sinc {size}px cutoff {cutoff:.2f}")
        return K.pad_kernel(K.sinc_kernel(size, cutoff), kernel_range[1])
    kind = str(draw.choice(K.KERNEL_TYPES, stage.kernel_prob))
    sigma_x = draw.uniform(*stage.blur_sigma)
    sigma_y, theta = sigma_x, 0.0
    if kind.endswith("aniso"):
        sigma_y, theta = draw.uniform(*stage.blur_sigma), draw.uniform(-math.pi, math.pi)
    beta = 1.0
    if kind.startswith(("generalized", "plateau")):
        low, high = stage.betag_range if kind.startswith("generalized") else stage.betap_range
        # Half the draws in [low, 1], half in [1, high] (BasicSR's random_bivariate_* kernels).
        beta = draw.uniform(low, 1.0) if draw.chance(0.5) else draw.uniform(1.0, high)
    draw.note(f"{label}: {kind} {size}px σ=({sigma_x:.2f}, {sigma_y:.2f}) θ={theta:.2f} β={beta:.2f}")
    if kind.startswith("generalized"):
        kernel = K.generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, beta)
    elif kind.startswith("plateau"):
        kernel = K.plateau_kernel(size, sigma_x, sigma_y, theta, beta)
    else:
        kernel = K.gaussian_kernel(size, sigma_x, sigma_y, theta)
    return K.pad_kernel(kernel, kernel_range[1])


def final_sinc_kernel(draw: Draw, config: DegradationConfig, label: str) -> torch.Tensor:
    size = config.kernel_range[1]
    if not draw.chance(config.final_sinc_prob):
        return K.pulse_kernel(size)
    ksize = int(draw.choice(list(range(config.kernel_range[0], size + 1, 2))))
    cutoff = draw.uniform(math.pi / 3, math.pi)
    draw.note(f"{label}: sinc {ksize}px cutoff {cutoff:.2f}")
    return K.sinc_kernel(ksize, cutoff, pad_to=size)


# ------------------------------------------------------------------------------------ steps


def _blur(images: torch.Tensor, draw: Draw, stage: StageConfig, config: DegradationConfig, name: str) -> torch.Tensor:
    if not draw.chance(stage.blur_prob):
        return images
    kernels = torch.stack(
        [random_kernel(draw, stage, config.kernel_range, f"{name} blur[{i}]") for i in range(images.shape[0])]
    )
    return K.filter2d(images, kernels)


def _resize_factor(draw: Draw, stage: StageConfig) -> float:
    direction = draw.choice(("up", "down", "keep"), stage.resize_prob)
    if direction == "up":
        return draw.uniform(1.0, stage.resize_range[1])
    if direction == "down":
        return draw.uniform(stage.resize_range[0], 1.0)
    return 1.0


def _resize(
    images: torch.Tensor, size: tuple[int, int], draw: Draw, label: str, antialias_prob: float = 0.0
) -> torch.Tensor:
    mode = str(draw.choice(RESIZE_MODES))
    shrinks = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    # Drawn only when it can matter, so the paper's configuration (never antialiased) keeps its draws.
    antialias = mode != "area" and shrinks and antialias_prob > 0 and draw.chance(antialias_prob)
    draw.note(f"{label}: {mode}{' antialiased' if antialias else ''} to {size[1]}×{size[0]}")
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode=mode, antialias=antialias)


def _noise(images: torch.Tensor, draw: Draw, stage: StageConfig, name: str) -> torch.Tensor:
    b = images.shape[0]
    gaussian = draw.chance(stage.gaussian_noise_prob)
    low, high = stage.noise_range if gaussian else stage.poisson_scale_range
    strength = torch.tensor([draw.uniform(low, high) for _ in range(b)])
    gray = torch.tensor([float(draw.chance(stage.gray_noise_prob)) for _ in range(b)])
    kind = "gaussian σ" if gaussian else "poisson ×"
    draw.note(f"{name} noise: {kind}{', '.join(f'{s:.2f}' for s in strength.tolist())} gray {gray.tolist()}")
    make = gaussian_noise if gaussian else poisson_noise
    return (images + make(images, strength, gray, draw.generator)).clamp(0, 1)


def _jpeg(images: torch.Tensor, draw: Draw, stage: StageConfig, name: str) -> torch.Tensor:
    quality = torch.tensor([draw.uniform(*stage.jpeg_range) for _ in range(images.shape[0])])
    draw.note(f"{name} jpeg: quality {', '.join(f'{q:.0f}' for q in quality.tolist())}")
    return jpeg_ops.jpeg(images.clamp(0, 1), quality)


# --------------------------------------------------------------------------------- pipeline


def degrade(images: torch.Tensor, config: DegradationConfig, scale: int, draw: Draw) -> torch.Tensor:
    """The LR (``H/scale × W/scale``, 8-bit levels) of a ``B×3×H×W`` batch in [0, 1]."""
    h, w = images.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {w}×{h} is not a multiple of the scale {scale}")
    out = _blur(images, draw, config.first, config, "1")
    factor = _resize_factor(draw, config.first)
    aa = config.antialias_prob
    out = _resize(out, (max(1, int(h * factor)), max(1, int(w * factor))), draw, f"1 resize ×{factor:.2f}", aa)
    out = _noise(out, draw, config.first, "1")
    out = _jpeg(out, draw, config.first, "1")

    out = _blur(out, draw, config.second, config, "2")
    factor = _resize_factor(draw, config.second)
    size = (max(1, int(h / scale * factor)), max(1, int(w / scale * factor)))
    out = _resize(out, size, draw, f"2 resize ×{factor:.2f} of LR", aa)
    out = _noise(out, draw, config.second, "2")
    sinc = torch.stack([final_sinc_kernel(draw, config, f"final[{i}]") for i in range(images.shape[0])])
    if draw.chance(0.5):  # §3.2: the final sinc and JPEG in random order
        out = K.filter2d(_resize(out, (h // scale, w // scale), draw, "final resize", aa), sinc)
        out = _jpeg(out, draw, config.second, "final")
    else:
        out = _jpeg(out, draw, config.second, "final")
        out = K.filter2d(_resize(out, (h // scale, w // scale), draw, "final resize", aa), sinc)
    return (out * 255.0).round().clamp(0, 255) / 255.0


def make_pair(hr: torch.Tensor, config: DegradationConfig, scale: int, draw: Draw) -> dict[str, torch.Tensor]:
    """Training batch from HR crops with ``config.margin`` context: ``lr``, ``hr`` (the pixel-loss target).

    With ``usm_target`` the target is the unsharp-masked HR, which is also what is degraded (as the
    authors' ``gt_usm``); the plain HR is then returned as ``hr_real`` for the discriminator, which
    Real-ESRGAN shows the unsharpened ground truth.
    """
    target = K.usm_sharpen(hr, config.usm_weight, config.usm_radius, config.usm_threshold) if config.usm_target else hr
    lr = degrade(target, config, scale, draw)
    m, lm = config.margin, config.margin // scale
    if m:
        hr, target = hr[..., m:-m, m:-m], target[..., m:-m, m:-m]
        lr = lr[..., lm:-lm, lm:-lm]
    pair = {"lr": lr.contiguous(), "hr": target.contiguous()}
    if config.usm_target:
        pair["hr_real"] = hr.contiguous()
    return pair


def degrade_image(
    image: np.ndarray, config: DegradationConfig, scale: int, seed: int, name: str = ""
) -> tuple[np.ndarray, list[str]]:
    """One uint8 RGB image (cropped to a multiple of ``scale``) through the random pipeline, with what
    was drawn. The draws depend on ``seed`` and the image's ``name`` only (``superres degrade``)."""
    import zlib

    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    if min(h, w) < scale * 2:
        raise ValueError(f"a {image.shape[1]}×{image.shape[0]} image is too small to degrade ×{scale}")
    hr = torch.from_numpy(np.array(image[:h, :w])).permute(2, 0, 1)[None].float() / 255.0
    if config.usm_target:
        hr = K.usm_sharpen(hr, config.usm_weight, config.usm_radius, config.usm_threshold)
    draw = Draw(generator_for(seed, zlib.crc32(name.encode("utf-8"))))
    lr = degrade(hr, config, scale, draw)
    return (lr[0] * 255).round().byte().permute(1, 2, 0).numpy(), draw.log
