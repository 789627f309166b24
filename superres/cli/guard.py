"""The top-level guard: every command ends in its result or in one line ``error: …`` and a non-zero exit.

It wraps the invocation of the whole command group (:class:`GuardedGroup`, the ``cls`` of the typer
app), so a command added later is covered without doing anything:

* a :class:`~superres.errors.SuperresError` → ``error: <its message>``, exit 1;
* a usage error (unknown option, missing argument) → ``error: <the message> (see 'superres CMD --help')``, exit 2;
* Ctrl-C → ``interrupted: <what was finished>`` (see :func:`finished`), exit 130;
* a missing optional dependency → ``error: … pip install "superres[extra]"``, exit 1;
* out of memory, a full disk, … → ``error: <what the system said>``, exit 1;
* anything else (a bug) → ``error: unexpected <type>: <message>`` and a hint to rerun with ``--debug``, exit 1.

Every float option and argument of every command accepts finite numbers only: ``nan`` and ``inf``
parse as floats, and would otherwise reach the library as sizes and factors.

``--debug`` anywhere on the command line (or ``SUPERRES_DEBUG=1``) adds the traceback. The standard
streams are made unable to fail on characters their encoding lacks (a non-UTF-8 terminal, a file name
that is not valid UTF-8): such characters are written as backslash escapes.
"""

from __future__ import annotations

import errno
import math
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from superres.errors import SuperresError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEBUG_FLAG = "--debug"
DEBUG_ENV = "SUPERRES_DEBUG"

# typer vendors its own copy of click in recent versions; find its exception classes through public names
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

_finished: str | None = None


def finished(summary: str) -> None:
    """Record what the running command has finished so far, in words, for the line Ctrl-C prints:
    e.g. ``"3 of 10 images written to out/; rerun to do the rest (written files are skipped)"``."""
    global _finished
    _finished = summary


class GuardedGroup(TyperGroup):
    """The command group with the guard around every invocation (``superres …`` and ``CliRunner``)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _finite_floats(self)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _finished
        args = list(sys.argv[1:] if args is None else args)
        debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
        if DEBUG_FLAG in args[: args.index("--") if "--" in args else len(args)]:
            debug = True
            args.remove(DEBUG_FLAG)
        _escape_unencodable_output()
        _finished = None
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
            if code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt inside the command into Exit(130)
                _say(_interrupted())
        except BaseException as exc:  # noqa: BLE001 — the point of the guard
            code = _report(exc, debug)
        if standalone_mode:
            sys.exit(code)
        return code


def _finite_floats(command: Any) -> None:
    """Make every subcommand refuse nan and ±inf in its float parameters, checked once they are parsed
    (on ``ctx.params``, so it does not depend on how typer builds its parameter types)."""
    for sub in getattr(command, "commands", {}).values():
        _finite_floats(sub)
        sub.invoke = _checking_floats(sub, sub.invoke)


def _checking_floats(command: Any, invoke: Any) -> Any:
    def checked(ctx: Any) -> Any:
        for param in command.params:
            values = ctx.params.get(param.name)
            for value in values if isinstance(values, (list, tuple)) else (values,):
                if isinstance(value, float) and not math.isfinite(value):
                    raise typer.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)
        return invoke(ctx)

    return checked


def _report(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as one line (after its traceback with ``--debug``); returns the exit code."""
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `superres` alone: the help, not an error
        exc.show()  # type: ignore[attr-defined]
        return 0
    if debug and not isinstance(exc, (KeyboardInterrupt, _UsageError)):
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, SuperresError):
        _say(f"error: {exc}")
        return EXIT_ERROR
    if isinstance(exc, _UsageError):
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "superres"
        _say(f"error: {exc.format_message()} (see '{command} --help')")
        return int(exc.exit_code)
    if isinstance(exc, _ClickException):
        _say(f"error: {exc.format_message()}")
        return int(exc.exit_code)
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        _say(_interrupted())
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:  # `superres … | head`: the reader left
        _silence_broken_pipe()
        return EXIT_ERROR
    hint = "" if debug else f" (rerun with {DEBUG_FLAG} to see where)"
    missing = _missing_module(exc)
    if missing is not None:
        _say(f"error: {_install_hint(missing)}")
        return EXIT_ERROR
    if isinstance(exc, MemoryError):
        _say(f"error: out of memory{_so_far()}; use smaller inputs or tiles (--tile), or free memory")
        return EXIT_ERROR
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        _say(f"error: {exc.strerror or exc}{where}{_so_far()}")
        return EXIT_ERROR
    _say(f"error: unexpected {type(exc).__name__}: {_first_line(exc)}{_so_far()} — a bug, please report it{hint}")
    return EXIT_ERROR


def _interrupted() -> str:
    return f"interrupted: {_finished}" if _finished else "interrupted before anything was finished"


def _so_far() -> str:
    return f" ({_finished})" if _finished else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _say(line: str) -> None:
    """One line on stderr, whatever the message held."""
    sys.stdout.flush()
    print(" ".join(line.split("\n")), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- missing extras


def _missing_module(exc: BaseException) -> str | None:
    """The top-level name of a third-party module whose absence caused ``exc`` (following its chain)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            top = current.name.split(".")[0]
            return None if top == "superres" else top  # a module of our own missing is a bug, not an extra
        current = current.__cause__ or current.__context__
    return None


def _install_hint(module: str) -> str:
    extra = _extra_providing(module)
    if extra is not None:
        return f'this needs {module}, which is not installed: pip install "superres[{extra}]"'
    return f"this needs the Python package {module}, which is not installed: pip install {module}"


def _extra_providing(module: str) -> str | None:
    """The optional extra of superres (``[project.optional-dependencies]``) that installs ``module``."""
    from importlib import metadata

    try:
        requirements = metadata.requires("superres") or []
    except metadata.PackageNotFoundError:
        return None
    names = {_normalise(module)} | {_normalise(d) for d in metadata.packages_distributions().get(module, [])}
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*).*;.*extra\s*==\s*[\"']([^\"']+)[\"']", requirement)
        if match and _normalise(match[1]) in names:
            return match[2]
    return None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------------------------- streams


def _escape_unencodable_output() -> None:
    """Characters the terminal's encoding lacks become backslash escapes instead of a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured: leave it
                pass


def _silence_broken_pipe() -> None:
    """Point stdout at devnull so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
