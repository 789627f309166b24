"""Folder mode: one image after another (``Upscaler.upscale_file``) against the pipeline
(``superres.engine.pipeline.upscale_files``: next image decoded and previous one encoded while the network runs).

    python bench/bench_folder.py                        # 8 copies of superres/assets/sample.png (256×256), PNG out
    python bench/bench_folder.py --ext jpg --runs 5
    python bench/bench_folder.py --image ../shared/benchmarks/Set14/LR_bicubic/X4/lenna.png

The default model is the bundled SRVGGNetCompact ×4, whose network is fast enough that decoding
and encoding (a 1024×1024 PNG through zlib) are a large share of the work: the case the pipeline is for.
Each run writes into a fresh folder; sequential and pipelined runs alternate, so load from other
processes falls on both alike (the run-by-run ratios show how much it moved). Figures are medians of ``--runs`` after ``--warmup`` untimed runs of
each. The stage row splits one sequential pass into read / network / write per image. Time only on a
quiet machine; the table records the load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from bench_inference import machine_load  # also puts this checkout's superres first on sys.path

from superres.engine.inference import Upscaler, load_model
from superres.engine.pipeline import upscale_files
from superres.imageio import read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = ROOT / "superres" / "assets" / "sample.png"
DEFAULT_MODEL = ROOT / "superres" / "weights" / "superres_x4.safetensors"

Jobs = list[tuple[Path, Path]]


def sequential(upscaler: Upscaler, jobs: Jobs) -> None:
    for source, target in jobs:
        upscaler.upscale_file(source, target)


def pipelined(upscaler: Upscaler, jobs: Jobs) -> None:
    for outcome in upscale_files(upscaler, jobs):
        if outcome.error is not None:
            raise outcome.error


def stages(upscaler: Upscaler, jobs: Jobs) -> tuple[float, float, float]:
    """Mean seconds per image of read, network and write, one image after another."""
    read = network = write = 0.0
    for source, target in jobs:
        start = time.perf_counter()
        image = read_image(source)
        decoded = time.perf_counter()
        pixels = upscaler.upscale(image.pixels)
        upscaled = time.perf_counter()
        write_image(target, replace(image, pixels=pixels))
        written = time.perf_counter()
        read, network, write = read + decoded - start, network + upscaled - decoded, write + written - upscaled
    return read / len(jobs), network / len(jobs), write / len(jobs)


def make_jobs(image: Path, copies: int, ext: str, work: Path, run: str) -> Jobs:
    """``copies`` copies of ``image`` in ``work/in`` (made once), and targets in a fresh ``work/<run>``."""
    folder = work / "in"
    if not folder.exists():
        folder.mkdir()
        for index in range(copies):
            shutil.copy(image, folder / f"{index:03d}{image.suffix}")
    out = work / run
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    return [(source, out / f"{source.stem}_x4.{ext}") for source in sorted(folder.iterdir())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--ext", default="png", help="output format: png, jpg or webp")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    upscaler = load_model(args.model, device=args.device, precision=args.precision)
    modes: dict[str, Callable[[Upscaler, Jobs], None]] = {"sequential": sequential, "pipelined": pipelined}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    load_before = machine_load()
    with tempfile.TemporaryDirectory(prefix="bench_folder_") as work:
        for run in range(args.warmup + args.runs):
            for mode, process in modes.items():
                jobs = make_jobs(args.image, args.copies, args.ext, Path(work), mode)
                start = time.perf_counter()
                process(upscaler, jobs)
                if run >= args.warmup:
                    times[mode].append(time.perf_counter() - start)
        read, network, write = stages(upscaler, make_jobs(args.image, args.copies, args.ext, Path(work), "stages"))
    load_after = machine_load()

    size = read_image(args.image)
    median = {mode: statistics.median(values) for mode, values in times.items()}
    print(
        f"{args.copies} × {args.image.name} ({size.width}×{size.height}) → .{args.ext}, {upscaler!r}, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; median of {args.runs} runs"
    )
    print(f"before: {load_before}; after: {load_after}\n")
    print("| mode | median s | s per image | runs (s) |")
    print("|---|---:|---:|---|")
    for mode, values in times.items():
        runs = ", ".join(f"{value:.2f}" for value in values)
        print(f"| {mode} | {median[mode]:.2f} | {median[mode] / args.copies:.3f} | {runs} |")
    pairs = [s / p for s, p in zip(times["sequential"], times["pipelined"], strict=True)]
    print(
        f"\n**sequential / pipelined = {median['sequential'] / median['pipelined']:.2f}×** (ratio of medians); "
        f"run by run (the two modes alternate, so each pair saw similar load): {', '.join(f'{r:.2f}' for r in pairs)}"
    )
    print(f"\nStages, one after another, s per image: read {read:.3f}, network {network:.3f}, write {write:.3f}")


if __name__ == "__main__":
    main()
