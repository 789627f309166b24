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
(:mod:`superres.tiling`): one dense block at a time over whole-region feature maps, in stripes of rows
that compute every row once and are exact. Regions are the whole image when its feature maps fit
``CPU_BLOCKWISE_MEMORY`` (or part of the free VRAM); larger images are cut into regions that overlap by
a measured 80 px (``RRDBNET_TILE_PAD``). ``tile=None`` picks the largest tile whose activations fit a
memory budget (free RAM or VRAM); out of memory halves the tile and retries.

**Colour.** RGB goes straight through. Gray is replicated to three channels and the result turned
back into luma (ITU-R 601-2, as Pillow's mode "L"). Colour with alpha is premultiplied by alpha before
SR and divided by the upscaled alpha after, so colour hidden under transparent pixels cannot bleed into
the visible edge as a dark fringe. 16-bit data goes in as floats in [0, 1] (÷ 65535) and comes back as
uint16.

**Alpha** is upscaled on its own, by the network only at hard edges and by Lanczos elsewhere
(:func:`hard_alpha_edges`). Measured on masks made from Set14/monarch (×4, MAE in levels against the
HR mask): on a hard 0/255 mask the networks give 14–17 and Lanczos 29, but on a soft (blurred) mask
the networks give 27–45 and Lanczos 0.4 — photo SR turns soft shadows into hard edges — and on flat
alpha the networks drift by up to 5 levels. So flat and smooth alpha stays exact, hard edges stay sharp.

**Precision.** ``fp16``/``bf16`` run a low-precision copy of the network; a tile whose output has a
NaN or inf is rerun in fp32 with a warning. In fp32 on CPU, RRDBNet's dense blocks run by Winograd's
F(4×4, 3×3) (:mod:`superres.winograd`, compiled on first use), ~2× faster and within 1 level of the
direct conv; ``winograd=False`` keeps PyTorch's conv.
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
import torch.nn.functional as F
from PIL import Image
from torch import nn

from superres.errors import ConfigError, SuperresError, WeightsError
from superres.imageio import array_to_pil, check_target, pil_to_array, read_image, write_image
from superres.tiling import (
    TailMaps,
    blockwise_map_bytes,
    rrdbnet_body_blockwise,
    rrdbnet_tail_fast,
    supports_blockwise,
    tile_grid,
    winograd_speeds_up,
)
from superres.winograd import WinogradKernel

if TYPE_CHECKING:
    from superres.detect import ModelInfo

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Context in LR pixels around each RRDBNet tile. Its receptive field (~350 convs) covers any tile, so
# the pad was measured: RealESRGAN_x4plus on a 256×256 crop of Set14/lenna, interior tiles of 64,
# max (mean) |tiled − untiled| in 8-bit levels — pad 8: 51 (1.5), 16: 43 (0.97), 24: 26 (0.63),
# 32: 15 (0.34), 48: 3 (0.07), 64: 1 (0.012). Over the whole crop (lenna[128:384, 128:384], border
# tiles included) pad 64 still left max 3 (45 pixels > 1); 80: max 1 (mean 0.0027); 96: max 1 (0.0002).
# GAN-trained RRDBNets need far more context than the 10 px Real-ESRGAN uses. SRVGGNetCompact and
# SRResNet get their exact receptive field instead. (All in fp32. In bf16, 80 px leave max 4 levels on
# 0.2 % of the pixels, anywhere: rounding carries the tiny truncation difference on. Only images whose
# maps exceed the block-wise budget run as regions; block-wise stripes are exact in bf16 too.)
RRDBNET_TILE_PAD = 80

MIN_TILE = 16
# Memory for the upsampling tail of one tile (see run_network): stripes of rows keep within it.
TAIL_MEMORY = 256 << 20
# Activation memory a CPU may use for one tile when the tile size is chosen automatically.
CPU_TILE_MEMORY = 1 << 30
# Memory for the whole-region feature maps of RRDBNet's block-wise execution (superres.tiling) on a
# CPU. Regions whose maps fit are computed exactly, in stripes (superres.tiling); larger images
# are cut into overlapping regions of that size (with RRDBNET_TILE_PAD of context between them).
# 512 MiB: a 836×836 fp32 region (1180×1180 in bf16).
CPU_BLOCKWISE_MEMORY = 512 << 20

# ITU-R 601-2 luma, the weights of Pillow's RGB → "L"
_LUMA = (0.299, 0.587, 0.114)

Progress = Callable[[int, int], None]  # (steps done, steps in all): regions, and RRDBNet's blocks in each
Sink = Callable[[int, int, torch.Tensor], None]  # (output row, output column, 1×C×h×w float32 in [0, 1])


# --------------------------------------------------------------------------------------------------
# Finding and loading models


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The weights file behind ``--model``: a file, or a known model name (``superres models``),
    downloaded into the user cache on first use and checked against its sha256."""
    from superres.registry import resolve

    return resolve(name_or_path)


def load_model(
    path_or_name: str | os.PathLike[str],
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    tile_pad: int | None = None,
    winograd: bool = True,
) -> Upscaler:
    """Read a weights file (ours, ESRGAN, Real-ESRGAN or BasicSR) and wrap it in an :class:`Upscaler`."""
    from superres.weights import load_network

    module, info = load_network(resolve_model_path(path_or_name))
    return Upscaler(
        module, info, device=device, precision=precision, tile=tile, tile_pad=tile_pad, winograd=winograd
    )


# --------------------------------------------------------------------------------------------------
# Device, precision, memory


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → cuda, else mps, else cpu; an explicit device must exist on this machine."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r}: CUDA is not available (this torch {torch.__version__} has no GPU to use)"
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS (Apple GPU) is not available here")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {device!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return resolved


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, whose bf16 matrix units outrun any fp32 conv."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 is actually fast."""
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def resolve_precision(precision: str, device: torch.device, half_precision_ok: bool = True) -> str:
    """``auto`` → fp16 on GPUs (bf16 where the model overflows fp16); on CPUs bf16 where the CPU
    computes it natively, else fp32. (:class:`Upscaler` then prefers fp32 for RRDBNet where its
    Winograd kernel outruns bf16.)

    bf16 on a CPU is ~2.1× the fp32 speed (Zen 4, bench/RESULTS.md) and its cost was measured against
    fp32 output (PSNR, RGB): RealESRGAN_x4plus on Set5 + Set14 ≥ 46.5 dB (baboon; 50 dB over all), the
    default model ≥ 55.5 dB — far below what eyes or the papers' metrics resolve. ``superres evaluate``
    still defaults to fp32.
    """
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; use auto, {', '.join(PRECISIONS)}")
        return precision
    if device.type == "cuda":
        if half_precision_ok:
            return "fp16"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "mps":
        return "fp16" if half_precision_ok else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def default_tile_pad(info: ModelInfo) -> int:
    """Context around each tile (LR pixels) that makes tiled output equal untiled output."""
    hp = info.hparams
    if info.arch == "SRVGGNetCompact":  # num_conv + 2 convs 3×3, all at LR: exact
        return hp["num_conv"] + 2
    if info.arch == "SRResNet":  # 9×9, 2 convs per block, 1 conv, sub-pixel convs at ×1, ×2, …, 9×9 at ×scale
        stages = int(math.log2(info.scale))
        return math.ceil(4 + 2 * hp["num_block"] + 1 + sum(0.5**k for k in range(stages)) + 4 / info.scale)
    return RRDBNET_TILE_PAD


def _activation_channels(info: ModelInfo) -> tuple[float, float]:
    """(channels alive at LR size, at output size) at the network's memory peak, from its structure.

    Checked against measured peak RSS on CPU (fp32): SRVGGNetCompact ×4 ≈ 0.7–1.4 KB per LR pixel
    (estimate 1.3 KB). For RRDBNet this is one block-wise stripe; the whole-region feature maps have
    their own budget (:func:`blockwise_budget`) and the tail its own (``TAIL_MEMORY``).
    """
    hp = info.hparams
    if info.arch == "SRVGGNetCompact":  # conv in and out at LR; shuffle, upsampled input and sum at HR
        return 3 * hp["num_feat"], 3 * info.out_channels
    if info.arch == "SRResNet":  # block input + two convs + skip at LR; the last sub-pixel stage at HR
        return 4 * hp["num_feat"], 2 * hp["num_feat"]
    if info.arch == "RRDBNet":  # a dense block: its input (and a copy), four growth outputs, the largest
        # concatenation and conv5's output; the upsampling tail runs in stripes of TAIL_MEMORY (run_network)
        return 4 * hp["num_feat"] + 8 * hp["num_grow_ch"], 0
    return 3 * hp.get("num_feat", 64) + 8 * hp.get("num_grow_ch", 32), 3 * hp.get("num_feat", 64)  # unknown


def activation_bytes_per_pixel(info: ModelInfo, precision: str) -> float:
    """Estimated peak activation memory per LR input pixel."""
    lr_channels, hr_channels = _activation_channels(info)
    element = PRECISIONS[precision].itemsize
    return element * (lr_channels + hr_channels * info.scale**2)


def _available_ram() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(device: torch.device) -> int:
    """Bytes of activation memory one tile may use: most of the free VRAM, or part of the free RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.7)
    available = _available_ram()
    if available is None:
        return CPU_TILE_MEMORY
    return min(CPU_TILE_MEMORY, available // 4)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# --------------------------------------------------------------------------------------------------
# Tiles


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom and right by reflection so H and W are multiples of ``multiple`` (pixel-unshuffle)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = _round_up(height, multiple) - height, _round_up(width, multiple) - width
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


# --------------------------------------------------------------------------------------------------
# The engine


class Upscaler:
    """A network ready to upscale images: ``Upscaler(module, info).upscale(image)``.

    ``tile``: LR tile size in pixels; ``None`` chooses from the image size and free memory, ``0``
    runs the whole image at once. ``tile_pad``: context around each tile (``None``: enough for
    tiled output to equal untiled output, see :func:`default_tile_pad`). ``winograd``: run RRDBNet's
    dense blocks by Winograd's F(4×4, 3×3) in fp32 on CPU (:mod:`superres.winograd`; 2.2× faster,
    compiled on first use; ``False``: the direct conv, as PyTorch computes it).
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
        self.tile_pad = _round_up(default_tile_pad(info) if tile_pad is None else tile_pad, info.size_multiple)
        self._module = module.eval()
        self._networks: dict[torch.dtype, nn.Module] = {}
        self.winograd = winograd
        self._kernel: WinogradKernel | None = None
        self._kernel_tried = False
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
    ) -> Path:
        """Read ``source``, upscale it, write ``target`` (format by extension) keeping ICC and EXIF.

        ``target`` is never the source file, and an existing ``target`` is an error unless ``overwrite``.
        """
        source, target = Path(source), Path(target)
        check_target(source, target, overwrite)  # before the work, not after
        image = read_image(source)
        pixels = self._upscale_pixels(image.pixels, outscale, progress)
        return write_image(target, replace(image, pixels=pixels), overwrite=overwrite)

    # -- arrays ----------------------------------------------------------------------------------

    def _upscale_pixels(self, pixels: np.ndarray, outscale: float | None, progress: Progress | None) -> np.ndarray:
        if pixels.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
        if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected an H×W or H×W×C (C = 1…4) image, got shape {pixels.shape}")
        if outscale is not None and outscale <= 0:
            raise ConfigError(f"outscale must be > 0, not {outscale}")
        maxval = float(np.iinfo(pixels.dtype).max)
        height, width = pixels.shape[:2]
        planes = pixels if pixels.ndim == 3 else pixels[:, :, None]
        out = np.empty((height * self.scale, width * self.scale, planes.shape[2]), pixels.dtype)
        has_alpha = planes.shape[2] in (2, 4)
        colour = _to_tensor(planes[:, :, : 3 if planes.shape[2] >= 3 else 1], maxval)

        if not has_alpha:
            self._process(colour, _quantize_into(out, maxval), progress)
        elif (planes[:, :, -1] == maxval).all():  # fully opaque: alpha carries nothing to upscale
            out[:, :, -1] = int(maxval)
            self._process(colour, _quantize_into(out[:, :, :-1], maxval), progress)
        else:
            alpha = planes[:, :, -1]
            alpha_tensor = _to_tensor(alpha[:, :, None], maxval)
            out[:, :, -1] = _lanczos(alpha, out.shape[:2])
            hard = hard_alpha_edges(alpha)
            if hard.any():
                self._process(alpha_tensor, _alpha_edges_into(out, hard, self.scale, maxval), progress)
            self._process(colour * alpha_tensor, _unpremultiply_into(out, maxval), progress)

        if outscale is not None and outscale != self.scale:
            out = resize(out, (round(height * outscale), round(width * outscale)))
        return out if pixels.ndim == 3 else out[:, :, 0]

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
        return max(tile, _round_up(-(-longest // count), self.info.size_multiple))

    @property
    def _tile_context(self) -> int:
        """Context around a tile: none when regions run block-wise (its stripes need none), else ``tile_pad``."""
        return 0 if supports_blockwise(self._module) else self.tile_pad

    @torch.inference_mode()
    def _process(self, x: torch.Tensor, sink: Sink, progress: Progress | None) -> None:
        """Upscale ``x`` (1×C×H×W float32, CPU) region by region, handing each finished core to ``sink``."""
        height, width = x.shape[-2:]
        multiple = self.info.size_multiple
        x = _pad_to_multiple(x, multiple)
        tile = _round_up(self.choose_tile(height, width), multiple)
        region = _round_up(self.choose_region(height, width, tile), multiple)
        while True:
            try:
                self._run_regions(x, region, tile, (height, width), sink, progress)
                return
            except RuntimeError as exc:
                if not _is_out_of_memory(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                smaller = _round_up(min(tile, max(x.shape[-2:])) // 2, multiple)
                if smaller < MIN_TILE:
                    raise SuperresError(f"out of memory on {self.device} even with tiles of {tile} px") from None
                warnings.warn(
                    f"out of memory on {self.device} with tiles of {tile} px; retrying with {smaller} px", stacklevel=2
                )
                region = max(smaller, _round_up(min(region, max(x.shape[-2:])) // 2, multiple))
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
            return _luma(self._sr(x.expand(-1, 3, -1, -1), tile, on_block))
        planes = [self._sr(x[:, c : c + 1], tile, on_block) for c in range(channels)]  # RGB, gray network
        return torch.cat(planes, dim=1)

    def _sr(self, x: torch.Tensor, tile: int, on_block: Progress | None = None) -> torch.Tensor:
        dtype = PRECISIONS[self.precision]
        out = self._forward(x, dtype, tile, on_block)
        if dtype != torch.float32 and not torch.isfinite(out).all():
            warnings.warn(
                f"{self.precision} produced NaN/inf in a tile (values beyond its range); that tile was rerun in fp32",
                stacklevel=2,
            )
            out = self._forward(x, torch.float32, tile)
        return out.clamp_(0.0, 1.0)

    def _forward(
        self, x: torch.Tensor, dtype: torch.dtype, tile: int, on_block: Progress | None = None
    ) -> torch.Tensor:
        batch = x.to(self.device, dtype).contiguous(memory_format=torch.channels_last)
        network, kernel = self._network(dtype), self._winograd_kernel(dtype)
        return run_network(network, batch, tile, on_block=on_block, winograd=kernel).to("cpu", torch.float32)

    def _winograd_outruns_bf16(self) -> bool:
        """``auto`` on a CPU: RRDBNet in fp32 by the Winograd kernel ran faster than in bf16 on this
        project's Zen 4 (x4plus, 512²: 0.177 against 0.158 out MP/s) and within 1 level of the direct
        fp32 conv where bf16 is up to 6 levels off (bench/RESULTS.md, session 4). Not with AMX, whose
        bf16 tiles are several times faster; not if the kernel cannot be built here (that warns)."""
        return not cpu_has_amx() and self._winograd_kernel(torch.float32) is not None

    def _winograd_kernel(self, dtype: torch.dtype) -> WinogradKernel | None:
        """The Winograd kernel where it applies (RRDBNet, fp32, CPU), built on first use; ``None``
        (with one warning) when it cannot be built here."""
        if not (self.winograd and dtype == torch.float32 and self.device.type == "cpu"):
            return None
        if self._kernel_tried or not winograd_speeds_up(self._module):  # None until a load was tried
            return self._kernel
        self._kernel_tried = True
        try:
            self._kernel = WinogradKernel.load()
        except (RuntimeError, OSError, ImportError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(
                f"the fp32 Winograd kernel could not be built ({reason}); fp32 runs the direct conv, about 2× "
                f"slower. It needs a C++ compiler and ninja; --no-winograd skips trying.",
                stacklevel=3,
            )
        return self._kernel

    def _network(self, dtype: torch.dtype) -> nn.Module:
        """The network on the device in ``dtype``; the fp32 module given is the master copy."""
        if dtype not in self._networks:
            source = self._module if dtype == torch.float32 else copy.deepcopy(self._module)
            self._networks[dtype] = source.to(device=self.device, dtype=dtype, memory_format=torch.channels_last)
        return self._networks[dtype]


def blockwise_budget(device: torch.device) -> int:
    """Bytes the whole-region feature maps of block-wise execution may take (see superres.tiling)."""
    if device.type == "cpu":
        available = _available_ram()
        return CPU_BLOCKWISE_MEMORY if available is None else min(CPU_BLOCKWISE_MEMORY, available // 8)
    return memory_budget(device) // 2


def run_network(
    network: nn.Module,
    x: torch.Tensor,
    tile: int | None = None,
    tail_budget: int = TAIL_MEMORY,
    on_block: Progress | None = None,
    winograd: WinogradKernel | None = None,
) -> torch.Tensor:
    """``network(x)``. RRDBNet runs its fast equivalents (superres.tiling): with a ``tile`` or a
    ``winograd`` kernel, the body block-wise in stripes of about ``tile²`` pixels (exact;
    ``on_block(done, total)`` after each RRDB), and always the fast upsampling tail, in stripes.

    RRDBNet's ×4 tail holds several 64-channel maps at 16× the LR pixel count — most of a tile's
    memory (a 384² padded tile: ~1.9 GB). Its receptive field is under ``TAIL_CONTEXT`` LR pixels
    and nearest-neighbour upsampling is exact on the LR grid, so stripes of LR feature rows with
    that much context give the same output, in bounded memory.
    """
    if not supports_blockwise(network):
        return network(x)
    if tile is None and winograd is None:
        feat = network.forward_body(x)
    else:
        whole = max(x.shape[-2:])
        feat = rrdbnet_body_blockwise(network, x, whole if tile is None else tile, on_block, winograd)
    height, width = feat.shape[-2:]
    factor = network.scale * network.unshuffle  # output pixels per feature pixel, per side
    # the fast tail keeps ~2.3 maps of 64 channels at factor² the pixels (its last upsampled map, conv_hr's
    # output, the quarter-size first upsampled one); 4 leave room for its windows' temporaries
    bytes_per_row = 4 * feat.shape[1] * width * factor**2 * feat.element_size()
    rows = max(1, tail_budget // bytes_per_row)
    if rows >= height:
        return rrdbnet_tail_fast(network, feat, winograd=winograd)
    context = network.TAIL_CONTEXT
    # written stripe by stripe: no list of stripes and no concatenated copy
    out = feat.new_empty((feat.shape[0], network.conv_last.out_channels, height * factor, width * factor))
    maps = TailMaps()
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        a, b = max(0, r0 - context), min(height, r1 + context)
        stripe = rrdbnet_tail_fast(network, feat[:, :, a:b], maps, winograd)
        out[:, :, r0 * factor : r1 * factor] = stripe[:, :, (r0 - a) * factor : (r1 - a) * factor]
    return out


# --------------------------------------------------------------------------------------------------
# Between arrays and tensors


def _to_tensor(planes: np.ndarray, maxval: float) -> torch.Tensor:
    """H×W×C integer array → 1×C×H×W float32 in [0, 1] (its memory is already channels-last)."""
    return torch.from_numpy(planes.astype(np.float32) / np.float32(maxval)).permute(2, 0, 1).unsqueeze(0)


def _quantize_into(target: np.ndarray, maxval: float) -> Sink:
    """A sink that rounds each upscaled tile to the integer type of ``target`` (H×W×C) and stores it."""

    def store(oy: int, ox: int, tile: torch.Tensor) -> None:
        rows, cols = tile.shape[2:]
        values = (tile[0].permute(1, 2, 0) * maxval).round_()
        target[oy : oy + rows, ox : ox + cols] = values.numpy().astype(target.dtype)

    return store


def hard_alpha_edges(alpha: np.ndarray) -> np.ndarray:
    """LR pixels near a hard alpha edge: their 3×3 neighbourhood holds both ≤ 2 % and ≥ 98 % alpha.

    Grown by one pixel so the whole (anti-aliased) transition goes through the network. Everything
    else — flat, smooth or soft alpha — is better served by Lanczos (see the module doc).
    """
    maxval = np.iinfo(alpha.dtype).max
    low, high = _grow(alpha <= 0.02 * maxval), _grow(alpha >= 0.98 * maxval)
    return _grow(low & high)


def _grow(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by a 3×3 square."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    grown = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            grown |= padded[dy : dy + height, dx : dx + width]
    return grown


def _alpha_edges_into(out: np.ndarray, hard: np.ndarray, scale: int, maxval: float) -> Sink:
    """A sink for the network's alpha: replaces the Lanczos alpha in ``out[..., -1]`` at hard edges."""
    store = _quantize_into(out[:, :, -1:], maxval)
    lanczos = out[:, :, -1:]

    def store_edges(oy: int, ox: int, tile: torch.Tensor) -> None:
        rows, cols = tile.shape[2:]
        region = hard[oy // scale : (oy + rows) // scale, ox // scale : (ox + cols) // scale]
        keep = ~region.repeat(scale, 0).repeat(scale, 1)[:, :, None]
        before = lanczos[oy : oy + rows, ox : ox + cols].copy()
        store(oy, ox, tile)
        np.copyto(lanczos[oy : oy + rows, ox : ox + cols], before, where=keep)

    return store_edges


def _lanczos(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of one uint8 or uint16 plane to ``size`` = (height, width), same dtype."""
    return np.asarray(Image.fromarray(plane).resize(size[::-1], Image.Resampling.LANCZOS))


def _unpremultiply_into(out: np.ndarray, maxval: float) -> Sink:
    """A sink for premultiplied colour: divides by the upscaled alpha already in ``out[..., -1]``.

    Dividing by the stored (rounded) alpha makes colour × alpha of the written pixels match the
    network's premultiplied output. Where alpha is 0 the colour is invisible and set to 0.
    """
    colour = out[:, :, :-1]

    def store(oy: int, ox: int, tile: torch.Tensor) -> None:
        rows, cols = tile.shape[2:]
        alpha = torch.from_numpy(out[oy : oy + rows, ox : ox + cols, -1:].astype(np.float32) / np.float32(maxval))
        premultiplied = tile[0].permute(1, 2, 0)
        straight = torch.where(alpha > 0, premultiplied / alpha.clamp_min(1e-12), 0.0).clamp_(0.0, 1.0)
        colour[oy : oy + rows, ox : ox + cols] = (straight * maxval).round_().numpy().astype(out.dtype)

    return store


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos-resize an H×W×C uint8/uint16 image to ``size`` = (height, width), one float plane at a time.

    With alpha, colour is resized premultiplied and divided back, so transparent pixels' colour
    cannot bleed into visible ones.
    """
    height, width = size
    if height < 1 or width < 1:
        raise ConfigError(f"outscale gives an empty image ({height}×{width})")
    maxval = float(np.iinfo(pixels.dtype).max)
    channels = pixels.shape[2]
    has_alpha = channels in (2, 4)
    out = np.empty((height, width, channels), pixels.dtype)

    def plane(values: np.ndarray) -> np.ndarray:
        image = Image.fromarray(values.astype(np.float32))  # mode "F"
        return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))

    alpha = None
    if has_alpha:
        alpha_lr = pixels[:, :, -1].astype(np.float32) / np.float32(maxval)
        alpha = np.clip(plane(alpha_lr), 0.0, 1.0)
        out[:, :, -1] = np.round(alpha * maxval)
    for c in range(channels - has_alpha):
        if alpha is None:
            values = plane(pixels[:, :, c])
        else:
            values = plane(pixels[:, :, c] * alpha_lr)
            values = np.divide(values, alpha, out=np.zeros_like(values), where=alpha > 0)
        out[:, :, c] = np.round(np.clip(values, 0.0, maxval))
    return out
