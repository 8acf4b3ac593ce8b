"""`prodfusion tune` / Recommender.tune: planted answers, the test part never read, bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ParameterError
from prodfusion.evaluation.tuning import simplex_grid, tune_weights
from prodfusion.fusion.weighting import Weighting
from prodfusion.recommender import Prod2VecParams, Recommender

N_CAT, PER = 4, 30


def _shop(seed=0):
    """120 products in 4 categories: titles carry the category, photos are pure noise.
    Visitors go from a product to one of its two nearest titles: any photo weight hurts."""
    rng = np.random.default_rng(seed)
    n = N_CAT * PER
    cats = np.arange(n) % N_CAT
    ids = [f"{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(n)],
                                "category": [f"c{c}" for c in cats]}))
    centres = rng.normal(size=(N_CAT, 16)) * 3
    text = centres[cats] + rng.normal(size=(n, 16))
    image = rng.normal(size=(n, 16))
    rec = Recommender.from_embeddings(cat, {
        "text": Embeddings(text.astype(np.float32), np.ones(n, bool), "planted-text"),
        "image": Embeddings(image.astype(np.float32), np.ones(n, bool), "noise-image"),
    }, fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    u = text / np.linalg.norm(text, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    near = np.argsort(-sim, axis=1)[:, :2]  # each product's two nearest titles
    lists = []
    for _ in range(300):  # visitors go from a product to one of its two nearest titles
        s = [int(rng.integers(n))]
        while len(s) < 4:
            nxt = int(near[s[-1], rng.integers(2)])
            if nxt in s:
                break
            s.append(nxt)
        if len(s) < 2:
            continue
        lists.append([ids[i] for i in s])
    return rec, _timed(lists), cats


def _timed(lists) -> Sessions:
    """Sessions of product ids in this order, one time step each (the time split holds out
    the last ones)."""
    return Sessions(pl.DataFrame({
        "session": [f"s{i:03d}" for i, s in enumerate(lists) for _ in s],
        "position": [j for s in lists for j in range(len(s))],
        "product_id": [p for s in lists for p in s],
        "ts": [float(t) for t, s in enumerate(lists) for _ in s],
    }))


KW = dict(objective="hitrate@5", step=0.25, n0_grid=(None,), max_queries=500)


def test_a_noise_modality_gets_about_zero_weight():
    rec, sessions, _ = _shop()
    res = tune_weights(rec, sessions=sessions, **KW)
    assert res["weights"]["image"] <= 0.125 < res["weights"]["text"]
    exact = tune_weights(rec, sessions=sessions, min_weight=0, **KW)
    assert exact["weights"]["image"] <= 0.125
    refs = res["reference_scores"]
    assert res["validation_score"] >= refs["equal weights (calibration none)"]
    assert refs["text alone"] > refs["image alone"]
    assert res["split"]["n_validation_cases"] > 0 and res["n_configs"] >= 5


def test_a_zero_weight_is_lifted_only_where_products_would_become_unrankable():
    """Titles cover every product: the noise photos may get exactly 0. Once 10 products
    lack a title, photos are their only modality: with min_weight=0.05 they keep 0.05 × the
    largest weight; by default they get 0 and serve those products as a fallback."""
    rec, sessions, _ = _shop()
    assert tune_weights(rec, sessions=sessions, **KW)["weights"]["image"] == 0.0
    text = rec.embeddings_["text"]
    mask = text.mask.copy()
    mask[::12] = False
    holes = Recommender.from_embeddings(rec.catalog, {
        "text": Embeddings(np.asarray(text.vectors), mask, text.spec),
        "image": rec.embeddings_["image"]}, fusion="intermediate")
    holes.prod2vec = rec.prod2vec
    w = tune_weights(holes, sessions=sessions, min_weight=0.05, **KW)["weights"]
    assert w["image"] == pytest.approx(0.05 * w["text"]) and w["text"] > 0.9
    # by default a zero weight is a last resort: the title-less products are still served
    res = tune_weights(holes, sessions=sessions, **KW)
    assert res["weights"]["image"] == 0.0 and res["fallback"] == {"image": 1.0}
    holes.tune(sessions, **KW)
    ids = holes.similar(holes.catalog.ids[0], k=5)[0]  # row 0 has no title: photos only
    assert len(ids) == 5


def test_tuning_never_reads_the_test_part():
    """Replacing every held-out target (the last click of each test session) by another
    product changes nothing in what tuning chooses or measures."""
    rec, sessions, cats = _shop()
    f = sessions.frame
    lengths = sessions.lengths
    n_test = round(len(sessions) * 0.2)
    last = np.cumsum(lengths) - 1
    test_last = last[-n_test:]  # the latest sessions are the test part (times increase)
    pid = f["product_id"].to_numpy().copy()
    for r in test_last:  # another product of another category, never the previous click
        pid[r] = f"{(int(pid[r]) + 1) % (N_CAT * PER):04d}"
    changed = Sessions(f.with_columns(pl.Series("product_id", pid)))
    a = tune_weights(rec, sessions=sessions, **KW)
    b = tune_weights(rec, sessions=changed, **KW)
    for key in ("weights", "calibration", "n0", "validation_score", "reference_scores"):
        assert a[key] == b[key], key
    assert a["split"] == b["split"]
    # ...while the test part does change (the evaluation would see a different answer)
    assert a["fingerprints"]["sessions"] != b["fingerprints"]["sessions"]


def test_bad_input_is_refused_by_name():
    rec, sessions, _ = _shop()
    with pytest.raises(ParameterError, match=r"tune\(\) needs interactions to learn from: pass sessions="):
        tune_weights(rec)
    with pytest.raises(ParameterError, match=r"'modalities' parameter of tune\(\) asks for "
                                             r"'clicks', but this model has only"):
        tune_weights(rec, sessions=sessions, modalities=["text", "clicks"], **KW)
    with pytest.raises(ParameterError, match=r"'objective' parameter of tune\(\) must be "
                                             r"'ndcg@K' or 'hitrate@K'"):
        tune_weights(rec, sessions=sessions, objective="mrr@15")
    # pairs in which no product has two partners: nothing can be held out for validation
    pairs = Sessions.from_lists([[f"{2 * i:04d}", f"{2 * i + 1:04d}"] for i in range(40)])
    with pytest.raises(DataError, match="no held-out validation pair is left after cleaning"):
        tune_weights(rec, pairs=pairs, **KW)
    # every session of one click: nothing left after cleaning, said with the cleaning's
    # counts (it failed inside the time split before: "cannot split 0 session(s)")
    from prodfusion.data import clean_sessions

    ones = clean_sessions(pl.DataFrame({"session": [f"s{i}" for i in range(30)],
                                        "product_id": [f"{i:04d}" for i in range(30)]}),
                          rec.catalog)
    with pytest.raises(DataError, match=r"tune\(\): no sessions left to learn from after "
                                        r"cleaning \(--interactions\) \(of 30 rows: 0 name "
                                        r"products not in the catalog, 30 sessions had fewer "
                                        r"than two products\)"):
        tune_weights(rec, sessions=ones, **KW)
    from prodfusion.evaluation.split import split_interactions

    with pytest.raises(DataError, match=r"^no sessions left to evaluate on after cleaning "
                                        r"\(--interactions\) \(of 30 rows"):
        split_interactions(rec.catalog, ones)  # evaluate retrieval / replay


def test_simplex_grid_covers_the_simplex():
    g = simplex_grid(3, 0.25)
    assert len(g) == 15 and all(abs(sum(w) - 1) < 1e-12 for w in g)
    assert (1.0, 0.0, 0.0) in g and (0.25, 0.25, 0.5) in g


def test_cli_tune_writes_the_manifest_and_similar_uses_it(tmp_path, capsys):
    from prodfusion.cli import main

    rec, sessions, _ = _shop()
    model = rec.save(tmp_path / "m")
    sessions.frame.select("session", "product_id", "ts").write_csv(tmp_path / "views.csv")
    data = ["--interactions", str(tmp_path / "views.csv"), "--session-cols", "session",
            "--item-col", "product_id", "--time-col", "ts", "--p2v-dim", "8", "--p2v-epochs",
            "2", "--workers", "1", "--objective", "hitrate@10", "--n0", "none", "--quiet"]
    before = (model / "manifest.json").read_bytes()
    # a modality the model lacks: refused, the folder untouched
    assert main(["tune", str(model), *data, "--modalities", "text,clicks"]) == 2
    assert "asks for 'clicks'" in capsys.readouterr().err
    assert main(["tune", str(model), "--objective", "ndcg@15"]) == 2
    assert "tune needs interactions" in capsys.readouterr().err
    assert (model / "manifest.json").read_bytes() == before
    assert main(["tune", str(model), *data]) == 0
    out = capsys.readouterr().out
    assert "tuned" in out and "text alone" in out
    man = json.loads((model / "manifest.json").read_text())
    w = man["settings"]["weighting"]["weights"]
    assert w["image"] <= 0.125 and man["tuning"]["objective"] == "hitrate@10"
    assert man["tuning"]["fingerprints"]["sessions"] and man["settings"]["fusion"] == "intermediate"
    tuned = Recommender.load(model)
    assert tuned.weighting().weights == tuple(sorted(w.items()))
    ids, _, why = tuned.similar("0000", k=5, explain=True)
    assert why[0]["modalities"]["image"]["weight"] == pytest.approx(w["image"])


def test_evaluation_uses_the_models_weights_unless_a_variant_sets_its_own():
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    rec, sessions, _ = _shop()
    kw = dict(sessions=sessions, k=5, n_boot=10, progress=False)
    plain = evaluate_retrieval(rec, variants=["intermediate:text+image"], **kw)
    rec.weights = {"text": 1.0, "image": 0.0}
    res = evaluate_retrieval(rec, variants=[
        "intermediate:text+image", "intermediate:text",
        {"fusion": "intermediate", "modalities": ["text", "image"],
         "weights": {"text": 1, "image": 1}, "name": "equal"},
        {"fusion": "intermediate", "modalities": ["text", "image"], "paper": True}], **kw)

    def hr(r, label):
        return next(x["hit_rate"]["value"] for x in r["rows"]
                    if x["variant"] == label and x["slice"] == "all" and x["source"] == "sessions")

    assert hr(res, "intermediate:text+image") == hr(res, "intermediate:text")
    assert hr(res, "equal") == hr(plain, "intermediate:text+image")
    assert hr(res, "intermediate:text+image [paper]") == hr(plain, "intermediate:text+image")
    assert hr(res, "intermediate:text+image") != hr(plain, "intermediate:text+image")


def test_tuning_weighs_cooc_and_click_confidence_and_validates_on_one_source():
    from prodfusion.encoders import Prod2Vec
    from prodfusion.fusion.cooc import Cooc

    rec, sessions, _ = _shop()
    clicks = Prod2Vec(vector_size=8, epochs=2, workers=1, min_count=1).fit(sessions).encode(
        rec.catalog)
    rec = Recommender.from_embeddings(rec.catalog, {**rec.embeddings_, "clicks": clicks},
                                      fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    rec.cooc_ = Cooc.from_sessions(sessions, rec.catalog)
    kw = dict(KW, n0_grid=(None, 2.0), calibrations=("none", "zmean"))
    res = tune_weights(rec, sessions=sessions, **kw)
    assert set(res["weights"]) == {"text", "image", "clicks", "cooc"}
    assert res["calibration"] in ("none", "zmean") and res["n0"] in (None, 2.0)
    assert {"cooc alone", "clicks alone"} <= set(res["reference_scores"])
    assert res["split"]["n_validation_cases_by_source"] == {"sessions": res["split"][
        "n_validation_cases"]}
    # plain str keys, as the manifest's JSON will read them back (not numpy's str_)
    assert all(type(k) is str for k in res["split"]["n_validation_cases_by_source"])
    with pytest.raises(ParameterError, match=r"validate_on='pairs' needs that source; pass "
                                             r"--pairs"):
        tune_weights(rec, sessions=sessions, validate_on="pairs", **kw)
    with pytest.raises(ParameterError, match=r"'validate_on' parameter of tune\(\) must be"):
        tune_weights(rec, sessions=sessions, validate_on="baskets", **kw)
    rec.tune(sessions, **kw)
    assert rec.similar("0003", k=5)[0].shape == (5,)


def test_the_fallback_is_learnt_for_the_cases_the_weighted_modalities_cannot_serve():
    """Titles predict every visit (weight 1); a noisy copy of them ('lexical') and noise
    photos get weight 0. The fallback weights, learnt as if titles were missing, pick the
    noisy copy over the noise, and a product without a title is served by it."""
    rec, sessions, cats = _shop()
    rng = np.random.default_rng(3)
    text = np.asarray(rec.embeddings_["text"].vectors)
    n = len(text)
    mask = np.ones(n, bool)
    mask[::15] = False  # 8 products without a title
    lexical = text + rng.normal(size=text.shape) * 1.5
    rec2 = Recommender.from_embeddings(rec.catalog, {
        "text": Embeddings(text, mask, "planted-text"),
        "image": rec.embeddings_["image"],
        "lexical": Embeddings(lexical.astype(np.float32), np.ones(n, bool), "noisy-copy"),
    }, fusion="intermediate")
    rec2.prod2vec = rec.prod2vec
    res = tune_weights(rec2, sessions=sessions, **KW)
    w, fb = res["weights"], res["fallback"]
    assert w["text"] > 0.5 and w["image"] == 0.0
    assert isinstance(fb, dict) and set(fb) <= {m for m, x in w.items() if x == 0}
    if w["lexical"] == 0:
        assert fb.get("lexical", 0) > fb.get("image", 0)
    res2 = rec2.tune(sessions, **KW)
    # the learnt fallback is the model's (until the fourth session it became plain `True`)
    assert rec2.weighting().fallback == tuple(sorted(res2["fallback"].items()))
    assert rec2.weighting().to_dict()["fallback"] == res2["fallback"]
    # a modality the candidate lacks counts as a random product's in them; older folders
    # (no key) keep dropping it
    assert res2["fallback_missing"] == "zero" == rec2.weighting().fallback_missing
    assert Weighting.from_dict({k: v for k, v in rec2.weighting().to_dict().items()
                                if k != "fallback_missing"}).fallback_missing == "drop"
    got, _ = rec2.similar(rec2.catalog.ids[0], k=5)  # row 0 has no title
    assert len(got) == 5
    assert res["search"]["repeats"] == 3 and len(res["split"]["n_fitting_sessions"]) == 3


@pytest.mark.parametrize("seed", [0, 1])
def test_a_slice_safe_choice_loses_no_validation_slice_to_a_single_modality(seed):
    """The recorded validation slices of the chosen weighting are never below the best
    single modality where a slice holds min_slice_cases or more cases."""
    rec, sessions, _ = _shop(seed)
    mask = np.ones(len(rec.catalog), bool)
    mask[::4] = False  # a quarter of the products without a photo: real slices
    image = rec.embeddings_["image"]
    holes = Recommender.from_embeddings(rec.catalog, {
        "text": rec.embeddings_["text"],
        "image": Embeddings(np.asarray(image.vectors), mask, image.spec)},
        fusion="intermediate")
    holes.prod2vec = rec.prod2vec
    res = tune_weights(holes, sessions=sessions, min_slice_cases=5, slice_noise=0, **KW)
    sl = res["validation_slices"]
    assert res["slice_safe"] is True and {"query: no image", "target: no image"} <= set(sl)
    json.dumps(res, allow_nan=False)  # the record goes into the manifest
    for name, row in sl.items():
        if row["n"] >= 5:
            assert row["tuned"] >= row["best single"] - 1e-9, name
        assert row["best single"] == max(row[f"{m} alone"] for m in ("text", "image")
                                         if not np.isnan(row[f"{m} alone"]))
    assert res["validation_score"] >= max(v for k, v in res["reference_scores"].items()
                                          if k.endswith(" alone")) - 1e-9
    # by default a slice may fall short of its best single modality by its noise only: one
    # standard error of the paired per-case difference on its cases, recorded per slice
    noisy = tune_weights(holes, sessions=sessions, min_slice_cases=5, **KW)
    json.dumps(noisy, allow_nan=False)
    assert noisy["search"]["slice_noise"] == 1.0 and noisy["slice_safe"] is True
    for name, row in noisy["validation_slices"].items():
        assert row["se"] >= 0
        if row["n"] >= 5:
            assert row["tuned"] >= row["best single"] - row["se"] - 1e-9, name
    assert noisy["selection_criterion"] >= res["selection_criterion"] - 1e-9


def test_repeated_validation_uses_other_session_windows_and_refuses_bad_counts():
    rec, sessions, _ = _shop()
    one = tune_weights(rec, sessions=sessions, repeats=1, **KW)
    three = tune_weights(rec, sessions=sessions, repeats=3, **KW)
    assert one["split"]["n_validation_cases"] * 3 == pytest.approx(
        three["split"]["n_validation_cases"], rel=0.1)
    with pytest.raises(ParameterError, match=r"'repeats' parameter of tune\(\)"):
        tune_weights(rec, sessions=sessions, repeats=0, **KW)
    with pytest.raises(ParameterError, match=r"'min_slice_cases' parameter of tune\(\)"):
        tune_weights(rec, sessions=sessions, min_slice_cases=0, **KW)
    for bad in (-1, float("nan"), "one"):
        with pytest.raises(ParameterError, match=r"'slice_noise' parameter of tune\(\)"):
            tune_weights(rec, sessions=sessions, slice_noise=bad, **KW)
    for bad in ("zmean@2", "zscore@0.5", "zmean@", "zmeans"):
        with pytest.raises(ParameterError, match=r"'calibrations' parameter of tune\(\)"):
            tune_weights(rec, sessions=sessions, calibrations=("none", bad), **KW)
    res = tune_weights(rec, sessions=sessions, calibrations=("zmean@0.5",), **KW)
    assert res["calibration"] == "zmean" and res["impute"] == 0.5


def test_one_se_rule_prefers_the_sparsest_weighting_within_the_noise():
    from prodfusion.evaluation.tuning import _one_se

    rng = np.random.default_rng(0)
    v = (rng.random(400) < 0.3).astype(float)
    close = v.copy()
    hits, misses = np.flatnonzero(v == 1), np.flatnonzero(v == 0)
    close[hits[:5]] = 0  # 5 hits lost, 3 others won: 2 of 400 fewer, inside one SE (0.007)
    close[misses[:3]] = 1
    far = v.copy()
    far[v == 1] = 0  # every hit lost: far outside
    res = {(0.5, 0.5): (v.mean(), v), (1.0, 0.0): (close.mean(), close),
           (0.0, 1.0): (far.mean(), far)}
    assert _one_se(res, (0.5, 0.5)) == (1.0, 0.0)
    del res[(1.0, 0.0)]
    assert _one_se(res, (0.5, 0.5)) == (0.5, 0.5)


def test_rolling_validation_windows_are_an_option():
    rec, sessions, _ = _shop()
    fixed = tune_weights(rec, sessions=sessions, repeats=2, **KW)
    rolled = tune_weights(rec, sessions=sessions, repeats=2, rolling=True, **KW)
    assert fixed["search"]["rolling"] is False and rolled["search"]["rolling"] is True
    n_f, n_r = fixed["split"]["n_fitting_sessions"], rolled["split"]["n_fitting_sessions"]
    assert n_f[0] == n_f[1] and n_r[0] == n_f[0]  # the latest block both times, unless rolled


def test_the_category_modality_is_weighed_with_a_vector_modality_that_only_orders_inside_it():
    """Visitors go to the nearest titles, which share the category; the 'image' vectors hold
    only the within-category part of the titles. Alone, the category ties 30 products and
    the image confuses categories; fused, the category picks the products and the image
    orders them: the tuner must weigh both and beat each alone."""
    from prodfusion.fusion.category import CategoryMatch

    rec, sessions, cats = _shop()
    text = rec.embeddings_["text"].vectors
    resid = np.stack([text[i] - text[cats == cats[i]].mean(axis=0) for i in range(len(cats))])
    ev = Recommender.from_embeddings(rec.catalog, {"image": Embeddings(
        resid.astype(np.float32), np.ones(len(cats), bool), "within-category")},
        fusion="intermediate")
    ev.prod2vec = rec.prod2vec
    ev.category_ = CategoryMatch.from_catalog(rec.catalog)
    ev.modalities = ev.available_modalities
    res = tune_weights(ev, sessions=sessions, modalities=("image", "category"),
                       calibrations=("none", "zscore"), objective="hitrate@5", step=0.25,
                       n0_grid=(None,), max_queries=500)
    refs = res["reference_scores"]
    assert res["weights"]["image"] > 0 and res["weights"]["category"] > 0
    assert res["validation_score"] > max(refs["image alone"], refs["category alone"]) + 0.05


def _pairs_by(vectors, ids, rng, n_pairs=400):
    """Co-interaction pairs: a product and one of its two nearest neighbours by ``vectors``."""
    u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    near = np.argsort(-sim, axis=1)[:, :2]
    a = rng.integers(len(ids), size=n_pairs)
    b = near[a, rng.integers(2, size=n_pairs)]
    return Sessions(pl.DataFrame({
        "session": [f"p{i:04d}" for i in range(n_pairs) for _ in range(2)],
        "position": [j for _ in range(n_pairs) for j in range(2)],
        "product_id": [ids[x] for pair in zip(a, b, strict=True) for x in pair],
        "ts": [0.0] * (2 * n_pairs)}))


def test_each_source_is_a_validation_slice():
    """Sessions and pairs validated together: each is a slice the choice must not lose to a
    single modality. Pairs that follow the titles, as the sessions do: the choice keeps both.
    Pairs that follow the photos: no weighting can (titles serve one source, photos the
    other), and the record says that it kept the weighting whose worst source keeps the largest
    share of its best single modality."""
    rec, sessions, _ = _shop()
    rng = np.random.default_rng(5)
    ids = list(rec.catalog.ids)
    text = np.asarray(rec.embeddings_["text"].vectors)
    image = np.asarray(rec.embeddings_["image"].vectors)
    kw = dict(KW, min_slice_cases=5, slice_noise=0)  # any shortfall counts (the old rule)
    res = tune_weights(rec, sessions=sessions, pairs=_pairs_by(text, ids, rng), **kw)
    sl = res["validation_slices"]
    assert {"source: sessions", "source: pairs"} <= set(sl)
    assert res["slice_safe"] is True and res["slice_safe_but_sources"] is False
    for name in ("source: sessions", "source: pairs"):
        assert sl[name]["tuned"] >= sl[name]["best single"] - 1e-9
    res = tune_weights(rec, sessions=sessions, pairs=_pairs_by(image, ids, rng), **kw)
    sl = res["validation_slices"]
    assert res["slice_safe"] is False and res["slice_safe_but_sources"] is True
    assert any(sl[x]["tuned"] < sl[x]["best single"] - 1e-9
               for x in ("source: sessions", "source: pairs"))
    assert all(r["tuned"] >= r["best single"] - 1e-9 for x, r in sl.items()
               if not x.startswith("source: ") and r["n"] >= 5)
    # the sources conflict: the choice is the one whose worst source keeps the largest share
    # of its best single modality — at least what any modality alone keeps of both
    srcs = ("source: sessions", "source: pairs")
    worst = min(sl[x]["tuned"] / sl[x]["best single"] for x in srcs)
    assert res["worst_source_share"] == pytest.approx(worst)
    singles = [x[: -len(" alone")] for x in sl[srcs[0]] if x.endswith(" alone")]
    assert len(singles) >= 2
    for m in singles:
        assert worst >= min(sl[x][f"{m} alone"] / sl[x]["best single"] for x in srcs) - 1e-9
    assert worst < 1
    # one source validated: no source slice
    res = tune_weights(rec, sessions=sessions, pairs=_pairs_by(image, ids, rng),
                       validate_on="sessions", **kw)
    assert not any(x.startswith("source: ") for x in res["validation_slices"])


def test_validation_ranks_count_the_catalog_outside_the_candidate_pool():
    """cooc alone ties every product the query never shared a session with at 0. Counted
    among the candidate pool alone, a target in that tie competed with the pool's share of
    it — optimistic for that configuration only. The scorer adds the catalog outside the
    pool, estimated from a sample: close to the exact count (every product a candidate),
    exact when the sample holds every product outside, and the pool-only count is kept by
    ``n_outside=0``."""
    import types

    from prodfusion.evaluation.tuning_scorer import _Scorer
    from prodfusion.fusion.cooc import Cooc
    from prodfusion.fusion.weights import Weighting

    rng = np.random.default_rng(0)
    n = 3000
    ids = [f"p{i:05d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    # sessions of 2-4 products inside groups of 6: each product co-occurs with a handful
    lists = [[ids[g * 6 + j] for j in rng.choice(6, size=rng.integers(2, 5), replace=False)]
             for g in rng.integers(n // 6, size=4000)]
    cooc = Cooc.from_sessions(Sessions.from_lists(lists), cat)
    ev = types.SimpleNamespace(modality_data=lambda: {"cooc": cooc}, catalog=cat)
    q = rng.choice(np.flatnonzero(cooc.mask), size=300, replace=False)
    # half the targets co-occur with the query, half are products of another group (tie at 0)
    t = np.array([cooc.neighbours(int(x))[0] if i % 2 else int((x + 6 * 37) % n)
                  for i, x in enumerate(q)])
    src = np.full(len(q), "sessions")
    alone = Weighting.make({"cooc": 1.0}, "none", None, None)

    def objective(**kw):
        sc = _Scorer(ev, ("cooc",), q, t, src, None, "ndcg", 15, **kw)
        return sc.objective(sc.values(alone))

    exact = objective(n_cand=n, n_outside=n)  # every product scored
    pool_only = objective(n_cand=20, n_outside=0)
    sampled = objective(n_cand=20)
    assert pool_only > exact + 0.02  # the old count: optimistic for the tie
    assert abs(sampled - exact) < 0.005
    assert objective(n_cand=20, n_outside=n) == pytest.approx(exact, abs=1e-12)


def test_cooc_alone_is_ranked_exactly_from_the_sparse_rows():
    """The cooc decay choice scores cooc alone from each query's sparse row
    (``_cooc_alone``) instead of building a scorer per decay: per case, the same values as a
    scorer of every product, ties at 0 included; a query or target without any training
    session scores 0; and for hitrate too."""
    import types

    from prodfusion.evaluation.tuning_scorer import _cooc_alone, _Scorer
    from prodfusion.fusion.cooc import Cooc
    from prodfusion.fusion.weights import Weighting

    rng = np.random.default_rng(1)
    n = 600
    ids = [f"p{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    lists = [[ids[g * 6 + j] for j in rng.choice(6, size=rng.integers(2, 5), replace=False)]
             for g in rng.integers(n // 6 - 10, size=900)]  # the last 60 products: no session
    for decay in (0.0, 1.0):
        cooc = Cooc.from_sessions(Sessions.from_lists(lists), cat, decay=decay)
        assert not cooc.mask[-60:].any()
        ev = types.SimpleNamespace(modality_data=lambda c=cooc: {"cooc": c}, catalog=cat)
        q = np.concatenate([rng.choice(np.flatnonzero(cooc.mask), size=150, replace=False),
                            [n - 1, n - 2]])
        t = np.array([cooc.neighbours(int(x))[0] if i % 3 == 0 and cooc.mask[x]
                      else int((x + 6 * 37) % n) if i % 3 == 1 else int(n - 1 - i % 50)
                      for i, x in enumerate(q)])
        ok = t != q
        q, t = q[ok], t[ok]
        src = np.full(len(q), "sessions")
        alone = Weighting.make({"cooc": 1.0}, "none", None, None)
        for metric in ("ndcg", "hitrate"):
            sc = _Scorer(ev, ("cooc",), q, t, src, None, metric, 15, n_cand=n, n_outside=n)
            want = sc.values(alone)
            got = _cooc_alone(cooc, q, t, metric, 15)
            np.testing.assert_allclose(got, want, atol=1e-12)
            assert (got > 0).any() and (got == 0).any() and (0 < got).sum() < len(got)
        assert (got[~cooc.mask[t]] == 0).all() and (~cooc.mask[t]).any()


def test_validation_splits_are_scored_one_at_a_time_and_a_missing_modality_drops_everywhere(
        monkeypatch):
    """Each split's recommender (its retrained vectors) is released before the next is made;
    a split lacking a modality has every split scored without it, as a tuning of the others."""
    import gc
    import weakref

    import prodfusion.evaluation.retrieval as retrieval

    rec, sessions, _ = _shop()
    real = retrieval.heldout_recommender
    alive: list = []
    calls = {"n": 0, "held": 0}

    def spy(*a, **kw):
        gc.collect()
        calls["held"] = max(calls["held"], sum(r() is not None for r in alive))
        ev = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 2:  # the second split has no photos
            del ev.embeddings_["image"]
        alive.append(weakref.ref(ev))
        return ev

    monkeypatch.setattr(retrieval, "heldout_recommender", spy)
    res = tune_weights(rec, sessions=sessions, repeats=3, **KW)
    assert calls["held"] == 0  # no earlier split's recommender was alive at a new one
    assert calls["n"] == 5  # splits 1, 2, then all three again without the photos
    monkeypatch.setattr(retrieval, "heldout_recommender", real)
    want = tune_weights(rec, sessions=sessions, repeats=3, modalities=["text"], **KW)
    assert res["weights"] == want["weights"] == {"text": 1.0}
    assert res["validation_score"] == pytest.approx(want["validation_score"])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_scorer_cosines_in_column_chunks_equal_the_whole_normalised_matrix_bit_for_bit(
        monkeypatch, dtype):
    """The scorer normalises the catalog's side a chunk at a time instead of copying the whole
    normalised matrix: the same float32 normalisation bit for bit, so each chunk's product
    is the product of the whole matrix's rows there. (One product of the whole matrix may
    differ from the chunks' in the last bit: OpenBLAS blocks a product by its shape, and on
    an AVX-512 CPU it did, 32 of 515 cosines by 6e-8.)"""
    import prodfusion.evaluation.tuning_scorer as ts

    rng = np.random.default_rng(5)
    n = 103
    v = rng.normal(size=(n, 24)).astype(dtype)
    mask = rng.random(n) > 0.2
    v[~mask] = 0
    e = Embeddings(v, mask, "t")
    w = e.rows(slice(None))
    norms = np.linalg.norm(w, axis=1)
    units = np.where(mask[:, None], w / np.maximum(norms, 1e-30)[:, None],
                     0.0).astype(np.float32)  # the scorer's whole-matrix copy, as before
    qb = np.array([0, 5, 17, 99, 102])
    monkeypatch.setattr(ts, "COLUMN_CHUNK", 10)  # eleven chunks, the last one short
    got = ts._cosines(e, qb, n, ts._row_norms(e))
    chunks = np.hstack([units[qb] @ units[lo:lo + 10].T for lo in range(0, n, 10)])
    assert got.dtype == np.float32 and np.array_equal(got, chunks)
    np.testing.assert_allclose(got, units[qb] @ units.T, rtol=0, atol=1e-6)


def test_shrinkage_moves_the_weights_to_equal_only_as_far_as_validation_allows():
    """Two copies of the planted titles score alike under any weighting: shrinking reaches
    equal weights. With noise photos, equal weights cost far more than one standard error:
    the photos stay small and the score stays within the band of the tuned weights'."""
    rec, sessions, _ = _shop()
    twin = Recommender.from_embeddings(rec.catalog, {
        "text": rec.embeddings_["text"],
        "image": Embeddings(np.asarray(rec.embeddings_["text"].vectors),
                            rec.embeddings_["text"].mask, "copy-of-text")},
        fusion="intermediate")
    twin.prod2vec = rec.prod2vec
    kw = {**KW, "calibrations": ("zscore",)}
    plain = tune_weights(twin, sessions=sessions, **kw)
    assert "shrinkage" not in plain and plain["search"]["shrink"] is False
    assert plain["weights"] != {"text": 0.5, "image": 0.5}  # the search's pick is arbitrary
    shrunk = tune_weights(twin, sessions=sessions, shrink=True, **kw)
    assert shrunk["weights"] == pytest.approx({"text": 0.5, "image": 0.5})
    assert shrunk["shrinkage"]["lambda"] == 1.0
    assert shrunk["shrinkage"]["from"] == pytest.approx(list(plain["weights"].values()))
    assert shrunk["validation_score"] == pytest.approx(plain["validation_score"])

    res = tune_weights(rec, sessions=sessions, shrink=True, **KW)
    shr = res["shrinkage"]
    assert shr["lambda"] < 1.0 and res["weights"]["image"] < res["weights"]["text"]
    assert shr["score"] >= shr["score_from"] - shr["se"] - 1e-12
    lam = shr["lambda"]
    expect = [(1 - lam) * x + lam / 2 for x in shr["from"]]
    assert list(res["weights"].values()) == pytest.approx(expect)
    with pytest.raises(ParameterError, match=r"'shrink' parameter of tune\(\)"):
        tune_weights(rec, sessions=sessions, shrink="yes", **KW)


def test_tune_explains_a_cold_target_slice_only_where_the_weights_cause_it():
    from prodfusion.cli.tune import slice_notes

    def res(weights, tuned=0.0, n=76, safe=False):
        return {"slice_safe": safe, "search": {"min_slice_cases": 20}, "weights": weights,
                "validation_slices": {
                    "query: with training clicks": {"tuned": 0.08, "best single": 0.07, "n": 3000},
                    "target: no training clicks": {"tuned": tuned, "best single": 0.0101, "n": n}}}

    note = slice_notes(res({"text": 0.0, "clicks": 0.14, "lexical": 0.0, "cooc": 0.86}))
    assert len(note) == 1 and "'target: no training clicks' is below" in note[0]
    assert "all on clicks and cooc, which" in note[0]  # the weighted ones, named
    assert "--weights" in note[0] and "prodfusion add --interactions" in note[0]
    # not when a title modality carries weight (the slice is then not structural), when the
    # slice is met or too small to count, or when every slice is met
    assert slice_notes(res({"text": 0.1, "clicks": 0.9})) == []
    assert slice_notes(res({"clicks": 1.0, "text": 0.0}, tuned=0.02)) == []
    assert slice_notes(res({"clicks": 1.0, "text": 0.0}, n=19)) == []
    assert slice_notes(res({"clicks": 1.0, "text": 0.0}, safe=True)) == []


def _two_halves(seed=0, n=160):
    """Titles carry half of what decides the next product, photos the other half: each
    product's next one is its nearest by both (concatenated); either alone finds it less
    often, so fusing them pays beyond the noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 6)), rng.normal(size=(n, 6))
    ids = [f"{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(n)]}))
    rec = Recommender.from_embeddings(cat, {
        "text": Embeddings(a.astype(np.float32), np.ones(n, bool), "half-a"),
        "image": Embeddings(b.astype(np.float32), np.ones(n, bool), "half-b")},
        fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    sim = ua @ ua.T + ub @ ub.T
    np.fill_diagonal(sim, -np.inf)
    near = np.argsort(-sim, axis=1)[:, :2]
    lists = []
    for _ in range(500):
        s = [int(rng.integers(n))]
        s.append(int(near[s[0], rng.integers(2)]))
        lists.append([ids[i] for i in s])
    return rec, _timed(lists)


def test_the_gain_over_the_best_single_modality_is_reported_with_its_noise():
    from prodfusion.cli.tune import gain_line

    # photos are noise: the choice ranks as the titles do, no gain to speak of
    rec, sessions, _ = _shop()
    res = tune_weights(rec, sessions=sessions, **KW)
    g = res["gain"]
    assert g["over"] == "text alone" and g["se"] >= 0
    assert g["value"] == pytest.approx(res["validation_score"]
                                       - res["reference_scores"]["text alone"])
    assert not g["value"] > 1.96 * g["se"]
    assert "above the noise" not in gain_line(res)
    # titles and photos each carry half the answer: fusing pays, beyond the noise
    rec, sessions = _two_halves()
    res = tune_weights(rec, sessions=sessions, **KW)
    g = res["gain"]
    assert min(res["weights"].values()) > 0.1
    assert g["value"] > 1.96 * g["se"] > 0
    assert "above the noise" in gain_line(res)


def _bestsellers(seed=0, n_cat=20, per=16, n_cold=8):
    """Visitors go from a product to a bestseller of its category (by a Zipf law), or, in the
    later sessions, half the time to a new product of the category seen once: popularity
    finds the bestsellers and buries the new products, which the category alone ranks as
    well as any other member — a weighting that serves most cases better loses one slice."""
    from prodfusion.fusion.category import CategoryMatch
    from prodfusion.fusion.popularity import PopularityPrior

    rng = np.random.default_rng(seed)
    n = n_cat * per
    cats = np.arange(n) // per
    ids = [f"{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(n)],
                                "category": [f"c{c}" for c in cats]}))
    warm = [i for i in range(n) if i % per < per - n_cold]
    zipf = 1.0 / (1.0 + np.arange(n) % per)
    lists, used = [], set()
    for s in range(900):
        q = int(rng.choice(warm))
        new = [j for j in range(n) if cats[j] == cats[q] and j % per >= per - n_cold
               and j not in used]
        if new and rng.random() < (0.5 if s >= 500 else 0.05):
            used.add(new[0])
            lists.append([ids[q], ids[new[0]]])
            continue
        same = [j for j in warm if cats[j] == cats[q] and j != q]
        lists.append([ids[q], ids[int(rng.choice(same, p=zipf[same] / zipf[same].sum()))]])
    sessions = _timed(lists)
    rec = Recommender.from_embeddings(cat, {"clicks": Embeddings(
        rng.normal(size=(n, 8)).astype(np.float32), np.ones(n, bool), "prod2vec")},
        fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1, min_count=1)
    rec.category_ = CategoryMatch.from_catalog(cat)
    rec.popularity_ = PopularityPrior(np.bincount(
        cat.rows_of(sessions.frame["product_id"].to_list()), minlength=n))
    rec.modalities = rec.available_modalities
    return rec, sessions


def test_what_the_slice_rule_rules_out_is_reported():
    from prodfusion.cli.tune import unconstrained_line

    rec, sessions = _bestsellers()
    kw = dict(objective="hitrate@5", step=0.25, n0_grid=(None,), max_queries=500,
              modalities=("clicks", "category", "popularity"), calibrations=("none",))
    res = tune_weights(rec, sessions=sessions, **kw)
    # the slice rule keeps the new products' slice: the category alone, no popularity
    assert res["slice_safe"] and res["weights"]["popularity"] == 0
    assert res["validation_slices"]["target: no training clicks"]["n"] >= 20
    u = res["unconstrained"]
    assert u["weights"]["popularity"] > 0 and u["weights"]["category"] > 0
    assert u["validation_score"] > res["validation_score"] + 0.1
    assert u["cost"] == pytest.approx(u["validation_score"] - res["validation_score"])
    line = unconstrained_line(res, "prodfusion tune m --no-slice-safe --profile free")
    assert line.endswith("to compare: prodfusion tune m --no-slice-safe --profile free")
    assert f"{u['validation_score']:.4f} (+{u['cost']:.4f})" in line
    json.dumps(res, allow_nan=False)
    # without the rule the search takes such a weighting, and reports nothing ruled out
    free = tune_weights(rec, sessions=sessions, slice_safe=False, **kw)
    assert "unconstrained" not in free and free["weights"]["popularity"] > 0
    assert free["validation_score"] > res["validation_score"] + 0.1


def test_the_suggested_command_without_the_slice_rule_runs_as_printed(tmp_path, capsys):
    import shlex

    from prodfusion.cli import main

    rec, sessions = _bestsellers()
    rec.click_counts_ = np.bincount(rec.catalog.rows_of(
        sessions.frame["product_id"].to_list()), minlength=len(rec.catalog))  # popularity's
    model = rec.save(tmp_path / "m")
    sessions.frame.select("session", "product_id", "ts").write_csv(tmp_path / "views.csv")
    data = ["--interactions", str(tmp_path / "views.csv"), "--session-cols", "session",
            "--item-col", "product_id", "--time-col", "ts", "--p2v-dim", "8", "--p2v-epochs",
            "2", "--workers", "1", "--n0", "none", "--calibrations", "none",
            "--modalities", "clicks,category,popularity"]
    assert main(["tune", str(model), *data, "--objective", "hitrate@5", "--dry-run",
                 "--slice-noise", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "the slice rule (every validation slice" in out
    cmd = out.split("to compare: ")[1].splitlines()[0]
    argv = shlex.split(cmd)
    assert argv[0] == "prodfusion" and "--dry-run" not in argv and "--slice-noise" not in argv
    assert argv[-3:] == ["--no-slice-safe", "--profile", "free"]
    assert argv[argv.index("--objective") + 1] == "hitrate@5"  # the search's own settings
    assert argv[argv.index("--modalities") + 1] == "clicks,category,popularity"
    assert main(argv[1:]) == 0
    capsys.readouterr()
    free = Recommender.load(model).profiles["free"]
    assert free["tuning"]["objective"] == "hitrate@5"
    assert free["tuning"]["search"]["slice_safe"] is False


def _nothing_pays(seed, n=150):
    """Three modalities and visitors' next products all drawn at random: no modality and no
    mix of them predicts a next product, so any gain a tuning reports is its noise."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(n)]}))
    rec = Recommender.from_embeddings(cat, {
        m: Embeddings(rng.normal(size=(n, 6)).astype(np.float32), np.ones(n, bool), f"noise-{m}")
        for m in ("text", "image", "lexical")}, fusion="intermediate")
    lists = [[ids[i] for i in rng.choice(n, 2, replace=False)] for _ in range(600)]
    return rec, _timed(lists)


def test_the_gain_chosen_and_scored_on_the_same_cases_runs_high_and_is_cross_fitted():
    """The tuned weighting is the best of many scored on the validation cases, so its gain
    there over the best single modality is biased upwards where nothing pays; the
    cross-fitted gain (each fifth of the cases scored by the choice of the other four
    fifths by the same search) is not, and it decides the printed verdict."""
    from prodfusion.cli.tune import gain_line

    # ranked by the objective alone, no slice rule: the widest choice, the largest bias
    kw = dict(KW, objective="ndcg@15", calibrations=("none",), step=0.125, selection="mean",
              slice_safe=False)
    inside, crossed, alarms = [], [], 0
    for seed in range(12):
        rec, sessions = _nothing_pays(seed)
        res = tune_weights(rec, sessions=sessions, seed=seed, **kw)
        g, cf = res["gain"], res["gain"]["cross_fitted"]
        assert cf["folds"] == 5 and cf["more_configs"] >= 0
        assert 0 <= cf["same_as_chosen"] <= 5 and cf["se"] >= 0
        assert g["value"] >= 0  # each modality alone is on the grid: the best can only gain
        inside.append(g["value"])
        crossed.append(cf["value"])
        alarms += "above the noise" in gain_line(res)
    # the same cases: a gain of most of a hundredth; out of fold: none (a choice made on
    # four fifths of the cases tends to be worse), and a false alarm about as rare as 1.96
    # standard errors make it (2.5 %: here one in 12 at most)
    assert np.mean(inside) > 0.005 and np.mean(crossed) < np.mean(inside) / 4
    assert alarms <= 1
    # where fusing pays, it says so out of fold too
    rec, sessions = _two_halves()
    res = tune_weights(rec, sessions=sessions, **KW)
    cf = res["gain"]["cross_fitted"]
    assert cf["value"] > 1.96 * cf["se"] > 0 and cf["same_as_chosen"] >= 1
    line = gain_line(res)
    assert "chosen on 4/5 of them and scored on the rest" in line and "above the noise" in line


def _four_noises(seed, n=150):
    """Four modalities of noise and random next products (as :func:`_nothing_pays`, with
    one more modality): a search over mixes of four can overfit its validation cases."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:04d}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in range(n)]}))
    rec = Recommender.from_embeddings(cat, {
        m: Embeddings(rng.normal(size=(n, 6)).astype(np.float32), np.ones(n, bool), f"noise-{m}")
        for m in ("text", "image", "lexical", "clicks")}, fusion="intermediate")
    lists = [[ids[i] for i in rng.choice(n, 2, replace=False)] for _ in range(400)]
    return rec, _timed(lists)


def test_a_weighting_that_serves_worse_out_of_fold_gives_way_to_the_best_single_modality():
    """Where the cross-fitted gain is below the best single modality beyond the noise (the
    search's choices, made on four fifths of the cases, lose to that modality on the fifth
    left), that modality alone is served; ``single_if_worse=False`` keeps the search's mix.
    Seed 10: the search chose a mix of text and clicks (found by scanning seeds)."""
    from prodfusion.cli.tune import gain_line

    kw = dict(KW, objective="ndcg@15", calibrations=("none", "zscore"), selection="mean",
              slice_safe=False, seed=10)
    rec, sessions = _four_noises(10)
    res = tune_weights(rec, sessions=sessions, **kw)
    kept = tune_weights(rec, sessions=sessions, single_if_worse=False, **kw)
    cf = res["gain"]["cross_fitted"]
    assert cf == kept["gain"]["cross_fitted"] and cf["value"] < -1.96 * cf["se"]
    best = res["search"]["best_single"]
    assert res["single_if_worse"]["modality"] == best
    assert res["weights"] == {m: float(m == best) for m in res["weights"]}
    assert res["calibration"] == "none" and res["n0"] is None
    mix = kept["weights"]
    assert sum(x > 0 for x in mix.values()) > 1 and "single_if_worse" not in kept
    assert res["single_if_worse"]["instead_of"]["weights"] == mix
    assert res["validation_score"] == res["reference_scores"][f"{best} alone"]
    assert (f"was below {best} alone beyond the noise ({cf['value']:+.4f} ({cf['se']:.4f})): "
            f"{best} alone is served instead") in gain_line(res)
    assert "the fusion may serve worse" in gain_line(kept)
    with pytest.raises(ParameterError, match="single_if_worse"):
        tune_weights(rec, sessions=sessions, single_if_worse="yes", **kw)


def test_a_catalog_of_the_logs_own_products_warns_of_the_presence_leak(caplog):
    """Where every product is clicked somewhere in the log but each session shows new ones,
    the validation targets lack fitting-part clicks far more often than the catalog's
    products do: the tuning says so (a weighting could learn to recognise them; where they
    are 20 or more the protocol does not score them); a shop whose sessions revisit its
    products does not warn."""
    shop, sessions, _ = _shop()
    ids = shop.catalog.ids
    n = len(ids)
    rec = Recommender.from_embeddings(shop.catalog, {  # with a click modality to lack
        **shop.embeddings_, "clicks": Embeddings(np.ones((n, 8), np.float32),
                                                 np.ones(n, bool), "prod2vec")},
        fusion="intermediate")
    rec.prod2vec = shop.prod2vec
    assert tune_weights(shop, sessions=sessions, **KW).get("presence") is None  # no clicks
    rec.click_counts_ = np.array([sessions.product_counts().get(p, 0) for p in ids])
    with caplog.at_level("WARNING", logger="prodfusion.evaluation"):
        res = tune_weights(rec, sessions=sessions, **KW)
    assert res["presence"]["targets_no_clicks"] < 0.25 and not res["presence"]["warned"]
    assert "no training clicks against" not in caplog.text
    fresh = [[ids[i], ids[i + 60]] for i in range(60)]  # every session two new products
    rec.click_counts_ = np.ones(len(ids), dtype=np.int64)  # each clicked once in the log
    # every session two new products, 12 test cases: too few for the protocol to leave
    # them out as a log-made catalog's (tests/evaluation/test_protocol.py), so it warns
    with caplog.at_level("WARNING", logger="prodfusion.evaluation"):
        res = tune_weights(rec, sessions=_timed(fresh), **KW)
    assert res["presence"] == {"targets_no_clicks": 1.0, "catalog_no_clicks": 0.0,
                               "warned": True}
    assert ("tuning: 100% of the validation targets have no training clicks against 0.0% of "
            "the catalog's products") in caplog.text


def test_tuning_on_a_catalog_of_the_logs_own_products_does_not_learn_to_recognise_held_out_ones(
        monkeypatch):
    """Half the late sessions end in two products clicked nowhere else (a long tail), and the
    catalog holds only the log's products. Every title is the same, so the paper's equal
    weights rank each product without clicks first (text alone, cosine 1): under the rule
    before the forty-fourth session (``leave-last-out-all-cases``) that "recognises" the
    held-out-only targets and wins validation; the default protocol scores neither the test
    part's nor the validation splits' cases whose target has no fitting-part interaction
    (a spy on every split), so the trick scores nothing there."""
    import prodfusion.evaluation.retrieval as retrieval
    from prodfusion.encoders import Prod2Vec

    rng = np.random.default_rng(0)
    old = [f"o{i:03d}" for i in range(300)]
    early = [list(rng.choice(old, 8, replace=False)) for _ in range(150)]
    late = [list(rng.choice(old, 2, replace=False))
            + ([f"u{2 * i:03d}", f"u{2 * i + 1:03d}"] if i % 2
               else list(rng.choice(old, 2, replace=False))) for i in range(200)]
    ids = old + [p for s in late for p in s if p.startswith("u")]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ["same title"] * len(ids)}))
    keys = [f"k{i}" for i in range(350)]
    times = list(range(150)) + list(range(1000, 1200))
    sessions = Sessions(pl.DataFrame({
        "session": [k for k, s in zip(keys, early + late, strict=True) for _ in s],
        "position": [i for s in early + late for i in range(len(s))],
        "product_id": [p for s in early + late for p in s],
        "ts": [float(t) for t, s in zip(times, early + late, strict=True) for _ in s]}))
    text = Embeddings(np.ones((len(ids), 4), np.float32), np.ones(len(ids), bool), "constant")
    clicks = Prod2Vec(vector_size=8, epochs=2, workers=1).fit(sessions).encode(cat)
    rec = Recommender.from_embeddings(cat, {"text": text, "clicks": clicks},
                                      fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, epochs=2, workers=1)
    real, splits = retrieval.split_interactions, []

    def spy(*a, **kw):
        splits.append(real(*a, **kw))
        return splits[-1]

    monkeypatch.setattr(retrieval, "split_interactions", spy)
    kw = dict(sessions=sessions, repeats=2, cross_fit=False, tune_fallback=False,
              n0_grid=(None,))
    res = tune_weights(rec, **kw)
    assert len(splits) == 3  # the test part set aside, two validation splits
    for sp in splits:
        assert sp.info["log_catalog"]["applied"]
        seen = set(sp.train.frame["product_id"].to_list())
        assert all(ids[t] in seen for ho in sp.heldout.values() for t in ho.target_rows)
    lcs = res["split"]["log_catalog"]  # each validation split's, as the record keeps them
    assert len(lcs) == 2 and all(x["applied"] and x["n_cases_dropped"] > 0 for x in lcs)
    paper = "equal weights (calibration none)"
    assert res["reference_scores"][paper] < 0.005
    splits.clear()
    before = tune_weights(rec, protocol="leave-last-out-all-cases", **kw)
    assert not any(sp.info["log_catalog"]["applied"] for sp in splits)
    singles = max(before["reference_scores"][f"{m} alone"] for m in ("text", "clicks"))
    assert before["reference_scores"][paper] > 2 * singles
