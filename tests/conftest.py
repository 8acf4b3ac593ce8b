"""Shared fixtures: seeds and the location of the real evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$PRODFUSION_SHARED_DATA`` or ``../shared/data`` relative to the repository root."""
    return Path(os.environ.get("PRODFUSION_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def seed() -> int:
    return 12345


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not (d / "hm" / "articles.csv").exists():
        pytest.skip(f"shared evaluation data not found at {d} (set PRODFUSION_SHARED_DATA)")
    return d
