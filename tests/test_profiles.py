"""Weighting profiles: one model, several tuned weightings (``tune --profile NAME``), each
served by ``similar``, variants, exports and the service's arms; the default left alone."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from prodfusion.errors import ModelError, ParameterError
from prodfusion.fusion.weights import Weighting
from prodfusion.recommender import Recommender
from prodfusion.variants import Variant
from tests.evaluation.test_tuning import KW, _pairs_by, _shop


@pytest.fixture(scope="module")
def two_profiles():
    """The 120-product shop whose sessions follow the titles, with co-purchase pairs that
    follow the photos: the two sources want opposite weightings (no single one serves
    both), so each gets its own profile."""
    rec, sessions, _ = _shop()
    ids = list(rec.catalog.ids)
    pairs = _pairs_by(np.asarray(rec.embeddings_["image"].vectors), ids,
                      np.random.default_rng(5))
    before = rec.weighting()
    res_s = rec.tune(sessions, pairs, profile="baskets", validate_on="sessions", **KW)
    res_p = rec.tune(sessions, pairs, profile="similar", validate_on="pairs", **KW)
    return rec, sessions, pairs, before, res_s, res_p


def _brute_topk(rec, wt: Weighting, q: int, k: int) -> list[int]:
    """The top ``k`` of query row ``q`` under ``wt``, from the N × N fused similarities."""
    from prodfusion.fusion.intermediate import IntermediateFusion

    wt = rec.weighting(rec.available_modalities, wt)  # with the calibration statistics
    s = IntermediateFusion(modalities=rec.available_modalities, weighting=wt).fit(
        rec.embeddings_).similarity([q])[0]
    s[q] = -np.inf
    return [int(x) for x in np.lexsort((np.arange(len(s)), -s))[:k]]


def test_each_profile_keeps_its_own_tuning_and_the_default_is_untouched(two_profiles):
    rec, _, _, before, res_s, res_p = two_profiles
    assert rec.weighting() == before  # the default weighting, fusion and record unchanged
    assert "tuning" not in rec.manifest_
    assert set(rec.profiles) == {"baskets", "similar"}
    ws = rec.profiles["baskets"]["weighting"]["weights"]
    wp = rec.profiles["similar"]["weighting"]["weights"]
    assert ws["text"] > ws["image"] and wp["image"] > wp["text"]  # the planted answers
    assert res_s["profile"] == "baskets" and res_p["search"]["validate_on"] == "pairs"
    assert rec.profiles["similar"]["tuning"]["validation_score"] == res_p["validation_score"]
    # each profile ranks as its weighting does, computed from the N x N similarities
    for name in ("baskets", "similar"):
        wt = rec.profile_weighting(name)
        for q in (0, 7, 55):
            ids, _ = rec.similar(rec.catalog.ids[q], k=6, profile=name)
            assert [rec.catalog.row_of(i) for i in ids] == _brute_topk(rec, wt, q, 6)
    a, _ = rec.similar("0003", k=6, profile="baskets")
    b, _ = rec.similar("0003", k=6, profile="similar")
    assert list(a) != list(b)
    # weights on top of a profile override its weights, keep its calibration
    both = rec.profile_weighting("similar", weights={"text": 1, "image": 0})
    assert both.calibration == rec.profile_weighting("similar").calibration
    ids, _ = rec.similar("0003", k=6, profile="similar", weights={"text": 1, "image": 0})
    assert [rec.catalog.row_of(i) for i in ids] == _brute_topk(rec, both, 3, 6)


def test_profiles_survive_save_and_load_and_variants_rank_by_them(two_profiles, tmp_path):
    from prodfusion.evaluation.retrieval import parse_variant

    rec = two_profiles[0]
    folder = rec.save(tmp_path / "m")
    man = json.loads((folder / "manifest.json").read_text())
    assert set(man["settings"]["profiles"]) == {"baskets", "similar"}
    back = Recommender.load(folder)
    assert back.profiles.keys() == rec.profiles.keys()
    for name in ("baskets", "similar"):
        assert back.profile_weighting(name) == rec.profile_weighting(name)
        r1, s1 = rec.similar_rows(np.arange(20), 5, profile=name)
        r2, s2 = back.similar_rows(np.arange(20), 5, profile=name)
        np.testing.assert_array_equal(r1, r2)
        # a variant naming the profile ranks what similar() does (evaluation, replay, service)
        v = parse_variant({"fusion": "intermediate", "modalities": ["text", "image"],
                           "profile": name})
        assert v.profile == name and f"[profile {name}]" in v.label
        r3, _ = v.recommend_scored(back, np.arange(20), 5)
        np.testing.assert_array_equal(r3, r2)
        levels = v.level_scorers(back)
        np.testing.assert_allclose(levels[0](np.array([4]))[0][r2[4]], s2[4], rtol=1e-5)


def test_a_folder_without_profiles_loads_with_none_and_bad_names_are_refused(two_profiles,
                                                                              tmp_path):
    rec = two_profiles[0]
    folder = rec.save(tmp_path / "m")
    man = json.loads((folder / "manifest.json").read_text())
    del man["settings"]["profiles"]  # a folder written before profiles existed
    (folder / "manifest.json").write_text(json.dumps(man))
    old = Recommender.load(folder)
    assert old.profiles == {}
    with pytest.raises(ParameterError, match=r"profile 'similar' is not in this model \(it has "
                                             r"none\).*--profile similar"):
        old.similar("0001", profile="similar")
    with pytest.raises(ParameterError, match=r"it has 'baskets', 'similar'"):
        rec.similar("0001", profile="nope")
    with pytest.raises(ParameterError, match="profile"):
        rec.similar("0001", profile="../x")
    with pytest.raises(ParameterError, match="profile"):
        Variant(profile="")
    man["settings"]["profiles"] = {"x": {"weighting": {"weights": {"text": -1}}}}
    (folder / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelError, match="settings.profiles"):
        Recommender.load(folder)


def test_a_profile_may_not_change_what_it_shares_with_the_model(two_profiles):
    from prodfusion.model_state import apply_profile

    rec, sessions, pairs = two_profiles[:3]
    res = dict(rec.profiles["baskets"]["tuning"])
    before = rec.profiles
    # an n0 whose click counts are not the model's
    with pytest.raises(ParameterError, match=r"n0 2.*click counts"):
        apply_profile(rec, "x", {**res, "n0": 2.0}, sessions=sessions, pairs=pairs)
    # another cooc decay than the model's co-occurrences
    rec.cooc_ = SimpleNamespace(decay=0.0)
    try:
        with pytest.raises(ParameterError, match="cooc decay 1"):
            apply_profile(rec, "x", {**res, "cooc_decay": 1.0})
    finally:
        rec.cooc_ = None
    with pytest.raises(ParameterError, match="profile"):
        rec.tune(sessions, profile="a b", **KW)
    assert rec.profiles == before


def test_cli_tune_profile_similar_and_export(two_profiles, tmp_path, capsys):
    from prodfusion.batch.export import export_lists, read_lists
    from prodfusion.cli import main

    rec, sessions = two_profiles[:2]
    bare = Recommender.load(rec.save(tmp_path / "m"))
    bare.profiles_ = {}
    model = bare.save(tmp_path / "m")
    sessions.frame.select("session", "product_id", "ts").write_csv(tmp_path / "views.csv")
    data = ["--interactions", str(tmp_path / "views.csv"), "--session-cols", "session",
            "--item-col", "product_id", "--time-col", "ts", "--p2v-dim", "8", "--p2v-epochs",
            "2", "--workers", "1", "--objective", "hitrate@5", "--n0", "none", "--quiet"]
    before = (model / "manifest.json").read_bytes()
    assert main(["tune", str(model), *data, "--profile", "views", "--dry-run"]) == 0
    assert (model / "manifest.json").read_bytes() == before
    assert main(["tune", str(model), *data, "--profile", "bad name"]) == 2
    assert "profile" in capsys.readouterr().err
    assert main(["tune", str(model), *data, "--profile", "views"]) == 0
    out = capsys.readouterr().out
    assert "profile 'views'" in out and "default weighting is unchanged" in out
    man = json.loads((model / "manifest.json").read_text())
    assert list(man["settings"]["profiles"]) == ["views"]
    assert man["settings"].get("weighting") == json.loads(before)["settings"].get("weighting")
    assert main(["similar", str(model), "0002", "-k", "4", "--profile", "views", "--json",
                 "--explain"]) == 0
    got = json.loads(capsys.readouterr().out)
    loaded = Recommender.load(model)
    ids, _ = loaded.similar("0002", k=4, profile="views")
    assert got["profile"] == "views" and [r["product_id"] for r in got["results"]] == list(ids)
    w = man["settings"]["profiles"]["views"]["weighting"]["weights"]
    assert got["results"][0]["explain"]["modalities"]["image"]["weight"] == pytest.approx(
        w["image"])
    assert main(["similar", str(model), "0002", "--profile", "nope"]) == 2
    assert "profile 'nope' is not in this model" in capsys.readouterr().err
    # --weights on top of a profile: the output says so (JSON and table)
    assert main(["similar", str(model), "0002", "-k", "4", "--profile", "views", "--weights",
                 "text=1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["profile"] == "views" and got["weights"] == {"text": 1.0}
    ids, _ = loaded.similar("0002", k=4, profile="views", weights={"text": 1.0})
    assert [r["product_id"] for r in got["results"]] == list(ids)
    assert main(["similar", str(model), "0002", "-k", "2", "--profile", "views",
                 "--weights", "text=1"]) == 0
    assert "(profile 'views' with its weights replaced by the options given" in \
        capsys.readouterr().err
    # without --profile: the model's own weighting, and a hint that profiles exist
    assert main(["similar", str(model), "0002", "-k", "2"]) == 0
    assert "it also has the weighting profiles views: --profile NAME" in \
        capsys.readouterr().err
    # every product's list ranked by the profile, and the file says so
    lists = tmp_path / "lists.parquet"
    rep = export_lists(model, lists, k=4, profile="views", progress=False)
    assert rep["meta"]["profile"] == "views"
    table = read_lists(lists)
    r, _ = loaded.similar_rows(np.arange(len(loaded.catalog)), 4, profile="views")
    assert table.column("ids").to_pylist() == [list(x) for x in loaded.ids_of(r)]


def test_service_arms_serve_their_profiles_live_and_from_lists(two_profiles, tmp_path):
    from fastapi.testclient import TestClient

    from prodfusion.batch.export import export_lists
    from prodfusion.service.app import create_app
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    rec = two_profiles[0]
    model = rec.save(tmp_path / "m")
    lists = tmp_path / "similar.parquet"
    export_lists(model, lists, k=5, profile="similar", progress=False)

    def settings(*arms, name="p"):
        return ServiceSettings(experiment=ExperimentConfig(name, variants=arms),
                               events=str(tmp_path / f"{name}.sqlite3"), reload_interval_s=0)

    want = {p: list(rec.similar("0003", k=5, profile=p)[0]) for p in ("baskets", "similar")}
    for p, kw in (("baskets", {}), ("similar", {}), ("similar", {"lists": lists})):
        arm = VariantConfig(p, 1, model, profile=p, **kw)
        with TestClient(create_app(settings(arm, name=f"{p}{len(kw)}"))) as client:
            body = client.get("/v1/similar/0003", params={"visitor": "v", "k": 5}).json()
            assert [it["product_id"] for it in body["items"]] == want[p]
            assert body["profile"] == p and body["fusion"] == "intermediate"  # the arm's own
            assert client.get("/readyz").json()["variants"][p]["profile"] == p
            ready = client.get("/readyz").text.replace(" ", "")
            assert '"profiles":["baskets","similar"]' in ready
            if kw:  # the lists file says which profile ranked it
                assert '"profile":"similar"' in ready
            why = client.get("/v1/similar/0003", params={"visitor": "v", "k": 5,
                                                         "explain": "true"}).json()
            w = rec.profiles[p]["weighting"]["weights"]["image"]
            assert why["items"][0]["explain"]["modalities"]["image"]["weight"] == \
                pytest.approx(w)
    # a second widget: the request asks for another of the model's profiles, whatever the
    # arm's own (its lists file, ranked by the arm's, is not read for it)
    arm = VariantConfig("similar", 1, model, profile="similar", lists=lists)
    with TestClient(create_app(settings(arm, name="widget"))) as client:
        q = {"visitor": "v", "k": 5}
        own = client.get("/v1/similar/0003", params=q).json()
        other = client.get("/v1/similar/0003", params={**q, "profile": "baskets"}).json()
        assert [it["product_id"] for it in own["items"]] == want["similar"]
        assert [it["product_id"] for it in other["items"]] == want["baskets"]
        assert (own["profile"], other["profile"], other["variant"]) == \
            ("similar", "baskets", "similar")
        assert own["request_id"] != other["request_id"]
        why = client.get("/v1/similar/0003", params={**q, "profile": "baskets",
                                                     "explain": "true"}).json()
        assert why["items"][0]["explain"]["modalities"]["image"]["weight"] == \
            pytest.approx(rec.profiles["baskets"]["weighting"]["weights"]["image"])
        bad = client.get("/v1/similar/0003", params={**q, "profile": "nope"})
        assert bad.status_code == 404
        assert bad.json()["detail"] == ("Profile 'nope' is not in this model (it has "
                                        "'baskets', 'similar').")
        assert client.get("/v1/similar/0003", params={**q, "profile": "a b"}).status_code == 422
        assert client.get("/v1/similar/0003", params={**q, "profile": "similar"}).json()[
            "items"] == own["items"]
    paper = VariantConfig("paper", 1, model, paper=True)
    with TestClient(create_app(settings(paper, name="paper"))) as client:
        got = client.get("/v1/similar/0003", params={"visitor": "v", "profile": "baskets"})
        assert got.status_code == 422 and "paper" in got.json()["detail"]
    # an arm whose lists were ranked by another weighting, or a profile the model lacks
    from prodfusion.service.lists import load_lists

    with pytest.raises(ModelError, match="export the lists with the variant's --profile"):
        load_lists(lists, rec, VariantConfig("b", 1, model, profile="baskets"))
    with pytest.raises(Exception, match="profile 'nope' is not in this model"):
        with TestClient(create_app(settings(VariantConfig("n", 1, model, profile="nope"),
                                            name="n"))):
            pass


def test_evaluation_scores_each_profile_on_the_held_out_part(two_profiles):
    """`evaluate retrieval` retrains on its training part and keeps the model's profiles:
    the profile tuned on sessions scores the held-out sessions above the one tuned on the
    photo-following pairs (the planted conflict), each as served."""
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    rec, sessions, pairs = two_profiles[:3]
    res = evaluate_retrieval(rec, sessions=sessions, pairs=pairs, k=5, n_boot=10,
                             progress=False, variants=[
                                 {"modalities": ["text", "image"], "profile": "baskets"},
                                 {"modalities": ["text", "image"], "profile": "similar"}])

    def hr(label, source):
        return next(x["hit_rate"]["value"] for x in res["rows"]
                    if x["variant"] == label and x["slice"] == "all" and x["source"] == source)

    b = "intermediate:text+image [profile baskets]"
    p = "intermediate:text+image [profile similar]"
    assert hr(b, "sessions") > hr(p, "sessions")
    assert hr(p, "pairs") > hr(b, "pairs")


def test_evaluation_by_default_scores_each_profile(two_profiles):
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    rec, sessions = two_profiles[:2]
    res = evaluate_retrieval(rec, sessions=sessions, k=5, n_boot=10, progress=False,
                             fusions=("intermediate",))
    labels = {x["variant"] for x in res["rows"]}
    assert {"intermediate:text+image [profile baskets]",
            "intermediate:text+image [profile similar]"} <= labels
