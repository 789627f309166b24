"""Checkpoints of a run: written atomically, the last N kept, the best by validation PSNR kept apart.

A run directory looks like this::

    runs/<name>/config.yaml                         the resolved config of the run
    runs/<name>/checkpoints/step_00005000/
        generator.safetensors                       the model (EMA weights when EMA is on): `superres upscale` loads it
        training_state.pt                           optimisers, step, RNG states, … for exact resume
        config.yaml
    runs/<name>/best.safetensors, best.json         the best model by validation PSNR
    runs/<name>/log.jsonl, samples/, tensorboard/

Each checkpoint is assembled in a hidden temporary folder and renamed into place when complete
(``os.replace`` of a directory is atomic on POSIX file systems). A run killed at any moment therefore
leaves either the whole checkpoint or none of it; stale temporary folders are removed on start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superres.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "training_state.pt"
CONFIG_FILE = "config.yaml"
BEST_FILE = "best.safetensors"
BEST_INFO = "best.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    @property
    def generator(self) -> Path:
        return self.path / GENERATOR_FILE

    @property
    def state(self) -> Path:
        return self.path / STATE_FILE


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [Checkpoint(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found, key=lambda c: c.step)


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Delete what a run killed while saving left: temporary checkpoint folders, and the temporary files
    of atomic writes (best.safetensors, best.json, config.yaml, sample grids) in the run folder."""
    from superres.imageio import remove_stale_parts

    root = run_dir / CHECKPOINT_DIR
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(".") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
    for folder in (run_dir, *(run_dir / "samples").glob("step_*")):
        remove_stale_parts(folder)


def save_checkpoint(
    run_dir: Path,
    step: int,
    generator: nn.Module,
    arch: str,
    hparams: dict[str, Any],
    metadata: dict[str, str],
    training_state: dict[str, Any],
    config_yaml: str,
    keep_last: int,
) -> Checkpoint:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep_last``."""
    from superres.models.weights import save_network

    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_network(tmp / GENERATOR_FILE, generator, arch, hparams, metadata)
        _write_durably(tmp / STATE_FILE, lambda f: torch.save(training_state, f))
        _write_durably(tmp / CONFIG_FILE, lambda f: f.write(config_yaml.encode("utf-8")))
        if final.exists():  # a step saved again: move the old copy aside first, never delete before replacing
            os.replace(final, root / f".step_{step:08d}.old-{os.getpid()}")
        os.replace(tmp, final)
        _fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root / f".step_{step:08d}.old-{os.getpid()}", ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        _remove_checkpoint(old)
    return Checkpoint(step, final)


def _remove_checkpoint(checkpoint: Checkpoint) -> None:
    """Delete a checkpoint so that a kill at any moment never leaves a half-deleted one in view.

    Deleting a folder file by file is not atomic; the checkpoint is first renamed to a hidden name
    (atomic), which ``remove_partial_checkpoints`` cleans up if the deletion itself is interrupted.
    """
    doomed = checkpoint.path.with_name(f".{checkpoint.path.name}.del-{os.getpid()}")
    os.replace(checkpoint.path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def save_best(
    run_dir: Path, generator: nn.Module, arch: str, hparams: dict[str, Any], metadata: dict[str, str], info: dict
) -> Path:
    """Replace ``best.safetensors`` (atomically) and record what made it the best in ``best.json``."""
    from superres.imageio import atomic_path
    from superres.models.weights import save_network

    path = save_network(run_dir / BEST_FILE, generator, arch, hparams, metadata, overwrite=True)
    with atomic_path(run_dir / BEST_INFO) as tmp:
        _write_durably(tmp, lambda f: f.write(json.dumps(info, indent=2).encode("utf-8")))
    return path


def read_best_info(run_dir: Path) -> dict | None:
    path = run_dir / BEST_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_training_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The training state of a checkpoint, read safely (tensors and plain Python values only)."""
    try:
        return torch.load(checkpoint.state, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read the training state {checkpoint.state}: {exc}") from exc


def _write_durably(path: Path, write) -> None:
    with path.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
