"""The honest held-out protocol (leave-last-out), slices, flags and the reference baselines."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ModelError, ParameterError
from prodfusion.evaluation.baselines import Reference, cooc_matrix, popularity
from prodfusion.evaluation.protocol import paired_differences, slice_flags
from prodfusion.evaluation.replay import replay
from prodfusion.evaluation.retrieval import (
    check_no_leak,
    evaluate_retrieval,
    heldout_recommender,
    parse_variant,
    split_interactions,
)
from prodfusion.recommender import Prod2VecParams, Recommender


def _timed(lists, times, keys=None) -> Sessions:
    keys = keys or [f"k{i}" for i in range(len(lists))]
    return Sessions(pl.DataFrame({
        "session": [k for k, s in zip(keys, lists, strict=True) for _ in s],
        "position": [i for s in lists for i in range(len(s))],
        "product_id": [p for s in lists for p in s],
        "ts": [float(t) for t, s in zip(times, lists, strict=True) for _ in s],
    }))


# ----------------------------------------------------------------- leave-last-out
def test_leave_last_out_holds_out_the_last_transition_and_trains_on_the_rest(
        angle_model, angle_sessions, monkeypatch):
    """Held-out sessions a = 000 002 005, b = 003 004, c = 006 005 (the latest three)."""
    from prodfusion.encoders import Prod2Vec

    split = split_interactions(angle_model.catalog, angle_sessions, test_fraction=0.375)
    ids = angle_model.catalog.ids
    ho = split.heldout["sessions"]
    got = list(zip(ids[ho.query_rows], ids[ho.target_rows], strict=True))
    assert got == [("002", "005"), ("003", "004"), ("006", "005")]
    assert ho.groups.tolist() == ["s:a", "s:b", "s:c"]
    train = {k: s for k, s in zip(split.train.keys, split.train, strict=True)}
    # the prefix of "a" trains (b and c keep one click: nothing to learn from)
    assert train["h:a"] == ["000", "002"] and "h:b" not in train and "h:c" not in train
    assert len(train) == 6
    seen = []
    real_fit = Prod2Vec.fit
    monkeypatch.setattr(Prod2Vec, "fit", lambda self, s: (seen.extend(list(x) for x in s),
                                                         real_fit(self, s))[1])
    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             variants=["intermediate:text"], n_boot=20, progress=False)
    assert ["000", "002"] in seen and len(seen) == 6
    adjacent = {(x, y) for s in seen for x, y in zip(s, s[1:], strict=False)}
    assert not adjacent & {("002", "005"), ("003", "004"), ("006", "005")}
    assert res["config"]["protocol"] == "leave-last-out"
    # 006 is clicked in no training session: it has no click vector, as in production
    assert res["click_coverage"]["sessions"]["queries_no_clicks"] == pytest.approx(1 / 3)


def test_leak_check_catches_a_whole_held_out_session_in_training(angle_model, angle_sessions):
    split = split_interactions(angle_model.catalog, angle_sessions, test_fraction=0.375)
    full = Sessions.from_lists([["000", "002", "005"]], keys=["h:a"])
    split.train = Sessions(pl.concat([
        split.train.frame.filter(~pl.col("session").str.starts_with("h:")), full.frame]))
    with pytest.raises(ModelError, match=r"Leak: the training corpus holds 3 clicks of held-out "
                                         r"sessions, 2 expected"):
        check_no_leak(split, angle_model.catalog)


def test_leave_one_out_pairs_keeps_every_other_pair_in_training(angle_model):
    ids = [f"00{i}" for i in range(8)]
    pairs = Sessions.from_lists([[a, b] for i, a in enumerate(ids) for b in ids[i + 1:]
                                 if (i + ids.index(b)) % 3])  # 19 distinct pairs
    n_test = 0
    for seed in range(4):
        split = split_interactions(angle_model.catalog, pairs=pairs, test_fraction=0.5, seed=seed)
        cat = angle_model.catalog
        ho = split.heldout["pairs"]
        test = [tuple(cat.ids[[q, t]]) for q, t in zip(ho.query_rows, ho.target_rows, strict=True)]
        train = {frozenset(s) for s in split.train}
        assert len({q for q, _ in test}) == len(test)  # one held-out pair per query product
        for q, t in test:
            assert frozenset((q, t)) not in train  # neither direction trains
            assert any(q in p for p in train)  # the query keeps its other pairs
        assert split.info["pairs"]["n_test_query_products"] == len(test)
        n_test += len(test)
    assert n_test > 0


def test_presence_of_a_modality_cannot_reveal_the_held_out_targets():
    """New products 030-039 appear only in the latest sessions (old → new → new). Titles are identical for
    every product, so text carries no information; with intermediate fusion of text and
    clicks a product *without* a click vector scores 1.0 (text alone) and beats every
    product with one. Holding out whole sessions leaves every target without clicks, and
    that "fusion" finds all of them; leave-last-out keeps their click vectors (they appear
    earlier in held-out sessions, which train), and the trick stops working."""
    n = 40
    ids = [f"{i:03d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ["same title"] * n}))
    rng = np.random.default_rng(0)
    early = [[ids[a], ids[b]] for a, b in (rng.choice(30, 2, replace=False) for _ in range(100))]
    late = [[ids[i % 30], ids[30 + i % 10], ids[30 + (i + 1) % 10]] for i in range(25)]
    sessions = _timed(early + late, list(range(100)) + list(range(200, 225)))
    text = Embeddings(np.ones((n, 4), np.float32), np.ones(n, bool), "constant")
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, workers=1)
    kw = dict(sessions=sessions, test_fraction=0.2, k=10, n_boot=20, progress=False,
              variants=["intermediate:text+clicks"])
    whole = evaluate_retrieval(rec, protocol="whole", **kw)
    honest = evaluate_retrieval(rec, **kw)
    hr = {name: next(r["hit_rate"]["value"] for r in res["rows"]
                     if r["slice"] == "query: with training clicks")
          for name, res in (("whole", whole), ("honest", honest))}
    assert whole["click_coverage"]["sessions"]["targets_no_clicks"] == 1.0
    assert hr["whole"] == 1.0  # the leak, exploited: every old product's next one is found
    cov = honest["click_coverage"]
    assert cov["sessions"]["targets_no_clicks"] <= cov["catalog_no_clicks"]
    assert hr["honest"] < 0.6


def test_protocol_name_is_checked(angle_model, angle_sessions):
    with pytest.raises(ParameterError, match=r"'protocol' parameter of split_interactions\(\) "
                                             r"must be one of \['leave-last-out', 'whole', "
                                             r"'leave-last-out-v24', 'leave-last-out-all-cases', "
                                             r"'leave-last-out-log-catalog'\]"):
        split_interactions(angle_model.catalog, angle_sessions, protocol="random")


def _log_catalog_shop(n_feed: int = 0):
    """40 products — 36 old ones clicked throughout, 037-039 clicked only as the last click of
    the latest sessions, 036 never — plus ``n_feed`` products nobody clicked (a product feed).
    Every title is the same, so under intermediate text + clicks a product without a click
    vector scores 1.0 (text alone) and beats every product with one: a fusion that
    "recognises" the products seen only in held-out sessions."""
    ids = [f"{i:03d}" for i in range(40 + n_feed)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ["same title"] * len(ids)}))
    rng = np.random.default_rng(0)
    early = [[ids[a], ids[b]] for a, b in (rng.choice(36, 2, replace=False) for _ in range(100))]
    late = [[ids[i % 36], ids[(i + 7) % 36], ids[36 + i % 4] if i % 4 and i >= 60
             else ids[(i + 3) % 36]]
            for i in range(100)]  # the test part: the latest 40, 30 of them to 037-039
    sessions = _timed(early + late, list(range(100)) + list(range(200, 300)))
    text = Embeddings(np.ones((len(ids), 4), np.float32), np.ones(len(ids), bool), "constant")
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, workers=1)
    return cat, ids, sessions, rec


def test_a_catalog_of_the_logs_own_products_does_not_score_targets_seen_only_held_out(
        tmp_path):
    """A catalog made of the log's products would not have held 036-039 when the model was
    built (their only clicks are held out): their cases are not scored, so recognising
    products without training clicks wins nothing; a product feed (most products never
    clicked) keeps every case, and ``leave-last-out-all-cases`` is the rule before."""
    from prodfusion.evaluation.report import write_report

    cat, ids, sessions, rec = _log_catalog_shop()
    split = split_interactions(cat, sessions, test_fraction=0.2)
    lc = split.info["log_catalog"]
    assert lc["applied"] and lc["mode"] == "auto"
    assert lc["targets_without_training_interactions"] >= 0.25
    assert lc["catalog_without_training_interactions"] == pytest.approx(4 / 40)
    seen = set(split.train.frame["product_id"].to_list())
    targets = [ids[r] for r in split.heldout["sessions"].target_rows]
    assert targets and all(t in seen for t in targets)
    old = split_interactions(cat, sessions, test_fraction=0.2, protocol="leave-last-out-all-cases")
    n_new = sum(ids[r] >= "036" for r in old.heldout["sessions"].target_rows)
    assert n_new > 0 and lc["n_cases_dropped"] == {"sessions": n_new}
    assert len(old.heldout["sessions"]) == len(split.heldout["sessions"]) + n_new
    assert split.info["sessions"]["n_test_pairs"] == len(split.heldout["sessions"])

    kw = dict(sessions=sessions, test_fraction=0.2, k=5, n_boot=20, progress=False,
              variants=["intermediate:text+clicks"])
    hr = {proto: next(r["hit_rate"]["value"] for r in evaluate_retrieval(
              rec, protocol=proto, **kw)["rows"] if r["slice"] == "all")
          for proto in ("leave-last-out", "leave-last-out-all-cases")}
    assert hr["leave-last-out-all-cases"] >= 0.3  # the four new products fill the top 5
    assert hr["leave-last-out"] < 0.1, hr  # its cases: targets with clicks, which it ranks last
    said: list[str] = []
    res = evaluate_retrieval(rec, **{**kw, "progress": said.append})
    assert f"{n_new} held-out case(s) not scored: their target has no interaction outside the " \
           "held-out part" in said[0] and "leave-last-out-all-cases" in said[0]
    write_report(res, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "A catalog made of the log's own products" in md and f"{n_new:,} sessions dropped" in md
    rep = replay("cooc", "intermediate:text+clicks", model=rec, sessions=sessions,
                 test_fraction=0.2, k=5, progress=False)  # the replay holds out the same
    assert rep["sources"]["sessions"]["n_views"] == len(split.heldout["sessions"])
    write_report(rep, tmp_path / "replay")
    assert f"{n_new:,} sessions dropped" in (tmp_path / "replay" / "report.md").read_text()

    # an earlier window of a longer log (tune --rolling, benchmarks/rolling_origin.py): the
    # catalog also holds 40 products the log clicks only later; by this window's data alone
    # they look like a product feed's unclicked ones (55 % of the catalog without training
    # clicks), and the model's click counts say they are not
    later = [f"{i:03d}" for i in range(40, 80)]
    cat2 = Catalog(pl.DataFrame({"product_id": ids + later, "title": ["same title"] * 80}))
    in_log = set(sessions.frame["product_id"].to_list()) | set(later)  # the whole log's
    clicked = np.array([p in in_log for p in ids + later])
    alone = split_interactions(cat2, sessions, test_fraction=0.2)
    assert not alone.info["log_catalog"]["applied"]
    window = split_interactions(cat2, sessions, test_fraction=0.2, clicked=clicked)
    wl = window.info["log_catalog"]
    assert wl["applied"] and wl["later_products_left_out"]
    assert wl["catalog_share_compared"] == pytest.approx(4 / 40)
    assert wl["n_cases_dropped"] == {"sessions": n_new}

    # every session two products clicked nowhere else: nothing a log-made catalog could score
    fresh = [[f"{i:03d}", f"{i + 60:03d}"] for i in range(60)]
    cat3 = Catalog(pl.DataFrame({"product_id": [f"{i:03d}" for i in range(120)],
                                 "title": ["t"] * 120}))
    with pytest.raises(DataError, match=r"No held-out case is left: the target of every one "
                                        r"\(12\) has no interaction outside the held-out part"
                                        r".*--protocol leave-last-out-all-cases"):
        split_interactions(cat3, _timed(fresh, list(range(60))), test_fraction=0.2,
                           protocol="leave-last-out-log-catalog")
    assert not split_interactions(cat3, _timed(fresh, list(range(60))), test_fraction=0.2
                                  ).info["log_catalog"]["applied"]  # 12 cases: too few to say

    cat, ids, sessions, rec = _log_catalog_shop(n_feed=200)  # a product feed: every case
    split = split_interactions(cat, sessions, test_fraction=0.2)
    assert not split.info["log_catalog"]["applied"]
    assert len(split.heldout["sessions"]) == len(old.heldout["sessions"])
    forced = split_interactions(cat, sessions, test_fraction=0.2,
                                protocol="leave-last-out-log-catalog")
    assert forced.info["log_catalog"]["applied"]
    assert len(forced.heldout["sessions"]) == len(old.heldout["sessions"]) - n_new


# ----------------------------------------------------------------- flags
def _row(variant, sl, n, hr, mods=("text", "image")):
    return {"variant": variant, "source": "s", "slice": sl, "n": n, "modalities": list(mods),
            "hit_rate": {"value": hr}}


def test_a_gain_made_in_one_slice_only_is_flagged():
    """Fusion 0.30 vs text 0.25 overall: +0.125 on the 40 % of targets without clicks,
    -0.0 on the 60 % with them -> flagged; the query-side split is even -> not flagged."""
    rows = []
    for v, mods, vals in (("fused", ("text", "clicks"), (0.30, 0.25, 0.375, 0.30, 0.30)),
                          ("text", ("text",), (0.25, 0.25, 0.25, 0.25, 0.25))):
        rows += [_row(v, "all", 100, vals[0], mods),
                 _row(v, "target: with training clicks", 60, vals[1], mods),
                 _row(v, "target: no training clicks", 40, vals[2], mods),
                 _row(v, "query: with training clicks", 50, vals[3], mods),
                 _row(v, "query: no training clicks", 50, vals[4], mods)]
    flags = slice_flags(rows)
    assert len(flags) == 1
    f = flags[0]
    assert (f["variant"], f["comparator"], f["slice"]) == ("fused", "text",
                                                           "target: no training clicks")
    assert f["gain"] == pytest.approx(0.05) and f["slice_contribution"] == pytest.approx(0.05)
    # lists a fraction of one case apart (tie-aware means): no gain, no flag, even where
    # that fraction comes from one slice
    twin = [{**r, "variant": "twin", "modalities": ["text", "clicks"], "hit_rate": {
        "value": r["hit_rate"]["value"] + (0.004 * r["n"] / 100 if "with training" in
                                           r["slice"] or r["slice"] == "all" else 0.0)}}
            for r in rows if r["variant"] == "text"]
    assert [f["variant"] for f in slice_flags(rows + twin)] == ["fused"]


def _case(hit, ndcg, groups=None, slices=None):
    hit, ndcg = np.asarray(hit, float), np.asarray(ndcg, float)
    return {"hit": hit, "ndcg": ndcg,
            "groups": np.arange(len(hit)) if groups is None else np.asarray(groups),
            "slices": slices or {"all": np.ones(len(hit), bool)}}


def _nrow(variant, mods, ndcg):
    return {"variant": variant, "source": "s", "slice": "all", "modalities": list(mods),
            "ndcg": {"value": ndcg}}


def test_paired_differences_by_hand():
    """Cases 0..5. Fused hits 0-3 (ranks 1, 1, 2, 1), text alone hits 0, 1 and 4; the
    reference 'cooc' hits 0-3 at the same ranks as the fusion."""
    n2 = 1 / np.log2(3)
    cases = {("fused", "s"): _case([1, 1, 1, 1, 0, 0], [1, 1, n2, 1, 0, 0]),
             ("text", "s"): _case([1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 0]),
             ("cooc", "s"): _case([1, 1, 1, 1, 0, 0], [1, 1, n2, 1, 0, 0])}
    rows = [_nrow("fused", ("text", "clicks"), (3 + n2) / 6), _nrow("text", ("text",), 0.5),
            _nrow("cooc", (), (3 + n2) / 6)]
    out = {d["comparator"]: d for d in paired_differences(rows, cases, references=["cooc"],
                                                          n_boot=300)}
    assert set(out) == {"text", "cooc"}  # singles and references are comparators, not rows
    t = out["text"]
    assert (t["kind"], t["slice"], t["n"]) == ("best single modality", "all", 6)
    assert t["hit_rate"]["value"] == pytest.approx(1 / 6)  # (+1 +1 -1) / 6
    assert t["ndcg"]["value"] == pytest.approx((n2 + 1 - 1) / 6)
    assert (t["only_variant"], t["only_comparator"]) == (2, 1)
    assert t["ndcg"]["ci_lo"] < t["ndcg"]["value"] < t["ndcg"]["ci_hi"]
    assert t["verdict"] == "inside the noise"
    c = out["cooc"]  # identical on every case
    assert c["ndcg"]["value"] == 0 and (c["only_variant"], c["only_comparator"]) == (0, 0)
    assert c["verdict"] == "equal"


def test_a_slice_is_also_compared_with_its_own_best_single_modality():
    """Overall, 'text' is the best single modality; among the cold cases (4, 5) 'cat' is.
    The fusion is compared with 'text' everywhere and, in the cold slice, with 'cat' too."""
    cold = np.array([0, 0, 0, 0, 1, 1], bool)
    sl = {"all": np.ones(6, bool), "target: no training clicks": cold,
          "target: with training clicks": ~cold}
    vals = {"fused": [1, 1, 1, 0, 0, 0], "text": [1, 1, 0, 0, 0, 0], "cat": [0, 0, 0, 0, 1, 1]}
    cases = {(v, "s"): _case(x, x, slices=sl) for v, x in vals.items()}
    mods = {"fused": ("text", "cat"), "text": ("text",), "cat": ("cat",)}
    rows = [{"variant": v, "source": "s", "slice": name, "modalities": list(mods[v]),
             "ndcg": {"value": float(np.asarray(x, float)[m].mean())}}
            for v, x in vals.items() for name, m in sl.items()]
    out = paired_differences(rows, cases, n_boot=200)
    got = {(d["slice"], d["comparator"], d["kind"]) for d in out}
    assert got == {("all", "text", "best single modality"),
                   ("target: with training clicks", "text", "best single modality"),
                   ("target: no training clicks", "text", "best single modality"),
                   ("target: no training clicks", "cat", "best single modality in this slice")}
    d = next(d for d in out if d["comparator"] == "cat")
    assert d["ndcg"]["value"] == pytest.approx(-1.0) and d["only_comparator"] == 2


def test_paired_differences_see_what_unpaired_intervals_miss():
    """A fusion that finds 12 more of 400 cases and loses none: its unpaired interval
    overlaps the comparator's, the paired one excludes 0; the mirror case is 'below'."""
    from prodfusion.evaluation.metrics import bootstrap_ci

    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.3).astype(float)
    extra = np.flatnonzero(base == 0)[:12]
    better = base.copy()
    better[extra] = 1
    lo_b, hi_b = bootstrap_ci(better)[1:]
    lo_a, hi_a = bootstrap_ci(base)[1:]
    assert lo_b < hi_a  # the unpaired intervals overlap
    sl = {"all": np.ones(400, bool), "target: no training clicks": np.arange(400) < 200}
    cases = {("up", "s"): _case(better, better, slices=sl),
             ("down", "s"): _case(base, base, slices=sl),
             ("one", "s"): _case(base, base, slices=sl)}
    rows = [_nrow("up", ("a", "b"), better.mean()), _nrow("one", ("a",), base.mean()),
            _nrow("down", ("a", "b"), base.mean() - 1e-9)]
    rows += [dict(r, slice="target: no training clicks") for r in rows]
    cases[("down", "s")]["ndcg"] = base - np.isin(np.arange(400), np.flatnonzero(base)[:12])
    out = {(d["variant"], d["slice"]): d for d in paired_differences(rows, cases, n_boot=500)}
    assert out[("up", "all")]["verdict"] == "above"
    assert out[("up", "all")]["ndcg"]["value"] == pytest.approx(12 / 400)
    assert out[("down", "all")]["verdict"] == "below"
    assert out[("up", "target: no training clicks")]["n"] == 200


def test_evaluate_retrieval_reports_paired_differences(angle_model, angle_sessions, tmp_path):
    from prodfusion.evaluation.report import write_report

    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             variants=["intermediate:text", "intermediate:text+image", "cooc"],
                             n_boot=50, progress=False)
    by = {(r["variant"], r["slice"]): r for r in res["rows"]}
    fused = next(r["variant"] for r in res["rows"] if len(r["modalities"]) == 2)
    d = {x["comparator"]: x for x in res["paired"] if x["slice"] == "all"}
    assert set(d) == {"cooc", next(r["variant"] for r in res["rows"]
                                   if r["modalities"] == ["text"])}
    for comp, x in d.items():  # the paired mean is the difference of the reported means
        assert x["variant"] == fused
        assert x["ndcg"]["value"] == pytest.approx(
            by[(fused, "all")]["ndcg"]["value"] - by[(comp, "all")]["ndcg"]["value"])
        assert x["n"] == by[(fused, "all")]["n"]
    write_report(res, tmp_path)
    assert "Paired differences" in (tmp_path / "report.md").read_text()


# ----------------------------------------------------------------- reference baselines
def test_cooc_and_popular_rank_as_counted_by_hand(shop):
    # co-occurrences of p0: p5 in 3 sessions, p3 in 2; nothing else
    c = cooc_matrix(shop.train_sessions_, shop.catalog).toarray()
    assert c[0].tolist() == [0, 0, 0, 2, 0, 3] and np.array_equal(c, c.T)
    rows = Reference("cooc").recommend(shop, np.array([0, 1, 4]), 3)
    assert rows.tolist() == [[5, 3, -1], [2, -1, -1], [-1, -1, -1]]
    # popularity: p0 4, p5 4, p3 3, p2 1, p1 1 -> ties by row
    assert popularity(shop.train_sessions_, shop.catalog).tolist() == [4, 1, 1, 3, 0, 4]
    assert Reference("popular").recommend(shop, np.array([0, 4]), 3).tolist() == [
        [5, 3, 1], [0, 5, 3]]


def test_tfidf_and_cooc_fallback_rank_as_expected(shop):
    rows = Reference("tfidf").recommend(shop, np.array([0]), 5)[0].tolist()
    # p4 has the same title (cosine 1), then the plural, then the other colour; 'zzzz' and
    # 'wool hat' share no 3-5-gram with it (char_wb pads words with spaces: ' hat' vs ' sh')
    assert rows[:3] == [4, 1, 2] and 3 not in rows
    both = Reference("cooc+tfidf").recommend(shop, np.array([0, 4]), 4).tolist()
    assert both[0] == [5, 3, 4, 1]  # cooc first (p5, p3), then TF-IDF without repeats
    assert both[1][:3] == [0, 1, 2]  # p4 was never clicked: TF-IDF only
    # a variation group is never recommended (p0 and p4 share g0)
    g = np.array([0, 1, 2, 3, 0, 5])
    assert 4 not in Reference("tfidf").recommend(shop, np.array([0]), 5, diff_code=g)[0]


def test_cooc_then_same_category_popular_ranks_as_counted_by_hand(shop, shop_with_categories):
    # categories: p0 p1 p2 shirts, p3 none, p4 p5 hats; popularity [4, 1, 1, 3, 0, 4]
    rec = shop_with_categories
    rows = Reference("cooc+category").recommend(rec, np.array([0, 4, 1, 3]), 4).tolist()
    assert rows[0] == [5, 3, 1, 2]  # cooc (p5 3, p3 2), then shirts p1, p2 (tie: by row)
    assert rows[1] == [5, -1, -1, -1]  # never clicked: its category only (p5)
    assert rows[2] == [2, 0, -1, -1]  # cooc p2, then shirt p0 (p2 already listed)
    assert rows[3] == [0, 5, -1, -1]  # no category: cooc only (p0 2, p5 2: tie by row)
    assert parse_variant("cooc+category") == Reference("cooc+category")
    with pytest.raises(ParameterError, match="needs the catalog's categories"):
        Reference("cooc+category").recommend(shop, np.array([0]), 3)


def test_category_bestsellers_rank_as_counted_by_hand(shop, shop_with_categories):
    # categories: p0 p1 p2 shirts, p3 none, p4 p5 hats; popularity [4, 1, 1, 3, 0, 4]
    rec = shop_with_categories
    rows = Reference("popular+category").recommend(rec, np.array([0, 4, 1, 3]), 3).tolist()
    assert rows[0] == [1, 2, -1]  # the other shirts, most clicked first (1, 1: tie by row)
    assert rows[1] == [5, -1, -1]  # the other hat
    assert rows[2] == [0, 2, -1]  # p0 (4 clicks) before p2 (1)
    assert rows[3] == [-1, -1, -1]  # no category: nothing (no co-occurrence level)
    assert parse_variant("Popular+Category") == Reference("popular+category")
    with pytest.raises(ParameterError, match="'popular\\+category' baseline needs"):
        Reference("popular+category").recommend(shop, np.array([0]), 3)


def test_references_are_variants_everywhere(angle_model, angle_sessions):
    assert parse_variant("Cooc+TFIDF") == Reference("cooc+tfidf")
    assert parse_variant("popular", default_model="m").model == "m"
    res = replay("cooc", "intermediate:text", model=angle_model, sessions=angle_sessions,
                 test_fraction=0.375, k=3, progress=False)
    # training: t1..t5 + prefix of a (000 002). Views 002→005, 003→004, 006→005:
    # cooc(002) = 000 (×2), 001, 003; cooc(003) = 002; cooc(006) = nothing -> no click
    assert res["sources"]["sessions"]["total"]["clicks_a"] == 0
    assert res["config"]["a"]["reference"] == "cooc"
    with pytest.raises(ParameterError, match="The 'cooc' baseline needs the training sessions"):
        Reference("cooc").recommend(heldout_recommender(angle_model, None), np.array([0]), 3)


def _groups_shop():
    """40 products in 10 groups of 4; 32 training sessions stay inside a group; the latest 8
    sessions cross groups (``[p00, p05, p00]``-like): their last transition's pair co-occurs
    nowhere else."""
    n = 40
    ids = [f"p{i:02d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(n)]}))
    train = [[ids[4 * g + j] for j in (0, 1, 2)] for g in range(10)] * 3 + \
        [[ids[1], ids[2]], [ids[5], ids[6]]]
    cross = [(0, 5), (8, 13), (16, 21), (24, 29), (32, 37), (1, 10), (9, 18), (17, 26)]
    return cat, ids, train, cross


def _cooc_hit_rate(rec, **kw) -> float:
    res = evaluate_retrieval(rec, test_fraction=0.2, k=15, n_boot=10, progress=False,
                             variants=["cooc"], **kw)
    return next(r["hit_rate"]["value"] for r in res["rows"]
                if r["variant"] == "cooc" and r["slice"] == "all" and r["source"] == "sessions")


def test_a_revisit_target_does_not_train_through_its_own_session():
    """``[p00, p05, p00]`` held out as ``p05 → p00``: the prefix ``[p00, p05]`` trained, so
    the held-out pair co-occurred in training and `cooc` found every target (1.0, the
    twenty-fourth session's rule, kept as ``leave-last-out-v24``); the prefix now trains
    without its target, and the check refuses a split where it does not."""
    cat, ids, train, cross = _groups_shop()
    test = [[ids[a], ids[b], ids[a]] for a, b in cross]
    sessions = _timed(train + test, list(range(len(train))) + [1000 + i for i in range(8)])
    text = Embeddings(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32),
                      np.ones(40, bool), "t")
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, workers=1)
    assert _cooc_hit_rate(rec, sessions=sessions, protocol="leave-last-out-v24") == 1.0
    assert _cooc_hit_rate(rec, sessions=sessions) == 0.0
    split = split_interactions(cat, sessions, test_fraction=0.2)
    assert split.info["sessions"]["n_revisit_target_clicks_removed_from_prefixes"] == 8
    check_no_leak(split, cat)
    old = split_interactions(cat, sessions, test_fraction=0.2, protocol="leave-last-out")
    old.train = split_interactions(cat, sessions, test_fraction=0.2,
                                   protocol="leave-last-out-v24").train
    old.info["sessions"]["expected_prefix_clicks"] = int(
        old.train.frame.filter(pl.col("session").str.starts_with("h:")).height)
    with pytest.raises(ModelError, match=r"8 held-out session target\(s\) are in the training "
                                         r"prefix of their own session"):
        check_no_leak(old, cat)


def test_a_pair_equal_to_a_held_out_session_transition_does_not_train():
    """An untimed pairs file holding the test period's co-purchases (H&M's copurchase.csv
    held 31 % of the held-out baskets' transitions): such a pair trains no more."""
    cat, ids, train, cross = _groups_shop()
    test = [[ids[a], ids[b]] for a, b in cross]
    sessions = _timed(train + test, list(range(len(train))) + [1000 + i for i in range(8)])
    in_group = [[ids[4 * g + i], ids[4 * g + j]] for g in range(10) for i in range(4)
                for j in range(4) if i < j]
    pairs = Sessions.from_lists(in_group + [[ids[a], ids[b]] for a, b in cross])
    text = Embeddings(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32),
                      np.ones(40, bool), "t")
    rec = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=1, workers=1)
    kw = dict(sessions=sessions, pairs=pairs)
    assert _cooc_hit_rate(rec, **kw, protocol="leave-last-out-v24") == 1.0
    assert _cooc_hit_rate(rec, **kw) == 0.0
    split = split_interactions(cat, sessions, pairs, test_fraction=0.2)
    assert split.info["pairs"]["n_train_pairs_dropped_as_held_out_session_transitions"] == 8
    check_no_leak(split, cat)


def test_pair_queries_are_counted_over_both_columns():
    """A product only ever in a pairs file's second column can be a test query now (the
    twenty-fourth session's rule counted partners in the first column only)."""
    from prodfusion.evaluation.protocol import leave_one_out_pairs
    from prodfusion.evaluation.split import _hash_unit

    pf = pl.DataFrame({"session": ["0", "1", "2"], "a": ["x", "y", "z"], "b": ["h", "h", "h"]})
    for undirected, want in ((True, ["h"]), (False, [])):
        _, _, _, info = leave_one_out_pairs(pf, 0.999, 0, _hash_unit, undirected=undirected)
        assert info["n_eligible_query_products"] == len(want)


def test_category_references_are_skipped_with_a_note_on_a_catalog_without_categories(
        shop, shop_with_categories, capsys):
    from argparse import Namespace

    from prodfusion.cli.evaluate_steps import _runnable_variants

    args = Namespace(variants=["popular+category", "popular", "cooc+category"],
                     interactions="clicks.csv", pairs=None)
    assert _runnable_variants(args, shop) == ["popular"]  # the run goes on without them
    assert len(args.skipped) == 2 and "build --category-col" in args.skipped[0]
    assert "skipped: retrieval variant 'popular+category'" in capsys.readouterr().err
    args = Namespace(variants=["popular+category"], interactions="clicks.csv", pairs=None)
    assert _runnable_variants(args, shop_with_categories) == ["popular+category"]
