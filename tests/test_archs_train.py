"""Networks used only in training: the SRGAN and ESRGAN discriminators and the VGG19 feature extractor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from superres.archs.discriminators import SRGANDiscriminator, VGGStyleDiscriminator
from superres.archs.vgg import (
    IMAGENET_MEAN,
    TORCHVISION_VGG19_FILE,
    VGG19_CONFIG,
    VGGFeatureExtractor,
    vgg19_layer_names,
)
from superres.errors import ConfigError, WeightsError

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


def _torchvision_like_state(upto: int) -> dict[str, torch.Tensor]:
    """Random tensors under torchvision's vgg19 keys and shapes for features.0 … features.<upto>."""
    g = torch.Generator().manual_seed(5)
    state, index, in_ch = {}, 0, 3
    for item in VGG19_CONFIG:
        if item != "M" and index <= upto:
            state[f"features.{index}.weight"] = torch.randn(item, in_ch, 3, 3, generator=g)
            state[f"features.{index}.bias"] = torch.randn(item, generator=g)
            in_ch = item
        index += 1 if item == "M" else 2
    state["classifier.6.bias"] = torch.zeros(1000)  # the classifier is there in the real file and ignored
    return state


def test_vgg_loads_torchvision_state_dict_from_path(tmp_path):
    state = _torchvision_like_state(upto=34)
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    vgg = VGGFeatureExtractor("conv5_4", after_activation=False, weights=path)
    assert vgg.weights_source == str(path)
    assert set(vgg.state_dict()) == {k for k in state if k.startswith("features.")}
    assert torch.equal(vgg.features[34].weight, state["features.34.weight"])
    assert not any(p.requires_grad for p in vgg.parameters())
    assert vgg(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)


def test_vgg_finds_torch_hub_cache(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    state = _torchvision_like_state(upto=7)
    torch.save(state, tmp_path / "checkpoints" / TORCHVISION_VGG19_FILE)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    vgg = VGGFeatureExtractor("conv2_2")
    assert vgg.weights_source.endswith(TORCHVISION_VGG19_FILE)
    assert torch.equal(vgg.features[7].bias, state["features.7.bias"])
    with pytest.raises(WeightsError, match="lacks features"):
        VGGFeatureExtractor("conv3_1")  # the cached file stops at conv2_2


def test_vgg_without_weights_is_a_clear_error_unless_random_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ConfigError, match="allow_random"):
        VGGFeatureExtractor("conv5_4")
    a = VGGFeatureExtractor("conv1_2", allow_random=True)
    b = VGGFeatureExtractor("conv1_2", allow_random=True)
    assert a.weights_source == "random"
    assert torch.equal(a.features[2].weight, b.features[2].weight)  # fixed seed: reproducible
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        VGGFeatureExtractor("relu5_4", allow_random=True)
    with pytest.raises(ConfigError, match="not found"):
        VGGFeatureExtractor("conv5_4", weights=tmp_path / "missing.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_vgg_refuses_pickles_that_run_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil()}, path)
    with pytest.raises(WeightsError):
        VGGFeatureExtractor("conv1_1", weights=path)


def test_vgg_activation_choice_and_imagenet_normalisation():
    pre = VGGFeatureExtractor("conv1_1", after_activation=False, allow_random=True)
    post = VGGFeatureExtractor("conv1_1", after_activation=True, allow_random=True)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(post(x), torch.relu(pre(x)))
    assert (pre(x) < 0).any()  # before activation the features keep their sign (ESRGAN §3.3)
    # The ImageNet mean colour normalises to zero, so conv1_1 then outputs just its bias.
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    expected = pre.features[0].bias.view(1, -1, 1, 1).expand(1, 64, 8, 8)
    assert torch.allclose(pre(mean_image), expected, atol=1e-6)
