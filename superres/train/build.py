"""What a run trains with, built from its config: the networks, the losses, the optimisers, the dataset.

Each builder is a plain function of the config (and of this process's place, for DDP and for
messages), so :class:`superres.train.trainer.Trainer` reads as the order in which they are called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from superres.errors import ConfigError
from superres.train.config import OptimConfig, TrainConfig
from superres.train.distributed import DistContext
from superres.train.ema import ModelEMA
from superres.train.runlog import warn

if TYPE_CHECKING:
    from superres.datasets.home import ImageSource
    from superres.train.data import TrainDataset
    from superres.train.losses import GANLoss


@dataclass
class Models:
    generator: nn.Module  # what the loop calls: DDP-wrapped when distributed
    generator_raw: nn.Module  # the network itself
    discriminator: nn.Module | None
    discriminator_raw: nn.Module | None
    ema: ModelEMA | None


@dataclass
class Losses:
    """The terms of the generator's objective; None where the config weights a term 0."""

    pixel: nn.Module | None
    perceptual: nn.Module | None
    gan: GANLoss | None


def build_models(config: TrainConfig, ctx: DistContext, init: bool) -> Models:
    """The generator (from ``init_from`` when ``init``), its EMA, and in GAN stages the discriminator."""
    from superres.models.detect import build_network

    arch, hparams = config.model.arch, config.model.hparams()
    generator = build_network(arch, hparams)
    if init and config.init_from:
        init_generator(generator, config.init_from, arch, hparams)
    generator = place(generator, ctx.device, config.channels_last)
    ema = ModelEMA(generator, config.ema_decay) if config.ema_decay > 0 else None

    discriminator = None
    if config.is_gan:
        from superres.archs import discriminators

        d_cfg = config.discriminator
        if d_cfg.arch == "VGGStyleDiscriminator":
            discriminator = discriminators.VGGStyleDiscriminator(3, d_cfg.num_feat, config.data.patch_size)
        else:
            discriminator = discriminators.SRGANDiscriminator(3, d_cfg.num_feat)
        discriminator = place(discriminator, ctx.device, config.channels_last)

    wrapped_g, wrapped_d = generator, discriminator
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped_g = DDP(generator, device_ids=ids)
        if discriminator is not None:
            wrapped_d = DDP(discriminator, device_ids=ids)
    return Models(wrapped_g, generator, wrapped_d, discriminator, ema)


def place(module: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    module = module.to(device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module.train()


def init_generator(generator: nn.Module, path: str, arch: str, hparams: dict[str, Any]) -> None:
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
    if (info.arch, info.hparams) != (arch, hparams):
        raise ConfigError(
            f"init_from: {file} is a {info.arch} with {info.hparams}, but this run trains a {arch} "
            f"with {hparams}; set the model.* options to match"
        )
    generator.load_state_dict(source.state_dict(), strict=True)


def build_losses(config: TrainConfig, ctx: DistContext) -> Losses:
    """The pixel, perceptual (VGG19) and adversarial losses whose weight is not 0 (None for the others)."""
    from superres.train import losses

    loss = config.loss
    pixel = losses.PixelLoss(loss.pixel) if loss.pixel_weight > 0 else None
    perceptual = None
    if loss.perceptual_weight > 0:
        from superres.train.vgg_weights import perceptual_extractor

        vgg = loss.vgg
        extractor = perceptual_extractor(
            vgg.layer, vgg.after_activation, vgg.weights, vgg.allow_random, progress=ctx.is_main
        )
        if extractor.weights_source == "random":
            warn(ctx, "the perceptual loss uses a RANDOM VGG19 (loss.vgg.allow_random=true): test use only")
        perceptual = losses.PerceptualLoss(extractor, vgg.criterion, vgg.feature_scale).to(ctx.device)
    gan = losses.GANLoss(loss.gan) if loss.gan != "none" else None
    if pixel is None and perceptual is None and gan is None:
        raise ConfigError("every loss weight is 0: set loss.pixel_weight, perceptual_weight or gan_weight")
    return Losses(pixel, perceptual, gan)


def adam(module: nn.Module, optim: OptimConfig) -> torch.optim.Adam:
    return torch.optim.Adam(
        module.parameters(), lr=optim.lr, betas=(optim.betas[0], optim.betas[1]), weight_decay=optim.weight_decay
    )


def build_dataset(config: TrainConfig, sources: list[ImageSource], ctx: DistContext) -> TrainDataset:
    """The training set over ``sources``: HR crops with prepared LR, bicubic LR, or synthetic degradations."""
    from superres.datasets.home import ImageSource, locate
    from superres.train.data import TrainDataset, extract_subimages, list_images, pair_lr_paths

    data = config.data
    scale = config.model.scale
    if data.subimages:
        cache = data.resolve(data.subimages)
        if ctx.is_main and not cache.is_dir():
            warn(ctx, f"extracting {data.subimage_size}px sub-images of the training images into {cache}")
            extract_subimages([s.hr for s in sources], cache, data.subimage_size, data.subimage_step)
        ctx.barrier()
        sources = [ImageSource(cache)]
    # Prepared LR is used only when every source has it: one dataset, one degradation. Synthetic
    # real-world degradations make their own LR from HR crops.
    degrading = config.degradation.enabled
    paired = not data.train_lr and not degrading and all(s.lr is not None for s in sources)
    if not paired and not degrading and any(s.prepared for s in sources):
        warn(ctx, f"not every training set is prepared for ×{scale}: LR is made from HR crops for all")
    hr_paths, lr_paths = [], []
    for i, source in enumerate(sources):
        paths = list_images(source.hr)
        hr_paths += paths
        if data.train_lr:
            lr_paths += pair_lr_paths(paths, source.hr, locate(data.train_lr[i], data.root), scale)
        elif paired:
            assert source.lr is not None
            lr_paths += pair_lr_paths(paths, source.hr, source.lr, scale)
    dataset = TrainDataset(
        hr_paths,
        scale,
        data.patch_size,
        lr_paths=lr_paths or None,
        flip=data.flip,
        rotate=data.rotate,
        quantize_lr=data.quantize_lr,
        cache_in_memory=data.cache_in_memory,
        degradation=config.degradation,
    )
    if dataset.skipped:
        warn(ctx, f"{dataset.skipped} training images are smaller than the {dataset.crop_size}px crop; skipped")
    how = f"paired with their LR ×{scale}" if lr_paths else "LR made from each crop by MATLAB-bicubic imresize"
    if degrading:
        how = "LR made from each crop by Real-ESRGAN's high-order degradations"
    prepared = "prepared sub-images" if any(s.prepared for s in sources) else "images"
    warn(ctx, f"training on {len(dataset)} {prepared} of {', '.join(data.train)}, {how}")
    return dataset
