"""``superres export-onnx MODEL -o model.onnx``: an ONNX file with dynamic height and width."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command(name="export-onnx")(export_onnx_command)


def export_onnx_command(
    model: Annotated[str, typer.Argument(help="Weights file (.safetensors, .pth, ...) or a known model name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version.")] = 17,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Export MODEL to ONNX (float32, input N×C×H×W in [0, 1], any H and W), checked with onnxruntime.

    The graph is the bare network: tiling, padding to the size multiple and clamping are left to the caller.
    """
    from superres.errors import SuperresError
    from superres.models.export import MAX_ABS_DIFF, export_onnx
    from superres.models.registry import resolve

    try:
        report = export_onnx(resolve(model), output, opset=opset, overwrite=overwrite)
    except SuperresError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(code=1) from None
    sizes = ", ".join(f"{h}×{w}" for h, w in report.check_sizes)
    typer.echo(
        f"wrote {report.path} ({report.arch} ×{report.scale}, opset {report.opset}, dynamic height/width)\n"
        f"onnxruntime vs PyTorch on inputs {sizes}: max |Δ| = {report.max_abs_diff:.2g} (limit {MAX_ABS_DIFF:g})"
    )
