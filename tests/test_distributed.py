"""Multi-process training: torchrun with 2 CPU processes (gloo) keeps both ranks' weights identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch

from superres.train import checkpoints as ckpt

# Each rank trains through the library entry point of `superres train`, then dumps what it holds.
RANK_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from superres.train.config import load_config
    from superres.train.distributed import setup, teardown
    from superres.train.data import TrainSampler
    from superres.train.trainer import Trainer

    def trainer_sampler(trainer, ctx):
        return TrainSampler(len(trainer.dataset), trainer.config.seed, ctx.rank, ctx.world_size)

    out, preset, *overrides = sys.argv[1:]
    config = load_config(preset, overrides)
    ctx = setup(config.device)
    trainer = Trainer(config, ctx, resume=False)
    trainer.run()
    held = {"G." + k: v for k, v in trainer.models.generator_raw.state_dict().items()}
    held.update({"D." + k: v for k, v in trainer.models.discriminator_raw.state_dict().items()})
    moments = [s["exp_avg"] for s in trainer.opt_g.state_dict()["state"].values()]
    sample = trainer.dataset[next(iter(trainer_sampler(trainer, ctx)))]["hr"]
    torch.save({"held": held, "moments": moments, "first_sample": sample, "rank": ctx.rank,
                "world": ctx.world_size, "batch": trainer.batch_per_rank}, f"{out}/rank{ctx.rank}.pt")
    teardown(ctx)
    """
)


def test_torchrun_two_cpu_processes_hold_identical_weights(shared, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    # The GAN stage exercises both DDP-wrapped networks (and SRGAN's BatchNorm in G and D).
    overrides = [
        f"output_dir={tmp_path}", f"data.root={shared}", "data.train=[train/T91]", "data.patch_size=16",
        "data.batch_size=4", "data.num_workers=0", "data.val=[]", "tensorboard=false", "init_from=none",
        "model.num_block=1", "model.num_feat=8", "discriminator.num_feat=4", "loss.vgg.layer=conv2_2",
        "loss.vgg.allow_random=true", "total_steps=3", "save_every=3", "log_every=1", "threads=1", "device=cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(tmp_path), "srgan", *overrides]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert (rank0["world"], rank0["batch"], rank1["rank"]) == (2, 2, 1)  # batch 4 split over 2 processes
    assert rank0["held"].keys() == rank1["held"].keys()
    for key, tensor in rank0["held"].items():
        assert torch.equal(tensor, rank1["held"][key]), f"{key} differs between the ranks"
    # What rank 0 saved is what both hold; only rank 0 wrote the log (one record per step).
    state = torch.load(tmp_path / "srgan" / "checkpoints" / "step_00000003" / ckpt.STATE_FILE, weights_only=True)
    assert state["world_size"] == 2
    for key, tensor in state["generator"].items():
        assert torch.equal(tensor, rank1["held"]["G." + key])
    records = [json.loads(line) for line in (tmp_path / "srgan" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    # The ranks trained on different samples, yet their gradients (Adam's first moments) agree:
    # DDP averaged them. Without it the identical weights above could not have come about.
    assert not torch.equal(rank0["first_sample"], rank1["first_sample"])
    assert len(rank0["moments"]) == len(rank1["moments"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(rank0["moments"], rank1["moments"]))
    assert any(m.abs().sum() > 0 for m in rank0["moments"])
