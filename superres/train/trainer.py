"""The training loop: PSNR-oriented (SRResNet, RRDB-PSNR) and adversarial (SRGAN, ESRGAN) stages.

One loop serves all four presets. Each update of the generator minimises

    pixel_weight · L_pixel + perceptual_weight · L_VGG + gan_weight · L_G^adv + feature_matching_weight · L_FM

(SRGAN eq. 3, ESRGAN eq. 3, pix2pixHD eq. 4; a weight of 0 switches a term off). In GAN stages the discriminator
is then updated once on the same batch. Everything random is a function of the seed and the step,
so a resumed run continues bit for bit as the uninterrupted run would have (on CPU).

A loss that is NaN or inf (a GAN's discriminator saturating, an fp16 overflow, a broken image) would
turn every weight into NaN with one optimiser step, and every checkpoint after it with them. Such a
step is skipped instead — no update of G, D or the EMA — and counted in the log
(``train/skipped_steps``); ``max_nonfinite_steps`` skipped steps in a row stop the run with a message
naming the loss. :func:`superres.models.weights.save_network` refuses non-finite weights besides, so no
checkpoint can hold NaN.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from superres.errors import ConfigError
from superres.train import checkpoints as ckpt
from superres.train.config import (
    RESUMABLE_CHANGES,
    OptimConfig,
    TrainConfig,
    config_differences,
    from_dict,
    to_dict,
    to_yaml,
)
from superres.train.distributed import (
    DistContext,
    all_true,
    broadcast_object,
    setup,
    sync_buffers,
    teardown,
)
from superres.train.ema import ModelEMA
from superres.train.runlog import RunLogger

STATE_FORMAT = 1
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


@dataclass
class Models:
    generator: nn.Module  # what the loop calls: DDP-wrapped when distributed
    generator_raw: nn.Module  # the network itself
    discriminator: nn.Module | None
    discriminator_raw: nn.Module | None
    ema: ModelEMA | None


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
        latest = self._prepare_run_dir(resume)
        _seed_everything(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.models = self._build_models(init=latest is None)
        self.pixel_loss, self.perceptual_loss, self.gan_loss = self._build_losses()
        self.opt_g = _adam(self.models.generator_raw, config.optim)
        self.opt_d = _adam(self.models.discriminator_raw, config.optim_d) if self.models.discriminator_raw else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
        self.step = 0
        self.nonfinite_run = 0  # steps skipped in a row for a NaN/inf loss
        self.best: dict[str, Any] | None = None
        self._rng_to_restore: dict[str, Any] | None = None
        if latest is not None:
            self._restore(latest)

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
        self.dataset = self._build_dataset()
        self._open_run_dir()
        self.log = RunLogger(self.run_dir, ctx.is_main, config.total_steps, self.step, config.tensorboard)

    # ------------------------------------------------------------------------------- set-up

    def _prepare_run_dir(self, resume: bool) -> ckpt.Checkpoint | None:
        """Check that the run directory may be used; returns the checkpoint to resume from, if any."""
        run_dir, config = self.run_dir, self.config
        error: str | None = None
        latest: ckpt.Checkpoint | None = None
        if self.ctx.is_main:
            exists = run_dir.is_dir() and any(run_dir.iterdir())
            if resume and not run_dir.is_dir():
                error = f"nothing to resume: {run_dir} does not exist (run without --resume to start)"
            elif not resume and exists:
                error = (
                    f"{run_dir} already holds a run; add --resume to continue it, or choose another "
                    "name=… or output_dir=…"
                )
            elif resume:
                saved = run_dir / ckpt.CONFIG_FILE
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
        error = broadcast_object(self.ctx, error)
        if error:
            raise ConfigError(str(error))
        if resume:
            checkpoints = ckpt.list_checkpoints(run_dir)
            latest = checkpoints[-1] if checkpoints else None
        return latest

    def _open_run_dir(self) -> None:
        """Create the run directory once everything is set up, so a failed start leaves nothing behind."""
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_partial_checkpoints(self.run_dir)
            _write_text_atomic(self.run_dir / ckpt.CONFIG_FILE, to_yaml(self.config))
        self.ctx.barrier()

    def _build_models(self, init: bool) -> Models:
        from superres.models.detect import build_network

        config = self.config
        generator = build_network(self.arch, self.hparams)
        if init and config.init_from:
            self._init_generator(generator, config.init_from)
        generator = self._place(generator)
        ema = ModelEMA(generator, config.ema_decay) if config.ema_decay > 0 else None

        discriminator = None
        if config.is_gan:
            from superres.archs import discriminators

            d_cfg = config.discriminator
            if d_cfg.arch == "VGGStyleDiscriminator":
                discriminator = discriminators.VGGStyleDiscriminator(3, d_cfg.num_feat, config.data.patch_size)
            else:
                discriminator = discriminators.SRGANDiscriminator(3, d_cfg.num_feat)
            discriminator = self._place(discriminator)

        wrapped_g, wrapped_d = generator, discriminator
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped_g = DDP(generator, device_ids=ids)
            if discriminator is not None:
                wrapped_d = DDP(discriminator, device_ids=ids)
        return Models(wrapped_g, generator, wrapped_d, discriminator, ema)

    def _place(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        if self.config.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module.train()

    def _init_generator(self, generator: nn.Module, path: str) -> None:
        """Start from a trained model (GAN stages start from the PSNR-oriented one)."""
        from superres.errors import WeightsError
        from superres.models.registry import resolve
        from superres.models.weights import load_network

        try:  # a file, or the name of a bundled or cached model (e.g. superres-x4)
            file = resolve(path, download=False)
        except WeightsError:
            raise ConfigError(
                f"init_from: {path} not found; train the PSNR-oriented stage first "
                "(e.g. `superres train srresnet` or `superres train esrgan_psnr`) or set init_from=PATH"
            ) from None
        source, info = load_network(file)
        if (info.arch, info.hparams) != (self.arch, self.hparams):
            raise ConfigError(
                f"init_from: {file} is a {info.arch} with {info.hparams}, but this run trains a {self.arch} "
                f"with {self.hparams}; set the model.* options to match"
            )
        generator.load_state_dict(source.state_dict(), strict=True)

    def _build_losses(self) -> tuple[nn.Module | None, nn.Module | None, Any]:
        from superres.train import losses

        config = self.config.loss
        pixel = losses.PixelLoss(config.pixel) if config.pixel_weight > 0 else None
        perceptual = None
        if config.perceptual_weight > 0:
            from superres.train.vgg_weights import perceptual_extractor

            vgg = config.vgg
            extractor = perceptual_extractor(
                vgg.layer, vgg.after_activation, vgg.weights, vgg.allow_random, progress=self.ctx.is_main
            )
            if extractor.weights_source == "random":
                self._warn("the perceptual loss uses a RANDOM VGG19 (loss.vgg.allow_random=true): test use only")
            perceptual = losses.PerceptualLoss(extractor, vgg.criterion, vgg.feature_scale).to(self.device)
        gan = losses.GANLoss(config.gan) if config.gan != "none" else None
        if pixel is None and perceptual is None and gan is None:
            raise ConfigError("every loss weight is 0: set loss.pixel_weight, perceptual_weight or gan_weight")
        return pixel, perceptual, gan

    def _build_dataset(self):
        from superres.datasets.home import ImageSource, locate
        from superres.train.data import TrainDataset, extract_subimages, list_images, pair_lr_paths

        data = self.config.data
        sources = self.sources
        if data.subimages:
            cache = data.resolve(data.subimages)
            if self.ctx.is_main and not cache.is_dir():
                self._warn(f"extracting {data.subimage_size}px sub-images of the training images into {cache}")
                extract_subimages([s.hr for s in sources], cache, data.subimage_size, data.subimage_step)
            self.ctx.barrier()
            sources = [ImageSource(cache)]
        # Prepared LR is used only when every source has it: one dataset, one degradation. Synthetic
        # real-world degradations make their own LR from HR crops.
        degrading = self.config.degradation.enabled
        paired = not data.train_lr and not degrading and all(s.lr is not None for s in sources)
        if not paired and not degrading and any(s.prepared for s in sources):
            self._warn(f"not every training set is prepared for ×{self.scale}: LR is made from HR crops for all")
        hr_paths, lr_paths = [], []
        for i, source in enumerate(sources):
            paths = list_images(source.hr)
            hr_paths += paths
            if data.train_lr:
                lr_paths += pair_lr_paths(paths, source.hr, locate(data.train_lr[i], data.root), self.scale)
            elif paired:
                assert source.lr is not None
                lr_paths += pair_lr_paths(paths, source.hr, source.lr, self.scale)
        dataset = TrainDataset(
            hr_paths,
            self.scale,
            data.patch_size,
            lr_paths=lr_paths or None,
            flip=data.flip,
            rotate=data.rotate,
            quantize_lr=data.quantize_lr,
            cache_in_memory=data.cache_in_memory,
            degradation=self.config.degradation,
        )
        if dataset.skipped:
            self._warn(f"{dataset.skipped} training images are smaller than the {dataset.crop_size}px crop; skipped")
        how = (
            f"paired with their LR ×{self.scale}" if lr_paths else "LR made from each crop by MATLAB-bicubic imresize"
        )
        if degrading:
            how = "LR made from each crop by Real-ESRGAN's high-order degradations"
        prepared = "prepared sub-images" if any(s.prepared for s in sources) else "images"
        self._warn(f"training on {len(dataset)} {prepared} of {', '.join(data.train)}, {how}")
        return dataset

    def _warn(self, text: str) -> None:
        if self.ctx.is_main:
            print(f"superres train: {text}", flush=True)

    # ------------------------------------------------------------------------------ resume

    def _training_state(self) -> dict[str, Any]:
        m = self.models
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "world_size": self.ctx.world_size,
            "generator": m.generator_raw.state_dict(),
            "ema": m.ema.state_dict() if m.ema else None,
            "discriminator": m.discriminator_raw.state_dict() if m.discriminator_raw else None,
            "optim_g": self.opt_g.state_dict(),
            "optim_d": self.opt_d.state_dict() if self.opt_d else None,
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "best": self.best,
            "config": to_dict(self.config),
        }

    def _restore(self, checkpoint: ckpt.Checkpoint) -> None:
        state = ckpt.load_training_state(checkpoint)
        if state.get("format") != STATE_FORMAT:
            raise ConfigError(f"{checkpoint.state} has an unknown format {state.get('format')!r}")
        if state["world_size"] != self.ctx.world_size:
            self._warn(
                f"resuming a {state['world_size']}-process run with {self.ctx.world_size} processes: "
                "the data order will differ from an uninterrupted run"
            )
        m = self.models
        m.generator_raw.load_state_dict(state["generator"])
        if m.ema is not None:
            m.ema.load_state_dict(state["ema"] if state["ema"] is not None else state["generator"])
        if m.discriminator_raw is not None:
            if state["discriminator"] is None:
                raise ConfigError(f"{checkpoint.path} has no discriminator; it is not from a GAN stage")
            m.discriminator_raw.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["optim_d"])
        self.opt_g.load_state_dict(state["optim_g"])
        if state["scaler"] and self.scaler.is_enabled():  # fp16 before and now (precision may change)
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = state["best"]
        # Restored last, right before the loop, so that nothing built in between draws from it.
        self._rng_to_restore = state["rng"]
        self._warn(f"resumed {self.run_dir} at step {self.step} from {checkpoint.path.name}")

    # -------------------------------------------------------------------------------- loop

    def run(self) -> Path:
        from superres.train.data import TrainSampler, make_loader

        config = self.config
        if self.step >= config.total_steps:
            self._warn(f"already at step {self.step} of total_steps={config.total_steps}; nothing to do")
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
            _set_rng_state(self._rng_to_restore)
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

    def _autocast(self):
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

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
        stats: dict[str, torch.Tensor] = {}

        # Generator. In GAN stages D is frozen meanwhile and called unwrapped (no DDP gradient sync).
        if m.discriminator_raw is not None:
            m.discriminator_raw.requires_grad_(False)
        with self._autocast():
            sr = m.generator(lr_img)
        sr = sr.float()
        total = torch.zeros((), device=self.device)
        if self.pixel_loss is not None:
            stats["loss/pixel"] = self.pixel_loss(sr, hr)
            total = total + config.loss.pixel_weight * stats["loss/pixel"]
        if self.perceptual_loss is not None:
            with self._autocast():
                stats["loss/perceptual"] = self.perceptual_loss(sr, hr).float()
            total = total + config.loss.perceptual_weight * stats["loss/perceptual"]
        if self.gan_loss is not None:
            matching = config.loss.feature_matching_weight > 0
            with self._autocast():
                fake_logits, fake_features = m.discriminator_raw.forward_features(sr)
                real_logits = real_features = None
                if self.gan_loss.needs_real_logits_for_g or matching:
                    with torch.no_grad():
                        real_logits, real_features = m.discriminator_raw.forward_features(hr_real)
            real_logits = real_logits.float() if self.gan_loss.needs_real_logits_for_g else None
            stats["loss/g_adv"] = self.gan_loss.g_loss(real_logits, fake_logits.float())
            total = total + config.loss.gan_weight * stats["loss/g_adv"]
            if matching:
                from superres.train.losses import feature_matching_loss

                fm = feature_matching_loss([f.float() for f in fake_features], [f.float() for f in real_features])
                stats["loss/feature_matching"] = fm
                total = total + config.loss.feature_matching_weight * fm
        stats["loss/g_total"] = total
        if (bad := self._nonfinite(stats)) is not None:
            self._skip(*bad)
            return {SKIPPED: torch.ones((), device=self.device)}  # no update of G, D or the EMA
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)

        # Discriminator, on the same batch: real HR against the generator's (detached) output.
        skipped = False
        if m.discriminator is not None:
            m.discriminator_raw.requires_grad_(True)
            for group in self.opt_d.param_groups:
                group["lr"] = learning_rate(config.optim_d, self.step)
            with self._autocast():
                real_logits = m.discriminator(hr_real).float()
                fake_logits = m.discriminator(sr.detach()).float()
            loss_d = self.gan_loss.d_loss(real_logits, fake_logits)
            if (bad := self._nonfinite({"loss/d": loss_d})) is not None:
                self._skip(*bad)  # G's update, from finite losses, stands; D's is dropped
                skipped = True
            else:
                self.opt_d.zero_grad(set_to_none=True)
                self.scaler.scale(loss_d).backward()
                self.scaler.step(self.opt_d)
                stats["loss/d"] = loss_d
                stats["d/real_logit"] = real_logits.mean()
                stats["d/fake_logit"] = fake_logits.mean()
        self.scaler.update()
        if m.ema is not None:
            m.ema.update(m.generator_raw, self.step)
        if skipped:
            stats[SKIPPED] = torch.ones((), device=self.device)
        else:
            self.nonfinite_run = 0
        # Detached tensors, not floats: reading a value would wait for the GPU every step.
        return {key: value.detach() for key, value in stats.items()}

    def _nonfinite(self, losses: dict[str, torch.Tensor]) -> tuple[str, float] | None:
        """The first loss that is NaN or inf (name, value), on any rank; None when all are finite.

        Reading the verdict waits for the device once per step: the price of never applying a NaN update.
        """
        stacked = torch.stack([value.detach().float().reshape(()) for value in losses.values()])
        finite = torch.isfinite(stacked)
        if all_true(self.ctx, finite.all()):
            return None
        for (name, value), ok in zip(losses.items(), finite.tolist()):
            if not ok:
                return name, float(value.detach())
        return "a loss on another process", float("nan")

    def _skip(self, loss: str, value: float) -> None:
        """Count a step skipped for a non-finite ``loss``; too many in a row stop the run."""
        self.nonfinite_run += 1
        limit = self.config.max_nonfinite_steps
        if self.nonfinite_run == 1:
            self._warn(f"step {self.step + 1}: {loss} is {value}; the update is skipped")
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
            from superres.train.validation import validate

            model = self._eval_model()
            results = {}
            for name, images in self.val_sets.items():
                result = validate(
                    model, name, images, self.scale, self.device, self.config.channels_last, self.config.num_val_grids
                )
                results[name] = result
                self.log.scalars(self.step, {f"val/{name}/psnr": result.psnr, f"val/{name}/ssim": result.ssim}, False)
                self._write_grids(name, result.grids)
            first = next(iter(results.values()))
            self.log.message(
                f"step {self.step}: "
                + ", ".join(f"{r.name} PSNR {r.psnr:.2f} dB SSIM {r.ssim:.4f}" for r in results.values())
            )
            if self.best is None or first.psnr > self.best["psnr"]:
                self.best = {"step": self.step, "dataset": first.name, "psnr": first.psnr, "ssim": first.ssim}
                ckpt.save_best(self.run_dir, model, self.arch, self.hparams, self._metadata(), self.best)
        self.ctx.barrier()

    def _write_grids(self, dataset: str, grids: dict[str, np.ndarray]) -> None:
        from superres.imageio import ImageData, write_image

        if not grids:
            return
        folder = self.run_dir / "samples" / f"step_{self.step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, grid in grids.items():
            write_image(folder / f"{dataset}_{name}.png", ImageData(grid), overwrite=True)  # atomic
            self.log.image(self.step, f"samples/{dataset}/{name}", grid)

    def _metadata(self) -> dict[str, str]:
        config = self.config
        matching = config.loss.feature_matching_weight
        meta = {
            "trained_by": "superres train",
            "run": config.name,
            "step": str(self.step),
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
        if self.best is not None:
            meta["best_val"] = f"{self.best['dataset']} PSNR {self.best['psnr']:.3f} SSIM {self.best['ssim']:.4f}"
        return meta

    def _save(self) -> None:
        if self.ctx.is_main:
            ckpt.save_checkpoint(
                self.run_dir,
                self.step,
                self._eval_model(),
                self.arch,
                self.hparams,
                self._metadata(),
                self._training_state(),
                to_yaml(self.config),
                self.config.keep_last,
            )
        self.ctx.barrier()


# ------------------------------------------------------------------------------------ helpers


def _adam(module: nn.Module, optim: OptimConfig) -> torch.optim.Adam:
    return torch.optim.Adam(
        module.parameters(), lr=optim.lr, betas=(optim.betas[0], optim.betas[1]), weight_decay=optim.weight_decay
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }  # fmt: skip


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` needs the nested tuples that serialisation may have turned into lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _write_text_atomic(path: Path, text: str) -> None:
    from superres.imageio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
