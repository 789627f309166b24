"""Which models a client may pick, and the one cache that loads each of them once for all jobs.

A client names a model; it never sends a path. The names are those of :mod:`superres.models.registry` whose
file is on this machine (bundled, or already in the model cache: the server never downloads), and
those of weights files uploaded to this server, which are detected as ``superres info`` does and
kept under server-made names until the server stops (at most ``max_uploads``, oldest dropped first).
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superres.errors import ConfigError, SuperresError, WeightsError
from superres.models import registry

if TYPE_CHECKING:
    from superres.engine.inference import Upscaler

UPLOAD_PREFIX = "upload-"


@dataclass(frozen=True)
class ModelChoice:
    """One model a client may pick: ``name`` is what it sends, ``label`` what the page shows."""

    name: str
    label: str
    arch: str
    scale: int
    source: str  # "bundled" | "cache" | "upload"
    path: Path
    description: str = ""

    def to_dict(self, partners: list[str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "arch": self.arch,
            "scale": self.scale,
            "source": self.source,
            "description": self.description,
            "partners": partners,
        }


def strength_partners(choice: ModelChoice, choices: list[ModelChoice]) -> list[str]:
    """The models ``choice`` can be blended with by network interpolation (ESRGAN §3.4): strength α runs
    from ``choice`` (α = 0) to the partner (α = 1).

    Until the registry names a GAN partner for each PSNR model, that is any other model of the same
    architecture and scale; the hyper-parameters are checked when the blend is built.
    """
    return [c.name for c in choices if c.name != choice.name and (c.arch, c.scale) == (choice.arch, choice.scale)]


def safe_label(filename: str, fallback: str = "image") -> str:
    """A client's file name reduced to a harmless display name (no folders, no control characters)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")[:100]
    return cleaned or fallback


class ModelCatalog:
    """Registry models present on this machine, plus weights files uploaded to this server."""

    def __init__(self, upload_dir: Path, max_uploads: int = 8) -> None:
        self.upload_dir = upload_dir
        self.max_uploads = max_uploads
        self._uploads: OrderedDict[str, ModelChoice] = OrderedDict()
        self._lock = threading.Lock()

    def choices(self) -> list[ModelChoice]:
        cache = registry.default_cache_dir()
        present = [
            ModelChoice(
                entry.name,
                entry.name,
                entry.arch,
                entry.scale,
                "bundled" if entry.bundled else "cache",
                registry.local_path(entry, cache),
                entry.description,
            )
            for entry in registry.MODELS
            if registry.status(entry, cache) in ("bundled", "cached")
        ]
        with self._lock:
            return present + list(self._uploads.values())

    def describe(self) -> list[dict[str, Any]]:
        choices = self.choices()
        return [choice.to_dict(strength_partners(choice, choices)) for choice in choices]

    def get(self, name: str) -> ModelChoice:
        for choice in self.choices():
            if choice.name == name:
                return choice
        raise ConfigError(f"unknown model {name!r}; GET /api/models lists the models this server offers")

    def weights_path(self, choice: ModelChoice) -> Path:
        """The file to load: an upload as stored; a registry model through the registry (hash-checked)."""
        if choice.source == "upload":
            return choice.path
        return registry.resolve(choice.name, download=False, progress=False)

    def add_upload(self, data: bytes, filename: str) -> ModelChoice:
        """Store and detect an uploaded weights file; a file that is not one is refused and removed."""
        from superres.models.weights import load_network

        label = safe_label(filename, "weights")
        suffix = Path(label).suffix.lower()
        if suffix not in registry.WEIGHT_SUFFIXES:
            raise WeightsError(f"{label}: weights files end in {', '.join(registry.WEIGHT_SUFFIXES)}")
        name = UPLOAD_PREFIX + secrets.token_hex(6)
        path = self.upload_dir / f"{name}{suffix}"
        self.upload_dir.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
        try:
            _, info = load_network(path)
        except SuperresError as exc:
            path.unlink(missing_ok=True)
            raise type(exc)(str(exc).replace(str(path), label)) from None
        about = f"uploaded: {info.arch} ×{info.scale}"
        choice = ModelChoice(name, label, info.arch, info.scale, "upload", path, about)
        with self._lock:
            self._uploads[name] = choice
            while len(self._uploads) > self.max_uploads:
                _, dropped = self._uploads.popitem(last=False)
                dropped.path.unlink(missing_ok=True)
        return choice


@dataclass(frozen=True)
class ModelKey:
    """What makes two jobs share a loaded model."""

    model: str
    partner: str | None = None
    strength: float = 0.0
    device: str = "auto"
    precision: str = "auto"


class ModelCache:
    """Upscalers loaded once per :class:`ModelKey` and shared by every job (the ``capacity`` most recent).

    A job's own tile size goes on a shallow copy of the shared upscaler: the copy shares the network
    (and its device and precision copies) and differs only in ``tile``.
    """

    def __init__(self, catalog: ModelCatalog, capacity: int = 3) -> None:
        self.catalog = catalog
        self.capacity = capacity
        self._loaded: OrderedDict[ModelKey, Upscaler] = OrderedDict()
        self._lock = threading.Lock()

    def upscaler(self, key: ModelKey, tile: int | None = None) -> Upscaler:
        with self._lock:  # one load at a time; jobs for a loaded model wait only for this lookup
            shared = self._loaded.pop(key, None) or self._load(key)
            self._loaded[key] = shared
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)
        view = copy.copy(shared)
        view.tile = tile
        return view

    def _load(self, key: ModelKey) -> Upscaler:
        from superres.engine.inference import Upscaler
        from superres.models.weights import load_network

        choices = [self.catalog.get(key.model)] + ([self.catalog.get(key.partner)] if key.partner else [])
        try:
            networks = [load_network(self.catalog.weights_path(choice)) for choice in choices]
            if key.partner:
                from superres.models.interpolation import interpolate_networks

                networks = [interpolate_networks(networks[0], networks[1], key.strength)]
            return Upscaler(*networks[0], device=key.device, precision=key.precision)
        except SuperresError as exc:  # name uploads as the client named them, not by their server path
            message = str(exc)
            for choice in choices:
                message = message.replace(str(choice.path), choice.label)
            raise type(exc)(message) from None
