"""Every route of the HTTP service, every bad input of the issue, and the A/B report numbers."""

from __future__ import annotations

import math
import re
import sqlite3
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from prodfusion.errors import ParameterError
from prodfusion.service.app import STATIC_DIR, create_app
from prodfusion.service.experiments import Allocation

from .conftest import ab_settings
from .helpers import CATEGORIES

Z95 = 1.959963984540054


def visitors_of(client, variant: str, n: int, prefix: str = "vis") -> list[str]:
    """The first ``n`` synthetic visitor ids the served allocation puts in ``variant``."""
    alloc: Allocation = client.app.state.allocation
    out, i = [], 0
    while len(out) < n:
        v = f"{prefix}-{i}"
        if alloc.variant_of(v) == variant:
            out.append(v)
        i += 1
    return out


def signed(client, events: list[dict]) -> list[dict]:
    """``events`` with their request-id labels replaced by ids the server issued for that
    visitor and product (one per label), and clicks carrying their target signature."""
    attr = client.app.state.attribution
    alloc = client.app.state.allocation
    out = []
    for e in events:
        e = dict(e)
        v = e["visitor"]
        e["request_id"] = attr.issue(v, alloc.variant_of(v), e["product_id"], params=e["request_id"])
        if e["type"] == "click":
            e["target_sig"] = attr.target_sig(e["request_id"], e["rank"], e["target_id"])
        out.append(e)
    return out


def view(rid: str, visitor: str, pid: str = "0001", eid: str | None = None) -> dict:
    return {"event_id": eid or uuid.uuid4().hex, "type": "view", "request_id": rid,
            "product_id": pid, "visitor": visitor}


def click(rid: str, visitor: str, target: str = "0005", rank: int = 1, pid: str = "0001") -> dict:
    return {"event_id": uuid.uuid4().hex, "type": "click", "request_id": rid, "product_id": pid,
            "visitor": visitor, "target_id": target, "rank": rank}


def jump(rid: str, visitor: str, pid: str = "0001") -> dict:
    return {"event_id": uuid.uuid4().hex, "type": "jump", "request_id": rid, "product_id": pid,
            "visitor": visitor}


# ---------------------------------------------------------------------- ops routes
def test_healthz_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz").json()
    assert r["status"] == "ready" and r["event_store"] == "ok"
    assert set(r["variants"]) == {"baseline", "fusion"}
    assert r["variants"]["fusion"]["products"] == 40


def test_readyz_is_503_before_models_load(settings):
    app = create_app(settings)
    with TestClient(app) as c:  # lifespan ran; now pretend the registry is gone
        app.state.registry = None
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json() == {"detail": "models are not loaded yet"}


def _start_up(app) -> tuple[list[dict], BaseException]:
    """Drive the app's ASGI lifespan start-up as uvicorn does; the failure and what was sent."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    with pytest.raises(Exception) as info:
        asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                        receive, send))
    return sent, info.value


def test_start_up_failures_a_user_can_fix_are_one_line_and_bugs_keep_their_traceback(
        planted_model, tmp_path, monkeypatch):
    # what uvicorn logs of a failed start-up is the message Starlette sends: a traceback,
    # unless it is one of prodfusion's own errors (here a model folder that is gone)
    gone = ab_settings(tmp_path / "gone", tmp_path / "e1.sqlite3")
    sent, exc = _start_up(create_app(gone))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    message = sent[0]["message"]
    assert message.startswith("prodfusion cannot start (process ") and str(exc) in message
    assert "gone" in message and "Traceback" not in message and "\n" not in message

    from prodfusion.service.models import ModelRegistry

    def broken(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ModelRegistry, "load_all", broken)
    sent, exc = _start_up(create_app(ab_settings(planted_model, tmp_path / "e2.sqlite3")))
    assert isinstance(exc, RuntimeError)
    assert "Traceback" in sent[0]["message"] and "a bug" in sent[0]["message"]


def test_metrics_count_requests_per_route_and_variant(client):
    vb = visitors_of(client, "baseline", 2)
    vf = visitors_of(client, "fusion", 1)
    for v in vb + vf:
        assert client.get(f"/v1/similar/0001?visitor={v}").status_code == 200
    client.get("/v1/similar/nope?visitor=" + vf[0])
    text = client.get("/metrics").text
    assert ('prodfusion_http_requests_total{method="GET",route="/v1/similar/{product_id}",'
            'status="200",variant="baseline"} 2.0') in text
    assert ('prodfusion_http_requests_total{method="GET",route="/v1/similar/{product_id}",'
            'status="200",variant="fusion"} 1.0') in text
    assert ('prodfusion_http_requests_total{method="GET",route="/v1/similar/{product_id}",'
            'status="404",variant="fusion"} 1.0') in text
    assert ('prodfusion_http_request_duration_seconds_count{route="/v1/similar/{product_id}",'
            'variant="baseline"} 2.0') in text
    assert 'prodfusion_http_request_duration_seconds_bucket{le="0.05",route="/v1/similar/{product_id}",variant="fusion"}' in text
    assert 'prodfusion_model_products{variant="fusion"} 40.0' in text


# ---------------------------------------------------------------------- recommendations
def test_similar_returns_planted_neighbours_with_titles_images_scores(client):
    v = visitors_of(client, "fusion", 1)[0]
    r = client.get(f"/v1/similar/0001?k=9&visitor={v}")
    assert r.status_code == 200
    body = r.json()
    assert body["variant"] == "fusion" and body["experiment"] == "fusion-test"
    assert body["modalities"] == ["text", "image", "clicks"] and body["fusion"] == "intermediate"
    assert re.fullmatch(r"[0-9a-f]{16}\.[0-9]+\.[0-9a-f]{32}", body["request_id"])
    assert len(body["target_sigs"]) == len(body["items"]) == 9
    assert body["product"] == {"product_id": "0001", "title": "Shoe number 1",
                               "category": "Shoes", "image_url": "/images/0001"}
    items = body["items"]
    assert len(items) == 9 and [it["rank"] for it in items] == list(range(1, 10))
    # planted: the 9 other products of category 1 (ids 5, 9, …, 37), never the query itself
    assert {it["product_id"] for it in items} == {f"{i:04d}" for i in range(5, 40, 4)}
    assert all(it["category"] == "Shoes" and it["image_url"] == f"/images/{it['product_id']}"
               and it["title"] == f"Shoe number {int(it['product_id'])}" for it in items)
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)


def test_default_k_filters_and_variants(client):
    v = visitors_of(client, "baseline", 1)[0]
    body = client.get(f"/v1/similar/0001?visitor={v}").json()
    assert len(body["items"]) == 15 and body["variant"] == "baseline"
    assert body["modalities"] == ["clicks", "text"]
    body = client.get(f"/v1/similar/0001?visitor={v}&same_category=true&k=20").json()
    assert len(body["items"]) == 9 and {it["category"] for it in body["items"]} == {"Shoes"}
    body = client.get(f"/v1/similar/0001?visitor={v}&k=5&exclude=0005&exclude=0009").json()
    assert not {"0005", "0009"} & {it["product_id"] for it in body["items"]}
    top = [it["product_id"] for it in client.get(f"/v1/similar/0001?visitor={v}&k=3").json()["items"]]
    comma = client.get(f"/v1/similar/0001?visitor={v}&k=3&exclude={top[0]},{top[1]}").json()
    assert not set(top[:2]) & {it["product_id"] for it in comma["items"]}  # as the CLI's --exclude
    assert comma["items"][0]["product_id"] == top[2]


def test_same_visitor_same_variant_and_cookie(client):
    r = client.get("/v1/similar/0002")
    vis = r.cookies.get("pf_visitor") or client.cookies.get("pf_visitor")
    assert re.fullmatch(r"[0-9a-f]{32}", vis) and r.json()["visitor"] == vis
    variants = {client.get("/v1/similar/0003").json()["variant"] for _ in range(5)}
    assert variants == {client.app.state.allocation.variant_of(vis)}
    for v in visitors_of(client, "baseline", 3) + visitors_of(client, "fusion", 3):
        got = {client.get(f"/v1/similar/0003?visitor={v}").json()["variant"] for _ in range(2)}
        assert got == {client.app.state.allocation.variant_of(v)}


@pytest.mark.parametrize(("url", "status", "message"), [
    ("/v1/similar/nope", 404, "Product id 'nope' is not in the catalog (40 products). Ids"),
    ("/v1/similar/1", 404, "Product id '1' is not in the catalog (40 products). Ids are "
                           "compared as exact strings, leading zeros included. Did you mean "
                           "'0001'?"),  # leading zeros matter, and the id written so is named
    ("/v1/similar/0001?k=0", 422, "greater than or equal to 1"),
    ("/v1/similar/0001?k=101", 422, "less than or equal to 100"),
    ("/v1/similar/0001?k=abc", 422, "valid integer"),
    ("/v1/similar/ab%01", 422, "String should match pattern"),
    ("/v1/similar/%FF%FE", 422, "String should match pattern"),  # not UTF-8
    ("/v1/similar/" + "x" * 201, 422, "String should match pattern"),
    ("/v1/similar/0001?visitor=a%20b", 422, "String should match pattern"),
    ("/v1/similar/0001?visitor=%FF", 422, "String should match pattern"),
    ("/v1/similar/0001?exclude=a%00b", 422, "Malformed product id in 'exclude'"),
    ("/v1/similar/0001?same_category=maybe", 422, "valid boolean"),
])
def test_similar_bad_input(client, url, status, message):
    r = client.get(url)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert message in r.text


def test_products_search_and_browse(client):
    r = client.get("/v1/products?q=HAT&limit=3").json()
    assert r["total"] == 10 and [p["product_id"] for p in r["items"]] == ["0002", "0006", "0010"]
    # typed in full-width letters (a Japanese keyboard's default): the same products, the
    # query and the titles compared in Unicode NFKC
    assert client.get("/v1/products?q=%EF%BC%A8%EF%BC%A1%EF%BC%B4&limit=3").json() == r
    r = client.get("/v1/products?q=0007").json()
    assert [p["product_id"] for p in r["items"]] == ["0007"]
    r = client.get("/v1/products?limit=4").json()
    assert r["total"] == 40 and [p["product_id"] for p in r["items"]] == ["0000", "0013", "0026", "0039"]
    assert client.get("/v1/products?limit=0").status_code == 422


# ---------------------------------------------------------------------- images
def test_image_is_served(client, planted_model):
    r = client.get("/images/0003")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (planted_model.parent / "images" / "0003.png").read_bytes()
    assert client.get("/images/nope").json() == {"detail": "No image for product 'nope'."}
    assert client.get("/images/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_images_are_confined_to_the_image_folder(tmp_path):
    import polars as pl

    from prodfusion.data.catalog import Catalog

    from .helpers import make_catalog, make_model

    cat = make_catalog(tmp_path, 8)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for you")
    (tmp_path / "images" / "link.png").symlink_to(secret)
    paths = cat.image_paths
    paths[1] = str(secret)  # outside the image folder
    paths[2] = str(tmp_path / "images" / "link.png")  # a symlink escaping it
    paths[3] = str(tmp_path / "images" / ".." / "secret.png")  # dot-dot
    cat = Catalog(cat.frame.with_columns(pl.Series("image", paths)), source="<test>")
    model = make_model(tmp_path, catalog=cat)
    s = ab_settings(model, tmp_path / "ev.sqlite3", images=tmp_path / "images")
    with TestClient(create_app(s)) as c:
        assert c.get("/images/0000").status_code == 200
        for pid in ("0001", "0002", "0003"):
            r = c.get(f"/images/{pid}")
            assert r.status_code == 404 and b"not for you" not in r.content


# ---------------------------------------------------------------------- events
def test_events_are_idempotent(client):
    v = visitors_of(client, "fusion", 1)[0]
    batch = {"events": signed(client, [view("r1", v, eid="ev-1"), view("r2", v, eid="ev-2")])}
    assert client.post("/v1/events", json=batch).json() == \
        {"received": 2, "stored": 2, "duplicates": 0, "quarantined": 0}
    assert client.post("/v1/events", json=batch).json() == \
        {"received": 2, "stored": 0, "duplicates": 2, "quarantined": 0}
    stored = client.app.state.store.fetch_events("fusion-test")
    assert sorted(e.event_id for e in stored) == ["ev-1", "ev-2"]
    assert {(e.variant, e.category, e.visitor) for e in stored} == {("fusion", "Shoes", v)}
    text = client.get("/metrics").text
    assert 'prodfusion_events_total{outcome="stored",type="view",variant="fusion"} 2.0' in text
    assert 'prodfusion_events_total{outcome="duplicate",type="view",variant="fusion"} 2.0' in text


def test_event_variant_is_assigned_by_the_server_and_cookie_is_the_default_visitor(client):
    r = client.get("/v1/similar/0004")
    vis = r.json()["visitor"]
    e = view(r.json()["request_id"], vis, "0004")
    del e["visitor"]
    assert client.post("/v1/events", json={"events": [e]}).status_code == 200
    (stored,) = client.app.state.store.fetch_events()
    assert stored.visitor == vis and stored.variant == r.json()["variant"]
    assert stored.category == "Dresses"


def _post_raw(client, body: bytes, **headers):
    return client.post("/v1/events", content=body,
                       headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"\xff\xfe{}", 400, "The body is not UTF-8 (byte 0); send UTF-8 JSON."),
    (b'{"events": [', 400, "The body is not valid JSON"),
    (b'{"events": [{"event_id": "a", "type": "click", "request_id": "r", "product_id": "0001", '
     b'"visitor": "v", "target_id": "0005", "rank": NaN}]}', 400,
     "NaN is not valid JSON (numbers must be finite)"),
    (b'{"events": [], "x": Infinity}', 400, "Infinity is not valid JSON"),
    (b'{"events": []}', 422, "List should have at least 1 item"),
    (b'[]', 422, "Input should be a valid dictionary"),
    (b'{"events": [{"event_id": "a", "type": "purchase", "request_id": "r", "product_id": "0001",'
     b' "visitor": "v"}]}', 422, "Input should be 'view', 'click' or 'jump'"),
    (b'{"events": [{"event_id": "a", "type": "click", "request_id": "r", "product_id": "0001",'
     b' "visitor": "v"}]}', 422, "a click event needs 'target_id' and 'rank'"),
    (b'{"events": [{"event_id": "a", "type": "view", "request_id": "r", "product_id": "0001",'
     b' "visitor": "v", "rank": 2}]}', 422, "a view event takes no 'target_id', 'rank' or 'target_sig'"),
    (b'{"events": [{"event_id": "a", "type": "click", "request_id": "r", "product_id": "0001",'
     b' "visitor": "v", "target_id": "0005", "rank": 0}]}', 422, "greater than or equal to 1"),
    (b'{"events": [{"event_id": "a b", "type": "view", "request_id": "r", "product_id": "0001",'
     b' "visitor": "v"}]}', 422, "String should match pattern"),
    (b'{"events": [{"event_id": "a", "type": "view", "request_id": "r", "product_id": "0\\u0000",'
     b' "visitor": "v"}]}', 422, "String should match pattern"),
    (b'{"events": [{"event_id": "a", "type": "view", "request_id": "r", "product_id": "0001",'
     b' "visitor": "v", "price": 3}]}', 422, "Extra inputs are not permitted"),
    (b'{"events": [{"event_id": "a", "type": "view", "request_id": "r", "product_id": "0001"}]}',
     422, "events[0] has no 'visitor' and the request no 'pf_visitor' cookie."),
])
def test_events_bad_input(client, body, status, message):
    client.cookies.clear()
    r = _post_raw(client, body)
    assert r.status_code == status, r.text
    assert message in r.text
    assert client.app.state.store.count() == 0


def test_events_body_over_1mb_is_413(client):
    v = visitors_of(client, "fusion", 1)[0]
    big = b'{"events": [' + b" " * 1_000_000 + b"]}"
    r = _post_raw(client, big)
    assert r.status_code == 413
    assert r.json() == {"detail": "Request body larger than 1000000 bytes; send events in smaller batches."}

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"events": [' + (b'{"event_id": "x", "type": "view", "request_id": "r", '
                                 b'"product_id": "0001", "visitor": "' + v.encode() + b'"},') * 2
        for _ in range(11):
            yield b" " * 100_000
    r = client.post("/v1/events", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.app.state.store.count() == 0
    # just under the limit is fine
    ok = b'{"events": [' + b" " * 990_000 + b'{"event_id": "x", "type": "view", "request_id": "r", ' \
        b'"product_id": "0001", "visitor": "' + v.encode() + b'"}]}'
    assert _post_raw(client, ok).status_code == 200


def test_store_down_is_503_and_nothing_acknowledged_is_lost(planted_model, tmp_path):
    path = tmp_path / "ev.sqlite3"
    s = ab_settings(planted_model, path, busy_timeout_s=0.05)
    with TestClient(create_app(s)) as c:
        v = visitors_of(c, "baseline", 1)[0]
        acked = signed(c, [view("r0", v, eid="acked")])
        assert c.post("/v1/events", json={"events": acked}).status_code == 200
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the store can no longer write
        try:
            batch = {"events": signed(c, [view("r1", v, eid="b1"), view("r2", v, eid="b2")])}
            r = c.post("/v1/events", json=batch)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert "nothing of this request was stored" in r.json()["detail"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert [e.event_id for e in c.app.state.store.fetch_events()] == ["acked"]
        assert c.post("/v1/events", json=batch).json()["stored"] == 2  # the retry lands, once
        assert c.post("/v1/events", json=batch).json()["stored"] == 0
        assert "prodfusion_event_store_errors_total 1.0" in c.get("/metrics").text
        assert sorted(e.event_id for e in c.app.state.store.fetch_events()) == ["acked", "b1", "b2"]


# ---------------------------------------------------------------------- report
def _wilson(x: int, n: int) -> tuple[float, float]:
    p, z2 = x / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def test_report_matches_hand_computed_statistics(client):
    # baseline: 200 views, 4 clicked, 10 jumped; fusion: 200 views, 12 clicked, 20 jumped.
    # half of each variant's views are on a Shoes page (0001), half on a Hats page (0002).
    events = []
    for variant, n_click, n_jump in (("baseline", 4, 10), ("fusion", 12, 20)):
        vis = visitors_of(client, variant, 200, prefix=variant)
        for i, v in enumerate(vis):
            pid = "0001" if i % 2 == 0 else "0002"
            rid = f"{variant}-{i}"
            events.append(view(rid, v, pid))
            if i < n_click:
                events.append(click(rid, v, pid=pid))
                events.append(click(rid, v, target="0009", rank=2, pid=pid))  # 2nd click, same list
            if i < n_jump:
                events.append(jump(rid, v, pid))
    events = signed(client, events)
    for k in range(0, len(events), 500):
        assert client.post("/v1/events", json={"events": events[k:k + 500]}).status_code == 200
    rep = client.get("/v1/experiments/fusion-test/report").json()
    assert rep["control"] == "baseline"
    base, fus = rep["variants"]
    assert (base["variant"], base["views"], base["clicks"], base["click_events"], base["jumps"]) == \
        ("baseline", 200, 4, 8, 10)
    assert (fus["views"], fus["clicks"], fus["jumps"]) == (200, 12, 20)
    assert fus["ctr"] == pytest.approx(0.06) and base["ctr"] == pytest.approx(0.02)
    assert fus["ctr_ci"] == pytest.approx(list(_wilson(12, 200)), abs=1e-12)
    assert base["jr_ci"] == pytest.approx(list(_wilson(10, 200)), abs=1e-12)
    t = fus["ctr_vs_control"]
    # pooled p = 16/400 = 0.04; se = sqrt(0.04 * 0.96 * (2/200)) = 0.0195959; z = 0.04 / se
    assert t["diff"] == pytest.approx(0.04)
    assert t["z"] == pytest.approx(0.04 / math.sqrt(0.04 * 0.96 * 0.01), rel=1e-9)
    assert t["z"] == pytest.approx(2.041241, abs=1e-6)
    assert t["p_value"] == pytest.approx(math.erfc(2.041241 / math.sqrt(2)), abs=1e-6)  # 0.04123
    assert t["rel_lift"] == pytest.approx(2.0)
    se = math.sqrt(0.02 * 0.98 / 200 + 0.06 * 0.94 / 200)
    assert [t["diff_ci_lo"], t["diff_ci_hi"]] == pytest.approx([0.04 - Z95 * se, 0.04 + Z95 * se])
    j = fus["jr_vs_control"]
    assert j["rel_lift"] == pytest.approx(1.0) and j["diff"] == pytest.approx(0.05)
    assert base["ctr_vs_control"] is None
    # per category: Shoes got the even rows -> baseline clicks on rows 0, 2 -> 2 of 100
    cats = {c["category"]: {v["variant"]: v for v in c["variants"]} for c in rep["categories"]}
    assert set(cats) == {"Shoes", "Hats"}
    assert (cats["Shoes"]["baseline"]["views"], cats["Shoes"]["baseline"]["clicks"]) == (100, 2)
    assert (cats["Hats"]["fusion"]["views"], cats["Hats"]["fusion"]["clicks"]) == (100, 6)
    assert cats["Hats"]["fusion"]["ctr_vs_control"]["rel_lift"] == pytest.approx(2.0)
    # SRM: 200 vs 200 visitors against 50/50 -> chi2 = 0
    srm = rep["srm"]
    assert srm["observed"] == {"baseline": 200, "fusion": 200}
    assert srm["chi2"] == pytest.approx(0.0) and srm["flagged"] is False
    assert rep["allocation"]["shares"] == {"baseline": 0.5, "fusion": 0.5}


def test_report_flags_sample_ratio_mismatch(client):
    events = [view(f"b{i}", v) for i, v in enumerate(visitors_of(client, "baseline", 300, "b"))]
    events += [view(f"f{i}", v) for i, v in enumerate(visitors_of(client, "fusion", 200, "f"))]
    assert client.post("/v1/events", json={"events": signed(client, events)}).status_code == 200
    srm = client.get("/v1/experiments/fusion-test/report").json()["srm"]
    # expected 250 / 250: chi2 = 2 * 50² / 250 = 20, p = 7.7e-6 < 0.001
    assert srm["chi2"] == pytest.approx(20.0) and srm["p_value"] < 1e-5 and srm["flagged"] is True


def test_report_unknown_experiment_and_empty(client):
    r = client.get("/v1/experiments/nope/report")
    assert r.status_code == 404 and r.json() == {"detail": "No experiment 'nope' in the event store."}
    assert client.get("/v1/experiments/bad%20name/report").status_code == 422
    page = client.get("/experiments/nope")  # the page (its script says why), with a 404
    assert page.status_code == 404 and "<html" in page.text.lower()
    assert client.get("/experiments/fusion-test").status_code == 200
    rep = client.get("/v1/experiments/fusion-test/report").json()  # allocated, no events yet
    assert [v["views"] for v in rep["variants"]] == [0, 0]
    assert rep["variants"][0]["ctr"] is None and rep["srm"]["chi2"] is None


# ---------------------------------------------------------------------- page and docs
def test_web_page_and_docs_work_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>prodfusion" in page.text
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), name  # no CDN
        assert client.get(f"/static/{name}").status_code == 200
    docs = client.get("/docs").text
    assert "/docs-static/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    bundle = client.get("/docs-static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    # a Swagger UI that reads OpenAPI 3.1, what FastAPI writes (4.x: "Unable to render this
    # definition"); the page renders it in tests/service/test_browser.py
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/similar/{product_id}", "/v1/events", "/images/{product_id}",
            "/v1/experiments/{name}/report", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert "events" in body["schema"]["properties"]


def test_behind_a_proxys_path_prefix_links_images_and_docs_carry_it(planted_model, tmp_path):
    """``root_path="/recs"``: the pages' ``<base>``, the API's ``image_url`` (live and
    cached alike) and /docs name the prefix; requests are routed with or
    without it (a proxy that strips it, one that forwards it, the service's own port)."""
    settings = ab_settings(planted_model, tmp_path / "events.sqlite3", root_path="/recs/")
    assert settings.root_path == "/recs"
    with TestClient(create_app(settings)) as c:
        for prefix in ("", "/recs"):
            page = c.get(prefix + "/")
            assert page.status_code == 200 and '<base href="/recs/">' in page.text
            assert 'src="static/app.js"' in page.text  # relative: under the base
            for _ in range(2):  # live, then from the result cache
                got = c.get(prefix + "/v1/similar/0001?k=3").json()
                assert got["product"]["image_url"] == "/recs/images/0001"
                assert all(i["image_url"].startswith("/recs/images/") for i in got["items"])
            listed = c.get(prefix + "/v1/products?q=Shoe&limit=2").json()["items"]
            assert listed[0]["image_url"].startswith("/recs/images/")
            assert c.get(prefix + "/images/0001").status_code == 200
            docs = c.get(prefix + "/docs").text
            assert "url: '/recs/openapi.json'" in docs
            assert "/recs/docs-static/swagger-ui-bundle.js" in docs
            assert c.get(prefix + "/static/app.js").status_code == 200
        assert c.get("/recs/recs/").status_code == 404  # stripped once, not twice
        assert '<base href="/recs/">' in c.get("/recs/experiments/fusion-test").text
    # the scripts' own URLs are relative, so the <base> puts them under the prefix
    for name in ("app.js", "experiment.js", "index.html", "experiment.html"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"""(fetch|sendBeacon)\(\s*[`"']/|(src|href)="/""", text), name
    # and without one, the page as before
    plain = ab_settings(planted_model, tmp_path / "events2.sqlite3")
    with TestClient(create_app(plain)) as c:
        assert '<base href="/">' in c.get("/").text
        assert c.get("/v1/similar/0001?k=1").json()["product"]["image_url"] == "/images/0001"
        assert c.get("/recs/").status_code == 404


@pytest.mark.parametrize("value", ["recs", "/re cs", '/"x', "/a?b", 5])
def test_a_root_path_that_is_not_a_url_path_is_refused(planted_model, tmp_path, value):
    with pytest.raises(ParameterError, match=r"The 'root_path' parameter of ServiceSettings\(\) "
                                             r"must be '' or a URL path beginning with '/'"):
        ab_settings(planted_model, tmp_path / "e.sqlite3", root_path=value)


def test_categories_constant_matches_helpers():
    assert CATEGORIES[1] == "Shoes"  # the planted answers above rely on it


def test_settings_from_toml_and_yaml(tmp_path, planted_model):
    from prodfusion.errors import DataError
    from prodfusion.service.settings import load_settings

    toml = tmp_path / "serve.toml"
    toml.write_text(f"""
[service]
events = "data/events.sqlite3"
synchronous = "NORMAL"
shop_url = "https://shop.example/p/{{product_id}}"

[experiment]
name = "exp1"
control = "fusion"

[[experiment.variants]]
name = "baseline"
weight = 30
model = "{planted_model}"
modalities = ["clicks", "text"]

[[experiment.variants]]
name = "fusion"
weight = 70
model = "models/current"
fusion = "late"
""")
    s = load_settings(toml)
    assert s.events == str(tmp_path / "data" / "events.sqlite3") and s.synchronous == "NORMAL"
    e = s.experiment
    assert (e.name, e.salt, e.control, e.names, e.weights) == ("exp1", "exp1", "fusion", ["baseline", "fusion"], [30.0, 70.0])
    assert e.variant("fusion").model == tmp_path / "models" / "current"
    assert e.variant("baseline").modalities == ("clicks", "text")
    yaml_file = tmp_path / "serve.yaml"
    yaml_file.write_text("experiment:\n  name: exp2\n  variants:\n    - {name: a, model: m}\n")
    assert load_settings(yaml_file, events="x.sqlite3").events == "x.sqlite3"
    assert load_settings(planted_model).experiment.names == ["default"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[service]\nevent = "x"\n[experiment]\nname = "e"\n')
    with pytest.raises(DataError, match=r"bad.toml: unknown key\(s\) \['event'\] in \[service\]"):
        load_settings(bad)
    bad.write_text('[experiment]\nname = "e"\n[[experiment.variants]]\nname = "a"\n')
    with pytest.raises(DataError, match=r"bad.toml: experiment.variants\[0\] has no 'model'."):
        load_settings(bad)
    with pytest.raises(DataError, match=r"no such configuration file or model folder"):
        load_settings(tmp_path / "missing.toml")


def test_model_that_cannot_serve_a_variant_fails_startup(planted_model, tmp_path):
    import numpy as np

    from prodfusion.errors import ModelError
    from prodfusion.recommender import Recommender
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    from .helpers import make_catalog, planted_embeddings

    cat = make_catalog(tmp_path, 8, images=False)
    emb = {"text": planted_embeddings(8, np.arange(8) % 2, 0)["text"]}
    only_text = Recommender.from_embeddings(cat, emb, fusion="early").save(tmp_path / "m")
    exp = ExperimentConfig("e", variants=(VariantConfig("a", 1, only_text, modalities=("image",)),))
    s = ServiceSettings(experiment=exp, events=str(tmp_path / "ev.sqlite3"))
    with pytest.raises(ModelError, match=r"cannot serve variant 'a'"):
        with TestClient(create_app(s)):
            pass


def test_malformed_cookie_is_no_visitor(client):
    client.cookies.set("pf_visitor", "bad<cookie>")
    e = view("r1", "x")
    del e["visitor"]
    r = client.post("/v1/events", json={"events": [e]})
    assert r.status_code == 422 and "has no 'visitor'" in r.text
    r = client.get("/v1/similar/0001")  # a fresh id replaces it
    assert re.fullmatch(r"[0-9a-f]{32}", r.json()["visitor"])


# ---------------------------------------------------------------------- result cache
def _cache_counts(client) -> tuple[float, float]:
    text = client.get("/metrics").text
    got = {}
    for res in ("hit", "miss"):
        m = re.search(rf'prodfusion_similar_results_total{{result="{res}"}} ([0-9.]+)', text)
        got[res] = float(m.group(1)) if m else 0.0
    return got["hit"], got["miss"]


def test_result_cache_serves_repeats_per_variant_and_filter(client):
    vb = visitors_of(client, "baseline", 2)
    vf = visitors_of(client, "fusion", 1)[0]
    first = client.get(f"/v1/similar/0001?k=7&visitor={vb[0]}").json()
    assert _cache_counts(client) == (0.0, 1.0)
    again = client.get(f"/v1/similar/0001?k=7&visitor={vb[1]}").json()  # same variant, other visitor
    assert _cache_counts(client) == (1.0, 1.0)
    assert again["items"] == first["items"] and again["product"] == first["product"]
    assert again["visitor"] == vb[1] and again["request_id"] != first["request_id"]
    # another variant (other modalities), another k or filter: computed, not reused
    other = client.get(f"/v1/similar/0001?k=7&visitor={vf}").json()
    client.get(f"/v1/similar/0001?k=6&visitor={vb[0]}")
    filtered = client.get(f"/v1/similar/0001?k=7&visitor={vb[0]}&exclude=0005").json()
    assert _cache_counts(client) == (1.0, 4.0)
    assert other["modalities"] == ["text", "image", "clicks"]
    assert "0005" not in {it["product_id"] for it in filtered["items"]}
    # a cached answer is byte-for-byte the schema of a computed one
    assert set(again) == set(first) and again["items"][0].keys() == first["items"][0].keys()


def test_result_cache_can_be_turned_off(planted_model, tmp_path):
    s = ab_settings(planted_model, tmp_path / "ev.sqlite3", cache_size=0)
    with TestClient(create_app(s)) as c:
        for _ in range(3):
            assert c.get("/v1/similar/0001?visitor=someone").status_code == 200
        assert _cache_counts(c) == (0.0, 3.0)
    with pytest.raises(ParameterError, match="'cache_size' parameter of ServiceSettings"):
        ab_settings(planted_model, tmp_path / "ev.sqlite3", cache_size=-1)


def test_a_corrupt_photo_is_not_served_and_one_the_build_could_not_read_has_no_url(tmp_path):
    from prodfusion.recommender import Recommender

    from .helpers import make_catalog, planted_embeddings

    cat = make_catalog(tmp_path, 8)
    (tmp_path / "images" / "0004.png").write_bytes(b"not an image")  # named .png, holds text
    embs = planted_embeddings(8, np.arange(8) % 4, 0)
    embs["image"].mask[4] = False  # as the build marks a corrupt photo
    model = Recommender.from_embeddings(cat, embs, fusion="intermediate").save(tmp_path / "m")
    s = ab_settings(model, tmp_path / "ev.sqlite3", images=tmp_path / "images")
    with TestClient(create_app(s)) as c:
        assert c.get("/images/0000").status_code == 200
        r = c.get("/images/0004")
        assert r.status_code == 404 and b"not an image" not in r.content
        items = {it["product_id"]: it for it in c.get("/v1/products?limit=8").json()["items"]}
        assert items["0004"]["image_url"] is None and items["0000"]["image_url"] == "/images/0000"


def test_cors_lets_the_named_shop_origins_call_the_api_from_their_pages(planted_model, tmp_path):
    """``cors_origins``: a named origin reads ``/v1/similar`` and posts events (preflight
    answered, cookies allowed); another origin gets no CORS header (the browser refuses it);
    ``*`` lets anyone in without cookies; none (default): no CORS header at all."""
    shop = "https://www.shop.example"
    settings = ab_settings(planted_model, tmp_path / "e.sqlite3", cors_origins=[shop + "/"])
    assert settings.cors_origins == (shop,)
    with TestClient(create_app(settings)) as c:
        got = c.get("/v1/similar/0001?k=2", headers={"Origin": shop})
        assert got.status_code == 200
        assert got.headers["access-control-allow-origin"] == shop
        assert got.headers["access-control-allow-credentials"] == "true"
        pre = c.options("/v1/events", headers={
            "Origin": shop, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == shop
        assert "POST" in pre.headers["access-control-allow-methods"]
        other = c.get("/v1/similar/0001?k=2", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        assert c.options("/v1/events", headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST"}).status_code == 400
    anyone = ab_settings(planted_model, tmp_path / "e2.sqlite3", cors_origins=["*"])
    with TestClient(create_app(anyone)) as c:
        got = c.get("/v1/products?limit=1", headers={"Origin": "https://a.example"})
        assert got.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in got.headers
    with TestClient(create_app(ab_settings(planted_model, tmp_path / "e3.sqlite3"))) as c:
        got = c.get("/v1/similar/0001?k=2", headers={"Origin": shop})
        assert "access-control-allow-origin" not in got.headers


@pytest.mark.parametrize("value", ["www.shop.example", "https://shop.example/path",
                                   ["*", "https://a.example"], "ftp://x.example", [3]])
def test_cors_origins_that_are_not_origins_are_refused(planted_model, tmp_path, value):
    with pytest.raises(ParameterError, match=r"The 'cors_origins' parameter of "
                                             r"ServiceSettings\(\) must be "):
        ab_settings(planted_model, tmp_path / "e.sqlite3", cors_origins=value)
