"""Training end to end on tiny networks and real crops: PSNR stages, GAN stages, exact resume, safe checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from superres.errors import ConfigError
from superres.models.weights import load_network, read_state_dict
from superres.train import checkpoints as ckpt
from superres.train import load_config
from superres.train.trainer import learning_rate, train

# Tiny models and crops: the point is the machinery, in seconds. One thread: on a shared 2-core
# machine, small convolutions run many times faster without OpenMP threads competing for cores.
TINY_MODELS = {
    "srresnet": ["model.num_block=2", "model.num_feat=16"],
    "srgan": ["model.num_block=2", "model.num_feat=16", "discriminator.num_feat=8"],
    "esrgan_psnr": ["model.num_block=1", "model.num_feat=16", "model.num_grow_ch=8"],
    "esrgan": ["model.num_block=1", "model.num_feat=16", "model.num_grow_ch=8", "discriminator.num_feat=8"],
}


def tiny(shared: Path, out: Path, preset: str, *extra: str) -> list[str]:
    return [
        f"output_dir={out}",
        f"data.root={shared}",
        "data.train=[train/T91]",
        "data.val=[benchmarks/Set5]",
        "data.cache_in_memory=true",
        "data.patch_size=32",
        "data.batch_size=4",
        "data.num_workers=0",
        "threads=1",
        "device=cpu",  # what these tests assert (bit-exact resume above all) holds on CPU
        "tensorboard=false",
        "num_val_grids=1",
        "loss.vgg.allow_random=true",
        *TINY_MODELS[preset],
        *extra,
    ]


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def state_dict_of(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint_dir / ckpt.STATE_FILE, map_location="cpu", weights_only=True)


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("srresnet", {"lr": 1e-4, "milestones": [], "pixel": "mse", "steps": 1_000_000, "patch": 96, "gan": "none"}),
        ("srgan", {"lr": 1e-4, "milestones": [100_000], "gamma": 0.1, "steps": 200_000, "patch": 96, "gan": "bce",
                   "gan_weight": 1e-3, "pixel_weight": 0.0, "after_activation": True, "feature_scale": 1 / 12.75}),
        ("esrgan_psnr", {"lr": 2e-4, "milestones": [200_000, 400_000, 600_000, 800_000], "gamma": 0.5,
                         "pixel": "l1", "steps": 1_000_000, "patch": 128, "gan": "none"}),
        ("esrgan", {"lr": 1e-4, "milestones": [50_000, 100_000, 200_000, 300_000], "gamma": 0.5, "steps": 400_000,
                    "patch": 128, "gan": "ragan", "gan_weight": 5e-3, "pixel": "l1", "pixel_weight": 1e-2,
                    "after_activation": False, "feature_scale": 1.0}),
    ],
)  # fmt: skip
def test_presets_state_the_papers_settings(preset, expected):
    c = load_config(preset)
    assert c.data.batch_size == 16 and c.optim.betas == [0.9, 0.999]
    actual = {
        "lr": c.optim.lr, "milestones": c.optim.milestones, "gamma": c.optim.gamma, "steps": c.total_steps,
        "patch": c.data.patch_size, "gan": c.loss.gan, "gan_weight": c.loss.gan_weight, "pixel": c.loss.pixel,
        "pixel_weight": c.loss.pixel_weight, "after_activation": c.loss.vgg.after_activation,
        "feature_scale": c.loss.vgg.feature_scale,
    }  # fmt: skip
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value), key
    if c.is_gan:
        assert c.init_from and c.loss.vgg.layer == "conv5_4" and c.loss.perceptual_weight == 1.0
        assert c.optim_d.milestones == c.optim.milestones


def test_every_shipped_preset_loads_by_its_name():
    # A bundled model's recipe says `superres train NAME`; NAME must resolve for every YAML file shipped.
    from importlib import resources

    shipped = {e.name[:-5] for e in resources.files("superres").joinpath("presets").iterdir() if e.name.endswith(".yaml")}
    assert {"superres_x4_real_gan", "superres_x4_real_web", "srresnet"} <= shipped
    for name in shipped:
        assert load_config(name).name == name


def test_overrides_are_typed_and_checked(tmp_path):
    c = load_config(
        "srresnet",
        ["optim.lr=3e-4", "total_steps=2e5", "data.flip=false", "optim.milestones=[1e3, 2000]", "model.num_block=8",
         "init_from=none", "data.val=benchmarks/Set5,benchmarks/Set14"],
    )  # fmt: skip
    assert c.optim.lr == 3e-4 and c.total_steps == 200_000 and c.data.flip is False
    assert c.optim.milestones == [1000, 2000] and c.model.hparams()["num_block"] == 8 and c.init_from is None
    assert c.data.val == ["benchmarks/Set5", "benchmarks/Set14"]
    for bad, message in [
        ("optim.lrate=1", "unknown setting optim.lrate"),
        ("total_steps=1.5", "integer"),
        ("data.flip=maybe", "true or false"),
        ("precision=fp8", "one of"),
        ("optim=3", "section"),
        ("model.num_grow_ch=8", "does not apply to SRResNet"),
        ("lr", "key=value"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config("srresnet", [bad])
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text("name: mine\noptim:\n  lr: 1e-3\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match="optim.momentum"):
        load_config(yaml_file)
    yaml_file.write_text("name: mine\nmodel: {arch: RRDBNet, num_block: 3}\n")
    assert load_config(yaml_file).model.hparams()["num_block"] == 3
    with pytest.raises(ConfigError, match="neither"):
        load_config("no_such_preset")


def test_learning_rate_is_multistep():
    c = load_config("esrgan")
    assert learning_rate(c.optim, 0) == 1e-4
    assert learning_rate(c.optim, 49_999) == 1e-4
    assert learning_rate(c.optim, 50_000) == 5e-5
    assert learning_rate(c.optim, 399_999) == pytest.approx(1e-4 / 16)


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def psnr_runs(shared, tmp_path_factory):
    """srresnet and esrgan_psnr trained for 48 steps each (a higher learning rate so 48 steps show)."""
    out = tmp_path_factory.mktemp("runs")
    for preset in ("srresnet", "esrgan_psnr"):
        train(load_config(preset, tiny(shared, out, preset, "total_steps=48", "log_every=8", "val_every=48",
                                       "save_every=24", "optim.lr=2e-3")))  # fmt: skip
    return out


@pytest.mark.parametrize("preset", ["srresnet", "esrgan_psnr"])
def test_psnr_stage_trains(psnr_runs, preset):
    run = psnr_runs / preset
    log = read_log(run)
    losses = [r["loss/pixel"] for r in log if "loss/pixel" in r]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.85 * np.mean(losses[:2])  # the loss falls (by ~35% here)
    assert [c.step for c in ckpt.list_checkpoints(run)] == [24, 48]
    val = [r for r in log if "val/Set5/psnr" in r]
    assert [r["step"] for r in val] == [48] and val[-1]["val/Set5/psnr"] > 15
    best = json.loads((run / ckpt.BEST_INFO).read_text())
    assert best["psnr"] == max(r["val/Set5/psnr"] for r in val)
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "step_00000048" / "config.yaml").is_file()
    assert len(list((run / "samples").rglob("*.png"))) == 1
    _, info = load_network(run / ckpt.BEST_FILE)
    assert info.arch == load_config(preset).model.arch and info.metadata["trained_by"] == "superres train"


@pytest.fixture(scope="module")
def gan_runs(shared, psnr_runs):
    for gan, psnr in (("srgan", "srresnet"), ("esrgan", "esrgan_psnr")):
        init = psnr_runs / psnr / ckpt.BEST_FILE
        train(load_config(gan, tiny(shared, psnr_runs, gan, "total_steps=4", "log_every=2", "val_every=4",
                                    "save_every=4", f"init_from={init}")))  # fmt: skip
    return psnr_runs


@pytest.mark.parametrize("gan, psnr", [("srgan", "srresnet"), ("esrgan", "esrgan_psnr")])
def test_gan_stage_starts_from_the_psnr_model_and_trains_both_networks(gan_runs, gan, psnr):
    run = gan_runs / gan
    log = [r for r in read_log(run) if "loss/d" in r]
    assert len(log) == 2
    for record in log:
        assert all(np.isfinite(record[k]) for k in ("loss/d", "loss/g_adv", "loss/perceptual", "loss/g_total"))
    state = state_dict_of(ckpt.list_checkpoints(run)[-1].path)
    assert state["discriminator"] is not None and state["optim_d"]["state"]
    start, _ = read_state_dict(gan_runs / psnr / ckpt.BEST_FILE)
    end = state["generator"]
    moved = sum(float((end[k] - start[k]).abs().sum()) for k in start if start[k].is_floating_point())
    size = sum(float(start[k].abs().sum()) for k in start if start[k].is_floating_point())
    assert 0 < moved < 0.1 * size  # a few small steps away from the PSNR model it started from


def test_checkpoints_work_with_upscale_and_eval(gan_runs, shared, tmp_path):
    from PIL import Image

    from superres.cli import app

    runner = CliRunner()
    generator = ckpt.list_checkpoints(gan_runs / "srgan")[-1].generator
    out = tmp_path / "bird.png"
    lr = shared / "benchmarks/Set5/LR_bicubic/X4/bird.png"
    result = runner.invoke(app, ["upscale", str(lr), "-m", str(generator), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as img, Image.open(shared / "benchmarks/Set5/HR/bird.png") as hr:
        assert img.size == hr.size

    generator = ckpt.list_checkpoints(gan_runs / "esrgan")[-1].generator
    report = tmp_path / "esrgan.json"
    result = runner.invoke(
        app, ["eval", "-m", str(generator), "--data-root", str(shared / "benchmarks"), "-d", "Set5",
              "--json", str(report), "--no-progress", "--tile", "0", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads(report.read_text())["results"]["Set5"]["psnr"]
    # The trainer's validation and `superres eval` apply one protocol to the same weights.
    logged = [r for r in read_log(gan_runs / "esrgan") if "val/Set5/psnr" in r][-1]["val/Set5/psnr"]
    assert scored == pytest.approx(logged, abs=1e-3)


# ---------------------------------------------------------------------------------- resume


@pytest.mark.parametrize(
    "preset, steps, extra",
    [
        # BN statistics, EMA and Adam state must all come back: 2000 straight = 1000 + resume + 1000.
        ("srresnet", 2000, ["data.patch_size=16", "data.batch_size=2", "model.num_feat=8", "model.num_block=2",
                            "ema_decay=0.9"]),
        # With a discriminator, RaGAN, a (shallower) VGG loss and two worker processes; 2 + 2 steps.
        (
            "esrgan",
            4,
            ["data.batch_size=2", "data.num_workers=2", "ema_decay=0.5", "init_from=none", "loss.vgg.layer=conv3_4"],
        ),
    ],
)
def test_resume_is_bit_exact(shared, tmp_path, preset, steps, extra):
    common = tiny(shared, tmp_path, preset, "data.val=[]", f"save_every={steps // 2}", f"log_every={steps // 2}",
                  "optim.lr=1e-3", *extra)  # fmt: skip
    train(load_config(preset, [*common, "name=straight", f"total_steps={steps}"]))
    train(load_config(preset, [*common, "name=split", f"total_steps={steps // 2}"]))
    train(load_config(preset, [*common, "name=split", f"total_steps={steps}"]), resume=True)
    straight = state_dict_of(tmp_path / "straight" / "checkpoints" / f"step_{steps:08d}")
    split = state_dict_of(tmp_path / "split" / "checkpoints" / f"step_{steps:08d}")
    for part in ("generator", "ema", "discriminator"):
        if straight[part] is None:
            continue
        for key, tensor in straight[part].items():
            assert torch.equal(tensor, split[part][key]), f"{part}.{key} differs after resuming"
    start, _ = read_state_dict(tmp_path / "straight" / "checkpoints" / f"step_{steps // 2:08d}" / ckpt.GENERATOR_FILE)
    assert any(not torch.equal(start[k], straight["ema"][k]) for k in start)  # and training did move the weights
    # The resumed run's log continues where the first half stopped.
    assert [r["step"] for r in read_log(tmp_path / "split")] == [steps // 2, steps]


def test_cli_resume_continues_the_run_and_tensorboard_logs_both_halves(shared, tmp_path):
    """`superres train … --resume` from the command line ends where a straight run ends, bit for bit, and the
    TensorBoard event files (two, one per process) hold every logged value: tensorboard reads them back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from superres.cli import app

    common = [
        *(arg for arg in tiny(shared, tmp_path, "srresnet", "data.patch_size=16", "model.num_feat=8") if arg != "tensorboard=false"),
        "log_every=1", "val_every=2", "save_every=2", "num_val_grids=1",
    ]  # fmt: skip
    train(load_config("srresnet", [*common, "name=straight", "total_steps=4", "tensorboard=false"]))
    runner = CliRunner()
    first = runner.invoke(app, ["train", "srresnet", *common, "name=split", "total_steps=2"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train", "srresnet", *common, "name=split", "total_steps=4", "--resume"])
    assert second.exit_code == 0, second.output
    straight, split = (state_dict_of(tmp_path / name / "checkpoints" / "step_00000004") for name in ("straight", "split"))
    assert all(torch.equal(tensor, split["generator"][key]) for key, tensor in straight["generator"].items())

    log = read_log(tmp_path / "split")
    assert len(list((tmp_path / "split" / "tensorboard").glob("events.out.tfevents.*"))) == 2
    events = EventAccumulator(str(tmp_path / "split" / "tensorboard"))
    events.Reload()
    losses = [(r["step"], r["loss/pixel"]) for r in log if "loss/pixel" in r]
    assert [r.step for r in events.Scalars("loss/pixel")] == [step for step, _ in losses] == [1, 2, 3, 4]
    assert [r.value for r in events.Scalars("loss/pixel")] == pytest.approx([v for _, v in losses], rel=1e-6)
    val = [(r["step"], r["val/Set5/psnr"]) for r in log if "val/Set5/psnr" in r]
    assert [(r.step, pytest.approx(r.value, rel=1e-6)) for r in events.Scalars("val/Set5/psnr")] == val
    assert [step for step, _ in val] == [2, 4]
    images = [tag for tag in events.Tags()["images"] if tag.startswith("samples/Set5/")]
    assert images and [r.step for r in events.Images(images[0])] == [2, 4]


def test_run_directory_rules(shared, tmp_path):
    common = tiny(shared, tmp_path, "srresnet", "data.val=[]", "total_steps=2", "data.patch_size=16",
                  "model.num_feat=8")  # fmt: skip
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(load_config("srresnet", common), resume=True)
    with pytest.raises(ConfigError, match="init_from"):
        train(load_config("srresnet", [*common, f"init_from={tmp_path / 'missing.safetensors'}"]))
    assert not (tmp_path / "srresnet").exists()  # a run that could not start leaves nothing behind
    train(load_config("srresnet", common))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(load_config("srresnet", common))
    with pytest.raises(ConfigError, match="model.num_feat"):
        train(load_config("srresnet", [*common, "model.num_feat=16", "total_steps=4"]), resume=True)
    train(load_config("srresnet", [*common, "total_steps=2"]), resume=True)  # already done: nothing to do
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "srresnet")] == [2]


def test_train_command_reports_errors_in_one_line():
    from superres.cli import app

    result = CliRunner().invoke(app, ["train", "srresnet", "optim.lrate=1"])
    assert result.exit_code == 1
    expected = (
        "error: unknown setting optim.lrate in override 'optim.lrate=1' "
        "(known: betas, gamma, lr, milestones, weight_decay)"
    )
    assert result.output.strip().splitlines() == [expected]


# -------------------------------------------------------------------------- crash safety


def test_failure_while_saving_leaves_the_previous_checkpoint_intact(shared, tmp_path, monkeypatch):
    common = tiny(shared, tmp_path, "srresnet", "data.val=[]", "data.patch_size=16", "model.num_feat=8",
                  "save_every=2", "log_every=2")  # fmt: skip
    train(load_config("srresnet", [*common, "total_steps=2"]))

    def torn_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")  # what a crash mid-write leaves on disk
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", torn_write)
    with pytest.raises(OSError, match="disk full"):
        train(load_config("srresnet", [*common, "total_steps=4"]), resume=True)
    monkeypatch.undo()
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "srresnet")] == [2]
    assert not any(p.name.startswith(".") for p in (tmp_path / "srresnet" / "checkpoints").iterdir())
    train(load_config("srresnet", [*common, "total_steps=4"]), resume=True)
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "srresnet")] == [2, 4]


def test_failure_while_pruning_never_leaves_a_half_deleted_checkpoint(shared, tmp_path, monkeypatch):
    common = tiny(shared, tmp_path, "srresnet", "data.val=[]", "data.patch_size=16", "model.num_feat=8",
                  "save_every=1", "keep_last=2", "log_every=100")  # fmt: skip
    train(load_config("srresnet", [*common, "total_steps=2"]))
    real_rmtree = ckpt.shutil.rmtree

    def killed_midway(path, *args, **kwargs):  # deletes one file of the folder, then the process "dies"
        if not Path(path).name.startswith(".step_00000003."):  # not the new checkpoint's own temporaries
            (Path(path) / ckpt.GENERATOR_FILE).unlink(missing_ok=True)
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(ckpt.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        train(load_config("srresnet", [*common, "total_steps=3"]), resume=True)
    monkeypatch.undo()
    listed = ckpt.list_checkpoints(tmp_path / "srresnet")
    assert [c.step for c in listed] == [2, 3]  # step 1 was being pruned: gone from view, not half there
    assert all(c.generator.is_file() for c in listed)
    train(load_config("srresnet", [*common, "total_steps=4"]), resume=True)  # start-up cleans the leftovers
    assert not any(p.name.startswith(".") for p in (tmp_path / "srresnet" / "checkpoints").iterdir())


def test_sigkill_during_training_never_leaves_a_broken_checkpoint(shared, tmp_path):
    # A checkpoint every step, so that the kill very likely lands inside a save.
    args = tiny(shared, tmp_path, "srresnet", "data.val=[]", "data.patch_size=16", "model.num_feat=8",
                "save_every=1", "keep_last=3", "log_every=1000", "total_steps=100000")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "train", "srresnet", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    run = tmp_path / "srresnet"
    try:
        deadline = time.monotonic() + 120
        while len(ckpt.list_checkpoints(run)) < 3 or ckpt.list_checkpoints(run)[-1].step < 5:
            assert proc.poll() is None, "the training process ended early"
            assert time.monotonic() < deadline, "no checkpoints appeared"
            time.sleep(0.05)
        time.sleep(0.013)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    checkpoints = ckpt.list_checkpoints(run)
    assert checkpoints
    for checkpoint in checkpoints:
        load_network(checkpoint.generator)
        assert ckpt.load_training_state(checkpoint)["step"] == checkpoint.step
    last = checkpoints[-1].step
    train(load_config("srresnet", [*args[:-1], f"total_steps={last + 2}"]), resume=True)
    assert ckpt.list_checkpoints(run)[-1].step == last + 2
    assert not any(p.name.startswith(".") for p in (run / "checkpoints").iterdir())


def test_mixed_precision_options(shared, tmp_path):
    common = tiny(shared, tmp_path, "srresnet", "data.val=[]", "data.patch_size=16", "model.num_feat=8",
                  "total_steps=3", "log_every=3", "save_every=3")  # fmt: skip
    train(load_config("srresnet", [*common, "precision=bf16"]))  # bf16 autocast on the CPU
    (record,) = read_log(tmp_path / "srresnet")
    assert np.isfinite(record["loss/pixel"])
    weights, _ = read_state_dict(ckpt.list_checkpoints(tmp_path / "srresnet")[-1].generator)
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float32}  # master weights stay fp32
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        train(load_config("srresnet", [*common, "precision=fp16", "name=half"]))


def test_ema_warms_up_so_the_random_init_fades_fast():
    from superres.train.ema import ModelEMA

    net = torch.nn.Linear(2, 2)
    ema = ModelEMA(net, decay=0.999)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=0)  # decay min(0.999, 1/10): the first update keeps only 10 % of the start
    torch.testing.assert_close(ema.module.weight, start + 0.9)
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(10_000) == 0.999  # later, the configured decay


def test_gan_companion_preset_trains_from_the_bundled_model_with_feature_matching(shared, tmp_path):
    """superres_x4_gan: starts from the bundled superres-x4 by name; the generator gets D's feature matching."""
    config = load_config(
        "superres_x4_gan",
        [f"output_dir={tmp_path}", f"data.root={shared}", "data.train=[train/T91]", "data.patch_size=32",
         "data.batch_size=2", "data.num_workers=0", "data.cache_in_memory=false", "data.val=[]", "threads=1",
         "tensorboard=false", "discriminator.num_feat=8", "total_steps=2", "log_every=1", "save_every=2"],
    )  # fmt: skip
    assert config.init_from == "superres-x4" and config.loss.feature_matching_weight > 0
    run = train(config)
    log = [r for r in read_log(run) if "loss/feature_matching" in r]
    assert len(log) == 2 and all(r["loss/feature_matching"] > 0 for r in log)
    start, _ = read_state_dict(Path(__file__).resolve().parents[1] / "superres" / "weights" / "superres_x4.safetensors")
    end = state_dict_of(ckpt.list_checkpoints(run)[-1].path)["generator"]
    assert start.keys() == end.keys() and any(not torch.equal(start[k], end[k]) for k in start)
    assert "feature matching×1.0" in load_network(ckpt.list_checkpoints(run)[-1].generator)[1].metadata["losses"]
    with pytest.raises(ConfigError, match="feature_matching_weight needs a discriminator"):
        load_config("superres_x4", ["loss.feature_matching_weight=1"])
