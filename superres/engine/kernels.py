"""The engine's C++ kernels for the CPU (``csrc/``): built on first use, prepared once per conv.

One extension holds them all, compiled with ``-march=native`` for the CPU it runs on the first time
it is needed (~40 s, with the C++ compiler and ninja; kept in the user cache after that):

* :mod:`superres.engine.winograd` — fp32 3×3 convs by Winograd's F(4×4, 3×3) (any x86-64 / ARM CPU);
* :mod:`superres.engine.amx` — bf16 3×3 convs on Intel's AMX tile units (where the CPU has them).

:meth:`CpuKernels.prepare` and :meth:`CpuKernels.prepare_amx` turn a conv into what its kernel
reads — Winograd-transformed or tile-packed weights — and keep it for the life of the
:class:`CpuKernels` object (one per :class:`~superres.engine.inference.Upscaler`), so a folder of
small images does not pay for it per image or per region: for RealESRGAN_x4plus the transformed
weights of all 345 dense-block convs are 265 MB (4× the fp32 conv weights; 0.4 s to compute), for
the default model 10 MB. Kept while they fit ``PREPARED_MEMORY`` (and an eighth of the free RAM);
past that, a conv is prepared again at each use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superres.engine import amx, winograd
from superres.engine.budget import available_ram

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCE = CSRC / "kernels.cpp"  # includes the others: one compile of the torch headers
INCLUDED = (CSRC / "rows.h", CSRC / "winograd.cpp", CSRC / "amx.cpp", CSRC / "compact.cpp", CSRC / "dense.cpp")

# Prepared weights one CpuKernels keeps at most (x4plus in fp32 Winograd form: 265 MB).
PREPARED_MEMORY = 512 << 20


def kernel_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/superres/kernels``, else ``~/.cache/superres/kernels``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "superres" / "kernels"


def _put_ninja_on_path() -> None:
    """torch builds with the ``ninja`` it finds on PATH; the pip package's lies beside the Python
    that installed it, which is not on PATH when that environment is not activated."""
    if shutil.which("ninja") is not None:
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, os.environ.get("PATH", "")])


def _cpu_fingerprint() -> str:
    """What ``-march=native`` compiles for: torch's capability level and, on Linux, the CPU's feature
    flags, so that a home shared between machines never loads a build made for other instructions."""
    capability = torch.backends.cpu.get_cpu_capability().lower()
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith(("flags", "Features"))
        )
    except (OSError, StopIteration):
        return capability
    return f"{capability}_{hashlib.sha256(flags.encode()).hexdigest()[:6]}"


def _build_name() -> str:
    """One build per CPU and source version: a shared home or an upgrade never loads a stale one."""
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in (SOURCE, *INCLUDED))).hexdigest()[:10]
    return f"superres_kernels_{_cpu_fingerprint()}_{digest}"


def _build(build_dir: Path) -> Any:
    """Compile the kernels into ``build_dir`` (or find them built there) and import them."""
    from torch.utils.cpp_extension import load  # imports setuptools: only when a kernel is needed

    _put_ninja_on_path()
    name = build_dir.name
    build_dir.mkdir(parents=True, exist_ok=True)
    if not any(build_dir.glob(f"{name}*.so")) and not any(build_dir.glob(f"{name}*.pyd")):
        print(f"superres: compiling the CPU kernels for this CPU (once, ~40 s) in {build_dir}", file=sys.stderr)
    return load(
        name=name,
        sources=[str(SOURCE)],
        build_directory=str(build_dir),
        extra_cflags=["-O3", "-march=native", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


# Extensions loaded in this process, by build folder: torch's loader re-checks the build (ninja, several
# seconds of CPU) on every call, and every Upscaler asks for the kernels.
_LOADED: dict[Path, Any] = {}


class CpuKernels:
    """The compiled kernels: :meth:`load` them, :meth:`prepare` (Winograd) or :meth:`prepare_amx` a conv."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.has_amx = bool(module.amx_available())
        self._prepared: dict[tuple[str, int, tuple[int, ...]], tuple[nn.Conv2d, Any]] = {}
        self._prepared_bytes = 0
        free = available_ram()
        self._memory = PREPARED_MEMORY if free is None else min(PREPARED_MEMORY, free // 8)

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> CpuKernels:
        """Build (first time, ~40 s) or load the kernels for this CPU, the extension once per process;
        each object keeps its own prepared weights. Raises ``RuntimeError`` (or ``OSError``,
        ``ImportError``) when they cannot be built: no C++ compiler, no ninja, an unwritable cache."""
        build_dir = (cache_dir or kernel_cache_dir()) / _build_name()
        if build_dir not in _LOADED:
            _LOADED[build_dir] = _build(build_dir)
        return cls(_LOADED[build_dir])

    @property
    def prepared_bytes(self) -> int:
        """Memory of the prepared weights kept so far."""
        return self._prepared_bytes

    def prepare(self, conv: nn.Conv2d, input_groups: list[int]) -> winograd.WinogradConv | None:
        """``conv`` ready for the fp32 Winograd kernel on inputs of these channel counts, or ``None`` if
        it does not :func:`~superres.engine.winograd.fits`."""
        if not winograd.fits(conv, input_groups):
            return None
        return self._kept("winograd", conv, input_groups, lambda: winograd.prepare(self.module, conv))

    def prepare_amx(self, conv: nn.Conv2d, input_groups: list[int]) -> amx.AmxConv | None:
        """``conv`` ready for the AMX bf16 kernel, or ``None`` without AMX or if it does not
        :func:`~superres.engine.amx.fits`."""
        if not (self.has_amx and amx.fits(conv, input_groups)):
            return None
        return self._kept("amx", conv, input_groups, lambda: amx.prepare(self.module, conv))

    def _kept(self, kind: str, conv: nn.Conv2d, groups: list[int], make: Any) -> Any:
        key = (kind, id(conv), tuple(groups))
        kept = self._prepared.get(key)
        if kept is not None and kept[0] is conv:  # the conv itself is kept too, so its id stays its own
            return kept[1]
        prepared = make()
        size = prepared.nbytes
        if self._prepared_bytes + size <= self._memory:
            self._prepared[key] = (conv, prepared)
            self._prepared_bytes += size
        return prepared
