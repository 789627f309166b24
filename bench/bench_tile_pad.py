"""How much context (tile padding) a tile needs before tiled output equals untiled output.

A tile sees only ``pad`` pixels beyond its edges, so near tile borders it computes a different
result than the whole image would; RRDBNet's receptive field is far wider than Real-ESRGAN's
default pad of 10. Padding costs compute, though: an interior tile of side T does
((T + 2·pad) / T)² of the untiled work. This prints both, per pad, for Real-ESRGAN's tiling loop:

    python bench/bench_tile_pad.py --size 128 --tile 64 --pads 0 10 16 24 32 48
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from bench_inference import DEFAULT_SOURCE, DEFAULT_WEIGHTS, make_input, tiled_forward
from PIL import Image


def to_uint8(y: torch.Tensor) -> np.ndarray:
    return (y[0].clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--pads", type=int, nargs="+", default=[0, 10, 16, 24, 32, 48])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--bf16", action="store_true", help="CPU autocast bf16 (compared with bf16 untiled)")
    args = parser.parse_args()

    from tempfile import TemporaryDirectory

    from superres.models.weights import load_network

    network, info = load_network(args.weights)
    network = network.to(memory_format=torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            return network(x.contiguous(memory_format=torch.channels_last)).float()

    with TemporaryDirectory() as tmp:
        image = np.asarray(Image.open(make_input(args.source, args.size, Path(tmp))))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        whole = to_uint8(forward(x)).astype(np.int16)
        print(
            f"{args.weights.name}, input {args.size}×{args.size}, tile {args.tile}, "
            f"{'bf16 autocast' if args.bf16 else 'fp32'}; Δ against the untiled output, in 8-bit levels"
        )
        print()
        print("| pad | max |Δ| | mean |Δ| | pixels with |Δ| > 1 | interior-tile work × |")
        print("|---:|---:|---:|---:|---:|")
        for pad in args.pads:
            tiled = to_uint8(tiled_forward(forward, x, info.scale, args.tile, pad)).astype(np.int16)
            delta = np.abs(tiled - whole)
            overhead = ((args.tile + 2 * pad) / args.tile) ** 2
            print(
                f"| {pad} | {delta.max()} | {delta.mean():.3f} | {100 * (delta.max(axis=2) > 1).mean():.2f}% "
                f"| {overhead:.2f} |"
            )


if __name__ == "__main__":
    main()
