"""SRVGGNetCompact by the compiled kernels (superres.engine.compact, csrc/compact.cpp, csrc/amx.cpp):
fp32 by Winograd everywhere, bf16 on AMX where the CPU has it; the choice --precision auto makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import superres
import superres.engine.devices as devices
import superres.engine.inference as inference
from superres.archs import SRVGGNetCompact
from superres.engine.compact import compact_forward, plan_compact
from superres.engine.inference import Upscaler, load_model
from superres.engine.kernels import CpuKernels
from superres.models.detect import describe

CL = torch.channels_last
WEIGHTS = Path(superres.__file__).parent / "weights" / "superres_x4.safetensors"  # SRVGGNetCompact 64×16, PReLU
SAMPLE = Path(superres.__file__).parent / "assets" / "sample.png"


@pytest.fixture(scope="module")
def network() -> SRVGGNetCompact:
    from superres.models.weights import load_network

    return load_network(WEIGHTS)[0].eval()


@pytest.fixture(scope="module")
def amx(cpu_kernels: CpuKernels) -> CpuKernels:
    if not cpu_kernels.has_amx:
        pytest.skip("this CPU (or compiler) has no AMX tiles")
    return cpu_kernels


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


@pytest.mark.parametrize("bands, rows", [(1, 8), (1, 3), (2, 8), (3, 5)])
def test_compact_forward_by_winograd_equals_the_network(
    cpu_kernels: CpuKernels, network: SRVGGNetCompact, bands: int, rows: int
) -> None:
    """Bands cut anywhere (their context rows), stripes of any height, sizes that are not multiples of 4."""
    plan = plan_compact(network, cpu_kernels, torch.float32)
    assert plan is not None and not plan.uses_amx
    x = torch.rand(1, 3, 37, 29)
    with torch.inference_mode():
        expected = network(x)
        got = compact_forward(plan, x, bands, rows)
    assert (got - expected).abs().max() <= 1e-5


def test_compact_forward_on_amx_is_within_bf16_rounding_and_the_same_in_any_bands(
    amx: CpuKernels, network: SRVGGNetCompact
) -> None:
    """≥ 60 dB against fp32 (the bar for bf16 paths is 50), and bit for bit the same however the rows
    are cut: each output's sums run in the same order anywhere."""
    plan = plan_compact(network, amx, torch.bfloat16)
    assert plan is not None and plan.uses_amx
    x = torch.rand(1, 3, 41, 45)
    with torch.inference_mode():
        expected = network(x)
        outputs = [compact_forward(plan, x, bands, rows) for bands, rows in ((1, 8), (2, 3), (3, 16))]
    assert _psnr(outputs[0], expected) >= 60
    assert all(torch.equal(outputs[0], other) for other in outputs[1:])


def test_a_conv_the_kernels_do_not_take_runs_the_network(cpu_kernels: CpuKernels) -> None:
    """Features that are not a multiple of 16: no plan, and the Upscaler runs the module itself."""
    hparams = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 24, "num_conv": 2, "upscale": 2, "act_type": "prelu"}
    net = SRVGGNetCompact(**hparams).eval()
    assert plan_compact(net, cpu_kernels, torch.float32) is None
    upscaler = Upscaler(net, describe("SRVGGNetCompact", hparams, net), device="cpu", precision="fp32")
    image = (np.random.default_rng(0).random((9, 7, 3)) * 255).astype(np.uint8)
    direct = Upscaler(net, upscaler.info, device="cpu", precision="fp32", winograd=False)
    assert np.array_equal(upscaler.upscale(image), direct.upscale(image))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_default_model_by_the_kernels_tiled_equals_untiled_and_is_close_to_the_direct_conv(
    cpu_kernels: CpuKernels, precision: str
) -> None:
    """The engine as users run it: fp32 within 1 level of PyTorch's conv; bf16 (AMX where there is one,
    oneDNN elsewhere) ≥ 50 dB; tiles of 16 px (context 18) give the untiled image to a level."""
    image = np.asarray(Image.open(SAMPLE).convert("RGB"))[100:140, 60:96]
    fast = load_model(WEIGHTS, device="cpu", precision=precision, tile=0)
    tiled = load_model(WEIGHTS, device="cpu", precision=precision, tile=16)
    direct = load_model(WEIGHTS, device="cpu", precision="fp32", winograd=False, tile=0)
    if precision == "fp32" or cpu_kernels.has_amx:  # really by the kernels
        assert fast._compact_plan(torch.float32 if precision == "fp32" else torch.bfloat16) is not None
    got, expected = fast.upscale(image).astype(np.int16), direct.upscale(image).astype(np.int16)
    assert np.abs(tiled.upscale(image).astype(np.int16) - got).max() <= 1
    if precision == "fp32":
        assert np.abs(got - expected).max() <= 1
    else:
        mse = np.mean((got - expected).astype(np.float64) ** 2)
        assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 50


def test_auto_precision_on_cpus_with_and_without_amx(cpu_kernels: CpuKernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """With AMX: bf16, on AMX tiles (where this build has them). With native bf16 but no AMX: fp32 by
    Winograd, faster there than oneDNN's bf16 and exact to a level. Kernels that cannot be built:
    oneDNN's bf16, with a warning."""
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: True)
    with_amx = load_model(WEIGHTS, device="cpu")
    assert with_amx.precision == "bf16"
    plan = with_amx._compact_plan(torch.bfloat16)
    assert (plan is not None and plan.uses_amx) if cpu_kernels.has_amx else plan is None

    monkeypatch.setattr(inference, "cpu_has_amx", lambda: False)
    without_amx = load_model(WEIGHTS, device="cpu")
    assert without_amx.precision == "fp32" and without_amx._compact_plan(torch.float32) is not None
    assert load_model(WEIGHTS, device="cpu", winograd=False).precision == "bf16"

    def no_compiler(cls: type, cache_dir: Path | None = None) -> CpuKernels:
        raise RuntimeError("Error building extension 'superres_kernels': c++: not found")

    monkeypatch.setattr(CpuKernels, "load", classmethod(no_compiler))
    with pytest.warns(UserWarning, match="could not be built"):
        assert load_model(WEIGHTS, device="cpu").precision == "bf16"


def test_kernels_that_cannot_be_built_fall_back_to_the_direct_conv(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiler(cls: type, cache_dir: Path | None = None) -> CpuKernels:
        raise RuntimeError("Error building extension 'superres_kernels': c++: not found")

    monkeypatch.setattr(CpuKernels, "load", classmethod(no_compiler))
    image = (np.random.default_rng(2).random((10, 12, 3)) * 255).astype(np.uint8)
    upscaler = load_model(WEIGHTS, device="cpu", precision="fp32")
    with pytest.warns(UserWarning, match="could not be built .*--no-winograd"):
        got = upscaler.upscale(image)
    assert np.array_equal(got, load_model(WEIGHTS, device="cpu", precision="fp32", winograd=False).upscale(image))
