"""Video: frames per second of ``upscale_video`` against the network alone, and torchrun's scaling on a folder.

    PYTHONPATH=. python bench/bench_video.py                    # 2 s of 640×360 at 25 fps → ×4, H.264 CRF 18
    PYTHONPATH=. python bench/bench_video.py --seconds 1 --runs 2 --no-torchrun

The clip is made first: a 640×360 window moving over Set14 ``monarch.png`` (``../shared``), H.264 with
AAC audio. The **network** row upscales its frames, already decoded, one after another — what the
engine alone costs. The **pipeline** row is :func:`superres.video.transcode.upscale_video`: decoding,
colour conversion, the network, conversion back and H.264 encoding of 2560×1440 frames, with decoding
and encoding in their own threads. Their ratio is what video costs on top of the network. The two
alternate, so load from other processes falls on both alike. The stage row times decoding and encoding
alone (the encoder on the network's own output).

The **torchrun** rows run ``superres upscale FOLDER`` under ``torchrun --nproc_per_node=1`` and ``=2``
on the same images, with the machine's cores split among the processes (OMP_NUM_THREADS), whole
commands timed (start-up, model loading and the gloo rendezvous included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from bench_inference import machine_load

from superres.engine.inference import Upscaler, load_model
from superres.video.frames import Decoded, Frame, SegmentEncoder, encode_settings
from superres.video.probe import probe
from superres.video.transcode import VideoOptions, upscale_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_IMAGE = SHARED / "benchmarks" / "Set14" / "HR" / "monarch.png"
DEFAULT_FOLDER = SHARED / "train" / "BSDS500_train"
DEFAULT_MODEL = ROOT / "superres" / "weights" / "superres_x4.safetensors"


def make_clip(image: Path, path: Path, seconds: float, fps: int, size: tuple[int, int]) -> Path:
    """A window of ``size`` panning over ``image`` (mirrored where it runs out), H.264 CRF 18 + AAC."""
    photo = np.asarray(Image.open(image).convert("RGB"))
    width, height = size
    frames = round(seconds * fps)
    reach = width + 2 * frames
    photo = np.pad(
        photo, ((0, max(0, height - photo.shape[0])), (0, max(0, reach - photo.shape[1])), (0, 0)), "reflect"
    )
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for index in range(frames):
            crop = np.ascontiguousarray(photo[:height, 2 * index : 2 * index + width])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        t = np.arange(round(seconds * 48000)) / 48000
        sine = np.repeat((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], 2, 0)
        for start in range(0, sine.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(sine[:, start : start + 1024]), "fltp", "stereo")
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode())
    return path


def network_alone(upscaler: Upscaler, frames: list[Frame]) -> tuple[float, list[Frame]]:
    start = time.perf_counter()
    out = [Frame(f.pts, upscaler.upscale(f.pixels)) for f in frames]
    return time.perf_counter() - start, out


def pipeline(upscaler: Upscaler, clip: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    outcome = upscale_video(upscaler, clip, target, VideoOptions(segment_seconds=3600))
    assert outcome.written
    return time.perf_counter() - start


def stages(clip: Path, upscaled: list[Frame], work: Path) -> tuple[float, float]:
    """Seconds to decode the clip to RGB arrays, and to convert and encode the upscaled frames."""
    info = probe(clip)
    start = time.perf_counter()
    decoded = list(Decoded(info, None, None))
    decode = time.perf_counter() - start
    height, width = upscaled[0].pixels.shape[:2]
    encoder = SegmentEncoder(work / "encode.mp4", info, encode_settings(info, (width, height)), width, height)
    start = time.perf_counter()
    for frame in upscaled:
        encoder.write(frame)
    encoder.close()
    assert len(decoded) == len(upscaled)
    return decode, time.perf_counter() - start


def torchrun_times(folder: Path, images: int, processes: list[int], runs: int, work: Path) -> dict[int, list[float]]:
    source = work / "folder"
    source.mkdir(exist_ok=True)
    for path in sorted(folder.glob("*.png"))[:images]:
        (source / path.name).write_bytes(path.read_bytes())
    cores = os.cpu_count() or 1
    times: dict[int, list[float]] = {n: [] for n in processes}
    for _ in range(runs):
        for n in processes:
            out = work / f"out{n}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // n)), "PYTHONPATH": str(ROOT)}
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                       "-m", "superres", "upscale", str(source), "-o", str(out)]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times[n].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 360), metavar=("W", "H"))
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="images for the torchrun rows")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--no-torchrun", action="store_true")
    args = parser.parse_args()

    upscaler = load_model(args.model, device="cpu", precision=args.precision)
    load_before = machine_load()
    with tempfile.TemporaryDirectory(prefix="bench_video_") as name:
        work = Path(name)
        clip = make_clip(args.image, work / "clip.mp4", args.seconds, args.fps, tuple(args.size))
        frames = list(Decoded(probe(clip), None, None))
        network_alone(upscaler, frames[:2])  # warm-up
        net_times, pipe_times = [], []
        for _ in range(args.runs):
            seconds, upscaled = network_alone(upscaler, frames)
            net_times.append(seconds)
            pipe_times.append(pipeline(upscaler, clip, work / "out.mp4"))
        decode, encode = stages(clip, upscaled, work)
        del upscaled
        scaling = {} if args.no_torchrun else torchrun_times(args.folder, args.images, [1, 2], args.runs, work)
    load_after = machine_load()

    count = len(frames)
    net, pipe = statistics.median(net_times), statistics.median(pipe_times)
    width, height = args.size
    print(
        f"{count} frames {width}×{height} → ×{upscaler.scale} ({width * upscaler.scale}×{height * upscaler.scale}), "
        f"H.264 CRF 18 yuv420p; {upscaler!r}; torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; "
        f"median of {args.runs} runs"
    )
    print(f"before: {load_before}; after: {load_after}\n")
    print("| run | median s | fps | runs (s) |")
    print("|---|---:|---:|---|")
    for label, values, median in (("network alone", net_times, net), ("pipeline (upscale_video)", pipe_times, pipe)):
        print(f"| {label} | {median:.2f} | {count / median:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    pairs = ", ".join(f"{p / n:.2f}" for p, n in zip(pipe_times, net_times, strict=True))
    print(f"\n**pipeline / network = {pipe / net:.2f}×** (ratio of medians; run by run: {pairs})")
    print(
        f"\nStages alone, s per frame: decode {decode / count:.3f}, network {net / count:.3f}, "
        f"convert + encode {encode / count:.3f} (one after another: {(decode + net + encode) / count:.3f})"
    )
    if scaling:
        print(f"\n{args.images} images of {args.folder.name}, `superres upscale` under torchrun, whole command:\n")
        print("| processes × threads | median s | runs (s) |")
        print("|---|---:|---|")
        cores = os.cpu_count() or 1
        for n, values in scaling.items():
            runs = ", ".join(f"{v:.2f}" for v in values)
            print(f"| {n} × {max(1, cores // n)} | {statistics.median(values):.2f} | {runs} |")
        one, two = statistics.median(scaling[1]), statistics.median(scaling[2])
        pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(scaling[1], scaling[2], strict=True))
        print(f"\n**1 process / 2 processes = {one / two:.2f}×** (ratio of medians; run by run: {pairs})")


if __name__ == "__main__":
    main()
