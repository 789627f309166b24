"""The two halves of a training step: the generator's objective, and the discriminator's update.

The generator minimises

    pixel_weight · L_pixel + perceptual_weight · L_VGG + gan_weight · L_G^adv + feature_matching_weight · L_FM

(SRGAN eq. 3, ESRGAN eq. 3, pix2pixHD eq. 4; a weight of 0 switches a term off). In GAN stages the
discriminator then learns, on the same batch, to tell the real HR from the generator's output: by
BCE (SRGAN §2.1) or relativistically (ESRGAN eq. 1), as :class:`superres.train.losses.GANLoss` says.

A loss that is NaN or inf must never reach an optimiser: :func:`first_nonfinite` names it, on any
process, and the trainer skips the update.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from superres.train.config import LossConfig
from superres.train.distributed import DistContext, all_true

if TYPE_CHECKING:
    from superres.train.build import Losses
    from superres.train.losses import GANLoss


def autocast(precision: str, device: torch.device):
    """Mixed precision (bf16, fp16) for the forward passes; a no-op in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def generator_objective(
    sr: torch.Tensor,
    hr: torch.Tensor,
    hr_real: torch.Tensor,
    losses: Losses,
    weights: LossConfig,
    discriminator: nn.Module | None,
    precision: str,
) -> dict[str, torch.Tensor]:
    """Each term of the generator's loss on ``sr`` (fp32), and their weighted sum as ``loss/g_total``.

    ``discriminator`` is the unwrapped network, frozen by the caller: G's loss flows through it to
    G, but no DDP gradient sync runs for it. ``hr_real`` is what D sees as real (HR before sharpening).
    """
    device = sr.device
    stats: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=device)
    if losses.pixel is not None:
        stats["loss/pixel"] = losses.pixel(sr, hr)
        total = total + weights.pixel_weight * stats["loss/pixel"]
    if losses.perceptual is not None:
        with autocast(precision, device):
            stats["loss/perceptual"] = losses.perceptual(sr, hr).float()
        total = total + weights.perceptual_weight * stats["loss/perceptual"]
    if losses.gan is not None:
        assert discriminator is not None
        matching = weights.feature_matching_weight > 0
        with autocast(precision, device):
            fake_logits, fake_features = discriminator.forward_features(sr)
            real_logits = real_features = None
            if losses.gan.needs_real_logits_for_g or matching:
                with torch.no_grad():
                    real_logits, real_features = discriminator.forward_features(hr_real)
        real_logits = real_logits.float() if losses.gan.needs_real_logits_for_g else None
        stats["loss/g_adv"] = losses.gan.g_loss(real_logits, fake_logits.float())
        total = total + weights.gan_weight * stats["loss/g_adv"]
        if matching:
            from superres.train.losses import feature_matching_loss

            fm = feature_matching_loss([f.float() for f in fake_features], [f.float() for f in real_features])
            stats["loss/feature_matching"] = fm
            total = total + weights.feature_matching_weight * fm
    stats["loss/g_total"] = total
    return stats


def discriminator_update(
    discriminator: nn.Module,
    discriminator_raw: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    gan_loss: GANLoss,
    hr_real: torch.Tensor,
    sr: torch.Tensor,
    precision: str,
    ctx: DistContext,
) -> tuple[dict[str, torch.Tensor], tuple[str, float] | None]:
    """One update of D: real HR against the generator's (detached) output ``sr``.

    Returns the statistics to log, and the non-finite loss (name, value) when the update was dropped.
    """
    discriminator_raw.requires_grad_(True)
    with autocast(precision, sr.device):
        real_logits = discriminator(hr_real).float()
        fake_logits = discriminator(sr.detach()).float()
    loss_d = gan_loss.d_loss(real_logits, fake_logits)
    if (bad := first_nonfinite(ctx, {"loss/d": loss_d})) is not None:
        return {}, bad
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.step(optimizer)
    return {"loss/d": loss_d, "d/real_logit": real_logits.mean(), "d/fake_logit": fake_logits.mean()}, None


def first_nonfinite(ctx: DistContext, losses: dict[str, torch.Tensor]) -> tuple[str, float] | None:
    """The first loss that is NaN or inf (name, value), on any rank; None when all are finite.

    Reading the verdict waits for the device once per step: the price of never applying a NaN update.
    """
    stacked = torch.stack([value.detach().float().reshape(()) for value in losses.values()])
    finite = torch.isfinite(stacked)
    if all_true(ctx, finite.all()):
        return None
    for (name, value), ok in zip(losses.items(), finite.tolist()):
        if not ok:
            return name, float(value.detach())
    return "a loss on another process", float("nan")
