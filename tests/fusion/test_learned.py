"""The learned fusion (``tune --learner gbdt``): its trees against scikit-learn, its features
and pools against brute force, its place in ranking, storage and errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ModelError, ParameterError
from prodfusion.fusion.learned import (
    POOL_OFFSET,
    LearnedScorer,
    feature_names,
    pair_features,
    pool_mask,
    query_best,
    top_n_mask,
)
from prodfusion.fusion.weights import Weighting, intermediate_combine
from prodfusion.recommender import Recommender
from tests.evaluation.test_tuning import _pairs_by, _shop


def _fitted(seed=0, n=4000, n_feat=7, **kw):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_feat))
    X[rng.random(X.shape) < 0.2] = np.nan
    y = (np.nan_to_num(X[:, 0]) * np.nan_to_num(X[:, 1], nan=-1) + rng.normal(size=n)) > 0.3
    clf = HistGradientBoostingClassifier(max_iter=40, random_state=0, **kw).fit(X, y)
    return clf, rng


def test_the_trees_score_as_scikit_learn_and_survive_their_storage():
    clf, rng = _fitted()
    sc = LearnedScorer.from_estimator(clf, ("text", "image"))
    X = rng.normal(size=(5000, 7))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:7] = np.nan  # a row missing everything
    np.testing.assert_allclose(sc.predict(X), clf.decision_function(X), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(sc.predict_numpy(X), sc.predict(X))  # both walks
    assert sc._walkers() is not None  # this scikit-learn: the compiled walk
    d = json.loads(json.dumps(sc.to_dict()))  # through JSON, as in a manifest
    back = LearnedScorer.from_dict(d)
    assert back == sc and hash(back) == hash(sc)
    np.testing.assert_array_equal(back.predict(X), sc.predict(X))
    assert feature_names(("text", "image")) == [
        "sim:text", "gap:text", "sim:image", "gap:image", "clicks:candidate", "clicks:query",
        "linear"]


def test_many_rows_are_walked_on_threads_to_the_same_bit(monkeypatch):
    """The tuning's large validation pools run the compiled walker on OpenMP threads; one
    query's rows on one. Either way every row's score is the same."""
    import prodfusion.fusion.learned as learned

    clf, rng = _fitted()
    sc = LearnedScorer.from_estimator(clf, ("text", "image"))
    X = rng.normal(size=(3000, 7))
    X[rng.random(X.shape) < 0.3] = np.nan
    one = sc.predict(X)
    calls = []
    real = learned._walker_threads
    monkeypatch.setattr(learned, "_walker_threads", lambda n: calls.append(n) or 2)
    np.testing.assert_array_equal(sc.predict(X), one)
    assert calls == [3000]
    assert real(learned.THREADED_ROWS - 1) == 1 and real(learned.THREADED_ROWS) >= 1


def test_the_cold_bonus_lifts_the_products_without_clicks_alone_and_is_stored():
    """``cold_bonus`` adds to the score of a candidate whose ``clicks:candidate`` is 0 (no
    training clicks), to no other (NaN: a model without clicks); both walks agree, it
    survives storage, and trees without it keep the fingerprint they always had."""
    clf, rng = _fitted()
    plain = LearnedScorer.from_estimator(clf, ("text", "image"))
    X = rng.normal(size=(3000, 7))
    col = feature_names(("text", "image")).index("clicks:candidate")
    X[:1000, col] = 0.0  # new products
    X[1000:1500, col] = np.nan  # no clicks modality
    X[1500:, col] = np.abs(X[1500:, col]) + 0.1  # clicked
    hot = plain.with_cold_bonus(1.5)
    diff = hot.predict(X) - plain.predict(X)
    np.testing.assert_allclose(diff[:1000], 1.5, atol=1e-12)
    assert not diff[1000:].any()
    np.testing.assert_array_equal(hot.predict_numpy(X), hot.predict(X))
    # the fingerprint: unchanged without a bonus (models saved before it), another with one
    again = LearnedScorer(plain.modalities, plain.nodes, plain.roots, plain.baseline, plain.pool)
    assert again.fingerprint == plain.fingerprint and hot != plain
    assert "cold_bonus" not in plain.to_dict() and hot.to_dict()["cold_bonus"] == 1.5
    back = LearnedScorer.from_dict(json.loads(json.dumps(hot.to_dict())))
    assert back == hot and back.cold_bonus == 1.5
    np.testing.assert_array_equal(back.predict(X), hot.predict(X))
    for bad in (-0.5, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ModelError, match="cold_bonus"):
            plain.with_cold_bonus(bad)
    with pytest.raises(ModelError, match="damaged|cold_bonus"):
        LearnedScorer.from_dict({**hot.to_dict(), "cold_bonus": -1.0})


def test_new_query_trees_score_the_queries_without_clicks_alone_and_are_stored():
    """``new_query`` trees score the rows whose ``clicks:query`` is 0 (a product without
    training clicks asking for its list), the trees the others (NaN: a model without
    clicks); the bonus is added to both; both walks agree; it survives storage and changes
    the fingerprint, which trees without it keep."""
    clf, rng = _fitted()
    mods = ("text", "image")
    plain = LearnedScorer.from_estimator(clf, mods)
    other = LearnedScorer.from_estimator(_fitted(seed=1)[0], mods)
    X = rng.normal(size=(3000, 7))
    qcol = feature_names(mods).index("clicks:query")
    X[:1000, qcol] = 0.0  # queries without training clicks
    X[1000:1500, qcol] = np.nan  # no clicks modality
    X[1500:, qcol] = np.abs(X[1500:, qcol]) + 0.1
    X[::3, feature_names(mods).index("clicks:candidate")] = 0.0  # some new candidates
    routed = plain.with_cold_bonus(1.5).with_new_query(other)
    want = np.where(np.arange(3000) < 1000, other.predict(X), plain.predict(X)) + 1.5 * (
        X[:, feature_names(mods).index("clicks:candidate")] == 0)
    np.testing.assert_allclose(routed.predict(X), want, atol=1e-12)
    np.testing.assert_array_equal(routed.predict_numpy(X), routed.predict(X))
    np.testing.assert_array_equal(routed.predict(X[1000:]), plain.with_cold_bonus(1.5).predict(
        X[1000:]))  # no new query: the trees alone
    assert routed != plain.with_cold_bonus(1.5) and "new_query" not in plain.to_dict()
    assert routed.with_cold_bonus(0.0).new_query == other
    back = LearnedScorer.from_dict(json.loads(json.dumps(routed.to_dict())))
    assert back == routed and back.new_query == other and back.cold_bonus == 1.5
    np.testing.assert_array_equal(back.predict(X), routed.predict(X))
    assert "1 trees for new queries" not in repr(back) and "trees for new queries" in repr(back)
    lin = plain.with_cold_bonus(1.5).with_new_query("linear")  # the weights' score, no bonus
    got = lin.predict(X)
    np.testing.assert_array_equal(got[:1000], X[:1000, -1])
    np.testing.assert_array_equal(got[1000:], plain.with_cold_bonus(1.5).predict(X[1000:]))
    np.testing.assert_array_equal(lin.predict_numpy(X), got)
    back = LearnedScorer.from_dict(json.loads(json.dumps(lin.to_dict())))
    assert back == lin and back.new_query == "linear" and lin != routed
    for bad in (plain.with_cold_bonus(1.0), routed, "weights", LearnedScorer.from_estimator(
            _fitted(n_feat=9)[0], ("text", "image", "clicks"))):
        with pytest.raises(ModelError, match="new-query"):
            plain.with_new_query(bad)


def test_a_damaged_entry_is_a_clear_error():
    clf, _ = _fitted()
    d = LearnedScorer.from_estimator(clf, ("text", "image")).to_dict()
    with pytest.raises(ModelError, match="damaged"):
        LearnedScorer.from_dict({**d, "npz": "not base64!", "fingerprint": "x"})
    other = LearnedScorer.from_estimator(_fitted(seed=1)[0], ("text", "image")).to_dict()
    with pytest.raises(ModelError, match="fingerprint"):
        LearnedScorer.from_dict({**other, "fingerprint": "0123456789abcdef"})
    with pytest.raises(ModelError, match="out of range"):  # trained on 7 features, given 1 modality
        LearnedScorer.from_estimator(clf, ("text",))


def test_pair_features_clip_vector_cosines_so_both_search_paths_agree():
    """A duplicate title's cosine computed as 1.0000001 by one path and 1.0 by the other
    gives the same features (a ``gap`` at 0 either way); pairwise modalities' scores, not
    cosines, are left as they are."""
    mods = ("text", "cooc")
    both = {m: np.ones((1, 2), bool) for m in mods}
    one = pair_features(mods, {"text": np.float32([[1.0000001, 0.5]]),
                               "cooc": np.float32([[1.5, 0.2]])}, both,
                        {"text": np.float32([1.0000002]), "cooc": np.float32([1.5])},
                        None, None)
    other = pair_features(mods, {"text": np.float32([[1.0, 0.5]]),
                                 "cooc": np.float32([[1.5, 0.2]])}, both,
                          {"text": np.float32([1.0]), "cooc": np.float32([1.5])}, None, None)
    np.testing.assert_array_equal(one, other)
    assert one[0, 0, 0] == 1.0 and one[0, 0, 1] == 0.0  # sim:text, gap:text
    assert one[0, 0, 2] == np.float32(1.5) and one[0, 1, 3] == np.float32(0.2 - 1.5)


def test_query_best_against_brute_force():
    """A query's best similarity from its full rows is the best over the catalog, and the
    same from a pool holding each modality's nearest (the tuning's and the indexes' way)."""
    rng = np.random.default_rng(3)
    v = rng.normal(size=(50, 4)).astype(np.float32)
    mask = rng.random(50) > 0.3
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    q = np.flatnonzero(mask)[:6]
    q = np.append(q, np.flatnonzero(~mask)[0])  # a query lacking the modality
    cos = {"t": u[q] @ u.T}
    both = {"t": mask[q][:, None] & mask[None, :]}
    excl = q[:, None] == np.arange(50)[None, :]
    want = [max(float(u[i] @ u[j]) for j in np.flatnonzero(mask) if j != i) for i in q[:-1]]
    got = query_best(("t",), cos, both, excl)["t"]
    np.testing.assert_allclose(got[:-1], want, atol=1e-6)
    assert np.isnan(got[-1])
    pool = pool_mask(("t",), cos, both, 3, exclude=excl)  # each query's 3 nearest
    sub = query_best(("t",), {"t": np.where(pool, cos["t"], -5)}, {"t": pool & both["t"]})
    np.testing.assert_array_equal(sub["t"], got)
    # a co-occurrence-like modality: the products sharing no session with the query score 0
    m = np.zeros((5, 5), np.float32)
    m[0, 1] = m[1, 0] = 3.0
    m[0, 2] = m[2, 0] = 1.0
    m[3, 3] = 9.0  # a product with itself: not its best
    m[3, 4] = m[4, 3] = 0.5
    rows = np.arange(5)
    got = query_best(("cooc",), {"cooc": m}, {"cooc": np.ones((5, 5), bool)},
                     rows[:, None] == rows[None, :])["cooc"]
    np.testing.assert_allclose(got, [3.0, 3.0, 1.0, 0.5, 0.5])


def test_the_pool_is_each_modalitys_nearest():
    rng = np.random.default_rng(0)
    cos = {"text": rng.random((3, 40)).astype(np.float32),
           "cooc": np.where(rng.random((3, 40)) > 0.8, rng.random((3, 40)), 0).astype(np.float32)}
    both = {"text": rng.random((3, 40)) > 0.2, "cooc": np.ones((3, 40), bool)}
    excl = np.zeros((3, 40), bool)
    excl[0, 5] = True
    got = pool_mask(("text", "cooc"), cos, both, 4, exclude=excl)
    for q in range(3):
        t = np.where(both["text"][q] & ~excl[q], cos["text"][q], -np.inf)
        want = set(np.argsort(-t)[:4])
        c = np.where(~excl[q] & (cos["cooc"][q] > 0), cos["cooc"][q], -np.inf)
        want |= {j for j in np.argsort(-c)[:4] if np.isfinite(c[j])}
        assert set(np.flatnonzero(got[q])) == want


def test_top_n_is_a_stable_sorts_first_n_ties_included():
    rng = np.random.default_rng(7)
    row = rng.integers(0, 6, (40, 30)).astype(np.float32)  # many ties
    row[rng.random(row.shape) < 0.3] = -np.inf
    for n in (1, 4, 13, 29, 30, 50):
        want = np.zeros(row.shape, bool)
        for i in range(len(row)):
            top = np.argsort(-row[i], kind="stable")[:n]
            want[i, top[np.isfinite(row[i, top])]] = True
        np.testing.assert_array_equal(top_n_mask(row, n), want)


def test_pool_pairs_take_the_trees_score_the_others_rank_after_by_the_weights():
    clf, _ = _fitted(n_feat=len(feature_names(("text", "image"))))
    lr = LearnedScorer.from_estimator(clf, ("text", "image"))
    rng = np.random.default_rng(1)
    cos = {m: rng.uniform(-1, 1, (2, 9)).astype(np.float32) for m in ("text", "image")}
    both = {"text": np.ones((2, 9), bool), "image": rng.random((2, 9)) > 0.3}
    best = {m: cos[m].max(axis=1) for m in cos}
    logs = np.log1p(rng.integers(0, 9, 9)).astype(np.float32)
    pool = np.zeros((2, 9), bool)
    pool[:, :4] = True
    linear = Weighting.make({"text": 1.0, "image": 2.0})
    wt = Weighting.make({"text": 1.0, "image": 2.0}, learned=lr)
    with pytest.raises(ParameterError, match="best similarity"):
        intermediate_combine(wt, ("text", "image"), cos, both)
    out = intermediate_combine(wt, ("text", "image"), cos, both, logs[:2], logs, q_best=best,
                               pool=pool)
    lin = intermediate_combine(linear, ("text", "image"), cos, both)
    X = pair_features(("text", "image"), cos, both, best, logs[:2], logs, lin)
    np.testing.assert_allclose(out[pool], lr.predict(X[pool]), rtol=1e-6)
    np.testing.assert_allclose(out[~pool], lin[~pool] - POOL_OFFSET, rtol=1e-6)
    assert out[pool].min() > out[~pool].max()
    # weights asked for on top of a learned weighting: linear again
    assert wt.overridden({"text": 1.0}).learned is None
    assert wt.restrict(("text",)).learned is None and wt.restrict(("image", "text")) == wt
    assert Weighting.from_dict(json.loads(json.dumps(wt.to_dict()))) == wt
    with pytest.raises(ParameterError, match="linear weights"):
        Weighting.make(None, learned=lr)


@pytest.fixture(scope="module")
def trees_shop():
    """The 120-product shop (titles carry the category, photos are noise), its sessions,
    pairs that follow the photos, and a profile of trees learnt on the pairs."""
    rec, sessions, _ = _shop()
    ids = list(rec.catalog.ids)
    pairs = _pairs_by(np.asarray(rec.embeddings_["image"].vectors), ids,
                      np.random.default_rng(5))
    before = rec.weighting()
    res = rec.tune(sessions, pairs, profile="trees", learner="gbdt", validate_on="pairs",
                   objective="hitrate@5", max_iter=60, keep_worse=True)
    return rec, sessions, pairs, before, res


def _brute(rec, wt, q, k):
    """Top ``k`` of row ``q`` from the N×N loop: trees on each modality's 200 nearest."""
    data = rec.modality_data()
    mods = wt.learned.modalities
    u = {m: np.asarray(data[m].vectors, np.float64) for m in mods}
    u = {m: x / np.linalg.norm(x, axis=1, keepdims=True) for m, x in u.items()}
    n = len(rec.catalog)
    cos = {m: (u[m] @ u[m][q]).astype(np.float32)[None] for m in mods}
    both = {m: np.ones((1, n), bool) for m in mods}
    cc = getattr(rec, "click_counts_", None)  # this shop has no clicks: the feature is missing
    logs = None if cc is None else np.log1p(cc).astype(np.float32)
    lin_wt = rec.weighting(mods, replace(wt, learned=None))
    lin = np.array([[sum(lin_wt.w(m) * cos[m][0, j] for m in mods) / sum(lin_wt.w(m) for m in mods)
                     for j in range(n)]], np.float32)  # the weights' mean (calibration none)
    best = {m: np.array([max(cos[m][0, j] for j in range(n) if j != q)]) for m in mods}
    X = pair_features(mods, cos, both, best,
                      None if logs is None else logs[[q]], logs, lin)
    s = wt.learned.predict(X[0])  # 120 products: every one is among each modality's 200
    s[q] = -np.inf
    return [int(x) for x in np.lexsort((np.arange(n), -s))[:k]]


def test_a_trees_profile_ranks_as_its_trees_and_leaves_the_default(trees_shop, tmp_path):
    rec, _, _, before, res = trees_shop
    assert rec.weighting() == before and "tuning" not in rec.manifest_
    wt = rec.profile_weighting("trees")
    assert wt.learned is not None and wt.learned.n_trees == res["trees"]["n_trees"] >= 1
    assert "scorer" not in res and res["learner"] == "gbdt"
    assert set(res["reference_scores"]) == {"linear", "text alone", "image alone"}
    # by slice, out of fold: the photo slices split the validation cases
    sl = res["validation_slices"]
    assert sl["query: with image"]["n"] + sl.get("query: no image", {"n": 0})["n"] == \
        res["split"]["n_validation_cases"]  # an empty slice is left out
    for row in sl.values():
        assert row["best single"] == max(row["text alone"], row["image alone"])
    for q in (0, 17, 90):
        ids, _ = rec.similar(rec.catalog.ids[q], k=6, profile="trees")
        assert [rec.catalog.row_of(i) for i in ids] == _brute(rec, wt, q, 6)
    back = Recommender.load(rec.save(tmp_path / "m"))
    assert back.profile_weighting("trees") == wt
    a = back.similar(rec.catalog.ids[3], k=6, profile="trees")
    b = rec.similar(rec.catalog.ids[3], k=6, profile="trees")
    assert list(a[0]) == list(b[0]) and np.allclose(a[1], b[1])


def test_trees_learn_the_pairs_photos(trees_shop):
    """The pairs follow the photos: out of fold the trees find them far better than the
    titles (the model's default weighting is equal, untuned)."""
    _, _, _, _, res = trees_shop
    refs = res["reference_scores"]
    assert res["validation_score"] > refs["text alone"] + 0.2
    assert res["validation_score"] > refs["linear"] + 0.2
    assert res["gain"]["over"] == "image alone"


def test_bad_requests_are_refused_and_change_nothing():
    rec, sessions, _ = _shop()
    before = rec.weighting()
    with pytest.raises(ParameterError, match="profile"):
        rec.tune(sessions, learner="gbdt", profile="bad name")
    with pytest.raises(ParameterError, match="learner"):
        rec.tune(sessions, learner="forest", profile="x")
    with pytest.raises(ParameterError, match="interactions"):
        rec.tune(None, learner="gbdt", profile="x")
    with pytest.raises(ParameterError, match="repeats"):
        rec.tune(sessions, learner="gbdt", profile="x", repeats=0)
    for bad in (-1.0, float("nan"), "2", True):
        with pytest.raises(ParameterError, match="min_gain_se"):
            rec.tune(sessions, learner="gbdt", profile="x", min_gain_se=bad)
    for bad in (-1.0, float("inf"), "big", True, None):
        with pytest.raises(ParameterError, match="cold_bonus"):
            rec.tune(sessions, learner="gbdt", profile="x", cold_bonus=bad)
    assert rec.weighting() == before and not rec.profiles


def test_the_trees_never_see_a_target_outside_the_pools():
    """The presence leak, for a learner: targets that are in no modality's nearest products
    (here: products whose photos and titles are far from everything) are never training
    rows, so lacking similarity cannot become a sign of an answer."""
    from prodfusion.evaluation.tuning_learned import _rows

    class Sc:  # a scorer's arrays for 1 query, 4 candidates; candidate 3 is a target
        mods = ("text",)
        cand = np.array([[0, 1, 2, 3]])
        natural = np.array([[True, True, True, False]])
        cos = {"text": np.array([[0.9, 0.5, 0.1, -0.9]], np.float32)}
        both = {"text": np.ones((1, 4), bool)}
        best = {"text": np.array([0.9], np.float32)}
        safe = cand
        uq = np.array([9])
        inv = np.array([0, 0])
        tpos = np.array([3, 0])
        counts = None

    X, y, w = _rows(Sc, ("text",), np.array([True]), np.random.default_rng(0))
    assert len(y) == 3 and y.sum() == 1  # candidate 0 (a target in the pool) only
    assert X[y == 1][0][0] == pytest.approx(0.9)


def test_a_model_without_interactions_cannot_learn_trees():
    rec, _, _ = _shop()
    with pytest.raises((ParameterError, DataError)):
        rec.tune(None, None, learner="gbdt", profile="x")


def test_explain_splits_the_trees_score_over_the_modalities(trees_shop):
    rec = trees_shop[0]
    ids, scores = rec.similar(rec.catalog.ids[11], k=5, profile="trees")
    out = rec.explain(rec.catalog.ids[11], list(ids), profile="trees")
    for e, s in zip(out, scores, strict=True):
        assert e["learned"] and e["pool"]
        total = e["base"] + sum(v["share"] for v in e["modalities"].values())
        assert total == pytest.approx(e["score"], abs=1e-9)
        assert e["score"] == pytest.approx(float(s), abs=1e-4)  # the score served


def test_the_approximate_search_ranks_as_the_exact_one_when_its_indexes_find_everything(
        trees_shop, monkeypatch):
    """On an HNSW backend a trees profile gathers each modality's nearest from that
    modality's own index and scores them by the trees: with indexes that find every
    neighbour (120 products, a pool of 200) the lists equal the exact search's."""
    from prodfusion.index import IndexSettings
    from prodfusion.index.learned import LearnedRescorer
    from prodfusion.index.topk import Filters

    rec = trees_shop[0]
    exact = {q: rec.similar(rec.catalog.ids[q], k=8, profile="trees") for q in (0, 5, 77)}
    old = rec.index, rec.index_settings
    try:
        rec.index = "hnsw"
        rec.index_settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024)
        rec._fusers, rec._searchers = {}, {}
        wt = rec.weighting(rec.available_modalities, rec.profile_weighting("trees"))
        searcher = rec.searcher("intermediate", rec.available_modalities, wt)
        assert isinstance(searcher, LearnedRescorer)
        batch = searcher.topk(np.array([0, 5, 77]), 8)  # one index search per modality
        for i, q in enumerate((0, 5, 77)):
            one = searcher.topk([q], 8)
            assert list(batch[0][i]) == list(one[0][0])
            np.testing.assert_array_equal(batch[1][i], one[1][0])
            # the block's trees (one walk for every query's pairs) score as query by query
            c = searcher.candidates(q, Filters())
            alone = searcher.pair_scores(q, c)
            top = np.lexsort((c, -alone))[:8]
            assert list(batch[0][i]) == list(c[top])
            np.testing.assert_array_equal(batch[1][i], alone[top])
        for q, (ids, scores) in exact.items():
            a_ids, a_scores = rec.similar(rec.catalog.ids[q], k=8, profile="trees")
            assert list(a_ids) == list(ids)
            np.testing.assert_allclose(a_scores, scores, rtol=1e-5)
            # a filter leaves the query's best similarity (a feature) as it is: banning
            # its nearest products drops them from the list, and moves no other score
            banned = list(ids[:3])
            f_ids, f_scores = rec.similar(rec.catalog.ids[q], k=5, profile="trees",
                                          exclude=banned)
            assert list(f_ids) == list(ids[3:8])
            np.testing.assert_allclose(f_scores, scores[3:8], rtol=1e-5)
            # explain draws the pool from the same indexes (no scan of the catalog): its
            # scores are the served ones
            import prodfusion.fusion.learned as learned_mod

            def no_scan(*a, **kw):
                raise AssertionError("explain scanned the catalog for the pool")

            monkeypatch.setattr(learned_mod, "pool_mask", no_scan)
            searches = []  # the indexes are searched once for the list and its explanation

            def counted(rows, flt, f=searcher.candidates_many, log=searches):
                log.append(len(rows))
                return f(rows, flt)

            monkeypatch.setattr(searcher, "candidates_many", counted)
            e_ids, e_scores, why = rec.similar(rec.catalog.ids[q], k=5, profile="trees",
                                               exclude=banned, explain=True)
            assert list(e_ids) == list(f_ids)
            assert searches == [1, 1]  # the filtered pool, the unfiltered one: no third
            for e, sc in zip(why, e_scores, strict=True):
                assert e["pool"] and e["score"] == pytest.approx(float(sc), abs=1e-4)
                assert e["base"] + sum(v["share"] for v in e["modalities"].values()) == \
                    pytest.approx(e["score"], abs=1e-9)
            monkeypatch.undo()
    finally:
        rec.index, rec.index_settings = old
        rec._fusers, rec._searchers = {}, {}


def test_the_tuning_measures_the_trees_as_they_serve(trees_shop):
    """The validation scorer (every product scored: no sample) gives each case the metric
    of the list the fuser serves under the trees' profile."""
    from prodfusion.evaluation.metrics import tie_aware_metric
    from prodfusion.evaluation.tuning_scorer import _Scorer

    rec = trees_shop[0]
    mods = rec.available_modalities
    wt = rec.weighting(mods, rec.profile_weighting("trees"))
    q = np.array([0, 5, 77, 90, 5])
    served = {x: rec.similar(rec.catalog.ids[x], k=8, profile="trees")[0] for x in set(q)}
    t = np.array([rec.catalog.row_of(served[0][0]), rec.catalog.row_of(served[5][2]),
                  rec.catalog.row_of(served[77][6]), 2, 60])  # first, third, 7th, any
    n = len(rec.catalog)
    sc = _Scorer(rec, mods, q, t, np.array(["pairs"] * len(q)), rec.click_counts_, "ndcg", 5,
                 n_outside=n, learned_pool=wt.learned.pool)
    got = sc.values(wt)
    s = rec.fuser("intermediate", mods, wt).similarity(q).astype(np.float64)
    s[np.arange(len(q)), q] = -np.inf
    st = s[np.arange(len(q)), t]
    ahead = (s > st[:, None]).sum(axis=1)
    ties = (s == st[:, None]).sum(axis=1) - 1
    want = tie_aware_metric(ahead, ties, 5, "ndcg")
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert got[0] == 1.0 and 0 < got[1] < 1 and got[2] == 0  # nDCG@5 of ranks 1, 3, 7


def test_a_scorer_restricted_to_some_queries_scores_their_cases_as_the_whole(trees_shop):
    """The out-of-fold measure scores each group of queries on a scorer of its own
    (``_Scorer.restricted``): the same metric, to the bit, as the whole scorer's at those
    cases, under the trees (with a bonus for new products) and under weights alike."""
    from prodfusion.evaluation.tuning_scorer import _Scorer

    rec = trees_shop[0]
    mods = rec.available_modalities
    wt = rec.weighting(mods, rec.profile_weighting("trees"))
    rng = np.random.default_rng(4)
    q = rng.integers(len(rec.catalog), size=40)
    t = rng.integers(len(rec.catalog), size=40)
    src = np.where(rng.random(40) < 0.5, "pairs", "sessions")
    counts = rng.integers(0, 3, size=len(rec.catalog))  # some products without clicks
    sc = _Scorer(rec, mods, q, t, src, counts, "ndcg", 10, learned_pool=wt.learned.pool)
    sc.slices["target: no training clicks"] = counts[t] == 0
    keep = np.arange(len(sc.uq)) % 3 == 1
    sub = sc.restricted(keep)
    cases = keep[sc.inv]
    assert len(sub.inv) == cases.sum() and (sub.uq[sub.inv] == q[cases]).all()
    np.testing.assert_array_equal(sub.slices["target: no training clicks"],
                                  (counts[t] == 0)[cases])
    for w in (wt, replace(wt, learned=wt.learned.with_cold_bonus(2.0)),
              replace(wt, learned=None)):
        np.testing.assert_array_equal(sub.values(w), sc.values(w)[cases])
    assert sub.objective(sub.values(wt)) == pytest.approx(
        sc.objective(sc.values(wt), cases))


def test_scores_of_some_candidates_equal_those_of_the_full_rows(trees_shop):
    """Scoring a few candidates (an export's update, ``exact_scores``) gives them the
    scores the full rows give: the pool is each modality's nearest over the catalog."""
    rec = trees_shop[0]
    mods = rec.available_modalities
    lr = rec.profile_weighting("trees").learned
    small = LearnedScorer(lr.modalities, lr.nodes, lr.roots, lr.baseline, pool=5)
    f = rec.fuser("intermediate", mods, rec.weighting(mods, replace(
        rec.profile_weighting("trees"), learned=small)))
    q = np.array([3, 40])
    full = f.similarity(q)
    assert (full < -POOL_OFFSET / 2).any(axis=1).all()  # some products outside the pools
    some = np.array([7, 3, 119, 0, 64, int(np.argmax(full[0])), int(np.argmin(full[1]))])
    np.testing.assert_array_equal(f.similarity(q, some), full[:, some])


def test_a_trees_profile_exports_and_serves_as_similar_ranks(trees_shop, tmp_path):
    """Exported lists and a service arm of the trees' profile list what ``similar`` does;
    the arm's ``explain`` is the trees' (shares summing to the score)."""
    from fastapi.testclient import TestClient

    from prodfusion.batch.export import export_lists, read_lists
    from prodfusion.service.app import create_app
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    rec = trees_shop[0]
    model = rec.save(tmp_path / "m")
    lists = tmp_path / "trees.parquet"
    export_lists(model, lists, k=5, profile="trees", progress=False)
    loaded = Recommender.load(model)
    r, _ = loaded.similar_rows(np.arange(len(loaded.catalog)), 5, profile="trees")
    assert read_lists(lists).column("ids").to_pylist() == [list(x) for x in loaded.ids_of(r)]
    want = list(rec.similar("0003", k=5, profile="trees")[0])
    settings = ServiceSettings(
        experiment=ExperimentConfig("t", variants=(VariantConfig("trees", 1, model,
                                                                 profile="trees"),)),
        events=str(tmp_path / "t.sqlite3"), reload_interval_s=0)
    with TestClient(create_app(settings)) as client:
        body = client.get("/v1/similar/0003", params={"visitor": "v", "k": 5,
                                                      "explain": "true"}).json()
    assert [it["product_id"] for it in body["items"]] == want
    for it in body["items"]:
        e = it["explain"]
        assert e["learned"] and e["base"] + sum(
            v["share"] for v in e["modalities"].values()) == pytest.approx(e["score"], abs=1e-6)


def test_the_trees_as_the_models_own_weighting(trees_shop, tmp_path):
    """Without a profile the trees become the model's weighting (what ``similar`` serves by
    default), survive save and load, and a later linear tuning replaces them."""
    rec0, sessions, pairs = trees_shop[:3]
    rec = Recommender.load(rec0.save(tmp_path / "a"))
    res = rec.tune(sessions, pairs, learner="gbdt", validate_on="pairs",
                   objective="hitrate@5", max_iter=60, keep_worse=True)
    assert res["kept"] and "scorer" not in res and rec.manifest_["tuning"]["learner"] == "gbdt"
    wt = rec.weighting()
    assert wt.learned is not None and wt.learned.pool == 200
    assert wt.learned == rec.profile_weighting("trees").learned  # the same data, the same trees
    for q in (0, 17):
        ids, _ = rec.similar(rec.catalog.ids[q], k=6)
        assert [rec.catalog.row_of(i) for i in ids] == _brute(rec, wt, q, 6)
    back = Recommender.load(rec.save(tmp_path / "b"))
    assert back.weighting().learned == wt.learned
    # evaluate's held-out copy ranks by the same trees (it once kept only their weights)
    from prodfusion.evaluation.split import heldout_recommender

    ev = heldout_recommender(back, None)
    assert ev.weighting().learned == wt.learned
    for q in (0, 17):
        ids, _ = ev.similar(rec.catalog.ids[q], k=6)
        assert [rec.catalog.row_of(i) for i in ids] == _brute(ev, ev.weighting(), q, 6)
    assert list(back.similar(rec.catalog.ids[3], k=6)[0]) == list(rec.similar(
        rec.catalog.ids[3], k=6)[0])
    back.tune(sessions, pairs, objective="hitrate@5", step=0.5, n0_grid=(None,),
              max_queries=200)
    assert back.weighting().learned is None and "learner" not in back.manifest_["tuning"]
    assert res["weights_profile"] is None  # the first trees replaced untuned weights
    # trees replacing tuned weights keep them as profile 'weights': the lists of before
    before = {q: list(back.similar(rec.catalog.ids[q], k=6)[0]) for q in (0, 17)}
    res2 = back.tune(sessions, pairs, learner="gbdt", validate_on="pairs",
                     objective="hitrate@5", max_iter=60, keep_worse=True)
    assert res2["weights_profile"] == "weights" and back.weighting().learned is not None
    again = Recommender.load(back.save(tmp_path / "c"))
    for r in (back, again):
        assert r.profile_weighting("weights").learned is None
        for q, ids in before.items():
            assert list(r.similar(rec.catalog.ids[q], k=6, profile="weights")[0]) == ids
    res3 = again.tune(sessions, pairs, learner="gbdt", validate_on="pairs",
                      objective="hitrate@5", max_iter=60, keep_worse=True)
    assert res3["weights_profile"] is None  # trees replacing trees: the profile stays
    assert again.profile_weighting("weights") == back.profile_weighting("weights")


def test_early_and_late_fusion_of_a_trees_model_weigh_by_its_weights(trees_shop, tmp_path):
    """Trees are intermediate fusion's: asked for early or late fusion, a model whose own
    weighting holds trees ranks by its weights alone (its click confidence, not the trees'
    click-count feature)."""
    from prodfusion.fusion.weights import Weighting as W

    rec0, sessions, pairs = trees_shop[:3]
    rec = Recommender.load(rec0.save(tmp_path / "a"))
    rec.tune(sessions, pairs, learner="gbdt", validate_on="pairs", objective="hitrate@5",
             max_iter=20, keep_worse=True)
    assert rec.weighting().learned is not None
    lin = W.make(dict(rec.weighting().weights), rec.weighting().calibration)
    for method in ("early", "late"):
        assert rec.weighting(method=method).learned is None
        a = rec.similar(rec.catalog.ids[4], k=5, fusion=method)
        b = rec.similar(rec.catalog.ids[4], k=5, fusion=method,
                        weights=dict(lin.weights))
        assert list(a[0]) == list(b[0])


def test_a_categorys_pool_is_its_bestsellers_in_every_path():
    """The category scores 1 for its whole group: its pool is the group's ``n`` most clicked
    (ties: the lower row), the same in ``pool_mask`` (exact search, tuning) as in the
    category's neighbour list that the approximate search draws."""
    from prodfusion.fusion.category import CategoryMatch

    rng = np.random.default_rng(2)
    codes = rng.integers(-1, 3, 60)
    cat = CategoryMatch(codes)
    logs = np.log1p(rng.integers(0, 4, 60)).astype(np.float32)  # many ties
    q = np.flatnonzero(codes >= 0)[:6]
    cos = {"category": cat.scores(q).astype(np.float32)}
    both = {"category": cat.mask[q][:, None] & cat.mask[None, :]}
    excl = q[:, None] == np.arange(60)[None, :]
    pm = pool_mask(("category",), cos, both, 5, exclude=excl, prior=logs)
    for i, x in enumerate(q):
        want = set(cat.neighbours(int(x), 5, prior=logs).tolist())
        assert set(np.flatnonzero(pm[i]).tolist()) == want
        members = np.flatnonzero((codes == codes[x]) & (np.arange(60) != x))
        assert len(want) == min(5, len(members))
        assert min(logs[list(want)]) >= max(np.delete(logs[members], np.isin(
            members, list(want)).nonzero()[0]), default=-1)


def test_explain_finds_the_pool_as_the_fuser_does_with_a_category():
    """``explain`` scores a pair by the trees exactly where the fuser does: the category's
    pool is its bestsellers, not its first products by row (scores equal to the fuser's)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from prodfusion.fusion.category import CategoryMatch
    from prodfusion.fusion.explain import explain_pairs
    from prodfusion.fusion.intermediate import IntermediateFusion

    rng = np.random.default_rng(4)
    n = 40
    mods = ("text", "category")
    data = {"text": Embeddings(rng.normal(size=(n, 3)).astype(np.float32), np.ones(n, bool),
                               "t"),
            "category": CategoryMatch(rng.integers(0, 2, n))}
    X = rng.normal(size=(3000, len(feature_names(mods))))
    y = X[:, 0] + X[:, 4] + rng.normal(size=3000) > 0
    lr = LearnedScorer.from_estimator(
        HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y), mods, pool=3)
    wt = Weighting.make({"text": 1.0, "category": 1.0}, learned=lr)
    logs = np.log1p(rng.integers(0, 50, n)).astype(np.float32)  # the category's bestsellers
    served = IntermediateFusion(modalities=mods, weighting=wt, confidence=logs).fit(
        data).similarity([0])[0]
    out = explain_pairs("intermediate", data, mods, wt, 0, np.arange(1, n), confidence=logs)
    got = np.array([e["score"] for e in out])
    np.testing.assert_allclose(got, served[1:], rtol=1e-5)
    pooled = [e["pool"] for e in out]
    assert 3 <= sum(pooled) < n - 1


def _shop_with_new_products():
    """A shop with clicks where a quarter of the products are new (each visited once, last
    in its session, after a product with a near title), and its sessions."""
    from prodfusion.encoders import Prod2Vec
    from prodfusion.recommender import Prod2VecParams
    from tests.evaluation.test_tuning import _timed

    rec, sessions, _ = _shop()
    ids = list(rec.catalog.ids)
    text = np.array(rec.embeddings_["text"].vectors)
    u = text / np.linalg.norm(text, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    new = list(range(0, len(ids), 4))
    new_ids = {ids[i] for i in new}
    lists = []
    for _, g in sessions.frame.sort("position").group_by("session", maintain_order=True):
        out = [p for p in g["product_id"].to_list() if p not in new_ids]
        if len(out) < 2:
            continue
        if new and len(lists) % 7 == 3:  # a new product, once, last: the last one's nearest
            j = max(new, key=lambda i: float(u[i] @ u[ids.index(out[-1])]))
            new.remove(j)
            text[j] = text[ids.index(out[-1])] + 0.05 * rng.normal(size=text.shape[1])
            out.append(ids[j])
        lists.append(out)
    rec = Recommender.from_embeddings(rec.catalog, {
        **rec.embeddings_, "text": Embeddings(text, np.ones(len(ids), bool), "planted-text")},
        fusion="intermediate")
    sess = _timed(lists)
    clicks = Prod2Vec(vector_size=8, epochs=2, workers=1, min_count=1).fit(sess).encode(
        rec.catalog)
    rec = Recommender.from_embeddings(rec.catalog, {**rec.embeddings_, "clicks": clicks},
                                      fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    return rec, sess


def test_the_cold_bonus_is_chosen_out_of_fold_by_its_rule():
    """A shop with clicks where a quarter of the products are new (each visited once, last
    in its session, after a product with a near title): the tuning scores every bonus of
    ``COLD_BONUSES`` with the same out-of-fold trees and keeps, among those bringing the
    targets without training clicks to the best single modality's score there and spending
    at most half the trees' gain, the one with the best objective (0 where none does); the
    record's figures are the kept bonus's and the profile serves with it. A bonus given is
    used as it is; 0 tries nothing."""
    from prodfusion.evaluation.tuning_learned import COLD_BONUSES

    rec, sess = _shop_with_new_products()
    kw = dict(objective="ndcg@5", max_iter=30, keep_worse=True, protocol="leave-last-out")
    res = rec.tune(sess, learner="gbdt", profile="auto", **kw)
    t, sl = res["trees"], res["validation_slices"]
    assert sl["target: no training clicks"]["n"] >= 1
    tried = t["cold_bonus_tried"]
    grid = tried["by_bonus"]
    assert set(grid) == {f"{b:g}" for b in COLD_BONUSES}
    assert tried["best_single_there"] == pytest.approx(max(
        v for k, v in sl["target: no training clicks"].items() if k.endswith(" alone")))
    ok = {b: v for b, v in grid.items() if v["targets without training clicks"]
          >= tried["best_single_there"] and v["objective"] >= tried["objective_floor"]}
    want = max(ok, key=lambda b: (ok[b]["objective"], -float(b))) if ok else "0"
    assert f"{t['cold_bonus']:g}" == want
    assert res["validation_score"] == pytest.approx(grid[want]["objective"])
    assert sl["target: no training clicks"]["tuned"] == pytest.approx(
        grid[want]["targets without training clicks"])
    # the floor: half the trees' gain over the best reference, without a bonus
    refs = max(res["reference_scores"].values())
    assert tried["objective_floor"] == pytest.approx(
        grid["0"]["objective"] - 0.5 * max(0.0, grid["0"]["objective"] - refs))
    assert rec.profile_weighting("auto").learned.cold_bonus == t["cold_bonus"]
    res2 = rec.tune(sess, learner="gbdt", profile="given", cold_bonus=2.0, **kw)
    assert res2["trees"]["cold_bonus"] == 2.0
    assert rec.profile_weighting("given").learned.cold_bonus == 2.0
    res0 = rec.tune(sess, learner="gbdt", profile="none", cold_bonus=0, **kw)
    assert res0["trees"]["cold_bonus"] == 0 and "cold_bonus_tried" not in res0["trees"]


def test_a_scorers_new_query_view_scores_as_if_each_query_had_no_clicks():
    """``_Scorer.as_new_queries``: every case scored as if its query were a new product (no
    click vector, no co-occurrence row, 0 clicks), to the bit of a scorer on data where that
    product truly lacks them — under trees (the query's clicks are a feature), under zmean
    weights, with the trees' pool re-drawn without the click modalities' nearest."""
    import copy
    import types

    from prodfusion.encoders import Prod2Vec
    from prodfusion.evaluation.tuning_scorer import _Scorer
    from prodfusion.fusion.cooc import Cooc

    rec, sessions, _ = _shop()
    clicks = Prod2Vec(vector_size=8, epochs=2, workers=1, min_count=1).fit(sessions).encode(
        rec.catalog)
    rec = Recommender.from_embeddings(rec.catalog, {**rec.embeddings_, "clicks": clicks},
                                      fusion="intermediate")
    rec.cooc_ = Cooc.from_sessions(sessions, rec.catalog)
    data = rec.modality_data()
    mods = ("text", "image", "clicks", "cooc")
    rng = np.random.default_rng(3)
    from sklearn.ensemble import HistGradientBoostingClassifier

    names = feature_names(mods)
    X = rng.normal(size=(4000, len(names)))  # trees that lean on the query's clicks too
    X[rng.random(X.shape) < 0.2] = np.nan
    y = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, names.index("clicks:query")]) > 0.5
    clf = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y)
    trees = LearnedScorer.from_estimator(clf, mods, pool=7)
    lin = Weighting.make({"text": 1.0, "image": 0.5, "clicks": 1.0, "cooc": 0.7}, "zmean",
                         None, None)
    st = {m: (0.1 * i, 0.3) for i, m in enumerate(mods)}
    lin = lin.with_stats(st)
    n = len(rec.catalog)
    counts = rng.integers(0, 4, size=n)
    q = np.flatnonzero(np.asarray(data["cooc"].mask) & np.asarray(data["clicks"].mask))[:4]
    q = np.repeat(q, 2)
    t = rng.integers(n, size=len(q))
    src = np.array(["pairs"] * len(q))
    sc = _Scorer(rec, mods, q, t, src, counts, "ndcg", 10, n_outside=n, learned_pool=7)
    new = sc.as_new_queries(7)
    assert new.slices["query: no training clicks"].all()
    for w in (replace(lin, learned=trees), lin):
        got = new.values(w)
        assert not np.array_equal(got, sc.values(w))  # the clicks mattered
        for u in np.unique(q):  # each product made new in the data itself, alone
            patched = dict(data)
            for m in ("clicks", "cooc"):
                patched[m] = copy.copy(data[m])
                patched[m].mask = np.asarray(data[m].mask).copy()
                patched[m].mask[u] = False
            c2 = counts.copy()
            c2[u] = 0
            ev = types.SimpleNamespace(modality_data=lambda p=patched: p, catalog=rec.catalog)
            ref = _Scorer(ev, mods, q[q == u], t[q == u], src[q == u], c2, "ndcg", 10,
                          n_outside=n, learned_pool=7)
            np.testing.assert_allclose(got[q == u], ref.values(w), atol=1e-12)


def test_what_ranks_new_queries_is_chosen_out_of_fold_and_ranks_only_them():
    """``new_queries``: every validation query is also scored as if it had no clicks, out
    of fold, by the trees, by the trees with trees for new queries (trained on both kinds
    of rows) and by the trees with the weights for new queries; ``auto`` keeps the best
    there among those not lowering the validation score, ``trees`` / ``weights`` that one,
    ``off`` nothing. Kept, they rank exactly the lists of the products without training
    clicks; the others' lists are the trees' as learnt, which do not change. A bad choice
    is refused before any work."""
    rec, sess = _shop_with_new_products()
    kw = dict(objective="ndcg@5", max_iter=30, keep_worse=True, protocol="leave-last-out")
    res = rec.tune(sess, learner="gbdt", profile="auto", **kw)
    nq = res["trees"]["new_queries"]
    assert nq["cases"] == res["split"]["n_validation_cases"]
    view, real = nq["made click-less"], nq["as they are"]
    assert set(view) == set(real) == {"the trees", "trees for new queries", "the weights"}
    assert nq["made click-less, each modality alone"]["clicks alone"] == 0.0  # no vector
    ok = [k for k in view if real[k] >= real["the trees"]]
    assert nq["kept"] == max(ok, key=lambda k: (view[k], -list(view).index(k)))
    want = {"the trees": None, "the weights": "linear"}.get(nq["kept"], "trees")
    got = rec.profile_weighting("auto").learned.new_query
    assert got == want or (want == "trees" and isinstance(got, LearnedScorer))
    on = rec.tune(sess, learner="gbdt", profile="on", new_queries="trees", **kw)
    lin = rec.tune(sess, learner="gbdt", profile="lin", new_queries="weights", **kw)
    off = rec.tune(sess, learner="gbdt", profile="off", new_queries="off", **kw)
    assert on["trees"]["new_queries"]["kept"] == "trees for new queries"
    assert lin["trees"]["new_queries"]["kept"] == "the weights"
    assert "skipped" in off["trees"]["new_queries"]
    lr_on = rec.profile_weighting("on").learned
    lr_off = rec.profile_weighting("off").learned
    assert lr_off.new_query is None and rec.profile_weighting("lin").learned.new_query == \
        "linear"
    assert lr_on.new_query.n_trees == on["trees"]["new_queries"]["n_trees"]
    assert lr_on.with_new_query(None) == lr_off  # the trees as learnt: the same
    mods = lr_on.modalities
    wt = rec.weighting(mods, rec.profile_weighting("on"))
    counts = rec.click_counts_
    cold = np.flatnonzero(counts == 0)[:3]
    warm = np.flatnonzero(counts > 0)[:3]
    assert len(cold) and len(warm)
    fuse = lambda w, q: rec.fuser("intermediate", mods, w).similarity(q)  # noqa: E731
    as_new = replace(wt, learned=lr_on.new_query.with_cold_bonus(lr_on.cold_bonus))
    np.testing.assert_array_equal(fuse(wt, cold), fuse(as_new, cold))
    np.testing.assert_array_equal(fuse(wt, warm), fuse(replace(wt, learned=lr_off), warm))
    # the weights for new queries: their lists rank the pool by the weights' score
    w_lin = rec.weighting(mods, rec.profile_weighting("lin"))
    plain = replace(w_lin, learned=None)
    s_lin, s_plain = fuse(w_lin, cold), fuse(plain, cold)
    from prodfusion.fusion.learned import POOL_OFFSET

    pool = s_lin > -POOL_OFFSET / 2
    assert pool.any(axis=1).all()
    np.testing.assert_allclose(s_lin[pool], s_plain[pool], rtol=1e-6)
    np.testing.assert_allclose(s_lin[~pool], s_plain[~pool] - POOL_OFFSET, rtol=1e-6)
    # explain splits such a list's scores too: the base and the shares sum to each score
    ids, scores, why = rec.similar(rec.catalog.ids[cold[0]], k=5, profile="lin", explain=True)
    for e, sc_ in zip(why, scores, strict=True):
        assert e["pool"] and e["score"] == pytest.approx(float(sc_), abs=1e-4)
        assert e["base"] + sum(v["share"] for v in e["modalities"].values()) == \
            pytest.approx(e["score"], abs=1e-9)
    # through the indexes (each modality's own, finding everything here) the same lists
    from prodfusion.index import IndexSettings

    exact = {q: rec.similar(rec.catalog.ids[q], k=8, profile="on") for q in [*cold, *warm]}
    rec.index = "hnsw"
    rec.index_settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024)
    rec._fusers, rec._searchers = {}, {}
    for q, (ids, scores) in exact.items():
        a_ids, a_scores = rec.similar(rec.catalog.ids[q], k=8, profile="on")
        assert list(a_ids) == list(ids)
        np.testing.assert_allclose(a_scores, scores, rtol=1e-5)
    with pytest.raises(ParameterError, match="new_queries"):
        rec.tune(sess, learner="gbdt", profile="bad", new_queries="on", **kw)


def test_the_pools_indexes_are_searched_at_once_with_search_threads(trees_shop):
    """``search_threads`` > 1: a trees query searches its vector modalities' indexes on
    threads of its own, concurrently, and serves the same lists and scores as one after
    the other; the rescorer pickles without its threads."""
    import pickle
    import threading

    from prodfusion.index import IndexSettings
    from prodfusion.index.learned import LearnedRescorer

    rec = trees_shop[0]
    old = rec.index, rec.index_settings
    queries = np.arange(0, 120, 7)
    got = {}
    try:
        rec.index = "hnsw"
        for threads in (1, 2):
            rec.index_settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024,
                                               search_threads=threads)
            rec._fusers, rec._searchers = {}, {}
            wt = rec.weighting(rec.available_modalities, rec.profile_weighting("trees"))
            searcher = rec.searcher("intermediate", rec.available_modalities, wt)
            assert isinstance(searcher, LearnedRescorer)
            searcher.topk([1], 8)
            assert (getattr(searcher, "_threads_", None) is not None) == (threads == 2)
            copy = pickle.loads(pickle.dumps(searcher))  # without its threads
            assert getattr(copy, "_threads_", None) is None
            seen = []
            for near in searcher.nearest.values():
                if hasattr(near, "topk"):
                    def spy(*a, _f=near.topk, _log=seen, **kw):
                        _log.append(threading.current_thread().name)
                        return _f(*a, **kw)
                    near.topk = spy
            got[threads] = [searcher.topk([q], 8) for q in queries]
            vector = sum(hasattr(n, "topk") for n in searcher.nearest.values())
            assert vector >= 2 and len(seen) == vector * len(queries)
            on_pools = [name.startswith("pf-pools") for name in seen]
            assert all(on_pools) if threads == 2 else not any(on_pools)
        for (r1, s1), (r2, s2) in zip(got[1], got[2], strict=True):
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_array_equal(s1, s2)
    finally:
        rec.index, rec.index_settings = old
        rec._fusers, rec._searchers = {}, {}


def test_trees_that_would_not_be_kept_are_not_fitted_on_every_split(monkeypatch):
    """``Recommender.tune(learner="gbdt", min_gain_se=…)`` without ``keep_worse`` drops
    trees whose out-of-fold gain is not above the bar; their final fits on every split
    (``tune_learned(final_above_se=…)``) are skipped, and everything measured out of fold
    is the same as when they are fitted."""
    import prodfusion.evaluation.tuning_learned as tl

    rec, sess = _shop_with_new_products()
    fits = []
    real = tl._fit
    monkeypatch.setattr(tl, "_fit", lambda *a, **k: fits.append(1) or real(*a, **k))
    kw = dict(objective="ndcg@5", max_iter=20, protocol="leave-last-out")
    full = tl.tune_learned(rec, sessions=sess, **kw)  # always fitted
    final_fits = 1 + int(bool(full["trees"]["new_queries"].get("n_trees")))
    n_full = len(fits)
    fits.clear()
    cut = tl.tune_learned(rec, sessions=sess, final_above_se=1e9, **kw)  # a bar none clears
    assert len(fits) == n_full - final_fits
    assert cut["scorer"] is None and cut["trees"]["n_trees"] is None
    assert full["scorer"] is not None and full["trees"]["n_trees"] >= 1
    for key in ("validation_score", "reference_scores", "gain", "validation_slices"):
        assert cut[key] == full[key]
    fits.clear()  # through tune(): trees it drops are not fitted on every split
    res = rec.tune(sess, learner="gbdt", profile="p", min_gain_se=1e9, **kw)
    assert not res["kept"] and len(fits) == n_full - final_fits and "p" not in rec.profiles
