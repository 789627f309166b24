"""``superres serve``: the web page and HTTP API on this machine (``pip install "superres[web]"``)."""

from __future__ import annotations

import secrets
import socket
import threading
import time
import webbrowser
from typing import Annotated, NoReturn, Optional

import typer


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on. Anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest upload (request body).")] = 100.0,
    max_pixels: Annotated[
        Optional[int],
        typer.Option("--max-pixels", help="Largest input in pixels, checked before decoding (default 64,000,000)."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Jobs run at the same time.")] = 1,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", help="CPU threads for the network (default: torch's, shared among the workers)."),
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option("--token", help="Secret that clients must send; 'auto' makes one. Required off loopback."),
    ] = None,
    keep_minutes: Annotated[
        float, typer.Option("--keep-minutes", help="How long finished results are kept (all go when it stops).")
    ] = 60.0,
) -> None:
    """Serve the upscaling page and its HTTP API (results are kept in a private temporary folder)."""
    try:
        import uvicorn

        from superres.web.app import Settings, create_app
        from superres.web.guards import WILDCARDS, is_loopback
        from superres.web.jobs import default_work_dir
    except ImportError as exc:
        _fail(f"superres serve needs the web extra ({exc.name} is missing): pip install 'superres[web]'")
    from superres.errors import SuperresError
    from superres.imageio import DEFAULT_MAX_PIXELS

    if workers < 1 or max_upload_mb <= 0 or keep_minutes <= 0 or (threads is not None and threads < 1):
        _fail("--workers, --threads, --max-upload-mb and --keep-minutes must be positive")
    if token == "auto":
        token = secrets.token_urlsafe(18)
    if not is_loopback(host):
        if not token:
            _fail(
                f"--host {host} makes the server reachable from other machines; pass --token SECRET "
                "(or --token auto) so that only those you give it to can use it"
            )
        typer.echo(f"warning: listening on {host}: anyone who can reach it and has the token can use it", err=True)
    if threads is not None or workers > 1:
        import torch

        torch.set_num_threads(threads or max(1, torch.get_num_threads() // workers))  # workers share the cores
    listener = _listen(host, port)  # before the work folder is emptied: a port in use is another server's
    port = listener.getsockname()[1]
    try:
        settings = Settings(
            host=host,
            token=token,
            max_upload_mb=max_upload_mb,
            max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
            workers=workers,
            keep_minutes=keep_minutes,
            work_dir=default_work_dir(port),
        )
        app = create_app(settings)
    except SuperresError as exc:
        _fail(str(exc))

    # the page's address: loopback is always answered, whatever the server is bound to
    shown = host if not (is_loopback(host) or host in WILDCARDS) else "localhost"
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/" + (f"?token={token}" if token else "")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            typer.echo(f"superres serve: {url}  (results kept {keep_minutes:g} min; Ctrl+C stops)")
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (``--port 0``: a free one), or one clear line and exit 1."""
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        _fail(f"cannot listen on {host}: {exc.strerror or exc}")
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        _fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another server there? Try another --port")
    return listener


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
