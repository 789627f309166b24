"""Load check of ``superres serve`` (not a test): N clients × M uploads on loopback.

    python bench/bench_web.py                                 # 20 clients × 5 uploads of 64×64 crops
    python bench/bench_web.py --clients 4 --uploads 10 --size 128 --workers 2
    python bench/bench_web.py --url http://127.0.0.1:8000     # a server you started (no RSS then)

Starts ``python -m superres serve`` on a free loopback port (unless ``--url``), with the bundled
default model. Each client is a thread that, upload after upload, does what the page does: POST
/api/jobs, follow GET /api/jobs/{id}/events until the job ends, GET the result, DELETE the job. The
crops are different 64×64 windows of the bundled sample (CC0). Reported: every job's outcome,
throughput (images/s over the whole run), latency percentiles (POST to last byte of the result),
and the server's RSS after start, after one warm-up job (model loaded) and at its peak (VmHWM).

Then the refusals of the issue, sent to the same server, each followed by a health check: a
decompression bomb, a truncated PNG, a text file named .png, a 150 MB upload (with Content-Length,
and chunked), a foreign Host and a foreign Origin. Only loopback is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "superres" / "assets" / "sample.png"
BOUNDARY = "superres-bench-boundary"


def multipart(data: bytes, name: str, field: str = "image") -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n\r\n'
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


class Client:
    """HTTP/1.1 to one server on loopback, with the headers a same-origin page would send."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        assert self.host in ("127.0.0.1", "localhost", "::1"), "this bench only talks to loopback"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        all_headers = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if body is not None and "Content-Type" not in all_headers:
            all_headers["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response, connection

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        response, connection = self.request(method, path, body, headers)
        try:
            return response.status, response.read()
        finally:
            connection.close()

    def one_job(self, data: bytes, name: str) -> tuple[str, float, tuple[int, int] | None]:
        """(final state, seconds from POST to the result's last byte, result size)."""
        start = time.perf_counter()
        status, body = self.call("POST", "/api/jobs", multipart(data, name))
        if status != 202:
            return f"refused {status}: {body[:100]!r}", time.perf_counter() - start, None
        job_id = json.loads(body)["id"]
        response, connection = self.request("GET", f"/api/jobs/{job_id}/events")
        state = "?"
        for line in response:
            if line.startswith(b"data: "):
                state = json.loads(line[6:])["state"]
                if state in ("done", "failed", "cancelled"):
                    break
        connection.close()
        size = None
        if state == "done":
            status, image = self.call("GET", f"/api/jobs/{job_id}/result")
            size = Image.open(io.BytesIO(image)).size if status == 200 else None
        seconds = time.perf_counter() - start
        self.call("DELETE", f"/api/jobs/{job_id}")
        return state, seconds, size


def crops(count: int, side: int) -> list[bytes]:
    source = Image.open(SAMPLE).convert("RGB")
    out = []
    for index in range(count):
        x = (index * 37) % (source.width - side + 1)
        y = (index * 53) % (source.height - side + 1)
        buffer = io.BytesIO()
        source.crop((x, y, x + side, y + side)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(workers: int, threads: int | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "superres", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--threads", str(threads)] if threads else []
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if Client(url).call("GET", "/api/health")[0] == 200:
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not start: {process.stdout.read() if process.stdout else ''}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load(url: str, clients: int, uploads: int, side: int) -> dict:
    images = crops(clients * uploads, side)
    results: list[tuple[str, float, tuple[int, int] | None]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        me = Client(url)
        for upload in range(uploads):
            outcome = me.one_job(images[index * uploads + upload], f"c{index}-{upload}.png")
            with lock:
                results.append(outcome)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    latencies = [seconds for _, seconds, _ in results]
    done = sum(state == "done" and size == (side * 4, side * 4) for state, _, size in results)
    return {
        "jobs": len(results),
        "done_right_size": done,
        "other_outcomes": sorted({state for state, _, _ in results if state != "done"}),
        "wall_s": round(wall, 2),
        "images_per_s": round(len(results) / wall, 2),
        "latency_s": {f"p{q}": round(percentile(latencies, q), 2) for q in (50, 90, 99)}
        | {"max": round(max(latencies), 2), "median": round(statistics.median(latencies), 2)},
    }


def refusals(url: str) -> list[tuple[str, int, bool]]:
    """(what, status, server still healthy after it) for each bad request of the issue."""
    client = Client(url)
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, "PNG")
    good = crops(1, 64)[0]
    checks: list[tuple[str, int, bool]] = []

    def healthy() -> bool:
        return client.call("GET", "/api/health")[0] == 200

    cases = [
        (
            "decompression bomb (10000×10000 PNG, 12 KB)",
            lambda: client.call("POST", "/api/jobs", multipart(bomb.getvalue(), "bomb.png")),
        ),
        ("truncated PNG", lambda: client.call("POST", "/api/jobs", multipart(good[: len(good) // 2], "cut.png"))),
        ("text file named .png", lambda: client.call("POST", "/api/jobs", multipart(b"just text\n" * 20, "notes.png"))),
        (
            "foreign Host (DNS rebinding)",
            lambda: client.call("GET", "/api/health", headers={"Host": "evil.example:80"}),
        ),
        (
            "foreign Origin",
            lambda: client.call("POST", "/api/jobs", multipart(good, "a.png"), {"Origin": "http://evil.example"}),
        ),
        ("150 MB upload, Content-Length", lambda: big_upload(client, chunked=False)),
        ("150 MB upload, chunked", lambda: big_upload(client, chunked=True)),
    ]
    for what, send in cases:
        status, _ = send()
        checks.append((what, status, healthy()))
    return checks


def big_upload(client: Client, chunked: bool) -> tuple[int, bytes]:
    chunk = b"\0" * (1 << 20)
    connection = http.client.HTTPConnection(client.host, client.port, timeout=60)
    headers = {"Host": f"127.0.0.1:{client.port}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="huge.png"\r\n\r\n'.encode()
    try:
        if chunked:
            connection.request(
                "POST", "/api/jobs", body=iter([head, *[chunk] * 150]), headers=headers, encode_chunked=True
            )
        else:
            connection.putrequest("POST", "/api/jobs", skip_host=True)
            for key, value in {**headers, "Content-Length": str(150 * len(chunk) + len(head))}.items():
                connection.putheader(key, value)
            connection.endheaders()
            connection.send(head)
            for _ in range(150):
                connection.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending: what it should do
    response = connection.getresponse()
    try:
        return response.status, response.read()
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--uploads", type=int, default=5, help="uploads per client, one after another")
    parser.add_argument("--size", type=int, default=64, help="side of the square crops, pixels")
    parser.add_argument("--workers", type=int, default=1, help="--workers of the server this starts")
    parser.add_argument("--threads", type=int, help="--threads of the server this starts (default: torch's)")
    parser.add_argument("--url", help="a running server on loopback instead of starting one")
    args = parser.parse_args()

    process, url = (None, args.url) if args.url else start_server(args.workers, args.threads)
    try:
        memory = {}
        if process:
            memory["rss_after_start_mb"] = round(rss_mb(process.pid, "VmRSS"), 1)
        warm = Client(url).one_job(crops(1, args.size)[0], "warm-up.png")
        assert warm[0] == "done", warm
        if process:
            memory["rss_after_warm_up_mb"] = round(rss_mb(process.pid, "VmRSS"), 1)
        result = load(url, args.clients, args.uploads, args.size)
        if process:
            memory["peak_rss_mb"] = round(rss_mb(process.pid, "VmHWM"), 1)
        checks = refusals(url)
        if process:
            memory["peak_rss_after_refusals_mb"] = round(rss_mb(process.pid, "VmHWM"), 1)
    finally:
        if process:
            process.terminate()
            process.wait(10)

    load_average = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"## superres serve: {args.clients} clients × {args.uploads} uploads, {args.size}×{args.size} → ×4, "
        f"--workers {args.workers}, --threads {args.threads or 'default'}, {os.cpu_count()} CPUs, load {load_average}\n"
    )
    print("| jobs | done (right size) | wall s | images/s | p50 s | p90 s | p99 s | max s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    latency, peak = result["latency_s"], memory.get("peak_rss_mb", "–")
    print(
        f"| {result['jobs']} | {result['done_right_size']} | {result['wall_s']} | {result['images_per_s']} | "
        f"{latency['p50']} | {latency['p90']} | {latency['p99']} | {latency['max']} | {peak} |\n"
    )
    print("| refused request | status | server healthy after |")
    print("|---|---:|---|")
    for what, status, healthy in checks:
        print(f"| {what} | {status} | {'yes' if healthy else 'NO'} |")
    print()
    print(json.dumps({"load": result, "memory": memory, "refusals": checks}))


if __name__ == "__main__":
    main()
