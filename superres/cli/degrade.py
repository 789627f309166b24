"""``superres degrade IMAGE... -o OUT``: see what the training degradations (or a benchmark recipe) do.

For users checking their settings: each image goes through the random high-order pipeline of a
preset or training YAML (its ``degradation`` section; ``KEY=VALUE`` overrides as in ``superres
train``), seeded by ``--seed`` and the file name, and the LR is written as PNG together with a
line per drawn operation. ``--recipe NAME`` applies a fixed benchmark recipe instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command(name="degrade")(degrade_command)


def degrade_command(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files (the HR).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder (<stem>_lr.png), or a .png for one image.")
    ],
    overrides: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="A KEY=VALUE setting, e.g. degradation.second.noise_range=[1,5]."),
    ] = None,
    config: Annotated[
        str, typer.Option("--config", "-c", help="Preset or training YAML whose degradation section is used.")
    ] = "realesrnet",
    recipe: Annotated[
        Optional[str],
        typer.Option("--recipe", "-r", help="A fixed benchmark recipe (superres eval --degrade) instead."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random draws (with each file's name).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the drawn operations.")] = False,
) -> None:
    """Degrade images as training does (Real-ESRGAN's high-order model) and write their LR."""
    from superres.cli.guard import finished

    targets = _targets(inputs, output)
    for done, (source, target) in enumerate(targets):
        finished(f"{done} of {len(targets)} images degraded into {output}")
        lines = degrade_file(source, target, config, overrides or [], recipe, seed, overwrite)
        print(f"{source} -> {target}")
        if not quiet:
            for line in lines:
                print(f"  {line}")


def _targets(inputs: list[Path], output: Path) -> list[tuple[Path, Path]]:
    from superres.errors import ConfigError

    if len(inputs) == 1 and output.suffix.lower() == ".png":
        return [(inputs[0], output)]
    if output.suffix:
        raise ConfigError(f"{output}: with several images, -o is a folder (or give one image and a .png file)")
    return [(source, output / f"{source.stem}_lr.png") for source in inputs]


def degrade_file(
    source: Path, target: Path, config: str, overrides: list[str], recipe: str | None, seed: int, overwrite: bool
) -> list[str]:
    """Degrade one file into ``target`` (PNG, written atomically); returns the drawn operations."""
    import numpy as np

    from superres.errors import ConfigError, ImageError
    from superres.imageio import ImageData, check_target, read_image, write_image
    from superres.train import load_config

    check_target(source, target, overwrite)
    pixels = read_image(source).pixels
    if pixels.dtype != np.uint8:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = np.ascontiguousarray(pixels[..., :3])
    settings = load_config(config, overrides)
    scale = settings.model.scale
    if recipe is not None:
        from superres.train.degrade.recipes import get_recipe

        chosen = get_recipe(recipe)
        h, w = pixels.shape[0] - pixels.shape[0] % scale, pixels.shape[1] - pixels.shape[1] % scale
        lr, lines = chosen(pixels[:h, :w], source.name, scale), [f"recipe {chosen.name}: {chosen.description}"]
    else:
        from superres.train.degrade.pipeline import degrade_image

        if not settings.degradation.enabled:
            raise ConfigError(f"{config} has no degradations (degradation.enabled is false); try --config realesrnet")
        try:
            lr, lines = degrade_image(pixels, settings.degradation, scale, seed, source.name)
        except ValueError as exc:
            raise ImageError(f"{source}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(target, ImageData(pixels=lr, format="PNG"), overwrite=overwrite)
    return lines
