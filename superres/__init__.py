"""superres — single-image super-resolution: SRResNet, SRGAN and ESRGAN end to end.

Importing the package is cheap: the public functions below are resolved on first use,
so ``import superres`` neither imports torch nor scans any folder.

    >>> import superres
    >>> model = superres.load_model("weights.safetensors")   # or .pth from ESRGAN / Real-ESRGAN
    >>> big = model.upscale(pil_image)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public function -> module that defines it (module names differ from function names, so that
# importing a submodule never shadows the function of the same name on the package)
_LAZY = {
    "load_model": "superres.inference",
    "Upscaler": "superres.inference",
    "upscale_files": "superres.pipeline",
    "evaluate": "superres.evaluation",
    "interpolate": "superres.interpolation",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'superres' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
