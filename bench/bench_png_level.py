"""What the zlib level of written PNGs costs a folder upscale with the default model.

    python bench/bench_png_level.py              # 8 copies of superres/assets/sample.png, 1 warm-up + 3 rounds

The folder pipeline (``superres.engine.pipeline.upscale_files``) runs with ``imageio.PNG_COMPRESS_LEVEL``
at 6 (Pillow's default) and at 1 (ours, OpenCV's default), alternating, so load falls on both alike.
Prints the median seconds per folder, the bytes per image and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_inference import machine_load  # also puts this checkout's superres first on sys.path

import superres.imageio as imageio
from superres.engine.inference import load_model
from superres.engine.pipeline import upscale_files

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (6, 1)


def run_folder(upscaler, sources: list[Path]) -> tuple[float, float]:
    """Seconds for the folder, and KB per written image."""
    out = Path(tempfile.mkdtemp(prefix="superres-png-"))
    try:
        start = time.perf_counter()
        list(upscale_files(upscaler, [(source, out / source.name) for source in sources]))
        seconds = time.perf_counter() - start
        return seconds, sum(f.stat().st_size for f in out.iterdir()) / len(sources) / 1024
    finally:
        shutil.rmtree(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    upscaler = load_model(ROOT / "superres/weights/superres_x4.safetensors")
    folder = Path(tempfile.mkdtemp(prefix="superres-png-in-"))
    sources = [folder / f"image{i}.png" for i in range(args.copies)]
    for source in sources:
        shutil.copyfile(ROOT / "superres/assets/sample.png", source)
    print(f"machine load before: {machine_load()}")
    times: dict[int, list[float]] = {level: [] for level in LEVELS}
    sizes: dict[int, float] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for level in LEVELS:
            imageio.PNG_COMPRESS_LEVEL = level
            seconds, sizes[level] = run_folder(upscaler, sources)
            if round_:
                times[level].append(seconds)
    shutil.rmtree(folder)
    print(f"machine load after: {machine_load()}\n")
    print("| zlib level | median s per folder | s per image | KB per image | runs (s) |\n|---|---:|---:|---:|---|")
    for level in LEVELS:
        median = statistics.median(times[level])
        runs = ", ".join(f"{t:.2f}" for t in times[level])
        print(f"| {level} | {median:.2f} | {median / args.copies:.3f} | {sizes[level]:.0f} | {runs} |")
    ratio = statistics.median(times[6]) / statistics.median(times[1])
    print(f"\n**level 6 / level 1 = {ratio:.2f}×**")


if __name__ == "__main__":
    main()
