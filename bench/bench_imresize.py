"""Speed of MATLAB-exact ``imresize``: the benchmark-LR degradation and the bicubic baseline.

    python bench/bench_imresize.py                  # 2000×2000 RGB uint8 ÷4 (the issue-3 figure)
    python bench/bench_imresize.py --runs 9 --json

Cases: uint8 2000×2000×3 by 1/4 (making an LR image), uint8 500×500×3 by 4 (the bicubic
baseline), and a float32 3×480×480 torch tensor by 1/4 (a training crop). Each figure is the
median of ``--runs`` timed calls after one untimed call; time only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from superres.quality.imresize import imresize


@dataclass(frozen=True)
class Timing:
    case: str
    median_ms: float
    min_ms: float
    runs: int


def time_call(case: str, call: Callable[[], object], runs: int) -> Timing:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return Timing(case, statistics.median(times), min(times), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (500, 500, 3), dtype=np.uint8)
    crop = torch.rand(3, 480, 480)
    timings = [
        time_call("uint8 2000×2000×3 ÷4", lambda: imresize(big, 0.25), args.runs),
        time_call("uint8 500×500×3 ×4", lambda: imresize(small, 4.0), args.runs),
        time_call("torch float32 3×480×480 ÷4", lambda: imresize(crop, 0.25), args.runs),
    ]
    if args.json:
        print(json.dumps([asdict(t) for t in timings], indent=2))
        return
    print(f"imresize, median of {args.runs} runs (torch threads: {torch.get_num_threads()})")
    for t in timings:
        print(f"  {t.case:<30} {t.median_ms:8.1f} ms  (min {t.min_ms:.1f} ms)")


if __name__ == "__main__":
    main()
