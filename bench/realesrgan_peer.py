"""Time Real-ESRGAN's own ``RealESRGANer`` on one image: the peer our engine is measured against.

Runs inside the throwaway venv made by ``bench/setup_peer.sh`` (PyPI realesrgan 0.3.0 + basicsr
1.4.2 on the local CPU torch 2.13.0), never in the project's environment, and imports nothing
from superres:

    bash bench/setup_peer.sh
    bench/.venv-peer/bin/python bench/realesrgan_peer.py IMAGE --tile 96 --runs 3 [--save out.png]

It prints one JSON object: output megapixels per second, milliseconds per output megapixel and
peak RSS of this process. The timed call is ``RealESRGANer.enhance`` on the decoded image, exactly
what ``inference_realesrgan.py`` times per image (decode and encode excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import resource
import statistics
import sys
import time
from pathlib import Path

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "RealESRGAN_x4plus_fp16round.pth"


def install_torchvision_shims() -> object:
    """Make basicsr importable on CPU torch with the CUDA-only torchvision 0.28.0.

    torchvision's compiled ops do not load against a CPU torch, so its Python layer fails with
    "operator torchvision::nms does not exist" when it registers fake kernels. Declaring the two
    schemas first is enough: nothing here calls them. basicsr 1.4.2 also imports
    ``torchvision.transforms.functional_tensor``, which torchvision renamed to ``_functional_tensor``.
    The returned library must stay alive for the schemas to stay defined.
    """
    import torch

    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision.transforms._functional_tensor as functional_tensor

    sys.modules["torchvision.transforms.functional_tensor"] = functional_tensor
    return library


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own address space (VmHWM).

    ``getrusage().ru_maxrss`` would not do: Linux carries it over ``execve`` from the replaced
    address space, which for a child started by ``subprocess`` (vfork) is the parent's.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_network(state_dict: dict) -> tuple[object, int]:
    """The network the weights belong to, from Real-ESRGAN's own arch code, and its scale."""
    if "conv_first.weight" in state_dict:
        from basicsr.archs.rrdbnet_arch import RRDBNet

        num_block = len({key.split(".")[1] for key in state_dict if key.startswith("body.")})
        num_feat = state_dict["conv_first.weight"].shape[0]
        return RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_block=num_block, scale=4), 4
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact

    convs = sorted(
        int(key.split(".")[1]) for key in state_dict if key.endswith(".weight") and state_dict[key].ndim == 4
    )
    num_feat = state_dict[f"body.{convs[0]}.weight"].shape[0]
    out_ch = state_dict[f"body.{convs[-1]}.weight"].shape[0]
    scale = round((out_ch / 3) ** 0.5)
    return SRVGGNetCompact(num_feat=num_feat, num_conv=len(convs) - 2, upscale=scale, act_type="prelu"), scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--tile", type=int, default=0, help="0 = whole image at once (RealESRGANer's default)")
    parser.add_argument("--tile-pad", type=int, default=10)
    parser.add_argument("--pre-pad", type=int, default=0, help="inference_realesrgan.py's default is 0")
    parser.add_argument("--half", action="store_true", help="fp16 (Real-ESRGAN's CLI default; GPU only)")
    parser.add_argument("--device", default=None, help="cpu or cuda; default: cuda if available")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--save", type=Path, help="write the last output here (PNG, RGB)")
    args = parser.parse_args()

    import cv2
    import torch

    shims = install_torchvision_shims()
    from realesrgan import RealESRGANer

    if args.threads:
        torch.set_num_threads(args.threads)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    network, scale = build_network(state.get("params_ema", state.get("params", state)))
    del state  # RealESRGANer loads the file itself; do not hold two copies in the peak RSS
    upsampler = RealESRGANer(
        scale=scale,
        model_path=str(args.weights),
        model=network,
        tile=args.tile,
        tile_pad=args.tile_pad,
        pre_pad=args.pre_pad,
        half=args.half,
        device=torch.device(args.device) if args.device else None,
    )
    image = cv2.imread(str(args.image), cv2.IMREAD_UNCHANGED)
    if image is None:
        sys.exit(f"cannot read image {args.image}")

    cuda = upsampler.device.type == "cuda"
    times, cpu_times = [], []
    # RealESRGANer prints one line per tile; keep stdout for the JSON alone.
    with contextlib.redirect_stdout(sys.stderr):
        for i in range(args.warmup + args.runs):
            if cuda:
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
            output, _ = upsampler.enhance(image)
            if cuda:
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
    del shims

    if args.save:
        cv2.imwrite(str(args.save), output)
    out_mp = output.shape[0] * output.shape[1] / 1e6
    median = statistics.median(times)
    result = {
        "impl": "RealESRGANer",
        "precision": "fp16" if args.half else "fp32",
        "device": upsampler.device.type,
        "threads": torch.get_num_threads(),
        "input": f"{image.shape[1]}x{image.shape[0]}",
        "output_mp": round(out_mp, 4),
        "tile": args.tile,
        "tile_pad": args.tile_pad,
        "runs": len(times),
        "times_s": [round(t, 4) for t in times],
        "cpu_times_s": [round(t, 4) for t in cpu_times],
        "median_s": round(median, 4),
        "mp_per_s": round(out_mp / median, 5),
        "ms_per_mp": round(1000 * median / out_mp, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "versions": {
            name: importlib.metadata.version(name) for name in ("realesrgan", "basicsr", "torch", "torchvision")
        },
    }
    if cuda:
        result["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
