"""Held-out retrieval and the offline replay on planted cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ModelError, ParameterError
from prodfusion.evaluation.replay import ctr_table, replay
from prodfusion.evaluation.retrieval import (
    BASELINE,
    HeldOut,
    Split,
    check_no_leak,
    evaluate_retrieval,
    heldout_recommender,
    parse_variant,
    split_interactions,
)
from prodfusion.recommender import Recommender
from prodfusion.variants import Variant

HELD_OUT = {("000", "002"), ("002", "005"), ("003", "004"), ("006", "005")}


def _adjacent_pairs(sessions) -> set[tuple[str, str]]:
    out = set()
    for s in sessions:
        out |= {(a, b) for a, b in zip(s, s[1:], strict=False)}
        out |= {(b, a) for a, b in zip(s, s[1:], strict=False)}
    return out


# ----------------------------------------------------------------- split and leakage
def test_time_split_holds_out_the_latest_sessions(angle_model, angle_sessions):
    split = split_interactions(angle_model.catalog, angle_sessions, test_fraction=0.375,
                               protocol="whole")
    assert sorted(split.test_session_keys) == ["s:a", "s:b", "s:c"]
    assert len(split.train) == 5 and not set(split.train.keys) & set(split.test_session_keys)
    ho = split.heldout["sessions"]
    ids = angle_model.catalog.ids
    got = set(zip(ids[ho.query_rows], ids[ho.target_rows], strict=True))
    assert got == HELD_OUT
    assert split.info["sessions"]["train_last_start"] < split.info["sessions"]["test_first_start"]


def test_evaluation_trains_prod2vec_on_the_training_part_only(angle_model, angle_sessions,
                                                               monkeypatch):
    """Fails if any held-out pair (or held-out session) reaches the click encoder."""
    from prodfusion.encoders import Prod2Vec

    seen_by_encoder = []
    real_fit = Prod2Vec.fit

    def spy(self, sessions):
        seen_by_encoder.extend(list(s) for s in sessions)
        return real_fit(self, sessions)

    monkeypatch.setattr(Prod2Vec, "fit", spy)
    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             variants=["intermediate:text"], n_boot=50, progress=False,
                             protocol="whole")
    assert len(seen_by_encoder) == 5
    assert not _adjacent_pairs(seen_by_encoder) & HELD_OUT
    assert res["split"]["leak_check"]["test_sessions_checked"] == 3
    # 006 is clicked only in a held-out session: the retrained model has no vector for it.
    ev = heldout_recommender(angle_model, split_interactions(
        angle_model.catalog, angle_sessions, test_fraction=0.375, protocol="whole").train)
    assert ev.embeddings_["clicks"].mask.tolist() == [True] * 6 + [False, True]


def test_the_held_out_recommender_searches_as_the_model_does(angle_model, angle_sessions):
    """The evaluated recommender keeps the model's index choice: a model built with
    `--index exact` is scored exactly even where 'auto' would pick an approximate index (the
    whole DIGINETICA catalog was scored through HNSW before the seventh session)."""
    from dataclasses import replace

    from prodfusion.recommender import Recommender

    train = split_interactions(angle_model.catalog, angle_sessions, test_fraction=0.375).train
    small = replace(angle_model.index_settings, auto_hnsw_from=4)
    for index in ("exact", "auto"):
        rec = Recommender.from_embeddings(angle_model.catalog, dict(angle_model.embeddings_),
                                          fusion="intermediate", index=index,
                                          index_settings=small)
        rec.prod2vec = angle_model.prod2vec
        ev = heldout_recommender(rec, train)
        assert (ev.index, ev.index_settings) == (index, small)


def test_pair_split_keeps_both_directions_together_and_drops_seen_pairs(angle_model):
    pairs = Sessions.from_lists(
        [["000", "001"], ["001", "000"], ["002", "003"], ["003", "002"], ["004", "005"],
         ["005", "006"], ["006", "007"], ["000", "007"], ["001", "004"], ["002", "006"]],
    )
    # two baskets with times: the earlier one (000, 005, 007) is the training basket
    baskets = Sessions(pl.DataFrame({
        "session": ["x", "x", "x", "y", "y"], "position": [0, 1, 2, 0, 1],
        "product_id": ["000", "005", "007", "001", "002"], "ts": [1.0, 1.0, 1.0, 2.0, 2.0],
    }))
    n_dropped = 0
    for seed in range(5):
        split = split_interactions(angle_model.catalog, pairs=pairs, test_fraction=0.5, seed=seed,
                                   protocol="whole")
        ids = angle_model.catalog.ids
        ho = split.heldout["pairs"]
        test = {frozenset(p) for p in zip(ids[ho.query_rows], ids[ho.target_rows], strict=True)}
        train = {frozenset(s) for s in split.train}
        assert not test & train  # (a, b) and (b, a) never straddle the split
        assert check_no_leak(split, angle_model.catalog)["test_pairs_checked"] == len(ho)
        # with baskets: a held-out pair co-occurring in a training basket is not unseen
        both = split_interactions(angle_model.catalog, sessions=baskets, pairs=pairs,
                                  test_fraction=0.5, seed=seed, protocol="whole")
        ho2 = both.heldout["pairs"]
        t2 = {frozenset(p) for p in zip(ids[ho2.query_rows], ids[ho2.target_rows], strict=True)}
        basket_pairs = {frozenset(("000", "005")), frozenset(("000", "007")),
                        frozenset(("005", "007"))}
        assert not t2 & basket_pairs
        dropped = both.info["pairs"]["n_test_pairs_seen_in_training_dropped"]
        assert dropped == len(test & basket_pairs)
        n_dropped += dropped
    assert n_dropped > 0  # the seeds above do exercise the filter


def test_check_no_leak_catches_a_leaked_pair_and_session(angle_model):
    cat = angle_model.catalog
    train = Sessions.from_lists([["000", "001"], ["003", "004", "005"]], keys=["s:x", "p:1"])
    ho = HeldOut("pairs", cat.rows_of(["005", "003"]), cat.rows_of(["003", "001"]),
                 np.array(["005", "003"], dtype=object))
    split = Split(train=train, heldout={"pairs": ho}, test_session_keys=[], info={})
    with pytest.raises(ModelError, match=r"Leak: 1 held-out pair\(s\) co-occur in a training "
                                         r"session \(first: '005' and '003'\)"):
        check_no_leak(split, cat)
    split = Split(train=train, heldout={}, test_session_keys=["s:x"], info={})
    with pytest.raises(ModelError, match=r"Leak: 1 held-out session\(s\) are in the training "
                                         r"corpus \(first: 's:x'\)"):
        check_no_leak(split, cat)


def test_split_needs_data_and_a_fraction(angle_model, angle_sessions):
    with pytest.raises(ParameterError, match="needs sessions and/or pairs"):
        split_interactions(angle_model.catalog)
    with pytest.raises(ParameterError, match=r"'test_fraction' parameter of split_interactions\(\) "
                                             r"must be a float in \(0, 1\)\. Got 1\.5 instead\."):
        split_interactions(angle_model.catalog, angle_sessions, test_fraction=1.5)


# ----------------------------------------------------------------- retrieval, planted
def test_retrieval_metrics_on_the_planted_angles(angle_model, angle_sessions):
    """Text angles 0,10,25,45,70,100,135,178 degrees; k = 3; exclusions of the query itself.

    000→002: neighbours of 000 are 001, 002, 003 -> rank 2
    002→005: 001, 003, 000 -> miss
    003→004: 002, 004, 001 -> rank 2
    006→005: 005, 007, 004 -> rank 1
    """
    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             variants=["intermediate:text"], n_boot=200, progress=False,
                             protocol="whole")
    rows = {(r["source"], r["slice"]): r for r in res["rows"]}
    allr = rows[("sessions", "all")]
    assert allr["n"] == 4 and allr["n_groups"] == 3
    assert allr["hit_rate"]["value"] == pytest.approx(3 / 4)
    assert allr["mrr"]["value"] == pytest.approx((0.5 + 0 + 0.5 + 1) / 4)
    assert allr["ndcg"]["value"] == pytest.approx((2 / math.log2(3) + 1) / 4)
    # categories: tops 000-002, shoes 003-004, bags 005-007
    assert allr["category_precision"]["value"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 2 / 3) / 4)
    assert allr["coverage"] == pytest.approx(7 / 8)
    assert allr["hit_rate"]["ci_lo"] <= 0.75 <= allr["hit_rate"]["ci_hi"]
    # cold-start slices: 006 has no training clicks, 003 has no photo
    cold = rows[("sessions", "query: no training clicks")]
    assert cold["n"] == 1 and cold["hit_rate"]["value"] == 1.0
    warm = rows[("sessions", "query: with training clicks")]
    assert warm["n"] == 3 and warm["hit_rate"]["value"] == pytest.approx(2 / 3)
    noimg = rows[("sessions", "query: no image")]
    assert noimg["n"] == 1 and noimg["mrr"]["value"] == 0.5
    # target slices: targets 002, 005, 004, 005 all have training clicks; 003 (no photo) is
    # never a target
    assert rows[("sessions", "target: with training clicks")]["n"] == 4
    assert rows[("sessions", "target: no training clicks")]["n"] == 0
    assert rows[("sessions", "target: no image")]["n"] == 0


def test_kept_cases_are_the_rows_and_the_paired_differences_per_case(angle_model, angle_sessions):
    """``keep_cases`` returns what the rows and the paired rows were computed from (what
    ``benchmarks/rolling_origin.py`` pools over test windows); by default nothing extra."""
    from prodfusion.evaluation.protocol import paired_differences

    kw = dict(sessions=angle_sessions, test_fraction=0.375, k=3, n_boot=200, progress=False,
              protocol="whole", variants=["intermediate:text", "intermediate:text+image",
                                          "popular"])
    assert "cases" not in evaluate_retrieval(angle_model, **kw)
    res = evaluate_retrieval(angle_model, keep_cases=True, **kw)
    labels = {r["variant"] for r in res["rows"]}
    assert set(res["cases"]) == {(v, "sessions") for v in labels}
    for r in res["rows"]:
        c = res["cases"][(r["variant"], r["source"])]
        sel = c["slices"][r["slice"]]
        assert sel.sum() == r["n"]
        if r["n"]:
            assert c["hit"][sel].mean() == pytest.approx(r["hit_rate"]["value"])
            assert c["ndcg"][sel].mean() == pytest.approx(r["ndcg"]["value"])
    again = paired_differences(res["rows"], res["cases"], references=["popular"],
                               metric="ndcg", n_boot=200)
    assert again == res["paired"] and again


def test_default_variants_cover_every_combination_and_the_baseline(angle_model, angle_sessions):
    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             n_boot=20, progress=False, protocol="whole")
    labels = {v["label"] for v in res["config"]["variants"]}
    # the catalog has categories: the category's lists are references too
    assert angle_model.catalog.has_categories
    assert len(labels) == 7 * 3 + 1 + 6 and BASELINE.label in labels
    assert {"cooc", "tfidf", "popular", "cooc+tfidf", "cooc+category",
            "popular+category"} <= labels
    assert res["config"]["modalities"]["clicks"]["n_present"] == 7
    from dataclasses import replace

    bare = replace(angle_model.catalog,
                   frame=angle_model.catalog.frame.drop("category"))  # none: not shown
    angle_model.catalog, before = bare, angle_model.catalog
    try:
        res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                                 n_boot=20, progress=False, protocol="whole")
    finally:
        angle_model.catalog = before
    labels = {v["label"] for v in res["config"]["variants"]}
    assert len(labels) == 7 * 3 + 1 + 4 and "popular+category" not in labels


def test_baseline_falls_back_to_text_for_products_without_clicks():
    from prodfusion.data.catalog import Catalog

    n = 6
    cat = Catalog(pl.DataFrame({"product_id": [str(i) for i in range(n)],
                                "title": ["x"] * n}))
    text = np.eye(n, dtype=np.float32) + 0.01
    text[0, 5] = 0.9  # text neighbour of 0 is 5
    text[1, 2] = 0.9  # text neighbour of 1 is 2
    clicks = np.eye(n, dtype=np.float32) + 0.01
    clicks[1, 3] = 0.9  # click neighbour of 1 is 3
    cmask = np.array([False, True, False, True, True, False])
    rec = Recommender.from_embeddings(cat, {
        "text": Embeddings(text, np.ones(n, bool), "t"),
        "clicks": Embeddings(clicks, cmask, "c"),
    }, fusion="intermediate")
    rows = BASELINE.recommend(rec, np.array([0, 1]), k=4)
    assert rows[0, 0] == 5  # no clicks: text neighbours
    assert rows[1, 0] == 3  # clicks: click neighbours first...
    assert set(rows[1, :2]) == {3, 4}  # ...only 2 other products have clicks...
    assert rows[1, 2] == 2 and -1 not in rows  # ...then the list is filled from text


def test_parse_variant_forms(tmp_path):
    assert parse_variant("baseline") is BASELINE
    v = parse_variant("late:image+text")
    assert (v.fusion, v.modalities) == ("late", ("text", "image"))
    (tmp_path / "b.yaml").write_text("fusion: early\nmodalities: [text, clicks]\nmodel: m\n")
    y = parse_variant(str(tmp_path / "b.yaml"))
    assert y.modalities == ("text", "clicks") and y.model == str((tmp_path / "m").resolve())
    (tmp_path / "b.toml").write_text('baseline = true\nname = "old"\n')
    t = parse_variant(str(tmp_path / "b.toml"))
    assert t.fallback == ("text",) and t.label == "old"
    (tmp_path / "b.json").write_text('{"fusion": "early", "colour": 1}')
    with pytest.raises(ParameterError, match=r"unknown config key\(s\) \['colour'\]"):
        parse_variant(str(tmp_path / "b.json"))
    with pytest.raises(DataError, match="variant config file does not exist"):
        parse_variant(str(tmp_path / "nope.yaml"))
    with pytest.raises(ParameterError, match=r"The 'fusion' parameter of Variant\(\) must be one of"):
        parse_variant("mean:text")
    with pytest.raises(ParameterError, match=r"The 'config' parameter of parse_variant\(\)"):
        parse_variant("text")


# ----------------------------------------------------------------- replay, planted
def test_replay_ctr_equals_the_hand_computed_value(angle_model, angle_sessions):
    """A = text (see the retrieval test): clicks on views 1, 3, 4 -> CTR 3/4.

    B = photos at 0,40,100,(none),160,95,30,10 degrees; 003 has no photo, so it gets nothing
    and is never shown:
    000→002: 007, 006, 001 -> no;   002→005: 005, then 001 and 004 (tied) -> click;
    003→004: no photo, nothing shown -> no;   006→005: 001, 007, 000 -> no.   CTR 1/4.
    """
    res = replay("intermediate:text", "intermediate:image", model=angle_model,
                 sessions=angle_sessions, test_fraction=0.375, k=3, progress=False,
                 protocol="whole")
    t = res["sources"]["sessions"]
    tot = t["total"]
    assert (tot["views_a"], tot["clicks_a"], tot["views_b"], tot["clicks_b"]) == (4, 3, 4, 1)
    assert tot["ctr_a"] == 0.75 and tot["ctr_b"] == 0.25 and tot["diff"] == -0.5
    assert (tot["only_a"], tot["only_b"]) == (3, 1)
    assert tot["mcnemar_p"] == pytest.approx(0.625)  # 2 * P(X <= 1), X ~ Bin(4, 1/2)
    per = {c["category"]: c for c in t["categories"]}
    assert (per["tops"]["ctr_a"], per["tops"]["ctr_b"]) == (0.5, 0.5)
    assert (per["shoes"]["ctr_a"], per["shoes"]["ctr_b"]) == (1.0, 0.0)
    assert (per["bags"]["ctr_a"], per["bags"]["ctr_b"]) == (1.0, 0.0)
    assert t["categories"][0]["category"] == "tops"  # most viewed first
    assert res["config"]["a"]["label"] == "intermediate:text"


def test_replay_split_design_assigns_each_session_to_one_variant(angle_model, angle_sessions):
    res = replay("intermediate:text", "intermediate:text", model=angle_model,
                 sessions=angle_sessions, test_fraction=0.375, k=3, design="split",
                 progress=False, protocol="whole")
    tot = res["sources"]["sessions"]["total"]
    assert tot["views_a"] + tot["views_b"] == 4
    assert "srm" in res["sources"]["sessions"] and "only_a" not in tot


def test_ctr_table_counts_only_views_shown_to_the_variant():
    clicks_a = np.array([1, 1, 0, 0, 1], bool)
    clicks_b = np.array([1, 0, 1, 1, 1], bool)
    shown_b = np.array([0, 0, 1, 1, 1], bool)
    t = ctr_table(clicks_a, clicks_b, ~shown_b, shown_b, np.array(["x"] * 5, dtype=object))
    assert (t["total"]["views_a"], t["total"]["clicks_a"]) == (2, 2)
    assert (t["total"]["views_b"], t["total"]["clicks_b"]) == (3, 3)
    assert t["total"]["ctr_b"] == 1.0 and math.isnan(t["total"]["p_value"])  # no variation


def test_replay_refuses_a_variant_without_a_model(angle_sessions):
    with pytest.raises(ParameterError, match="names no model and no default model was given"):
        replay("baseline", "intermediate:text", sessions=angle_sessions, progress=False)


def test_the_model_as_served_is_named_in_the_results_the_console_and_the_report(
        angle_model, angle_sessions, tmp_path, capsys):
    # a default evaluation scores every modality combination × fusion (127 × 3 on a model of
    # seven modalities): the results, the console's last lines and the report's first
    # paragraph say which of them is the list the model serves
    from prodfusion.cli.evaluate_steps import _print_retrieval
    from prodfusion.evaluation.report import write_report
    from prodfusion.evaluation.retrieval import served_summary, served_variant

    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             n_boot=20, progress=False, protocol="whole")
    assert res["served"] == "intermediate:text+image"  # the model's own fusion and modalities
    (s,) = served_summary(res)
    own = next(r for r in res["rows"] if r["variant"] == "intermediate:text+image"
               and r["slice"] == "all")
    assert s["row"] is own and s["paired"]
    assert {d["kind"] for d in s["paired"]} == {"best single modality", "best reference"}
    _print_retrieval(res)
    tail = capsys.readouterr().out.split("the model as served (intermediate:text+image")[1]
    assert f"nDCG@3 {own['ndcg']['value']:.4f}" in tail
    assert all(f"minus {d['comparator']} ({d['kind']})" in tail for d in s["paired"])
    write_report({"retrieval": res}, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "**The model as served** is the row `intermediate:text+image`" in md
    assert md.index("**The model as served**") < md.index("Test fraction")

    # the same modalities under another fusion, the paper's formulas or other weights are
    # not the model; none of them evaluated: nothing is named
    others = [parse_variant(v) for v in ("early:text+image", "intermediate:text",
                                         "intermediate:text+image+clicks")]
    from dataclasses import replace

    others += [replace(Variant("intermediate", ("text", "image")), paper=True),
               Variant("intermediate", ("text", "image"), weights={"text": 1, "image": 2})]
    assert served_variant(angle_model, others) is None
    res = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             n_boot=20, progress=False, protocol="whole",
                             variants=["early:text+image", "intermediate:text"])
    assert res["served"] is None and served_summary(res) == []
    write_report({"retrieval": res}, tmp_path / "r2")
    assert "model as served" not in (tmp_path / "r2" / "report.md").read_text()
    # a model served by early fusion: its early row is the one
    angle_model.fusion, before = "early", angle_model.fusion
    try:
        assert served_variant(angle_model, others) == "early:text+image"
    finally:
        angle_model.fusion = before


def test_a_model_of_five_modalities_is_evaluated_on_a_compact_set_unless_all_are_asked(
        angle_model, angle_sessions, capsys):
    # 31 combinations × fusions would be 51 configurations here (162 at seven modalities):
    # by default each modality alone, all of them, all but one, the paper's fusions, the
    # model as served and the references; `all` gives the grid, other configs beside it
    from prodfusion.fusion.category import CategoryMatch

    rng = np.random.default_rng(0)
    angle_model.embeddings_["lexical"] = Embeddings(
        rng.normal(size=(8, 4)).astype(np.float32), np.ones(8, dtype=bool), "planted-lexical")
    angle_model.category_ = CategoryMatch.from_catalog(angle_model.catalog)
    angle_model.modalities = ("text", "image")  # served: fewer than the model has
    kw = dict(sessions=angle_sessions, test_fraction=0.375, k=3, n_boot=20,
              protocol="whole")
    res = evaluate_retrieval(angle_model, progress=print, **kw)
    labels = [v["label"] for v in res["config"]["variants"]]
    mods = ("text", "image", "clicks", "lexical", "category")
    assert labels[0] == res["served"] == "intermediate:text+image"  # not in the compact set
    singles = {f"{f}:{m}" for m in mods for f in ("early", "intermediate", "late")
               if m != "category" or f == "intermediate"}
    assert singles <= set(labels)
    assert "intermediate:" + "+".join(mods) in labels
    assert {"early:text+image+clicks+lexical", "late:text+image+clicks+lexical"} <= set(labels)
    for m in mods:  # all but one
        assert "intermediate:" + "+".join(x for x in mods if x != m) in labels
    assert {f"{f}:text+image+clicks [paper]" for f in ("early", "intermediate", "late")} \
        <= set(labels)
    assert {BASELINE.label, "cooc", "tfidf", "popular", "cooc+tfidf", "cooc+category",
            "popular+category"} <= set(labels)
    assert len(labels) == len(set(labels)) == 1 + 13 + 3 + 5 + 3 + 1 + 6
    out = capsys.readouterr().out
    assert (f"5 modalities: scoring each alone, all of them and all but one, and the paper's "
            f"fusions ({len(labels)} configurations") in out
    extra = {"fusion": "intermediate", "modalities": ["text"], "name": "titles"}
    res = evaluate_retrieval(angle_model, progress=False, variants=["all", extra], **kw)
    labels = [v["label"] for v in res["config"]["variants"]]
    combos = [v for v in labels if ":" in v and "[" not in v]
    assert len(combos) == 15 * 3 + 16  # the grid (pairwise: intermediate only), no paper rows
    assert labels[-1] == "titles" and res["served"] == "intermediate:text+image"
