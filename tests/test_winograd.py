"""Winograd F(4×4, 3×3) for RRDBNet in fp32 on CPU (superres.engine.winograd, csrc/winograd.cpp)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import superres.engine.winograd as winograd
from superres.archs import RRDBNet
from superres.archs.rrdbnet import RESIDUAL_SCALE, ResidualDenseBlock
from superres.engine.blockwise import dense_block_in_stripes, rrdbnet_body_blockwise
from superres.engine.inference import load_model
from superres.engine.kernels import CpuKernels
from superres.engine.stripes import rows_with_context
from superres.engine.winograd import WinogradConv

CL = torch.channels_last


# The kernel is compiled on first use; a machine without a C++ compiler falls back to the direct conv
# (tested below with a failing build). Where there is one, a failing build is a bug: no skip then.
needs_compiler = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler to build the kernel")


@pytest.fixture(scope="module")
def kernel(cpu_kernels: CpuKernels) -> CpuKernels:
    return cpu_kernels


def _conv(in_channels: int, out_channels: int, seed: int) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)
    conv.bias.data.normal_()
    return conv


@pytest.mark.parametrize(("groups", "out_channels"), [([16], 32), ([64, 32, 32], 64), ([64], 48)])
def test_conv_rows_equal_the_direct_conv(kernel: CpuKernels, groups: list[int], out_channels: int) -> None:
    """Any rows of any map: top and bottom borders (zero padding), heights and widths that are not
    multiples of 4, channel groups read where they lie, output channels a multiple of 16 but not of 32;
    no activation, LeakyReLU, and PReLU with a slope per channel."""
    conv = _conv(sum(groups), out_channels, len(groups))
    prepared = kernel.prepare(conv, groups)
    assert prepared is not None
    prelu = torch.rand(out_channels) - 0.5  # negative slopes too: a wrong channel shows
    for height, width, lo, hi in [(1, 1, 0, 1), (7, 5, 0, 7), (13, 9, 0, 4), (13, 9, 3, 10), (13, 9, 6, 13), (20, 6, 5, 9)]:
        maps = [torch.randn(2, c, height, width).contiguous(memory_format=CL) for c in groups]  # a batch of 2
        with torch.inference_mode():
            direct = conv(torch.cat(maps, 1))[:, :, lo:hi]
            window = rows_with_context(lo, hi, height)
            for slope in (None, 0.2, prelu):
                out = torch.full((2, out_channels, hi - lo, width), float("nan")).contiguous(memory_format=CL)
                prepared.rows([m[:, :, window] for m in maps], window.start, lo, hi, height, out, slope)
                if slope is None:
                    expected = direct
                elif isinstance(slope, float):
                    expected = F.leaky_relu(direct, slope)
                else:
                    expected = F.prelu(direct, slope)
                assert (out - expected).abs().max() <= 1e-5 * expected.abs().max(), (height, width, lo, hi, slope)


def test_fits_takes_only_what_the_kernel_computes() -> None:
    """fp32 3×3 stride-1 convs with a bias on the CPU, output channels in 16s, every input group in 16s."""

    def conv(**options: object) -> torch.nn.Conv2d:
        settings = {"in_channels": 32, "out_channels": 64, "kernel_size": 3, "padding": 1, **options}
        return torch.nn.Conv2d(**settings)  # type: ignore[arg-type]

    assert winograd.fits(conv(), [16, 16]) and winograd.fits(conv(), [32])
    assert not winograd.fits(conv(), [16, 8, 8])  # an input group the kernel cannot read
    assert winograd.fits(conv(out_channels=48), [32]) and not winograd.fits(conv(out_channels=40), [32])
    refused = [
        conv(kernel_size=5, padding=2), conv(stride=2), conv(dilation=2, padding=2), conv(groups=2),
        conv(bias=False), conv().double(), conv(out_channels=8), conv().to("meta"),
    ]  # fmt: skip
    assert [winograd.fits(c, [32]) for c in refused] == [False] * len(refused)


def test_the_kernel_is_built_once_per_process_and_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """torch's loader re-checks a build on every call (seconds of CPU): load() keeps what it loaded; each
    CpuKernels keeps its own prepared weights (one per Upscaler)."""
    import superres.engine.kernels as kernels

    class Module:
        def __init__(self, build_dir: Path) -> None:
            self.build_dir = build_dir

        def amx_available(self) -> bool:
            return False

    built: list[Path] = []
    monkeypatch.setattr(kernels, "_build", lambda build_dir: built.append(build_dir) or Module(build_dir))
    monkeypatch.setattr(kernels, "_LOADED", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    default, again, elsewhere = CpuKernels.load(), CpuKernels.load(), CpuKernels.load(tmp_path / "other")
    name = kernels._build_name()
    assert built == [tmp_path / "cache" / "superres" / "kernels" / name, tmp_path / "other" / name]
    assert default.module is again.module and default.module.build_dir == built[0] and default is not again
    assert elsewhere.module.build_dir == built[1]


def test_weight_transform_is_laid_out_for_the_kernel() -> None:
    """[36, C_in, C_out] fp32, on the conv's device: position (a, b) of G g Gᵀ is row 6a + b."""
    conv = _conv(16, 32, 0)
    v = winograd.transform_weight(conv)
    assert v.shape == (36, 16, 32) and v.dtype == torch.float32 and v.is_contiguous()
    g = torch.tensor(winograd._G, dtype=torch.float64)
    expected = g @ conv.weight.detach().double()[5, 3] @ g.T  # output channel 5, input channel 3
    assert torch.allclose(v[:, 3, 5].double(), expected.reshape(36), rtol=1e-6, atol=1e-7)
    assert winograd.transform_weight(conv.to("meta")).device.type == "meta"


def test_weight_transform_is_exact_in_float64() -> None:
    """G g Gᵀ then the 36 products and Aᵀ · A reproduce the 3×3 conv of a single 6×6 window in fp64."""
    g = torch.tensor(winograd._G, dtype=torch.float64)
    bt = torch.tensor(
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        dtype=torch.float64,
    )
    at = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=torch.float64)
    d, k = torch.randn(6, 6, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    y = at @ ((g @ k @ g.T) * (bt @ d @ bt.T)) @ at.T
    assert torch.allclose(y, F.conv2d(d[None, None], k[None, None])[0, 0], atol=1e-12)


def _trained_size_block(channels: int) -> ResidualDenseBlock:
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_feat=channels, num_grow_ch=32).eval()
    for p in block.parameters():  # weights of trained size: the default init is too small to show a wrong row
        p.data.mul_(5)
    return block


def test_dense_block_in_stripes_by_winograd_equals_the_block(kernel: CpuKernels) -> None:
    block = _trained_size_block(32)
    with torch.inference_mode():
        for height in (1, 5, 8, 17, 25):
            x = torch.rand(1, 32, height, 11).contiguous(memory_format=CL)
            whole = block(x)
            out = torch.full_like(x, float("nan"))
            dense_block_in_stripes(block, x, out, 8, winograd=kernel)
            assert (out - whole).abs().max() <= 1e-5 * whole.abs().max(), height
            skip = torch.rand_like(x)
            expected = skip + RESIDUAL_SCALE * whole
            dense_block_in_stripes(block, x, skip, 8, residual=True, winograd=kernel)
            assert (skip - expected).abs().max() <= 1e-5 * expected.abs().max(), height


def test_channels_the_kernel_does_not_take_run_the_direct_conv(kernel: CpuKernels) -> None:
    """Growth 8 is not a multiple of 16: the block runs as without the kernel, bit for bit."""
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_feat=16, num_grow_ch=8).eval()
    x = torch.rand(1, 16, 20, 9).contiguous(memory_format=CL)
    a, b = torch.empty_like(x), torch.empty_like(x)
    with torch.inference_mode():
        dense_block_in_stripes(block, x, a, 8)
        dense_block_in_stripes(block, x, b, 8, winograd=kernel)
    assert torch.equal(a, b)


def test_blockwise_body_by_winograd_equals_the_body(kernel: CpuKernels) -> None:
    """Also when the image fits one stripe (where the direct path would call forward_body)."""
    torch.manual_seed(1)
    net = RRDBNet(num_feat=32, num_block=2, num_grow_ch=32).eval()
    for p in net.parameters():
        p.data.mul_(5)
    with torch.inference_mode():
        for size, tile in (((30, 23), 8), ((12, 12), 64)):
            x = torch.rand(1, 3, *size).contiguous(memory_format=CL)
            whole = net.forward_body(x)
            got = rrdbnet_body_blockwise(net, x, tile, winograd=kernel)
            assert (got - whole).abs().max() <= 1e-4 * whole.abs().max(), size


@pytest.mark.slow
@needs_compiler
def test_x4plus_by_winograd_within_one_level_of_the_direct_conv(shared: Path) -> None:
    weights = shared / "weights" / "RealESRGAN_x4plus_fp16round.pth"
    image = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "lenna.png").convert("RGB"))[200:248, 180:236]
    fast = load_model(weights, device="cpu", precision="fp32")
    direct = load_model(weights, device="cpu", precision="fp32", winograd=False)
    got, expected = fast.upscale(image), direct.upscale(image)
    assert fast._kernel is not None and direct._kernel is None  # really two ways
    difference = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_a_kernel_that_cannot_be_built_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiler(cls: type, cache_dir: Path | None = None) -> CpuKernels:
        raise RuntimeError("Error building extension 'superres_kernels': c++: not found")

    monkeypatch.setattr(CpuKernels, "load", classmethod(no_compiler))
    torch.manual_seed(0)
    hparams = {"scale": 4, "num_feat": 32, "num_block": 1, "num_grow_ch": 32}
    net = RRDBNet(**hparams).eval()
    from superres.engine.inference import Upscaler
    from superres.models.detect import describe

    image = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    upscaler = Upscaler(net, describe("RRDBNet", hparams, net), device="cpu", precision="fp32")
    with pytest.warns(UserWarning, match="CPU kernels .* could not be built .*c\\+\\+: not found.*--no-winograd"):
        got = upscaler.upscale(image)
    expected = Upscaler(net, describe("RRDBNet", hparams, net), device="cpu", precision="fp32", winograd=False).upscale(image)
    assert np.array_equal(got, expected)


def test_fast_tail_with_conv_hr_by_winograd_equals_the_tail(
    kernel: CpuKernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    import superres.engine.tail as tail

    monkeypatch.setattr(tail, "STRIPE_PIXELS", 40)  # windows of a few rows at every resolution
    torch.manual_seed(2)
    net = RRDBNet(num_feat=32, num_block=1, num_grow_ch=32).eval()
    calls = []
    rows = WinogradConv.rows
    monkeypatch.setattr(WinogradConv, "rows", lambda self, *a: calls.append(1) or rows(self, *a))
    with torch.inference_mode():
        feat = torch.randn(1, 32, 7, 5).contiguous(memory_format=CL)
        expected = net.forward_tail(feat)
        got = tail.rrdbnet_tail_fast(net, feat, winograd=kernel)
    assert calls  # conv_hr really went through the kernel
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


@needs_compiler
def test_auto_precision_takes_fp32_by_winograd_for_rrdbnet_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel outruns bf16 (a CPU with native bf16 but no AMX): fp32, which is also exact to a level."""
    import superres.engine.devices as devices
    import superres.engine.inference as inference
    from superres.engine.inference import Upscaler
    from superres.models.detect import describe

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: False)

    def upscaler(feat: int, grow: int, **options: object) -> Upscaler:
        hparams = {"scale": 4, "num_feat": feat, "num_block": 1, "num_grow_ch": grow}
        net = RRDBNet(**hparams).eval()
        return Upscaler(net, describe("RRDBNet", hparams, net), device="cpu", precision="auto", **options)

    assert upscaler(32, 32).precision == "fp32"
    assert upscaler(8, 4).precision == "bf16"  # channels the kernel does not take: bf16 is faster
    assert upscaler(32, 32, winograd=False).precision == "bf16"
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: True)
    assert upscaler(32, 32).precision == "bf16"  # AMX's bf16 tiles outrun fp32 by far
    monkeypatch.setattr(inference, "cpu_has_amx", lambda: False)

    def no_compiler(cls: type, cache_dir: Path | None = None) -> CpuKernels:
        raise OSError("c++: not found")

    monkeypatch.setattr(CpuKernels, "load", classmethod(no_compiler))
    with pytest.warns(UserWarning, match="could not be built"):
        assert upscaler(32, 32).precision == "bf16"


@needs_compiler
def test_prepared_weights_are_kept_for_the_life_of_the_upscaler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transform of a conv's weights is made once per Upscaler, not once per image or region (a
    folder of small images paid ~0.4 s per x4plus image for it); past the memory allowed, once per use."""
    import superres.engine.kernels as kernels
    from superres.engine.inference import Upscaler
    from superres.models.detect import describe

    calls = []
    transform = winograd.transform_weight
    monkeypatch.setattr(winograd, "transform_weight", lambda conv: calls.append(conv) or transform(conv))
    hparams = {"scale": 4, "num_feat": 32, "num_block": 1, "num_grow_ch": 32}
    torch.manual_seed(0)
    net = RRDBNet(**hparams).eval()
    image = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    upscaler = Upscaler(net, describe("RRDBNet", hparams, net), device="cpu", precision="fp32")
    first = upscaler.upscale(image)
    per_image = len(calls)
    assert per_image >= 15  # three dense blocks of five convs, and conv_hr
    assert np.array_equal(upscaler.upscale(image), first) and len(calls) == per_image
    assert upscaler._winograd_kernel(torch.float32).prepared_bytes > 0

    monkeypatch.setattr(kernels, "PREPARED_MEMORY", 0)
    upscaler = Upscaler(net, describe("RRDBNet", hparams, net), device="cpu", precision="fp32")
    upscaler.upscale(image)
    upscaler.upscale(image)
    assert len(calls) == 3 * per_image
