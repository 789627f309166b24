"""``superres train`` and ``superres interpolate``: train from a preset, blend a PSNR and a GAN model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

TRAIN_HELP = """Train from a preset (srresnet, srgan, esrgan_psnr, esrgan) or a YAML file.

Settings are overridden as KEY=VALUE, nested with dots, e.g. model.num_block=8 optim.lr=2e-4
data.batch_size=32 total_steps=2e5 name=my_run. The run lives in runs/<name>; --resume continues it.
Multi-GPU / multi-process: torchrun --nproc_per_node=N -m superres train PRESET ...
"""


def register(app: typer.Typer) -> None:
    app.command(name="train", help=TRAIN_HELP)(train_command)
    app.command(name="interpolate")(interpolate_command)


def train_command(
    preset: Annotated[str, typer.Argument(help="Preset name or YAML file.", metavar="PRESET_OR_YAML")],
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE settings.", metavar="[KEY=VALUE]...")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its latest checkpoint.")] = False,
) -> None:
    from superres.cli.guard import finished
    from superres.train import load_config, train

    config = load_config(preset, overrides or [])
    finished(f"{config.run_dir} keeps its checkpoints; continue the run with --resume")
    run_dir = train(config, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks for all
        print(f"run directory: {run_dir}")


def interpolate_command(
    psnr_model: Annotated[Path, typer.Argument(help="The PSNR-oriented model (α = 0).", metavar="PSNR_MODEL")],
    gan_model: Annotated[Path, typer.Argument(help="The GAN-trained model (α = 1).", metavar="GAN_MODEL")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The blended model (.safetensors).")],
    alpha: Annotated[float, typer.Option("--alpha", "-a", help="Weight of the GAN model, 0…1.")] = 0.8,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
) -> None:
    """Network interpolation (ESRGAN §3.4): (1 − α)·PSNR + α·GAN, parameter by parameter."""
    from superres.models.interpolation import interpolate

    path = interpolate(psnr_model, gan_model, alpha, output, overwrite=overwrite)
    print(f"wrote {path} (alpha {alpha})")
