"""Service defects of issue 13, each reproduced: deep JSON nesting and ±1e999 on
``POST /v1/events``, symlinks in the image folder, absolute paths in public answers, slow
bodies, control characters in ``exclude``, unvalidated ``ts``, coerced ``rank``, and damaged
model folders on reload."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from prodfusion.service.app import create_app

from .conftest import ab_settings
from .helpers import free_port, make_catalog, make_model, start_server, stop_server


def _view(**over) -> dict:
    e = {"event_id": uuid.uuid4().hex, "type": "view", "request_id": "r1", "product_id": "0001",
         "visitor": "v1"}
    e.update(over)
    return e


def _click(**over) -> dict:
    e = {"event_id": uuid.uuid4().hex, "type": "click", "request_id": "r1",
         "product_id": "0001", "visitor": "v1", "target_id": "0005", "rank": 1}
    e.update(over)
    return e


def _post(client, body: bytes):
    return client.post("/v1/events", content=body, headers={"content-type": "application/json"})


# ---------------------------------------------------------------------- fuzz: bodies
@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deeply_nested_json_is_400(client, depth):
    body = b'{"events": [' + b"[" * depth + b"]" * depth + b"]}"
    r = _post(client, body)
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": "JSON nested deeper than 32 levels."}
    deep_obj = b'{"events": [' + b'{"a":' * depth + b"1" + b"}" * depth + b"]}"
    assert _post(client, deep_obj).status_code == 400
    assert client.app.state.store.count() == 0


@pytest.mark.parametrize(("field", "raw"), [
    ("rank", b"1e999"), ("rank", b"-1e999"), ("ts", b"-1e999"), ("ts", b"1E+400"),
])
def test_out_of_range_numbers_are_400(client, field, raw):
    e = _click() if field == "rank" else _view()
    e[field] = "@@"
    body = json.dumps({"events": [e]}).encode().replace(b'"@@"', raw)
    r = _post(client, body)
    assert r.status_code == 400, r.text
    assert "is out of range (numbers must be finite)" in r.json()["detail"]


def test_huge_integer_is_a_json_error_not_a_500(client):
    e = _click()
    e["rank"] = "@@"
    body = json.dumps({"events": [e]}).encode().replace(b'"@@"', b"9" * 5000)
    r = _post(client, body)
    assert r.status_code in (400, 422) and "detail" in r.json()


@pytest.mark.parametrize("rank", ["3", True, 3.0, "three", 2.5])
def test_rank_must_be_a_json_integer(client, rank):
    r = client.post("/v1/events", json={"events": [_click(rank=rank)]})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == "rank"
    assert client.app.state.store.count() == 0


@pytest.mark.parametrize("ts", ["not a date", "2024-13-01T00:00:00Z", "12345", "", "2024-06-02"])
def test_ts_must_be_iso_8601(client, ts):
    r = client.post("/v1/events", json={"events": [_view(ts=ts)]})
    assert r.status_code == 422, r.text
    assert "'ts' must be an ISO 8601 date-time" in r.text


def test_valid_ts_is_stored(client):
    ok = ["2024-06-02T10:11:12Z", "2024-06-02T10:11:12.345+02:00"]
    r = client.post("/v1/events", json={"events": [_view(ts=t) for t in ok]})
    assert r.status_code == 200, r.text
    assert sorted(e.client_ts for e in client.app.state.store.fetch_events()) == sorted(ok)


@pytest.mark.parametrize("bad", ["a%0A", "%0A", "a%0D", "a%1Fb", "a%7F", "x%2Fy"])
def test_control_characters_in_exclude_are_422(client, bad):
    r = client.get(f"/v1/similar/0001?exclude={bad}")
    assert r.status_code == 422 and "Malformed product id in 'exclude'" in r.json()["detail"]


# ---------------------------------------------------------------------- images
def test_symlinks_in_the_image_folder_cannot_widen_it(tmp_path):
    """No `images` setting: the allowed folder comes from the catalog's paths as written,
    never from where symlinks point."""
    import polars as pl

    from prodfusion.data.catalog import Catalog

    cat = make_catalog(tmp_path, 8)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for you")
    imgs = tmp_path / "images"
    (imgs / "0001.png").unlink()
    (imgs / "0001.png").symlink_to(secret)           # escapes to the parent folder
    (imgs / "0002.png").unlink()
    (imgs / "0002.png").symlink_to("/etc/passwd")      # escapes to /etc
    (imgs / "0003.png").unlink()
    os.mkfifo(imgs / "0003.png")                       # not a regular file
    (imgs / "0004.png").unlink()
    (imgs / "0004.png").symlink_to(imgs / "0000.png")  # a link inside the folder is fine
    cat = Catalog(cat.frame.with_columns(pl.Series("image", cat.image_paths)), source="<test>")
    model = make_model(tmp_path, catalog=cat)
    s = ab_settings(model, tmp_path / "ev.sqlite3")
    with TestClient(create_app(s)) as c:
        for pid in ("0001", "0002", "0003"):
            r = c.get(f"/images/{pid}")
            assert r.status_code == 404, pid
            assert b"not for you" not in r.content and b"root:" not in r.content
        for pid in ("0000", "0005", "0006", "0007"):  # the others are still served
            assert c.get(f"/images/{pid}").status_code == 200, pid
        assert c.get("/images/0004").content == (imgs / "0000.png").read_bytes()


# ---------------------------------------------------------------------- no server paths
def _secrets_of(tmp_path, model) -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    return [str(tmp_path), os.path.realpath(tmp_path), str(model), os.path.realpath(model),
            sys.prefix, os.path.dirname(os.path.dirname(here))]


def test_no_public_response_contains_an_absolute_path(tmp_path):
    model = make_model(tmp_path)
    current = tmp_path / "current"
    from prodfusion.service.models import publish_model

    publish_model(model, current)
    s = ab_settings(current, tmp_path / "ev.sqlite3")
    secrets = _secrets_of(tmp_path, model)
    with TestClient(create_app(s)) as c:
        got: dict[str, str] = {}
        sim = c.get("/v1/similar/0001?visitor=v1").json()
        v = {"event_id": "e1", "type": "view", "request_id": sim["request_id"],
             "product_id": "0001", "visitor": "v1"}
        got["POST /v1/events"] = c.post("/v1/events", json={"events": [v]}).text
        got["POST /v1/events bad"] = _post(c, b"{").text
        # a damaged publication: its reload error is public through /readyz
        broken = tmp_path / "broken"
        import shutil

        shutil.copytree(model, broken)
        data = (broken / "catalog.parquet").read_bytes()
        (broken / "catalog.parquet").write_bytes(data[: len(data) // 2])
        publish_model(broken, current, validate=False)
        out = c.app.state.registry.check_reload()
        assert out and "catalog.parquet" in out[0] and str(broken) in out[0]  # the log keeps it
        params = {"product_id": "0001", "name": "fusion-test"}
        for route in c.app.routes:
            methods = getattr(route, "methods", None) or set()
            if "GET" not in methods:
                continue
            path = route.path.format(**{k: params.get(k, "x") for k in params})
            for url in (path, path.replace("0001", "nope")):
                got[url] = c.get(url + ("?visitor=v1" if "similar" in url else "")).text
        for url in ("/v1/similar/nope", "/images/nope", "/v1/experiments/nope/report",
                    "/experiments/nope", "/static/app.js", "/no/such/route"):
            got[url] = c.get(url).text
        ready = json.loads(got["/readyz"])
        (err,) = ready["reload_errors"].values()
        assert "file 'catalog.parquet': cannot read the catalog table" in err
        assert "model folder 'broken'" in err
    assert sim["model"].startswith("m-") and len(got) > 12
    for url, text in got.items():
        for secret in secrets:
            assert secret not in text, f"{url} shows the server path {secret!r}"


# ---------------------------------------------------------------------- slow clients
def _config(tmp_path, model, **service) -> str:
    lines = [f'events = "{tmp_path / "ev.sqlite3"}"'] + [f"{k} = {v}" for k, v in service.items()]
    cfg = tmp_path / "serve.toml"
    cfg.write_text("[service]\n" + "\n".join(lines) + f"""
[experiment]
name = "slow"
[[experiment.variants]]
name = "a"
model = "{model}"
""")
    return str(cfg)


@pytest.mark.slow
def test_slow_body_is_timed_out_and_connections_are_capped(tmp_path):
    model = make_model(tmp_path)
    port = free_port()
    server = start_server(_config(tmp_path, model, body_timeout_s=1.0, max_connections=8),
                          port, tmp_path / "server.log")
    socks = []
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"events\": [")  # ... and the rest never comes
        t0 = time.monotonic()
        reply = s.recv(65536)
        waited = time.monotonic() - t0
        while True:  # read to the end: the server closes the connection after its answer
            more = s.recv(65536)
            if not more:
                break
            reply += more
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"did not arrive within 1 s" in reply
        assert 0.5 < waited < 8
        s.close()
        # the cap: with 8 connections held by stuck clients, the next request gets 503 at once
        for _ in range(8):
            k = socket.create_connection(("127.0.0.1", port), timeout=10)
            k.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            socks.append(k)
        time.sleep(0.3)
        import httpx

        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert r.status_code == 503
        for k in socks:
            k.close()
        socks.clear()
        time.sleep(1.5)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        for k in socks:
            k.close()
        stop_server(server)


# ---------------------------------------------------------------------- fuzz
def test_fuzzed_event_bodies_never_get_a_500(client):
    """Random JSON (deep, huge, non-finite, wrong types) in every place of an event batch."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=30), st.sampled_from(["1e999", "-1e999", "NaN"]))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=12)
    fields = ["event_id", "type", "request_id", "product_id", "visitor", "target_id", "rank",
              "ts", "target_sig", "extra"]

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(st.sampled_from(fields), values, max_size=6),
           st.integers(min_value=0, max_value=60), st.booleans())
    def check(event, depth, raw_numbers):
        body = json.dumps({"events": [event]})
        if raw_numbers:  # the strings above become bare JSON tokens
            body = body.replace('"1e999"', "1e999").replace('"-1e999"', "-1e999") \
                .replace('"NaN"', "NaN")
        body = "[" * depth + body + "]" * depth
        r = _post(client, body.encode())
        assert r.status_code in (200, 400, 422), (r.status_code, body[:300])
        assert "detail" in r.json() or r.status_code == 200

    check()


def test_image_root_recorded_by_the_build_and_absolute_paths_elsewhere(tmp_path):
    from prodfusion.service.models import _image_root

    imgs, other = tmp_path / "imgs", tmp_path / "elsewhere"
    imgs.mkdir()
    other.mkdir()
    inside = [str(imgs / "a.png"), str(imgs / "sub" / "b.png")]
    assert _image_root(inside, None, str(imgs)) == imgs.resolve()
    # a catalog with absolute paths outside its recorded root: the paths' own common folder
    outside = [str(other / "a.png"), str(other / "b.png")]
    assert _image_root(outside, None, str(imgs)) == other.resolve()
    # the service setting always wins
    assert _image_root(outside, imgs, str(imgs)) == imgs.resolve()


def test_folders_without_a_model_id_get_a_stable_public_name(tmp_path):
    model = make_model(tmp_path)
    m = json.loads((model / "manifest.json").read_text())
    m.pop("model_id")  # a folder written before model ids existed
    (model / "manifest.json").write_text(json.dumps(m))
    s = ab_settings(model, tmp_path / "ev.sqlite3")
    with TestClient(create_app(s)) as c:
        names = {c.get(f"/v1/similar/0001?visitor=v{i}").json()["model"] for i in range(3)}
        assert len(names) == 1 and names.pop().startswith("m-")
        assert c.get("/readyz").json()["variants"]["baseline"]["model_id"].startswith("m-")
