"""check_finite reads big matrices in chunks; the messages stay those of a whole-matrix check."""

from __future__ import annotations

import numpy as np
import pytest

import prodfusion.encoders.base as base
from prodfusion.encoders.base import Embeddings, check_finite
from prodfusion.errors import DataError


@pytest.fixture(autouse=True)
def _tiny_chunks(monkeypatch):
    monkeypatch.setattr(base, "_CHECK_CHUNK", 3)


def test_first_offending_row_and_count_span_chunks():
    v = np.ones((10, 2), np.float32)
    mask = np.ones(10, bool)
    mask[2] = False
    v[7, 1], v[8, 0] = np.nan, np.inf
    v[4], v[9] = 0, 0
    e = Embeddings(v, mask, "x")
    e.vectors[2] = np.nan  # absent rows are never looked at
    with pytest.raises(DataError, match=r"^x: vector of catalog row 7 contains NaN or Inf \(2 such rows\)"):
        check_finite(e)
    e.vectors[7, 1] = e.vectors[8, 0] = 1
    with pytest.raises(DataError, match=r"^x: vector of catalog row 4 is all zeros \(2 such rows\)"):
        check_finite(e)
    check_finite(e, allow_zero=True)


def test_memory_mapped_vectors(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((8, 3), np.float32))
    e = Embeddings(np.load(tmp_path / "v.npy", mmap_mode="c"), np.ones(8, bool), "m")
    check_finite(e)
    assert np.load(tmp_path / "v.npy").sum() == 24  # nothing written back
