"""Planted catalogs for the evaluation tests: answers known by construction."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.recommender import Prod2VecParams, Recommender

#: Title and photo vectors are unit vectors at these angles (degrees), so cos(similarity)
#: ranks neighbours by angular distance and every rank below can be read off by hand.
TEXT_ANGLES = [0, 10, 25, 45, 70, 100, 135, 178]
IMAGE_ANGLES = [0, 40, 100, 150, 160, 95, 30, 10]
CATEGORIES = ["tops", "tops", "tops", "shoes", "shoes", "bags", "bags", "bags"]
IDS = [f"00{i}" for i in range(8)]  # leading zeros kept


def _unit(angles) -> np.ndarray:
    a = np.deg2rad(np.asarray(angles, dtype=float))
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


@pytest.fixture
def angle_model() -> Recommender:
    """8 products; p3 has no photo. No click vectors (the evaluation retrains them)."""
    cat = Catalog(
        pl.DataFrame({"product_id": IDS, "title": [f"t{i}" for i in range(8)],
                      "category": CATEGORIES}),
        source="<angles>",
    )
    image_mask = np.ones(8, dtype=bool)
    image_mask[3] = False
    embs = {
        "text": Embeddings(_unit(TEXT_ANGLES), np.ones(8, dtype=bool), "planted-text"),
        "image": Embeddings(_unit(IMAGE_ANGLES), image_mask, "planted-image"),
    }
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, workers=1, min_count=1)
    return rec


@pytest.fixture
def angle_sessions() -> Sessions:
    """5 early training sessions (p6 never clicked) and 3 late held-out sessions.

    Held-out consecutive pairs: 000→002, 002→005 (session "a"), 003→004 ("b"), 006→005 ("c").
    """
    lists = [
        ["000", "001"], ["001", "002"], ["002", "003"], ["004", "005"], ["007", "001"],  # train
        ["000", "002", "005"], ["003", "004"], ["006", "005"],  # held out (latest)
    ]
    keys = ["t1", "t2", "t3", "t4", "t5", "a", "b", "c"]
    times = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 11.0, 12.0]
    frame = pl.DataFrame(
        {
            "session": [k for k, s in zip(keys, lists, strict=True) for _ in s],
            "position": [i for s in lists for i in range(len(s))],
            "product_id": [p for s in lists for p in s],
            "ts": [t for t, s in zip(times, lists, strict=True) for _ in s],
        }
    )
    return Sessions(frame)


@pytest.fixture
def planted_clusters():
    """A recommender over 3 categories × 20 products: text and clicks carry the category,
    image is pure noise; products 0 and 1 have no click vector."""
    rng = np.random.default_rng(7)
    n, n_cat = 60, 3
    cats = np.arange(n) % n_cat
    frame = pl.DataFrame({
        "product_id": [f"{i:04d}" for i in range(n)],
        "title": [f"item {i}" for i in range(n)],
        "category": [f"cat{c}" for c in cats],
    })
    embs = {}
    for m, d, scale in (("text", 12, 4.0), ("image", 12, 0.0), ("clicks", 6, 4.0)):
        centers = rng.normal(size=(n_cat, d)) * scale
        v = centers[cats] + rng.normal(size=(n, d))
        mask = np.ones(n, dtype=bool)
        if m == "clicks":
            mask[[0, 1]] = False
        embs[m] = Embeddings(v.astype(np.float32), mask, f"planted-{m}")
    return Recommender.from_embeddings(Catalog(frame, source="<planted>"), embs), cats


@pytest.fixture
def shop():
    """6 products with titles for TF-IDF, variation groups and hand-countable sessions."""
    titles = ["red cotton shirt", "red cotton shirts", "blue cotton shirt", "zzzz",
              "red cotton shirt", "wool hat"]
    ids = ["p0", "p1", "p2", "p3", "p4", "p5"]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": titles,
                                "group": ["g0", "g1", "g2", "g3", "g0", "g5"]}))
    rec = Recommender.from_embeddings(cat, {"text": Embeddings(
        np.eye(6, dtype=np.float32), np.ones(6, bool), "eye")})
    rec.train_sessions_ = Sessions.from_lists(
        [["p0", "p5"], ["p0", "p5", "p3"], ["p0", "p3"], ["p5", "p3"], ["p0", "p5"], ["p2", "p1"]])
    return rec


@pytest.fixture
def shop_with_categories(shop):
    """``shop`` with categories: p0 p1 p2 shirts, p3 none, p4 p5 hats."""
    cat = Catalog(shop.catalog.frame.with_columns(
        pl.Series("category", ["s", "s", "s", None, "h", "h"])))
    rec = Recommender.from_embeddings(cat, dict(shop.embeddings_))
    rec.train_sessions_ = shop.train_sessions_
    return rec
