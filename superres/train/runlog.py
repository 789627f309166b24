"""What a run reports: a progress bar with losses and ETA, a JSON-lines log, optional TensorBoard.

Only the main process (rank 0) logs; the others get a :class:`RunLogger` that does nothing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from superres.train.distributed import DistContext


def warn(ctx: DistContext, text: str) -> None:
    """A one-line notice from the main process (set-up, resume, skipped steps); the others stay quiet."""
    if ctx.is_main:
        print(f"superres train: {text}", flush=True)


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool, total_steps: int, start_step: int, tensorboard: bool) -> None:
        self.enabled = enabled
        self.log_path = run_dir / "log.jsonl"
        self._bar = None
        self._writer = None
        if not enabled:
            return
        _rewind(self.log_path, start_step)
        from tqdm.auto import tqdm

        # Redirected to a file, a bar redrawn ten times a second grows the file without bounds.
        interval = 0.1 if sys.stderr.isatty() else 10.0
        self._bar = tqdm(
            total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, smoothing=0.05, mininterval=interval
        )
        if tensorboard:
            self._writer = _tensorboard_writer(run_dir / "tensorboard")
            if self._writer is None:
                self.message("TensorBoard is not installed (pip install superres[train]); logging to log.jsonl only")

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(steps)

    def scalars(self, step: int, values: dict[str, float], show: bool = True) -> None:
        """Append ``values`` to log.jsonl and TensorBoard; ``show`` puts them on the progress bar."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"step": step, "time": round(time.time(), 3), **values}
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, step)
        if show and self._bar is not None:
            shown = {k.split("/", 1)[-1]: f"{v:.4g}" for k, v in values.items() if k.startswith("loss/")}
            self._bar.set_postfix(shown, refresh=False)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """An H×W×3 uint8 image to TensorBoard (grids are also written as PNG files by the trainer)."""
        if self.enabled and self._writer is not None:
            self._writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()


def _rewind(log_path: Path, step: int) -> None:
    """Keep the log's complete records up to ``step``, where a resumed run continues.

    A run killed between two checkpoints has logged steps that its resumption computes again, and
    a kill in the middle of an append leaves half a line; both go, so the log reads as one clean run.
    """
    if not log_path.is_file():
        return
    from superres.imageio import atomic_path

    text = log_path.read_text(encoding="utf-8", errors="replace")
    kept = []
    for line in text.splitlines(keepends=True):
        try:
            record = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    if len(kept) != len(text.splitlines(keepends=True)):
        with atomic_path(log_path) as tmp:
            tmp.write_text("".join(kept), encoding="utf-8")


def _tensorboard_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir))
