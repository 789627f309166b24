"""Fault injection: a full disk while writing outputs and checkpoints, SIGKILL at random points of a folder
upscale and of a training run, NaN in a GAN step. After each: every visible output and checkpoint loads,
inputs are unchanged, the rerun or resume completes with the same result as an uninterrupted run, and
nothing is left behind.

The kill loops run ``KILLS`` times each (3 in CI; 10 with ``SUPERRES_FUZZ=1``, the figures of
RELIABILITY.md). ``SUPERRES_FAULTS_REPORT=path`` appends what each kill found there as JSON lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from superres.imageio import read_image
from superres.models.weights import load_network, read_state_dict
from superres.train import checkpoints as ckpt
from superres.train import load_config, train

REPO = Path(__file__).resolve().parents[1]
KILLS = 10 if os.environ.get("SUPERRES_FUZZ") == "1" else 3
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="kills, mounts and rlimits as Linux has them"),
    pytest.mark.usefixtures("one_thread"),  # as the child processes (OMP_NUM_THREADS=1): the same pixels
]


def superres(*args: str, preexec=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "superres", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO, preexec_fn=preexec, timeout=timeout, check=False)  # fmt: skip


def in_process(*args: str) -> tuple[int, str]:
    """``superres ARGS`` in this process (no interpreter start-up): (exit code, stderr)."""
    from typer.testing import CliRunner

    from superres.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report(record: dict) -> None:
    path = os.environ.get("SUPERRES_FAULTS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


# ------------------------------------------------------------------------------------ a full disk


class FullDisk:
    """A folder where writes fail partway: a small tmpfs (ENOSPC) where this process can mount one,
    else a limit on the size of any file the child process writes (RLIMIT_FSIZE: EFBIG). Both are the
    kernel refusing a write in the middle of a file, which is what superres has to survive."""

    def __init__(self, folder: Path, total: int, largest_file: int) -> None:
        self.folder = folder
        self.largest_file = largest_file
        folder.mkdir(parents=True)
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={total}", "tmpfs", str(folder)],
                                     capture_output=True, check=False).returncode == 0  # fmt: skip
        except OSError:  # no mount command here
            mounted = False
        self.mode = "tmpfs" if mounted else "rlimit"
        self.full = True

    def preexec(self) -> None:  # in the child, before exec
        if self.mode == "rlimit" and self.full:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.largest_file, self.largest_file))

    def free(self) -> None:
        self.full = False
        if self.mode == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=256m", str(self.folder)], check=True)

    def close(self) -> None:
        if self.mode == "tmpfs":
            subprocess.run(["umount", "-l", str(self.folder)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    disks: list[FullDisk] = []

    def make(total: int, largest_file: int) -> FullDisk:
        disks.append(FullDisk(tmp_path / f"disk{len(disks)}", total, largest_file))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


def _images(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_disk_full_during_a_batch_loses_nothing_and_the_rerun_completes(tiny_model, full_disk, tmp_path):
    sources = _images(tmp_path / "in", 6, 64)
    inputs = {p: sha256(p) for p in sources}
    reference = tmp_path / "reference"
    assert in_process("upscale", str(tmp_path / "in"), "-o", str(reference), "-m", str(tiny_model))[0] == 0
    output_size = max(p.stat().st_size for p in reference.iterdir())  # noise: every output is as large

    disk = full_disk(int(output_size * 2.5), output_size // 2)  # room for two outputs and a half
    out = disk.folder / "out"
    result = superres("upscale", str(tmp_path / "in"), "-o", str(out), "-m", str(tiny_model), preexec=disk.preexec)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert errors and len(errors) + len(written) == len(sources)  # one line per file that failed
    assert all("cannot write" in line and ("No space left" in line or "File too large" in line) for line in errors)
    for name in written:  # what is visible is complete
        np.testing.assert_array_equal(read_image(out / name).pixels, read_image(reference / name).pixels)
    assert hidden(out) == []  # no temporary left on the full disk

    disk.free()
    code, err = in_process("upscale", str(tmp_path / "in"), "-o", str(out), "-m", str(tiny_model))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for path in reference.iterdir():
        np.testing.assert_array_equal(read_image(out / path.name).pixels, read_image(path).pixels)
    assert {p: sha256(p) for p in sources} == inputs
    report({"fault": "disk full, folder upscale", "mode": disk.mode, "failed": len(errors), "written": len(written)})


def _training_images(root: Path) -> Path:
    _images(root / "train", 6, 40, seed=7)
    return root


def _tiny_training(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"output_dir={out}", f"data.root={root}", "data.train=[train]", "data.val=[]", "data.cache_in_memory=true",
        "data.patch_size=16", "data.batch_size=2", "data.num_workers=0", "threads=1", "tensorboard=false",
        "model.num_block=1", "model.num_feat=8", "log_every=1", "save_every=1", "keep_last=3", *extra,
    ]  # fmt: skip


def _check_run(run: Path) -> list[int]:
    """Every checkpoint of the run loads; returns their steps."""
    steps = []
    for checkpoint in ckpt.list_checkpoints(run):
        network, _ = load_network(checkpoint.generator)
        assert all(torch.isfinite(p).all() for p in network.parameters())
        assert ckpt.load_training_state(checkpoint)["step"] == checkpoint.step
        steps.append(checkpoint.step)
    if (run / "log.jsonl").is_file():
        for line in (run / "log.jsonl").read_text().splitlines():
            json.loads(line)  # a torn line would fail here (the resumed run rewinds the log)
    return steps


def test_disk_full_while_saving_checkpoints_keeps_the_last_good_one(full_disk, tmp_path):
    root = _training_images(tmp_path / "data")
    state_size = 3 * 4 * sum(p.numel() for p in _tiny_generator().parameters())  # weights + Adam's two moments
    disk = full_disk(4 * state_size, state_size // 2)  # a checkpoint or two, then the disk is full
    args = _tiny_training(root, disk.folder, "total_steps=8", "keep_last=8")
    result = superres("train", "srresnet", *args, preexec=disk.preexec)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    line = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(line) == 1 and ("No space left" in line[0] or "File too large" in line[0]), result.stderr
    run = disk.folder / "srresnet"
    steps = _check_run(run)
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []
    disk.free()
    train(load_config("srresnet", args), resume=True)
    assert _check_run(run)[-1] == 8 and hidden(run) == []
    report({"fault": "disk full, checkpoints", "mode": disk.mode, "checkpoints_before_full": len(steps)})


def _tiny_generator() -> torch.nn.Module:
    from superres.archs import SRResNet

    return SRResNet(num_feat=8, num_block=1)


# ------------------------------------------------------------------------------------------ kills


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "superres", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)  # fmt: skip


def _outputs(folder: Path) -> int:
    """Progress of a folder upscale: outputs in view."""
    return sum(not p.name.startswith(".") for p in folder.iterdir()) if folder.is_dir() else 0


def _steps(run: Path) -> int:
    """Progress of a training run: steps logged (log_every=1)."""
    log = run / "log.jsonl"
    return log.read_text().count("\n") if log.is_file() else 0


def _timed_run(args: list[str], progress: Callable[[], int]) -> tuple[float, float]:
    """Run ``superres ARGS`` to the end: (seconds until its first unit of progress, seconds per unit)."""
    proc = _start(args)
    start, first, last = time.monotonic(), None, None
    while proc.poll() is None:
        done = progress()
        if done and first is None:
            first = time.monotonic() - start
        if done:
            last = (time.monotonic() - start, done)
        time.sleep(0.005)
    assert proc.returncode == 0, proc.stderr.read()
    assert first is not None and last is not None
    return first, (last[0] - first) / max(last[1] - 1, 1)


def _kill_at(args: list[str], progress: Callable[[], int], units: int, rng: random.Random, first: float,
             per_unit: float) -> str:  # fmt: skip
    """Run ``superres ARGS`` and SIGKILL it at a random moment: one time in five during start-up, else
    after a random number of units of work (outputs, steps) and a random part of the next one.
    Returns where the kill landed: "startup", "working" or "finished" (too late: it had ended)."""
    proc = _start(args)
    try:
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.05, first))
            where = "startup"
        else:
            after, delay = rng.randrange(1, units), rng.uniform(0, per_unit)
            deadline = time.monotonic() + 300
            while progress() < after and proc.poll() is None:
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.002)
            time.sleep(delay)
            where = "working"
        if proc.poll() is not None:
            return "finished"
        proc.send_signal(signal.SIGKILL)
        return where
    finally:
        proc.wait()
        proc.stderr.close()


@pytest.mark.slow
def test_sigkill_during_a_folder_upscale_loses_nothing(tiny_model, tmp_path):
    sources = _images(tmp_path / "in", 16, 160)
    inputs = {p: sha256(p) for p in sources}
    reference = tmp_path / "reference"
    first, per_image = _timed_run(["upscale", str(tmp_path / "in"), "-o", str(reference), "-m", str(tiny_model)],
                                  lambda: _outputs(reference))  # fmt: skip
    expected = {p.name: read_image(p).pixels for p in reference.iterdir()}
    rng = random.Random(12)
    for kill in range(KILLS):
        out = tmp_path / f"out{kill}"
        args = ["upscale", str(tmp_path / "in"), "-o", str(out), "-m", str(tiny_model)]
        where = _kill_at(args, lambda out=out: _outputs(out), len(sources), rng, first, per_image)
        visible = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
        temporaries = hidden(out) if out.is_dir() else []
        for name in visible:  # every visible output is complete and right
            np.testing.assert_array_equal(read_image(out / name).pixels, expected[name])
        code, err = in_process(*args)  # the rerun, in this process: no start-up to pay again
        assert code == 0, err
        assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # all there, no temporary left
        for name, pixels in expected.items():
            np.testing.assert_array_equal(read_image(out / name).pixels, pixels)
        assert {p: sha256(p) for p in sources} == inputs
        report({"fault": "SIGKILL, folder upscale", "kill": kill, "landed": where, "visible_before_rerun": len(visible),
                "of": len(expected), "temporaries_left_by_kill": len(temporaries), "recovered": True})  # fmt: skip


@pytest.mark.slow
def test_sigkill_during_training_loses_nothing_and_resume_equals_a_straight_run(tmp_path):
    root = _training_images(tmp_path / "data")
    steps = 12
    straight = tmp_path / "straight"
    args = _tiny_training(root, straight, f"total_steps={steps}")
    first, per_step = _timed_run(["train", "srresnet", *args], lambda: _steps(straight / "srresnet"))
    reference, _ = read_state_dict(straight / "srresnet" / "checkpoints" / f"step_{steps:08d}" / ckpt.GENERATOR_FILE)
    rng = random.Random(34)
    for kill in range(KILLS):
        out = tmp_path / f"run{kill}"
        args = _tiny_training(root, out, f"total_steps={steps}")
        run = out / "srresnet"
        where = _kill_at(["train", "srresnet", *args], lambda run=run: _steps(run), steps, rng, first, per_step)
        done = _check_run(run) if run.is_dir() else []
        temporaries = hidden(run) if run.is_dir() else []
        # resume (start afresh if the kill came before the run folder): the result is the straight run's
        train(load_config("srresnet", args), resume=run.is_dir())
        final, _ = read_state_dict(run / "checkpoints" / f"step_{steps:08d}" / ckpt.GENERATOR_FILE)
        for key, tensor in reference.items():
            assert torch.equal(final[key], tensor), f"kill {kill}: {key} differs from the straight run"
        assert _check_run(run)[-1] == steps and hidden(run) == []
        logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
        assert logged == list(range(1, steps + 1))  # one record per step: no torn line, no step twice
        report({"fault": "SIGKILL, training", "kill": kill, "landed": where, "checkpoints_before_resume": done,
                "temporaries_left_by_kill": len(temporaries), "recovered": True})  # fmt: skip


# --------------------------------------------------------------------------------- NaN in a GAN step


def _gan_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        *_tiny_training(root, out, "model.num_block=1", "model.num_feat=8"), "init_from=none",
        "discriminator.num_feat=8", "loss.perceptual_weight=0", "loss.pixel_weight=1", "save_every=2",
        "data.patch_size=32", *extra,
    ]  # fmt: skip


def _nan_at(monkeypatch: pytest.MonkeyPatch, calls: set[int], method: str = "g_loss") -> None:
    from superres.train import losses

    real = getattr(losses.GANLoss, method)
    count = {"n": 0}

    def poisoned(self, *args, **kwargs):
        count["n"] += 1
        value = real(self, *args, **kwargs)
        return value * float("nan") if count["n"] in calls else value

    monkeypatch.setattr(losses.GANLoss, method, poisoned)


def test_nan_in_a_gan_step_skips_that_step_and_training_goes_on(tmp_path, monkeypatch):
    root = _training_images(tmp_path / "data")
    _nan_at(monkeypatch, {3, 4})  # the generator's adversarial loss at steps 3 and 4
    _nan_at(monkeypatch, {4}, "d_loss")  # and the discriminator's at step 6 (its 4th update: 3, 4 had none)
    run = train(load_config("srgan", _gan_args(root, tmp_path, "total_steps=8")))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r.get("train/skipped_steps", 0) for r in log] == [0, 0, 1, 1, 0, 1, 0, 0]
    assert all(np.isfinite(v) for r in log for k, v in r.items() if k.startswith("loss/"))
    assert "loss/g_adv" not in log[2] and "loss/d" not in log[5] and "loss/g_adv" in log[5]
    assert _check_run(run) == [4, 6, 8]  # keep_last=3 of 2, 4, 6, 8, all finite


def test_nan_at_every_step_stops_with_a_message_naming_the_loss_and_saves_no_nan(tmp_path, monkeypatch):
    from superres.errors import ConfigError

    root = _training_images(tmp_path / "data")
    _nan_at(monkeypatch, set(range(3, 100)))
    config = load_config("srgan", _gan_args(root, tmp_path, "total_steps=20", "max_nonfinite_steps=4"))
    with pytest.raises(ConfigError, match=r"loss/g_adv was nan at 4 steps in a row \(steps 3–6\)") as caught:
        train(config)
    assert "the last checkpoint is step 4" in str(caught.value)  # step 4 was skipped: the weights of step 2
    assert _check_run(tmp_path / "srgan") == [2, 4]  # finite weights (checked there), nothing after
