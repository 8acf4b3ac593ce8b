"""The ``category`` modality against brute-force loops, and tie-aware validation ranks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ParameterError
from prodfusion.evaluation.metrics import tie_aware_metric
from prodfusion.fusion import make_fuser
from prodfusion.fusion.category import CategoryMatch
from prodfusion.fusion.cooc import Cooc
from prodfusion.fusion.explain import explain_pairs
from prodfusion.fusion.weights import Weighting, estimate_stats
from prodfusion.recommender import Recommender

N = 30


def _data(seed=0):
    """30 products in 4 categories; rows 0-2 have none; random text/clicks vectors."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(N)]
    cats = [None, None, None] + [f"c{int(x)}" for x in rng.integers(0, 4, N - 3)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(N)],
                                "category": cats}))
    lists = [[ids[int(x)] for x in rng.choice(np.arange(4, N), int(rng.integers(2, 5)),
                                              replace=False)] for _ in range(40)]
    embs = {}
    for m, d in (("text", 5), ("clicks", 4)):
        v = rng.normal(size=(N, d)).astype(np.float32)
        embs[m] = Embeddings(v, rng.random(N) > 0.2, m)
    return cat, cats, Sessions.from_lists(lists), embs


def test_category_scores_stats_and_neighbours_match_a_brute_force_loop():
    cat, cats, _, _ = _data()
    c = CategoryMatch.from_catalog(cat)
    want = np.array([[float(a is not None and a == b) for b in cats] for a in cats])
    np.testing.assert_array_equal(c.scores(np.arange(N)), want)
    np.testing.assert_array_equal(c.scores([5, 9], [0, 9, 5]), want[[5, 9]][:, [0, 9, 5]])
    np.testing.assert_array_equal(c.mask, [x is not None for x in cats])
    pres = [i for i in range(N) if cats[i] is not None]
    vals = [want[i, j] for i in pres for j in pres if i != j]
    assert c.stats() == pytest.approx((np.mean(vals), np.std(vals)))
    assert estimate_stats({"category": c}, ["category"])["category"] == pytest.approx(c.stats())
    for row in (3, 10):
        assert c.neighbours(row).tolist() == [j for j in pres if j != row and cats[j] == cats[row]]
    assert c.neighbours(3, 2).tolist() == c.neighbours(3).tolist()[:2]
    assert len(c.neighbours(0)) == 0  # no category, no neighbours
    sub = c.take(np.array([10, 3, 0]))
    np.testing.assert_array_equal(sub.scores(np.arange(3)), want[[10, 3, 0]][:, [10, 3, 0]])
    bare = Catalog(pl.DataFrame({"product_id": ["a", "b"], "title": ["x", "y"]}))
    with pytest.raises(DataError, match="--category-col"):
        CategoryMatch.from_catalog(bare)


@np.errstate(invalid="ignore")
def _oracle(data, mods, wt):
    """Σ W_m s_m / Σ W_m over shared modalities; under zmean / D(q) (imputed as zmean@β)."""
    pair = {"cooc", "category"}
    u = {m: data[m].vectors / np.linalg.norm(data[m].vectors, axis=1, keepdims=True)
         for m in mods if m not in pair}
    out = np.full((N, N), -math.inf)
    for i in range(N):
        for j in range(N):
            num = den = dq = 0.0
            for m in mods:
                has = data[m].mask
                if has[i]:
                    dq += wt.w(m)
                if has[i] and has[j]:
                    raw = data[m].scores([i], [j])[0, 0] if m in pair else float(u[m][i] @ u[m][j])
                    num += wt.w(m) * float(wt.calibrate(m, np.float32(raw)))
                    den += wt.w(m)
            if den > 0:
                if wt.calibration == "zmean":
                    num += wt.impute * (num / den) * (dq - den)
                out[i, j] = num / (dq if wt.calibration == "zmean" else den)
    return out


@pytest.mark.parametrize("calibration", ["none", "zscore", "zmean", "zmean@0.5"])
@pytest.mark.parametrize("mods", [("category",), ("text", "category"),
                                  ("text", "clicks", "cooc", "category")])
def test_intermediate_fusion_with_category_matches_the_brute_force_formula(calibration, mods):
    cat, _, sessions, embs = _data(1)
    data = {**embs, "cooc": Cooc.from_sessions(sessions, cat),
            "category": CategoryMatch.from_catalog(cat)}
    weights = {"text": 0.5, "clicks": 2.0, "cooc": 1.5, "category": 0.7}
    calibration, _, beta = calibration.partition("@")
    stats = estimate_stats(data, mods, seed=0) if calibration != "none" else None
    wt = Weighting.make({m: weights[m] for m in mods}, calibration, stats, None,
                        impute=float(beta or 0))
    f = make_fuser("intermediate", data, mods, weighting=wt)
    got = f.similarity(np.arange(N))
    want = _oracle(data, mods, wt)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-5)
    # explain: the fused score, and the category's raw similarity (None where one lacks it)
    q = 7
    rows, scores = f.topk([q], 10)
    rows, scores = rows[0][rows[0] >= 0], scores[0][rows[0] >= 0]
    for e, s, r in zip(explain_pairs("intermediate", data, mods, wt, q, rows), scores, rows,
                       strict=True):
        assert e["score"] == pytest.approx(float(s), abs=1e-5)
        c = e["modalities"]["category"]
        if data["category"].mask[r]:
            assert c["raw"] == want_raw(data, q, r)
        else:
            assert c["raw"] is None and c["share"] == 0


def want_raw(data, q, r):
    codes = data["category"].codes
    return float(codes[q] == codes[r])


def test_early_and_late_fusion_refuse_the_category_modality():
    cat, _, _, embs = _data()
    data = {**embs, "category": CategoryMatch.from_catalog(cat)}
    for method in ("early", "late"):
        with pytest.raises(ParameterError, match="pairwise score"):
            make_fuser(method, data, ("text", "category"))


def test_recommender_builds_saves_and_loads_category_and_appends_products(tmp_path):
    cat, cats, sessions, embs = _data(2)
    rec = Recommender(text=None, image=None, clicks=None, category=True, fusion="intermediate")
    rec.build(cat, sessions)
    assert rec.available_modalities == ("category",)
    ids, scores = rec.similar("p05", k=40)
    same = sorted(p for p, c in zip(cat.ids, cats, strict=True) if c == cats[5] and p != "p05")
    # the same category first (1), then the other products with a category (0)
    assert sorted(ids[: len(same)]) == same and np.all(scores[: len(same)] == 1)
    assert len(ids) == N - 4 and np.all(scores[len(same):] == 0)
    path = rec.save(tmp_path / "m")
    back = Recommender.load(path)
    assert back.available_modalities == ("category",)
    np.testing.assert_array_equal(back.category_.codes, rec.category_.codes)
    assert list(back.similar("p05", k=40)[0]) == list(ids)
    # no category: nothing from it alone, only the backfill's most clicked products (NaN)
    assert np.isnan(back.similar("p00", k=5)[1]).all()
    back.backfill = None
    assert len(back.similar("p00", k=5)[0]) == 0
    back.backfill = "popular"
    # with vectors too, weighted; the category lifts same-category products
    both = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    both.category_ = CategoryMatch.from_catalog(cat)
    both.modalities = both.available_modalities
    assert both.modalities == ("text", "clicks", "category")
    both.weights = {"text": 1.0, "clicks": 0.0, "category": 5.0}
    top = both.similar("p05", k=5, modalities=["text", "category"])[0]
    assert all(cats[cat.row_of(p)] == cats[5] for p in top)
    # a catalog without categories: the modality is skipped with the reason, and alone
    # there is nothing to build
    bare = Catalog(pl.DataFrame({"product_id": cat.ids, "title": cat.titles}))
    only = Recommender(text=None, image=None, clicks=None, category=True, fusion="intermediate")
    with pytest.raises(ParameterError, match="category: the catalog has no categories"):
        only.build(bare, sessions)
    # products appended to the catalog get their own category
    new = Catalog(pl.DataFrame({"product_id": ["new"], "title": ["n"], "category": [cats[5]]}))
    both.add_products(new, {"text": Embeddings(np.ones((1, 5), np.float32), np.ones(1, bool),
                                               "text")})
    assert len(both.category_) == N + 1
    got = both.similar("p05", k=len(same) + 1, modalities=["category"])[0]
    assert sorted(got) == sorted([*same, "new"])


def test_approximate_search_with_category_equals_the_exact_fuser(rng):
    """HNSW over the vector modalities, restricted to the query's category, re-scored exactly."""
    from prodfusion.index import IndexSettings
    from tests.index.conftest import assert_same_topk, make_planted

    cat, embs, cats, _ = make_planted(rng, n=400)
    settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, nprobe=10_000,
                             pq_m=4, min_candidates=64)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate", index="hnsw",
                                      index_settings=settings)
    rec.category_ = CategoryMatch.from_catalog(cat)
    rec.modalities = rec.available_modalities
    rec.weights = {"text": 1.0, "image": 0.5, "clicks": 0.5, "category": 0.3}
    exact = rec.fuser()
    approx = rec.searcher()
    assert type(approx).__name__ == "PairwiseIntermediateIndex"
    q = np.arange(0, 400, 7)
    r0, s0 = exact.topk(q, 15)
    r1, s1 = approx.topk(q, 15)
    assert_same_topk(exact, q, r0, s0, r1, s1, atol=1e-4)
    for i in (0, 5, len(q) - 1):  # the block's index searches (once for all rows) as one's
        one_r, one_s = approx.topk(q[i : i + 1], 15)
        np.testing.assert_array_equal(one_r[0], r1[i])
        np.testing.assert_array_equal(one_s[0], s1[i])


def test_heldout_recommender_keeps_the_category_modality():
    from prodfusion.evaluation.retrieval import heldout_recommender, split_interactions

    cat, _, sessions, embs = _data(5)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.category_ = CategoryMatch.from_catalog(cat)
    rec.modalities = rec.available_modalities
    split = split_interactions(cat, sessions, None, test_fraction=0.3)
    ev = heldout_recommender(rec, split.train)
    assert "category" in ev.modalities and "cooc" not in ev.modalities  # rec has no cooc
    np.testing.assert_array_equal(ev.category_.codes, rec.category_.codes)


@pytest.mark.parametrize("metric", ["hitrate", "ndcg"])
def test_tie_aware_metric_is_the_mean_over_every_order_of_the_ties(metric):
    k = 4
    for ahead, ties in itertools.product(range(7), range(6)):
        vals = []
        for pos in range(ties + 1):  # every place of the target among its ties, equally likely
            rank = ahead + pos + 1
            vals.append(0.0 if rank > k else (1.0 if metric == "hitrate"
                                              else 1.0 / math.log2(rank + 1)))
        got = tie_aware_metric(np.array([ahead]), np.array([ties]), k, metric)[0]
        assert got == pytest.approx(np.mean(vals))


def test_category_neighbours_by_a_prior_by_hand():
    """The category's members by a prior (popularity): highest first, ties by row, the
    query itself left out."""
    c = CategoryMatch(np.array([0, 1, 0, 0, 0, 1, 0, -1]))
    prior = np.array([9.0, 8.0, 1.0, 5.0, 5.0, 7.0, 3.0, 9.0])
    assert c.neighbours(0).tolist() == [2, 3, 4, 6]
    assert c.neighbours(0, prior=prior).tolist() == [3, 4, 6, 2]
    assert c.neighbours(0, 1, prior=prior).tolist() == [3]  # 3 and 4 tie: row decides
    assert c.neighbours(2, 2, prior=prior).tolist() == [0, 3]
    assert c.neighbours(7, 3, prior=prior).tolist() == []  # no category
    # the order is kept per category for the prior it was sorted by; a new prior re-sorts
    assert c.neighbours(0, prior=prior[::-1].copy()).tolist() == [6, 2, 3, 4]
    assert c.neighbours(0, prior=prior).tolist() == [3, 4, 6, 2]
