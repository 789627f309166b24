"""LPIPS: eq. 1 recomputed independently with random weights, the release's file formats, the download."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from superres.errors import SuperresError, WeightsError
from superres.quality import lpips as lpips_module
from superres.quality.lpips import LPIPS, VARIANTS, WeightFile, load_lpips, lpips_images

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomised(net: str, seed: int = 0) -> LPIPS:
    torch.manual_seed(seed)
    model = LPIPS(net)
    for conv in model.features:
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            torch.nn.init.uniform_(conv.bias, -0.1, 0.1)
    for lin in model.lin:
        lin.weight.uniform_(0, 1)  # the released heads are non-negative
    return model


def _alexnet_taps(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """AlexNet as Krizhevsky's single-GPU variant (torchvision), written out with its hyper-parameters."""

    def w(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return state[f"features.{i}.weight"], state[f"features.{i}.bias"]

    r1 = F.relu(F.conv2d(x, *w(0), stride=4, padding=2))
    r2 = F.relu(F.conv2d(F.max_pool2d(r1, 3, 2), *w(3), padding=2))
    r3 = F.relu(F.conv2d(F.max_pool2d(r2, 3, 2), *w(6), padding=1))
    r4 = F.relu(F.conv2d(r3, *w(8), padding=1))
    r5 = F.relu(F.conv2d(r4, *w(10), padding=1))
    return [r1, r2, r3, r4, r5]


def _vgg16_taps(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """VGG16: blocks of 2, 2, 3, 3, 3 3×3 convs; the tap is the last ReLU of each block, before pooling."""
    taps, index = [], 0
    for block, convs in enumerate((2, 2, 3, 3, 3)):
        if block:
            x = F.max_pool2d(x, 2)
            index += 1
        for _ in range(convs):
            x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
            index += 2
        taps.append(x)
    return taps


def _eq1(model: LPIPS, taps, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Zhang et al. eq. 1 with the head applied to squared differences, as the release does."""
    state = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    fx, fy = (taps(state, ((2 * t - 1) - shift) / scale) for t in (x, y))
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for k, (a, b) in enumerate(zip(fx, fy, strict=True)):
        a, b = a.double(), b.double()
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        weight = model.lin[k].weight.double().view(-1)
        total += torch.einsum("nchw,c->n", (a - b) ** 2, weight) / (a.shape[2] * a.shape[3])
    return total


@pytest.mark.parametrize(("net", "taps", "size"), [("alex", _alexnet_taps, 96), ("vgg", _vgg16_taps, 48)])
def test_distance_is_eq1(net: str, taps, size: int) -> None:
    model = _randomised(net)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, size, size, generator=gen)
    y = (x + 0.1 * torch.randn(2, 3, size, size, generator=gen)).clamp(0, 1)
    got = model(x, y)
    expected = _eq1(model, taps, x, y)
    assert got.shape == (2,) and bool((got > 0).all())
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(model(y, x), got)
    assert model(x, x).abs().max() == 0


def _save_release_files(model: LPIPS, folder: Path) -> tuple[Path, Path]:
    """The backbone as torchvision ships it (with the classifier) and the head as the LPIPS release does."""
    backbone = OrderedDict((f"features.{k}", v.clone()) for k, v in model.features.state_dict().items())
    backbone["classifier.1.weight"] = torch.zeros(4, 9216)
    head = OrderedDict((f"lin{k}.model.1.weight", lin.weight.clone()) for k, lin in enumerate(model.lin))
    backbone_path, head_path = folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth"
    torch.save(backbone, backbone_path)
    torch.save(head, head_path, _use_new_zipfile_serialization=False)  # the 2018 file predates zip archives
    return backbone_path, head_path


def test_release_files_load(tmp_path: Path) -> None:
    reference = _randomised("alex", seed=3)
    backbone, head = _save_release_files(reference, tmp_path)
    loaded = load_lpips("alex", backbone=backbone, head=head)
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x, y), reference(x, y))
    sr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    hr = (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    as_batch = [torch.tensor(a).permute(2, 0, 1)[None] / 255.0 for a in (sr, hr)]
    assert lpips_images(loaded, sr, hr) == pytest.approx(float(reference(*as_batch)), rel=1e-5)


def test_bad_files_are_one_clear_error(tmp_path: Path) -> None:
    backbone, head = _save_release_files(_randomised("alex"), tmp_path)
    torch.save({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "short.pth")
    with pytest.raises(WeightsError, match="layer 1"):
        load_lpips("alex", backbone=backbone, head=tmp_path / "short.pth")
    with pytest.raises(WeightsError, match="does not fit the LPIPS vgg backbone"):
        load_lpips("vgg", backbone=backbone, head=head)
    with pytest.raises(WeightsError, match="no such file"):
        load_lpips("alex", backbone=tmp_path / "missing.pth", head=head)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def release_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The two alex files served from 127.0.0.1, pinned by their hashes in place of the official URLs."""
    served = tmp_path / "served"
    served.mkdir()
    _save_release_files(_randomised("alex", seed=5), served)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def pinned(name: str) -> WeightFile:
        data = (served / name).read_bytes()
        return WeightFile(f"{base}/{name}", hashlib.sha256(data).hexdigest(), len(data))

    files = {"backbone": pinned("alexnet-owt-7be5be79.pth"), "head": pinned("alex.pth")}
    variant = dataclasses.replace(VARIANTS["alex"], **files)
    monkeypatch.setitem(lpips_module.VARIANTS, "alex", variant)
    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SUPERRES_OFFLINE", raising=False)
    yield server, tmp_path
    server.shutdown()


def test_weights_download_once_then_come_from_the_cache(release_server) -> None:
    server, home = release_server
    model = load_lpips("alex", progress=False)
    assert (home / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").is_file()  # torchvision's place
    assert [p.name for p in (home / "cache" / "lpips").iterdir() if p.is_file()] == ["alex.pth"]
    server.shutdown()  # no network from here on
    again = load_lpips("alex", progress=False)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(again(x, x.flip(-1)), model(x, x.flip(-1)))


def test_offline_says_what_to_fetch_and_where(release_server, monkeypatch: pytest.MonkeyPatch) -> None:
    _, home = release_server
    monkeypatch.setenv("SUPERRES_OFFLINE", "1")
    with pytest.raises(SuperresError) as info:
        load_lpips("alex", progress=False)
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message and str(home / "torch") in message and "\n" not in message
    assert "--lpips-backbone" in message
    with pytest.raises(WeightsError, match="by hand"):
        load_lpips("alex", download=False)
