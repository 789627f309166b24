"""superres — single-image super-resolution: SRResNet, SRGAN and ESRGAN end to end.

Importing the package is cheap: the public functions below are resolved on first use,
so ``import superres`` neither imports torch nor scans any folder.

    >>> import superres
    >>> model = superres.load_model("weights.safetensors")   # or .pth from ESRGAN / Real-ESRGAN
    >>> big = model.upscale(pil_image)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import Any

__version__ = "0.1.0"

# public function -> module that defines it (module names differ from function names, so that
# importing a submodule never shadows the function of the same name on the package)
_LAZY = {
    "load_model": "superres.engine.inference",
    "Upscaler": "superres.engine.inference",
    "upscale_files": "superres.engine.pipeline",
    "upscale_video": "superres.video.transcode",  # needs the [video] extra (PyAV)
    "VideoOptions": "superres.video.transcode",
    "evaluate": "superres.quality.evaluation",
    "interpolate": "superres.models.interpolation",
}

__all__ = ["__version__", *_LAZY]

# Modules that lived at the top of the package before it was laid out in subpackages (0.1): their old
# names still import, as the same module objects, with a DeprecationWarning. ``superres.metrics`` is
# public API and stays an attribute of the package without a warning.
_MOVED = {
    "inference": "engine.inference",
    "tiling": "engine.tiling",
    "winograd": "engine.winograd",
    "pipeline": "engine.pipeline",
    "weights": "models.weights",
    "detect": "models.detect",
    "registry": "models.registry",
    "interpolation": "models.interpolation",
    "export": "models.export",
    "imresize": "quality.imresize",
    "metrics": "quality.metrics",
    "evaluation": "quality.evaluation",
    "data": "train.data",
    "losses": "train.losses",
}


def __getattr__(name: str) -> Any:
    if name == "metrics":
        return importlib.import_module("superres.quality.metrics")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'superres' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``import superres.<old name>`` to the module's new home (see ``_MOVED``)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        name = module.__name__.rpartition(".")[2]
        new = f"{__name__}.{_MOVED[name]}"
        if name != "metrics":
            warnings.warn(f"{module.__name__} moved to {new}", DeprecationWarning, stacklevel=2)
        # the import system returns what sys.modules holds under the old name once this returns
        sys.modules[module.__name__] = importlib.import_module(new)


sys.meta_path.append(_MovedModuleFinder())
