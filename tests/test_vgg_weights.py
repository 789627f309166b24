"""ImageNet VGG19 for the perceptual loss: a given file, torch hub's copy, or a download on first use.

The real file (548 MB) cannot be downloaded here; a torchvision-shaped state dict stands in for
it, served by the loopback server, with the published hash prefix swapped for its own.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from superres.archs.vgg import VGG19_CONFIG
from superres.errors import ConfigError, DownloadError, WeightsError
from superres.train import vgg_weights
from superres.train.vgg_weights import VGG19_FILE, perceptual_extractor

pytestmark = pytest.mark.usefixtures("one_thread")


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


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_the_official_source_is_torchvisions_file_with_its_published_prefix():
    assert vgg_weights.VGG19_URL == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert vgg_weights.VGG19_SHA256_PREFIX == VGG19_FILE.removesuffix(".pth").rsplit("-", 1)[1] == "dcbb9e9d"


def test_loads_a_torchvision_state_dict_from_a_path(tmp_path, hub):
    state = _torchvision_like_state(upto=34)
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    vgg = perceptual_extractor("conv5_4", after_activation=False, weights=path)
    assert vgg.weights_source == str(path)
    assert set(vgg.state_dict()) == {k for k in state if k.startswith("features.")}
    assert torch.equal(vgg.features[34].weight, state["features.34.weight"])
    assert not any(p.requires_grad for p in vgg.parameters())
    assert vgg(torch.rand(1, 3, 32, 32)).shape == (1, 512, 2, 2)
    with pytest.raises(ConfigError, match="not found"):
        perceptual_extractor("conv5_4", False, weights=tmp_path / "missing.pth")


def test_uses_torch_hubs_copy_as_torchvision_does(hub, loopback):
    hub.mkdir(parents=True)
    state = _torchvision_like_state(upto=7)
    torch.save(state, hub / VGG19_FILE)
    vgg = perceptual_extractor("conv2_2", True)
    assert vgg.weights_source == str(hub / VGG19_FILE)
    assert torch.equal(vgg.features[7].bias, state["features.7.bias"])
    with pytest.raises(WeightsError, match="lacks features"):
        perceptual_extractor("conv3_1", True)  # the file stops at conv2_2
    assert loopback.requests == []


def test_downloads_on_first_use_into_torch_hub_checked_by_the_prefix(hub, loopback, monkeypatch):
    torch.save(_torchvision_like_state(upto=2), loopback.root / VGG19_FILE)
    digest = hashlib.sha256((loopback.root / VGG19_FILE).read_bytes()).hexdigest()
    monkeypatch.setattr(vgg_weights, "VGG19_URL", loopback.url(VGG19_FILE))
    monkeypatch.setattr(vgg_weights, "VGG19_SHA256_PREFIX", "0" * 8 if digest[:8] != "0" * 8 else "1" * 8)
    with pytest.raises(DownloadError, match="VGG19 for the perceptual loss: .* expected one starting with"):
        perceptual_extractor("conv1_2", False)
    assert not (hub / VGG19_FILE).exists()  # a file that fails the check is never installed

    monkeypatch.setattr(vgg_weights, "VGG19_SHA256_PREFIX", digest[:8])
    vgg = perceptual_extractor("conv1_2", False, progress=False)
    assert vgg.weights_source == str(hub / VGG19_FILE) and (hub / VGG19_FILE).is_file()
    perceptual_extractor("conv1_2", False)
    assert len(loopback.requests) == 2  # the failed try and the good one; the third use is local


def test_offline_names_the_url_the_prefix_and_the_place(hub, monkeypatch):
    monkeypatch.setenv("SUPERRES_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        perceptual_extractor("conv5_4", False)
    message = str(err.value)
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "sha256 starts with dcbb9e9d" in message and str(hub / VGG19_FILE) in message
    assert "loss.vgg.weights=PATH" in message


def test_allow_random_never_downloads(hub, monkeypatch):
    monkeypatch.setattr(vgg_weights, "VGG19_URL", "http://127.0.0.1:9/unreachable")
    assert perceptual_extractor("conv1_2", False, allow_random=True).weights_source == "random"


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_pickles_that_run_code(tmp_path, hub):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil()}, path)
    with pytest.raises(WeightsError):
        perceptual_extractor("conv1_1", False, weights=path)
