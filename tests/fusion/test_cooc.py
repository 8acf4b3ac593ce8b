"""The ``cooc`` modality and the ``zmean`` calibration against brute-force loops."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.fusion.cooc import Cooc
from prodfusion.fusion.explain import explain_pairs
from prodfusion.fusion.weights import Weighting, confidence, estimate_stats
from prodfusion.recommender import Recommender

N = 24


def _data(seed=0):
    """24 products; 0-3 never occur in a session (no cooc), 4 occurs only alone."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(N)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(N)]}))
    lists = [[ids[4]]]
    for _ in range(40):
        size = int(rng.integers(2, 5))
        lists.append([ids[int(x)] for x in rng.choice(np.arange(5, N), size, replace=False)])
    lists.append([ids[7], ids[7], ids[8]])  # a repeated click counts once
    sessions = Sessions.from_lists(lists)
    embs = {}
    for m, d in (("text", 5), ("clicks", 4)):
        v = rng.normal(size=(N, d)).astype(np.float32)
        mask = rng.random(N) > 0.2
        embs[m] = Embeddings(v, mask, m)
    return cat, sessions, lists, embs


def _brute_cooc(lists, ids, norm="conditional"):
    sets = [set(s) for s in lists]
    n = {p: sum(p in s for s in sets) for p in ids}
    out = np.zeros((len(ids), len(ids)))
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if i != j and n[a] and n[b]:
                both = sum(a in s and b in s for s in sets)
                out[i, j] = both / (n[a] if norm == "conditional" else math.sqrt(n[a] * n[b]))
    return out, np.array([n[p] for p in ids])


@pytest.mark.parametrize("norm", ["conditional", "cosine"])
def test_cooc_scores_match_a_brute_force_count_and_missing_products_lack_it(norm):
    cat, sessions, lists, _ = _data()
    c = Cooc.from_sessions(sessions, cat, norm=norm)
    want, n = _brute_cooc(lists, list(cat.ids), norm)
    np.testing.assert_allclose(c.scores(np.arange(N)), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(c.counts, n)
    assert not c.mask[:4].any() and c.mask[4:].all()  # 4: sessions, but never with another
    assert (c.scores([4])[0] == 0).all()
    # exact statistics over ordered pairs of distinct present products
    pres = np.flatnonzero(c.mask)
    vals = [want[i, j] for i in pres for j in pres if i != j]
    assert c.stats() == pytest.approx((np.mean(vals), np.std(vals)))
    assert estimate_stats({"cooc": c}, ["cooc"])["cooc"] == pytest.approx(c.stats())
    # neighbours: highest first, ties by row
    row = 9
    nb = c.neighbours(row)
    assert set(nb) == set(np.flatnonzero(want[row] > 0))
    assert all((want[row][a], -a) >= (want[row][b], -b) for a, b in zip(nb, nb[1:], strict=False))
    if norm == "conditional":  # one query's ranking is the raw counts' ranking
        counts = c.matrix.toarray()[row]
        assert all(counts[a] >= counts[b] for a, b in zip(nb, nb[1:], strict=False))
    with pytest.raises(ParameterError, match=r"'norm' parameter of Cooc\(\) must be one of"):
        Cooc(c.matrix, c.counts, norm="jaccard")


@np.errstate(invalid="ignore")
def _oracle(embs, cooc, mods, wt, conf=None):
    """Σ W_m s_m / Σ W_m over shared modalities; under zmean / D(q), D(q) = Σ_{q has m} w_m."""
    u = {m: embs[m].vectors / np.linalg.norm(embs[m].vectors, axis=1, keepdims=True)
         for m in mods if m != "cooc"}  # (absent rows are zero: never read below)
    has = {m: (cooc.mask if m == "cooc" else embs[m].mask) for m in mods}
    out = np.full((N, N), -math.inf)
    for i in range(N):
        for j in range(N):
            num = den = dq = 0.0
            for m in mods:
                w = wt.w(m)
                cw = conf[i] * conf[j] if (m == "clicks" and wt.n0 is not None) else 1.0
                if has[m][i]:
                    dq += w * (conf[i] if (m == "clicks" and wt.n0 is not None) else 1.0)
                if has[m][i] and has[m][j]:
                    raw = cooc.scores([i], [j])[0, 0] if m == "cooc" else float(u[m][i] @ u[m][j])
                    num += w * cw * float(wt.calibrate(m, np.float32(raw)))
                    den += w * cw
            if den > 0:
                if wt.calibration == "zmean":  # missing: impute × the shared weighted mean
                    num += wt.impute * (num / den) * (dq - den)
                out[i, j] = num / (dq if wt.calibration == "zmean" else den)
    return out


@pytest.mark.parametrize("calibration", ["none", "zscore", "zmean", "zmean@0.5", "zmean@1"])
@pytest.mark.parametrize("mods", [("cooc",), ("text", "cooc"), ("text", "clicks", "cooc")])
@pytest.mark.parametrize("n0", [None, 3.0])
def test_intermediate_fusion_with_cooc_matches_the_brute_force_formula(calibration, mods, n0):
    """``zmean@β``: a modality the candidate lacks counts as β × the mean of the shared ones."""
    cat, sessions, _, embs = _data(1)
    cooc = Cooc.from_sessions(sessions, cat)
    data = {**embs, "cooc": cooc}
    weights = {"text": 0.5, "clicks": 2.0, "cooc": 1.5}
    calibration, _, beta = calibration.partition("@")
    stats = estimate_stats(data, mods, seed=0) if calibration != "none" else None
    if n0 is not None and "clicks" not in mods:
        pytest.skip("n0 only weighs clicks")
    wt = Weighting.make({m: weights[m] for m in mods}, calibration, stats, n0,
                        impute=float(beta or 0))
    if beta:
        assert Weighting.from_dict(wt.to_dict()) == wt and wt.to_dict()["impute"] == float(beta)
    conf = confidence(np.arange(N) % 7, n0) if n0 else None
    f = make_fuser("intermediate", data, mods, weighting=wt, confidence=conf)
    got = f.similarity(np.arange(N))
    want = _oracle(embs, cooc, mods, wt, conf)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-5)
    # candidate subsets give the same values
    cand = np.array([3, 0, 17, 9])
    np.testing.assert_allclose(f.similarity([5, 9], cand), got[[5, 9]][:, cand], rtol=1e-6)


def test_weight_one_on_cooc_reproduces_the_cooc_ranking():
    cat, sessions, lists, embs = _data(2)
    cooc = Cooc.from_sessions(sessions, cat)
    data = {**embs, "cooc": cooc}
    for cal in ("none", "zscore", "zmean"):
        stats = estimate_stats(data, ["text", "clicks", "cooc"]) if cal != "none" else None
        wt = Weighting.make({"cooc": 1.0, "text": 0.0, "clicks": 0.0}, cal, stats)
        f = make_fuser("intermediate", data, ("text", "clicks", "cooc"), weighting=wt)
        alone = make_fuser("intermediate", {"cooc": cooc}, ("cooc",))
        for q in np.flatnonzero(cooc.mask):
            r1, s1 = f.topk([q], 8)
            r2, s2 = alone.topk([q], 8)
            np.testing.assert_array_equal(r1, r2)


def test_early_and_late_fusion_refuse_the_pairwise_modality():
    cat, sessions, _, embs = _data()
    data = {**embs, "cooc": Cooc.from_sessions(sessions, cat)}
    for method in ("early", "late"):
        with pytest.raises(ParameterError, match=r"'cooc'\] is a pairwise score .* only "
                                                 rf"intermediate fusion can fuse it, not {method}"):
            make_fuser(method, data, ("text", "cooc"))


@pytest.mark.parametrize("calibration", ["none", "zmean", "zmean@0.5"])
def test_explain_shares_add_up_to_the_score_with_cooc(calibration):
    cat, sessions, _, embs = _data(3)
    cooc = Cooc.from_sessions(sessions, cat)
    data = {**embs, "cooc": cooc}
    mods = ("text", "clicks", "cooc")
    calibration, _, beta = calibration.partition("@")
    stats = estimate_stats(data, mods) if calibration != "none" else None
    wt = Weighting.make({"text": 1.0, "clicks": 0.5, "cooc": 2.0}, calibration, stats,
                        impute=float(beta or 0))
    f = make_fuser("intermediate", data, mods, weighting=wt)
    q = int(np.flatnonzero(cooc.mask & embs["text"].mask)[0])
    rows, scores = f.topk([q], 10)
    rows, scores = rows[0][rows[0] >= 0], scores[0][rows[0] >= 0]
    why = explain_pairs("intermediate", data, mods, wt, q, rows)
    for e, s, r in zip(why, scores, rows, strict=True):
        assert e["score"] == pytest.approx(float(s), abs=1e-5)
        c = e["modalities"]["cooc"]
        if cooc.mask[r]:
            assert c["raw"] == pytest.approx(float(cooc.scores([q], [r])[0, 0]), abs=1e-6)
        else:
            assert c["raw"] is None and c["share"] == 0


def test_recommender_builds_saves_and_loads_cooc_and_old_folders_have_none(tmp_path):
    cat, sessions, lists, embs = _data(4)
    rec = Recommender(text=None, image=None, clicks=None, cooc=True, fusion="intermediate")
    rec.lexical = None
    # a model built from sessions: only the cooc modality
    rec.build(cat, sessions)
    assert rec.available_modalities == ("cooc",) and rec.modalities == ("cooc",)
    want, _ = _brute_cooc(lists, list(cat.ids))
    ids, scores = rec.similar("p09", k=3)
    got = [want[9, cat.row_of(i)] for i in ids]  # the three best co-occurrences (ties aside)
    np.testing.assert_allclose(got, np.sort(want[9])[::-1][:3], rtol=1e-6)
    np.testing.assert_allclose(scores, got, rtol=1e-6)
    path = rec.save(tmp_path / "m")
    back = Recommender.load(path)
    np.testing.assert_array_equal(back.cooc_.scores(np.arange(N)), rec.cooc_.scores(np.arange(N)))
    assert list(back.similar("p09", k=3)[0]) == list(ids)
    # a product never seen in a session has no cooc: no recommendation from cooc alone
    # (its list is the backfill's: the most clicked products, scored NaN)
    assert np.isnan(back.similar("p00", k=3)[1]).all()
    back.backfill = None
    assert len(back.similar("p00", k=3)[0]) == 0
    back.backfill = "popular"
    # a folder without cooc.npz (built before the modality existed) loads without it
    old = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    p2 = old.save(tmp_path / "old")
    assert not (p2 / "cooc.npz").exists()
    loaded = Recommender.load(p2)
    assert loaded.cooc_ is None and "cooc" not in loaded.available_modalities
    with pytest.raises(ParameterError, match="asks for 'cooc', but this model has only"):
        loaded.similar("p05", modalities=["text", "cooc"])


def test_heldout_evaluation_counts_cooc_on_the_training_part_only():
    from prodfusion.evaluation.retrieval import heldout_recommender, split_interactions

    cat, sessions, _, embs = _data(5)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    split = split_interactions(cat, sessions, None, test_fraction=0.3)
    ev = heldout_recommender(rec, split.train)
    ho = split.heldout["sessions"]
    full = Cooc.from_sessions(sessions, cat)
    train = Cooc.from_sessions(split.train, cat)
    np.testing.assert_array_equal(ev.cooc_.scores(ho.query_rows), train.scores(ho.query_rows))
    # a held-out transition scores > 0 only where the pair co-occurs in a training session
    train_sets = [set(x) for x in split.train]
    ids = cat.ids
    seen = [any(ids[a] in t and ids[b] in t for t in train_sets)
            for a, b in zip(ho.query_rows, ho.target_rows, strict=True)]
    got = ev.cooc_.scores(ho.query_rows, ho.target_rows).diagonal() > 0
    np.testing.assert_array_equal(got, seen)
    assert not all(seen) and (full.scores(ho.query_rows, ho.target_rows).diagonal() > 0).all()
    assert "cooc" in ev.available_modalities


@pytest.mark.parametrize("calibration", ["none", "zmean"])
def test_approximate_search_with_cooc_equals_the_exact_fuser(rng, calibration):
    """HNSW over the vector modalities + co-occurrence neighbours, re-scored exactly."""
    from prodfusion.index import IndexSettings
    from tests.index.conftest import assert_same_topk, make_planted

    cat, embs, cats, _ = make_planted(rng, n=400)
    ids = cat.ids
    lists = []
    for _ in range(300):  # sessions inside a category
        c = rng.integers(12)
        members = np.flatnonzero(cats == c)
        lists.append([ids[i] for i in rng.choice(members, 3, replace=False)])
    settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, nprobe=10_000,
                             pq_m=4, min_candidates=64)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate", index="hnsw",
                                      index_settings=settings)
    rec.cooc_ = Cooc.from_sessions(Sessions.from_lists(lists), cat)
    rec.modalities = rec.available_modalities
    rec.weights = {"text": 1.0, "image": 0.5, "clicks": 0.5, "cooc": 2.0}
    rec.calibration = calibration
    exact = rec.fuser()
    approx = rec.searcher()
    assert type(approx).__name__ == "PairwiseIntermediateIndex"
    q = np.arange(0, 400, 7)
    r0, s0 = exact.topk(q, 15)
    r1, s1 = approx.topk(q, 15)
    assert_same_topk(exact, q, r0, s0, r1, s1, atol=1e-4)
    # the same through similar(), with a filter
    got = rec.similar(ids[3], k=5, exclude=[ids[int(r0[0][0])]] if r0[0][0] != 3 else [])[0]
    assert ids[int(r0[0][0])] not in got or r0[0][0] == 3


def test_zero_weight_fallback_ranks_last_resort_pairs_after_every_weighted_one():
    from prodfusion.fusion.weights import FALLBACK_OFFSET

    cat, sessions, _, embs = _data(6)
    mods = ("text", "clicks")
    plain = Weighting.make({"text": 0.0, "clicks": 1.0})
    fb = Weighting.make({"text": 0.0, "clicks": 1.0}, fallback=True)
    assert fb.to_dict()["fallback"] is True and "fallback" not in plain.to_dict()
    assert Weighting.from_dict(fb.to_dict()) == fb
    a = make_fuser("intermediate", embs, mods, weighting=plain).similarity(np.arange(N))
    b = make_fuser("intermediate", embs, mods, weighting=fb).similarity(np.arange(N))
    ok = np.isfinite(a)
    np.testing.assert_allclose(b[ok], a[ok])  # weighted pairs: unchanged
    t = embs["text"]
    with np.errstate(invalid="ignore"):  # absent rows are zero: never read
        u = t.vectors / np.linalg.norm(t.vectors, axis=1, keepdims=True)
    for i, j in zip(*np.nonzero(~ok), strict=True):  # only a title in common: last resort
        if t.mask[i] and t.mask[j]:
            assert b[i, j] == pytest.approx(float(u[i] @ u[j]) - FALLBACK_OFFSET, abs=1e-4)
        else:
            assert b[i, j] == -np.inf
    # explain: base + shares = score, for a fallback pair too
    q = int(np.flatnonzero(t.mask & ~embs["clicks"].mask)[0])
    cand = np.flatnonzero(t.mask & (np.arange(N) != q))[:5]
    for e, s in zip(explain_pairs("intermediate", embs, mods, fb, q, cand), b[q, cand],
                    strict=True):
        assert e["score"] == pytest.approx(float(s), abs=1e-4)
        assert e["base"] == -FALLBACK_OFFSET


@pytest.mark.parametrize("calibration", ["none", "zscore", "zmean"])
def test_fallback_weights_rank_in_two_tiers_against_a_brute_force_loop(calibration):
    """Weights clicks=1, text=image=0 with fallback weights text=2 (image 0): a pair without
    a shared click vector is ranked by its title z-score − 1000 where both have a title
    (z-scored whatever the main calibration), else by its raw photo cosine − 2000, else
    never; explain adds up."""
    from prodfusion.fusion.weights import FALLBACK_OFFSET

    cat, sessions, _, embs = _data(11)
    rng = np.random.default_rng(5)
    v = rng.normal(size=(N, 3)).astype(np.float32)
    embs["image"] = Embeddings(v, rng.random(N) > 0.2, "image")
    mods = ("text", "image", "clicks")
    stats = estimate_stats(embs, mods)
    wt = Weighting.make({"clicks": 1.0, "text": 0.0, "image": 0.0}, calibration, stats,
                        fallback={"text": 2.0})
    assert Weighting.make({"clicks": 1.0, "text": 0.0}, fallback={"text": 1.0}).needs_stats(
        ["text", "clicks"]) == ["text"]  # the fallback is z-scored even under 'none'

    assert Weighting.from_dict(wt.to_dict()) == wt
    assert wt.to_dict()["fallback"] == {"text": 2.0}
    assert wt.fallback_weight("image") == 0.0 and Weighting.make(
        {"clicks": 1.0, "text": 0.0}, fallback=True).fallback_weight("text") is None
    s = make_fuser("intermediate", embs, mods, weighting=wt).similarity(np.arange(N))

    def cos(m, i, j):
        x, y = embs[m].vectors[i].astype(float), embs[m].vectors[j].astype(float)
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    has = {m: embs[m].mask for m in mods}
    for i in range(N):
        for j in range(N):
            if has["clicks"][i] and has["clicks"][j]:
                c = cos("clicks", i, j)
                if calibration == "none":
                    want = c
                else:
                    mu, sd = stats["clicks"]
                    want = (c - mu) / sd
            elif has["text"][i] and has["text"][j]:
                c = cos("text", i, j)
                want = (c - stats["text"][0]) / stats["text"][1] - FALLBACK_OFFSET
            elif has["image"][i] and has["image"][j]:
                want = cos("image", i, j) - 2 * FALLBACK_OFFSET
            else:
                want = -np.inf
            if math.isinf(want):
                assert s[i, j] == -np.inf, (i, j)
            else:
                assert s[i, j] == pytest.approx(want, abs=2e-3), (i, j)
    q = int(np.flatnonzero(has["text"] & has["image"] & ~has["clicks"])[0])
    cand = np.flatnonzero(np.arange(N) != q)
    tiers = set()
    for e, x in zip(explain_pairs("intermediate", embs, mods, wt, q, cand), s[q, cand],
                    strict=True):
        if np.isfinite(x):
            assert e["score"] == pytest.approx(float(x), abs=2e-3)
            # a fallback pair names its tier; its weights are the fallback's (summing to 1)
            # and each share is weight × calibrated (the z-score in tier 1)
            tier = round(-x / FALLBACK_OFFSET) if x < -FALLBACK_OFFSET / 2 else 0
            assert e.get("fallback", 0) == tier
            tiers.add(tier)
            if tier:
                used = {m: v for m, v in e["modalities"].items() if v["weight"] > 0}
                assert sum(v["weight"] for v in used.values()) == pytest.approx(1.0)
                for v in used.values():
                    assert v["share"] == pytest.approx(v["weight"] * v["calibrated"], abs=1e-4)
    assert tiers == {1, 2}  # the query has no click vector: every pair is a last resort


@pytest.mark.parametrize("missing", ["drop", "zero"])
def test_two_fallback_weights_with_missing_modalities_against_a_brute_force_loop(missing):
    """Fallback weights text=2, image=1 on a model weighing clicks only: a pair without a
    shared click vector scores Σ f_m z_m over the modalities both have, divided by Σ f_m
    over those ("drop", older folders) or over the ones the *query* has ("zero": what the
    candidate lacks counts as a random product's z = 0), minus 1000; explain adds up."""
    from prodfusion.fusion.weights import FALLBACK_OFFSET

    cat, sessions, _, embs = _data(11)
    rng = np.random.default_rng(7)
    embs["image"] = Embeddings(rng.normal(size=(N, 3)).astype(np.float32),
                               rng.random(N) > 0.3, "image")
    mods = ("text", "image", "clicks")
    stats = estimate_stats(embs, mods)
    f = {"text": 2.0, "image": 1.0}
    wt = Weighting.make({"clicks": 1.0, "text": 0.0, "image": 0.0}, "none", stats,
                        fallback=f, fallback_missing=missing)
    assert Weighting.from_dict(wt.to_dict()) == wt
    assert ("fallback_missing" in wt.to_dict()) == (missing == "zero")  # absent: older
    s = make_fuser("intermediate", embs, mods, weighting=wt).similarity(np.arange(N))
    has = {m: embs[m].mask for m in mods}

    def z(m, i, j):
        x, y = embs[m].vectors[i].astype(float), embs[m].vectors[j].astype(float)
        return (x @ y / np.linalg.norm(x) / np.linalg.norm(y) - stats[m][0]) / stats[m][1]

    n_checked = {"one missing": 0}
    for i in range(N):
        for j in range(N):
            if has["clicks"][i] and has["clicks"][j]:
                continue
            shared = [m for m in f if has[m][i] and has[m][j]]
            if not shared:
                continue
            num = sum(f[m] * z(m, i, j) for m in shared)
            den = sum(f[m] for m in (shared if missing == "drop" else
                                     [m for m in f if has[m][i]]))
            assert s[i, j] == pytest.approx(num / den - FALLBACK_OFFSET, abs=2e-3), (i, j)
            n_checked["one missing"] += len(shared) < sum(has[m][i] for m in f)
    assert n_checked["one missing"] > 10  # the case where the two formulas differ
    q = int(np.flatnonzero(has["text"] & has["image"] & ~has["clicks"])[0])
    cand = np.flatnonzero((np.arange(N) != q) & np.isfinite(s[q]))
    for e, x in zip(explain_pairs("intermediate", embs, mods, wt, q, cand), s[q, cand],
                    strict=True):
        assert e["score"] == pytest.approx(float(x), abs=2e-3)
        if e.get("fallback") == 1:
            for v in e["modalities"].values():
                if v["weight"] > 0:
                    assert v["share"] == pytest.approx(v["weight"] * v["calibrated"], abs=1e-4)


def test_a_twin_of_the_query_comes_first_in_the_fallback_and_lacking_a_photo_is_no_bonus():
    """A new product (no clicks) on a model weighing clicks only, fallback weights title ½,
    photo ½. Its exact twin (the same title and photo) must come first. Titles' z-scores run
    higher than photos' here, so under "drop" a product *without a photo* whose title is
    merely close scored its title z alone and outranked the twin (the bias seen on the demo
    shop after `prodfusion add`); under "zero" its missing photo counts as z = 0."""
    rng = np.random.default_rng(3)
    n = 60
    text = rng.normal(size=(n, 8)).astype(np.float32)
    image = (rng.normal(size=(n, 8)) * 0.3 + 1.0).astype(np.float32)  # photos look alike
    text[1], image[1] = text[0], image[0]  # 1 is 0's twin
    text[2] = text[0] + 0.05 * rng.normal(size=8).astype(np.float32)  # 2: close title ...
    img_mask = np.ones(n, bool)
    img_mask[2] = False  # ... and no photo
    clicks = rng.normal(size=(n, 4)).astype(np.float32)
    click_mask = np.ones(n, bool)
    click_mask[[0, 1, 2]] = False  # new products
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    embs = {"text": Embeddings(text, np.ones(n, bool), "t"),
            "image": Embeddings(image, img_mask, "i"),
            "clicks": Embeddings(clicks, click_mask, "c")}
    first = {}
    for missing in ("drop", "zero"):
        rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
        rec.weights, rec.zero_weight_fallback = {"clicks": 1.0, "text": 0.0, "image": 0.0}, \
            {"text": 0.5, "image": 0.5}
        rec.fallback_missing = missing
        first[missing] = rec.similar("p0", k=1)[0][0]
    assert first == {"drop": "p2", "zero": "p1"}


@pytest.mark.parametrize("fallback", [True, {"text": 2.0}])
def test_late_fusion_keeps_the_fallback_in_its_tie_break(fallback):
    """Late fusion of a tuned model (zero weights with fallback weights, calibration none):
    its tie-break is the intermediate fusion of raw cosines with the same fallback, so a
    pair sharing only zero-weight modalities ranks after every weighted one, in the
    fallback's order (it raised 'needs the similarity statistics' with fallback weights),
    and explain adds up."""
    from prodfusion.fusion.late import TIE_WEIGHT
    from prodfusion.fusion.weights import tie_scale, tie_weighting

    cat, sessions, _, embs = _data(11)
    rng = np.random.default_rng(5)
    embs["image"] = Embeddings(rng.normal(size=(N, 3)).astype(np.float32), rng.random(N) > 0.2,
                               "image")
    mods = ("text", "image", "clicks")
    stats = estimate_stats(embs, mods)
    wt = Weighting.make({"clicks": 1.0, "text": 0.0, "image": 0.0}, "none", stats,
                        fallback=fallback)
    labels = {m: np.where(embs[m].mask, np.arange(N) % 3, -1).astype(np.int32) for m in mods}
    late = make_fuser("late", embs, mods, weighting=wt, late_labels=labels)
    s = late.similarity(np.arange(N))
    tie = make_fuser("intermediate", embs, mods, weighting=tie_weighting(wt)).similarity(
        np.arange(N))
    count = sum(wt.w(m) * ((labels[m][:, None] == labels[m][None, :])
                           & (labels[m][:, None] >= 0)) for m in mods)
    eps = tie_scale([wt.w(m) for m in mods]) * TIE_WEIGHT
    want = np.where(np.isfinite(tie), count + eps * (1 + tie) / 2, -np.inf)
    np.testing.assert_allclose(s, want, rtol=1e-5, atol=1e-5)
    clicks = embs["clicks"].mask
    q = int(np.flatnonzero(embs["text"].mask & clicks)[0])
    shared = clicks & (np.arange(N) != q)
    fb = ~clicks & np.isfinite(s[q])
    assert fb.any() and s[q][shared].min() > s[q][fb].max()  # the last resort comes last
    cand = np.flatnonzero(np.isfinite(s[q]) & (np.arange(N) != q))
    for e, x in zip(explain_pairs("late", embs, mods, wt, q, cand, labels=labels), s[q, cand],
                    strict=True):
        assert e["score"] == pytest.approx(float(x), abs=1e-3)


@pytest.mark.parametrize("fallback,missing", [(True, "drop"), ({"text": 1.0, "image": 0.5},
                                                                 "drop"),
                                              ({"text": 1.0, "image": 0.5}, "zero")])
@pytest.mark.parametrize("with_cooc", [False, True])
def test_the_approximate_search_serves_fallback_only_queries_as_the_exact_fuser(
        rng, fallback, missing, with_cooc):
    """Weights on clicks (and cooc) only: a query with neither shares no weighted modality,
    so every pair is a fallback pair. The index routes it to the fallback modalities' own
    index (recall@15 ≈ 1 against the exact fuser; before the routing, ~0.07 on this data)."""
    from prodfusion.index import IndexSettings
    from tests.index.conftest import make_planted

    cat, embs, cats, _ = make_planted(rng, n=1500)
    ids = cat.ids
    settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=256, nprobe=64,
                             pq_m=4, min_candidates=64)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate", index="hnsw",
                                      index_settings=settings)
    w = {"text": 0.0, "image": 0.0, "clicks": 1.0}
    served = embs["clicks"].mask.copy()
    if with_cooc:
        clicked = np.flatnonzero(embs["clicks"].mask)
        lists = [[ids[i] for i in rng.choice(clicked[cats[clicked] == c], 3, replace=False)]
                 for c in rng.integers(0, cats.max() + 1, 200)]
        rec.cooc_ = Cooc.from_sessions(Sessions.from_lists(lists), cat)
        rec.modalities = rec.available_modalities
        w["cooc"] = 1.0
        served |= rec.cooc_.mask
    rec.weights, rec.calibration, rec.zero_weight_fallback = w, "zmean", fallback
    rec.fallback_missing = missing
    exact, approx = rec.fuser(), rec.searcher()
    assert type(approx).__name__ == "FallbackRoutedIndex"
    for q in (np.flatnonzero(~served & embs["text"].mask)[:40], np.flatnonzero(served)[:40]):
        r0, s0 = exact.topk(q, 15)
        r1, s1 = approx.topk(q, 15)
        recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(r0, r1, strict=True)])
        assert recall >= 0.95
        np.testing.assert_allclose(s1[:, 0], s0[:, 0], atol=1e-3)


def test_impute_outside_zero_one_is_refused_by_name():
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ParameterError, match=r"'impute' parameter of Weighting"):
            Weighting.make({"text": 1.0}, "zmean", impute=bad)


@pytest.mark.parametrize("index", ["exact", "hnsw"])
@pytest.mark.parametrize("fallback", [True, {"text": 1.0, "image": 0.5}])
def test_early_fusion_ranks_queries_without_a_weighted_modality_by_the_fallback(
        rng, index, fallback):
    """Weights on the clicks alone (what tuning gives a click-rich shop): early fusion
    concatenates weighted blocks, so a product without clicks had an all-zero fused vector
    and no neighbour — its list was the backfill alone (sofas for a children's book). It is
    now ranked by early fusion over the fallback's modalities and weights, less
    FALLBACK_OFFSET, and explained so; queries with clicks are served as before."""
    from prodfusion.fusion.weights import FALLBACK_OFFSET, fallback_search_weighting
    from prodfusion.index import IndexSettings
    from tests.index.conftest import make_planted

    cat, embs, cats, _ = make_planted(rng, n=600)
    settings = IndexSettings(exact_below=0, reduce_dim=None, ef_search=256, min_candidates=64)
    rec = Recommender.from_embeddings(cat, embs, fusion="early", index=index,
                                      index_settings=settings)
    rec.weights, rec.calibration, rec.zero_weight_fallback = \
        {"text": 0.0, "image": 0.0, "clicks": 1.0}, "zscore", fallback
    mods = ("text", "image", "clicks")
    wt = rec.weighting(mods)
    clicks = embs["clicks"].mask
    cold = np.flatnonzero(~clicks & embs["text"].mask)[:30]
    warm = np.flatnonzero(clicks)[:30]
    assert len(cold) >= 10
    # the fallback: early fusion over its modalities and weights, searched exactly
    fb_mods, fb_wt = fallback_search_weighting(wt, mods)
    want = make_fuser("early", embs, fb_mods, weighting=fb_wt)
    r0, s0 = want.topk(cold, 15)
    r1, s1 = rec.searcher().topk(cold, 15)
    assert (r1 >= 0).all()  # full lists, not the backfill
    recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(r0, r1, strict=True)])
    assert recall >= (1.0 if index == "exact" else 0.95)
    np.testing.assert_allclose(s1[:, 0], s0[:, 0] - FALLBACK_OFFSET, atol=1e-3)
    same = (cats[r1] == cats[cold][:, None]).mean()  # the planted categories hold
    assert same > 0.8
    # queries with clicks: the weighted early fusion, exactly as before
    plain = make_fuser("early", embs, mods, weighting=wt)
    rw, sw = rec.searcher().topk(warm, 15)
    pw, ps = plain.topk(warm, 15)
    np.testing.assert_allclose(sw[:, 0], ps[:, 0], atol=1e-4)
    assert np.all(sw > -FALLBACK_OFFSET / 2)
    # explain: the fallback's shares add up to the score served
    q = int(cold[0])
    ids, scores = rec.similar(cat.ids[q], k=5)
    for e, x in zip(rec.explain(cat.ids[q], list(ids)), scores, strict=True):
        assert e["fallback"] == 1 and e["base"] == -FALLBACK_OFFSET
        assert e["score"] == pytest.approx(float(x), abs=1e-3)
        assert e["score"] == pytest.approx(e["base"] + sum(
            v["share"] for v in e["modalities"].values()), abs=1e-6)
