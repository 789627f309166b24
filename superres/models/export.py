"""ONNX export of a superres network, with dynamic height and width, checked against PyTorch.

The exported graph maps a float32 ``N×C×H×W`` tensor in [0, 1] (input ``"input"``) to
``N×C×sH×sW`` (output ``"output"``, not clamped), exactly what the PyTorch module computes. H and W
are free, but must be multiples of ``ModelInfo.size_multiple`` (pixel-unshuffle in RRDBNet ×1/×2);
tiling, padding and clamping stay with the caller, as they do around the PyTorch module.

Before the file is put in place, onnxruntime runs it on two random inputs of different sizes and
its output must match PyTorch's, so a file that exists is a file that works.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from superres.errors import SuperresError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from superres.models.detect import ModelInfo

DEFAULT_OPSET = 17
# float32 round-off through ~70 conv layers (RRDBNet ×4) stays around 1e-6; 1e-4 leaves room for
# a different conv algorithm in onnxruntime while still catching any wrong operator.
MAX_ABS_DIFF = 1e-4
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely onnxruntime reproduced PyTorch on the check inputs."""

    path: Path
    arch: str
    scale: int
    opset: int
    check_sizes: tuple[tuple[int, int], ...]  # input (H, W) of each check
    max_abs_diff: float


def _check_sizes(size_multiple: int) -> tuple[tuple[int, int], ...]:
    """Two small, different, non-square input sizes: they exercise the dynamic axes cheaply."""

    def round_up(n: int) -> int:
        return -(-n // size_multiple) * size_multiple

    return tuple((round_up(h), round_up(w)) for h, w in ((16, 12), (12, 20)))


def _onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise SuperresError("ONNX export needs onnxruntime to check the file: pip install 'superres[onnx]'") from None
    return onnxruntime


def _write_graph(network: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    import torch

    dynamic = {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
    }
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which needs the
        # extra package onnxscript; for these plain conv nets both produce the same graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            network,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic,
        )


def _max_abs_diff(network: nn.Module, path: Path, in_channels: int, sizes: tuple[tuple[int, int], ...]) -> float:
    """Largest |onnxruntime − PyTorch| over random inputs of the given sizes."""
    import torch

    session = _onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for height, width in sizes:
        x = torch.rand(1, in_channels, height, width, generator=generator)
        with torch.inference_mode():
            expected = network(x)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        if tuple(got.shape) != tuple(expected.shape):
            raise SuperresError(f"ONNX output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
        worst = max(worst, float((torch.from_numpy(got) - expected).abs().max()))
    return worst


def export_network(
    network: nn.Module,
    info: ModelInfo,
    out_path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> ExportReport:
    """Write ``network`` (fp32, CPU) to ``out_path`` as ONNX, after checking it with onnxruntime."""
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise SuperresError(f"{out} already exists; choose another name or pass overwrite")
    if not out.parent.is_dir():
        raise SuperresError(f"folder {out.parent} does not exist")
    network = network.float().cpu().eval()
    sizes = _check_sizes(info.size_multiple)

    # Exporting into a temporary file beside the target and renaming only after the check means a
    # failed export never leaves a half-written or wrong model behind, nor clobbers an old one.
    import torch

    from superres.imageio import atomic_path

    with atomic_path(out, overwrite) as tmp:
        _write_graph(network, torch.zeros(1, info.in_channels, *sizes[0]), tmp, opset)
        diff = _max_abs_diff(network, tmp, info.in_channels, sizes)
        if not diff <= MAX_ABS_DIFF:
            raise SuperresError(
                f"the exported graph does not reproduce PyTorch (max |Δ| {diff:.3g} > {MAX_ABS_DIFF:g}); "
                f"try another --opset"
            )
    return ExportReport(out, info.arch, info.scale, opset, sizes, diff)


def export_onnx(
    model_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> ExportReport:
    """Export the weights file ``model_path`` (any format :func:`superres.models.weights.load_network` reads)."""
    from superres.imageio import check_not_input
    from superres.models.weights import load_network

    check_not_input(out_path, [model_path])
    network, info = load_network(model_path)
    return export_network(network, info, out_path, opset=opset, overwrite=overwrite)
