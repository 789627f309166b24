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
