"""The training loop: PSNR-oriented (SRResNet, RRDB-PSNR) and adversarial (SRGAN, ESRGAN) stages.

One loop serves all four presets. Each step updates the generator on the weighted sum of pixel,
perceptual, adversarial and feature-matching losses (SRGAN eq. 3, ESRGAN eq. 3, pix2pixHD eq. 4; written
out in :mod:`~superres.train.step`); in GAN stages the discriminator is then updated once on the same
batch. Everything random is a function of the seed and the step, so a resumed run continues bit for bit
as the uninterrupted run would have (on CPU).

A loss that is NaN or inf (a GAN's discriminator saturating, an fp16 overflow, a broken image) would
turn every weight into NaN with one optimiser step, and every checkpoint after it with them. Such a
step is skipped instead — no update of G, D or the EMA — and counted in the log
(``train/skipped_steps``); ``max_nonfinite_steps`` skipped steps in a row stop the run with a message
naming the loss. :func:`superres.models.weights.save_network` refuses non-finite weights besides, so no
checkpoint can hold NaN.

The pieces live beside it: :mod:`~superres.train.build` makes the networks, losses, optimisers and
dataset; :mod:`~superres.train.step` the generator's objective and the discriminator's update;
:mod:`~superres.train.validation` the scores and sample grids; :mod:`~superres.train.checkpoints`
the run directory, the training state and the random generators' states.
"""

from __future__ import annotations

import bisect
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superres.errors import ConfigError
from superres.train import checkpoints as ckpt
from superres.train.build import adam, build_dataset, build_losses, build_models
from superres.train.config import OptimConfig, TrainConfig, to_yaml
from superres.train.distributed import DistContext, setup, sync_buffers, teardown
from superres.train.runlog import RunLogger, warn
from superres.train.step import autocast, discriminator_update, first_nonfinite, generator_objective

SKIPPED = "train/skipped_steps"  # logged: steps whose update was skipped for a NaN/inf loss


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train as ``config`` says; returns the run directory. Under torchrun, every process calls this."""
    config.validate()
    threads = torch.get_num_threads()
    if config.threads:
        # Fewer threads than cores pays off on a shared machine: OpenMP threads that busy-wait while
        # other processes hold the cores slow small convolutions down many times over.
        torch.set_num_threads(config.threads)
    ctx = setup(config.device)
    try:
        return Trainer(config, ctx, resume).run()
    finally:
        teardown(ctx)
        torch.set_num_threads(threads)


def learning_rate(optim: OptimConfig, step: int) -> float:
    """MultiStepLR as a pure function of the step: ``lr · gamma^(milestones ≤ step)``.

    Computing it from the step (rather than keeping a scheduler's state) makes resuming exact by
    construction.
    """
    return optim.lr * optim.gamma ** bisect.bisect_right(sorted(optim.milestones), step)


class Trainer:
    def __init__(self, config: TrainConfig, ctx: DistContext, resume: bool) -> None:
        self.config = config
        self.ctx = ctx
        self.device = ctx.device
        self.run_dir = config.run_dir
        self.arch = config.model.arch
        self.hparams = config.model.hparams()
        self.scale = config.model.scale
        if config.data.batch_size % ctx.world_size:
            raise ConfigError(
                f"data.batch_size {config.data.batch_size} is the batch over all {ctx.world_size} processes "
                "and must divide evenly among them"
            )
        self.batch_per_rank = config.data.batch_size // ctx.world_size
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision=fp16 needs a CUDA GPU; on the CPU use bf16 or fp32")

        # Data first: a dataset that is not installed is one line naming the command, before any download.
        from superres.datasets.home import locate, training_source

        self.sources = [training_source(entry, config.data.root, self.scale) for entry in config.data.train]
        val_folders = {Path(v).name: locate(v, config.data.root) for v in config.data.val}
        latest = ckpt.prepare_run_dir(config, ctx, resume)
        ckpt.seed_everything(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.models = build_models(config, ctx, init=latest is None)
        self.losses = build_losses(config, ctx)
        self.opt_g = adam(self.models.generator_raw, config.optim)
        self.opt_d = adam(self.models.discriminator_raw, config.optim_d) if self.models.discriminator_raw else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
        self.step = 0
        self.nonfinite_run = 0  # steps skipped in a row for a NaN/inf loss
        self.best: dict[str, Any] | None = None
        self._rng_to_restore: dict[str, Any] | None = None
        if latest is not None:
            state = ckpt.restore(latest, ctx, self.models, self.opt_g, self.opt_d, self.scaler)
            self.step = int(state["step"])
            self.best = state["best"]
            # Restored last, right before the loop, so that nothing built in between draws from it.
            self._rng_to_restore = state["rng"]
            warn(ctx, f"resumed {self.run_dir} at step {self.step} from {latest.path.name}")

        from superres.quality.evaluation import load_benchmark

        degrade = None
        if config.data.val_degrade:
            from superres.train.degrade.recipes import get_recipe

            degrade = get_recipe(config.data.val_degrade)
        self.val_sets = (
            {name: load_benchmark(folder, self.scale, degrade) for name, folder in val_folders.items()}
            if ctx.is_main
            else {}
        )
        self.dataset = build_dataset(config, self.sources, ctx)
        ckpt.open_run_dir(config, ctx)
        self.log = RunLogger(self.run_dir, ctx.is_main, config.total_steps, self.step, config.tensorboard)

    # -------------------------------------------------------------------------------- loop

    def run(self) -> Path:
        from superres.train.data import TrainSampler, make_loader

        config = self.config
        if self.step >= config.total_steps:
            warn(self.ctx, f"already at step {self.step} of total_steps={config.total_steps}; nothing to do")
            self.log.close()
            return self.run_dir
        sampler = TrainSampler(
            len(self.dataset),
            config.seed,
            self.ctx.rank,
            self.ctx.world_size,
            start=self.step * self.batch_per_rank,
        )
        loader = make_loader(
            self.dataset,
            self.batch_per_rank,
            sampler,
            config.data.num_workers,
            config.seed,
            pin_memory=self.device.type == "cuda",
        )
        if self.ctx.is_main:
            n_params = sum(p.numel() for p in self.models.generator_raw.parameters())
            self.log.message(
                f"training {self.arch} ×{self.scale} ({n_params:,} parameters) on {len(self.dataset)} images, "
                f"{self.ctx.world_size} process(es) on {self.device}, steps {self.step}→{config.total_steps}, "
                f"run dir {self.run_dir}"
            )
        if self._rng_to_restore is not None:
            ckpt.set_rng_state(self._rng_to_restore)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        steps = 0
        timer = {"data": 0.0, "step": 0.0}
        batches = iter(loader)
        start_step = self.step
        try:
            while self.step < config.total_steps:
                t0 = time.perf_counter()
                batch = next(batches)
                t1 = time.perf_counter()
                losses = self.train_step(batch)
                self.step += 1
                timer["data"] += t1 - t0
                timer["step"] += time.perf_counter() - t0
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + value
                    counts[key] = counts.get(key, 0) + 1
                steps += 1
                self.log.advance()
                if self.step % config.log_every == 0 or self.step == config.total_steps:
                    # means over the steps that had each value; skipped steps are counted, not averaged
                    values = {k: float(v) / (1 if k == SKIPPED else counts[k]) for k, v in sums.items()}
                    if not math.isfinite(values.get("loss/g_total", 0.0)):
                        raise ConfigError(
                            f"the training loss became {values['loss/g_total']} before step {self.step}; "
                            "lower optim.lr, use precision=fp32, or check the data"
                        )
                    values["lr"] = learning_rate(config.optim, self.step - 1)
                    values["time/data_s"] = timer["data"] / steps
                    values["time/step_s"] = timer["step"] / steps
                    self.log.scalars(self.step, values)
                    sums, counts, steps, timer = {}, {}, 0, {"data": 0.0, "step": 0.0}
                final = self.step == config.total_steps
                if self.step % config.val_every == 0 or final:
                    self._validate()
                if self.step % config.save_every == 0 or (final and self.step != start_step):
                    self._save()
        finally:
            self.log.close()
            del batches
        for module in (self.models.generator_raw, self.models.discriminator_raw, self._eval_model()):
            if module is not None:
                sync_buffers(self.ctx, module)
        return self.run_dir

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        if self.config.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One generator update (and one discriminator update in GAN stages) on ``batch``."""
        config, m = self.config, self.models
        if "hr_context" in batch:
            batch = self._degrade_on_device(batch["hr_context"])
        lr_img, hr = self._to_device(batch["lr"]), self._to_device(batch["hr"])
        hr_real = self._to_device(batch["hr_real"]) if "hr_real" in batch else hr  # D sees un-sharpened HR
        for group in self.opt_g.param_groups:
            group["lr"] = learning_rate(config.optim, self.step)

        # Generator. In GAN stages D is frozen meanwhile and called unwrapped (no DDP gradient sync).
        if m.discriminator_raw is not None:
            m.discriminator_raw.requires_grad_(False)
        with autocast(config.precision, self.device):
            sr = m.generator(lr_img)
        sr = sr.float()
        stats = generator_objective(sr, hr, hr_real, self.losses, config.loss, m.discriminator_raw, config.precision)
        if (bad := first_nonfinite(self.ctx, stats)) is not None:
            self._skip(*bad)
            return {SKIPPED: torch.ones((), device=self.device)}  # no update of G, D or the EMA
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(stats["loss/g_total"]).backward()
        self.scaler.step(self.opt_g)

        # Discriminator, on the same batch: real HR against the generator's (detached) output.
        skipped = False
        if m.discriminator is not None:
            for group in self.opt_d.param_groups:
                group["lr"] = learning_rate(config.optim_d, self.step)
            d_stats, bad = discriminator_update(
                m.discriminator,
                m.discriminator_raw,
                self.opt_d,
                self.scaler,
                self.losses.gan,
                hr_real,
                sr,
                config.precision,
                self.ctx,
            )
            if bad is not None:
                self._skip(*bad)  # G's update, from finite losses, stands; D's is dropped
                skipped = True
            stats.update(d_stats)
        self.scaler.update()
        if m.ema is not None:
            m.ema.update(m.generator_raw, self.step)
        if skipped:
            stats[SKIPPED] = torch.ones((), device=self.device)
        else:
            self.nonfinite_run = 0
        # Detached tensors, not floats: reading a value would wait for the GPU every step.
        return {key: value.detach() for key, value in stats.items()}

    def _skip(self, loss: str, value: float) -> None:
        """Count a step skipped for a non-finite ``loss``; too many in a row stop the run."""
        self.nonfinite_run += 1
        limit = self.config.max_nonfinite_steps
        if self.nonfinite_run == 1:
            warn(self.ctx, f"step {self.step + 1}: {loss} is {value}; the update is skipped")
        if self.nonfinite_run >= limit:
            saved = ckpt.list_checkpoints(self.run_dir)
            last = f"the last checkpoint is step {saved[-1].step}" if saved else "no checkpoint was saved yet"
            raise ConfigError(
                f"{loss} was {value} at {limit} steps in a row (steps {self.step + 2 - limit}–{self.step + 1}); "
                f"training stopped with no NaN saved ({last}). Lower optim.lr"
                f"{' and optim_d.lr' if self.opt_d is not None else ''}, use precision=fp32, or check the data; "
                f"then --resume"
            )

    def _degrade_on_device(self, hr_context: torch.Tensor) -> dict[str, torch.Tensor]:
        """``degradation.where=device``: degrade the whole batch here, seeded by (seed, step, rank)."""
        from superres.train.degrade.pipeline import Draw, generator_for, make_pair

        draw = Draw(generator_for(self.config.seed, self.step, self.ctx.rank))
        hr = hr_context.to(self.device, non_blocking=True)
        return make_pair(hr, self.config.degradation, self.scale, draw)

    # ----------------------------------------------------------------- validation, saving

    def _eval_model(self) -> nn.Module:
        return self.models.ema.module if self.models.ema is not None else self.models.generator_raw

    def _validate(self) -> None:
        if self.ctx.is_main and self.val_sets:
            from superres.train.validation import validate_sets

            model, config = self._eval_model(), self.config
            results = validate_sets(
                model,
                self.val_sets,
                self.scale,
                self.device,
                config.channels_last,
                config.num_val_grids,
                self.step,
                self.run_dir,
                self.log,
            )
            first = next(iter(results.values()))
            if self.best is None or first.psnr > self.best["psnr"]:
                self.best = {"step": self.step, "dataset": first.name, "psnr": first.psnr, "ssim": first.ssim}
                ckpt.save_best(self.run_dir, model, self.arch, self.hparams, self._metadata(), self.best)
        self.ctx.barrier()

    def _metadata(self) -> dict[str, str]:
        return ckpt.model_metadata(self.config, self.step, self.best)

    def _save(self) -> None:
        if self.ctx.is_main:
            state = ckpt.training_state(
                self.config, self.step, self.ctx.world_size, self.models, self.opt_g, self.opt_d, self.scaler, self.best
            )
            ckpt.save_checkpoint(
                self.run_dir,
                self.step,
                self._eval_model(),
                self.arch,
                self.hparams,
                self._metadata(),
                state,
                to_yaml(self.config),
                self.config.keep_last,
            )
        self.ctx.barrier()
