"""Retrieval metrics, ARI, MDS and the bootstrap against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prodfusion.errors import DataError, ParameterError
from prodfusion.evaluation.clustering import (
    adjusted_rand,
    all_combinations,
    check_distance_matrix,
    classical_mds,
    kmeans_ari,
    select_products,
    similarity_to_distance,
)
from prodfusion.evaluation.retrieval import (
    bootstrap_ci,
    catalog_coverage,
    category_precision_at_k,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    rank_of_target,
)


# ----------------------------------------------------------------- ranking metrics
def test_ranking_metrics_hand_computed():
    # target ranks: 2, absent, 1, 3 (with -1 padding in the last list)
    ranked = np.array([[4, 7, 1], [2, 3, 5], [9, 8, 0], [6, -1, -1]])
    targets = np.array([7, 11, 9, -1])  # -1 target never matches padding
    assert rank_of_target(ranked, targets).tolist() == [2, 0, 1, 0]
    ranked[3] = [5, 6, 4]
    targets[3] = 4
    assert rank_of_target(ranked, targets).tolist() == [2, 0, 1, 3]
    assert hit_rate_at_k(ranked, targets) == pytest.approx(3 / 4)
    assert mrr_at_k(ranked, targets) == pytest.approx((1 / 2 + 0 + 1 + 1 / 3) / 4)
    assert ndcg_at_k(ranked, targets) == pytest.approx((1 / math.log2(3) + 0 + 1 + 1 / 2) / 4)
    # @k cuts the lists: at k = 1 only the third query hits
    assert hit_rate_at_k(ranked, targets, k=1) == pytest.approx(1 / 4)
    assert mrr_at_k(ranked, targets, k=2) == pytest.approx((1 / 2 + 1) / 4)


def test_ranking_metrics_work_on_id_strings_with_none_padding():
    ranked = np.array([["b", "a", None], [None, None, None]], dtype=object)
    m = per_query_metrics(ranked, np.array(["a", "z"], dtype=object))
    assert m["rank"].tolist() == [2, 0]
    assert m["ndcg"][0] == pytest.approx(1 / math.log2(3))


def test_rank_of_target_refuses_misaligned_inputs():
    with pytest.raises(DataError, match=r"ranked lists have shape \(2, 3\) and targets \(3,\)"):
        rank_of_target(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ParameterError, match="The 'k' parameter of rank_of_target"):
        rank_of_target(np.zeros((2, 3)), np.zeros(2), k=0)


def test_category_precision_and_coverage():
    codes = np.array([0, 0, 1, 1, -1])
    ranked = np.array([[1, 2, 3], [0, 4, -1], [0, 1, 2]])
    queries = np.array([0, 2, 4])
    cp = category_precision_at_k(ranked, queries, codes)
    # q0 (cat 0) gets rows 1 (cat 0), 2 (cat 1), 3 (cat 1) -> 1/3;
    # q2 (cat 1) gets rows 0 (cat 0), 4 (no category) and a pad -> 0/2; q4 has no category -> nan
    assert cp[0] == pytest.approx(1 / 3)
    assert cp[1] == 0.0
    assert math.isnan(cp[2])
    assert catalog_coverage(ranked, 10) == pytest.approx(5 / 10)


# ----------------------------------------------------------------- bootstrap
def test_bootstrap_resamples_whole_groups():
    values = np.array([1.0] * 4 + [0.0] * 4)
    # Two sessions: the resampled pooled mean can only be 0, 0.5 or 1 (P = 1/4, 1/2, 1/4),
    # so the 95% percentile interval is [0, 1].
    mean, lo, hi = bootstrap_ci(values, np.array(["a"] * 4 + ["b"] * 4), n_boot=2000, seed=1)
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)
    # Eight independent values: P(mean = 0) = 2^-8 < 2.5%, so the interval is strictly inside.
    _, lo8, hi8 = bootstrap_ci(values, n_boot=2000, seed=1)
    assert 0.0 < lo8 < 0.5 < hi8 < 1.0


def test_bootstrap_edge_cases():
    assert bootstrap_ci(np.array([0.3, 0.3, 0.3])) == (0.3, 0.3, 0.3)
    mean, lo, hi = bootstrap_ci(np.array([np.nan, 1.0]))
    assert (mean, lo, hi) == (1.0, 1.0, 1.0)  # NaN ignored, one value left
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([])))
    with pytest.raises(DataError, match="3 values but 2 group labels"):
        bootstrap_ci(np.ones(3), np.array([1, 2]))


def test_bootstrap_interval_covers_a_known_mean():
    rng = np.random.default_rng(0)
    v = rng.binomial(1, 0.3, size=4000).astype(float)
    mean, lo, hi = bootstrap_ci(v, n_boot=500, seed=0)
    se = math.sqrt(0.3 * 0.7 / 4000)
    assert lo < mean < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


# ----------------------------------------------------------------- ARI and friends
def test_adjusted_rand_hand_computed():
    # contingency [[2, 0, 0], [0, 1, 1]]: index 1, expected 1/3, max 3/2 -> (1 - 1/3)/(3/2 - 1/3)
    assert adjusted_rand([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand([0, 0, 1, 1], [5, 5, 3, 3]) == 1.0  # label names do not matter


def test_kmeans_ari_on_separated_and_on_mixed_points():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    centers = np.array([[0, 0], [10, 0], [0, 10]])
    pts = centers[labels] + rng.normal(size=(90, 2)) * 0.5
    assert kmeans_ari(pts, labels, 3, seed=0) == 1.0
    noise = rng.normal(size=(90, 2))
    assert abs(kmeans_ari(noise, labels, 3, seed=0)) < 0.1
    with pytest.raises(DataError, match="points contain NaN or Inf"):
        kmeans_ari(np.full((4, 2), np.nan), [0, 0, 1, 1], 2)
    with pytest.raises(ParameterError, match=r"'n_clusters' parameter of kmeans_ari\(\) must be an int in \[1, 4\]"):
        kmeans_ari(np.zeros((4, 2)), [0, 0, 1, 1], 5)


def test_classical_mds_reproduces_mean_cosine_distance_exactly():
    from prodfusion.encoders.base import Embeddings
    from prodfusion.fusion.intermediate import IntermediateFusion

    rng = np.random.default_rng(3)
    embs = {m: Embeddings(rng.normal(size=(30, d)).astype(np.float32), np.ones(30, bool), m)
            for m, d in (("text", 5), ("image", 7))}
    f = IntermediateFusion(modalities=("text", "image")).fit(embs)
    d = similarity_to_distance(f.similarity(np.arange(30), np.arange(30)), "intermediate", 2)
    y = classical_mds(d)
    d2 = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_allclose(d2, d, atol=1e-5)


def test_similarity_to_distance_for_late_fusion_and_missing_pairs():
    # 2 modalities: self score 2 + 0.999; a pair sharing 1 cluster with tie 0.5 -> 1.4995
    s = np.array([[2.999, 1.4995, -np.inf], [1.4995, 2.999, 0.0], [-np.inf, 0.0, 2.999]])
    d = similarity_to_distance(s, "late", 2)
    assert d[0, 1] == pytest.approx(1.4995)
    assert d[0, 2] == 3.0  # nothing shared -> the cap M + 1
    assert np.all(np.diag(d) == 0)
    di = similarity_to_distance(np.array([[1.0, -np.inf], [-np.inf, 1.0]]), "intermediate", 1)
    assert di[0, 1] == 2.0


def test_check_distance_matrix_messages():
    with pytest.raises(DataError, match=r"must be square; got shape \(2, 3\)"):
        check_distance_matrix(np.zeros((2, 3)))
    bad = np.zeros((3, 3))
    bad[0, 2] = np.inf
    with pytest.raises(DataError, match=r"entry \(0, 2\) is inf"):
        check_distance_matrix(bad)
    neg = np.zeros((2, 2))
    neg[0, 1] = -1
    with pytest.raises(DataError, match=r"entry \(0, 1\) is negative"):
        check_distance_matrix(neg)


def test_select_products_nested_samples_and_ties():
    cats = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + [None] * 2
    rows, labels, names = select_products(cats, 2)
    assert names == ["a", "b"]  # equal counts: alphabetical
    assert rows.tolist() == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
    r3, l3, n3 = select_products(cats, 3, max_per_category=2, seed=4)
    r2, l2, _ = select_products(cats, 2, max_per_category=2, seed=4)
    assert n3 == ["a", "b", "c"] and np.bincount(l3).tolist() == [2, 2, 2]
    assert set(r2) <= set(r3)  # N=2 sample is inside the N=3 sample
    eligible = np.array([True] * 13 + [False] * 2)
    eligible[:4] = False  # "b" now has 1 eligible product
    _, _, names_e = select_products(cats, 2, eligible=eligible)
    assert names_e == ["a", "c"]
    with pytest.raises(DataError, match="Only 3 categories have eligible products"):
        select_products(cats, 4)


def test_all_combinations_order():
    assert all_combinations(("text", "clicks")) == [("text",), ("clicks",), ("text", "clicks")]
