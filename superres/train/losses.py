"""Training losses: pixel (MSE, L1), VGG content, and the adversarial losses of SRGAN and ESRGAN.

Images are RGB in [0, 1]. Discriminators return logits; the papers' sigmoid is applied here, inside
``binary_cross_entropy_with_logits``, which is the numerically stable form of −log σ(·).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from superres.archs.vgg import VGGFeatureExtractor

Criterion = Literal["mse", "l1"]


def _criterion(kind: Criterion):
    if kind == "mse":
        return F.mse_loss
    if kind == "l1":
        return F.l1_loss
    raise ValueError(f"unknown criterion {kind!r}; expected 'mse' or 'l1'")


class PixelLoss(nn.Module):
    """Mean squared (SRResNet, SRGAN eq. 4) or mean absolute (ESRGAN §4.1) error between images."""

    def __init__(self, criterion: Criterion = "mse") -> None:
        super().__init__()
        self.criterion = criterion
        self._fn = _criterion(criterion)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self._fn(sr, hr)


class PerceptualLoss(nn.Module):
    """Distance between VGG19 feature maps of the SR and HR images (SRGAN eq. 5, ESRGAN §3.3).

    ``feature_scale`` multiplies both feature maps first. SRGAN §3.2 rescales them by 1/12.75 "to
    obtain VGG losses of a scale that is comparable to the MSE loss"; ESRGAN uses 1.
    """

    def __init__(self, extractor: VGGFeatureExtractor, criterion: Criterion = "l1", feature_scale: float = 1.0) -> None:
        super().__init__()
        self.extractor = extractor
        self.criterion = criterion
        self.feature_scale = feature_scale
        self._fn = _criterion(criterion)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        sr_feat = self.extractor(sr)
        with torch.no_grad():
            hr_feat = self.extractor(hr.detach())
        return self._fn(sr_feat * self.feature_scale, hr_feat * self.feature_scale)


def _bce(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class GANLoss:
    """Adversarial losses for the discriminator (``d_loss``) and the generator (``g_loss``).

    ``"bce"`` — the standard GAN of SRGAN (§2.1–2.2.2): D minimises −log D(I_HR) − log(1 − D(G(I_LR))),
    G minimises the non-saturating −log D(G(I_LR)) (SRGAN eq. 6).

    ``"ragan"`` — the relativistic average GAN of ESRGAN (§3.2, eq. 1–2): with
    D_Ra(x_r, x_f) = σ(C(x_r) − E_{x_f}[C(x_f)]), D learns that real images are *more realistic than
    the average fake* and G the reverse, so G gets gradients from real and fake data alike. The two
    terms are averaged rather than summed, as in the authors' released code, with which the
    paper's weight λ = 5·10⁻³ was set.
    """

    def __init__(self, kind: Literal["bce", "ragan"]) -> None:
        if kind not in ("bce", "ragan"):
            raise ValueError(f"unknown GAN loss {kind!r}; expected 'bce' or 'ragan'")
        self.kind = kind

    @property
    def needs_real_logits_for_g(self) -> bool:
        """RaGAN's generator loss compares against D's opinion of the real images; BCE's does not."""
        return self.kind == "ragan"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return _bce(real_logits, True) + _bce(fake_logits, False)
        return ragan_d_loss(real_logits, fake_logits)

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return _bce(fake_logits, True)
        if real_logits is None:
            raise ValueError("the RaGAN generator loss needs the discriminator's logits of the real images")
        return ragan_g_loss(real_logits, fake_logits)


def ragan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN eq. 1: −E[log D_Ra(x_r, x_f)] − E[log(1 − D_Ra(x_f, x_r))], the two terms averaged."""
    real_vs_fake = real_logits - fake_logits.mean()
    fake_vs_real = fake_logits - real_logits.mean()
    return (_bce(real_vs_fake, True) + _bce(fake_vs_real, False)) / 2


def ragan_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """ESRGAN eq. 2: −E[log(1 − D_Ra(x_r, x_f))] − E[log D_Ra(x_f, x_r)], the two terms averaged.

    ``real_logits`` are constants for the generator (computed without gradient to D).
    """
    real_logits = real_logits.detach()
    real_vs_fake = real_logits - fake_logits.mean()
    fake_vs_real = fake_logits - real_logits.mean()
    return (_bce(real_vs_fake, False) + _bce(fake_vs_real, True)) / 2


def feature_matching_loss(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 distance between the discriminator's feature maps of SR and HR images, averaged over layers.

    Feature matching (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016, §3.1) in the
    multi-layer L1 form of pix2pixHD (Wang et al., CVPR 2018, eq. 4): the discriminator's own features
    serve as a perceptual space learned on the data, where no ImageNet VGG19 is available. The HR features
    are targets, not trained through.
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError("feature matching needs the same, non-zero number of feature maps for SR and HR")
    terms = [F.l1_loss(fake, real.detach()) for fake, real in zip(fake_features, real_features, strict=True)]
    return torch.stack(terms).mean()
