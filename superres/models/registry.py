"""Known models by name: the bundled default and third-party checkpoints with their official URLs.

``--model NAME`` goes through :func:`resolve`: an existing path is used as it is; a known name
maps to the file shipped inside the package, or to a file in the user cache, downloaded once from
the official URL by :func:`superres.models.download.fetch` (resumable, atomic) and kept only if its
SHA-256 matches the one recorded here. Nothing is fetched without a pinned hash, and an offline
machine (or ``SUPERRES_OFFLINE=1``) gets a message that says which URL to fetch by hand and where
to put the file.

Sources of the pins: the Real-ESRGAN model zoo (``docs/model_zoo.md``) and release pages for the URLs;
OpenModelDB's entries and several independent mirrors, which agree with each other, for the SHA-256
of each release asset. BasicSR names its files after the first 8 hex digits of their SHA-256
(``…-ff704c30.pth``), which cross-checks the ESRGAN pin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from superres.errors import ConfigError, DownloadError, WeightsError
from superres.models.download import fetch as fetch_file
from superres.models.download import manual_hint, sha256_file

DEFAULT_MODEL = "superres-x4"
CACHE_ENV = "SUPERRES_CACHE"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")

_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"


@dataclass(frozen=True)
class ModelEntry:
    """One known model. ``url is None`` marks the model shipped inside the package."""

    name: str
    arch: str  # "RRDBNet" | "SRResNet" | "SRVGGNetCompact", as superres.models.detect names them
    scale: int
    license: str
    homepage: str
    description: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    gan_partner: str | None = None  # the GAN-trained model of the same network, for --strength (ESRGAN §3.4)

    @property
    def bundled(self) -> bool:
        return self.url is None


MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        name=DEFAULT_MODEL,
        arch="SRVGGNetCompact",
        scale=4,
        # The weights are ours; BSDS500, part of the training data, is for non-commercial research.
        license="BSD-3-Clause",
        homepage="bundled with superres",
        description="superres's own PSNR-oriented ×4 model (SRVGGNetCompact 64×16), trained by superres on "
        "BSDS500 + T91 (research data); fast on a CPU. Recipe: superres/presets/superres_x4.yaml",
        filename="superres_x4.safetensors",
        gan_partner="superres-x4-gan",
    ),
    ModelEntry(
        name="superres-x4-gan",
        arch="SRVGGNetCompact",
        scale=4,
        license="BSD-3-Clause",
        homepage="bundled with superres",
        description="superres-x4 trained on adversarially (RaGAN + L1 + feature matching) by superres: sharper, "
        "invented texture, lower PSNR. Blend the two with --strength. Recipe: superres/presets/superres_x4_gan.yaml",
        filename="superres_x4_gan.safetensors",
    ),
    ModelEntry(
        name="superres-x4-real",
        arch="SRVGGNetCompact",
        scale=4,
        license="BSD-3-Clause",
        homepage="bundled with superres",
        description="superres-x4 fine-tuned on Real-ESRGAN-style degradations (blur, noise, JPEG) for real photos: "
        "removes noise and JPEG blocks instead of sharpening them; PSNR-oriented (L1). Recipe: "
        "superres/presets/superres_x4_real.yaml, then superres_x4_real_web.yaml",
        filename="superres_x4_real.safetensors",
        gan_partner="superres-x4-real-gan",
    ),
    ModelEntry(
        name="superres-x4-real-gan",
        arch="SRVGGNetCompact",
        scale=4,
        license="BSD-3-Clause",
        homepage="bundled with superres",
        description="superres-x4-real trained further as a GAN on high-order degradations (Real-ESRGAN's second "
        "stage; RaGAN + L1 + feature matching): invented texture on real photos. Blend with --strength. Recipe: "
        "superres/presets/superres_x4_real_gan.yaml",
        filename="superres_x4_real_gan.safetensors",
    ),
    ModelEntry(
        name="RRDB_ESRGAN_x4",
        arch="RRDBNet",
        scale=4,
        license="Apache-2.0",
        homepage="https://github.com/xinntao/ESRGAN",
        description="ESRGAN, the paper's GAN model (DF2K+OST); the author's re-release in BasicSR key layout",
        filename="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
        url=f"{_REAL_ESRGAN}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
        sha256="ff704c30ff560305e48ed1f4db895e525ab6bc81a46fafe80c0094a271c806d9",
    ),
    ModelEntry(
        name="RRDB_PSNR_x4",
        arch="RRDBNet",
        scale=4,
        license="Apache-2.0",
        homepage="https://github.com/xinntao/ESRGAN",
        description="ESRGAN's PSNR-oriented RRDB model (L1 loss, DF2K): the α = 0 end of network interpolation",
        filename="RRDB_PSNR_x4.pth",
        gan_partner="RRDB_ESRGAN_x4",
        # Only published on the authors' Google Drive; Drive may answer a script with a
        # confirmation page, in which case the error message explains the manual download.
        url="https://drive.google.com/uc?export=download&id=1pJ_T-V1dpb1ewoEra1TGSWl5e6H7M4NN",
        sha256="f372b59f22929e1bc83fa58d78215c96f976de3b2eaeee736da1b348913da6cc",
    ),
    ModelEntry(
        name="RealESRGAN_x4plus",
        arch="RRDBNet",
        scale=4,
        license="BSD-3-Clause",
        homepage="https://github.com/xinntao/Real-ESRGAN",
        description="Real-ESRGAN ×4 for real-world photos (blur, noise, JPEG)",
        filename="RealESRGAN_x4plus.pth",
        url=f"{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
    ),
    ModelEntry(
        name="RealESRGAN_x2plus",
        arch="RRDBNet",
        scale=2,
        license="BSD-3-Clause",
        homepage="https://github.com/xinntao/Real-ESRGAN",
        description="Real-ESRGAN ×2 for real-world photos",
        filename="RealESRGAN_x2plus.pth",
        url=f"{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
    ),
    ModelEntry(
        name="RealESRNet_x4plus",
        arch="RRDBNet",
        scale=4,
        license="BSD-3-Clause",
        homepage="https://github.com/xinntao/Real-ESRGAN",
        description="Real-ESRGAN's ×4 generator before GAN training (pixel loss only): smoother, fewer artefacts",
        filename="RealESRNet_x4plus.pth",
        url=f"{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth",
        sha256="a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df",
    ),
    ModelEntry(
        name="RealESRGAN_x4plus_anime_6B",
        arch="RRDBNet",
        scale=4,
        license="BSD-3-Clause",
        homepage="https://github.com/xinntao/Real-ESRGAN",
        description="Real-ESRGAN ×4 for anime illustrations; 6 RRDB blocks instead of 23",
        filename="RealESRGAN_x4plus_anime_6B.pth",
        url=f"{_REAL_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
    ),
    ModelEntry(
        name="realesr-animevideov3",
        arch="SRVGGNetCompact",
        scale=4,
        license="BSD-3-Clause",
        homepage="https://github.com/xinntao/Real-ESRGAN",
        description="Real-ESRGAN compact ×4 model for anime video (16 convs, 0.6 M parameters)",
        # The release asset is 2,504,012 bytes. The copy in the tests' data (weights/) has other bytes
        # (2,334,339, sha256 4e1e09ba…), so it does not verify against this pin: use it by path.
        filename="realesr-animevideov3.pth",
        url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-animevideov3.pth",
        sha256="b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
    ),
    ModelEntry(
        name="realesr-general-x4v3",
        arch="SRVGGNetCompact",
        scale=4,
        license="BSD-3-Clause",
        homepage="https://github.com/xinntao/Real-ESRGAN",
        description="Real-ESRGAN compact ×4 model for general scenes (32 convs, 1.2 M parameters)",
        filename="realesr-general-x4v3.pth",
        url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth",
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
    ),
)


def names() -> list[str]:
    return [entry.name for entry in MODELS]


def get(name: str) -> ModelEntry:
    """The entry called ``name`` (exact, else case-insensitive match)."""
    for entry in MODELS:
        if entry.name == name:
            return entry
    for entry in MODELS:
        if entry.name.casefold() == name.casefold():
            return entry
    raise WeightsError(f"unknown model {name!r}; known models: {', '.join(names())} (or pass a path to a weights file)")


def gan_partner(name: str | os.PathLike[str]) -> str:
    """The GAN partner of a known model, for ``--strength``; a clear error for anything else."""
    with_partner = ", ".join(entry.name for entry in MODELS if entry.gan_partner)
    hint = f"models with one: {with_partner}; any two files of one architecture blend with `superres interpolate`"
    text = os.fspath(name)
    try:
        entry = get(text)
    except WeightsError:
        raise ConfigError(
            f"--strength needs a model that names its GAN partner, and {text} is not one ({hint})"
        ) from None
    if entry.gan_partner is None:
        raise ConfigError(f"{entry.name} has no GAN partner to blend with, so --strength does not apply ({hint})")
    return entry.gan_partner


def default_cache_dir() -> Path:
    """``$SUPERRES_CACHE``, else ``$XDG_CACHE_HOME/superres/models``, else ``~/.cache/superres/models``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "superres" / "models"


def bundled_dir() -> Path:
    """The folder inside the installed package that holds the bundled weights."""
    return Path(__file__).resolve().parent.parent / "weights"


def local_path(entry: ModelEntry, cache_dir: Path | None = None) -> Path:
    """Where the model's file is, or would be once downloaded."""
    if entry.bundled:
        return bundled_dir() / entry.filename
    return (cache_dir or default_cache_dir()) / entry.filename


def status(entry: ModelEntry, cache_dir: Path | None = None) -> str:
    """``bundled`` / ``missing`` for the shipped model; ``cached`` / ``download`` for the others.

    ``cached`` means the file is present; its hash is checked when the model is used.
    """
    present = local_path(entry, cache_dir).is_file()
    if entry.bundled:
        return "bundled" if present else "missing"
    return "cached" if present else "download"


def resolve(
    name_or_path: str | os.PathLike[str],
    cache_dir: Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The weights file for ``--model``: an existing file, or a known model name (fetched if needed)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError(f"{path} is a folder; pass a weights file (.safetensors or .pth) or a model name")
    text = os.fspath(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or os.sep in text or "/" in text or path.suffix in WEIGHT_SUFFIXES
    try:
        entry = get(text)
    except WeightsError:
        if looks_like_path:
            raise WeightsError(f"no such file: {path}") from None
        raise
    return fetch(entry, cache_dir=cache_dir, download=download, progress=progress)


def fetch(entry: ModelEntry, cache_dir: Path | None = None, download: bool = True, progress: bool = True) -> Path:
    """The local file of ``entry``: the bundled file, a verified cached file, or a fresh download."""
    dest = local_path(entry, cache_dir)
    if entry.bundled:
        if not dest.is_file():
            raise WeightsError(
                f"the bundled model {entry.name!r} is not installed (expected {dest}); reinstall superres, "
                f"or choose another model ({', '.join(n for n in names() if n != entry.name)}) or a weights file"
            )
        return dest
    assert entry.url is not None and entry.sha256 is not None
    if dest.is_file():
        found = sha256_file(dest)
        if found == entry.sha256:
            return dest
        if not download:
            raise WeightsError(
                f"{dest} does not match the sha256 recorded for {entry.name} (found {found}); "
                f"{_manual_hint(entry, dest)}"
            )
    elif not download:
        raise WeightsError(f"{entry.name} is not in the cache and downloading is off; {_manual_hint(entry, dest)}")
    try:
        return fetch_file(entry.url, dest, entry.sha256, progress=progress)
    except DownloadError as exc:
        raise WeightsError(f"{exc} {_OWN_FILE}") from None


_OWN_FILE = "(or pass --model PATH to use a weights file you already have)"


def _manual_hint(entry: ModelEntry, dest: Path) -> str:
    assert entry.url is not None
    return f"{manual_hint(entry.url, dest, entry.sha256)} {_OWN_FILE}"
