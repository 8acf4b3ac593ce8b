"""The service serves backfilled results (``score`` null, ``explain.backfill``), live and from
an exported lists file, and the web page labels them; never a NaN in the JSON."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from prodfusion.batch.export import export_lists
from prodfusion.recommender import Recommender
from prodfusion.service.app import create_app
from prodfusion.service.settings import ServiceSettings

from .helpers import make_catalog, planted_embeddings


def _clicks_only_model(folder):
    """40 products, the click modality only; the last two have no clicks (cold)."""
    cat = make_catalog(folder, 40, images=False)
    embs = planted_embeddings(40, np.arange(40) % 4, 0)
    rec = Recommender.from_embeddings(cat, {"clicks": embs["clicks"]}, fusion="intermediate")
    rec.click_counts_ = np.r_[np.arange(38, 0, -1), 0, 0]  # 0000 most clicked
    return rec.save(folder / "model")


def test_backfilled_results_have_null_scores_live_and_from_lists(tmp_path):
    model = _clicks_only_model(tmp_path)
    lists = tmp_path / "lists.parquet"
    export_lists(model, lists, k=5, progress=False)
    for name, kw in (("live", {"cache_size": 0}), ("lists", {"lists": lists})):
        settings = ServiceSettings.for_model(model, events=str(tmp_path / f"{name}.sqlite3"),
                                             reload_interval_s=0, **kw)
        with TestClient(create_app(settings)) as client:
            r = client.get("/v1/similar/0039", params={"visitor": "v1", "k": 5})
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            # no clicks: the five most clicked products, scored null
            assert [it["product_id"] for it in items] == ["0000", "0001", "0002", "0003",
                                                          "0004"]
            assert all(it["score"] is None for it in items)
            warm = client.get("/v1/similar/0005", params={"visitor": "v1", "k": 5}).json()
            assert all(isinstance(it["score"], float) for it in warm["items"])
    with TestClient(create_app(ServiceSettings.for_model(
            model, events=str(tmp_path / "ex.sqlite3"), reload_interval_s=0))) as client:
        body = client.get("/v1/similar/0039",
                          params={"visitor": "v1", "k": 3, "explain": "true"}).json()
        assert all(it["explain"]["backfill"] == "popular" for it in body["items"])
        assert all(v["raw"] is None for it in body["items"]
                   for v in it["explain"]["modalities"].values())


def test_the_fallback_index_is_built_when_the_model_loads_not_on_the_first_cold_request(
        tmp_path):
    """Weights on the clicks alone over an approximate index: a product without clicks is
    answered through the fallback's own index, built on first use (minutes at a million
    products). The service builds it while loading the model (for each fusion served), so
    no request for a new product waits for it."""
    from prodfusion.index import IndexSettings

    cat = make_catalog(tmp_path, 40, images=False)
    embs = planted_embeddings(40, np.arange(40) % 4, 0)
    rec = Recommender.from_embeddings(
        cat, embs, fusion="intermediate", index="hnsw",
        index_settings=IndexSettings(exact_below=0, reduce_dim=None, min_candidates=16))
    rec.weights, rec.calibration, rec.zero_weight_fallback = \
        {"text": 0.0, "image": 0.0, "clicks": 1.0}, "zmean", True
    model = rec.save(tmp_path / "model")
    loaded = Recommender.load(model)
    assert loaded.fallback_query() == 38  # the first product without clicks
    assert loaded.fallback_query(fusion="late") is None  # the tie-break ranks them
    settings = ServiceSettings.for_model(model, events=str(tmp_path / "ev.sqlite3"),
                                         reload_interval_s=0, cache_size=0)
    with TestClient(create_app(settings)) as client:
        served = client.app.state.registry.get("default")[0].recommender
        routed = [s for s in served._searchers.values() if hasattr(s, "served")]
        assert routed and all(hasattr(s._fallback, "topk") for s in routed)  # built
        r = client.get("/v1/similar/0039", params={"visitor": "v1", "k": 5})
        items = r.json()["items"]
        assert len(items) == 5 and all(it["score"] < -500 for it in items)  # last resort
