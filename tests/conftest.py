"""Test fixtures. Real data comes from ``../shared`` (beside the repository) through ``shared`` alone."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real-data folder beside the repo (benchmarks, train, weights, reference_outputs)."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's many small convolutions on one thread.

    With tiny tensors, a second OpenMP thread buys little, and on a busy machine it can make the
    first one spin-wait for a descheduled partner (measured: 4× slower under load).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
