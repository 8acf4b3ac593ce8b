"""The ``popularity`` modality: its scores, fused with others, stored, and counted on training."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.fusion.category import CategoryMatch
from prodfusion.fusion.popularity import PopularityPrior
from prodfusion.fusion.weights import Weighting, estimate_stats
from prodfusion.recommender import Recommender

N = 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(N)]
    cats = [f"c{i % 3}" for i in range(N)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(N)],
                                "category": cats}))
    # product i is clicked about i times: popularity grows with the row
    lists = [[ids[i], ids[int(rng.integers(0, i))]] for i in range(1, N) for _ in range(i)]
    text = Embeddings(rng.normal(size=(N, 6)).astype(np.float32), rng.random(N) > 0.2, "t")
    return cat, Sessions.from_lists(lists), {"text": text}


def test_popularity_scores_stats_and_neighbours_by_hand():
    counts = np.array([0, 3, 7, 7, 1])
    p = PopularityPrior(counts)
    want = np.log1p(counts) / np.log1p(7)
    np.testing.assert_allclose(p.scores([0, 4]), np.tile(want, (2, 1)), rtol=1e-6)
    np.testing.assert_allclose(p.scores([1], [4, 0])[0], want[[4, 0]], rtol=1e-6)
    assert p.mask.all()  # never clicked scores 0: present, not missing
    vals = [want[j] for i in range(5) for j in range(5) if i != j]
    assert p.stats() == pytest.approx((np.mean(vals), np.std(vals)))
    assert estimate_stats({"popularity": p}, ["popularity"])["popularity"] == \
        pytest.approx(p.stats())
    assert p.neighbours(2).tolist() == [3, 1, 4, 0] and p.neighbours(0, 2).tolist() == [2, 3]
    assert (PopularityPrior(np.zeros(3, int)).scores([0]) == 0).all()
    with pytest.raises(DataError, match="count >= 0"):
        PopularityPrior(np.array([1, -1]))


@pytest.mark.parametrize("calibration", ["none", "zscore", "zmean"])
def test_fused_popularity_matches_the_formula_and_orders_a_categorys_ties(calibration):
    cat, sessions, embs = _data()
    counts = np.array([sessions.product_counts().get(p, 0) for p in cat.ids])
    data = {**embs, "category": CategoryMatch.from_catalog(cat),
            "popularity": PopularityPrior(counts)}
    mods = ("text", "category", "popularity")
    stats = estimate_stats(data, mods) if calibration != "none" else None
    wt = Weighting.make({"text": 0.5, "category": 1.0, "popularity": 0.2}, calibration, stats)
    got = make_fuser("intermediate", data, mods, weighting=wt).similarity(np.arange(N))
    pop = data["popularity"].values
    for i in range(N):
        for j in range(N):
            num = den = dq = 0.0
            for m in mods:
                has_i, has_j = bool(data[m].mask[i]), bool(data[m].mask[j])
                dq += wt.w(m) * has_i
                if has_i and has_j:
                    if m == "text":
                        u = embs["text"].vectors
                        raw = float(u[i] @ u[j] / np.linalg.norm(u[i]) / np.linalg.norm(u[j]))
                    else:
                        raw = float(cat.categories[i] == cat.categories[j]) \
                            if m == "category" else float(pop[j])
                    num += wt.w(m) * float(wt.calibrate(m, np.float32(raw)))
                    den += wt.w(m)
            want = num / (dq if calibration == "zmean" else den) if den else -math.inf
            assert got[i, j] == pytest.approx(want, rel=1e-4, abs=1e-5)
    # category + a tie-break of popularity: the query's category, most clicked first
    f = make_fuser("intermediate", data, ("category", "popularity"),
                   weighting=Weighting.make({"category": 1.0, "popularity": 1e-3}))
    rows = f.topk([4], 6)[0][0]
    same = [j for j in np.argsort(-counts, kind="stable") if j % 3 == 4 % 3 and j != 4]
    assert rows.tolist() == same[:6]


def test_recommender_builds_saves_and_loads_popularity_counted_on_training(tmp_path):
    from prodfusion.evaluation.retrieval import heldout_recommender, split_interactions

    cat, sessions, embs = _data(1)
    rec = Recommender(text=None, image=None, clicks=None, popularity=True, category=True,
                      fusion="intermediate")
    rec.build(cat, sessions)
    assert rec.available_modalities == ("category", "popularity")
    counts = np.array([sessions.product_counts().get(p, 0) for p in cat.ids])
    np.testing.assert_array_equal(rec.popularity_.counts, counts)
    ids, _ = rec.similar("p05", k=3, modalities=["popularity"])
    top = [cat.ids[j] for j in np.lexsort((np.arange(N), -counts)) if j != 5][:3]
    assert list(ids) == top  # the most clicked, ties by row
    back = Recommender.load(rec.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.popularity_.counts, counts)
    assert list(back.similar("p05", k=3, modalities=["popularity"])[0]) == list(ids)
    # the evaluation counts it on the training part only
    split = split_interactions(cat, sessions, None, test_fraction=0.3)
    ev = heldout_recommender(back, split.train)
    train_counts = np.array([split.train.product_counts().get(p, 0) for p in cat.ids])
    np.testing.assert_array_equal(ev.popularity_.counts, train_counts)
    assert "popularity" in ev.modalities and (train_counts < counts).any()
    # without sessions there is nothing to count: skipped with the reason
    only = Recommender(text=None, image=None, clicks=None, popularity=True,
                       fusion="intermediate")
    with pytest.raises(ParameterError, match="popularity: no sessions given"):
        only.build(cat, None)


@pytest.mark.parametrize("calibration", ["none", "zmean"])
def test_approximate_search_with_popularity_and_category_equals_the_exact_fuser(rng, calibration):
    """HNSW over the vector modalities + the most popular products + the query's category,
    re-scored exactly: the same top 15 as the exact fuser."""
    from prodfusion.index import IndexSettings
    from tests.index.conftest import assert_same_topk, make_planted

    cat, embs, _, _ = make_planted(rng, n=400)
    settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, nprobe=10_000,
                             pq_m=4, min_candidates=64)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate", index="hnsw",
                                      index_settings=settings)
    rec.category_ = CategoryMatch.from_catalog(cat)
    rec.popularity_ = PopularityPrior(rng.zipf(1.5, 400).clip(0, 10_000) - 1)
    rec.modalities = rec.available_modalities
    rec.weights = {"text": 1.0, "image": 0.5, "clicks": 0.5, "category": 0.3,
                   "popularity": 0.4}
    rec.calibration = calibration
    exact = rec.fuser()
    approx = rec.searcher()
    assert type(approx).__name__ == "PairwiseIntermediateIndex"
    q = np.arange(0, 400, 7)
    r0, s0 = exact.topk(q, 15)
    r1, s1 = approx.topk(q, 15)
    assert_same_topk(exact, q, r0, s0, r1, s1, atol=1e-4)


def test_approximate_search_finds_popular_products_deep_in_a_large_category():
    """A large category's often-clicked products can outscore the vector index's best of the
    category: the approximate search takes the category's most popular as candidates too
    (without them it missed such products: recall@15 0.944 at 1M,
    docs/benchmarks/fusion_weights.md)."""
    from prodfusion.index import IndexSettings

    rng = np.random.default_rng(3)
    n = 6000  # ten categories of 600: the catalog's 64 most popular hold ~6 of each
    ids = [f"p{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids,
                                "category": [f"c{i % 10}" for i in range(n)]}))
    text = Embeddings(rng.normal(size=(n, 16)).astype(np.float32), np.ones(n, bool), "t")
    settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, nprobe=10_000,
                             pq_m=4, min_candidates=64)
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate",
                                      index="hnsw", index_settings=settings)
    rec.category_ = CategoryMatch.from_catalog(cat)
    rec.popularity_ = PopularityPrior(rng.poisson(5, n))
    rec.modalities = rec.available_modalities
    rec.weights = {"text": 1.0, "category": 1.0, "popularity": 2.0}
    rec.calibration = "zmean"
    exact, approx = rec.fuser(), rec.searcher()
    q = np.arange(0, n, 197)
    r0, s0 = exact.topk(q, 15)
    # planted: exact results lie beyond the 64 best of the category by the titles alone
    codes = rec.category_.codes
    x = text.vectors / np.linalg.norm(text.vectors, axis=1, keepdims=True)
    deep = 0
    for qi, row in zip(q, r0, strict=True):
        same = np.flatnonzero((codes == codes[qi]) & (np.arange(n) != qi))
        by_text = same[np.argsort(-(x[same] @ x[qi]), kind="stable")]
        deep += int(np.isin(row, by_text[64:]).sum())
    assert deep > len(q)  # more than one per query on average
    r1, s1 = approx.topk(q, 15)
    got = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(r0, r1, strict=True)])
    assert got == 1.0
    np.testing.assert_allclose(np.sort(s1, axis=1), np.sort(s0, axis=1), rtol=1e-4, atol=1e-4)
