"""The ``superres`` command line: a thin skin over the library, one module per command group.

Each command module imports its heavy dependencies (torch, the engine) inside the command
function, so ``superres --help`` stays fast.
"""

from __future__ import annotations

import typer

from superres.cli import data, degrade, evaluate, export, info, models, serve, train, upscale

app = typer.Typer(
    name="superres",
    help="Single-image super-resolution: upscale, evaluate, train, interpolate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The order here is the order of `superres --help`.
for module in (upscale, info, models, evaluate, data, train, degrade, export, serve):
    module.register(app)


def main() -> None:
    app()
