"""Test fixtures. Real data comes from ``../shared`` (beside the repository) through ``shared`` alone;
downloads come from ``loopback``, an HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

# Beside the repository; SUPERRES_SHARED points elsewhere (mutation testing runs the tests from a copy
# of the tree in mutants/, one folder deeper).
SHARED = Path(os.environ.get("SUPERRES_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real-data folder beside the repo (benchmarks, train, weights, reference_outputs)."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's many small convolutions on one thread.

    With tiny tensors, a second OpenMP thread buys little, and on a busy machine it can make the
    first one spin-wait for a descheduled partner (measured: 4× slower under load).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 serving the files in ``root``, the way download hosts do.

    It honours ``Range: bytes=N-`` (206 with ``Content-Range``) unless ``ranges`` is False, logs
    every request's path and Range header in ``requests``, and ``cut[name] = n`` makes the next
    response for ``name`` stop after ``n`` bytes of its body and close the connection.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ranges = True
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}
        handler = type("Handler", (_RangeHandler,), {"owner": self})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    owner: LoopbackServer

    def do_GET(self) -> None:
        name = unquote(urlparse(self.path).path).lstrip("/")
        wanted = self.headers.get("Range")
        self.owner.requests.append((name, wanted))
        path = self.owner.root / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", wanted or "") if self.owner.ranges else None
        start = int(match[1]) if match else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "text/html" if path.suffix == ".html" else "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        cut = self.owner.cut.pop(name, None)
        try:
            self.wfile.write(body if cut is None else body[:cut])  # HTTP/1.0: the connection closes after this
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (e.g. after a failed free-space check)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback(tmp_path: Path):
    """A :class:`LoopbackServer` serving ``tmp_path/www`` (no test reaches outside the machine)."""
    root = tmp_path / "www"
    root.mkdir()
    server = LoopbackServer(root)
    yield server
    server.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ×2 SRVGGNetCompact with 8 features (a few KB): the whole upscale path runs in milliseconds."""
    import torch

    from superres.archs import SRVGGNetCompact
    from superres.models.weights import save_network

    torch.manual_seed(0)
    hparams = {"num_feat": 8, "num_conv": 2, "upscale": 2}
    path = tmp_path_factory.mktemp("tiny_model") / "tiny_x2.safetensors"
    return save_network(path, SRVGGNetCompact(**hparams), "SRVGGNetCompact", hparams)


class Hang(BaseException):
    """Raised by ``time_limit``: not an Exception (nor an OSError, as TimeoutError is), so no ``except``
    in superres can swallow it."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def time_limit() -> Callable[[float], AbstractContextManager[None]]:
    """``with time_limit(seconds):`` fails the test when the block runs longer: unbounded work shows as
    a failure, not as a suite that never ends (POSIX: SIGALRM, main thread)."""
    return _time_limit


@pytest.fixture(scope="session")
def cpu_kernels():
    """The engine's compiled CPU kernels (superres.engine.kernels), built once for the whole session
    (~40 s the first time on a machine, then loaded from the user cache). Skips without a C++ compiler;
    where there is one, a failing build is a bug, not a skip."""
    import shutil

    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler to build the CPU kernels")
    from superres.engine.kernels import CpuKernels

    return CpuKernels.load()
