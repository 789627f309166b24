"""Training: SRResNet → SRGAN and RRDB-PSNR → ESRGAN, from YAML presets, resumable, single or multi-process.

* :mod:`~superres.train.config` — dataclass configs, YAML presets (``superres/presets``), ``key=value``.
* :mod:`~superres.train.data` — HR images, MATLAB-bicubic LR pairs, random patches, the loader.
* :mod:`~superres.train.losses` — pixel, perceptual (VGG19) and adversarial (BCE, RaGAN) losses.
* :mod:`~superres.train.trainer` — the loop; :mod:`~superres.train.build` (networks, losses, optimisers, dataset),
  :mod:`~superres.train.step` (the generator's objective, the discriminator's update),
  :mod:`~superres.train.checkpoints` (run directory, training state, RNG states), :mod:`~superres.train.ema`,
  :mod:`~superres.train.validation`, :mod:`~superres.train.runlog`, :mod:`~superres.train.distributed`.

    >>> from superres.train import load_config, train
    >>> config = load_config("srresnet", ["model.num_block=8", "total_steps=1e5"])
    >>> run_dir = train(config)                 # runs/srresnet/… ; train(config, resume=True) continues

Only the config is imported eagerly (cheap); the trainer, which needs torch, loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from superres.train.config import PRESETS, TrainConfig, load_config

__all__ = ["PRESETS", "TrainConfig", "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        return importlib.import_module("superres.train.trainer").train
    raise AttributeError(f"module 'superres.train' has no attribute {name!r}")
