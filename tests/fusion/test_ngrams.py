"""The ``ngrams`` modality: exact title n-gram TF-IDF cosines, fused, searched through an
index, stored, grown with new products, re-encoded with changed titles, and scored by the
evaluation exactly as the ``tfidf`` reference."""

from __future__ import annotations

import doctest
import math

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.encoders.lexical import tfidf_matrix
from prodfusion.errors import ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.fusion.ngrams import STATS_PAIRS, TitleNgrams
from prodfusion.fusion.weights import Weighting, estimate_stats
from prodfusion.recommender import Recommender

WORDS = ["red", "blue", "green", "shirt", "shirts", "hat", "bike", "lamp", "40 den", "20 den",
         "tights", "256 GB", "phone", "Miravo", "Tavira"]
N = 60


def _catalog(n=N, seed=0, blank=(7, 31)):
    rng = np.random.default_rng(seed)
    titles = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)), replace=False))
              for _ in range(n)]
    for i in blank:
        if i < n:
            titles[i] = None if i % 2 else "  "  # no usable title: lacks the modality
    ids = [f"p{i:03d}" for i in range(n)]
    return Catalog(pl.DataFrame({"product_id": ids, "title": titles},
                                schema_overrides={"title": pl.Utf8}))


def _exact(titles):
    x = tfidf_matrix(list(titles))
    return np.asarray((x @ x.T).toarray(), np.float64), np.asarray(x.getnnz(axis=1) > 0)


def test_docstring_examples():
    import prodfusion.fusion.ngrams as mod

    res = doctest.testmod(mod)
    assert res.attempted > 0 and res.failed == 0


def test_scores_neighbours_and_stats_equal_the_tfidf_reference_brute_force():
    cat = _catalog()
    g = TitleNgrams.from_titles(cat.titles)
    sim, has = _exact(cat.titles)
    np.testing.assert_array_equal(g.mask, has)
    assert not g.mask[7] and not g.mask[31]
    np.testing.assert_allclose(g.scores(np.arange(N)), np.minimum(sim, 1), atol=1e-5)
    np.testing.assert_allclose(g.scores([3, 5], [9, 1, 3]), sim[np.ix_([3, 5], [9, 1, 3])],
                               atol=1e-5)
    for q in (0, 4, 12):  # highest first, ties by row; the query and non-sharing rows left out
        vals = sim[q].copy()
        order = [int(j) for j in np.lexsort((np.arange(N), -np.round(vals, 5)))
                 if j != q and vals[j] > 1e-9]
        got = g.neighbours(q).tolist()
        assert sorted(got) == sorted(order)
        assert np.all(np.diff(sim[q][got]) <= 1e-5)
        assert g.neighbours(q, 5).tolist() == got[:5]
    assert g.neighbours(7).tolist() == []
    # the calibration's mean and spread: exact over every ordered pair of present products
    rows = np.flatnonzero(has)
    vals = sim[np.ix_(rows, rows)][~np.eye(len(rows), dtype=bool)]
    assert len(rows) * (len(rows) - 1) <= STATS_PAIRS
    assert g.stats() == pytest.approx((vals.mean(), vals.std()), rel=1e-5)
    assert estimate_stats({"ngrams": g}, ["ngrams"])["ngrams"] == pytest.approx(g.stats())


def test_row_scores_are_the_sparse_products_sums_bit_for_bit():
    # the posting-list path must give the very float32 values of x_q · Xᵀ (the tuner's blocks,
    # the served candidates' scores and the neighbours all rank on them)
    cat = _catalog(n=400, seed=3)
    g = TitleNgrams.from_titles(cat.titles)
    ref = np.asarray((g.matrix @ g.matrix.T).toarray(), np.float32)
    for q in range(len(g)):
        np.testing.assert_array_equal(g.row_scores(q), ref[q])
    np.testing.assert_array_equal(g.scores(np.arange(len(g))), np.minimum(ref, 1.0))
    cands = np.array([5, 0, 399, 17])
    np.testing.assert_array_equal(g.scores([2, 9], cands), np.minimum(ref[[2, 9]][:, cands], 1))
    assert not g.row_scores(7).any()  # a product without n-grams shares none


def test_neighbours_limit_cuts_a_tie_by_row():
    # duplicates of one title tie exactly: the limit keeps the lowest rows of the tied group
    titles = ["red shirt"] * 6 + ["red shirts", "blue hat", "red hat"]
    g = TitleNgrams.from_titles(titles)
    full = g.neighbours(2).tolist()
    assert full[:5] == [0, 1, 3, 4, 5]
    for limit in range(1, len(full) + 2):
        assert g.neighbours(2, limit).tolist() == full[:limit]


def test_stats_from_a_sample_when_the_pairs_are_many(monkeypatch):
    import prodfusion.fusion.ngrams as mod

    cat = _catalog(200, seed=3)
    exact = TitleNgrams.from_titles(cat.titles).stats()
    monkeypatch.setattr(mod, "STATS_PAIRS", 5_000)
    sampled = TitleNgrams.from_titles(cat.titles).stats()
    assert sampled != exact and sampled == pytest.approx(exact, rel=0.1)


@pytest.mark.parametrize("calibration", ["none", "zscore", "zmean"])
def test_fused_ngrams_match_the_formula_with_a_missing_modality(calibration):
    cat = _catalog()
    rng = np.random.default_rng(1)
    vec = rng.normal(size=(N, 5)).astype(np.float32)
    has = rng.random(N) > 0.2
    vec[~has] = 0.0
    text = Embeddings(vec, has, "t")
    g = TitleNgrams.from_titles(cat.titles)
    data = {"text": text, "ngrams": g}
    mods = ("text", "ngrams")
    stats = estimate_stats(data, mods) if calibration != "none" else None
    wt = Weighting.make({"text": 0.4, "ngrams": 1.0}, calibration, stats)
    got = make_fuser("intermediate", data, mods, weighting=wt).similarity(np.arange(N))
    sim, _ = _exact(cat.titles)
    u = text.vectors / np.maximum(np.linalg.norm(text.vectors, axis=1, keepdims=True), 1e-12)
    for i in range(N):
        for j in range(N):
            num = den = dq = 0.0
            for m in mods:
                has_i, has_j = bool(data[m].mask[i]), bool(data[m].mask[j])
                dq += wt.w(m) * has_i
                if has_i and has_j:
                    raw = float(u[i] @ u[j]) if m == "text" else min(float(sim[i, j]), 1.0)
                    num += wt.w(m) * float(wt.calibrate(m, np.float32(raw)))
                    den += wt.w(m)
            want = num / (dq if calibration == "zmean" else den) if den else -math.inf
            assert got[i, j] == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_an_index_finds_the_exact_fusions_lists():
    cat = _catalog(120, seed=5)
    rng = np.random.default_rng(2)
    text = Embeddings(rng.normal(size=(120, 8)).astype(np.float32), np.ones(120, bool), "t")
    exact = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate",
                                        index="exact")
    hnsw = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate",
                                       index="hnsw")
    for rec in (exact, hnsw):
        rec.ngrams_ = TitleNgrams.from_titles(cat.titles)
        rec.modalities = rec.available_modalities
        rec.weights = {"text": 0.3, "ngrams": 1.0}
        rec.calibration = "zscore"
    assert exact.available_modalities == ("text", "ngrams")
    for q in ("p000", "p010", "p055"):
        a, sa = exact.similar(q, k=10)
        b, sb = hnsw.similar(q, k=10)
        np.testing.assert_allclose(sb, sa, atol=1e-5)  # the same scores (ties may swap)
        assert set(a[sa > sa[-1] + 1e-5]) <= set(b)


def test_an_index_finds_products_close_in_both_titles_and_vectors():
    # 3,000 titles of 3 of 120 pseudo-words and random vectors: the exact top 15 holds
    # products modestly close in both, beyond the first kp = 120 n-gram neighbours (the
    # served lists missed 1.4 % of them with kp; over_fetch × kp finds every one)
    n = 3000
    rng = np.random.default_rng(0)
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "du"]
    vocab = sorted({"".join(rng.choice(syll, 3)) for _ in range(360)})[:120]
    titles = [" ".join(rng.choice(vocab, 3, replace=False)) for _ in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i:05d}" for i in range(n)],
                                "title": titles}))
    text = Embeddings(rng.normal(size=(n, 16)).astype(np.float32), np.ones(n, bool), "t")
    recs = []
    for index in ("exact", "hnsw"):
        rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate",
                                          index=index)
        rec.ngrams_ = TitleNgrams.from_titles(cat.titles)
        rec.modalities = rec.available_modalities
        rec.weights = {"text": 1.0, "ngrams": 1.0}
        recs.append(rec)
    for q in cat.ids[:100]:
        assert set(recs[1].similar(q, k=15)[0]) == set(recs[0].similar(q, k=15)[0]), q


def test_ngram_neighbours_grow_with_the_catalog():
    from prodfusion.index.pairwise import NGRAMS_SHARE, PairwiseIntermediateIndex

    s = PairwiseIntermediateIndex.__new__(PairwiseIntermediateIndex)
    s.over_fetch, s.ngrams_fetch = 8, None
    s.n = 3000
    assert s.ngrams_limit(120) == 960  # kp × over_fetch
    s.n = 1_000_000
    assert s.ngrams_limit(120) == math.ceil(1_000_000 * NGRAMS_SHARE) == 3907
    s.ngrams_fetch = 120  # set by hand (benchmarks/ngrams_scale.py --served)
    assert s.ngrams_limit(120) == 120


def test_recommender_builds_saves_loads_grows_and_reencodes_ngrams(tmp_path):
    cat = _catalog()
    rec = Recommender(text=None, image=None, clicks=None, ngrams=True, fusion="intermediate")
    rec.build(cat)
    assert rec.available_modalities == ("ngrams",)
    sim, _ = _exact(cat.titles)
    ids, scores = rec.similar("p004", k=5)
    order = [j for j in np.lexsort((np.arange(N), -np.round(sim[4], 5))) if j != 4][:5]
    assert [int(i[1:]) for i in ids] == order
    back = Recommender.load(rec.save(tmp_path / "m"))
    assert back.ngrams_.vocabulary == rec.ngrams_.vocabulary
    np.testing.assert_allclose(back.ngrams_.scores(np.arange(N)), rec.ngrams_.scores(np.arange(N)))
    assert list(back.similar("p004", k=5)[0]) == list(ids)
    # a product added later: its title encoded in the model's n-gram space
    new = Catalog(pl.DataFrame({"product_id": ["new1", "new2"],
                                "title": [cat.titles[4], "zzz qqq"]}))
    back.add_products(new, {})
    assert len(back.ngrams_) == N + 2 and back.ngrams_.mask[N] and not back.ngrams_.mask[N + 1]
    assert back.ngrams_.scores([N], [4])[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert "p004" in back.similar("new1", k=3)[0]
    again = Recommender.load(back.save(tmp_path / "m2"))
    assert len(again.ngrams_) == N + 2
    # a changed title: that product's n-grams again, the others untouched
    changed = Catalog(pl.DataFrame({"product_id": ["p010"], "title": [cat.titles[20]]}))
    before = again.ngrams_.scores([0])
    again.update_products(changed, {})
    assert again.ngrams_.scores([10], [20])[0, 0] == pytest.approx(1.0, abs=1e-5)
    after = again.ngrams_.scores([0])
    keep = np.ones(N + 2, bool)
    keep[10] = False
    np.testing.assert_allclose(after[0][keep], before[0][keep], atol=1e-6)
    # no titles at all: skipped with the reason
    blank = Catalog(pl.DataFrame({"product_id": ["a", "b"], "title": [None, " "]},
                                 schema_overrides={"title": pl.Utf8}))
    with pytest.raises(ParameterError, match="ngrams: no product has a title"):
        Recommender(text=None, image=None, clicks=None, ngrams=True).build(blank)


def test_the_evaluation_scores_ngrams_alone_as_the_tfidf_reference():
    from prodfusion.evaluation.retrieval import evaluate_retrieval
    from prodfusion.variants import Variant

    cat = _catalog(80, seed=4, blank=())
    rng = np.random.default_rng(0)
    lists = [[cat.ids[int(a)], cat.ids[int(b)]] for a, b in rng.integers(0, 80, (300, 2)) if a != b]
    rec = Recommender(text=None, image=None, clicks=None, ngrams=True, fusion="intermediate")
    rec.build(cat, Sessions.from_lists(lists))
    res = evaluate_retrieval(rec, sessions=Sessions.from_lists(lists), progress=False,
                             keep_cases=True,
                             variants=[Variant("intermediate", ("ngrams",), paper=True,
                                               name="ngrams alone"), "tfidf"])
    mine, ref = (res["cases"][(v, "sessions")] for v in ("ngrams alone", "tfidf"))
    hit, ref_hit = np.asarray(mine["hit"]), np.asarray(ref["hit"])
    nd, ref_nd = np.asarray(mine["ndcg"]), np.asarray(ref["ndcg"])
    assert ref_hit.sum() > 0  # cases that can tell them apart
    # the same ranking wherever the target shares an n-gram with the query; the reference
    # never serves a product sharing none, the modality ranks those tied at 0 after the
    # rest (a target there gets its tie-aware share when fewer than k share one)
    found = ref_hit > 0
    np.testing.assert_allclose(hit[found], ref_hit[found])
    np.testing.assert_allclose(nd[found], ref_nd[found], rtol=1e-6)
    assert np.all(hit >= ref_hit - 1e-12) and np.all(nd >= ref_nd - 1e-12)


def test_build_ngrams_on_the_command_line(tmp_path, capsys):
    from prodfusion.cli import main

    cat = _catalog()
    csv = tmp_path / "cat.csv"
    cat.frame.write_csv(csv)
    out = tmp_path / "m"
    assert main(["build", "--catalog", str(csv), "--text", "none", "--image", "none",
                 "--lexical", "none", "--no-clicks", "--ngrams", "--cache-dir", "none",
                 "--fusion", "intermediate", "--out", str(out)]) == 0
    err = capsys.readouterr()
    assert "ngrams     ngrams:tfidf-nfkc-char3-5" in err.out + err.err
    assert "pairwise   present 58/60" in err.out + err.err
    assert main(["similar", str(out), "p004", "-k", "3"]) == 0
    listed = capsys.readouterr().out
    sim, _ = _exact(cat.titles)
    best = [j for j in np.lexsort((np.arange(N), -np.round(sim[4], 5))) if j != 4][0]
    assert f"p{best:03d}" in listed.splitlines()[2]
