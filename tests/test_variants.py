"""One Variant for offline and online: what `evaluate replay` ranks is what the service shows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.recommender import Recommender
from prodfusion.variants import BASELINE, Variant

N = 40


def _model(tmp_path):
    """40 products in 4 planted groups; the last 10 have no photo (so the image-only arm
    needs its text fallback for them, and for lists longer than 29 everywhere)."""
    rng = np.random.default_rng(3)
    labels = np.arange(N) % 4
    frame = pl.DataFrame({"product_id": [f"{i:04d}" for i in range(N)],
                          "title": [f"item {i}" for i in range(N)],
                          "category": [f"c{c}" for c in labels]})
    cat = Catalog(frame, source="variants-test")
    embs = {}
    for m in ("text", "image"):
        centres = rng.normal(size=(4, 8)) * 3
        v = (centres[labels] + rng.normal(scale=0.3, size=(N, 8))).astype(np.float32)
        mask = np.ones(N, dtype=bool)
        if m == "image":
            mask[-10:] = False
            v[~mask] = 0
        embs[m] = Embeddings(v, mask, f"planted-{m}")
    return Recommender.from_embeddings(cat, embs, fusion="intermediate").save(tmp_path / "m")


def _sessions():
    lists = [[f"{(i + j) % N:04d}" for j in range(3)] for i in range(0, N, 2)]
    return Sessions(pl.DataFrame({
        "session": [f"s{i}" for i, s in enumerate(lists) for _ in s],
        "position": [j for s in lists for j in range(len(s))],
        "product_id": [p for s in lists for p in s],
        "ts": [float(i) for i, s in enumerate(lists) for _ in s],
    }))


ARMS = {  # service arm -> the same variant as evaluate/replay reads it
    "img": ({"fusion": "intermediate", "modalities": ("image",), "fallback": ("text",)},
            {"fusion": "intermediate", "modalities": ["image"], "fallback": ["text"]}),
    "early": ({"fusion": "early", "modalities": ("text", "image")}, "early:text+image"),
}


def test_replay_and_service_return_identical_lists(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from prodfusion.evaluation.replay import replay
    from prodfusion.service.app import create_app
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    folder = _model(tmp_path)
    k = 33  # > 29 products with a photo besides the query: the fallback must fill every list
    # What replay ranks, per variant and query row, recorded where it ranks it.
    offline: dict[str, dict[int, list[int]]] = {}
    real = Variant.recommend_scored

    def spy(self, rec, query_rows, kk, **kw):
        rows, scores = real(self, rec, query_rows, kk, **kw)
        for q, r in zip(np.asarray(query_rows), rows, strict=True):
            offline.setdefault(self.fusion + ":" + "+".join(self.modalities), {})[int(q)] = \
                [int(x) for x in r if x >= 0]
        return rows, scores

    monkeypatch.setattr(Variant, "recommend_scored", spy)
    replay(ARMS["img"][1], ARMS["early"][1], model=folder, sessions=_sessions(), k=k,
           test_fraction=0.5, progress=False)
    assert set(offline) == {"intermediate:image", "early:text+image"}
    assert all(offline.values())

    exp = ExperimentConfig("same", salt="s", variants=tuple(
        VariantConfig(name, 1, folder, **arm) for name, (arm, _) in ARMS.items()))
    settings = ServiceSettings(experiment=exp, events=str(tmp_path / "ev.sqlite3"),
                               reload_interval_s=0)
    ids = [f"{i:04d}" for i in range(N)]
    checked = {name: 0 for name in ARMS}
    with TestClient(create_app(settings)) as client:
        alloc = client.app.state.allocation
        visitor = {name: next(f"v{i}" for i in range(10_000) if alloc.variant_of(f"v{i}") == name)
                   for name in ARMS}
        for name, key in (("img", "intermediate:image"), ("early", "early:text+image")):
            for q, rows in offline[key].items():
                got = client.get(f"/v1/similar/{ids[q]}?k={k}&visitor={visitor[name]}").json()
                assert got["variant"] == name
                assert [it["product_id"] for it in got["items"]] == [ids[r] for r in rows]
                checked[name] += 1
    assert min(checked.values()) >= 3  # several replayed queries per arm compared
    # the image-only arm really used its fallback: products without a photo got full lists
    no_photo = [q for q in offline["intermediate:image"] if q >= N - 10]
    assert no_photo and all(len(offline["intermediate:image"][q]) == k for q in no_photo)


def test_offline_baseline_is_the_served_baseline_definition():
    from prodfusion.service.experiments import VariantConfig

    served = VariantConfig("baseline", 1, "m", fusion="intermediate", modalities=("clicks",),
                           fallback=("text",)).variant("early", ("text",))
    assert (served.fusion, served.modalities, served.fallback) == \
        (BASELINE.fusion, BASELINE.modalities, BASELINE.fallback)
    with pytest.raises(ParameterError, match="fallback"):
        VariantConfig("x", 1, "m", fallback=("smell",))


def test_the_baseline_ranks_by_raw_cosines_whatever_the_models_weighting():
    """The paper's baseline on a model tuned to ``zmean`` with click confidence: Prod2Vec's
    own neighbours (it took the model's calibration before, and ``c(n)`` of the candidate
    reordered them: on H&M's pairs it scored below Prod2Vec alone)."""
    rng = np.random.default_rng(0)
    n = 30
    cat = Catalog(pl.DataFrame({"product_id": [f"{i:03d}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    embs = {m: Embeddings(rng.normal(size=(n, 6)).astype(np.float32), np.ones(n, bool), m)
            for m in ("text", "clicks")}
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.click_counts_ = rng.integers(1, 50, size=n)
    rec.weights, rec.calibration, rec.click_n0 = {"text": 0.3, "clicks": 0.7}, "zmean", 2.0
    rec._fusers, rec._searchers = {}, {}
    q = np.arange(n)
    raw = Variant("intermediate", ("clicks",), paper=True).recommend(rec, q, 5)
    assert np.array_equal(BASELINE.recommend(rec, q, 5), raw)
    tuned = Variant("intermediate", ("clicks",)).recommend(rec, q, 5)
    assert not np.array_equal(tuned, raw)  # the model's weighting does reorder them


def test_a_variants_weights_go_on_top_of_the_models_weighting_as_similar_serves_them(tmp_path):
    """A config's ``weights`` keep the model's calibration, click confidence and fallback,
    as ``prodfusion similar --weights`` does: an offline "these weights instead" is the list
    served. Until the forty-third session they ranked by raw cosines (no ``n0``, no
    fallback): on the demo, popularity set to 0 that way found no held-out next click, as
    every click-less product came first."""
    rec = Recommender.load(_tuned_model(tmp_path))
    q = np.arange(len(rec.catalog))
    w = {"text": 0.5, "image": 0.0, "clicks": 0.5}
    served = np.array([rec.catalog.rows_of(rec.similar(i, k=5, weights=w)[0])
                       for i in rec.catalog.ids])
    v = Variant("intermediate", ("text", "image", "clicks"), weights=w)
    assert np.array_equal(v.recommend(rec, q, 5), served)
    wt = v.weighting_for(rec)
    assert (wt.calibration, wt.n0, wt.fallback) == ("zmean", 2.0, rec.weighting().fallback)
    # on their own (the former rule) they rank otherwise: raw cosines, no click confidence
    alone = rec.fuser("intermediate", weighting=v.weighting()).topk(q, 5)[0]
    assert not np.array_equal(alone, served)
    # a calibration given replaces the model's; n0 given replaces its n0 (ignored before)
    assert Variant(weights=w, calibration="none").weighting_for(rec).calibration == "none"
    assert Variant(n0=7.0).weighting_for(rec).n0 == 7.0
    assert Variant(n0=7.0).weighting_for(rec).calibration == "zmean"
    with pytest.raises(ParameterError, match="n0"):
        Variant(n0=-1.0).weighting_for(rec)
    assert Variant().weighting_for(rec) is None  # the model's own


def _tuned_model(tmp_path):
    """A saved model tuned to ``zmean`` with click confidence, under which the model's own
    weighting reorders Prod2Vec's neighbours (the paper's baseline must not)."""
    rng = np.random.default_rng(0)
    n = 30
    cat = Catalog(pl.DataFrame({"product_id": [f"{i:03d}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    embs = {}
    for m in ("text", "image", "clicks"):
        mask = np.ones(n, bool)
        if m == "clicks":
            mask[-5:] = False  # five products without clicks: the text fallback serves them
        v = rng.normal(size=(n, 6)).astype(np.float32)
        v[~mask] = 0
        embs[m] = Embeddings(v, mask, m)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.click_counts_ = rng.integers(1, 50, size=n)
    rec.weights = {"text": 0.3, "image": 0.0, "clicks": 0.7}  # tuned: the photos ignored
    rec.calibration, rec.click_n0 = "zmean", 2.0
    return rec.save(tmp_path / "tuned")


def test_a_paper_service_arm_serves_the_offline_baseline_on_a_tuned_model(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from prodfusion.service.app import create_app
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    folder = _tuned_model(tmp_path)
    rec = Recommender.load(folder)
    assert rec.calibration == "zmean" and rec.click_n0 == 2.0  # the tuning survived the save
    n, k = len(rec.catalog), 5
    q = np.arange(n)
    offline = BASELINE.recommend(rec, q, k)
    arms = {"paper": True, "tuned": False}
    exp = ExperimentConfig("p", salt="s", variants=tuple(
        VariantConfig(name, 1, folder, fusion="intermediate", modalities=("clicks",),
                      fallback=("text",), paper=paper) for name, paper in arms.items()))
    settings = ServiceSettings(experiment=exp, events=str(tmp_path / "ev.sqlite3"),
                               reload_interval_s=0)
    ids = rec.catalog.ids
    with TestClient(create_app(settings)) as client:
        alloc = client.app.state.allocation
        visitor = {a: next(f"v{i}" for i in range(10_000) if alloc.variant_of(f"v{i}") == a)
                   for a in arms}
        assert client.get("/readyz").json()["variants"]["paper"]["paper"] is True
        served = {a: [] for a in arms}
        for row in q:
            for a in arms:
                got = client.get(f"/v1/similar/{ids[row]}?k={k}&visitor={visitor[a]}").json()
                assert got["paper"] is arms[a]
                served[a].append([rec.catalog.row_of(it["product_id"]) for it in got["items"]])
        why = client.get(f"/v1/similar/{ids[0]}?k={k}&visitor={visitor['paper']}"
                         "&explain=true").json()["items"]
    assert np.array_equal(np.array(served["paper"]), offline)
    assert not np.array_equal(np.array(served["tuned"]), offline)  # the model's weighting differs
    # explained by the weighting it ranks by: raw cosines, equal weights, no click confidence
    clicks = [it["explain"]["modalities"]["clicks"] for it in why]
    assert all(c["calibrated"] == pytest.approx(c["raw"]) for c in clicks if c["raw"] is not None)
    # a product without clicks: the fallback's items, scored and explained by raw cosines
    # (the photo counts, though the model's tuned weighting gives it 0)
    cold = n - 1
    two = VariantConfig("two", 1, folder, fusion="intermediate", modalities=("clicks",),
                        fallback=("text", "image"), paper=True)
    exp2 = ExperimentConfig("p2", salt="s", variants=(two,))
    with TestClient(create_app(ServiceSettings(
            experiment=exp2, events=str(tmp_path / "ev2.sqlite3"), reload_interval_s=0))) as c2:
        got = c2.get(f"/v1/similar/{ids[cold]}?k={k}&visitor=v1&explain=true").json()["items"]
    want = Variant("intermediate", ("text", "image"), paper=True).recommend(rec, [cold], k)[0]
    assert [rec.catalog.row_of(it["product_id"]) for it in got] == want.tolist()
    for it in got:
        e = it["explain"]
        assert e["fallback"] is True and set(e["modalities"]) == {"text", "image"}
        assert e["score"] == pytest.approx(it["score"], abs=1e-5)
        assert all(m["calibrated"] == pytest.approx(m["raw"]) and m["weight"] > 0
                   for m in e["modalities"].values())


def test_paper_arm_settings(tmp_path):
    from prodfusion.errors import DataError
    from prodfusion.service.experiments import VariantConfig
    from prodfusion.service.settings import load_settings

    folder = _tuned_model(tmp_path)
    cfg = tmp_path / "serve.toml"
    base = f'[experiment]\nname = "e"\n[[experiment.variants]]\nname = "b"\nmodel = "{folder}"\n'
    cfg.write_text(base + 'modalities = ["clicks"]\nfallback = ["text"]\npaper = true\n')
    (v,) = load_settings(cfg).experiment.variants
    assert v.paper and v.variant("intermediate", ("text",)).paper
    cfg.write_text(base + "paper = 'yes'\n")
    with pytest.raises(DataError, match=r"serve\.toml: experiment\.variants\[0\]: .*'paper'"):
        load_settings(cfg)  # the file and the table named, as for an unknown key
    with pytest.raises(ParameterError, match="one of them"):
        VariantConfig("x", 1, folder, paper=True, profile="pairs")
    with pytest.raises(ParameterError, match="searched live"):
        VariantConfig("x", 1, folder, paper=True, lists=tmp_path / "l.parquet")
