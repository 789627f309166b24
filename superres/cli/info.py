"""``superres info MODEL``: what a weights file holds — architecture, scale, size, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from superres.models.detect import ModelInfo


def _format(path: Path, info: ModelInfo) -> str:
    rows = [
        ("file", str(path)),
        ("architecture", f"{info.arch} ({info.layout} layout)"),
        ("scale", f"×{info.scale}"),
        ("channels", f"{info.in_channels} in, {info.out_channels} out"),
        ("parameters", f"{info.num_params:,}"),
        ("hparams", ", ".join(f"{key}={value}" for key, value in info.hparams.items())),
        ("input size", f"multiple of {info.size_multiple}"),
        ("half precision", "yes" if info.half_precision_ok else "no"),
    ]
    if info.metadata:
        rows += [("metadata", ""), *((f"  {key}", value) for key, value in sorted(info.metadata.items()))]
    return "\n".join(f"{label + ':':<16} {value}".rstrip() for label, value in rows)


def info(
    model: Annotated[
        str, typer.Argument(help="Weights file (.safetensors, or .pth/.pt/.ckpt, read safely) or a known model name.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Print the architecture, scale, hyper-parameters, parameter count and metadata of MODEL.

    The architecture is read from our own files' metadata, or detected from the tensors' names and shapes.
    """
    from superres.errors import SuperresError
    from superres.models.registry import resolve
    from superres.models.weights import load_network

    try:
        path = resolve(model, download=False, progress=False)  # inspecting never downloads
        _, model_info = load_network(path)
    except SuperresError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"file": str(path), **model_info.to_dict()}, indent=2))
    else:
        typer.echo(_format(path, model_info))


def register(app: typer.Typer) -> None:
    app.command("info")(info)
