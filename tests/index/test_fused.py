"""Approximate fused search against the exact fusers: recall 1 on small data, filters, clusters."""

from __future__ import annotations

import numpy as np
import pytest

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import NotBuiltError, ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.index import Filters, IndexSettings, cluster_auto, make_fused_index
from prodfusion.index.fused.filtering import _Filter
from tests.index.conftest import assert_same_topk, make_planted

MODS = ("text", "image", "clicks")
SUBSETS = [("text",), ("image", "clicks"), MODS]
#: Every piece is a FAISS index (no exact shortcut) and the beam covers the data: recall 1.
ANN = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, nprobe=10_000, pq_m=4,
                    min_candidates=64)


def _labels(embs, mods, k=12):
    return {m: cluster_auto(embs[m], k, seed=0) for m in mods}


def _pair(embs, method, mods, backend="hnsw", settings=ANN):
    labels = _labels(embs, mods) if method == "late" else None
    exact = make_fuser(method, embs, mods, late_labels=labels)
    approx = make_fused_index(method, mods, backend=backend, settings=settings).build(embs, labels)
    return exact, approx


@pytest.mark.parametrize("backend", ["exact", "hnsw", "ivfpq"])
@pytest.mark.parametrize("mods", SUBSETS, ids="+".join)
@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_matches_exact_fusion_on_small_data(planted, method, mods, backend):
    _, embs, _, _ = planted
    settings = ANN
    if backend == "ivfpq":  # PQ scores are coarse: a wider (still partial) fetch before re-scoring
        settings = IndexSettings(**{**ANN.to_dict(), "min_candidates": 512})
    exact, approx = _pair(embs, method, mods, backend, settings)
    q = np.arange(0, 600, 7)
    r0, s0 = exact.topk(q, 15)
    r1, s1 = approx.topk(q, 15)
    assert_same_topk(exact, q, r0, s0, r1, s1)
    r2, s2 = approx.exact_topk(q, 15)  # the chunked oracle agrees too
    assert_same_topk(exact, q, r0, s0, r2, s2)


def test_intermediate_pieces_follow_presence_patterns(planted):
    _, embs, _, _ = planted
    _, approx = _pair(embs, "intermediate", MODS)
    masks = np.stack([embs[m].mask for m in MODS], axis=1)
    for name, piece in approx.pieces_.items():
        want = np.array([m in name.split("+") for m in MODS])
        assert np.all(masks[piece.rows] == want)
    assert sum(len(p) for p in approx.pieces_.values()) == masks.any(axis=1).sum()


def test_small_patterns_share_one_exact_mixed_piece(planted):
    """Patterns under ``exact_below`` rows go to one exact piece; the answer stays exact."""
    _, embs, _, _ = planted
    settings = IndexSettings(exact_below=100, reduce_dim=None, ef_search=1024, min_candidates=64)
    exact, approx = _pair(embs, "intermediate", MODS, settings=settings)
    pieces = approx.pieces_
    assert pieces["mixed"].mixed and "text+image+clicks" in pieces
    masks = np.stack([embs[m].mask for m in MODS], axis=1)
    codes = {tuple(x) for x in masks[pieces["mixed"].rows]}
    assert len(codes) >= 3  # several small patterns together
    q = np.arange(0, 600, 7)
    r0, s0 = exact.topk(q, 15)
    r1, s1 = approx.topk(q, 15)
    assert_same_topk(exact, q, r0, s0, r1, s1)


def test_partial_products_are_ranked_fairly(rng):
    """A product lacking clicks whose text and image equal the query's must come first.

    In a single X/sqrt(M) index its score would be 2/3 and products with three mediocre
    modalities would outrank it; per presence pattern it scores 1, as the definition says.
    """
    _, embs, _, _ = make_planted(rng, n=300)
    embs = {m: Embeddings(e.vectors.copy(), e.mask.copy(), m) for m, e in embs.items()}
    for m in MODS:
        embs[m].mask[:2] = True
        embs[m].vectors[:2] = rng.normal(size=(2, embs[m].dim))
    embs["text"].vectors[1] = embs["text"].vectors[0]
    embs["image"].vectors[1] = embs["image"].vectors[0]
    embs["clicks"].mask[1] = False
    embs["clicks"].vectors[1] = 0
    _, approx = _pair(embs, "intermediate", MODS)
    rows, scores = approx.topk([0], 3)
    assert rows[0, 0] == 1 and scores[0, 0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_filters_never_return_excluded_items(planted, method):
    _, embs, cats, groups = planted
    exact, approx = _pair(embs, method, MODS)
    rng = np.random.default_rng(1)
    q = rng.choice(600, 40, replace=False)
    banned = rng.random(600) < 0.2
    for kw in ({"banned": banned}, {"same_code": cats}, {"diff_code": groups},
               {"banned": banned, "same_code": cats, "diff_code": groups}):
        r0, s0 = exact.topk(q, 12, filters=Filters(**kw))
        r1, s1 = approx.topk(q, 12, filters=Filters(**kw))
        assert_same_topk(exact, q, r0, s0, r1, s1)
        for qi, r in zip(q, r1, strict=True):
            r = r[r >= 0]
            assert qi not in r
            if "banned" in kw:
                assert not banned[r].any()
            if "same_code" in kw:
                assert np.all(cats[r] == cats[qi])
            if "diff_code" in kw:
                assert np.all(groups[r] != groups[qi])


@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_selective_filters_fall_back_to_exact(planted, method):
    """Banning 97% of the catalog leaves few allowed rows: the answer must still be complete."""
    _, embs, cats, _ = planted
    settings = IndexSettings(exact_below=0, reduce_dim=None, min_candidates=16, over_fetch=1,
                             max_candidates=64)
    exact, approx = _pair(embs, method, MODS, settings=settings)
    banned = np.ones(600, dtype=bool)
    banned[::31] = False
    q = np.array([0, 5, 62, 300])
    r0, s0 = exact.topk(q, 10, filters=Filters(banned=banned))
    r1, s1 = approx.topk(q, 10, filters=Filters(banned=banned))
    assert_same_topk(exact, q, r0, s0, r1, s1)
    assert (r1[0] >= 0).sum() == 10


@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_a_banned_set_larger_than_a_fetch_is_overfetched_by_fraction(planted, method):
    """30 % of the catalog banned (retired products) with max_candidates 128: more banned
    rows than half a fetch holds, so the fetch is sized by the fraction left instead of
    adding every banned row (which went exact beyond max_candidates); still the exact
    answer, banned rows never returned, the query's own neighbours banned included."""
    _, embs, _, _ = planted
    settings = IndexSettings(exact_below=0, reduce_dim=None, min_candidates=32, over_fetch=2,
                             max_candidates=128)
    exact, approx = _pair(embs, method, MODS, settings=settings)
    rng = np.random.default_rng(4)
    banned = rng.random(600) < 0.3
    q = rng.choice(np.flatnonzero(~banned), 30, replace=False)
    near, _ = exact.topk(q[:5], 12)
    banned[near.ravel()[near.ravel() >= 0]] = True  # a clustered ban too: retries cover it
    banned[q] = False
    if hasattr(approx, "_n_fetch"):  # the vector indexes (late fusion searches by cluster)
        kp = [approx._n_fetch(int(i), 12, _Filter(approx, Filters(banned=banned))) for i in q]
        assert all(x is not None and x <= 128 for x in kp)  # not exact from the first pass
    r0, s0 = exact.topk(q, 12, filters=Filters(banned=banned))
    r1, s1 = approx.topk(q, 12, filters=Filters(banned=banned))
    assert_same_topk(exact, q, r0, s0, r1, s1)
    assert not banned[r1[r1 >= 0]].any()


def test_rare_category_and_small_categories(rng):
    """Categories far smaller than the over-fetch go exact; the result has every member."""
    _, embs, _, _ = make_planted(rng, n=500)
    codes = np.full(500, -1, dtype=np.int64)
    codes[200:] = 8 + np.arange(300) % 50
    codes[[3, 40, 41, 99, 400]] = 7
    exact, approx = _pair(embs, "intermediate", MODS)
    for q in (3, 250, 0):
        in_cat = Filters(same_code=codes)
        r0, s0 = exact.topk([q], 10, filters=in_cat)
        r1, s1 = approx.topk([q], 10, filters=in_cat)
        assert_same_topk(exact, [q], r0, s0, r1, s1)
    assert set(approx.topk([3], 10, filters=Filters(same_code=codes))[0][0][:4]) == {40, 41, 99, 400}
    assert np.all(approx.topk([0], 10, filters=Filters(same_code=codes))[0] == -1)  # code -1 matches nothing


def test_late_without_enough_cluster_mates_ranks_the_rest_by_tie_break(planted):
    """Few products share a cluster with the query: count-0 products fill the list, exactly."""
    _, embs, _, _ = planted
    labels = {m: np.arange(600, dtype=np.int32) % 200 for m in ("text",)}
    labels["text"][embs["text"].mask == 0] = -1
    exact = make_fuser("late", embs, ("text",), late_labels=labels)
    approx = make_fused_index("late", ("text",), settings=ANN).build(embs, labels)
    q = np.arange(0, 600, 50)
    r0, s0 = exact.topk(q, 8)
    r1, s1 = approx.topk(q, 8)
    assert_same_topk(exact, q, r0, s0, r1, s1)
    assert np.all(np.floor(s1[:, 2:]) == 0)  # only two mates share the cluster


def test_products_without_any_modality_get_nothing(planted):
    _, embs, _, _ = planted
    embs = {m: Embeddings(e.vectors, e.mask.copy(), m) for m, e in embs.items()}
    for e in embs.values():
        e.mask[10] = False
    for method in ("early", "intermediate", "late"):
        exact, approx = _pair(embs, method, MODS)
        r, s = approx.topk([10, 11], 5)
        assert np.all(r[0] == -1) and np.all(np.isneginf(s[0]))
        assert 10 not in approx.topk(np.arange(600), 15)[0]
        r0, s0 = exact.topk([10, 11], 5)
        assert_same_topk(exact, [10, 11], r0, s0, r, s)


def test_errors(planted):
    _, embs, _, _ = planted
    approx = make_fused_index("early", MODS, settings=ANN)
    with pytest.raises(NotBuiltError, match="not built: call build"):
        approx.topk([0], 5)
    approx.build(embs)
    with pytest.raises(ParameterError, match=r"Query rows must be in \[0, 600\); got 0..600"):
        approx.topk([0, 600], 5)
    with pytest.raises(ParameterError, match="banned has 3 entries, the index 600 rows"):
        approx.topk([0], 5, filters=Filters(banned=np.zeros(3, bool)))
    with pytest.raises(ParameterError, match="needs the k-means\\+\\+ labels"):
        make_fused_index("late", MODS).build(embs)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("mods", SUBSETS, ids="+".join)
@pytest.mark.parametrize("method", ["early", "intermediate", "late"])
def test_fast_pair_scores_equal_the_fusers(planted, method, mods, normalize):
    """The re-scoring shortcut (dot products + stored norms) is the fusers' formula."""
    _, embs, _, _ = planted
    embs = {m: Embeddings(e.vectors * np.float32(10.0 ** j), e.mask, m)  # very unequal scales
            for j, (m, e) in enumerate(embs.items())}
    labels = _labels(embs, mods) if method == "late" else None
    fuser = make_fuser(method, embs, mods, normalize=normalize, late_labels=labels)
    approx = make_fused_index(method, mods, backend="exact", normalize=normalize).build(embs, labels)
    cand = np.arange(600)
    for q in (0, 3, 17, 250, 599):
        np.testing.assert_allclose(approx.pair_scores(q, cand), fuser.similarity([q], cand)[0],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(approx.exact_scores([q], cand)[0], fuser.similarity([q], cand)[0],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["early", "intermediate"])
def test_parallel_piece_search_gives_the_serial_answer(planted, method):
    _, embs, _, _ = planted
    _, serial = _pair(embs, method, MODS)
    _, parallel = _pair(embs, method, MODS, settings=IndexSettings(**{**ANN.to_dict(),
                                                                      "search_threads": 2}))
    assert parallel._pool() is not None and serial._pool() is None
    q = np.arange(0, 600, 5)
    r0, s0 = serial.topk(q, 15)
    for rows in (q, q[:1]):  # a batch and a single query
        r1, s1 = parallel.topk(rows, 15)
        np.testing.assert_array_equal(r1, r0[: len(rows)])
        np.testing.assert_allclose(s1, s0[: len(rows)], rtol=1e-6)


def test_confidence_weighted_clicks_fetch_more_candidates_and_stay_exact(rng):
    """Under ``n0`` the pieces' estimates ignore the per-pair click confidence, so the
    intermediate index fetches 4× ``min_candidates`` (1M products: recall@15 0.854 → 0.956,
    docs/benchmarks/fusion_weights.md); the returned scores are the exact fuser's."""
    from prodfusion.fusion.weights import Weighting, confidence, estimate_stats

    catalog, embs, _, _ = make_planted(rng, n=400)
    mods = ("text", "image", "clicks")
    conf = confidence(rng.integers(0, 30, len(catalog)), 5.0)
    stats = estimate_stats(embs, mods)
    w3 = {"text": 1.0, "image": 0.5, "clicks": 2.0}
    settings = IndexSettings(exact_below=0, min_candidates=32, over_fetch=1)
    fetched = {}
    for name, n0, c in (("plain", None, None), ("n0", 5.0, conf)):
        wt = Weighting.make(w3, "zscore", None, n0).with_stats(stats)
        index = make_fused_index("intermediate", mods, backend="hnsw", settings=settings,
                                 weighting=wt, confidence=c).build(embs)
        real = index._candidates
        index._candidates = lambda q, kp, u=None, real=real, name=name: (
            fetched.setdefault(name, kp), real(q, kp, u))[1]
        q = np.arange(0, 400, 9)
        r1, s1 = index.topk(q, 5)
        exact = make_fuser("intermediate", embs, mods, weighting=wt, confidence=c)
        r0, s0 = exact.topk(q, 5)
        assert_same_topk(exact, q, r0, s0, r1, s1, atol=1e-4)
    assert fetched == {"plain": 32, "n0": 128}


def test_ivfpq_pieces_over_several_modalities_keep_inner_product_codes_under_intermediate(rng):
    """Intermediate fusion searches a piece with only the modalities the query shares (the
    others zero), which IVF-PQ's choice on whole sample rows does not measure: its pieces
    over several modalities keep the inner-product codes; a single-modality piece and early
    fusion's index choose."""
    _, embs, _, _ = make_planted(rng, n=2400)
    mods = ("text", "clicks")
    st = IndexSettings(exact_below=0, reduce_dim=None, pq_m=4, min_candidates=64)
    inter = make_fused_index("intermediate", mods, backend="ivfpq", settings=st).build(embs)
    both, text = inter.pieces_["text+clicks"].index, inter.pieces_["text"].index
    assert len(inter.pieces_["text+clicks"]) >= 512 and len(inter.pieces_["text"]) >= 512
    assert both.equal_norms is False and both.choice_ is None and both.radius_ is None
    assert text.equal_norms is None and text.choice_ is not None
    early = make_fused_index("early", mods, backend="ivfpq", settings=st).build(embs)
    assert all(p.index.choice_ is not None for p in early.pieces_.values() if not p.mixed)
