"""SRVGGNetCompact (the default model) fast on a CPU: all its layers at once, in lagged stripes of rows.

The network is 18 3×3 convs at LR resolution, each but the last followed by PReLU, then a pixel
shuffle and the upsampled input added back. Run layer after layer over the whole image, every conv
reads and writes a 64-channel map of the whole image (67 MB in fp32 at 512×512), PyTorch adds a
pass for each PReLU (it cannot fuse a per-channel slope into oneDNN's conv), and three more for the
tail. Here (``csrc/compact.cpp``) every conv runs by a compiled kernel with its PReLU in the kernel's
epilogue — AMX tiles in bf16 where the CPU has them (:mod:`superres.engine.amx`), Winograd's
F(4×4, 3×3) in fp32 (:mod:`superres.engine.winograd`) — and the layers run in *lagged stripes*, as
RRDBNet's dense blocks do (:mod:`superres.engine.blockwise`): layer ``j`` computes the rows that layer
``j - 1`` has made readable, a few at a time, so each row of each layer is computed once and a layer
keeps only a ring of a few rows (a few hundred KB, in cache) instead of a whole map. The first conv
(3 input channels, too few for the kernels) is direct, in fp32; the last writes the output pixels
through the pixel shuffle, with the upsampled input added.

**Threads.** The rows are cut into one band per thread and each thread runs its own band through all
layers, reading ``num_conv + 2`` rows of context beyond its band's edges: no thread waits for another
until the image is done. Splitting each layer's rows over the threads instead costs a barrier per
layer and stripe (~1100 per 512² image), which is fine on idle cores but was 10× slower on this
project's shared 2-core machine (bench/RESULTS.md, session 5). An image with too few rows for a band
per thread (fewer than ``BAND_ROWS`` each) runs as one band, its layers split over the threads.

The output equals the module's up to float rounding (tests: within 1e-5 in fp32; bf16 ≥ 60 dB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from superres.archs.srvgg import SRVGGNetCompact
from superres.engine import amx, winograd
from superres.engine.kernels import CpuKernels

# Rows of layer output each step computes (per band): measured at 512 px wide, 2 threads.
STRIPE_ROWS = 8
# Fewest rows of a band: a band re-reads 2 · (num_conv + 1) rows of context, ~17 per layer on average.
BAND_ROWS = 64


def supports_compact(network: nn.Module) -> bool:
    return isinstance(network, SRVGGNetCompact)


@dataclass(frozen=True)
class CompactPlan:
    """A network ready for ``compact_forward`` in ``csrc/compact.cpp``: the first conv's weights
    (``[9 · C, F]``, fp32), bias and PReLU slopes; then each later conv's weights, prepared for its kernel,
    its bias and slopes (empty for the last), padded to the kernel's output channels."""

    module: Any
    first: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    slopes: list[torch.Tensor]
    uses_amx: bool
    scale: int

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in (*self.first, *self.weights, *self.biases, *self.slopes))


def _slopes(activation: nn.Module, channels: int) -> torch.Tensor:
    """The activation after a conv as a slope per channel: PReLU's own, LeakyReLU's, ReLU's 0."""
    if isinstance(activation, nn.PReLU):
        slopes = activation.weight.detach().float().flatten().expand(channels)  # also PReLU(num_parameters=1)
    elif isinstance(activation, nn.LeakyReLU):
        slopes = torch.full((channels,), float(activation.negative_slope))
    elif isinstance(activation, nn.ReLU):
        slopes = torch.zeros(channels)
    else:
        raise TypeError(f"unexpected activation {activation!r}")
    return slopes.contiguous()


def _padded(values: torch.Tensor, channels: int) -> torch.Tensor:
    padded = torch.zeros(channels)
    padded[: values.numel()] = values
    return padded


def plan_compact(network: SRVGGNetCompact, kernels: CpuKernels, dtype: torch.dtype) -> CompactPlan | None:
    """``network`` (fp32, CPU) ready to run in ``dtype``: bf16 by AMX, fp32 by Winograd; ``None`` where
    a conv does not fit that kernel (or there is no AMX, for bf16)."""
    body = list(network.body)
    convs = [i for i, m in enumerate(body) if isinstance(m, nn.Conv2d)]
    first = body[convs[0]]
    features = first.out_channels
    if first.kernel_size != (3, 3) or first.bias is None or features % winograd.OUTPUT_CHANNEL_MULTIPLE != 0:
        return None
    first_weight = first.weight.detach().float().permute(2, 3, 1, 0).reshape(-1, features).contiguous()
    weights, biases, slopes = [], [], []
    for position, index in enumerate(convs[1:], start=1):
        conv, last = body[index], position == len(convs) - 1
        if conv.in_channels != features or (not last and conv.out_channels != features) or conv.bias is None:
            return None
        if dtype == torch.bfloat16:
            fast: amx.AmxConv | winograd.WinogradConv | None = kernels.prepare_amx(conv, [features])
            channels = amx.padded_channels(conv.out_channels)
        else:
            fast = kernels.prepare(conv, [features])
            channels = conv.out_channels
        if fast is None:
            return None
        weights.append(fast.weight)
        biases.append(_padded(conv.bias.detach().float(), channels))
        slopes.append(torch.empty(0) if last else _padded(_slopes(body[index + 1], conv.out_channels), channels))
    first_slopes = _slopes(body[convs[0] + 1], features)
    return CompactPlan(
        kernels.module,
        (first_weight, first.bias.detach().float().contiguous(), first_slopes),
        weights,
        biases,
        slopes,
        dtype == torch.bfloat16,
        network.upscale,
    )


def bands_for(height: int, threads: int) -> int:
    """Bands of rows for an image ``height`` rows high: one per thread, each at least ``BAND_ROWS``."""
    return max(1, min(threads, height // BAND_ROWS))


def compact_forward(
    plan: CompactPlan, x: torch.Tensor, bands: int | None = None, rows: int = STRIPE_ROWS
) -> torch.Tensor:
    """``network(x)`` for an fp32 N×C×H×W ``x`` on the CPU, by ``plan``, in ``bands`` bands of rows (by
    default :func:`bands_for` torch's threads) and steps of ``rows`` rows. Returns fp32, channels-last."""
    n, channels, height, width = x.shape
    s = plan.scale
    bands = bands_for(height, torch.get_num_threads()) if bands is None else bands
    out = torch.empty(n, channels, height * s, width * s).contiguous(memory_format=torch.channels_last)
    for i in range(n):
        image = x[i].float().permute(1, 2, 0).contiguous()  # H×W×C: no copy for a channels-last x
        plan.module.compact_forward(
            image, *plan.first, plan.weights, plan.biases, plan.slopes, plan.uses_amx, out[i].permute(1, 2, 0),
            s, rows, bands,
        )
    return out
