"""Real-ESRGAN's degradation model: each operator against its definition, the pipeline's determinism,
the training loader's use of it, and the fixed benchmark recipes."""

from __future__ import annotations

import io
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from superres.errors import ConfigError
from superres.train.config import DegradationConfig, StageConfig
from superres.train.degrade import kernels as K
from superres.train.degrade.jpeg import jpeg, jpeg_roundtrip
from superres.train.degrade.noise import gaussian_noise, poisson_noise
from superres.train.degrade.pipeline import Draw, degrade, generator_for, make_pair
from superres.train.degrade.recipes import RECIPES, get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------ kernels


def _moments(kernel: torch.Tensor) -> np.ndarray:
    """The kernel's covariance matrix [[E x², E xy], [E xy, E y²]] (x along columns)."""
    k = kernel.double()
    axis = torch.arange(k.shape[0], dtype=torch.float64) - k.shape[0] // 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return np.array([[float((k * x * x).sum()), float((k * x * y).sum())],
                     [float((k * x * y).sum()), float((k * y * y).sum())]])  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [
        lambda: K.gaussian_kernel(21, 2.0),
        lambda: K.gaussian_kernel(15, 2.5, 0.7, 1.1),
        lambda: K.generalized_gaussian_kernel(21, 1.5, 0.8, -0.4, 0.6),
        lambda: K.generalized_gaussian_kernel(9, 1.0, 2.0, 2.0, 3.5),
        lambda: K.plateau_kernel(21, 1.2, 2.4, 0.3, 1.7),
        lambda: K.sinc_kernel(13, math.pi / 4),
        lambda: K.sinc_kernel(7, math.pi / 2, pad_to=21),
    ],
)
def test_every_kernel_sums_to_one_and_is_point_symmetric(make):
    kernel = make()
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert float(kernel.double().sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(kernel, kernel.flip(0, 1), atol=1e-7)


def test_gaussian_kernel_has_the_covariance_of_its_definition():
    # Σ = R diag(σx², σy²) Rᵀ (Real-ESRGAN eq. 1); a 31-px kernel holds ±5σ, so truncation is negligible.
    sx, sy, theta = 3.0, 1.0, 0.5
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    expected = rotation @ np.diag([sx**2, sy**2]) @ rotation.T
    assert np.allclose(_moments(K.gaussian_kernel(31, sx, sy, theta)), expected, atol=2e-3)
    iso = _moments(K.gaussian_kernel(21, 1.5))
    assert np.allclose(iso, np.diag([2.25, 2.25]), atol=1e-4)


def test_generalized_and_plateau_kernels_follow_their_formulas():
    # β = 1: the generalized Gaussian is the Gaussian.
    assert torch.allclose(K.generalized_gaussian_kernel(21, 2.0, 1.0, 0.3, 1.0), K.gaussian_kernel(21, 2.0, 1.0, 0.3))
    # Plateau: k(C) / k(0) = 1 / (1 + (Cᵀ Σ⁻¹ C)^β); isotropic σ = 2 at C = (3, 0): q = 9/4.
    plateau = K.plateau_kernel(21, 2.0, 2.0, 0.0, 1.5)
    assert float(plateau[10, 13] / plateau[10, 10]) == pytest.approx(1 / (1 + 2.25**1.5), rel=1e-5)
    # Generalized: k(C) / k(0) = exp(-½ q^β).
    general = K.generalized_gaussian_kernel(21, 2.0, 2.0, 0.0, 0.5)
    assert float(general[10, 13] / general[10, 10]) == pytest.approx(math.exp(-0.5 * 2.25**0.5), rel=1e-5)
    # β > 1: a flatter top than the Gaussian's near the centre.
    flat_top, gaussian = K.generalized_gaussian_kernel(21, 2.0, 2.0, 0, 4.0), K.gaussian_kernel(21, 2.0)
    assert float(flat_top[10, 11] / flat_top[10, 10]) > 0.99 > float(gaussian[10, 11] / gaussian[10, 10])


def test_sinc_kernel_is_a_low_pass_filter_with_its_cutoff():
    cutoff = math.pi / 3
    kernel = K.sinc_kernel(21, cutoff).double()
    response = torch.fft.fft(F.pad(kernel.sum(0), (0, 1024 - 21))).abs()  # the response along one axis
    omega = torch.arange(1024) * 2 * math.pi / 1024
    assert float(response[omega < 0.6 * cutoff].min()) > 0.85
    assert float(response[(omega > 1.6 * cutoff) & (omega < math.pi)].max()) < 0.15
    # The r = 0 limit ω²/4π is continuous with its neighbours (before normalization).
    assert float(kernel[10, 10]) > float(kernel[10, 11]) > 0


def test_filter2d_is_conv2d_with_reflected_borders_per_sample():
    images = torch.rand(3, 3, 23, 31)
    kernels = torch.rand(3, 9, 9)  # arbitrary, not symmetric: the correlation convention is tested too
    expected = torch.cat(
        [F.conv2d(F.pad(images[i : i + 1], (4, 4, 4, 4), mode="reflect"), kernels[i].expand(3, 1, 9, 9), groups=3)
         for i in range(3)]
    )  # fmt: skip
    assert torch.allclose(K.filter2d(images, kernels), expected, atol=1e-5)
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(K.filter2d(flat, K.gaussian_kernel(21, 3.0)), flat, atol=1e-6)  # a kernel of sum 1


def test_usm_sharpens_edges_and_leaves_flat_areas():
    flat = torch.full((1, 3, 64, 64), 0.4)
    assert torch.allclose(K.usm_sharpen(flat), flat, atol=1e-6)
    step = torch.zeros(1, 3, 64, 64)
    step[..., 32:] = 0.6
    step += 0.2
    sharp = K.usm_sharpen(step)
    assert float(sharp[0, 0, 32, 31]) < 0.2 and float(sharp[0, 0, 32, 32]) > 0.8  # overshoot on both sides
    assert float(sharp.min()) >= 0 and float(sharp.max()) <= 1


# -------------------------------------------------------------------------------------- noise


def test_gaussian_noise_has_its_sigma_and_gray_noise_is_shared_by_the_channels():
    images = torch.full((2, 3, 128, 128), 0.5)
    sigma, gray = torch.tensor([4.0, 20.0]), torch.tensor([0.0, 1.0])
    noise = gaussian_noise(images, sigma, gray, torch.Generator().manual_seed(1))
    assert float(noise[0].std()) == pytest.approx(4 / 255, rel=0.03)
    assert float(noise[1].std()) == pytest.approx(20 / 255, rel=0.03)
    assert abs(float(noise[0].mean())) < 3e-4
    assert torch.equal(noise[1, 0], noise[1, 2])  # gray: one plane for all channels
    assert not torch.equal(noise[0, 0], noise[0, 2])  # colour: independent channels


def test_poisson_noise_variance_is_proportional_to_the_level():
    # 256 distinct levels → 256 photons at full scale: Var = scale² · level / 256, mean 0.
    levels = torch.arange(256, dtype=torch.float32) / 255
    images = levels.view(1, 1, 1, 256).expand(1, 3, 400, 256).contiguous()
    scale = 2.0
    noise = poisson_noise(images, scale, False, torch.Generator().manual_seed(2))[0]
    variance = noise.var(dim=(0, 1)).double()
    expected = scale**2 * levels.double() / 256
    bright = levels > 0.2
    assert float(variance[bright].sum() / expected[bright].sum()) == pytest.approx(1.0, abs=0.03)
    assert torch.allclose(variance[bright], expected[bright], rtol=0.25)  # each level (1200 draws apiece)
    assert abs(float(noise.mean())) < 2e-3
    assert float(noise[..., 0].abs().max()) == 0  # black has no photons, so no shot noise
    gray = poisson_noise(images, 1.0, True, torch.Generator().manual_seed(2))[0]
    assert torch.equal(gray[0], gray[1])


# --------------------------------------------------------------------------------------- JPEG


def test_jpeg_is_pillows_codec_and_loses_more_at_lower_quality(shared):
    image = np.asarray(Image.open(shared / "benchmarks" / "Set14" / "HR" / "baboon.png").convert("RGB"))[:96, :128]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=45, subsampling="4:2:0")
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    assert np.array_equal(jpeg_roundtrip(image, 45), expected)
    tensor = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    assert np.array_equal((jpeg(tensor, 45.3)[0] * 255).round().byte().permute(1, 2, 0).numpy(), expected)
    errors = [float((jpeg(tensor, q) - tensor).abs().mean()) for q in (95, 60, 20)]
    assert errors[0] < errors[1] < errors[2] and errors[0] < 0.05  # baboon's fur: hard even at 95
    gray = jpeg(tensor[:, :1], 30)
    assert gray.shape == (1, 1, 96, 128)


# ----------------------------------------------------------------------------------- pipeline


def test_make_pair_gives_8bit_lr_of_the_patch_and_the_usm_target():
    config = DegradationConfig(enabled=True, margin=16)
    hr = torch.rand(2, 3, 96, 96)
    pair = make_pair(hr, config, 4, Draw(generator_for(5)))
    assert pair["lr"].shape == (2, 3, 16, 16) and pair["hr"].shape == (2, 3, 64, 64)
    assert torch.equal(pair["hr_real"], hr[..., 16:-16, 16:-16])
    assert torch.equal(pair["hr"], K.usm_sharpen(hr)[..., 16:-16, 16:-16])
    lr255 = pair["lr"] * 255
    assert torch.allclose(lr255, lr255.round(), atol=1e-4)
    assert 0 <= float(pair["lr"].min()) <= float(pair["lr"].max()) <= 1
    plain = make_pair(hr, DegradationConfig(enabled=True, margin=16, usm_target=False), 4, Draw(generator_for(5)))
    assert set(plain) == {"lr", "hr"} and torch.equal(plain["hr"], hr[..., 16:-16, 16:-16])


def test_degradation_is_a_function_of_the_seed():
    config = DegradationConfig(enabled=True)
    hr = torch.rand(1, 3, 64, 64)
    first = degrade(hr, config, 4, Draw(generator_for(0, 3, 7)))
    assert torch.equal(first, degrade(hr, config, 4, Draw(generator_for(0, 3, 7))))
    others = [degrade(hr, config, 4, Draw(generator_for(0, 3, k))) for k in (8, 9)]
    assert all(not torch.equal(first, other) for other in others)


def test_every_step_of_the_model_is_drawn_with_the_papers_probabilities():
    # Over many draws, the log shows each operator about as often as its probability says.
    config = DegradationConfig(enabled=True)
    counts = {"sinc": 0, "2 blur": 0, "final[0]": 0, "gaussian": 0, "n": 100}
    hr = torch.rand(1, 3, 32, 32)
    for k in range(counts["n"]):
        draw = Draw(generator_for(11, k))
        degrade(hr, config, 4, draw)
        text = "\n".join(draw.log)
        counts["sinc"] += text.startswith("1 blur[0]: sinc")
        counts["2 blur"] += "2 blur[0]" in text
        counts["final[0]"] += "final[0]: sinc" in text
        counts["gaussian"] += "1 noise: gaussian" in text
    n = counts["n"]
    assert abs(counts["sinc"] / n - 0.1) < 0.07
    assert abs(counts["2 blur"] / n - 0.8) < 0.1
    assert abs(counts["final[0]"] / n - 0.8) < 0.1
    assert abs(counts["gaussian"] / n - 0.5) < 0.12


def test_antialiased_shrinks_low_pass_the_image_and_are_drawn_only_when_asked_for():
    # White noise keeps its full variance through a plain (aliasing) ÷4 shrink and loses most of it
    # through an antialiased one (or area, a box filter): that is the difference antialias_prob draws.
    from superres.train.degrade.pipeline import _resize

    noise = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    for prob in (0.0, 1.0):
        for k in range(12):
            draw = Draw(generator_for(5, k))
            out = _resize(noise, (32, 32), draw, "r", antialias_prob=prob)
            filtered = "area" in draw.log[0] or "antialiased" in draw.log[0]
            assert filtered == ("area" in draw.log[0] or prob == 1.0)
            assert (float(out.std()) < 0.1) == filtered, draw.log  # white noise: std 0.29
    # prob 0 draws nothing more, so the paper's configuration keeps its random stream; a grow never antialiases.
    from superres.train.degrade.pipeline import RESIZE_MODES

    draw, bare = Draw(generator_for(5, 0)), Draw(generator_for(5, 0))
    _resize(noise, (32, 32), draw, "r")
    bare.choice(RESIZE_MODES)
    assert torch.equal(draw.generator.get_state(), bare.generator.get_state())
    grow = Draw(generator_for(5, 1))
    _resize(noise, (256, 256), grow, "r", antialias_prob=1.0)
    assert "antialiased" not in grow.log[0]
    with pytest.raises(ConfigError, match="antialias_prob"):
        DegradationConfig(enabled=True, antialias_prob=1.5).validate(scale=4)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"kernel_range": [8, 21]}, "odd"),
        ({"final_sinc_prob": 1.5}, "probability"),
        ({"margin": 6}, "multiple of the scale"),
        ({"first": StageConfig(kernel_prob=[0.5, 0.5, 0.1, 0, 0, 0])}, "summing to 1"),
        ({"second": StageConfig(noise_range=[10.0, 1.0])}, "low <= high"),
        ({"second": StageConfig(resize_range=[0.3, 0.9])}, "contain 1"),
    ],
)
def test_bad_degradation_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        DegradationConfig(enabled=True, **override).validate(scale=4)


# ------------------------------------------------------------------------------------ loader


def test_loader_samples_are_seeded_by_their_key_and_fast_enough(shared):
    from superres.train.data import TrainDataset, list_images

    paths = list_images(shared / "train" / "BSDS500_train")[:4]
    config = DegradationConfig(enabled=True, usm_target=False)
    dataset = TrainDataset(paths, 4, 128, cache_in_memory=True, degradation=config)
    assert dataset.crop_size == 160
    key = (1, (0, 2, 5))
    a, b = dataset[key], dataset[key]
    assert a["lr"].shape == (3, 32, 32) and a["hr"].shape == (3, 128, 128)
    assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])
    assert not torch.equal(a["lr"], dataset[(1, (0, 2, 6))]["lr"])
    dataset[0]  # warm the cache
    times = []
    for k in range(12):
        start = time.perf_counter()
        dataset[(k % 4, (0, 0, k))]
        times.append(time.perf_counter() - start)
    per_sample = float(np.median(times))
    print(f"degraded 128px samples: {1 / per_sample:.1f}/s on one core (median of 12)")
    # ~40 ms on an idle core; a 16-sample batch then costs ~0.6 s, below a CPU training step of the
    # compact model (~0.9 s), so one worker keeps up. The bound leaves room for a busy machine.
    assert per_sample < 0.3
    device_mode = TrainDataset(paths, 4, 128, degradation=DegradationConfig(enabled=True, where="device"))
    assert device_mode[key]["hr_context"].shape == (3, 160, 160)


# ----------------------------------------------------------------------------------- recipes


def test_recipes_are_fixed_seeded_and_do_what_their_names_say():
    from superres.quality.imresize import imresize

    rng = np.random.default_rng(0)
    hr = np.clip(rng.normal(128, 40, (96, 80, 3)), 0, 255).astype(np.uint8)
    issue = get_recipe("bicubic-noise4-jpeg45")
    lr = issue(hr, "a.png", 4)
    assert lr.shape == (24, 20, 3) and lr.dtype == np.uint8
    assert np.array_equal(lr, issue(hr, "a.png", 4))  # the same on every call
    assert not np.array_equal(lr, issue(hr, "b.png", 4))  # the noise depends on the image's name
    noise_only = get_recipe("bicubic-noise10")(hr, "a.png", 4).astype(float) - imresize(hr, 0.25)
    assert noise_only.std() == pytest.approx(10, rel=0.1)
    assert np.array_equal(get_recipe("bicubic-jpeg30")(hr, "x", 4), jpeg_roundtrip(imresize(hr, 0.25), 30))
    assert get_recipe("blur2-noise8")(hr[..., 0], "g.png", 4).shape == (24, 20)  # gray stays gray
    assert len(RECIPES) >= 3
    with pytest.raises(ConfigError, match="unknown degradation recipe"):
        get_recipe("nope")


# ------------------------------------------------------------------------------------ resume


@pytest.mark.parametrize("where", ["loader", "device"])
def test_training_with_degradations_resumes_bit_exactly(shared, tmp_path, where):
    from superres.train import checkpoints as ckpt
    from superres.train import load_config
    from superres.train.trainer import train

    common = [
        f"output_dir={tmp_path}", f"data.root={shared}", "data.train=[train/T91]", "data.cache_in_memory=false",
        "data.patch_size=32", "data.batch_size=2", "data.num_workers=0", "data.val=[]", "threads=1",
        "tensorboard=false", "init_from=none", "model.num_feat=8", "model.num_conv=2", "optim.lr=1e-3",
        "save_every=2", "log_every=2", "degradation.margin=8", f"degradation.where={where}",
        "degradation.usm_target=true", "discriminator.num_feat=8",
    ]  # fmt: skip
    # The GAN preset: the discriminator sees the un-sharpened HR, the generator the USM target.
    train(load_config("realesrgan_compact", [*common, "name=straight", "total_steps=4", "loss.perceptual_weight=0"]))
    train(load_config("realesrgan_compact", [*common, "name=split", "total_steps=2", "loss.perceptual_weight=0"]))
    train(load_config("realesrgan_compact", [*common, "name=split", "total_steps=4", "loss.perceptual_weight=0"]),
          resume=True)  # fmt: skip
    states = [
        torch.load(tmp_path / run / "checkpoints" / "step_00000004" / ckpt.STATE_FILE, weights_only=True)
        for run in ("straight", "split")
    ]
    for part in ("generator", "discriminator"):
        for key, tensor in states[0][part].items():
            assert torch.equal(tensor, states[1][part][key]), f"{part}.{key} differs after resuming"


# ----------------------------------------------------------------------- config, CLI, eval


def test_a_partial_stage_in_yaml_keeps_that_stages_own_defaults(tmp_path):
    from superres.train import load_config

    path = tmp_path / "mine.yaml"
    path.write_text("degradation:\n  enabled: true\n  second:\n    noise_range: [1, 5]\n")
    config = load_config(path)
    assert config.degradation.second.noise_range == [1.0, 5.0]
    assert config.degradation.second.blur_sigma == [0.2, 1.5] and config.degradation.second.blur_prob == 0.8
    assert config.degradation.first.blur_sigma == [0.2, 3.0]
    real = load_config("superres_x4_real")
    assert real.degradation.enabled and not real.degradation.usm_target and real.model.arch == "SRVGGNetCompact"
    for preset in ("realesrnet", "realesrgan", "realesrnet_compact", "realesrgan_compact"):
        paper = load_config(preset).degradation
        assert paper.enabled and paper.usm_target and paper == DegradationConfig(enabled=True)


@pytest.fixture(scope="module")
def photo(shared, tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "crop.png"
    Image.open(shared / "benchmarks" / "Set14" / "HR" / "baboon.png").convert("RGB").crop((0, 0, 96, 80)).save(path)
    return path


def test_degrade_command_writes_the_lr_and_says_what_it_drew(photo, tmp_path):
    from typer.testing import CliRunner

    from superres.cli import app

    runner = CliRunner()
    first = runner.invoke(app, ["degrade", str(photo), "-o", str(tmp_path / "a"), "--seed", "3"])
    assert first.exit_code == 0, first.output
    assert "1 blur[0]:" in first.output and "final jpeg: quality" in first.output
    out = tmp_path / "a" / "crop_lr.png"
    assert Image.open(out).size == (24, 20)
    runner.invoke(app, ["degrade", str(photo), "-o", str(tmp_path / "b"), "--seed", "3", "-q"])
    runner.invoke(app, ["degrade", str(photo), "-o", str(tmp_path / "c"), "--seed", "4", "-q"])
    assert (tmp_path / "b" / "crop_lr.png").read_bytes() == out.read_bytes()
    assert (tmp_path / "c" / "crop_lr.png").read_bytes() != out.read_bytes()
    again = runner.invoke(app, ["degrade", str(photo), "-o", str(tmp_path / "a")])
    assert again.exit_code == 1 and again.output.count("\n") == 1 and "already exists" in again.output
    recipe = runner.invoke(app, ["degrade", str(photo), "-o", str(tmp_path / "r.png"), "--recipe", "bicubic-jpeg30"])
    assert recipe.exit_code == 0
    expected = get_recipe("bicubic-jpeg30")(np.asarray(Image.open(photo)), photo.name, 4)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r.png")), expected)
    off = runner.invoke(app, ["degrade", str(photo), "-o", str(tmp_path / "d"), "--config", "superres_x4"])
    assert off.exit_code == 1 and "degradation.enabled is false" in off.output


def test_eval_degrade_scores_on_the_recipes_lr(shared, tmp_path):
    from typer.testing import CliRunner

    from superres.cli import app
    from superres.quality.evaluation import evaluate

    recipe = get_recipe("bicubic-noise4-jpeg45")
    clean = evaluate("bicubic", shared / "benchmarks", datasets=["Set5"], progress=False)
    real = evaluate("bicubic", shared / "benchmarks", datasets=["Set5"], progress=False, degrade=recipe)
    assert real.results["Set5"].lr_source == "degraded"
    assert real.results["Set5"].psnr < clean.results["Set5"].psnr - 1.0  # noise and blocks cost bicubic > 1 dB
    runner = CliRunner()
    args = ["eval", "-m", "bicubic", "-m", "bicubic", "--data-root", str(shared / "benchmarks"), "-d", "Set5",
            "--no-progress", "--json", str(tmp_path / "r.json")]  # fmt: skip
    result = runner.invoke(app, [*args, "--degrade", recipe.name])
    assert result.exit_code == 0, result.output
    assert "side by side" in result.output and f"{real.results['Set5'].psnr:.2f}" in result.output
    unknown = runner.invoke(app, ["eval", "-m", "bicubic", "--data-root", str(shared), "--degrade", "nope"])
    assert unknown.exit_code == 1 and "unknown degradation recipe" in unknown.output


def test_photos_without_hr_are_scored_by_niqe(photo, shared, tmp_path):
    from typer.testing import CliRunner

    from superres.cli import app
    from superres.quality.imresize import imresize
    from superres.quality.niqe import niqe
    from superres.quality.photos import evaluate_photos

    report = evaluate_photos("bicubic", photo.parent, progress=False)
    expected = niqe(imresize(np.asarray(Image.open(photo)), 4.0), crop_border=4)
    assert report.images == {photo.name: pytest.approx(expected)} and report.niqe == pytest.approx(expected)
    result = CliRunner().invoke(app, ["eval", "-m", "bicubic", "--photos", str(photo.parent), "--no-progress"])
    assert result.exit_code == 0 and f"{expected:.2f}" in result.output
    args = ["eval", "-m", "bicubic", "--data-root", str(shared / "benchmarks"), "-d", "Set5", "--no-progress"]
    scored = CliRunner().invoke(app, [*args, "--degrade", "bicubic-jpeg30", "--metrics", "psnr,ssim,niqe"])
    assert scored.exit_code == 0 and "NIQE" in scored.output and "degraded" in scored.output


def test_block_grid_ratio_sees_8x8_blocks_and_ignores_the_upscalers_own_pattern():
    from superres.quality.blockiness import block_grid_ratio
    from superres.quality.imresize import imresize

    rng = np.random.default_rng(3)
    smooth = np.clip(rng.normal(128, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
    assert block_grid_ratio(smooth) == pytest.approx(1.0, abs=0.1)
    blocks = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    blocky = np.clip(smooth.astype(int) // 4 + blocks // 2, 0, 255).astype(np.uint8)
    assert block_grid_ratio(blocky) > 2.0
    nearest = np.repeat(np.repeat(smooth, 4, axis=0), 4, axis=1)  # steps only at input-pixel boundaries
    assert block_grid_ratio(nearest, scale=4) == pytest.approx(block_grid_ratio(smooth), abs=0.1)
    assert block_grid_ratio(imresize(blocky, 4.0), scale=4) > 1.5
    jpeg_crop = jpeg_roundtrip(smooth, 20)
    assert block_grid_ratio(jpeg_crop) > block_grid_ratio(smooth) + 0.1  # a real JPEG's grid shows
