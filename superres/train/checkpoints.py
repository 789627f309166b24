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

The training state holds, besides the networks and optimisers, the state of every global random
generator (Python, NumPy, torch, CUDA): with the data order a function of the seed and the step,
a resumed run continues bit for bit as the uninterrupted run would have (on CPU).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from superres.errors import ConfigError
from superres.train.config import RESUMABLE_CHANGES, TrainConfig, config_differences, from_dict, to_dict, to_yaml
from superres.train.distributed import DistContext, broadcast_object
from superres.train.runlog import warn

if TYPE_CHECKING:
    from superres.train.build import Models

STATE_FORMAT = 1
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


def training_state(
    config: TrainConfig,
    step: int,
    world_size: int,
    models: Models,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler,
    best: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything a resumed run needs to continue exactly where this one is after ``step`` updates."""
    m = models
    return {
        "format": STATE_FORMAT,
        "step": step,
        "world_size": world_size,
        "generator": m.generator_raw.state_dict(),
        "ema": m.ema.state_dict() if m.ema else None,
        "discriminator": m.discriminator_raw.state_dict() if m.discriminator_raw else None,
        "optim_g": opt_g.state_dict(),
        "optim_d": opt_d.state_dict() if opt_d else None,
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "best": best,
        "config": to_dict(config),
    }


def restore(
    checkpoint: Checkpoint,
    ctx: DistContext,
    models: Models,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    """Load the networks, optimisers and fp16 scaler of ``checkpoint`` in place; returns its training state,
    whose step, best score and RNG states the trainer takes over."""
    state = load_training_state(checkpoint)
    if state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{checkpoint.state} has an unknown format {state.get('format')!r}")
    if state["world_size"] != ctx.world_size:
        warn(
            ctx,
            f"resuming a {state['world_size']}-process run with {ctx.world_size} processes: "
            "the data order will differ from an uninterrupted run",
        )
    m = models
    m.generator_raw.load_state_dict(state["generator"])
    if m.ema is not None:
        m.ema.load_state_dict(state["ema"] if state["ema"] is not None else state["generator"])
    if m.discriminator_raw is not None:
        if state["discriminator"] is None:
            raise ConfigError(f"{checkpoint.path} has no discriminator; it is not from a GAN stage")
        m.discriminator_raw.load_state_dict(state["discriminator"])
        assert opt_d is not None
        opt_d.load_state_dict(state["optim_d"])
    opt_g.load_state_dict(state["optim_g"])
    if state["scaler"] and scaler.is_enabled():  # fp16 before and now (precision may change)
        scaler.load_state_dict(state["scaler"])
    return state


def model_metadata(config: TrainConfig, step: int, best: dict[str, Any] | None) -> dict[str, str]:
    """What the saved model says about how it was trained (JSON metadata beside the weights)."""
    matching = config.loss.feature_matching_weight
    meta = {
        "trained_by": "superres train",
        "run": config.name,
        "step": str(step),
        "training_data": ", ".join(config.data.train),
        "losses": (
            f"pixel {config.loss.pixel}×{config.loss.pixel_weight}, "
            f"perceptual×{config.loss.perceptual_weight}, gan {config.loss.gan}×{config.loss.gan_weight}"
            + (f", feature matching×{matching}" if matching else "")
        ),
        "ema": str(config.ema_decay) if config.ema_decay else "off",
    }
    if config.degradation.enabled:
        meta["degradation"] = (
            "Real-ESRGAN high-order (superres.train.degrade), "
            f"USM target {'on' if config.degradation.usm_target else 'off'}"
        )
    if best is not None:
        meta["best_val"] = f"{best['dataset']} PSNR {best['psnr']:.3f} SSIM {best['ssim']:.4f}"
    return meta


# ------------------------------------------------------------------------- the run directory


def prepare_run_dir(config: TrainConfig, ctx: DistContext, resume: bool) -> Checkpoint | None:
    """Check that the run directory may be used; returns the checkpoint to resume from, if any."""
    run_dir = config.run_dir
    error: str | None = None
    latest: Checkpoint | None = None
    if ctx.is_main:
        exists = run_dir.is_dir() and any(run_dir.iterdir())
        if resume and not run_dir.is_dir():
            error = f"nothing to resume: {run_dir} does not exist (run without --resume to start)"
        elif not resume and exists:
            error = (
                f"{run_dir} already holds a run; add --resume to continue it, or choose another name=… or output_dir=…"
            )
        elif resume:
            saved = run_dir / CONFIG_FILE
            if saved.is_file():
                import yaml

                # Through from_dict, a config saved before a section existed reads as its defaults.
                saved_config = from_dict(TrainConfig, yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, "")
                changed = config_differences(to_dict(saved_config), to_dict(config))
                fixed = [key for key in changed if key not in RESUMABLE_CHANGES]
                if fixed:
                    error = (
                        f"cannot resume {run_dir} with different settings: {', '.join(fixed)} "
                        f"(see {saved}; only {', '.join(sorted(RESUMABLE_CHANGES))} may change)"
                    )
    error = broadcast_object(ctx, error)
    if error:
        raise ConfigError(str(error))
    if resume:
        checkpoints = list_checkpoints(run_dir)
        latest = checkpoints[-1] if checkpoints else None
    return latest


def open_run_dir(config: TrainConfig, ctx: DistContext) -> None:
    """Create the run directory once everything is set up, so a failed start leaves nothing behind."""
    from superres.imageio import atomic_path

    if ctx.is_main:
        config.run_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_checkpoints(config.run_dir)
        with atomic_path(config.run_dir / CONFIG_FILE) as tmp:
            tmp.write_text(to_yaml(config), encoding="utf-8")
    ctx.barrier()


# ---------------------------------------------------------------------------- random generators


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }  # fmt: skip


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` needs the nested tuples that serialisation may have turned into lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


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
