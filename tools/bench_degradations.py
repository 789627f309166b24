"""How much of a CPU training step the degradations cost: the loader's share, measured in one run.

    python tools/bench_degradations.py --data ../shared/train/BSDS500_train

Medians on one thread: one 128-px training sample with Real-ESRGAN's degradations (the paper's settings,
preset realesrnet, and superres_x4_real's narrower ones) and with MATLAB bicubic only, and one training
step of superres-x4's network on a batch of 16
(forward, L1, backward, Adam). A worker process makes a batch while the model trains on the previous one,
so the loader is hidden as long as 16 samples take less than a step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from superres.models.detect import build_network
from superres.train import load_config
from superres.train.data import TrainDataset, list_images


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/train/BSDS500_train")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config("superres_x4_real")
    paths = list_images(args.data)[:16]
    datasets = {
        "paper (realesrnet)": TrainDataset(paths, 4, 128, cache_in_memory=True,
                                           degradation=load_config("realesrnet").degradation),
        "superres_x4_real": TrainDataset(paths, 4, 128, cache_in_memory=True, degradation=config.degradation),
        "bicubic only": TrainDataset(paths, 4, 128, cache_in_memory=True),
    }  # fmt: skip
    counter = iter(range(10**9))
    per_sample = {}
    for name, dataset in datasets.items():
        for i in range(len(paths)):  # decode once (the training cache does the same)
            dataset[i]
        per_sample[name] = median_seconds(
            lambda d=dataset: d[(next(counter) % 16, (0, 0, next(counter)))], args.repeats
        )

    network = build_network(config.model.arch, config.model.hparams()).train()
    optimizer = torch.optim.Adam(network.parameters(), 1e-4)
    lr, hr = torch.rand(16, 3, 32, 32), torch.rand(16, 3, 128, 128)

    def step() -> None:
        loss = (network(lr) - hr).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    per_step = median_seconds(step, max(5, args.repeats // 3))
    print(f"training step, batch 16: {per_step * 1000:.0f} ms")
    for name, seconds in per_sample.items():
        print(f"{name}: {seconds * 1000:.1f} ms per sample; a batch of 16 = {16 * seconds / per_step:.2f} of a step")
    print("one worker keeps up while a batch takes less than a step (below 1)")

if __name__ == "__main__":
    main()
