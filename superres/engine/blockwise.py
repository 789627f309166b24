"""RRDBNet run exactly, one dense block at a time over whole-region feature maps.

Tiling an image bounds memory, but a tile only sees its own pixels plus the context around it. A
network whose receptive field is larger than that context gives slightly different pixels near
tile edges than it would on the whole image. Two ways to make pieces agree with the whole image:

* **Context as wide as the receptive field.** Cheap for shallow networks (SRVGGNetCompact: one
  pixel per conv), ruinous for RRDBNet ×4: its ~350 stacked 3×3 convs see 350 px around each
  pixel; the 80 px that were measured to be enough (``budget.RRDBNET_TILE_PAD``) still make a
  256-px tile cost (256 + 160)² / 256² = 2.6× the work of its core.
* **One block at a time, over the whole image** (:func:`rrdbnet_body_blockwise`). Keep three
  feature maps of the whole image (64 channels each) and run each Residual Dense Block over them
  in stripes of rows. Within a block, each of the five convs runs one row behind the conv before
  it — exactly the row below that the next conv reads — so every row of every conv is computed
  once, with no context recomputed at all (tiles with 5 px of context, the earlier scheme, cost
  (192 + 10)² / 192² = 1.11× the work). A stripe of ~24k pixels keeps a block's working set in
  cache, which makes it faster than the whole image at once. The cost is the memory of the three
  maps, which grows with the image: the engine uses this for regions of the image whose maps fit
  its budget, and overlapping regions (with the wide context above) beyond that.

In fp32 on CPU the stripes' convs can run by Winograd's F(4×4, 3×3) (:mod:`superres.engine.winograd`),
which reads the block input and growth outputs where they lie instead of concatenating them. In bf16
on CPUs with AMX, a whole dense block runs in C++ (``csrc/dense.cpp``): its convs on AMX tiles
(:mod:`superres.engine.amx`) with LeakyReLU and the residual sums fused, in the same lagged stripes,
one band of rows per thread, so that threads meet once per block rather than once per conv and stripe.

RRDBNet's upsampling tail has a fast equivalent too (:mod:`superres.engine.tail`): the same
output from fewer multiply-adds, in cache-sized windows of rows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from superres.archs.rrdbnet import RESIDUAL_SCALE, ResidualDenseBlock, RRDBNet
from superres.engine.amx import fits as amx_fits
from superres.engine.budget import TAIL_MEMORY
from superres.engine.kernels import CpuKernels
from superres.engine.stripes import (
    STRIPE_PIXELS,
    ConvRows,
    conv_in_rows,
    conv_rows,
    empty_rows,
    rows_with_context,
    stripe_rows,
    stripes,
)
from superres.engine.tail import TailMaps, rrdbnet_tail_fast
from superres.engine.winograd import fits as winograd_fits

# Feature maps of the whole region that block-wise execution keeps: an RRDB's input, and the
# outputs of its first and second dense block (the third writes the RRDB's output in place).
BLOCKWISE_MAPS = 3

# A dense block by AMX (csrc/dense.cpp): rows each step of a conv computes, fewest rows of a band
AMX_STRIPE_ROWS = 8
AMX_BAND_ROWS = 32


def supports_blockwise(network: nn.Module) -> bool:
    return isinstance(network, RRDBNet)


def blockwise_map_bytes(network: RRDBNet, height: int, width: int, dtype: torch.dtype) -> int:
    """Memory of the whole-region feature maps :func:`rrdbnet_body_blockwise` keeps for ``height × width`` input."""
    unshuffle = network.unshuffle
    pixels = -(-height // unshuffle) * -(-width // unshuffle)
    return BLOCKWISE_MAPS * network.conv_first.out_channels * pixels * dtype.itemsize


def dense_block_in_stripes(
    block: ResidualDenseBlock,
    x: torch.Tensor,
    target: torch.Tensor,
    rows: int,
    residual: bool = False,
    winograd: CpuKernels | None = None,
) -> None:
    """``target = block(x)`` computed in stripes of ``rows`` rows; with ``residual``,
    ``target += β · block(x)`` (the RRDB's scaled skip, in place). ``target`` is not ``x``.
    With ``winograd`` (the compiled kernels: fp32 on CPU), the convs run by Winograd's F(4×4, 3×3) where
    their channels fit it; in bf16 on a CPU with AMX, the whole block runs by :func:`dense_block_amx`.

    Conv j of the stripe ``[r0, r1)`` computes rows ``[r0 + 5 - j, r1 + 5 - j)`` (from 0 on the
    first stripe, to the bottom on the last): one row behind conv j - 1, whose output it reads one
    row above and below. So each row of each conv is computed exactly once. Growth output j
    (x1 … x4) is kept for the stripe after, for the 6 - j rows above its new ones that the later
    convs there still read.
    """
    if winograd is not None and x.dtype == torch.bfloat16 and dense_block_amx(block, x, target, residual, winograd):
        return
    height, convs = x.shape[-2], (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5)
    slope = block.lrelu.negative_slope
    groups = _dense_block_input_groups(block)
    fast = [winograd.prepare(conv, groups[:j]) if winograd else None for j, conv in enumerate(convs, start=1)]
    if not all(fast):  # all five by the kernel or none: the block as winograd_speeds_up judges it
        fast = [None] * len(convs)
    growth: dict[int, tuple[int, torch.Tensor]] = {}  # j → (first row, rows) of growth output j
    for r0, r1 in stripes(height, rows):
        for j, (conv, prepared) in enumerate(zip(convs, fast), start=1):
            lag = len(convs) - j
            lo = 0 if r0 == 0 else min(r0 + lag, height)
            hi = height if r1 == height else min(r1 + lag, height)
            if lo >= hi:  # done by the stripe before
                continue
            window = rows_with_context(lo, hi, height)
            earlier = (growth[k] for k in range(1, j))
            parts = [x[:, :, window]] + [g[:, :, window.start - at : window.stop - at] for at, g in earlier]
            rows_of = ConvRows(conv, parts, window.start, lo, hi, height, prepared)
            if j < len(convs):
                keep = min(len(convs) + 1 - j, lo - growth[j][0]) if j in growth else 0
                kept = empty_rows(x, conv.out_channels, keep + hi - lo)
                if keep:
                    previous = growth[j][1]
                    kept[:, :, :keep] = previous[:, :, previous.shape[2] - keep :]
                rows_of.activated_into(kept[:, :, keep:], slope)
                growth[j] = (lo - keep, kept)
            else:  # the same operations as ResidualDenseBlock and RRDB, so that bf16 rounds the same way
                result = rows_of.compute().mul_(RESIDUAL_SCALE).add_(x[:, :, lo:hi])
                if residual:
                    target[:, :, lo:hi].add_(result.mul_(RESIDUAL_SCALE))
                else:
                    target[:, :, lo:hi] = result


def dense_block_amx(
    block: ResidualDenseBlock,
    x: torch.Tensor,
    target: torch.Tensor,
    residual: bool,
    kernels: CpuKernels,
    bands: int | None = None,
) -> bool:
    """``target = block(x)`` (``+=`` β · it with ``residual``) by ``csrc/dense.cpp`` on AMX tiles, bf16
    maps, in ``bands`` bands of rows (default: one per thread, of at least ``AMX_BAND_ROWS``): ``False``
    (nothing done) where the CPU has no AMX or the block's channels do not fit."""
    convs = (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5)
    groups = _dense_block_input_groups(block)
    prepared = [kernels.prepare_amx(conv, groups[:j]) for j, conv in enumerate(convs, start=1)]
    if not all(p is not None and p.padded_out_channels == p.out_channels for p in prepared):
        return False
    if bands is None:
        bands = max(1, min(torch.get_num_threads(), x.shape[-2] // AMX_BAND_ROWS))
    for n in range(x.shape[0]):
        kernels.module.dense_block_amx(
            x[n].permute(1, 2, 0),
            target[n].permute(1, 2, 0),
            [p.weight for p in prepared],
            [p.bias for p in prepared],
            block.lrelu.negative_slope,
            RESIDUAL_SCALE,
            residual,
            AMX_STRIPE_ROWS,
            bands,
        )
    return True


def amx_speeds_up(network: nn.Module) -> bool:
    """Whether ``network``'s dense blocks would run by :func:`dense_block_amx` on a CPU with AMX."""
    if not isinstance(network, RRDBNet) or len(network.body) == 0:
        return False
    block = network.body[0].rdb1
    convs, groups = (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5), _dense_block_input_groups(block)
    return all(amx_fits(conv, groups[:j]) for j, conv in enumerate(convs, start=1)) and all(
        conv.out_channels % 32 == 0 for conv in convs
    )


def _dense_block_input_groups(block: ResidualDenseBlock) -> list[int]:
    """Channels of the block input and of each growth output: conv j reads the first j groups."""
    return [block.conv1.in_channels] + [block.conv1.out_channels] * 4


def winograd_speeds_up(network: nn.Module) -> bool:
    """Whether ``network``'s body would run by Winograd (an RRDBNet whose dense blocks fit the kernel)."""
    if not isinstance(network, RRDBNet) or len(network.body) == 0:
        return False
    block = network.body[0].rdb1
    convs, groups = (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5), _dense_block_input_groups(block)
    return all(winograd_fits(conv, groups[:j]) for j, conv in enumerate(convs, start=1))


def rrdbnet_body_blockwise(
    network: RRDBNet,
    x: torch.Tensor,
    tile: int,
    on_block: Callable[[int, int], None] | None = None,
    winograd: CpuKernels | None = None,
) -> torch.Tensor:
    """``network.forward_body(x)``, computed one dense block at a time in stripes of about ``tile²``
    pixels (on CPU at most ``STRIPE_PIXELS``, which run faster than larger ones); ``on_block(done, total)``
    is called after each RRDB. With ``winograd``, the dense blocks' convs run by F(4×4, 3×3) (fp32, CPU).

    Equal to the whole-image computation up to float rounding (the convs see other shapes), in
    the memory of three feature maps of ``x``'s size plus one stripe's working set.
    """
    # ×1 and ×2 models fold the input first (pixel-unshuffle): stripes are in folded pixels
    fold = network.unshuffle
    pixels = max(1, tile // fold) ** 2
    if x.device.type == "cpu":
        pixels = min(pixels, STRIPE_PIXELS)
    one_stripe = (x.shape[-2] // fold) * (x.shape[-1] // fold) <= pixels
    if one_stripe and winograd is None:  # the plain forward pass
        return network.forward_body(x)
    if fold > 1:
        x = F.pixel_unshuffle(x, fold)
    height, width = x.shape[-2:]
    rows = stripe_rows(width, pixels)
    shape = (x.shape[0], network.conv_first.out_channels, height, width)
    block_in, first, second = (
        torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        for _ in range(BLOCKWISE_MAPS)
    )

    conv_in_rows(network.conv_first, x, block_in, rows, None)
    for done, rrdb in enumerate(network.body, start=1):
        dense_block_in_stripes(rrdb.rdb1, block_in, first, rows, winograd=winograd)
        dense_block_in_stripes(rrdb.rdb2, first, second, rows, winograd=winograd)
        # RRDB output = rdb3(…) · β + RRDB input, written over the input: nothing else reads it now
        dense_block_in_stripes(rrdb.rdb3, second, block_in, rows, residual=True, winograd=winograd)
        if on_block is not None:
            on_block(done, len(network.body))

    # forward_body: conv_first(x) + conv_body(body(conv_first(x))); conv_first is recomputed per
    # stripe (3 → 64 channels, cheap) rather than kept as a fourth map
    for r0, r1 in stripes(height, rows):
        window = rows_with_context(r0, r1, height)
        feat = conv_rows(network.conv_first, x[:, :, window], window.start, r0, r1, height)
        body = conv_rows(network.conv_body, block_in[:, :, window], window.start, r0, r1, height)
        torch.add(feat, body, out=first[:, :, r0:r1])
    return first


def run_network(
    network: nn.Module,
    x: torch.Tensor,
    tile: int | None = None,
    tail_budget: int = TAIL_MEMORY,
    on_block: Callable[[int, int], None] | None = None,
    winograd: CpuKernels | None = None,
) -> torch.Tensor:
    """``network(x)``. RRDBNet runs its fast equivalents (superres.engine.blockwise): with a ``tile`` or a
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
