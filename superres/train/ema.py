"""Exponential moving average of the generator's weights.

Averaging the weights of the last ~1/(1 − decay) updates smooths out the step-to-step noise of
SGD, and of adversarial training above all; BasicSR keeps such a copy (decay 0.999) and releases it
as ``params_ema``. Our checkpoints then save the average as the model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for averaged, current in zip(self.module.parameters(), model.parameters()):
            averaged.lerp_(current.detach(), 1.0 - self.decay)
        # Buffers (BatchNorm running statistics) are already averages; follow the live model.
        for averaged, current in zip(self.module.buffers(), model.buffers()):
            averaged.copy_(current)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state, strict=True)
