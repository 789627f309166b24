"""Many small images against one large one: does an image pay a fixed cost the pixels do not explain?

    python bench/bench_small_images.py                                   # x4plus, 20 × 128² against 512², auto and fp32
    python bench/bench_small_images.py --weights superres/weights/superres_x4.safetensors --count 50

One ``Upscaler`` per precision (as a folder run keeps one) upscales ``--count`` crops of ``--small``
pixels and one crop of ``--large`` pixels, both from the same photo, in alternating rounds; the table
gives seconds per output megapixel of each (median over rounds) and their ratio. A ratio near 1 means
an image costs what its pixels cost. Before the per-Upscaler cache of prepared weights
(``superres.engine.kernels``), the fp32 Winograd path spent ~0.4 s per x4plus image transforming them.
Arrays in, arrays out: decoding and encoding are ``bench_folder.py``'s subject.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from bench_inference import (  # also puts this checkout first
    DEFAULT_SOURCE,
    DEFAULT_WEIGHTS,
    machine_load,
)
from PIL import Image

from superres.engine.inference import Upscaler, load_model


def crops(source: Path, size: int, count: int) -> list[np.ndarray]:
    """``count`` different ``size``² crops of the photo, mirrored outwards where it is too small."""
    image = np.asarray(Image.open(source).convert("RGB"))
    pad = max(0, size - min(image.shape[:2]))
    image = np.pad(image, ((0, pad), (0, pad), (0, 0)), mode="symmetric")
    rng = np.random.default_rng(0)
    tops = rng.integers(0, image.shape[0] - size + 1, count)
    lefts = rng.integers(0, image.shape[1] - size + 1, count)
    return [image[t : t + size, l : l + size].copy() for t, l in zip(tops, lefts)]


def seconds_per_mp(upscaler: Upscaler, images: list[np.ndarray]) -> float:
    start, pixels = time.perf_counter(), 0
    for image in images:
        out = upscaler.upscale(image)
        pixels += out.shape[0] * out.shape[1]
    return (time.perf_counter() - start) / (pixels / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--small", type=int, default=128)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--large", type=int, default=512)
    parser.add_argument("--precision", nargs="+", default=["auto", "fp32"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    small, large = crops(args.source, args.small, args.count), crops(args.source, args.large, 1)
    print(f"machine load before: {machine_load()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    folder, single = f"{args.count} × {args.small}² s/out MP", f"1 × {args.large}² s/out MP"
    print(f"\n| precision | {folder} | {single} | ratio | prepared weights MB |")
    print("|---|---:|---:|---:|---:|")
    for precision in args.precision:
        upscaler = load_model(args.weights, device="cpu", precision=precision)
        upscaler.upscale(small[0])  # warm-up: kernels built or loaded, weights prepared
        folder, single = [], []
        for _ in range(args.rounds):
            folder.append(seconds_per_mp(upscaler, small))
            single.append(seconds_per_mp(upscaler, large))
        kernels = upscaler._winograd_kernel(torch.bfloat16 if upscaler.precision == "bf16" else torch.float32)
        prepared = "–" if kernels is None else f"{kernels.prepared_bytes / 2**20:.0f}"
        a, b = statistics.median(folder), statistics.median(single)
        print(f"| {precision} ({upscaler.precision}) | {a:.2f} | {b:.2f} | {a / b:.2f} | {prepared} |")
    print(f"\nmachine load after: {machine_load()}")


if __name__ == "__main__":
    main()
