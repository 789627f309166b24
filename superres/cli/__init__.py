"""The ``superres`` command line: a thin skin over the library, one module per command group.

Each command module imports its heavy dependencies (torch, the engine) inside the command
function, so ``superres --help`` stays fast. Every command runs inside the guard of
:mod:`superres.cli.guard`: it ends in its result or in one line ``error: …`` with a non-zero exit;
commands raise :class:`~superres.errors.SuperresError` for what the user can fix and let the guard print it.
"""

from __future__ import annotations

import typer

from superres.cli import data, degrade, evaluate, export, info, models, score, serve, train, upscale
from superres.cli.guard import DEBUG_FLAG, GuardedGroup

app = typer.Typer(
    cls=GuardedGroup,
    name="superres",
    help="Single-image super-resolution: upscale, evaluate, train, interpolate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(cls=GuardedGroup)  # a callback's own cls would replace the app's
def _options(
    debug: bool = typer.Option(False, DEBUG_FLAG, help="On an error, also print the traceback (anywhere on the line)."),
) -> None:
    """Single-image super-resolution: upscale, evaluate, train, interpolate."""
    # --debug is taken off the command line by the guard (GuardedGroup.main) wherever it stands;
    # declared here so that `superres --help` shows it.


# The order here is the order of `superres --help`.
for module in (upscale, info, models, evaluate, score, data, train, degrade, export, serve):
    module.register(app)


def main() -> None:
    app()
