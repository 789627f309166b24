"""Time Intel's OpenVINO runtime on one image: the runtime a user picks for fast CPU inference.

Runs inside the throwaway venv made by ``bench/setup_openvino.sh`` (PyPI ``openvino``, numpy, Pillow;
no torch) on the ONNX file of ``superres.models.export``, and imports nothing from superres:

    bash bench/setup_openvino.sh
    bench/.venv-openvino/bin/python bench/openvino_peer.py IMAGE --onnx model.onnx --scale 4 \\
        --precision bf16 --runs 3 [--tile 256 --tile-pad 10] [--save out.png]

It prints one JSON object (the fields ``bench_inference.py`` reads from its own workers). The timed
call is the whole image, uint8 in and uint8 out, as for the other rows: to float in [0, 1], the
network (whole or in Real-ESRGAN's tiles, the loop ``bench_inference.tiled_forward`` runs), clamp,
round to uint8. ``--precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``: ``f32``, or ``bf16``
(on CPUs with AVX512-BF16 or AMX; OpenVINO's default on AMX machines).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own address space (VmHWM; see bench_inference.peak_rss_mb)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiled_forward(
    forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, scale: int, tile: int, pad: int
) -> np.ndarray:
    """Real-ESRGAN's tiling (``RealESRGANer.tile_process``) in NumPy: each tile with ``pad`` pixels of context."""
    if not tile:
        return forward(x)
    _, channels, height, width = x.shape
    out = np.zeros((1, channels, height * scale, width * scale), dtype=np.float32)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            py0, px0, py1, px1 = max(y0 - pad, 0), max(x0 - pad, 0), min(y1 + pad, height), min(x1 + pad, width)
            piece = forward(np.ascontiguousarray(x[:, :, py0:py1, px0:px1]))
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = piece[
                :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--precision", choices=("f32", "bf16"), default="f32")
    parser.add_argument("--tile", type=int, default=0, help="0: the whole image at once")
    parser.add_argument("--tile-pad", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: OpenVINO's default (all cores)")
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()

    import openvino

    core = openvino.Core()
    config = {"INFERENCE_PRECISION_HINT": args.precision, "PERFORMANCE_HINT": "LATENCY"}
    if args.threads:
        config["INFERENCE_NUM_THREADS"] = args.threads
    compiled = core.compile_model(core.read_model(str(args.onnx)), "CPU", config)
    request = compiled.create_infer_request()
    actual = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type: f32, bf16
    if actual.to_string() != args.precision:
        sys.exit(f"OpenVINO runs {actual} here, not the {args.precision} asked for")

    def forward(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()

    def upscale(image: np.ndarray) -> np.ndarray:
        x = (image.transpose(2, 0, 1)[None].astype(np.float32) / 255).copy()
        y = tiled_forward(forward, x, args.scale, args.tile, args.tile_pad)
        return (np.clip(y[0], 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)

    image = np.asarray(Image.open(args.image).convert("RGB")).copy()
    times, cpu_times = [], []
    for i in range(args.warmup + args.runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        output = upscale(image)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if args.save is not None:
        Image.fromarray(output).save(args.save)
    versions = {"openvino": importlib.metadata.version("openvino")}
    print(
        json.dumps(
            {
                "times_s": times,
                "cpu_times_s": cpu_times,
                "median_s": statistics.median(times),
                "output_mp": output.shape[0] * output.shape[1] / 1e6,
                "peak_rss_mb": peak_rss_mb(),
                "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
                "versions": versions,
            }
        )
    )


if __name__ == "__main__":
    main()
