"""bf16 on AMX tiles (superres.engine.amx, csrc/amx.cpp, csrc/dense.cpp): the conv kernel and RRDBNet's
dense blocks by it. Skipped where the CPU or the compiler gives no AMX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from superres.archs.rrdbnet import RESIDUAL_SCALE, ResidualDenseBlock
from superres.engine.blockwise import dense_block_amx
from superres.engine.inference import load_model
from superres.engine.kernels import CpuKernels
from superres.engine.stripes import rows_with_context

CL = torch.channels_last


@pytest.fixture(scope="module")
def amx(cpu_kernels: CpuKernels) -> CpuKernels:
    if not cpu_kernels.has_amx:
        pytest.skip("this CPU (or compiler) has no AMX tiles")
    return cpu_kernels


def test_amx_conv_rows_equal_the_direct_conv_of_bf16_values(amx: CpuKernels) -> None:
    """bf16 products summed in fp32: the direct conv of the same bf16-rounded inputs and weights, to
    fp32 rounding (then bf16 rounding of the output). Borders, widths that are not multiples of 32
    (the zero-padded copy at each end of a row), 48 outputs padded to 64, two input groups."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(96, 48, 3, padding=1)
    prepared = amx.prepare_amx(conv, [64, 32])
    assert prepared is not None and prepared.padded_out_channels == 64
    weight = conv.weight.detach().to(torch.bfloat16).float()
    slopes = torch.rand(48) - 0.5
    for height, width, lo, hi in [(1, 1, 0, 1), (5, 33, 0, 5), (9, 70, 2, 7), (9, 17, 4, 9)]:
        maps = [torch.randn(1, c, height, width).to(torch.bfloat16).contiguous(memory_format=CL) for c in (64, 32)]
        direct = F.conv2d(torch.cat(maps, 1).float(), weight, conv.bias.detach(), padding=1)[:, :, lo:hi]
        window = rows_with_context(lo, hi, height)
        for out_dtype, activation in ((torch.float32, None), (torch.bfloat16, slopes)):
            out = torch.full((1, 64, hi - lo, width), float("nan"), dtype=out_dtype).contiguous(memory_format=CL)
            prepared.rows([m[:, :, window] for m in maps], window.start, lo, hi, height, out, activation)
            expected = direct if activation is None else F.prelu(direct, activation)
            tolerance = 1e-5 if out_dtype == torch.float32 else 2**-8  # bf16 keeps 8 bits
            error = (out[:, :48].float() - expected).abs().max() / expected.abs().max()
            assert error <= tolerance, (height, width, lo, hi, out_dtype)
            assert out_dtype == torch.bfloat16 or (out[:, 48:] == 0).all()  # padded outputs: zero filters


def test_dense_block_by_amx_equals_the_block_and_is_the_same_in_any_bands(amx: CpuKernels) -> None:
    """Within bf16 rounding of the block (computed in fp32 from the same bf16 input), with and without the
    RRDB's residual; bit for bit the same however the rows are cut into bands (here 1, 2, 3)."""
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_feat=64, num_grow_ch=32).eval()
    for p in block.parameters():  # weights of trained size: the default init is too small to show a wrong row
        p.data.mul_(5)
    x = torch.rand(1, 64, 70, 33).to(torch.bfloat16).contiguous(memory_format=CL)
    skip = torch.rand_like(x)
    with torch.inference_mode():
        expected = block(x.float())
    outputs = []
    for bands in (1, 2, 3):
        out, accumulated = torch.full_like(x, float("nan")), skip.clone()
        assert dense_block_amx(block, x, out, False, amx, bands)
        assert dense_block_amx(block, x, accumulated, True, amx, bands)
        outputs.append((out, accumulated))
    out, accumulated = outputs[0]
    assert (out.float() - expected).abs().max() <= 2**-8 * expected.abs().max()
    with_skip = skip.float() + RESIDUAL_SCALE * expected
    assert (accumulated.float() - with_skip).abs().max() <= 2**-8 * with_skip.abs().max()
    assert all(torch.equal(out, o) and torch.equal(accumulated, a) for o, a in outputs[1:])


def test_x4plus_in_bf16_by_amx_is_close_to_fp32(amx: CpuKernels, shared: Path) -> None:
    """The engine as users run it on an AMX CPU (auto: bf16): ≥ 50 dB against fp32, the bar for bf16 paths."""
    weights = shared / "weights" / "RealESRGAN_x4plus_fp16round.pth"
    lenna = Image.open(shared / "benchmarks" / "Set14" / "HR" / "lenna.png")
    image = np.asarray(lenna.convert("RGB"))[200:248, 180:236]
    low = load_model(weights, device="cpu", precision="bf16")
    assert low._winograd_kernel(torch.bfloat16) is not None  # the dense blocks go to the AMX kernel
    got = low.upscale(image).astype(np.float64)
    expected = load_model(weights, device="cpu", precision="fp32").upscale(image).astype(np.float64)
    assert 10 * np.log10(255**2 / np.mean((got - expected) ** 2)) >= 50


@pytest.mark.parametrize("out_channels, on_amx", [(64, True), (48, False)])
def test_conv_in_rows_takes_amx_in_bf16_only_for_outputs_it_need_not_pad(
    amx: CpuKernels, monkeypatch: pytest.MonkeyPatch, out_channels: int, on_amx: bool
) -> None:
    """The stripe conv (RRDBNet's tail) runs a bf16 conv by AMX when the kernel's padded outputs are the
    conv's own (64), else by PyTorch (48 would come back padded to 64); either way it is the conv."""
    from superres.engine import amx as amx_module
    from superres.engine.stripes import conv_in_rows

    calls = []
    real_rows = amx_module.AmxConv.rows
    monkeypatch.setattr(amx_module.AmxConv, "rows", lambda self, *a, **k: calls.append(1) or real_rows(self, *a, **k))
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(64, out_channels, 3, padding=1).to(torch.bfloat16).requires_grad_(False)  # as the engine's
    x = torch.randn(1, 64, 9, 40).to(torch.bfloat16).contiguous(memory_format=CL)  # 9 rows: not the 64 channels
    out = torch.empty(1, out_channels, 9, 40, dtype=torch.bfloat16).contiguous(memory_format=CL)
    conv_in_rows(conv, x, out, 4, 0.2, winograd=amx)
    weight, bias = conv.weight.detach().float(), conv.bias.detach().float()
    expected = F.leaky_relu(F.conv2d(x.float(), weight, bias, padding=1), 0.2)
    assert (len(calls) > 0) == on_amx
    assert ((out.float() - expected).abs().max() / expected.abs().max()) <= 2**-7
