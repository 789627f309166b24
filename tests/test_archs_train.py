"""Networks used only in training: the SRGAN and ESRGAN discriminators and the VGG19 feature extractor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from superres.archs.discriminators import SRGANDiscriminator, VGGStyleDiscriminator
from superres.archs.vgg import IMAGENET_MEAN, VGGFeatureExtractor, vgg19_layer_names
from superres.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_srgan_discriminator_follows_the_paper():
    with torch.device("meta"):  # structure only: skip initialising 23M parameters
        d = SRGANDiscriminator()
    convs = [m for m in d.conv_blocks.modules() if isinstance(m, nn.Conv2d)]
    # Fig. 4: k3n64s1, k3n64s2, k3n128s1, k3n128s2, k3n256s1, k3n256s2, k3n512s1, k3n512s2.
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert all(c.kernel_size == (3, 3) for c in convs)
    has_bn = [any(isinstance(m, nn.BatchNorm2d) for m in block.modules()) for block in d.conv_blocks]
    assert has_bn == [False] + [True] * 7
    # A 96×96 input reaches the dense layers as 6×6×512; Dense(1024), Dense(1).
    assert (d.fc1.in_features, d.fc1.out_features, d.fc2.out_features) == (6 * 6 * 512, 1024, 1)
    assert "conv_blocks.1.conv_block.1.running_mean" in d.state_dict()
    small = SRGANDiscriminator(num_feat=8, fc_size=32)
    assert small(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    assert small(torch.rand(1, 3, 48, 48)).shape == (1, 1)  # other patch sizes pass the adaptive pool


def test_vgg_style_discriminator_has_basicsr_names_and_shapes():
    with torch.device("meta"):
        d = VGGStyleDiscriminator(num_in_ch=3, num_feat=64, input_size=128)
    names = [n for n, _ in d.named_children() if n != "lrelu"]
    expected = ["conv0_0", "conv0_1", "bn0_1"]
    for stage in range(1, 5):
        expected += [f"conv{stage}_0", f"bn{stage}_0", f"conv{stage}_1", f"bn{stage}_1"]
    assert names == expected + ["linear1", "linear2"]
    assert d.conv0_0.bias is not None and d.conv0_1.bias is None  # BN follows every conv but the first
    assert d.conv4_1.out_channels == 512 and d.linear1.in_features == 512 * 4 * 4
    assert d.linear1.out_features == 100
    narrow = VGGStyleDiscriminator(num_feat=4, input_size=128)
    assert narrow(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(ValueError, match="128"):
        narrow(torch.rand(1, 3, 96, 96))
    small = VGGStyleDiscriminator(num_feat=8, input_size=32)
    assert small(torch.rand(3, 3, 32, 32)).shape == (3, 1)
    with pytest.raises(ValueError):
        VGGStyleDiscriminator(input_size=100)


def test_vgg19_layer_names_follow_torchvision_indices():
    names = vgg19_layer_names()
    assert len(names) == 37  # vgg19().features has 37 modules
    assert names[0] == "conv1_1" and names[4] == "pool1"
    assert names.index("conv5_4") == 34 and names.index("relu5_4") == 35 and names[-1] == "pool5"


def test_vgg_starts_random_from_a_fixed_seed_and_names_only_conv_layers():
    a = VGGFeatureExtractor("conv1_2")
    b = VGGFeatureExtractor("conv1_2")
    assert a.weights_source == "random"
    assert torch.equal(a.features[2].weight, b.features[2].weight)  # fixed seed: reproducible
    assert not any(p.requires_grad for p in a.parameters())
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        VGGFeatureExtractor("relu5_4")


def test_vgg_activation_choice_and_imagenet_normalisation():
    pre = VGGFeatureExtractor("conv1_1", after_activation=False)
    post = VGGFeatureExtractor("conv1_1", after_activation=True)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(post(x), torch.relu(pre(x)))
    assert (pre(x) < 0).any()  # before activation the features keep their sign (ESRGAN §3.3)
    # The ImageNet mean colour normalises to zero, so conv1_1 then outputs just its bias.
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    expected = pre.features[0].bias.view(1, -1, 1, 1).expand(1, 64, 8, 8)
    assert torch.allclose(pre(mean_image), expected, atol=1e-6)


def test_discriminators_expose_their_features_for_feature_matching():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    vgg_style = [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2)]
    srgan = [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)]
    for net, shapes in ((VGGStyleDiscriminator(3, 8, 64).eval(), vgg_style), (SRGANDiscriminator(3, 8).eval(), srgan)):
        logits, features = net.forward_features(x)
        torch.testing.assert_close(logits, net(x))
        assert [tuple(f.shape) for f in features] == shapes
