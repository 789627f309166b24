"""Winograd's minimal filtering F(4×4, 3×3): RRDBNet's 3×3 convs in a quarter of the multiplications.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 4×4 block of a
3×3 conv's output depends on a 6×6 window of its input. Transformed by fixed matrices — the input
window to ``Bᵀ d B``, the kernel to ``G g Gᵀ`` — the conv becomes an elementwise product of 6×6
arrays summed over input channels: 36 matrix products ``[tiles × C_in] @ [C_in × C_out]``, one per
position in the array, after which ``Aᵀ m A`` turns each 6×6 result back into 16 outputs. That is
36 multiply-adds per 16 outputs per channel pair instead of 144, 4× fewer; the transforms are a few
additions per value.

PyTorch's direct fp32 conv (oneDNN) already runs near this CPU's FMA peak (~80 % of it through
x4plus), so fewer multiplications is the only way to run faster in fp32: 2.2× on a dense block of
x4plus, 2.3× on a whole image (``bench/RESULTS.md``). PyTorch's CPU build
has no Winograd conv any more, and built from tensor operations the transforms cost more than the
products save (they move 2.25× the input through memory ~50 times). So the kernel is C++
(``csrc/winograd.cpp``): for each block of 32 tiles it transforms the input, runs the 36 products with
a register-blocked loop, and transforms back, all in cache. It is compiled for the CPU it runs on
the first time it is needed (~30 s, with the C++ compiler and ninja; kept in the user cache after that).

Rounding: the transforms add values up to 5× and 8× apart, so an fp32 output differs from the direct
conv's by ~1e-6 of the input's scale instead of ~1e-7. Through x4plus's 350 convs that stays under
one 8-bit level. In bf16 the same amplification would cost levels, so this is for fp32 only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

# F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞ (Lavin & Gray, §4.2). Bᵀ and Aᵀ are in the C++.
TILE = 4
_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
SOURCE = Path(__file__).resolve().parent / "csrc" / "winograd.cpp"
# the kernel takes input channels in groups of 16 and output channels in groups of 32
INPUT_CHANNEL_MULTIPLE = 16
OUTPUT_CHANNEL_MULTIPLE = 32


def transform_weight(conv: nn.Conv2d) -> torch.Tensor:
    """``G g Gᵀ`` for every (output, input) channel pair of a 3×3 conv: ``[36, C_in, C_out]`` fp32,
    computed in fp64 so that the only rounding is the final one."""
    g = torch.tensor(_G, dtype=torch.float64, device=conv.weight.device)
    weight = conv.weight.detach().to(torch.float64)  # [out, in, 3, 3]
    v = torch.einsum("ak,oikl,bl->abio", g, weight, g)
    return v.reshape(36, weight.shape[1], weight.shape[0]).to(torch.float32).contiguous()


def fits(conv: nn.Conv2d, input_groups: list[int]) -> bool:
    """Whether the kernel can run ``conv`` on inputs of these channel counts (fp32 3×3, stride 1, on CPU)."""
    return (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is not None
        and conv.weight.dtype == torch.float32
        and conv.weight.device.type == "cpu"
        and conv.out_channels % OUTPUT_CHANNEL_MULTIPLE == 0
        and all(c % INPUT_CHANNEL_MULTIPLE == 0 for c in input_groups)
    )


# pragma: no mutate start (mutation testing: a changed name, path or flag here costs a compile per mutant)
def kernel_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/superres/kernels``, else ``~/.cache/superres/kernels``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "superres" / "kernels"


def _put_ninja_on_path() -> None:
    """torch builds with the ``ninja`` it finds on PATH; the pip package's lies beside the Python
    that installed it, which is not on PATH when that environment is not activated."""
    if shutil.which("ninja") is not None:
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, os.environ.get("PATH", "")])


def _build_name() -> str:
    """One build per CPU capability and source version: a shared home or an upgrade never loads a stale one."""
    capability = torch.backends.cpu.get_cpu_capability().lower()
    version = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:10]
    return f"superres_winograd_{capability}_{version}"


def _build(build_dir: Path) -> Any:
    """Compile the kernel into ``build_dir`` (or find it built there) and import it."""
    from torch.utils.cpp_extension import load  # imports setuptools: only when a kernel is needed

    _put_ninja_on_path()
    name = build_dir.name
    build_dir.mkdir(parents=True, exist_ok=True)
    if not any(build_dir.glob(f"{name}*.so")) and not any(build_dir.glob(f"{name}*.pyd")):
        print(f"superres: compiling the fp32 Winograd kernel for this CPU (once, ~30 s) in {build_dir}", file=sys.stderr)
    return load(
        name=name,
        sources=[str(SOURCE)],
        build_directory=str(build_dir),
        extra_cflags=["-O3", "-march=native", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


# pragma: no mutate end


# Kernels loaded in this process, by build folder: torch's loader re-checks the build (ninja, several
# seconds of CPU) on every call, and every Upscaler asks for the kernel.
_LOADED: dict[Path, WinogradKernel] = {}


class WinogradKernel:
    """The compiled kernel: :meth:`load` it, :meth:`prepare` a conv, run :meth:`WinogradConv.rows`."""

    def __init__(self, module: Any) -> None:
        self._module = module

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> WinogradKernel:
        """Build (first time, ~30 s) or load the kernel for this CPU, once per process. Raises
        ``RuntimeError`` (or ``OSError``) when it cannot be built: no C++ compiler, no ninja, an unwritable cache."""
        build_dir = (cache_dir or kernel_cache_dir()) / _build_name()
        if build_dir not in _LOADED:
            _LOADED[build_dir] = cls(_build(build_dir))
        return _LOADED[build_dir]

    def prepare(self, conv: nn.Conv2d, input_groups: list[int]) -> WinogradConv | None:
        """``conv`` ready to run on inputs of these channel counts, or ``None`` if it does not :func:`fits`."""
        if not fits(conv, input_groups):
            return None
        assert conv.bias is not None
        return WinogradConv(self._module, transform_weight(conv), conv.bias.detach())


@dataclass(frozen=True)
class WinogradConv:
    """One 3×3 conv for the kernel: :func:`transform_weight` of it, and its bias."""

    module: Any
    weight: torch.Tensor
    bias: torch.Tensor

    def rows(
        self,
        parts: list[torch.Tensor],
        first: int,
        lo: int,
        hi: int,
        height: int,
        out: torch.Tensor,
        slope: float | None,
    ) -> None:
        """Rows ``[lo, hi)`` of the conv over a map ``height`` rows high, into ``out``
        (``[N, C_out, hi - lo, width]``, channels last; LeakyReLU with ``slope`` unless ``None``).

        ``parts`` are the conv's input rows ``[first, …)`` — one row of context on each side, less at
        the map's top and bottom where the conv's zero padding stands in — as channel groups of
        ``[N, C_k, rows, width]`` channels-last fp32 tensors, concatenated by the kernel as it reads them."""
        window_rows, width = parts[0].shape[-2:]
        pad_top = 1 if lo == 0 else 0
        out_rows = window_rows + pad_top + (1 if hi == height else 0) - 2
        tiles_high, tiles_wide = -(-out_rows // TILE), -(-width // TILE)
        start = lo - (first - pad_top) - 1  # output row r of the padded window is map row first - pad_top + 1 + r
        for n in range(out.shape[0]):  # the kernel takes one image at a time
            self.module.conv3x3(
                [p[n].permute(1, 2, 0) for p in parts],
                pad_top,
                tiles_high,
                tiles_wide,
                self.weight,
                self.bias,
                out[n].permute(1, 2, 0),
                start,
                0.0 if slope is None else slope,
                slope is not None,
            )
