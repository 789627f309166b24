"""The page of ``superres serve`` in headless Chromium (Playwright driving Debian's chromium).

A real server (uvicorn, loopback, a free port) and a real browser: upload through the file input,
wait for the result, check its pixel size, move the before/after slider, zoom and pan, download one
and all, cancel a long job, and no console errors. The screenshots (light and dark) go to the test's
temporary folder, and into docs/ when SUPERRES_SCREENSHOTS=docs.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")

from PIL import Image

from superres.models import registry
from superres.web.app import Settings, create_app

ASSETS = Path(__file__).resolve().parents[1] / "superres" / "assets"
DOCS = Path(__file__).resolve().parents[1] / "docs"
# The flags a root CI machine with no network needs (no sandbox, no background connections).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    app = create_app(Settings(work_dir=tmp_path_factory.mktemp("serve") / "work"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no Chromium here (apt-get install chromium; .ci/run does)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium cannot start here: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


def _screenshot(page, name: str, tmp_path: Path, for_docs: bool = True) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if for_docs and os.environ.get("SUPERRES_SCREENSHOTS") == "docs":
        shutil.copyfile(path, DOCS / name)


def test_page_upscales_compares_downloads_and_cancels(server: str, browser, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = browser.new_page(viewport={"width": 1180, "height": 980})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server)
    bundled = [entry.name for entry in registry.MODELS if entry.bundled]  # nothing else is in the test's cache
    expect(page.locator("#model option")).to_have_count(len(bundled))
    expect(page.locator("#model")).to_have_value("superres-x4")

    # keyboard: the first stop is the native file input (Enter/Space open its picker in every browser),
    # and its visible label shows the focus. Whether a headless browser then opens a picker on Enter is the
    # browser's business, not the page's (it did not in one CI run), so the file goes in through the input.
    page.keyboard.press("Tab")
    assert page.evaluate("[document.activeElement.id, document.activeElement.type]") == ["files", "file"]
    assert page.evaluate("document.querySelector('label[for=files]').control.id") == "files"
    assert page.evaluate("getComputedStyle(document.querySelector('label[for=files]')).outlineStyle") == "solid"
    page.set_input_files("#files", str(ASSETS / "sample_lr.png"))  # 64×64, CC0
    job = page.locator(".job").first
    expect(job).to_have_attribute("data-state", "done", timeout=60_000)
    expect(job.locator(".detail")).to_contain_text("256×256")
    expect(page.locator("#status")).to_contain_text("sample_lr.png: done")

    # before / after: the slider clips the "before" layer; zoom and pan move both layers together
    job.locator(".compare").click()
    expect(page.locator("#viewer")).to_be_visible()
    page.wait_for_function("document.querySelector('#after').complete && document.querySelector('#after').naturalWidth")
    assert page.evaluate("document.querySelector('#after').naturalWidth") == 256
    split = page.locator("#split")
    split.focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    assert split.input_value() == "40"
    assert page.evaluate("document.querySelector('#before-layer').style.clipPath") == "inset(0px 60% 0px 0px)"
    viewport = page.locator("#viewport")
    viewport.focus()
    page.keyboard.press("1")  # one image pixel per screen pixel
    transforms = page.evaluate("[...document.querySelectorAll('.stage')].map(i => i.style.transform)")
    assert transforms[0] == transforms[1] and "scale(1)" in transforms[0]
    page.keyboard.press("+")
    box = viewport.bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 150, box["y"] + 170)
    page.mouse.up()
    after, before = page.evaluate("[...document.querySelectorAll('.stage')].map(i => i.style.transform)")
    assert after == before and "scale(1.5)" in after and after != transforms[0]
    page.keyboard.press("0")  # fit again, for the screenshots
    split.fill("50")
    split.dispatch_event("input")

    # download one, and all as a zip
    with page.expect_download() as download:
        job.locator(".download").click()
    assert download.value.suggested_filename == "sample_lr_x4.png"
    assert Image.open(download.value.path()).size == (256, 256)
    with page.expect_download() as download:
        page.locator("#download-all").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.namelist() == ["sample_lr_x4.png"]

    page.emulate_media(color_scheme="light")
    _screenshot(page, "web_light.png", tmp_path)
    page.emulate_media(color_scheme="dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(21, 23, 27)"
    _screenshot(page, "web_dark.png", tmp_path)

    # a long job (256 tiles), cancelled once it has started
    page.locator("summary").click()
    page.fill("#tile", "16")
    page.set_input_files("#files", str(ASSETS / "sample.png"))
    long = page.locator(".job").nth(1)
    expect(long.locator(".detail")).to_contain_text(re.compile(r"step \d+ of 256"), timeout=60_000)
    long.locator(".cancel").click()
    expect(long).to_have_attribute("data-state", "cancelled", timeout=30_000)  # not "done": it stopped early
    expect(long.locator(".download")).to_be_hidden()
    expect(long.locator(".remove")).to_be_visible()

    assert errors == []
    page.close()


def test_page_on_a_phone_errors_drop_and_paste(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server)
    sync_api.expect(page.locator("#model")).to_have_value("superres-x4")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    text = tmp_path / "notes.png"
    text.write_bytes(b"this is not an image\n")
    page.set_input_files("#files", [str(text), str(ASSETS / "sample_lr.png")])
    failed, done = page.locator(".job").nth(0), page.locator(".job").nth(1)
    sync_api.expect(failed).to_have_attribute("data-state", "failed")
    sync_api.expect(failed.locator(".detail")).to_contain_text("notes.png: not an image")
    sync_api.expect(done).to_have_attribute("data-state", "done", timeout=60_000)
    done.locator(".compare").click()
    sync_api.expect(page.locator("#viewport")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _screenshot(page, "web_phone.png", tmp_path, for_docs=False)

    # a file dropped on the drop zone, and an image pasted from the clipboard (as the browser hands them over)
    page.evaluate(
        """async () => {
        const canvas = Object.assign(document.createElement("canvas"), { width: 24, height: 16 });
        canvas.getContext("2d").fillRect(4, 4, 8, 8);
        const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
        const dropped = new DataTransfer();
        dropped.items.add(new File([blob], "dropped.png", { type: "image/png" }));
        document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dropped, bubbles: true }));
        const pasted = new DataTransfer();
        pasted.items.add(new File([blob], "image.png", { type: "image/png" }));
        document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted }));
    }"""
    )
    for index, name in ((2, "dropped.png"), (3, "pasted-")):
        job = page.locator(".job").nth(index)
        sync_api.expect(job.locator(".name")).to_contain_text(name)
        sync_api.expect(job).to_have_attribute("data-state", "done", timeout=60_000)
        sync_api.expect(job.locator(".detail")).to_contain_text("96×64")
    assert errors == []
    page.close()
