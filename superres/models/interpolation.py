"""Network interpolation (ESRGAN §3.4): blend a PSNR-oriented and a GAN-trained model of one architecture.

θ_interp = (1 − α)·θ_PSNR + α·θ_GAN, parameter by parameter. α trades fidelity (α = 0, the PSNR
model) for perceptual quality (α = 1, the GAN model) continuously and without retraining; the
paper shows it removes the GAN model's artefacts with less loss of detail than blending outputs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from superres.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from superres.models.detect import ModelInfo


def interpolate_state_dicts(
    psnr: dict[str, torch.Tensor], gan: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """The interpolated state dict. α = 0 and α = 1 return exact copies of ``psnr`` and ``gan``.

    Integer entries (BatchNorm's ``num_batches_tracked``) cannot be blended and are taken from the
    nearer model.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha}")
    if psnr.keys() != gan.keys():
        only = sorted(set(psnr) ^ set(gan))
        raise WeightsError(f"the two models have different parameters (e.g. {', '.join(only[:3])})")
    out: dict[str, torch.Tensor] = {}
    for key, a in psnr.items():
        b = gan[key]
        if a.shape != b.shape:
            raise WeightsError(f"parameter {key} has shape {tuple(a.shape)} in one model, {tuple(b.shape)} in the other")
        if alpha == 0.0 or alpha == 1.0 or not a.is_floating_point():
            # Exact copies at the ends: (1-α)·a + α·b would turn -0.0 into 0.0 and NaN·0 into NaN.
            out[key] = (b if alpha >= 0.5 else a).clone()
        else:
            out[key] = ((1.0 - alpha) * a.double() + alpha * b.double()).to(a.dtype)
    return out


def check_interpolable(psnr: ModelInfo, gan: ModelInfo) -> None:
    """A :class:`WeightsError` unless the two models share architecture, scale and hyper-parameters."""
    if (psnr.arch, psnr.scale) != (gan.arch, gan.scale):
        raise WeightsError(
            f"cannot interpolate a {psnr.arch} ×{psnr.scale} with a {gan.arch} ×{gan.scale}: "
            "both models must have the same architecture"
        )
    if psnr.hparams != gan.hparams:
        raise WeightsError(
            f"cannot interpolate {psnr.arch} models with different hyper-parameters: {psnr.hparams} vs {gan.hparams}"
        )


def interpolate_networks(
    psnr: tuple[nn.Module, ModelInfo], gan: tuple[nn.Module, ModelInfo], alpha: float
) -> tuple[nn.Module, ModelInfo]:
    """The blended network (built in ``psnr``'s module, which is changed in place) and its info."""
    (psnr_model, psnr_info), (gan_model, gan_info) = psnr, gan
    check_interpolable(psnr_info, gan_info)
    blended = interpolate_state_dicts(psnr_model.state_dict(), gan_model.state_dict(), alpha)
    psnr_model.load_state_dict(blended, strict=True)
    return psnr_model, psnr_info


def blend_networks(psnr_path: str | Path, gan_path: str | Path, alpha: float) -> tuple[nn.Module, ModelInfo]:
    """The network of ``psnr_path`` with weights (1 − α)·PSNR + α·GAN, its info noting the blend."""
    from superres.models.weights import load_network

    model, info = interpolate_networks(load_network(psnr_path), load_network(gan_path), alpha)
    metadata = {
        "interpolation": f"(1 - alpha) * PSNR + alpha * GAN, ESRGAN §3.4; alpha={alpha}",
        "interpolation_psnr_model": Path(psnr_path).name,
        "interpolation_gan_model": Path(gan_path).name,
        "interpolation_alpha": repr(float(alpha)),
    }
    return model, replace(info, metadata={**info.metadata, **metadata})


def load_with_strength(name: str | Path, strength: float) -> tuple[nn.Module, ModelInfo]:
    """A known model blended with its GAN partner (``--strength``): α = 0 is the model, α = 1 the partner."""
    from superres.models.registry import gan_partner, resolve

    partner = gan_partner(name)
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"--strength must lie in [0, 1], got {strength}")
    return blend_networks(resolve(name), resolve(partner), strength)


def interpolate(
    psnr_path: str | Path, gan_path: str | Path, alpha: float, out_path: str | Path, overwrite: bool = False
) -> Path:
    """Blend two weight files of the same architecture and hyper-parameters into ``out_path`` (safetensors).

    ``out_path`` is never one of the two inputs, ``overwrite`` or not."""
    from superres.imageio import check_not_input
    from superres.models.weights import save_network

    check_not_input(out_path, [psnr_path, gan_path])
    model, info = blend_networks(psnr_path, gan_path, alpha)
    metadata = {key: value for key, value in info.metadata.items() if key.startswith("interpolation")}
    return save_network(out_path, model, info.arch, info.hparams, metadata, overwrite=overwrite)
