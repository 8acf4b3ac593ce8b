"""Serving precomputed lists: the lists answer exactly what live search answers, a product
added after the export falls back to live search, /metrics says which path answered, and a
new lists file is picked up atomically (a broken one refused)."""

from __future__ import annotations

import os
import re

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from prodfusion.batch.export import export_lists
from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ModelError
from prodfusion.recommender import Recommender
from prodfusion.service.app import create_app
from prodfusion.service.settings import ServiceSettings

from .helpers import make_model


def _items(client, pid, **params):
    r = client.get(f"/v1/similar/{pid}", params={"visitor": "v1", **params})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["product"], body["items"]


def _same(got, want):
    """Same product, same ids in the same order, scores equal to float32 rounding (the export
    scores a batch of queries with one matrix product, live search one query: BLAS may round
    the last bit differently)."""
    (p1, i1), (p2, i2) = got, want
    assert p1 == p2
    assert [{**it, "score": 0} for it in i1] == [{**it, "score": 0} for it in i2]
    np.testing.assert_allclose([it["score"] for it in i1], [it["score"] for it in i2],
                               rtol=0, atol=1e-6)
    return True


def _answers(client) -> dict[str, float]:
    text = client.get("/metrics").text
    pattern = r'prodfusion_similar_answers_total\{path="(\w+)"\} ([0-9.e+]+)'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model A (40 products), its lists (k=10), and model B = A + one new product."""
    base = tmp_path_factory.mktemp("lists")
    a = make_model(base / "a")
    lists = base / "lists.parquet"
    export_lists(a, lists, k=10, progress=False)
    rec = Recommender.load(a)
    frame = rec.catalog.frame[:1].with_columns(pl.lit("new-1").alias("product_id"),
                                                pl.lit("Dress number new").alias("title"))
    new = {m: Embeddings(np.asarray(e.vectors[:1], dtype=np.float32) + 0.01, np.ones(1, bool),
                         e.spec) for m, e in rec.embeddings_.items()}
    rec.add_products(Catalog(frame, source="new"), new)
    b = rec.save(base / "b")
    return a, b, lists


def _settings(model, tmp_path, **kw):
    kw.setdefault("reload_interval_s", 0)
    return ServiceSettings.for_model(model, events=str(tmp_path / "ev.sqlite3"), **kw)


def test_lists_serve_exactly_the_live_lists_and_new_products_fall_back(models, tmp_path):
    a, b, lists = models
    ids = list(Recommender.load(a).catalog.ids)
    with TestClient(create_app(_settings(a, tmp_path / "live", cache_size=0))) as live, \
            TestClient(create_app(_settings(b, tmp_path / "lists", lists=lists))) as served, \
            TestClient(create_app(_settings(b, tmp_path / "liveb", cache_size=0))) as live_b:
        for pid in ids:
            for k in (10, 3):
                assert _same(_items(served, pid, k=k), _items(live, pid, k=k))
        assert _answers(served) == {"lists": 80.0}
        # the new product is not in the lists: live search over model B answers it
        product, items = _items(served, "new-1", k=10)
        assert product["product_id"] == "new-1"
        assert (product, items) == _items(live_b, "new-1", k=10)
        assert items[0]["product_id"] == "0000"  # planted: a copy of product 0
        assert _answers(served) == {"lists": 80.0, "live": 1.0}
        # in B the new product is a neighbour of 0000, in the (older) lists it is not
        assert "new-1" in {it["product_id"] for it in _items(live_b, "0000", k=10)[1]}
        assert "new-1" not in {it["product_id"] for it in _items(served, "0000", k=10)[1]}
        # more than the file's k, or a filter: live search (then the result cache)
        assert _items(served, "0004", k=12) == _items(live_b, "0004", k=12)
        assert _items(served, "0004", k=5, same_category="true") == \
            _items(live_b, "0004", k=5, same_category="true")
        _items(served, "0004", k=12)
        assert _answers(served) == {"lists": 81.0, "live": 3.0, "cache": 1.0}
        assert served.get("/v1/similar/nope").status_code == 404
        ready = served.get("/readyz").json()
        assert ready["lists"]["default"]["products"] == 40
        assert ready["lists"]["default"]["layout"] == "arrow"


def test_a_product_retired_after_the_export_is_never_served_from_the_lists(models, tmp_path):
    """Model C = A with one product retired (`prodfusion add --retire-missing`): a list of the
    older file that holds it is answered by live search, without it; the others from the
    file; the retired product's own page still gets its list."""
    a, _, lists = models
    rec = Recommender.load(a)
    listed = [str(x) for x in rec.similar("0003", k=10)[0]]
    gone = listed[4]
    rec.retire([gone])
    c = rec.save(tmp_path / "c")
    with TestClient(create_app(_settings(c, tmp_path / "lists", lists=lists))) as served:
        _, items = _items(served, "0003", k=10)
        shown = [it["product_id"] for it in items]
        assert gone not in shown and len(shown) == 10
        assert shown[:4] == listed[:4] and shown[4:9] == listed[5:]
        assert _answers(served) == {"live": 1.0}
        orig = Recommender.load(a)  # what the file was exported from
        holding = [p for p in orig.catalog.ids
                   if gone in set(str(x) for x in orig.similar(p, k=10)[0])]
        assert len(holding) > 1
        free = next(p for p in rec.catalog.ids if p not in holding and p != "0003")
        _items(served, free, k=10)
        assert _answers(served) == {"live": 1.0, "lists": 1.0}
        assert len(_items(served, gone, k=10)[1]) == 10


def test_a_product_re_encoded_after_the_export_is_answered_live(models, tmp_path):
    """Model D = A with one product's title and vectors replaced (`prodfusion add` of a
    feed that changed it): its own list and every list of the older file holding it are
    answered by live search, with its new vectors; the others from the file."""
    a, _, lists = models
    rec = Recommender.load(a)
    listed = [str(x) for x in rec.similar("0003", k=10)[0]]
    moved = listed[2]
    row = int(np.flatnonzero(rec.catalog.ids == moved)[0])
    far = int(np.flatnonzero(rec.catalog.ids == "0039")[0])
    frame = rec.catalog.frame[row:row + 1].with_columns(pl.lit("Renamed product").alias("title"))
    vectors = {m: Embeddings(np.asarray(e.vectors[far:far + 1], np.float32), np.ones(1, bool),
                             e.spec) for m, e in rec.embeddings_.items() if m != "clicks"}
    rec.update_products(Catalog(frame), vectors)
    d = rec.save(tmp_path / "d")
    assert Recommender.load(d).updated_[row] > 0  # kept in the folder (updated.npy)
    with TestClient(create_app(_settings(d, tmp_path / "lists", lists=lists))) as served, \
            TestClient(create_app(_settings(d, tmp_path / "live", cache_size=0))) as live:
        assert _same(_items(served, "0003", k=10), _items(live, "0003", k=10))
        assert _items(served, moved, k=10)[0]["title"] == "Renamed product"
        assert _answers(served) == {"live": 2.0}
        orig = Recommender.load(a)
        free = next(p for p in orig.catalog.ids if p != moved
                    and moved not in {str(x) for x in orig.similar(p, k=10)[0]})
        _items(served, free, k=10)
        assert _answers(served) == {"live": 2.0, "lists": 1.0}
    export_lists(d, tmp_path / "fresh.parquet", k=10, progress=False)  # a new export serves it
    with TestClient(create_app(_settings(d, tmp_path / "l2",
                                         lists=tmp_path / "fresh.parquet"))) as served:
        _items(served, "0003", k=10)
        assert _answers(served) == {"lists": 1.0}


@pytest.mark.parametrize("layout", ["sqlite", "memory"])
def test_other_layouts_serve_the_same(models, tmp_path, layout):
    a, _, lists = models
    with TestClient(create_app(_settings(a, tmp_path / "l", lists=lists,
                                         lists_layout=layout))) as c, \
            TestClient(create_app(_settings(a, tmp_path / "v", cache_size=0))) as live:
        for pid in ("0000", "0017", "0039"):
            assert _same(_items(c, pid, k=10), _items(live, pid, k=10))
        assert _answers(c) == {"lists": 3.0}


def test_lists_of_another_fusion_are_refused(models, tmp_path):
    a, _, _ = models
    early = tmp_path / "early.parquet"
    export_lists(a, early, k=5, fusion="early", progress=False)
    with pytest.raises(ModelError, match="holds early fusion .* serves intermediate"):
        with TestClient(create_app(_settings(a, tmp_path, lists=early))):
            pass


def test_hot_reload_of_the_lists_file(models, tmp_path):
    a, _, _ = models
    path = tmp_path / "current.parquet"
    export_lists(a, path, k=4, progress=False)
    with TestClient(create_app(_settings(a, tmp_path, lists=path))) as c:
        assert len(_items(c, "0001", k=4)[1]) == 4
        assert c.get("/readyz").json()["lists"]["default"]["k"] == 4
        export_lists(a, path, k=6, progress=False)  # replaces the file atomically
        os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 10**9))  # coarse clocks
        assert c.app.state.lists.check_reload() == [f"loaded {os.path.realpath(path)}"]
        assert c.get("/readyz").json()["lists"]["default"]["k"] == 6
        assert len(_items(c, "0001", k=6)[1]) == 6 and _answers(c)["lists"] == 2.0
        # a broken publication is refused; the old file keeps serving
        tmp = tmp_path / "broken.parquet"
        pq.write_table(pa.table({"x": [1]}), tmp)
        os.replace(tmp, path)
        out = c.app.state.lists.check_reload()
        assert len(out) == 1 and out[0].startswith("refused")
        errors = c.get("/readyz").json()["reload_errors"]
        assert "not a prodfusion lists file" in errors["lists:default"]
        assert str(tmp_path) not in errors["lists:default"]  # no server paths in public answers
        assert len(_items(c, "0001", k=6)[1]) == 6 and _answers(c)["lists"] == 3.0
        assert 'prodfusion_lists_reloads_total{outcome="refused"} 1.0' in c.get("/metrics").text


def test_lists_in_the_configuration_file(tmp_path):
    from prodfusion.errors import ParameterError
    from prodfusion.service.settings import load_settings

    cfg = tmp_path / "serve.toml"
    cfg.write_text('[service]\nlists = "all.parquet"\nlists_layout = "sqlite"\n'
                   '[experiment]\nname = "e"\n'
                   '[[experiment.variants]]\nname = "a"\nmodel = "m"\nlists = "sub/a.parquet"\n'
                   '[[experiment.variants]]\nname = "b"\nmodel = "m"\n')
    s = load_settings(cfg)
    assert s.lists == tmp_path / "all.parquet" and s.lists_layout == "sqlite"
    a, b = s.experiment.variants
    assert a.lists == tmp_path / "sub" / "a.parquet" and b.lists is None
    with pytest.raises(ParameterError, match="The 'lists_layout' parameter of ServiceSettings"):
        ServiceSettings.for_model(tmp_path, lists_layout="redis")


def test_serve_cli_with_lists_on_two_workers(models, tmp_path):
    """`prodfusion serve MODEL --lists FILE --workers 2`: the option reaches every worker and
    /metrics sums which path answered over both processes."""
    import httpx

    from .helpers import free_port, start_server, stop_server

    a, b, lists = models
    port = free_port()
    server = start_server(b, port, tmp_path / "server.log", "--events",
                          str(tmp_path / "events.sqlite3"), "--workers", "2",
                          "--lists", str(lists))
    try:
        url = f"http://127.0.0.1:{port}"
        for i in range(12):  # fresh connections: spread over both workers
            r = httpx.get(f"{url}/v1/similar/{i:04d}?k=10&visitor=v{i}")
            assert r.status_code == 200 and len(r.json()["items"]) == 10
        assert httpx.get(f"{url}/v1/similar/new-1?k=10&visitor=v1").status_code == 200
        text = httpx.get(f"{url}/metrics").text
        got = {m[1]: float(m[2]) for m in re.finditer(
            r'prodfusion_similar_answers_total\{path="(\w+)"\} ([0-9.e+]+)', text)}
        assert got == {"lists": 12.0, "live": 1.0}, text[:2000]
    finally:
        stop_server(server)


@pytest.mark.parametrize("fusion", ["early", "late", "intermediate"])
def test_an_early_or_late_arm_on_a_model_with_cooc_serves_live_and_from_lists(tmp_path, fusion):
    """A default build with sessions holds ``cooc``, which only intermediate fusion fuses: an
    arm asking for early / late fusion (no modalities) serves the model's vector modalities,
    as ``similar`` and ``export`` resolve them (live search answered it with a 500)."""
    from prodfusion.data.sessions import Sessions
    from prodfusion.fusion.cooc import Cooc
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from tests.fusion.test_cooc import _data

    cat, _, lists_, embs = _data(3)
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.cooc_ = Cooc.from_sessions(Sessions.from_lists(lists_), cat)
    rec.modalities = rec.available_modalities
    model = rec.save(tmp_path / "model")
    out = tmp_path / "lists.parquet"
    export_lists(model, out, k=5, fusion=fusion, progress=False)
    want_ids, _ = Recommender.load(model).similar("p09", k=5, fusion=fusion)
    for name, lists in (("live", None), ("lists", out)):
        exp = ExperimentConfig("e", variants=(VariantConfig("arm", 1.0, model, fusion=fusion,
                                                            lists=lists),))
        settings = ServiceSettings(experiment=exp, events=str(tmp_path / f"{name}.sqlite3"),
                                   reload_interval_s=0, cache_size=0)
        with TestClient(create_app(settings)) as client:
            _, items = _items(client, "p09", k=5)
            assert [it["product_id"] for it in items] == list(want_ids), name
            assert _answers(client) == {name: 1.0}


def test_readyz_says_when_the_lists_are_older_than_the_models_clicks_weights_or_build(
        models, tmp_path, caplog):
    """A lists file stays served as a snapshot after the model's click vectors are retrained
    (`add --interactions`), its weights tuned, or the folder rebuilt — every list may differ
    then — and /readyz (and the log) say which of these happened after the export began."""
    import json
    import logging
    import time

    from prodfusion.model_updates import TIME_FORMAT, record_update

    a, _, lists = models
    with TestClient(create_app(_settings(a, tmp_path / "fresh", lists=lists))) as served:
        assert served.get("/readyz").json()["lists"]["default"]["stale"] == []
    rec = Recommender.load(a)
    record_update(rec, {"retrained_clicks": 3})  # what rebuild_clicks appends
    later = time.strftime(TIME_FORMAT, time.localtime(time.time() + 5))
    rec.manifest_["tuning"] = {"created": later}
    e = rec.save(tmp_path / "e")
    with caplog.at_level(logging.WARNING, logger="prodfusion.service.lists"), \
            TestClient(create_app(_settings(e, tmp_path / "stale", lists=lists))) as served:
        stale = served.get("/readyz").json()["lists"]["default"]["stale"]
        assert len(stale) == 2, stale
        assert "click vectors were retrained" in stale[0] and "weights tuned" in stale[1]
        _items(served, "0003", k=10)
        assert _answers(served) == {"lists": 1.0}  # still served, as a snapshot
    assert "may be out of date" in caplog.text
    # a folder built after the export (its manifest's build time later than the file's model)
    f = tmp_path / "f"
    import shutil

    shutil.copytree(a, f)
    m = json.loads((f / "manifest.json").read_text())
    m["created"] = later
    m["build_id"] = "b-rebuilt"  # a rebuild makes a new one (an add or update keeps it)
    (f / "manifest.json").write_text(json.dumps(m))
    with TestClient(create_app(_settings(f, tmp_path / "rebuilt", lists=lists))) as served:
        stale = served.get("/readyz").json()["lists"]["default"]["stale"]
        assert len(stale) == 1 and "earlier build" in stale[0], stale


def test_a_model_reload_that_makes_the_lists_stale_is_logged(models, tmp_path, caplog):
    """service.md: the log warns at load and on reload; a model published under the lists'
    feet (another build) is such a reload."""
    import logging

    from prodfusion.service.models import publish_model

    a, _, lists = models
    link = tmp_path / "current"
    publish_model(a, link)
    other = make_model(tmp_path / "other", by="block")  # another build of another model
    with TestClient(create_app(_settings(link, tmp_path, lists=lists))) as c:
        assert c.get("/readyz").json()["lists"]["default"]["stale"] == []
        caplog.clear()
        publish_model(other, link)
        with caplog.at_level(logging.WARNING, logger="prodfusion"):
            out = c.app.state.registry.check_reload()
            assert len(out) == 1
        stale = c.get("/readyz").json()["lists"]["default"]["stale"]
        assert len(stale) == 1 and "exported from an" in stale[0]
        assert any("switched" in r.getMessage() for r in caplog.records)
        assert any("may be out of date" in r.getMessage() for r in caplog.records)


def test_lists_behind_a_path_prefix_give_image_urls_under_it(models, tmp_path):
    a, _, lists = models
    with TestClient(create_app(_settings(a, tmp_path / "p", lists=lists,
                                         root_path="/recs"))) as served:
        product, items = _items(served, "0001", k=5)
        assert _answers(served) == {"lists": 1.0}  # answered from the file
        assert product["image_url"] == "/recs/images/0001"
        assert [it["image_url"] for it in items] == [
            f"/recs/images/{it['product_id']}" for it in items]


def test_lists_in_a_bucket_are_served_from_a_local_copy_and_reloaded(models, tmp_path, s3):
    """``--lists s3://…``: the object's local copy serves exactly the file's lists; a newer
    export to the same object is picked up by the poll, a broken one refused; the
    configuration file keeps the URI as it is; two workers serve it."""
    import httpx

    from prodfusion.service.settings import load_settings

    from .helpers import free_port, start_server, stop_server

    a, b, lists = models
    s3.fs.create_dir("lists-s")
    uri = "s3://lists-s/daily/lists.parquet"
    export_lists(a, uri, k=4, progress=False)
    with TestClient(create_app(_settings(a, tmp_path, lists=uri))) as c, \
            TestClient(create_app(_settings(a, tmp_path / "live"))) as live:
        for pid in ("0001", "0007"):
            assert _same(_items(c, pid, k=4), _items(live, pid, k=4))
        assert _answers(c)["lists"] == 2.0
        assert c.get("/readyz").json()["lists"]["default"]["file"] == "lists.parquet"
        assert c.app.state.lists.check_reload() == []  # unchanged: nothing fetched
        import time

        time.sleep(1.1)  # the store's clock has seconds: publish a second later
        export_lists(a, uri, k=6, progress=False)
        assert c.app.state.lists.check_reload() == [f"loaded {uri}"]
        assert len(_items(c, "0001", k=6)[1]) == 6 and _answers(c)["lists"] == 3.0
        time.sleep(1.1)
        tmp = tmp_path / "broken.parquet"
        pq.write_table(pa.table({"x": [1]}), tmp)
        s3.put_file(uri, tmp)
        out = c.app.state.lists.check_reload()
        assert len(out) == 1 and out[0].startswith(f"refused {uri}: Lists file '{uri}' of "
                                                   f"variant 'default' cannot be read: {uri}: "
                                                   "not a prodfusion lists file")
        assert len(_items(c, "0001", k=6)[1]) == 6  # the last good publication serves on
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[service]\nlists = "{uri}"\n[experiment]\nname = "e"\n'
                   f'[[experiment.variants]]\nname = "a"\nmodel = "m"\nlists = "{uri}"\n')
    s = load_settings(cfg)
    assert s.lists == uri and s.experiment.variants[0].lists == uri

    s3.fs.delete_file(uri.removeprefix("s3://"))  # the broken one: not an export's to replace
    export_lists(a, uri, k=10, progress=False)
    port = free_port()
    server = start_server(b, port, tmp_path / "server.log", "--events",
                          str(tmp_path / "events.sqlite3"), "--workers", "2", "--lists", uri)
    try:
        url = f"http://127.0.0.1:{port}"
        for i in range(8):
            r = httpx.get(f"{url}/v1/similar/{i:04d}?k=10&visitor=v{i}")
            assert r.status_code == 200 and len(r.json()["items"]) == 10
        text = httpx.get(f"{url}/metrics").text
        assert 'prodfusion_similar_answers_total{path="lists"} 8.0' in text
    finally:
        stop_server(server)


def test_a_lists_store_that_does_not_answer_is_warned_about_once(monkeypatch, caplog):
    """A poll whose store cannot be asked keeps the lists served (no stamp) and says so once,
    again only after the store has answered in between."""
    from prodfusion.data import storage
    from prodfusion.data.photos import PhotoFetchError
    from prodfusion.service import lists as lists_mod

    answers = iter([PhotoFetchError("cannot reach the store: down"), PhotoFetchError("down"),
                    ("s3://b/l.parquet", 1, 2), PhotoFetchError("down again")])

    def stamp(uri):
        got = next(answers)
        if isinstance(got, Exception):
            raise got
        return got

    monkeypatch.setattr(storage, "object_stamp", stamp)
    with caplog.at_level("WARNING", logger="prodfusion.service.lists"):
        got = [lists_mod._stamp("s3://b/l.parquet") for _ in range(4)]
    assert got == [None, None, ("s3://b/l.parquet", 1, 2), None]
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["lists file s3://b/l.parquet cannot be checked: cannot reach the store: "
                      "down", "lists file s3://b/l.parquet cannot be checked: down again"]
