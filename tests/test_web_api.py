"""``superres serve``'s HTTP API, in process (Starlette's TestClient): every endpoint and every refusal.

The engine is the real one, with the bundled default model on small crops of Set5 / Set14.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

pytest.importorskip("starlette")
pytest.importorskip("multipart")
from starlette.testclient import TestClient

from superres.errors import ConfigError
from superres.imageio import ImageData, decode_image, write_image
from superres.web.app import Settings, create_app
from superres.web.catalog import ModelCache, ModelCatalog
from superres.web.jobs import JobStore

BASE = "http://127.0.0.1:8000"


def crop_png(shared: Path, size: tuple[int, int], name: str = "Set5/HR/baby.png") -> bytes:
    image = Image.open(shared / "benchmarks" / name).convert("RGB").crop((0, 0, *size))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def serve(tmp_path: Path, **settings) -> TestClient:
    return TestClient(create_app(Settings(work_dir=tmp_path / "work", **settings)), base_url=BASE)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serve(tmp_path) as client:
        yield client


@pytest.fixture(scope="module")
def small(shared: Path) -> bytes:
    return crop_png(shared, (40, 32))


def submit(client: TestClient, data: bytes, name: str = "photo.png", **fields) -> dict:
    response = client.post("/api/jobs", files={"image": (name, data, "image/png")}, data=fields)
    assert response.status_code == 202, response.text
    return response.json()


def wait(client: TestClient, job_id: str, until=("done", "failed", "cancelled"), timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get(f"/api/jobs/{job_id}").json()
        if info["state"] in until:
            return info
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {info['state']} after {timeout} s")


def error_of(response) -> str:
    return response.json()["error"]


# --------------------------------------------------------------------------------------------------
# Endpoints


def test_health_and_models(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["workers"] == 1 and health["jobs"]["queued"] == 0
    info = client.get("/api/models").json()
    bundled = next(m for m in info["models"] if m["name"] == "superres-x4")
    assert (bundled["arch"], bundled["scale"], bundled["source"]) == ("SRVGGNetCompact", 4, "bundled")
    assert info["default"] == "superres-x4" and "cpu" in info["devices"]
    assert info["formats"] == ["auto", "png", "jpg", "webp"] and info["limits"]["max_pixels"] == 64_000_000


def test_page_and_static_files_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<title>superres</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere


def test_job_runs_streams_progress_and_returns_the_result(client: TestClient, small: bytes) -> None:
    created = client.post("/api/jobs", files={"image": ("baby.png", small, "image/png")})
    assert created.status_code == 202
    job_id = created.json()["id"]
    assert created.headers["location"] == f"/api/jobs/{job_id}"

    with client.stream("GET", f"/api/jobs/{job_id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        states = [json.loads(line[6:]) for line in events.iter_lines() if line.startswith("data: ")]
    assert states[-1]["state"] == "done" and states[-1]["progress"] == {"done": 1, "total": 1}
    assert (states[-1]["width"], states[-1]["height"]) == (160, 128)

    result = client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert result.headers["x-image-size"] == "160x128"
    assert 'filename="baby_x4.png"' in result.headers["content-disposition"]
    assert Image.open(io.BytesIO(result.content)).size == (160, 128)

    # the same pixels as the library gives
    import superres

    expected = superres.load_model("superres-x4").upscale(Image.open(io.BytesIO(small)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(result.content))), np.asarray(expected))

    deleted = client.delete(f"/api/jobs/{job_id}")
    assert deleted.json()["deleted"] is True
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.get(f"/api/jobs/{job_id}/result").status_code == 404
    assert not list(client.app.state.store.work_dir.glob(f"{job_id}*"))


def test_upscale_answers_with_the_image_and_keeps_depth_alpha_icc_exif(
    client: TestClient, shared: Path, tmp_path: Path
) -> None:
    rgb = np.asarray(Image.open(io.BytesIO(crop_png(shared, (24, 20)))))
    alpha = np.tile(np.linspace(0, 65535, 24, dtype=np.uint16), (20, 1))[:, :, None]
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = np.concatenate([rgb.astype(np.uint16) * 257, alpha], axis=2)
    rgba16 = write_image(tmp_path / "rgba16.png", ImageData(pixels, icc_profile=icc)).read_bytes()
    response = client.post("/api/upscale", files={"image": ("rgba16.png", rgba16, "image/png")})
    assert response.status_code == 200, response.text
    out = decode_image(response.content)
    assert (out.width, out.height, out.channels, out.bit_depth) == (96, 80, 4, 16)
    assert out.icc_profile == icc

    exif = Image.Exif()
    exif[0x010F] = "superres-test-camera"  # Make
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", exif=exif.tobytes(), quality=95)
    response = client.post(
        "/api/upscale", files={"image": ("cam.jpg", jpeg.getvalue(), "image/jpeg")}, data={"outscale": "2"}
    )
    assert response.headers["content-type"] == "image/jpeg"
    assert 'filename="cam_x2.jpg"' in response.headers["content-disposition"]
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (48, 40) and image.getexif()[0x010F] == "superres-test-camera"

    sizes = [
        len(
            client.post(
                "/api/upscale",
                files={"image": ("a.png", rgba16, "image/png")},
                data={"format": "webp", "quality": str(q)},
            ).content
        )
        for q in (30, 95)
    ]
    assert sizes[0] < sizes[1]
    assert client.get("/api/health").json()["jobs"]["done"] == 0  # /api/upscale keeps nothing behind


def test_cancel_stops_a_running_job_between_tiles(client: TestClient, shared: Path) -> None:
    job = submit(client, crop_png(shared, (192, 192)), tile="16")  # 144 tiles
    running = wait(client, job["id"], until=("running",))
    while running["progress"]["done"] < 1:
        running = client.get(f"/api/jobs/{job['id']}").json()
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    cancelled = wait(client, job["id"])
    assert cancelled["state"] == "cancelled"
    assert cancelled["progress"]["done"] < cancelled["progress"]["total"] == 144
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 409
    assert not list(client.app.state.store.work_dir.glob(f"{job['id']}*"))


def test_cancel_a_queued_job_and_zip_the_results(client: TestClient, shared: Path, small: bytes) -> None:
    long = submit(client, crop_png(shared, (192, 192)), tile="16")
    queued = submit(client, small)
    assert client.delete(f"/api/jobs/{queued['id']}").json()["state"] == "cancelled"
    client.delete(f"/api/jobs/{long['id']}")
    assert wait(client, long["id"])["state"] == "cancelled"

    done = [submit(client, small, name="same.png")["id"] for _ in range(2)]
    for job_id in done:
        assert wait(client, job_id)["state"] == "done"
    archive = client.get("/api/zip", params={"ids": ",".join([*done, "unknown"])})
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as names:
        assert sorted(names.namelist()) == ["same_x4-2.png", "same_x4.png"]
        assert Image.open(names.open("same_x4.png")).size == (160, 128)
    assert client.get("/api/zip", params={"ids": "unknown"}).status_code == 422


def test_uploaded_weights_become_a_model_and_blend_by_strength(client: TestClient, shared: Path, small: bytes) -> None:
    weights = (shared / "weights" / "realesr-animevideov3.pth").read_bytes()
    uploaded = client.post("/api/weights", files={"weights": ("anime.pth", weights)})
    assert uploaded.status_code == 201, uploaded.text
    anime = uploaded.json()
    assert (anime["arch"], anime["scale"], anime["source"], anime["label"]) == (
        "SRVGGNetCompact",
        4,
        "upload",
        "anime.pth",
    )
    assert "superres-x4" in anime["partners"]
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert anime["name"] in models["superres-x4"]["partners"]

    def run(**fields) -> np.ndarray:
        job = submit(client, small, **fields)
        assert wait(client, job["id"])["state"] == "done"
        return np.asarray(Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result").content)), np.int16)

    own, other = run(), run(model=anime["name"])
    assert np.array_equal(run(partner=anime["name"], strength="0"), own)
    assert np.array_equal(run(partner=anime["name"], strength="1"), other)
    half = run(partner=anime["name"], strength="0.5")
    assert np.abs(half - own).mean() > 0.5 and np.abs(half - other).mean() > 0.5


# --------------------------------------------------------------------------------------------------
# Refusals, and the server keeps serving after each


def test_foreign_host_is_refused(client: TestClient) -> None:
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example:8000", "localhost:9999", "[::2]:8000"):
        response = client.get("/api/health", headers={"host": host})
        assert response.status_code == 421, host
        assert "localhost" in error_of(response)
    assert client.post("/api/jobs", headers={"host": "evil.example:8000"}).status_code == 421
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/api/health", headers={"host": host}).status_code == 200, host


def test_foreign_origin_is_refused(client: TestClient, small: bytes) -> None:
    job = submit(client, small)
    for origin in ("http://evil.example", "http://localhost:9999", "null", "https://127.0.0.1.evil.example:8000"):
        refused = client.post("/api/jobs", headers={"origin": origin}, files={"image": ("a.png", small)})
        assert refused.status_code == 403 and "Origin" in error_of(refused), origin
        assert client.delete(f"/api/jobs/{job['id']}", headers={"origin": origin}).status_code == 403
    own = client.post("/api/jobs", headers={"origin": "http://localhost:8000"}, files={"image": ("a.png", small)})
    assert own.status_code == 202
    assert wait(client, job["id"])["state"] == "done"  # the refused DELETE did not cancel it


def test_token_is_required_when_set(tmp_path: Path) -> None:
    with serve(tmp_path, token="s3cret") as client:
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/health", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/?token=wrong", follow_redirects=False).status_code == 401
        opened = client.get("/?token=s3cret", follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        cookie = opened.headers["set-cookie"].lower()
        assert "superres_token=s3cret" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/api/health").status_code == 200  # the cookie, from now on


def test_uploads_over_the_limit_are_refused_before_reading(tmp_path: Path, small: bytes) -> None:
    with serve(tmp_path, max_upload_mb=0.01) as client:  # 10 KiB
        big = bytes(20 << 10)
        refused = client.post("/api/jobs", files={"image": ("big.png", big)})
        assert refused.status_code == 413 and "over the limit of 0.01 MB" in error_of(refused)
        assert client.post("/api/weights", files={"weights": ("w.pth", big)}).status_code == 413
        assert submit(client, small)["state"] in ("queued", "running")


def test_a_150_mb_upload_is_cut_off_at_the_limit_while_streaming(tmp_path: Path) -> None:
    """No Content-Length (chunked): the body is read chunk by chunk and the server stops at 100 MB."""
    app = create_app(Settings(work_dir=tmp_path / "work"))
    chunk, sent = b"\0" * (1 << 20), 0
    boundary = b"superres-test"
    head = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="huge.png"\r\n\r\n'

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        body = head if sent == 1 else chunk
        return {"type": "http.request", "body": body, "more_body": sent < 151}

    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/jobs",
        "raw_path": b"/api/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"multipart/form-data; boundary=" + boundary),
            (b"transfer-encoding", b"chunked"),
        ],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    asyncio.run(app(scope, receive, send))
    assert messages[0]["status"] == 413
    assert 100 <= sent - 1 <= 101  # MB read: up to the limit, then nothing more
    assert b"over the limit of 100 MB" in messages[1]["body"]
    app.state.store.close()


def test_bad_images_are_refused_with_the_right_status(client: TestClient, shared: Path, small: bytes) -> None:
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, "PNG")  # 100 Mpx in 12 KB
    start = time.perf_counter()
    refused = client.post("/api/jobs", files={"image": ("bomb.png", bomb.getvalue())})
    assert refused.status_code == 413 and "bomb.png: 10000×10000 is 100.0 Mpx" in error_of(refused)
    assert time.perf_counter() - start < 2.0  # from the header: nothing was decoded

    truncated = client.post("/api/jobs", files={"image": ("cut.png", small[: len(small) // 2])})
    assert truncated.status_code == 422 and "cut.png: damaged or truncated" in error_of(truncated)
    text = client.post("/api/upscale", files={"image": ("notes.png", b"hello, this is text\n" * 10)})
    assert text.status_code == 422 and "notes.png: not an image" in error_of(text)
    assert client.post("/api/jobs", files={"image": ("empty.png", b"")}).status_code == 422
    assert client.get("/api/health").json()["jobs"] == {
        s: 0 for s in ("queued", "running", "done", "failed", "cancelled")
    }
    assert wait(client, submit(client, small)["id"])["state"] == "done"  # still serving


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"model": "/etc/passwd"}, "unknown model '/etc/passwd'"),
        ({"model": "RealESRGAN_x4plus"}, "unknown model"),  # known, but not on this machine: never downloaded
        ({"strength": "0.5"}, "send the partner field too"),
        ({"partner": "superres-x4"}, "cannot be blended with superres-x4"),
        ({"outscale": "abc"}, "outscale must be a number"),
        ({"outscale": "100"}, "outscale must lie in 0.01…16"),
        ({"format": "gif"}, "format must be one of"),
        ({"quality": "0"}, "quality must lie in 1…100"),
        ({"tile": "-1"}, "tile must lie in"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"device": "tpu"}, "device must be"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_fields_are_refused(client: TestClient, small: bytes, fields: dict, message: str) -> None:
    response = client.post("/api/jobs", files={"image": ("a.png", small)}, data=fields)
    assert response.status_code == 422 and message in error_of(response)


def test_missing_file_and_unknown_job(client: TestClient) -> None:
    assert "multipart field 'image'" in error_of(client.post("/api/jobs", data={"model": "superres-x4"}))
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.delete("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/events").status_code == 404


def test_bad_weights_are_refused_without_server_paths(client: TestClient) -> None:
    response = client.post("/api/weights", files={"weights": ("model.pth", b"not a checkpoint at all")})
    assert response.status_code == 422
    assert error_of(response).startswith("model.pth: ")  # as named by the client, not as stored
    assert str(client.app.state.store.work_dir) not in error_of(response)
    wrong = client.post("/api/weights", files={"weights": ("model.bin", b"x")})
    assert wrong.status_code == 422 and "weights files end in" in error_of(wrong)
    assert {m["source"] for m in client.get("/api/models").json()["models"]} == {"bundled"}  # nothing uploaded


def test_a_failing_job_fails_alone(client: TestClient, small: bytes) -> None:
    bad = submit(client, small, device="cuda:99")
    good = submit(client, small)
    failed = wait(client, bad["id"])
    assert failed["state"] == "failed" and "cuda:99" in failed["error"]
    assert client.get(f"/api/jobs/{bad['id']}/result").status_code == 409
    assert wait(client, good["id"])["state"] == "done"


def test_two_workers_share_one_model_and_give_the_same_pixels(tmp_path: Path, shared: Path) -> None:
    images = [crop_png(shared, (40, 32), name) for name in ("Set5/HR/baby.png", "Set5/HR/bird.png")]
    with serve(tmp_path, workers=2) as client:
        jobs = [submit(client, images[i % 2], tile="16")["id"] for i in range(4)]
        results = []
        for job_id in jobs:
            assert wait(client, job_id)["state"] == "done"
            results.append(client.get(f"/api/jobs/{job_id}/result").content)
        assert len(client.app.state.store.models._loaded) == 1
    assert results[0] == results[2] and results[1] == results[3] and results[0] != results[1]


def test_queue_is_bounded(tmp_path: Path, shared: Path, small: bytes) -> None:
    with serve(tmp_path, max_queue=1) as client:
        long = submit(client, crop_png(shared, (192, 192)), tile="16")
        full = client.post("/api/jobs", files={"image": ("a.png", small)})
        assert full.status_code == 503 and "try again later" in error_of(full)
        client.delete(f"/api/jobs/{long['id']}")
        assert wait(client, long["id"])["state"] == "cancelled"
        assert submit(client, small)["state"] in ("queued", "running")


def test_client_file_names_never_reach_the_filesystem(client: TestClient, small: bytes) -> None:
    job = submit(client, small, name="../../etc/evil name;rm.png")
    assert job["name"] == "evil name_rm.png"
    assert wait(client, job["id"])["download_name"] == "evil name_rm_x4.png"
    work = client.app.state.store.work_dir
    assert sorted(p.name for p in work.iterdir()) == [".superres-serve", f"{job['id']}.png"]
    assert not (work.parent.parent / "etc").exists()


# --------------------------------------------------------------------------------------------------
# The store: expiry and the work folder


def test_results_expire_and_the_work_folder_is_emptied_on_start(tmp_path: Path, small: bytes) -> None:
    work = tmp_path / "work"
    with serve(tmp_path, keep_minutes=1.0) as client:
        job = submit(client, small)
        wait(client, job["id"])
        store = client.app.state.store
        assert store.expire(now=time.time() + 30) == 0
        assert store.expire(now=time.time() + 61) == 1
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        assert not list(work.glob(f"{job['id']}*"))
        (work / "left-over.png").write_bytes(b"x")
    assert not work.exists()  # removed when the server stops

    work.mkdir()
    (work / ".superres-serve").touch()
    (work / "left-over.png").write_bytes(b"x")
    store = JobStore(work, ModelCache(ModelCatalog(work / "weights")))
    assert sorted(p.name for p in work.iterdir()) == [".superres-serve"]
    store.close()

    foreign = tmp_path / "someone-elses"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(ConfigError, match="was not made by superres serve"):
        JobStore(foreign, ModelCache(ModelCatalog(foreign / "weights")))
    assert (foreign / "thesis.tex").read_text() == "keep me"


# --------------------------------------------------------------------------------------------------
# The command


def test_serve_refuses_to_bind_off_loopback_without_a_token() -> None:
    from typer.testing import CliRunner

    from superres.cli import app

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 1
    assert "pass --token" in result.output


def test_serve_on_a_port_in_use_leaves_that_servers_results_alone() -> None:
    import socket

    from typer.testing import CliRunner

    from superres.cli import app
    from superres.web.jobs import default_work_dir

    with socket.socket() as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen()
        port = other_server.getsockname()[1]
        work = default_work_dir(port)
        work.mkdir()
        (work / ".superres-serve").touch()
        (work / "result.png").write_bytes(b"theirs")
        try:
            result = CliRunner().invoke(app, ["serve", "--port", str(port)])
            assert result.exit_code == 1 and "is another server there?" in result.output
            assert (work / "result.png").read_bytes() == b"theirs"
        finally:
            shutil.rmtree(work)


def test_the_server_module_imports_no_torch() -> None:
    """It starts in about a second: torch comes with the first job."""
    import subprocess
    import sys

    code = "import sys, superres.web.app, superres.cli.serve; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert out.stdout.strip() == "False"
