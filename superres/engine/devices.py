"""Where and in what precision a network runs: the device, fp32/fp16/bf16, and out-of-memory."""

from __future__ import annotations

import torch

from superres.errors import ConfigError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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
    fp32 output (PSNR, RGB): RealESRGAN_x4plus on Set5 + Set14 ≥ 46.1 dB (baboon, AMX; 46.5 on Zen 4), the
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


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
