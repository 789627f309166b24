"""Upscaling throughput of our engine against Real-ESRGAN's ``RealESRGANer``, in one run, on one image.

    bash bench/setup_peer.sh                     # once: the peer's throwaway venv
    python bench/bench_inference.py --size 512 --tile 256      # superres fp32 (direct, Winograd), bf16 vs peer fp32
    python bench/bench_inference.py --size 256 --tile 128 --run eager:fp32 eager:fp32:cl eager:bf16:cl peer:fp32
    python bench/bench_inference.py --size 1024 2048 --tile 256 --run superres:auto --runs 1   # RSS vs size
    python bench/bench_inference.py ... --append                           # also add the table to RESULTS.md
    bash bench/setup_openvino.sh                 # once: OpenVINO's throwaway venv
    python bench/bench_inference.py --weights superres/weights/superres_x4.safetensors --tile 0 \
        --run superres:auto superres:fp32 openvino:bf16 openvino:f32 --rounds 3 --runs 1 --baseline openvino:bf16

Each configuration runs in a fresh subprocess (this script with ``--worker``, or the peer venv's
``realesrgan_peer.py``), so its peak RSS is its own; figures are the median of ``--runs`` timed
calls after ``--warmup`` untimed ones. A timed call is one whole image: uint8 array in, uint8 array
out (decode and encode excluded, as the peer's ``enhance``).

Configurations are ``IMPL:PRECISION[:OPTION...]``:
- ``superres:fp32|bf16|fp16|auto`` — our engine, ``superres.engine.inference.load_model``; option ``direct``:
  without the fp32 Winograd kernel (``winograd=False``), the direct conv as PyTorch computes it.
- ``peer:fp32|fp16`` — ``RealESRGANer`` (fp16 is its ``half=True``, for GPUs).
- ``eager:fp32|bf16|bf16w`` with options ``cl`` (channels_last), ``compile`` (``torch.compile``) and
  ``freeze`` (compile with Inductor's weight freezing) — the bare network with Real-ESRGAN's tiling
  loop, to see which fast path pays (bf16 = CPU autocast, bf16w = weights and activations in bf16).
- ``ort:fp32`` — the network exported by ``superres.models.export`` and run by onnxruntime, same tiling.
- ``openvino:f32|bf16`` — the same ONNX file in Intel's OpenVINO runtime (``openvino_peer.py`` in the venv
  of ``setup_openvino.sh``; the precision is its ``INFERENCE_PRECISION_HINT``), same tiling.

``--rounds N`` runs the whole list of configurations N times, one after another (A B C A B C …), and
takes each row's median over all its timed calls: on a shared machine, load that comes and goes then
falls on every row alike, instead of on whichever row ran at the time. ``--baseline LABEL`` names the
row the "×" column divides by (default: the RealESRGANer row, ``peer``).

Columns: output MP/s, ms and CPU-seconds per output MP, peak RSS (and VRAM on GPU), × the peer's
MP/s at the same tile, % of the hardware limit (this machine's 3×3 conv peak from
bench_conv_peak.py divided by the network's conv FLOPs per output pixel; once by wall clock, once
per CPU-second, which other load distorts less, most of all with --threads 1; the limit is that of
the direct conv: Winograd, with 4× fewer multiplications in the dense blocks, goes beyond 100 %), max
|Δ| / PSNR (RGB) of the output against the first configuration (put the direct fp32 first: the other
PSNRs are then the quality cost of Winograd and of bf16), and CPU wait: the share of the row's wall time in which some task waited for a CPU
(Linux PSI) — above a few percent, other work inflated that row's wall-clock figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# the superres of this checkout, not whichever one is installed (an editable install may point elsewhere)
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
DEFAULT_WEIGHTS = SHARED / "weights" / "RealESRGAN_x4plus_fp16round.pth"
DEFAULT_SOURCE = SHARED / "benchmarks" / "Set14" / "HR" / "monarch.png"
PEER_PYTHON = BENCH / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = BENCH / "realesrgan_peer.py"
OPENVINO_PYTHON = BENCH / ".venv-openvino" / "bin" / "python"
OPENVINO_SCRIPT = BENCH / "openvino_peer.py"
RESULTS = BENCH / "RESULTS.md"
IMPLS = ("superres", "peer", "eager", "ort", "openvino")
DEFAULT_RUN = ("superres:fp32:direct", "superres:fp32", "superres:bf16", "peer:fp32")
REAL_ESRGAN_TILE_PAD = 10  # RealESRGANer's and inference_realesrgan.py's default


@dataclass(frozen=True)
class Config:
    impl: str
    precision: str
    options: tuple[str, ...] = ()
    tile: int | None = 0  # 0: whole image; None: the engine chooses (superres only)
    tile_pad: int | None = REAL_ESRGAN_TILE_PAD  # None: the engine's own default (superres only)

    @classmethod
    def parse(cls, spec: str) -> Config:
        impl, *rest = spec.split(":")
        precision, options = (rest[0], rest[1:]) if rest else ("fp32", [])
        if impl not in IMPLS:
            raise SystemExit(f"unknown implementation {impl!r} in {spec!r}; expected one of {', '.join(IMPLS)}")
        return cls(impl, precision, tuple(options))

    @property
    def label(self) -> str:
        return ":".join((self.impl, self.precision, *self.options))

    @property
    def tile_label(self) -> str:
        pad = "default" if self.tile_pad is None else self.tile_pad
        return "auto" if self.tile is None else ("none" if self.tile == 0 else f"{self.tile}/{pad}")


@dataclass
class Result:
    config: Config
    size: str
    times_s: list[float]
    cpu_times_s: list[float]  # CPU seconds of all threads: less sensitive than wall time to other load
    output_mp: float
    peak_rss_mb: float
    peak_vram_mb: float | None = None
    threads: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    output_path: Path | None = None
    cpu_wait: float | None = None  # share of the run's wall time in which some task waited for a CPU

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def mp_per_s(self) -> float:
        return self.output_mp / self.median_s


# --------------------------------------------------------------------------------------------------
# Worker side: one configuration, one process


def peak_rss_mb() -> float:
    """This process's own peak resident memory: VmHWM of its address space.

    Not ``getrusage().ru_maxrss``: Linux carries that over ``execve`` from the address space that was
    replaced, and ``subprocess`` starts children with vfork, whose address space is the parent's,
    so every worker would report at least the driver's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def tiled_forward(forward: Callable[[Any], Any], x: Any, scale: int, tile: int, pad: int) -> Any:
    """Real-ESRGAN's tiling (``RealESRGANer.tile_process``): each tile with ``pad`` pixels of context."""
    import torch

    if not tile:
        return forward(x)
    _, channels, height, width = x.shape
    out = torch.zeros(1, channels, height * scale, width * scale)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            py0, px0, py1, px1 = max(y0 - pad, 0), max(x0 - pad, 0), min(y1 + pad, height), min(x1 + pad, width)
            piece = forward(x[:, :, py0:py1, px0:px1])
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = piece[
                :, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
            ]
    return out


def bare_network_upscaler(
    config: Config, weights: Path, onnx_path: Path | None, device: str
) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 HWC → uint8 HWC through the bare network (eager or onnxruntime) and the tiling loop above."""
    import torch

    from superres.models.weights import load_network

    network, info = load_network(weights)
    network = network.to(device)
    if config.impl == "ort":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"input": x.contiguous().numpy()})[0])

    else:
        memory_format = torch.channels_last if "cl" in config.options else torch.contiguous_format
        if config.precision == "bf16w":
            network = network.to(torch.bfloat16)
        network = network.to(memory_format=memory_format)
        if "freeze" in config.options:
            # Inductor's freezing folds the weights into the graph as constants, which lets it
            # prepack them for oneDNN and fuse conv + LeakyReLU; without it CPU compile gains little.
            import torch._inductor.config

            torch._inductor.config.freezing = True
        compiled = "compile" in config.options or "freeze" in config.options
        model = torch.compile(network) if compiled else network
        input_dtype = torch.bfloat16 if config.precision == "bf16w" else torch.float32

        def forward(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device=device, dtype=input_dtype).contiguous(memory_format=memory_format)
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                return model(x).float().cpu()

    def upscale(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            y = tiled_forward(forward, x, info.scale, config.tile or 0, config.tile_pad)
            return (y[0].clamp_(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()

    return upscale


def engine_upscaler(config: Config, weights: Path, device: str) -> Callable[[np.ndarray], np.ndarray]:
    from superres.engine.inference import load_model

    model = load_model(
        weights,
        device=device,
        precision=config.precision,
        tile=config.tile,
        tile_pad=config.tile_pad,
        winograd="direct" not in config.options,
    )
    return model.upscale


def worker(
    config: Config,
    image_path: Path,
    weights: Path,
    runs: int,
    warmup: int,
    device: str,
    onnx_path: Path | None,
    save: Path | None,
) -> dict[str, Any]:
    import torch

    image = np.asarray(Image.open(image_path).convert("RGB")).copy()
    if config.impl == "superres":
        upscale = engine_upscaler(config, weights, device)
    else:
        upscale = bare_network_upscaler(config, weights, onnx_path, device)
    cuda = device.startswith("cuda")
    times, cpu_times = [], []
    for i in range(warmup + runs):
        if cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        output = upscale(image)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if save is not None:
        Image.fromarray(np.asarray(output)).save(save)
    result = {
        "times_s": times,
        "cpu_times_s": cpu_times,
        "output_mp": output.shape[0] * output.shape[1] / 1e6,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }
    if cuda:
        result["peak_vram_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


# --------------------------------------------------------------------------------------------------
# Driver side: inputs, subprocesses, the table


def make_input(source: Path, size: int, folder: Path) -> Path:
    """A ``size``×``size`` crop of a real photo, mirrored outwards when the photo is smaller."""
    image = np.asarray(Image.open(source).convert("RGB"))
    h, w = image.shape[:2]
    image = np.pad(image, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="symmetric")
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    path = folder / f"input_{size}.png"
    Image.fromarray(image[top : top + size, left : left + size]).save(path)
    return path


def flops_per_output_pixel(weights: Path) -> float:
    """Conv FLOPs (2 per multiply-add) of the network per output pixel, counted by hooks on a small input."""
    import torch

    from superres.models.weights import load_network

    network, info = load_network(weights)
    total = 0.0

    def count(module: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        total += 2 * module.in_channels // module.groups * module.out_channels * k_h * k_w * output[0, 0].numel()

    handles = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    side = 8 * info.size_multiple
    with torch.inference_mode():
        out = network(torch.zeros(1, info.in_channels, side, side))
    for handle in handles:
        handle.remove()
    return total / (out.shape[2] * out.shape[3])


@dataclass(frozen=True)
class ConvPeak:
    """This machine's best 3×3 conv rate for one precision (bench_conv_peak.py), in GFLOP/s."""

    wall: float  # the machine's rate: what "% of limit" compares with
    per_cpu_second: float  # what the process does per CPU-second it gets: steadier under other load


def conv_peak(threads: int) -> dict[str, ConvPeak]:
    """This machine's best 3×3 conv per precision, from bench_conv_peak.py in a subprocess."""
    command = [
        sys.executable,
        str(BENCH / "bench_conv_peak.py"),
        "--json",
        "--variants",
        "fp32 channels_last",
        "bf16 channels_last",
    ]
    if threads:
        command += ["--threads", str(threads)]
    results = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)["results"]
    return {r["variant"].split()[0]: ConvPeak(r["gflops"], r["gflops_per_core"]) for r in results}


def peer_timing_args(config: Config, args: argparse.Namespace, save: Path) -> list[str]:
    """Tiling, repetitions and output file, as both peer scripts (OpenVINO, Real-ESRGAN) take them."""
    return ["--tile", str(config.tile or 0), "--tile-pad", str(config.tile_pad), "--runs", str(args.runs),
            "--warmup", str(args.warmup), "--save", str(save)]  # fmt: skip


def run_config(config: Config, image: Path, args: argparse.Namespace, onnx_path: Path | None, save: Path) -> Result:
    if config.impl == "openvino":
        if not OPENVINO_PYTHON.is_file():
            raise SystemExit(f"the OpenVINO venv is missing: run `bash {BENCH / 'setup_openvino.sh'}` first")
        from superres.models.weights import load_network

        command = [
            str(OPENVINO_PYTHON),
            str(OPENVINO_SCRIPT),
            str(image),
            "--onnx",
            str(onnx_path),
            "--scale",
            str(load_network(args.weights)[1].scale),
            "--precision",
            config.precision,
            *peer_timing_args(config, args, save),
        ]
    elif config.impl == "peer":
        if not PEER_PYTHON.is_file():
            raise SystemExit(f"the peer venv is missing: run `bash {BENCH / 'setup_peer.sh'}` first")
        command = [
            str(PEER_PYTHON),
            str(PEER_SCRIPT),
            str(image),
            "--weights",
            str(args.weights),
            *peer_timing_args(config, args, save),
            "--device",
            args.device.split(":")[0],
        ]
        if config.precision == "fp16":
            command.append("--half")
    else:
        spec = {
            "config": asdict(config),
            "image": str(image),
            "weights": str(args.weights),
            "runs": args.runs,
            "warmup": args.warmup,
            "device": args.device,
            "onnx": str(onnx_path) if onnx_path else None,
            "save": str(save),
        }
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    pressure_start, wall_start = cpu_pressure_total_us(), time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    pressure_end, wall = cpu_pressure_total_us(), time.perf_counter() - wall_start
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{config.label} failed (exit {done.returncode})")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(
        config=config,
        size=f"{Image.open(image).width}×{Image.open(image).height}",
        times_s=raw["times_s"],
        cpu_times_s=raw["cpu_times_s"],
        output_mp=raw["output_mp"],
        peak_rss_mb=raw["peak_rss_mb"],
        peak_vram_mb=raw.get("peak_vram_mb"),
        threads=raw.get("threads", 0),
        extra={k: raw[k] for k in ("versions",) if k in raw},
        cpu_wait=None if pressure_start is None else (pressure_end - pressure_start) / 1e6 / wall,
        output_path=save,
    )


def merge(earlier: Result, later: Result) -> Result:
    """One row from two rounds of the same configuration: all timed calls, the higher peak RSS, the
    CPU wait over both (weighted by their wall time)."""
    walls = (sum(earlier.times_s), sum(later.times_s))
    waits = (earlier.cpu_wait, later.cpu_wait)
    cpu_wait = None if None in waits else (waits[0] * walls[0] + waits[1] * walls[1]) / sum(walls)
    return replace(
        later,
        times_s=earlier.times_s + later.times_s,
        cpu_times_s=earlier.cpu_times_s + later.cpu_times_s,
        peak_rss_mb=max(earlier.peak_rss_mb, later.peak_rss_mb),
        cpu_wait=cpu_wait,
    )


def compare(result: Result, reference: Result) -> tuple[int, float]:
    """max |Δ| in levels and RGB PSNR (dB) of ``result``'s output against ``reference``'s."""
    a = np.asarray(Image.open(result.output_path).convert("RGB")).astype(np.int16)
    b = np.asarray(Image.open(reference.output_path).convert("RGB")).astype(np.int16)
    mse = float(np.mean((a - b).astype(np.float64) ** 2))
    return int(np.abs(a - b).max()), (math.inf if mse == 0 else 10 * math.log10(255**2 / mse))


def machine_header(args: argparse.Namespace, peer_versions: dict[str, dict[str, str]]) -> list[str]:
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    flags = Path("/proc/cpuinfo").read_text()
    isa = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {name}" in flags]
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = [f"torch {torch.__version__}"]
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions.append(f"onnxruntime {onnxruntime.__version__}")
    for impl, found in peer_versions.items():
        named = (v if k == impl else f"{k} {v}" for k, v in found.items() if k != "torch")
        versions.append(f"{impl} " + ", ".join(named))
    lines = [
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- machine: {cpu}, {os.cpu_count()} cores ({', '.join(isa)}), {mem_gib:.1f} GiB RAM, Python {platform.python_version()}",
        f"- versions: {'; '.join(versions)}",
        (
            f"- device {args.device}, threads {args.threads or torch.get_num_threads()}, "
            f"median of {args.runs} run(s) after {args.warmup} warm-up"
            + (f", in each of {args.rounds} interleaved rounds" if args.rounds > 1 else "")
        ),
    ]
    if args.device.startswith("cuda"):
        lines.append(f"- GPU: {torch.cuda.get_device_name()}")
    return lines


def table(results: list[Result], flops: float, peak: dict[str, ConvPeak] | None, baseline: str = "peer") -> list[str]:
    gpu = any(r.peak_vram_mb is not None for r in results)
    head = ["input", "config", "tile/pad", "median s", "out MP/s", "ms/out MP", "CPU s/out MP", "peak RSS MB"]
    head += ["peak VRAM MB"] if gpu else []
    head += [f"× {baseline}", "% of limit", "% of limit (CPU time)", "max |Δ|", "PSNR dB", "CPU wait"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    # Rows with the same input and tile size are compared, whatever their pads (the column shows them).
    groups: dict[tuple[str, int | None], list[Result]] = {}
    for r in results:
        groups.setdefault((r.size, r.config.tile), []).append(r)
    for group in groups.values():
        peer = next((r for r in group if baseline in (r.config.impl, r.config.label)), None)
        reference = group[0]
        for r in group:
            limit = (peak or {}).get("bf16" if r.config.precision.startswith("bf16") else "fp32")
            useful_gflop = flops * r.output_mp * 1e-3
            pct = f"{100 * useful_gflop / r.median_s / limit.wall:.0f}%" if limit else "–"
            cpu_s = statistics.median(r.cpu_times_s)
            pct_cpu = f"{100 * useful_gflop / cpu_s / limit.per_cpu_second:.0f}%" if limit else "–"
            diff, psnr = compare(r, reference) if r is not reference else ("ref", None)
            row = [
                r.size,
                r.config.label,
                r.config.tile_label,
                f"{r.median_s:.2f}",
                f"{r.mp_per_s:.4f}",
                f"{1000 * r.median_s / r.output_mp:.0f}",
                f"{statistics.median(r.cpu_times_s) / r.output_mp:.3g}",
                f"{r.peak_rss_mb:.0f}",
            ]
            row += [f"{r.peak_vram_mb:.0f}" if r.peak_vram_mb is not None else "–"] if gpu else []
            row += [
                f"{r.mp_per_s / peer.mp_per_s:.2f}×" if peer else "–",
                pct,
                pct_cpu,
                str(diff),
                "–" if psnr is None else ("inf" if math.isinf(psnr) else f"{psnr:.1f}"),
                "–" if r.cpu_wait is None else f"{100 * r.cpu_wait:.0f}%",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def cpu_pressure_total_us() -> int | None:
    """Linux PSI: total microseconds in which some runnable task waited for a CPU (None without PSI)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return int(first.rsplit("total=", 1)[1])


def machine_load() -> str:
    """Load average and, where the kernel has PSI, the share of time tasks waited for a CPU."""
    text = "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    with contextlib.suppress(OSError):
        some = Path("/proc/pressure/cpu").read_text().split()[1]  # "avg10=…"
        text += f", CPU pressure {some.replace('avg10=', '')}% (10 s)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--run", nargs="+", default=list(DEFAULT_RUN), metavar="IMPL:PRECISION[:OPT]")
    parser.add_argument("--size", nargs="+", type=int, default=[512], help="square input side(s), pixels")
    parser.add_argument("--image", type=Path, help="use this image as it is instead of a crop of --source")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--tile", nargs="+", default=["256"], help="tile size(s): N, 0 (none) or auto (engine only)")
    parser.add_argument(
        "--tile-pad",
        default=str(REAL_ESRGAN_TILE_PAD),
        help="context around each tile, LR pixels; 'default': the engine's own (the others keep 10)",
    )
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--runs", type=int, default=3, help="timed calls per configuration and round")
    parser.add_argument("--rounds", type=int, default=1, help="run the configurations this many times, interleaved")
    parser.add_argument("--baseline", default="peer", help="the row the × column divides by: an IMPL or a full label")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process; 0 = torch's default")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-conv-peak", action="store_true", help="skip the %% of hardware limit columns")
    parser.add_argument("--title", default="", help="heading for this table")
    parser.add_argument("--append", action="store_true", help=f"also append the section to {RESULTS.name}")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        spec = json.loads(args.worker)
        config = Config(**{**spec["config"], "options": tuple(spec["config"]["options"])})
        print(
            json.dumps(
                worker(
                    config,
                    Path(spec["image"]),
                    Path(spec["weights"]),
                    spec["runs"],
                    spec["warmup"],
                    spec["device"],
                    Path(spec["onnx"]) if spec["onnx"] else None,
                    Path(spec["save"]),
                )
            )
        )
        return

    configs = [Config.parse(spec) for spec in args.run]
    tiles = [None if t == "auto" else int(t) for t in args.tile]
    before = machine_load()
    with tempfile.TemporaryDirectory(prefix="superres-bench-") as tmp:
        folder = Path(tmp)
        images = [args.image] if args.image else [make_input(args.source, size, folder) for size in args.size]
        onnx_path = None
        if any(c.impl in ("ort", "openvino") for c in configs):
            from superres.models.export import export_onnx

            onnx_path = export_onnx(args.weights, folder / "model.onnx").path
        measure_peak = not args.no_conv_peak and args.device == "cpu"
        peak_before = conv_peak(args.threads) if measure_peak else None
        rows: dict[tuple[Path, Config], Result] = {}  # in the order of the first round
        for round_ in range(args.rounds):
            for image in images:
                for tile in tiles:
                    for config in configs:
                        pad = None if args.tile_pad == "default" else int(args.tile_pad)
                        if pad is None and config.impl != "superres":
                            pad = REAL_ESRGAN_TILE_PAD
                        tiled = replace(config, tile=tile, tile_pad=pad)
                        if tile is None and config.impl != "superres":
                            continue  # only our engine chooses a tile itself
                        key = (image, tiled)
                        save = folder / f"out_{list(rows).index(key) if key in rows else len(rows)}.png"
                        result = run_config(tiled, image, args, onnx_path, save)
                        print(
                            f"round {round_ + 1}: {result.size} {tiled.label} tile {tiled.tile_label}: "
                            f"{result.mp_per_s:.4f} MP/s {result.peak_rss_mb:.0f} MB",
                            file=sys.stderr,
                        )
                        rows[key] = merge(rows[key], result) if key in rows else result
        results = list(rows.values())
        flops = flops_per_output_pixel(args.weights)
        # the conv peak again after the rows: a shared host can run this VM at another speed for minutes
        # (seen here: the same conv at 113 and at 219 GFLOP/s, with no load visible inside); the higher
        # of the two is the limit, which can only make our "% of limit" smaller
        peak_after = conv_peak(args.threads) if measure_peak else None
        peak = None
        if peak_before and peak_after:
            peak = {p: max(peak_before[p], peak_after[p], key=lambda g: g.wall) for p in peak_before}
        peer_versions = {r.config.impl: r.extra["versions"] for r in results if "versions" in r.extra}
        lines = [f"### {args.title or args.weights.name}", ""]
        lines += machine_header(args, peer_versions)
        lines.append(f"- machine load before: {before}; after: {machine_load()}")
        lines.append(f"- network: {flops / 1e6:.2f} MFLOP per output pixel (conv multiply-adds × 2)")
        if peak:
            limits = ", ".join(
                f"{p} {g.wall:.0f} GFLOP/s → {g.wall * 1e3 / flops:.3f} out MP/s ({g.per_cpu_second:.0f} per CPU-second)"
                for p, g in peak.items()
            )
            lines.append(f"- hardware limit (3×3 conv 64→64, channels_last, bench_conv_peak.py): {limits}")
            drift = ", ".join(f"{p} {peak_before[p].wall:.0f} → {peak_after[p].wall:.0f}" for p in peak)
            lines.append(f"- conv peak before → after the rows, GFLOP/s: {drift} (the limit uses the higher)")
        lines += ["", *table(results, flops, peak, args.baseline), ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
