"""Losses: pixel, VGG content (with SRGAN's rescaling), BCE GAN and ESRGAN's relativistic average GAN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from superres.archs.vgg import VGGFeatureExtractor
from superres.train.losses import (
    GANLoss,
    PerceptualLoss,
    PixelLoss,
    ragan_d_loss,
    ragan_g_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pixel_losses_match_their_definitions():
    a = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    b = torch.tensor([0.5, 0.5, 0.0]).view(1, 1, 1, 3)
    assert PixelLoss("mse")(a, b).item() == pytest.approx((0.25 + 0 + 1) / 3)
    assert PixelLoss("l1")(a, b).item() == pytest.approx((0.5 + 0 + 1) / 3)
    with pytest.raises(ValueError):
        PixelLoss("l3")


@pytest.fixture(scope="module")
def vgg_conv22():
    # A shallow layer keeps this fast; the random weights are fixed by the extractor's own seed.
    return VGGFeatureExtractor("conv2_2", after_activation=False)


def test_perceptual_loss_zero_for_equal_images_and_scaled_quadratically(vgg_conv22):
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 16)
    sr = (hr + 0.1 * torch.randn_like(hr)).clamp(0, 1)
    assert PerceptualLoss(vgg_conv22, "mse")(hr, hr).item() == 0.0
    plain = PerceptualLoss(vgg_conv22, "mse", feature_scale=1.0)(sr, hr).item()
    srgan = PerceptualLoss(vgg_conv22, "mse", feature_scale=1 / 12.75)(sr, hr).item()
    assert plain > 0
    # SRGAN §3.2 rescales the feature maps, so an MSE shrinks by the square of the factor.
    assert srgan == pytest.approx(plain / 12.75**2, rel=1e-5)
    l1 = PerceptualLoss(vgg_conv22, "l1", feature_scale=0.5)(sr, hr).item()
    assert l1 == pytest.approx(0.5 * PerceptualLoss(vgg_conv22, "l1")(sr, hr).item(), rel=1e-5)


def test_perceptual_loss_trains_the_image_not_the_vgg(vgg_conv22):
    torch.manual_seed(1)
    hr = torch.rand(1, 3, 16, 16, requires_grad=True)
    sr = torch.rand(1, 3, 16, 16, requires_grad=True)
    PerceptualLoss(vgg_conv22, "l1")(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None  # the target's features are constants
    assert all(p.grad is None and not p.requires_grad for p in vgg_conv22.parameters())


def test_bce_gan_losses_at_known_points():
    gan = GANLoss("bce")
    zero = torch.zeros(4, 1)
    # D undecided (σ(0) = 1/2): −log ½ for each of the two terms.
    assert gan.d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert gan.g_loss(None, zero).item() == pytest.approx(math.log(2))
    confident = gan.d_loss(torch.full((4, 1), 20.0), torch.full((4, 1), -20.0)).item()
    assert confident < 1e-6
    # Non-saturating generator loss (SRGAN eq. 6): large when D rejects the fakes.
    assert gan.g_loss(None, torch.full((4, 1), -5.0)).item() == pytest.approx(
        -math.log(torch.sigmoid(torch.tensor(-5.0)).item())
    )


def test_ragan_matches_esrgan_equations():
    torch.manual_seed(2)
    real, fake = torch.randn(8, 1), torch.randn(8, 1)

    def log_sigmoid_mean(x):
        return F.logsigmoid(x).mean()

    # Eq. 1 and 2 with D_Ra(a, b) = σ(C(a) − E[C(b)]), the two terms averaged (authors' code).
    d_expected = -(log_sigmoid_mean(real - fake.mean()) + log_sigmoid_mean(-(fake - real.mean()))) / 2
    g_expected = -(log_sigmoid_mean(-(real - fake.mean())) + log_sigmoid_mean(fake - real.mean())) / 2
    assert ragan_d_loss(real, fake).item() == pytest.approx(d_expected.item(), rel=1e-6)
    assert ragan_g_loss(real, fake).item() == pytest.approx(g_expected.item(), rel=1e-6)
    gan = GANLoss("ragan")
    assert gan.needs_real_logits_for_g and not GANLoss("bce").needs_real_logits_for_g
    assert gan.d_loss(real, fake).item() == pytest.approx(d_expected.item(), rel=1e-6)
    with pytest.raises(ValueError):
        gan.g_loss(None, fake)


def test_ragan_is_relative_not_absolute():
    # Shifting every logit by a constant changes nothing: only real-vs-average-fake matters.
    torch.manual_seed(3)
    real, fake = torch.randn(8, 1), torch.randn(8, 1)
    assert ragan_d_loss(real + 7, fake + 7).item() == pytest.approx(ragan_d_loss(real, fake).item(), rel=1e-5)
    # The plain BCE discriminator loss is not shift-invariant.
    gan = GANLoss("bce")
    assert gan.d_loss(real + 7, fake + 7).item() != pytest.approx(gan.d_loss(real, fake).item(), rel=1e-2)


def test_ragan_generator_gets_gradient_from_fakes_only():
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    ragan_g_loss(real, fake).backward()
    assert real.grad is None
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    # Raising the fakes' logits (more "realistic") lowers the generator loss.
    assert ragan_g_loss(real, fake + 1).item() < ragan_g_loss(real, fake).item()


def test_feature_matching_is_the_layer_mean_of_l1_and_trains_only_the_fake_side():
    from superres.train.losses import feature_matching_loss

    fake = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)]
    real = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)]
    loss = feature_matching_loss(fake, real)
    expected = ((fake[0] - real[0]).abs().mean() + (fake[1] - real[1]).abs().mean()) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert fake[0].grad is not None and real[0].grad is None
    assert float(feature_matching_loss([f.detach() for f in fake], [f.detach() for f in fake])) == 0.0
