"""The inference engine: any image, any size, on any device, with output that does not show its tiles.

:func:`load_model` reads a weights file; :class:`Upscaler` wraps the network and runs it.

**Tiling.** The LR image stays on the CPU. It is cut into tiles of ``tile`` pixels; each tile is read
with ``tile_pad`` pixels of real neighbouring image around it (clipped at the image border, never
mirrored), moved to the device, upscaled, and only its core — the upscaled tile without the
``tile_pad · scale`` margin — is pasted into an output that lives on the CPU. So device memory is
bounded by the tile, and the output only ever holds final values: ``upscale`` writes each core
straight into a uint8/uint16 array (an 8000×8000 RGB result is 192 MB, not the 768 MB of float32).
Tiles run in row-major order, so a consumer could also stream finished rows of tiles.

With enough context the tiled result equals the untiled one: the receptive field where it is small
(SRVGGNetCompact, SRResNet). RRDBNet's receptive field is ~350 px, so it runs differently
(:mod:`superres.engine.blockwise`): one dense block at a time over whole-region feature maps, in stripes of rows
that compute every row once and are exact. Regions are the whole image when its feature maps fit
``CPU_BLOCKWISE_MEMORY`` (or part of the free VRAM); larger images are cut into regions that overlap by
a measured 80 px (``RRDBNET_TILE_PAD``). ``tile=None`` picks the largest tile whose activations fit a
memory budget (free RAM or VRAM); out of memory halves the tile and retries.

**Colour and alpha** go through :mod:`superres.engine.colour`: gray, colour with alpha
(premultiplied, so hidden colour cannot bleed into edges), 16-bit.

**Precision.** ``fp16``/``bf16`` run a low-precision copy of the network; a tile whose output has a
NaN or inf is rerun in fp32 with a warning. NaN or inf in fp32 is an error (:class:`WeightsError`):
clamped, it would be written as a black or white image. On a CPU, compiled kernels
(:mod:`superres.engine.kernels`, built on first use) run the convs where they apply: in fp32, RRDBNet's
dense blocks and all of SRVGGNetCompact by Winograd's F(4×4, 3×3) (:mod:`superres.engine.winograd`),
~2× faster and within 1 level of the direct conv; in bf16 on CPUs with AMX, SRVGGNetCompact and
RRDBNet's dense blocks on AMX tiles with their activations fused (:mod:`superres.engine.amx`,
:mod:`superres.engine.compact`). ``winograd=False`` keeps PyTorch's convs.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from superres.engine.blockwise import (
    amx_speeds_up,
    blockwise_map_bytes,
    run_network,
    supports_blockwise,
    winograd_speeds_up,
)
from superres.engine.budget import (
    MIN_TILE,
    activation_bytes_per_pixel,
    blockwise_budget,
    default_tile_pad,
    memory_budget,
)
from superres.engine.colour import Sink, luma, upscale_pixels
from superres.engine.compact import CompactPlan, compact_forward, plan_compact, supports_compact
from superres.engine.devices import PRECISIONS, cpu_has_amx, is_out_of_memory, resolve_device, resolve_precision
from superres.engine.kernels import CpuKernels
from superres.engine.tiling import pad_to_multiple, round_up, tile_grid
from superres.errors import ConfigError, SuperresError, WeightsError, about
from superres.imageio import DEFAULT_MAX_PIXELS, array_to_pil, check_target, pil_to_array, read_image, write_image

if TYPE_CHECKING:
    from superres.models.detect import ModelInfo

Progress = Callable[[int, int], None]  # (steps done, steps in all): regions, and RRDBNet's blocks in each


def all_finite(values: torch.Tensor) -> bool:
    """No NaN or inf in ``values``. One summing pass (~1 ms for a 2048² RGB output) instead of
    ``isfinite().all()``'s boolean map (~35 ms): a NaN or an inf anywhere makes the sum NaN or inf.
    The sum itself overflows only past ~1e31 per value, which no working network outputs — and then the
    tile is rerun in fp32 or refused, never written."""
    return bool(torch.isfinite(values.sum()))


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The weights file behind ``--model``: a file, or a known model name (``superres models``),
    downloaded into the user cache on first use and checked against its sha256."""
    from superres.models.registry import resolve

    return resolve(name_or_path)


def load_model(
    path_or_name: str | os.PathLike[str],
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    tile_pad: int | None = None,
    winograd: bool = True,
    strength: float | None = None,
) -> Upscaler:
    """Read a weights file (ours, ESRGAN, Real-ESRGAN or BasicSR) and wrap it in an :class:`Upscaler`.

    ``strength`` α blends a known model with its GAN partner once, here (ESRGAN §3.4's network
    interpolation, θ = (1 − α)·θ_model + α·θ_GAN): 0 is the model itself, 1 the GAN model
    (``superres-x4`` → ``superres-x4-gan``). ``None``: the model as it is.
    """
    if strength is None:
        from superres.models.weights import load_network

        module, info = load_network(resolve_model_path(path_or_name))
    else:
        from superres.models.interpolation import load_with_strength

        module, info = load_with_strength(path_or_name, strength)
    return Upscaler(
        module, info, device=device, precision=precision, tile=tile, tile_pad=tile_pad, winograd=winograd
    )


class Upscaler:
    """A network ready to upscale images: ``Upscaler(module, info).upscale(image)``.

    ``tile``: LR tile size in pixels; ``None`` chooses from the image size and free memory, ``0``
    runs the whole image at once. ``tile_pad``: context around each tile (``None``: enough for
    tiled output to equal untiled output, see :func:`default_tile_pad`). ``winograd``: on a CPU, run the
    convs by the compiled kernels where they apply (:mod:`superres.engine.kernels`: Winograd's F(4×4, 3×3)
    in fp32, ~2× faster; AMX tiles in bf16; compiled on first use); ``False``: the direct conv, as
    PyTorch computes it.
    """

    def __init__(
        self,
        module: nn.Module,
        info: ModelInfo,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | None = None,
        tile_pad: int | None = None,
        winograd: bool = True,
    ) -> None:
        if info.in_channels not in (1, 3) or info.out_channels != info.in_channels:
            raise WeightsError(
                f"{info.arch} maps {info.in_channels} to {info.out_channels} channels; superres upscales "
                f"with networks that map RGB to RGB or gray to gray"
            )
        if tile is not None and tile < 0:
            raise ConfigError(f"tile must be 0 (no tiling), a positive size or None (automatic), not {tile}")
        if tile_pad is not None and tile_pad < 0:
            raise ConfigError(f"tile_pad must be ≥ 0, not {tile_pad}")
        self.info = info
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device, info.half_precision_ok)
        self.tile = tile
        self.tile_pad = round_up(default_tile_pad(info) if tile_pad is None else tile_pad, info.size_multiple)
        self._module = module.eval()
        self._networks: dict[torch.dtype, nn.Module] = {}
        self.winograd = winograd
        self._kernel: CpuKernels | None = None
        self._kernel_tried = False
        self._plans: dict[torch.dtype, CompactPlan | None] = {}
        if precision == "auto" and self.precision == "bf16" and self._winograd_outruns_bf16():
            self.precision = "fp32"
        self._network(PRECISIONS[self.precision])  # build now: a bad device shows up here, not mid-batch

    @property
    def scale(self) -> int:
        return self.info.scale

    @property
    def arch(self) -> str:
        return self.info.arch

    def __repr__(self) -> str:
        tile = "auto" if self.tile is None else self.tile
        return (
            f"Upscaler({self.arch} ×{self.scale}, device={self.device}, precision={self.precision}, "
            f"tile={tile}, tile_pad={self.tile_pad})"
        )

    # -- public API ------------------------------------------------------------------------------

    def upscale(self, image: Any, outscale: float | None = None, progress: Progress | None = None) -> Any:
        """Upscale a PIL image or a NumPy array (H×W, H×W×1–4; uint8 or uint16); returns the same kind.

        ``outscale`` sets the final factor: the network's output is resized (Lanczos) to
        ``round(H · outscale) × round(W · outscale)``.
        """
        if isinstance(image, Image.Image):
            return array_to_pil(self._upscale_pixels(pil_to_array(image), outscale, progress))
        return self._upscale_pixels(np.asarray(image), outscale, progress)

    def upscale_tensor(self, x: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """N×C×H×W float32 in [0, 1] (C = 1 or 3) → N×C×sH×sW float32 on the CPU, clamped to [0, 1]."""
        if x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise ValueError(f"expected an N×C×H×W float tensor with C = 1 or 3, got {tuple(x.shape)} {x.dtype}")
        x = x.detach().to("cpu", torch.float32)
        n, c, height, width = x.shape
        out = torch.empty(n, c, height * self.scale, width * self.scale)
        for i in range(n):
            target = out[i]

            def paste(oy: int, ox: int, tile: torch.Tensor, target: torch.Tensor = target) -> None:
                target[:, oy : oy + tile.shape[2], ox : ox + tile.shape[3]] = tile[0]

            self._process(x[i : i + 1], paste, progress)
        return out

    def upscale_file(
        self,
        source: str | os.PathLike[str],
        target: str | os.PathLike[str],
        outscale: float | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Path:
        """Read ``source``, upscale it, write ``target`` (format by extension) keeping ICC and EXIF.

        ``target`` is never the source file, and an existing ``target`` is an error unless ``overwrite``.
        A source of more than ``max_pixels`` pixels (``None``: no limit of ours) is refused from its
        header, before decoding, and so is a file of several frames (an animation, a multi-page TIFF).
        Every error is a :class:`~superres.errors.SuperresError` that names the file.
        """
        source, target = Path(source), Path(target)
        with about(source):
            check_target(source, target, overwrite)  # before the work, not after
            image = read_image(source, max_pixels)
            pixels = self._upscale_pixels(image.pixels, outscale, progress)
        with about(target):
            return write_image(target, replace(image, pixels=pixels), overwrite=overwrite)

    # -- arrays ----------------------------------------------------------------------------------

    def _upscale_pixels(self, pixels: np.ndarray, outscale: float | None, progress: Progress | None) -> np.ndarray:
        return upscale_pixels(pixels, self.scale, lambda x, sink: self._process(x, sink, progress), outscale)

    # -- tiles -----------------------------------------------------------------------------------

    def choose_tile(self, height: int, width: int) -> int:
        """The tile size for an LR image of ``height × width``: the setting, or the largest that fits memory."""
        if self.tile is not None:
            return self.tile if self.tile > 0 else max(height, width)
        per_pixel = activation_bytes_per_pixel(self.info, self.precision)
        budget = memory_budget(self.device)
        if height * width * per_pixel <= budget:
            return max(height, width)
        side = int(math.sqrt(budget / per_pixel)) - 2 * self._tile_context
        return max(MIN_TILE, side // 16 * 16)

    def choose_region(self, height: int, width: int, tile: int) -> int:
        """The side of the image regions that run as a whole: ``tile``, except for networks that run
        block-wise (RRDBNet), whose regions are as large as their whole-region feature maps allow."""
        dtype = PRECISIONS[self.precision]
        network = self._network(dtype)
        if not supports_blockwise(network) or tile >= max(height, width):
            return tile
        budget = blockwise_budget(self.device)
        if blockwise_map_bytes(network, height, width, dtype) <= budget:
            return max(height, width)
        side = math.isqrt(budget * 256 // blockwise_map_bytes(network, 16, 16, dtype)) - 2 * self.tile_pad
        if side <= tile:
            return tile
        # as many regions as that side needs, made equal: 2048 px in regions of ≤ 1022 → 3 × 683, not
        # 1022 + 1022 + 4 (a 4-px region would cost its whole context)
        longest = max(height, width)
        count = -(-longest // side)
        return max(tile, round_up(-(-longest // count), self.info.size_multiple))

    @property
    def _tile_context(self) -> int:
        """Context around a tile: none when regions run block-wise (its stripes need none), else ``tile_pad``."""
        return 0 if supports_blockwise(self._module) else self.tile_pad

    @torch.inference_mode()
    def _process(self, x: torch.Tensor, sink: Sink, progress: Progress | None) -> None:
        """Upscale ``x`` (1×C×H×W float32, CPU) region by region, handing each finished core to ``sink``."""
        height, width = x.shape[-2:]
        multiple = self.info.size_multiple
        x = pad_to_multiple(x, multiple)
        tile = round_up(self.choose_tile(height, width), multiple)
        region = round_up(self.choose_region(height, width, tile), multiple)
        while True:
            try:
                self._run_regions(x, region, tile, (height, width), sink, progress)
                return
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                smaller = round_up(min(tile, max(x.shape[-2:])) // 2, multiple)
                if smaller < MIN_TILE:
                    raise SuperresError(f"out of memory on {self.device} even with tiles of {tile} px") from None
                warnings.warn(
                    f"out of memory on {self.device} with tiles of {tile} px; retrying with {smaller} px", stacklevel=2
                )
                region = max(smaller, round_up(min(region, max(x.shape[-2:])) // 2, multiple))
                tile = smaller

    def _run_regions(
        self, x: torch.Tensor, region: int, tile: int, size: tuple[int, int], sink: Sink, progress: Progress | None
    ) -> None:
        s = self.scale
        height, width = size
        regions = tile_grid(x.shape[-2], x.shape[-1], region, self.tile_pad)
        # a block-wise network reports each of its blocks: an image in one region still shows progress
        steps = len(self._module.body) if supports_blockwise(self._module) else 1
        reported = 0

        def report(done: int) -> None:  # never backwards: a tile rerun in fp32 repeats its blocks
            nonlocal reported
            if progress is not None and done > reported:
                reported = done
                progress(done, len(regions) * steps)

        for index, r in enumerate(regions):
            def on_block(done: int, total: int, base: int = index * steps) -> None:
                report(base + done * steps // total)

            out = self._upscale_region(x[:, :, r.py0 : r.py1, r.px0 : r.px1], tile, on_block)
            # the core, without the context margin, and without the size-multiple padding
            core = r.core_of(out, s)[:, :, : (min(r.y1, height) - r.y0) * s, : (min(r.x1, width) - r.x0) * s]
            sink(r.y0 * s, r.x0 * s, core)
            report((index + 1) * steps)

    def _upscale_region(self, x: torch.Tensor, tile: int, on_block: Progress) -> torch.Tensor:
        """One region with the image's channels (1 or 3) through a network with its own (1 or 3)."""
        channels, model_channels = x.shape[1], self.info.in_channels
        if channels == model_channels:
            return self._sr(x, tile, on_block)
        if channels == 1:  # gray through an RGB network: replicate, then back to luma
            return luma(self._sr(x.expand(-1, 3, -1, -1), tile, on_block))
        planes = [self._sr(x[:, c : c + 1], tile, on_block) for c in range(channels)]  # RGB, gray network
        return torch.cat(planes, dim=1)

    def _sr(self, x: torch.Tensor, tile: int, on_block: Progress | None = None) -> torch.Tensor:
        dtype = PRECISIONS[self.precision]
        out = self._forward(x, dtype, tile, on_block)
        # (the compact plan's kernels sum and activate in fp32: they overflow only where fp32 does)
        if dtype != torch.float32 and self._compact_plan(dtype) is None and not all_finite(out):
            warnings.warn(
                f"{self.precision} produced NaN/inf in a tile (values beyond its range); that tile was rerun in fp32",
                stacklevel=2,
            )
            out = self._forward(x, torch.float32, tile)
        if not all_finite(out):
            raise WeightsError(
                f"{self.arch} produced NaN/inf even in fp32 (its weights are damaged, or overflow on this "
                f"input); nothing was written"
            )
        return out.clamp_(0.0, 1.0)

    def _forward(
        self, x: torch.Tensor, dtype: torch.dtype, tile: int, on_block: Progress | None = None
    ) -> torch.Tensor:
        plan = self._compact_plan(dtype)
        if plan is not None:  # SRVGGNetCompact by the kernels, in stripes: fp32 input, fp32 weights
            return compact_forward(plan, x.to(torch.float32))
        batch = x.to(self.device, dtype).contiguous(memory_format=torch.channels_last)
        network, kernel = self._network(dtype), self._winograd_kernel(dtype)
        return run_network(network, batch, tile, on_block=on_block, winograd=kernel).to("cpu", torch.float32)

    def _winograd_outruns_bf16(self) -> bool:
        """``auto`` on a CPU with native bf16 but without AMX: RRDBNet in fp32 by the Winograd kernel ran
        faster than in bf16 on this project's Zen 4 (x4plus, 512²: 0.177 against 0.158 out MP/s) and within
        1 level of the direct fp32 conv where bf16 is up to 6 levels off (bench/RESULTS.md, session 4); so
        did SRVGGNetCompact (session 5). Not with AMX, whose bf16 tiles are several times faster; not if
        the kernel cannot be built here (that warns)."""
        return not cpu_has_amx() and self._winograd_kernel(torch.float32) is not None

    def _winograd_kernel(self, dtype: torch.dtype) -> CpuKernels | None:
        """The compiled kernels where they apply on a CPU — RRDBNet's dense blocks and SRVGGNetCompact, in
        fp32 (Winograd) and in bf16 where the CPU has AMX — built on first use; ``None`` (with one
        warning) when they cannot be built here."""
        if not (self.winograd and self.device.type == "cpu" and self._kernels_apply(dtype)):
            return None
        if self._kernel_tried:  # None until a load was tried
            return self._kernel
        self._kernel_tried = True
        try:
            self._kernel = CpuKernels.load()
        except (RuntimeError, OSError, ImportError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(
                f"the CPU kernels (fp32 Winograd, bf16 AMX) could not be built ({reason}); the direct conv "
                f"runs instead, about 2× slower. They need a C++ compiler and ninja; --no-winograd skips trying.",
                stacklevel=3,
            )
        return self._kernel

    def _kernels_apply(self, dtype: torch.dtype) -> bool:
        if dtype == torch.bfloat16 and not cpu_has_amx():
            return False
        if supports_compact(self._module):
            return dtype in (torch.float32, torch.bfloat16)
        if dtype == torch.bfloat16:
            return amx_speeds_up(self._module)
        return dtype == torch.float32 and winograd_speeds_up(self._module)

    def _compact_plan(self, dtype: torch.dtype) -> CompactPlan | None:
        """How the kernels run SRVGGNetCompact in ``dtype`` (prepared once: the weights they read), or
        ``None`` where they do not apply."""
        if dtype not in self._plans:
            kernels = self._winograd_kernel(dtype) if supports_compact(self._module) else None
            self._plans[dtype] = None if kernels is None else plan_compact(self._module, kernels, dtype)
        return self._plans[dtype]

    def _network(self, dtype: torch.dtype) -> nn.Module:
        """The network on the device in ``dtype``; the fp32 module given is the master copy."""
        if dtype not in self._networks:
            source = self._module if dtype == torch.float32 else copy.deepcopy(self._module)
            self._networks[dtype] = source.to(device=self.device, dtype=dtype, memory_format=torch.channels_last)
        return self._networks[dtype]
