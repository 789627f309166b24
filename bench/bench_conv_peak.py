"""This machine's 3×3 convolution throughput: the hardware limit that bench_inference.py is judged by.

RRDBNet spends nearly all of its time in 3×3, stride-1 convs with 32–192 channels at 64-ish
output channels, so a single 64→64 conv on a large feature map is its best-case kernel:

    python bench/bench_conv_peak.py                       # 1×64×256×256, all layouts, 2 threads
    python bench/bench_conv_peak.py --size 128 --runs 9 --threads 1 --json

FLOPs count a multiply-add as two: 2·C_in·C_out·9·H·W per image. Each figure is the median of
``--runs`` timed calls after ``--warmup`` untimed ones. GFLOP/s is wall-clock, the machine's figure,
valid only on a quiet machine; GFLOP/s per CPU-second is what one core does while it runs (with
``--threads 1`` a single core's peak, which other load distorts far less).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ConvResult:
    variant: str
    median_ms: float
    gflops: float  # wall clock: the machine's figure, valid only when nothing else runs
    gflops_per_core: float  # per CPU-second of this process: a single core's rate, steadier under load


# name -> (memory format, dtype)
VARIANTS = {
    "fp32 contiguous": (torch.contiguous_format, torch.float32),
    "fp32 channels_last": (torch.channels_last, torch.float32),
    "bf16 channels_last": (torch.channels_last, torch.bfloat16),
    "bf16 contiguous": (torch.contiguous_format, torch.bfloat16),
}


def conv_flops(channels_in: int, channels_out: int, height: int, width: int, batch: int = 1) -> float:
    return 2.0 * channels_in * channels_out * 9 * height * width * batch


def time_conv(variant: str, channels: int, size: int, batch: int, runs: int, warmup: int) -> ConvResult:
    memory_format, dtype = VARIANTS[variant]
    conv = nn.Conv2d(channels, channels, 3, 1, 1).eval().to(dtype=dtype, memory_format=memory_format)
    x = torch.rand(batch, channels, size, size, dtype=dtype).contiguous(memory_format=memory_format)
    times, cpu_times = [], []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            conv(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    median = statistics.median(times)
    flops = conv_flops(channels, channels, size, size, batch)
    return ConvResult(
        variant,
        round(median * 1000, 2),
        round(flops / median / 1e9, 1),
        round(flops / statistics.median(cpu_times) / 1e9, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="feature map height and width")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    results = [time_conv(v, args.channels, args.size, args.batch, args.runs, args.warmup) for v in args.variants]
    shape = f"{args.batch}×{args.channels}×{args.size}×{args.size}"
    if args.json:
        print(json.dumps({"shape": shape, "threads": torch.get_num_threads(), "results": [asdict(r) for r in results]}))
        return
    print(
        f"3×3 conv {args.channels}→{args.channels}, input {shape}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, median of {args.runs}"
    )
    print()
    print("| variant | ms | GFLOP/s | GFLOP/s per CPU-second |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r.variant} | {r.median_ms} | {r.gflops} | {r.gflops_per_core} |")


if __name__ == "__main__":
    main()
