"""Tie-aware test metrics: a held-out target tied with other candidates counts at the mean of
its possible ranks, so the catalog's row order neither helps nor hurts a configuration."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.evaluation.baselines import Reference
from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks
from prodfusion.evaluation.retrieval import (
    evaluate_retrieval,
    heldout_recommender,
    split_interactions,
)
from prodfusion.recommender import Recommender
from prodfusion.variants import BASELINE, Variant


def _served_rank(levels: list[np.ndarray], target: int, order: np.ndarray) -> int:
    """1-based rank of ``target`` in the list served when ties are broken by ``order``
    (a candidate's position in it), level by level; 0 if never served."""
    n = len(order)
    taken = np.zeros(n, bool)
    served: list[int] = []
    for s in levels:
        here = np.flatnonzero(np.isfinite(s) & ~taken)
        served += sorted(here.tolist(), key=lambda c: (-s[c], order[c]))
        taken[here] = True
    return served.index(target) + 1 if target in served else 0


def _value(rank: int, k: int, metric: str) -> float:
    if not 0 < rank <= k:
        return 0.0
    return {"hitrate": 1.0, "mrr": 1.0 / rank, "ndcg": 1.0 / np.log2(rank + 1)}[metric]


@pytest.mark.parametrize("seed", range(6))
def test_tie_aware_metrics_are_the_mean_over_every_order_of_the_ties(seed):
    """Brute force: every permutation of 6 candidates as the tie-break, two levels (a list
    filled from a fallback), many ties, targets on either level or on none."""
    rng = np.random.default_rng(seed)
    n, q = 6, 5
    first = rng.integers(0, 3, (q, n)).astype(np.float64)
    first[first == 0] = -np.inf  # not served by the first level
    second = rng.integers(0, 2, (q, n)).astype(np.float64)
    second[rng.random((q, n)) < 0.2] = -np.inf
    targets = rng.integers(0, n, q)
    ahead, ties, ok = tie_aware_ranks([first, second], targets)
    perms = [np.array(p) for p in itertools.permutations(range(n))]
    for k in (1, 2, 4):
        for metric in ("hitrate", "mrr", "ndcg"):
            got = np.where(ok, tie_aware_metric(ahead, ties, k, metric), 0.0)
            for i in range(q):
                brute = np.mean([_value(_served_rank([first[i], second[i]], targets[i], p),
                                        k, metric) for p in perms])
                assert got[i] == pytest.approx(brute), (i, k, metric)


def test_tie_aware_ranks_refuses_levels_of_another_shape():
    with pytest.raises(Exception, match="a level has shape"):
        tie_aware_ranks([np.zeros((2, 3)), np.zeros((2, 4))], np.array([0, 1]))
    with pytest.raises(ValueError, match="not hitrate, mrr or ndcg"):
        tie_aware_metric(np.array([0]), np.array([0]), 3, "precision")


# ------------------------------------------------------------ scores consistent with lists
def _lists_from_levels(scorers, rows, k):
    """The lists the level scores imply, ties broken by catalog row (as served)."""
    levels = [f(rows) for f in scorers]
    n = levels[0].shape[1]
    out = []
    for i in range(len(rows)):
        got = [c for c in range(n) if _served_rank([x[i] for x in levels], c, np.arange(n))]
        got.sort(key=lambda c: _served_rank([x[i] for x in levels], c, np.arange(n)))
        out.append((got + [-1] * k)[:k])
    return np.array(out)


@pytest.mark.parametrize("kind", ["cooc", "tfidf", "popular", "cooc+tfidf", "cooc+category",
                                  "popular+category"])
def test_reference_scores_rank_exactly_as_the_lists_served(shop_with_categories, kind):
    shop = shop_with_categories
    rows = np.arange(6)
    ref = Reference(kind)
    g = np.array([0, 1, 2, 3, 0, 5])  # p0 and p4 share a variation group
    for diff in (None, g):
        want = ref.recommend(shop, rows, 4, diff_code=diff)
        got = _lists_from_levels(ref.level_scorers(shop, diff_code=diff), rows, 4)
        assert got.tolist() == want.tolist()


@pytest.mark.parametrize("variant", [
    Variant("intermediate", ("text",)), Variant("intermediate", ("text", "image")),
    Variant("early", ("text", "image", "clicks")), Variant("late", ("text", "image")),
    BASELINE, Variant("intermediate", ("clicks",), fallback=("image",))])
def test_variant_scores_rank_exactly_as_the_lists_served(angle_model, angle_sessions, variant):
    split = split_interactions(angle_model.catalog, angle_sessions, test_fraction=0.375)
    ev = heldout_recommender(angle_model, split.train)
    rows = np.arange(8)
    want = variant.recommend(ev, rows, 5)
    got = _lists_from_levels(variant.level_scorers(ev), rows, 5)
    assert got.tolist() == want.tolist()


def test_an_approximate_search_is_scored_as_served(angle_model):
    angle_model.index = "hnsw"
    assert Variant("intermediate", ("text",)).level_scorers(angle_model) is None


# ------------------------------------------------------------ through evaluate_retrieval
def _tied_case():
    """p0's training co-occurrences: p1, p2, p3 and p4 once each (a 4-way tie); the held-out
    session's last transition is p0 → p1, and p1 is the lowest catalog row of the tie."""
    ids = [f"p{i}" for i in range(6)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    rec = Recommender.from_embeddings(cat, {"text": Embeddings(
        np.eye(6, dtype=np.float32), np.ones(6, bool), "eye")}, fusion="intermediate")
    lists = [["p0", "p2"], ["p0", "p3"], ["p1", "p0"], ["p5", "p2"], ["p4", "p0", "p1"]]
    frame = pl.DataFrame({
        "session": [f"s{i}" for i, s in enumerate(lists) for _ in s],
        "position": [j for s in lists for j in range(len(s))],
        "product_id": [p for s in lists for p in s],
        "ts": [float(i) for i, s in enumerate(lists) for _ in s],
    })
    return rec, Sessions(frame)


def test_evaluate_retrieval_counts_a_tied_target_at_its_mean_rank():
    rec, sessions = _tied_case()
    kw = dict(sessions=sessions, test_fraction=0.2, k=1, variants=["cooc"], n_boot=20,
              progress=False)
    mean = evaluate_retrieval(rec, **kw)
    row = next(r for r in mean["rows"] if r["slice"] == "all")
    assert row["n"] == 1 and mean["config"]["ties"] == "mean" and row["ties"] == "mean"
    # as served, the tie goes to the lowest row: p1, the target
    assert row["served"] == {"hit_rate": 1.0, "mrr": 1.0, "ndcg": 1.0}
    # tie-aware: p1 is first in one order of four
    assert row["hit_rate"]["value"] == pytest.approx(0.25)
    assert row["mrr"]["value"] == pytest.approx(0.25)
    by_row = evaluate_retrieval(rec, ties="row", **kw)
    row = next(r for r in by_row["rows"] if r["slice"] == "all")
    assert row["hit_rate"]["value"] == 1.0 and row["ties"] == "as served"
    three = evaluate_retrieval(rec, **{**kw, "k": 3})
    row = next(r for r in three["rows"] if r["slice"] == "all")
    assert row["hit_rate"]["value"] == pytest.approx(0.75)
    assert row["ndcg"]["value"] == pytest.approx((1 + 1 / np.log2(3) + 0.5) / 4)
    with pytest.raises(ParameterError, match="ties"):
        evaluate_retrieval(rec, ties="random", **kw)


def test_the_report_shows_the_lists_as_served_beside_the_tie_aware_figures(tmp_path):
    from prodfusion.evaluation.report import write_report

    rec, sessions = _tied_case()
    res = evaluate_retrieval(rec, sessions=sessions, test_fraction=0.2, k=1,
                             variants=["cooc", "intermediate:text"], n_boot=20, progress=False)
    write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "as served (ties broken by catalog row)" in text
    assert "| cooc | 0.250 | 1.000 | 0.250 | 1.000 | 0.250 | 1.000 |" in text


def test_paired_rows_of_alike_tie_aware_rankings_are_equal_and_discordant_by_share():
    from prodfusion.evaluation.protocol import _paired_row

    g = np.array(["a", "b", "c", "d"])
    a = {"hit": np.array([0.25, 0.5, 1.0, 0.0]), "ndcg": np.array([0.1, 0.3, 1.0, 0.0]),
         "groups": g}
    b = {"hit": a["hit"] + np.array([1e-17, -1e-16, 0, 0]), "ndcg": a["ndcg"] - 1e-17,
         "groups": g}  # the same ranking, its tie-aware values off in the last bits
    row = _paired_row(a, b, np.ones(4, bool), "ndcg", 50, 0.05, 0)
    assert row["verdict"] == "equal" and (row["only_variant"], row["only_comparator"]) == (0, 0)
    c = {**b, "hit": np.array([0.75, 0.5, 0.0, 0.0])}
    row = _paired_row(a, c, np.ones(4, bool), "ndcg", 50, 0.05, 0)
    assert (row["only_variant"], row["only_comparator"]) == (1, 0.5)


def test_a_configuration_scored_as_served_is_paired_with_the_references_as_served(tmp_path):
    """On an approximately searched model a fused configuration is scored as served (ties by
    catalog row) and the references tie-aware: their paired difference compares both as
    served, so the tie-aware reference is not handicapped (here the tie goes to the target
    for both: difference 0, not 1 − 0.25), and the report marks the row."""
    from prodfusion.evaluation.report import write_report

    rec, sessions = _tied_case()
    emb = rec.embeddings_["text"]
    rec = Recommender.from_embeddings(rec.catalog, {"text": emb, "image": Embeddings(
        np.eye(6, dtype=np.float32), np.ones(6, bool), "eye")}, fusion="intermediate")
    rec.index = "hnsw"
    res = evaluate_retrieval(rec, sessions=sessions, test_fraction=0.2, k=1,
                             variants=["cooc", "intermediate:text+image"], n_boot=20,
                             progress=False)
    rows = {r["variant"]: r for r in res["rows"] if r["slice"] == "all"}
    fused = next(v for v, r in rows.items() if r["modalities"] == ["text", "image"])
    assert rows[fused]["ties"] == "as served" and rows["cooc"]["ties"] == "mean"
    assert rows["cooc"]["hit_rate"]["value"] == pytest.approx(0.25)
    assert rows["cooc"]["served"]["hit_rate"] == rows[fused]["served"]["hit_rate"] == 1.0
    d = next(d for d in res["paired"] if d["variant"] == fused and d["comparator"] == "cooc"
             and d["slice"] == "all")
    assert d["ties"] == "as served" and d["hit_rate"]["value"] == 0.0
    assert d["verdict"] == "equal"
    write_report(res, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "† compared as the lists are served" in text and "| cooc † |" in text
