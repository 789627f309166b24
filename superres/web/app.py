"""The ASGI application: the page, and the HTTP API under it (Starlette; run by uvicorn).

    GET    /                          the page (static/index.html; app.js and style.css under /static)
    GET    /api/health                {"status": "ok", "version", "workers", "jobs": {state: count}}
    GET    /api/models                the models to pick from, devices, precisions, formats, limits
    POST   /api/weights               multipart "weights": a weights file to offer as a model
    POST   /api/jobs                  multipart "image" + fields (FIELDS) → 202 {"id", "state", …}
    GET    /api/jobs/{id}             state, progress, error, output size, time
    GET    /api/jobs/{id}/events      the same, as server-sent events, until the job ends
    GET    /api/jobs/{id}/result      the upscaled image (as a download)
    DELETE /api/jobs/{id}             cancel a queued or running job; delete a finished one
    POST   /api/upscale               like POST /api/jobs, but answers with the image itself
    GET    /api/zip?ids=a,b           the results of several jobs in one zip

Starlette rather than FastAPI: FastAPI's ``/docs`` page loads Swagger UI from a CDN, and this
server loads nothing from elsewhere; the API is documented here and in the README.

Errors are ``{"error": "one line"}`` with 404 (no such job), 409 (not finished), 413 (upload or
pixel count over the limit), 422 (bad field, not an image, damaged image, bad weights) or 503
(queue full); the refusals of :mod:`superres.web.guards` come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from superres import __version__
from superres.errors import ConfigError, PixelLimitError, SuperresError
from superres.imageio import DEFAULT_MAX_PIXELS, decode_image
from superres.models.registry import DEFAULT_MODEL
from superres.web.catalog import ModelCache, ModelCatalog, safe_label, strength_partners
from superres.web.guards import Guard, Policy, allowed_hosts
from superres.web.jobs import FINISHED, Job, JobOptions, JobState, JobStore, QueueFull

STATIC = Path(__file__).resolve().parent / "static"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
FORMATS = {"auto": None, "png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
FIELDS = ("model", "partner", "strength", "outscale", "format", "quality", "tile", "precision", "device")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
# Uploads decoded at once to check them: a few 64-Mpx images are already gigabytes.
_CHECKS_AT_ONCE = 2


@dataclass(frozen=True)
class Settings:
    """What ``superres serve`` sets; the defaults are its defaults."""

    host: str = "127.0.0.1"
    token: str | None = None
    max_upload_mb: float = 100.0
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    workers: int = 1
    keep_minutes: float = 60.0
    max_queue: int = 100
    work_dir: Path | None = None  # None: a fresh temporary folder
    default_model: str = DEFAULT_MODEL


def create_app(settings: Settings = Settings()) -> Starlette:
    work_dir = settings.work_dir or Path(tempfile.mkdtemp(prefix="superres-serve-"))
    catalog = ModelCatalog(work_dir / "weights")
    store = JobStore(
        work_dir, ModelCache(catalog), settings.workers, settings.keep_minutes, settings.max_queue, settings.max_pixels
    )
    api = _Api(settings, catalog, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(store.close)

    policy = Policy(allowed_hosts(settings.host), settings.token, int(settings.max_upload_mb * 2**20))
    app = Starlette(
        routes=[
            Route("/", api.page),
            Route("/api/health", api.health),
            Route("/api/models", api.models),
            Route("/api/weights", api.upload_weights, methods=["POST"]),
            Route("/api/jobs", api.create_job, methods=["POST"]),
            Route("/api/jobs/{id}", api.job, methods=["GET", "DELETE"]),
            Route("/api/jobs/{id}/events", api.events),
            Route("/api/jobs/{id}/result", api.result),
            Route("/api/upscale", api.upscale, methods=["POST"]),
            Route("/api/zip", api.zip),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, policy=policy)],
        exception_handlers={SuperresError: _superres_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.store, app.state.catalog = store, catalog
    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _superres_error(request: Request, exc: Exception) -> Response:
    status = 413 if isinstance(exc, PixelLimitError) else 503 if isinstance(exc, QueueFull) else 422
    return _error(status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


@functools.cache
def available_devices() -> list[str]:
    import torch

    devices = ["auto", "cpu"]
    devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


class _Api:
    """The route handlers, over one server's settings, model catalog and job store."""

    def __init__(self, settings: Settings, catalog: ModelCatalog, store: JobStore) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self._checks = asyncio.Semaphore(_CHECKS_AT_ONCE)

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"cache-control": "no-cache"})

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "workers": self.store.workers, "jobs": self.store.counts()}
        )

    async def models(self, request: Request) -> Response:
        settings = self.settings
        return JSONResponse(
            {
                "default": settings.default_model,
                "models": self.catalog.describe(),
                "devices": await run_in_threadpool(available_devices),
                "precisions": list(PRECISIONS),
                "formats": [name for name in FORMATS if name != "jpeg"],
                "limits": {"max_upload_mb": settings.max_upload_mb, "max_pixels": settings.max_pixels},
                "keep_minutes": settings.keep_minutes,
            }
        )

    async def upload_weights(self, request: Request) -> Response:
        async with _form(request, "weights", ()) as (upload, _), self._checks:
            choice = await run_in_threadpool(self.catalog.add_upload, await upload.read(), upload.filename or "")
        return JSONResponse(choice.to_dict(strength_partners(choice, self.catalog.choices())), status_code=201)

    async def create_job(self, request: Request) -> Response:
        job = await self._submit(request)
        return JSONResponse(job.to_dict(), status_code=202, headers={"location": f"/api/jobs/{job.id}"})

    async def job(self, request: Request) -> Response:
        job = self._job(request)
        if request.method == "DELETE":
            if job.state in FINISHED:
                self.store.remove(job.id)
                return JSONResponse({**job.to_dict(), "deleted": True})
            job = self.store.cancel(job.id)
        return JSONResponse(job.to_dict())

    async def events(self, request: Request) -> Response:
        job = self._job(request)

        async def stream() -> AsyncIterator[str]:
            seen, quiet = -1, 0.0
            while True:
                if job.version != seen:
                    seen, quiet = job.version, 0.0
                    snapshot = job.to_dict()  # the state sent decides the end, not a later one
                    yield f"data: {json.dumps(snapshot)}\n\n"
                    if JobState(snapshot["state"]) in FINISHED:
                        return
                elif quiet >= 15.0:  # a comment line keeps proxies and browsers from timing out
                    quiet = 0.0
                    yield ": waiting\n\n"
                await asyncio.sleep(0.1)
                quiet += 0.1

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-store"})

    async def result(self, request: Request) -> Response:
        job = self._job(request)
        if job.state is not JobState.DONE or job.output_path is None:
            return _error(409, job.error or f"job {job.id} is {job.state.value}; it has no result")
        return _result_file(job)

    async def upscale(self, request: Request) -> Response:
        job = await self._submit(request)
        try:
            while job.state not in FINISHED and not await request.is_disconnected():
                await asyncio.sleep(0.05)
        except BaseException:
            self.store.remove(job.id)
            raise
        if job.state is not JobState.DONE:
            self.store.remove(job.id)  # and so cancelled, if the client went away
            return _error(422 if job.state is JobState.FAILED else 409, job.error or f"job {job.state.value}")
        return _result_file(job, BackgroundTask(self.store.remove, job.id))

    async def zip(self, request: Request) -> Response:
        ids = [part for part in request.query_params.get("ids", "").split(",") if part]
        path = await run_in_threadpool(self.store.zip_results, ids)
        return FileResponse(
            path, media_type="application/zip", filename="superres-results.zip", background=BackgroundTask(path.unlink)
        )

    # -- helpers -----------------------------------------------------------------------------------

    def _job(self, request: Request) -> Job:
        try:
            return self.store.get(request.path_params["id"])
        except KeyError:
            raise HTTPException(404, "no such job (unknown, deleted, or expired)") from None

    async def _submit(self, request: Request) -> Job:
        async with _form(request, "image", FIELDS) as (upload, fields):
            options = parse_options(fields, self.catalog, self.settings.default_model)
            name = safe_label(upload.filename or "")
            # Starlette has spooled the upload to a temporary file; only _CHECKS_AT_ONCE are read into
            # memory and decoded at a time. Bombs (413), damaged files and non-images (422) are refused now.
            async with self._checks:
                data = await upload.read()
                await run_in_threadpool(decode_image, data, name, self.store.max_pixels)
                return await run_in_threadpool(self.store.submit, data, name, options)


@contextlib.asynccontextmanager
async def _form(
    request: Request, file_field: str, fields: tuple[str, ...]
) -> AsyncIterator[tuple[UploadFile, dict[str, str]]]:
    """(the uploaded file, the text fields) of a multipart request; unknown fields are refused."""
    async with request.form(max_files=1, max_fields=len(fields) + 1, max_part_size=64 << 10) as form:
        unknown = sorted(set(form.keys()) - {file_field, *fields})
        if unknown:
            raise ConfigError(f"unknown field {unknown[0]!r}; the fields are {file_field}, {', '.join(fields)}")
        upload = form.get(file_field)
        if not isinstance(upload, UploadFile):
            raise ConfigError(f"send the file as the multipart field {file_field!r}")
        yield upload, {key: value for key, value in form.items() if isinstance(value, str) and value.strip()}


def parse_options(fields: dict[str, str], catalog: ModelCatalog, default_model: str) -> JobOptions:
    """Validated :class:`JobOptions` from a form's text fields; a bad value is a :class:`ConfigError`."""

    def number(key: str, kind: type[float | int], low: float, high: float) -> Any:
        if key not in fields:
            return None
        try:
            value = kind(fields[key])
        except ValueError:
            raise ConfigError(
                f"{key} must be a{'n integer' if kind is int else ' number'}, not {fields[key]!r}"
            ) from None
        if not low <= value <= high:
            raise ConfigError(f"{key} must lie in {low:g}…{high:g}, not {value:g}")
        return value

    choices = catalog.choices()
    model = catalog.get(fields.get("model", default_model))
    partner = fields.get("partner")
    strength = number("strength", float, 0.0, 1.0)
    if partner is not None and partner not in strength_partners(model, choices):
        raise ConfigError(f"{partner!r} cannot be blended with {model.name} (GET /api/models lists its partners)")
    if strength is not None and partner is None:
        raise ConfigError("strength blends the model with a partner: send the partner field too")
    outscale = number("outscale", float, 0.01, 16.0)
    format_name = fields.get("format", "auto").lower()
    if format_name not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format_name!r}")
    precision = fields.get("precision", "auto")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    device = fields.get("device", "auto")
    if not _DEVICE.fullmatch(device):
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, not {device!r}")
    return JobOptions(
        model=model.name,
        partner=partner,
        strength=0.5 if partner is not None and strength is None else strength or 0.0,
        outscale=outscale,
        suffix=FORMATS[format_name],
        quality=number("quality", int, 1, 100),
        tile=number("tile", int, 0, 8192),
        precision=precision,
        device=device,
    )


def _result_file(job: Job, background: BackgroundTask | None = None) -> FileResponse:
    assert job.output_path is not None
    headers = {"x-image-size": f"{job.width}x{job.height}", "cache-control": "private, max-age=3600"}
    return FileResponse(job.output_path, filename=job.download_name, headers=headers, background=background)
