"""Typed training configuration: dataclasses, YAML presets and ``key=value`` overrides.

The defaults are the SRGAN paper's SRResNet recipe (Ledig et al., CVPR 2017, §3.2); the presets in
``superres/presets/`` (``srresnet``, ``srgan``, ``esrgan_psnr``, ``esrgan``) state each paper's settings
with the sections they come from. A config is built from a preset or a YAML file, then overridden
by ``section.key=value`` strings; every key is checked against the dataclasses and every value is
converted to the field's type, so a typo is an error, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from superres.errors import ConfigError

# The papers' recipes and those of the bundled models: every YAML file in superres/presets/.
PRESETS = tuple(
    sorted(entry.name[: -len(".yaml")] for entry in resources.files("superres").joinpath("presets").iterdir()
           if entry.name.endswith(".yaml"))
)  # fmt: skip


@dataclass
class ModelConfig:
    """The generator. Unset (None) hyper-parameters take the architecture's own defaults."""

    arch: Literal["SRResNet", "RRDBNet", "SRVGGNetCompact"] = "SRResNet"
    scale: int = 4
    num_feat: int | None = None
    num_block: int | None = None
    num_grow_ch: int | None = None  # RRDBNet
    batch_norm: bool | None = None  # SRResNet
    num_conv: int | None = None  # SRVGGNetCompact
    act_type: str | None = None  # SRVGGNetCompact

    def hparams(self) -> dict[str, Any]:
        """Constructor kwargs of the architecture class, complete (defaults filled in)."""
        from superres.models.detect import complete_hparams, family

        entry = family(self.arch)
        options = inspect.signature(entry.network).parameters
        chosen: dict[str, Any] = {entry.scale_hparam: self.scale}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("arch", "scale") or value is None:
                continue
            if f.name not in options:
                raise ConfigError(f"model.{f.name} does not apply to {self.arch} (its options: {', '.join(options)})")
            chosen[f.name] = value
        return complete_hparams(self.arch, chosen)


@dataclass
class DiscriminatorConfig:
    """The discriminator of the GAN stage; its input size is the HR patch size."""

    arch: Literal["SRGANDiscriminator", "VGGStyleDiscriminator"] = "SRGANDiscriminator"
    num_feat: int = 64


@dataclass
class VGGConfig:
    """The VGG19 feature map of the content loss (SRGAN §2.2.1: "VGG54", after activation)."""

    layer: str = "conv5_4"
    after_activation: bool = True
    criterion: Literal["mse", "l1"] = "mse"
    feature_scale: float = 1 / 12.75  # SRGAN §3.2
    weights: str | None = None  # None: torchvision's file in torch hub's cache, downloaded on first use
    allow_random: bool = False  # tests: random features unless the weights are already here (never downloads)


@dataclass
class LossConfig:
    """Weighted sum of a pixel loss, a VGG content loss, an adversarial loss and feature matching (0 weight = off)."""

    pixel: Literal["mse", "l1"] = "mse"
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.0
    vgg: VGGConfig = field(default_factory=VGGConfig)
    gan: Literal["none", "bce", "ragan"] = "none"
    gan_weight: float = 0.0
    feature_matching_weight: float = 0.0  # L1 between D's features of SR and HR (pix2pixHD eq. 4)


@dataclass
class OptimConfig:
    """Adam with MultiStepLR: ``lr`` is multiplied by ``gamma`` at each of ``milestones`` (steps)."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5


@dataclass
class DataConfig:
    """Training images and validation sets, by dataset name (see ``superres data list``) or folder.

    Names and relative paths are looked up under ``root``; ``root`` unset means the data home
    (``$SUPERRES_DATA``, else the user cache folder), which ``superres data fetch/add`` fill. A
    dataset prepared with ``superres data prepare`` trains on its sub-images and their LR; any other
    on whole HR images, its LR made from each crop.
    """

    root: str | None = None
    train: list[str] = field(default_factory=lambda: ["DIV2K"])  # DIV2K: the training set of EDSR, ESRGAN, BasicSR
    train_lr: list[str] = field(default_factory=list)  # paired LR folders, one per train folder
    patch_size: int = 96  # HR side; SRGAN §3.2: 96×96
    batch_size: int = 16  # over all processes; SRGAN §3.2 and ESRGAN §4.1: 16
    flip: bool = True
    rotate: bool = True
    quantize_lr: bool = True
    cache_in_memory: bool = False
    subimages: str | None = None  # folder for sub-images cut on the fly (or: `superres data prepare`)
    subimage_size: int = 480
    subimage_step: int = 240
    num_workers: int = 2
    val: list[str] = field(default_factory=lambda: ["Set5", "Set14"])
    # A recipe of superres.train.degrade.recipes: validate on HR degraded by it, not on the LR files
    # (models trained with degradations are meant for such inputs, and "best" should say so).
    val_degrade: str | None = None

    def resolve(self, path: str) -> Path:
        """A folder the run writes (``subimages``): absolute, or under ``root`` (the working folder if unset)."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.root or ".").expanduser() / candidate


@dataclass
class StageConfig:
    """One stage of Real-ESRGAN's degradation model: blur → resize → noise → JPEG (§3.2, Fig. 2).

    Defaults: the first stage of the authors' ``options/train_realesrnet_x4plus.yml``. Probability
    lists are over ``KERNEL_TYPES`` (iso, aniso, generalized_iso, generalized_aniso, plateau_iso,
    plateau_aniso) and over (up, down, keep) for ``resize_prob``. Noise σ is in 8-bit levels.
    """

    blur_prob: float = 1.0
    kernel_prob: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob: float = 0.1  # a sinc kernel instead of one of the above (ringing, §3.2)
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])  # generalized Gaussian β
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])  # plateau β
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])
    resize_range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: list[float] = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])

    def validate(self, name: str) -> None:
        for key in ("blur_prob", "sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{name}.{key} is a probability in [0, 1], got {getattr(self, key)}")
        for key, count in (("kernel_prob", 6), ("resize_prob", 3)):
            probs = getattr(self, key)
            if len(probs) != count or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
                raise ConfigError(f"{name}.{key} must be {count} non-negative probabilities summing to 1, got {probs}")
        for key, low in (("blur_sigma", 1e-3), ("betag_range", 1e-3), ("betap_range", 1e-3), ("resize_range", 1e-3),
                         ("noise_range", 0.0), ("poisson_scale_range", 0.0), ("jpeg_range", 1.0)):  # fmt: skip
            pair = getattr(self, key)
            if len(pair) != 2 or not low <= pair[0] <= pair[1]:
                raise ConfigError(f"{name}.{key} must be [low, high] with {low} <= low <= high, got {pair}")
        if self.jpeg_range[1] > 100:
            raise ConfigError(f"{name}.jpeg_range: JPEG quality goes up to 100, got {self.jpeg_range}")
        if not self.resize_range[0] <= 1.0 <= self.resize_range[1]:
            raise ConfigError(f"{name}.resize_range must contain 1 (split there: down, up), got {self.resize_range}")


def _stage2_defaults() -> StageConfig:
    # train_realesrnet_x4plus.yml, "the second degradation process"
    return StageConfig(
        blur_prob=0.8,
        blur_sigma=[0.2, 1.5],
        resize_prob=[0.3, 0.4, 0.3],
        resize_range=[0.3, 1.2],
        noise_range=[1.0, 25.0],
        poisson_scale_range=[0.05, 2.5],
    )


@dataclass
class DegradationConfig:
    """Synthetic real-world degradations of the HR patch (Real-ESRGAN, Wang et al., ICCVW 2021).

    Off by default: the papers' presets learn MATLAB bicubic. On, the LR comes from the "high-order"
    model of Real-ESRGAN §3.2 — two stages (``first``, ``second``), then the final resize and a sinc
    filter and JPEG in random order — and the target is unsharp-masked (§4.1, ``usm_target``).
    ``where``: ``loader`` degrades each sample in the DataLoader workers (every draw per sample);
    ``device`` degrades whole batches on the training device, the resize and noise type drawn per
    batch as in the authors' code. Each HR crop takes ``margin`` extra pixels per side for context,
    cropped away after degrading, so borders are not all reflections.
    """

    enabled: bool = False
    kernel_range: list[int] = field(default_factory=lambda: [7, 21])  # odd sizes in it, uniformly
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = field(default_factory=_stage2_defaults)
    final_sinc_prob: float = 0.8
    # Chance that a bilinear/bicubic shrink is antialiased, as Pillow, browsers, phones and MATLAB's
    # imresize resize; the authors' code never antialiases (F.interpolate's default), hence 0.
    antialias_prob: float = 0.0
    usm_target: bool = True  # the authors' gt_usm: pixel (and perceptual) targets are sharpened
    usm_weight: float = 0.5
    usm_radius: int = 50
    usm_threshold: float = 10.0
    margin: int = 16  # HR pixels per side; a multiple of the scale
    where: Literal["loader", "device"] = "loader"

    def validate(self, scale: int) -> None:
        low, high = self.kernel_range if len(self.kernel_range) == 2 else (0, 0)
        if not (3 <= low <= high and low % 2 and high % 2):
            raise ConfigError(f"degradation.kernel_range: two odd sizes [low, high], low >= 3; got {self.kernel_range}")
        for key in ("final_sinc_prob", "antialias_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"degradation.{key} is a probability in [0, 1], got {getattr(self, key)}")
        if self.margin < 0 or self.margin % scale:
            raise ConfigError(f"degradation.margin must be a multiple of the scale {scale} (or 0), got {self.margin}")
        self.first.validate("degradation.first")
        self.second.validate("degradation.second")


@dataclass
class TrainConfig:
    name: str = "srresnet"
    output_dir: str = "runs"  # the run lives in output_dir/name
    seed: int = 0
    total_steps: int = 1_000_000  # SRGAN §3.2: SRResNet for 10⁶ updates
    init_from: str | None = None  # generator weights to start from (GAN stages: the PSNR model)
    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)  # generator
    optim_d: OptimConfig = field(default_factory=OptimConfig)  # discriminator
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    ema_decay: float = 0.0  # 0 = off; e.g. 0.999 keeps an exponential moving average of G
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = True
    threads: int = 0  # CPU threads for torch; 0 = torch's default (all cores)
    val_every: int = 5000
    save_every: int = 5000
    keep_last: int = 3
    log_every: int = 100
    num_val_grids: int = 3
    tensorboard: bool = True
    # A step whose loss is NaN/inf is skipped (no update); this many in a row stop the run (Trainer.train_step)
    max_nonfinite_steps: int = 10

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir).expanduser() / self.name

    @property
    def is_gan(self) -> bool:
        return self.loss.gan != "none"

    def validate(self) -> None:
        """Cross-field checks that single field types cannot express."""
        if self.total_steps < 1:
            raise ConfigError("total_steps must be at least 1")
        for name in ("val_every", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 0 <= self.threads <= (os.cpu_count() or 1):
            raise ConfigError(f"threads must be 0 (torch's default) or a count up to {os.cpu_count()} (the CPUs here)")
        if self.keep_last < 1:
            raise ConfigError("keep_last must be at least 1")
        if self.max_nonfinite_steps < 1:
            raise ConfigError("max_nonfinite_steps must be at least 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.data.patch_size % self.model.scale:
            raise ConfigError(f"data.patch_size {self.data.patch_size} is not a multiple of model.scale {self.model.scale}")
        if self.data.train_lr and len(self.data.train_lr) != len(self.data.train):
            raise ConfigError("data.train_lr needs one LR folder per data.train folder")
        if self.data.train_lr and self.data.subimages:
            raise ConfigError("data.subimages works on HR-only data; it cannot be combined with data.train_lr")
        if self.data.val_degrade is not None:
            from superres.train.degrade.recipes import get_recipe

            get_recipe(self.data.val_degrade)
        if self.degradation.enabled:
            self.degradation.validate(self.model.scale)
            if self.data.train_lr:
                raise ConfigError("degradation makes the LR from HR crops; it cannot be combined with data.train_lr")
        if self.is_gan and self.loss.gan_weight <= 0:
            raise ConfigError(f"loss.gan={self.loss.gan} needs a positive loss.gan_weight")
        if self.loss.feature_matching_weight > 0 and not self.is_gan:
            raise ConfigError("loss.feature_matching_weight needs a discriminator: set loss.gan (e.g. ragan)")
        if self.is_gan and self.discriminator.arch == "VGGStyleDiscriminator" and self.data.patch_size % 32:
            raise ConfigError("VGGStyleDiscriminator needs data.patch_size to be a multiple of 32")
        if len(self.optim.betas) != 2 or len(self.optim_d.betas) != 2:
            raise ConfigError("Adam betas are two numbers, e.g. [0.9, 0.999]")
        self.model.hparams()


# Settings that may change when a run is resumed; anything else must match the saved config.
RESUMABLE_CHANGES = frozenset(
    {"total_steps", "val_every", "save_every", "keep_last", "log_every", "num_val_grids", "tensorboard",
     "device", "threads", "precision", "channels_last", "data.num_workers", "data.root", "max_nonfinite_steps"}
)  # fmt: skip


# --------------------------------------------------------------------------------- loading


def load_config(preset_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Build a config from a preset name or a YAML file, then apply ``key=value`` overrides."""
    data = read_yaml_source(preset_or_path)
    config = from_dict(TrainConfig, data, "")
    for item in overrides:
        apply_override(config, item)
    config.validate()
    return config


def read_yaml_source(preset_or_path: str | Path) -> dict[str, Any]:
    path = Path(preset_or_path).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        origin = str(path)
    elif str(preset_or_path) in PRESETS:
        text = resources.files("superres").joinpath("presets", f"{preset_or_path}.yaml").read_text(encoding="utf-8")
        origin = f"preset {preset_or_path}"
    else:
        raise ConfigError(f"{preset_or_path!r} is neither a YAML file nor a preset ({', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a mapping of settings, not {type(data).__name__}")
    return data


def from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys are errors, values converted to field types."""
    return _update(cls(), data, prefix)


def _update(target: Any, data: dict[str, Any], prefix: str) -> Any:
    """Set the keys of ``data`` on the dataclass ``target``, recursing into sections.

    A section given in part keeps the field's own defaults for the rest (``degradation.second``
    defaults differ from ``StageConfig``'s), as ``key=value`` overrides do.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(type(target))
    unknown = sorted(set(data) - set(_field_names(target)))
    if unknown:
        raise ConfigError(f"unknown setting {prefix}{unknown[0]}{_known(target)}")
    for name, value in data.items():
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            _update(getattr(target, name), value, f"{prefix}{name}.")
        else:
            setattr(target, name, convert(value, hints[name], f"{prefix}{name}"))
    return target


def apply_override(config: TrainConfig, item: str) -> None:
    """Apply one ``a.b.c=value`` override in place, converting ``value`` to the field's type."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-4)")
    *parents, leaf = key.split(".")
    target: Any = config
    for i, part in enumerate(parents):
        if not dataclasses.is_dataclass(target) or part not in _field_names(target):
            raise ConfigError(f"unknown setting {'.'.join(parents[: i + 1])} in override {item!r}{_known(target)}")
        target = getattr(target, part)
    if not dataclasses.is_dataclass(target) or leaf not in _field_names(target):
        raise ConfigError(f"unknown setting {key} in override {item!r}{_known(target)}")
    hint = typing.get_type_hints(type(target))[leaf]
    if dataclasses.is_dataclass(hint):
        raise ConfigError(f"{key} is a section; set its fields, e.g. {key}.<field>=…")
    setattr(target, leaf, convert(_parse_scalar(raw.strip()), hint, key))


def _field_names(obj: Any) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(obj))


def _known(obj: Any) -> str:
    return f" (known: {', '.join(_field_names(obj))})" if dataclasses.is_dataclass(obj) else ""


def _parse_scalar(raw: str) -> Any:
    """An override's value: YAML syntax for lists ("[1, 2]"), the plain string otherwise."""
    if raw.startswith("["):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse list {raw!r}: {exc}") from exc
    return raw


_NONE_WORDS = {"none", "null", "~", ""}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


def convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` (from YAML or the command line) as type ``hint``, or a ConfigError naming ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(value, inner[0], key)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, f"{key}.")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        return _to_int(value, key)
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(number):  # "nan" and "inf" parse as floats, and would train nothing
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _to_int(value: Any, key: str) -> int:
    """An integer, also from "1e6" / 2e5 as step counts are usually written."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    return int(number)


# --------------------------------------------------------------------------------- saving


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = sorted(set(old) | set(new))
    diffs: list[str] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}")
    return diffs
