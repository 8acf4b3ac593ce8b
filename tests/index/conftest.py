"""Planted data for the index tests: categories, variation groups, missing modalities."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import Embeddings

DIMS = {"text": 24, "image": 40, "clicks": 16}
MISSING = {"text": 0.03, "image": 0.15, "clicks": 0.3}


def make_planted(rng: np.random.Generator, n: int = 600, n_cat: int = 12):
    """``n`` products in ``n_cat`` categories, groups of 3 variations, some modalities absent.

    Every modality is its category centre plus product noise, so neighbours are (mostly)
    same-category products and every fusion has a non-trivial ranking inside a category.
    """
    cats = rng.integers(0, n_cat, n)
    groups = np.arange(n) // 3
    embs = {}
    for m, d in DIMS.items():
        centres = rng.normal(size=(n_cat, d)) * 2.0
        v = centres[cats] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=(n, 1))
        mask = rng.random(n) >= MISSING[m]
        embs[m] = Embeddings(v.astype(np.float32), mask, m)
    frame = pl.DataFrame({
        "product_id": [f"{i:08d}" for i in range(n)],
        "title": [f"product {i}" for i in range(n)],
        "category": [f"c{c}" for c in cats],
        "group": [f"g{g}" for g in groups],
    })
    return Catalog(frame, source="planted"), embs, cats, groups


@pytest.fixture
def planted(rng):
    return make_planted(rng)


def assert_same_topk(fuser, queries, r_exact, s_exact, r_got, s_got, atol=1e-5):
    """``r_got`` is an exact top-k: same scores as the oracle, each score the row's true one.

    Rows may differ from the oracle's only where two candidates tie within ``atol``.
    """
    np.testing.assert_allclose(s_got, s_exact, atol=atol)
    np.testing.assert_array_equal(r_got < 0, r_exact < 0)
    for q, r, s in zip(queries, r_got, s_got, strict=True):
        valid = r >= 0
        assert len(set(r[valid].tolist())) == valid.sum()
        if valid.any():
            true = fuser.similarity([q], r[valid])[0]
            np.testing.assert_allclose(s[valid], true, atol=atol)


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """FAISS's OpenMP threads spin on a shared 2-core machine; the tests' data is tiny."""
    try:
        import faiss
    except ImportError:  # exact-search tests still run; FAISS tests skip (hook below)
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A test that reaches FAISS when faiss-cpu is not installed is skipped, not failed.

    Only that one error becomes a skip (the library's own message, see
    ``prodfusion.index.faiss_index._faiss``); every other failure stays a failure, and tests
    that never touch FAISS (exact search) run either way.
    """
    outcome = yield
    exc = outcome.excinfo[1] if outcome.excinfo else None
    if isinstance(exc, ImportError) and "Approximate search needs FAISS" in str(exc):
        outcome.force_exception(pytest.skip.Exception(f"faiss-cpu not installed: {exc}"))


def write_catalog_csv(path, n: int, seed: int = 4) -> None:
    """A CSV catalog of ``n`` products with short multilingual titles (ids ``p0``…)."""
    rng = np.random.default_rng(seed)
    words = ["red", "dress", "laptop", "blue", "shoe", "bag", "lamp", "green", "table", "chair",
             "cotton", "wool", "silk", "phone", "case", "kırmızı"]
    path.write_text("product_id,title\n" + "".join(
        f"p{i},{' '.join(rng.choice(words, 3))} {i % 997} {rng.choice(words)}{i % 13}\n"
        for i in range(n)), encoding="utf-8")
