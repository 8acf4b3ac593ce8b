"""The ``popular`` backfill: short lists completed with the most clicked products, scored NaN,
under the query's filters, on every query path (similar, the CLI, the service's variants, the
evaluation's tie-aware levels), kept in the model folder, absent from older folders."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.errors import ParameterError
from prodfusion.index.backfill import backfill, check_backfill, popular_order, score_or_none
from prodfusion.index.topk import Filters
from prodfusion.recommender import Recommender

N = 12


def _shop():
    """Products p00–p11 in categories c0/c1/c2 (row % 3). Sessions pair p01–p08 among
    themselves, p08 most often; p09–p11 are never clicked, p00 only with itself."""
    ids = [f"p{i:02d}" for i in range(N)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(N)],
                                "category": [f"c{i % 3}" for i in range(N)]}))
    lists = [["p01", "p02"], ["p02", "p03"], ["p03", "p04"], ["p05", "p06"], ["p07", "p08"],
             ["p08", "p04"], ["p08", "p06"], ["p08", "p02"], ["p00"]]
    return cat, Sessions.from_lists(lists)


def _counts(cat, sessions):
    pc = sessions.product_counts()
    return np.array([pc.get(p, 0) for p in cat.ids])


def _popular_by_hand(counts, q, k, allowed=lambda j: True, skip=()):
    """The most clicked products other than q and ``skip``, ties by row, clicked at least once."""
    order = sorted(range(len(counts)), key=lambda j: (-counts[j], j))
    return [j for j in order if counts[j] > 0 and j != q and j not in skip and allowed(j)][:k]


def test_backfill_fills_padding_in_popularity_order_under_the_filters():
    counts = np.array([3, 0, 5, 5, 1, 2])
    order = popular_order(counts)
    assert order.tolist() == [2, 3, 0, 5, 4]  # never-clicked row 1 is not offered
    rows = np.array([[3, -1, -1, -1], [0, 2, 4, 5], [-1, -1, -1, -1]])
    scores = np.array([[0.7, -np.inf, -np.inf, -np.inf], [0.9, 0.8, 0.7, 0.6],
                       [-np.inf] * 4], np.float32)
    r, s = backfill(rows, scores, np.array([5, 3, 2]), order)
    assert r.tolist() == [[3, 2, 0, 4], [0, 2, 4, 5], [3, 0, 5, 4]]  # never the query (5, 2)
    assert s[0, 0] == np.float32(0.7) and np.isnan(s[0, 1:]).all()
    assert (s[1] == scores[1]).all() and np.isnan(s[2]).all()
    assert rows[0, 1] == -1  # the input is not modified
    # filters: banned rows, same code, different code
    codes = np.array([0, 0, 1, 0, 1, 0])
    r, s = backfill(np.full((1, 4), -1), np.full((1, 4), -np.inf, np.float32), [0], order,
                    Filters(banned=np.array([0, 0, 0, 1, 0, 0], bool), same_code=codes))
    assert r.tolist() == [[5, -1, -1, -1]]  # category 0, clicked, not banned: only row 5
    assert np.isnan(s[0, 0]) and np.isneginf(s[0, 1:]).all()
    r, _ = backfill(np.full((1, 3), -1), np.full((1, 3), -np.inf, np.float32), [0], order,
                    Filters(diff_code=codes))
    assert r.tolist() == [[2, 4, -1]]


def test_backfill_reads_past_the_first_chunk_under_a_strict_filter():
    n = 5000
    counts = np.arange(n, 0, -1)  # row 0 most clicked
    codes = np.zeros(n, int)
    codes[-3:] = 1  # the query's category: the three least clicked products
    r, s = backfill(np.full((1, 5), -1), np.full((1, 5), -np.inf, np.float32), [n - 1],
                    popular_order(counts), Filters(same_code=codes))
    assert r.tolist() == [[n - 3, n - 2, -1, -1, -1]]


def test_check_backfill_and_json_scores():
    assert check_backfill("popular", "x") == "popular"
    assert check_backfill("none", "x") is None and check_backfill(None, "x") is None
    with pytest.raises(ParameterError, match="Recommender\\(\\): backfill must be"):
        Recommender(backfill="random")
    assert score_or_none(np.float32(np.nan)) is None and score_or_none(np.float32(0.5)) == 0.5


def test_similar_backfills_a_product_the_modalities_cannot_place(tmp_path):
    cat, sessions = _shop()
    counts = _counts(cat, sessions)
    rec = Recommender(text=None, image=None, clicks=None, cooc=True, fusion="intermediate")
    rec.build(cat, sessions)
    assert rec.backfill == "popular"
    # p10 was never clicked: cooc has nothing to say, the list is the most clicked products
    ids, scores = rec.similar("p10", k=5)
    assert list(ids) == [cat.ids[j] for j in _popular_by_hand(counts, 10, 5)]
    assert np.isnan(scores).all()
    # p01 has cooc: every clicked product shares it (a measured 0), nothing is backfilled
    ids, scores = rec.similar("p01", k=4)
    assert ids[0] == "p02" and not np.isnan(scores).any()
    # filters hold for the backfill too
    ids, _ = rec.similar("p10", k=5, same_category=True, exclude=["p04"])
    want = _popular_by_hand(counts, 10, 5, lambda j: j % 3 == 10 % 3 and j != 4)
    assert list(ids) == [cat.ids[j] for j in want] and len(want) < 5
    # explain marks the backfilled results
    ids, scores, why = rec.similar("p10", k=3, explain=True)
    assert all(e["backfill"] == "popular" for e in why)
    assert not any("backfill" in e for e in rec.similar("p01", k=3, explain=True)[2])
    # batch and row forms agree
    bi, bs = rec.similar_batch(["p10", "p01"], k=4)
    assert list(bi[1]) == list(rec.similar("p01", k=4)[0]) and np.isnan(bs[0]).all()
    # switched off: the short lists of before
    rec.backfill = None
    assert list(rec.similar("p10", k=5)[0]) == []
    rec.backfill = "popular"
    # kept by the model folder
    back = Recommender.load(rec.save(tmp_path / "m"))
    assert back.backfill == "popular"
    assert list(back.similar("p10", k=5)[0]) == [cat.ids[j] for j in _popular_by_hand(counts, 10, 5)]
    rec.backfill = None
    assert Recommender.load(rec.save(tmp_path / "off")).backfill is None


def test_an_older_model_folder_keeps_its_short_lists(tmp_path):
    cat, sessions = _shop()
    rec = Recommender(text=None, image=None, clicks=None, cooc=True, fusion="intermediate")
    path = rec.build(cat, sessions).save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["settings"]["backfill"]  # as written before backfill existed
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = Recommender.load(path)
    assert old.backfill is None and list(old.similar("p10", k=5)[0]) == []


def test_a_partly_ranked_list_is_completed_after_its_ranked_results():
    """Text-only model, four products without a title vector: a query's list holds the seven
    others with one, by cosine, then the most clicked products not yet listed."""
    from prodfusion.encoders.base import Embeddings

    cat, sessions = _shop()
    counts = _counts(cat, sessions)
    mask = np.arange(N) < 8  # p08–p11 have no title vector
    text = Embeddings(np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32), mask, "t")
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate")
    rec.click_counts_ = counts
    ids, scores = rec.similar("p01", k=10)
    ranked = rec.similar_rows([1], 10)
    assert len(ids) == 8 and np.isfinite(scores[:7]).all() and np.isnan(scores[7:]).all()
    listed = {int(cat.row_of(p)) for p in ids[:7]}
    assert listed == set(range(8)) - {1}
    assert [cat.row_of(p) for p in ids[7:]] == _popular_by_hand(counts, 1, 3, skip=listed)
    assert ids[7:].tolist() == ["p08"]  # the only clicked product without a title vector
    assert ranked[0][0].tolist() == [cat.row_of(p) for p in ids] + [-1, -1]


def test_a_model_without_click_counts_has_nothing_to_backfill_with():
    cat, _ = _shop()
    from prodfusion.encoders.base import Embeddings

    mask = np.arange(N) < 8  # p08–p11 have no title vector
    text = Embeddings(np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32), mask, "t")
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate")
    assert rec.backfill == "popular" and rec.popular_order() is None
    assert list(rec.similar("p10", k=5)[0]) == []


def test_variants_and_the_evaluation_rank_the_backfill_like_the_popular_baseline():
    """The service's arms (Variant.recommend_scored) backfill as similar() does, and the
    tie-aware evaluation scores a never-clicked query exactly as the popular baseline."""
    from prodfusion.evaluation.baselines import Reference
    from prodfusion.evaluation.metrics import tie_aware_ranks
    from prodfusion.variants import Variant

    cat, sessions = _shop()
    rec = Recommender(text=None, image=None, clicks=None, cooc=True, fusion="intermediate")
    rec.build(cat, sessions)
    rec.train_sessions_ = sessions  # what the baselines count
    v = Variant(fusion="intermediate", modalities=("cooc",))
    q = np.array([10, 1])
    r, s = v.recommend_scored(rec, q, 5)
    want, _ = rec.similar_rows(q, 5)
    assert r.tolist() == want.tolist() and np.isnan(s[0]).all()
    pop = Reference("popular")
    targets = np.arange(N)
    for qi in (10, 11):
        rows = np.full(N, qi)
        ours = tie_aware_ranks([f(rows) for f in v.level_scorers(rec)], targets)
        ref = tie_aware_ranks([f(rows) for f in pop.level_scorers(rec)], targets)
        for a, b in zip(ours, ref, strict=True):
            assert a.tolist() == b.tolist()
    rec.backfill = None
    assert len(v.level_scorers(rec)) == 1
    assert (v.recommend_scored(rec, q, 5)[0][0] == -1).all()


def test_cli_similar_labels_backfilled_results_and_writes_null_scores(tmp_path, capsys):
    from prodfusion.cli import main

    cat, sessions = _shop()
    counts = _counts(cat, sessions)
    rec = Recommender(text=None, image=None, clicks=None, cooc=True, fusion="intermediate")
    path = rec.build(cat, sessions).save(tmp_path / "m")
    assert main(["similar", str(path), "p10", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # strict JSON: no NaN
    assert [r["product_id"] for r in out["results"]] == \
        [cat.ids[j] for j in _popular_by_hand(counts, 10, 3)]
    assert all(r["score"] is None for r in out["results"])
    assert main(["similar", str(path), "p10", "-k", "3", "--explain"]) == 0
    text = capsys.readouterr().out
    assert text.count("popular") >= 3 and "backfilled" in text
