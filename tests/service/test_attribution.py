"""Trustworthy A/B events: signed request ids, quarantine (stored, flagged, excluded from the
report, counted in /metrics), reload dedup, the secret's configuration, the report's
excluded counts (JSON, `prodfusion ab report`)."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient

from prodfusion.cli import main
from prodfusion.service.app import create_app

from .conftest import ab_settings
from .test_app import visitors_of


def _served(client, visitor: str, pid: str = "0001", k: int = 5) -> dict:
    r = client.get(f"/v1/similar/{pid}?k={k}&visitor={visitor}")
    assert r.status_code == 200
    return r.json()


def _ev(typ: str, body: dict, **over) -> dict:
    e = {"event_id": uuid.uuid4().hex, "type": typ, "request_id": body["request_id"],
         "product_id": body["product"]["product_id"], "visitor": body["visitor"]}
    if typ == "click":
        e.update(target_id=body["items"][1]["product_id"], rank=2, target_sig=body["target_sigs"][1])
    e.update(over)
    return e


def _post(client, events):
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 200, r.text
    return r.json()


def _status(client) -> dict[str, str]:
    return {e.event_id: e.status for e in client.app.state.store.fetch_events()}


def test_honest_events_count_and_forged_ones_are_quarantined(client):
    vf = visitors_of(client, "fusion", 2)
    vb = visitors_of(client, "baseline", 1)[0]
    body = _served(client, vf[0])
    other = _served(client, vf[1])
    attr = client.app.state.attribution
    honest = [_ev("view", body), _ev("click", body), _ev("jump", body)]
    forged_rid = "0123456789abcdef.1700000000." + "0" * 32
    bad = {
        # a request id the server never issued
        "forged": _ev("click", body, request_id=forged_rid),
        "uuid": _ev("view", body, request_id=uuid.uuid4().hex),
        # a real id, but another visitor's
        "stolen": _ev("view", body, visitor=vf[1]),
        # a real id of this visitor, but for another product than the event names
        "other_product": _ev("jump", body, product_id="0002"),
        # signed for the other variant than the visitor is assigned to
        "variant": _ev("view", body, request_id=attr.issue(vf[0], "baseline", "0001")),
        # a click on a product the list did not show, or at another rank, or without proof
        "not_served": _ev("click", body, target_id="0002",
                          target_sig=attr.target_sig(body["request_id"], 2, "0005")),
        "wrong_rank": _ev("click", body, rank=3),
        "no_sig": _ev("click", body, target_sig=None),
        "other_list_sig": _ev("click", body, target_sig=other["target_sigs"][1]),
    }
    for e in bad.values():
        if e.get("target_sig") is None:
            e.pop("target_sig", None)
    ack = _post(client, honest + list(bad.values()))
    assert ack == {"received": 12, "stored": 12, "duplicates": 0, "quarantined": 9}
    st = _status(client)
    assert [st[e["event_id"]] for e in honest] == ["ok", "ok", "ok"]
    want = {"forged": "unverified", "uuid": "unverified", "stolen": "unverified",
            "other_product": "unverified", "variant": "variant_mismatch",
            "not_served": "target_not_served", "wrong_rank": "target_not_served",
            "no_sig": "target_not_served", "other_list_sig": "target_not_served"}
    assert {k: st[e["event_id"]] for k, e in bad.items()} == want
    # a baseline visitor's honest view
    _post(client, [_ev("view", _served(client, vb))])

    rep = client.get("/v1/experiments/fusion-test/report").json()
    fus = next(v for v in rep["variants"] if v["variant"] == "fusion")
    assert (fus["views"], fus["clicks"], fus["jumps"], fus["click_events"]) == (1, 1, 1, 1)
    assert rep["srm"]["observed"] == {"baseline": 1, "fusion": 1}  # vf[1]'s view was stolen
    exc = rep["excluded"]
    assert exc["total"] == 9
    assert exc["by_reason"] == {"unverified": 4, "variant_mismatch": 1, "target_not_served": 4}
    assert exc["by_variant"] == {"fusion": 9}
    assert exc["by_type"] == {"click": 5, "view": 3, "jump": 1}
    metrics = client.get("/metrics").text
    assert ('prodfusion_events_quarantined_total{reason="target_not_served",type="click",'
            'variant="fusion"} 4.0') in metrics
    assert ('prodfusion_events_quarantined_total{reason="variant_mismatch",type="view",'
            'variant="fusion"} 1.0') in metrics
    assert 'prodfusion_events_total{outcome="quarantined",type="click",variant="fusion"} 5.0' in metrics


def test_late_events_are_quarantined(planted_model, tmp_path):
    s = ab_settings(planted_model, tmp_path / "ev.sqlite3", attribution_window_s=3600,
                    impression_period_s=0)
    with TestClient(create_app(s)) as c:
        v = visitors_of(c, "fusion", 1)[0]
        attr = c.app.state.attribution
        old = attr.issue(v, "fusion", "0001", now=time.time() - 3700)
        fresh = attr.issue(v, "fusion", "0001", now=time.time() - 3500)
        future = attr.issue(v, "fusion", "0001", now=time.time() + 3600)
        evs = [{"event_id": f"e{i}", "type": "jump", "request_id": rid, "product_id": "0001",
                "visitor": v} for i, rid in enumerate((old, fresh, future))]
        assert _post(c, evs)["quarantined"] == 2
        assert _status(c) == {"e0": "late", "e1": "ok", "e2": "late"}


def test_a_reload_is_the_same_impression(client):
    v = visitors_of(client, "fusion", 1)[0]
    first, again = _served(client, v), _served(client, v)
    assert first["request_id"] == again["request_id"]  # reload within the period: same id
    assert _served(client, v, k=6)["request_id"] != first["request_id"]  # another list
    assert _served(client, v, pid="0002")["request_id"] != first["request_id"]
    _post(client, [_ev("view", first), _ev("view", again), _ev("view", again),
                   _ev("click", again)])
    rep = client.get("/v1/experiments/fusion-test/report").json()
    fus = next(r for r in rep["variants"] if r["variant"] == "fusion")
    assert (fus["views"], fus["clicks"], fus["ctr"]) == (1, 1, 1.0)
    assert rep["repeated_views"] == 2


def test_every_answer_is_new_when_the_period_is_zero(planted_model, tmp_path):
    s = ab_settings(planted_model, tmp_path / "ev.sqlite3", impression_period_s=0)
    with TestClient(create_app(s)) as c:
        assert _served(c, "v1")["request_id"] != _served(c, "v1")["request_id"]


def test_the_secret_comes_from_the_settings_or_the_store(planted_model, tmp_path):
    db = tmp_path / "ev.sqlite3"

    def rid_verifies(issuer_settings, checker_settings) -> bool:
        with TestClient(create_app(issuer_settings)) as a:
            body = _served(a, "v1")
        with TestClient(create_app(checker_settings)) as b:
            return _post(b, [_ev("view", body)])["quarantined"] == 0

    k1, k2 = "a" * 32, "b" * 32
    assert rid_verifies(ab_settings(planted_model, db, ab_secret=k1),
                        ab_settings(planted_model, tmp_path / "other.sqlite3", ab_secret=k1))
    assert not rid_verifies(ab_settings(planted_model, db, ab_secret=k1),
                            ab_settings(planted_model, db, ab_secret=k2))
    # unset: a random secret kept in the event store, shared by every process using it
    assert rid_verifies(ab_settings(planted_model, db), ab_settings(planted_model, db))
    assert not rid_verifies(ab_settings(planted_model, db),
                            ab_settings(planted_model, tmp_path / "third.sqlite3"))
    with pytest.raises(Exception, match="'ab_secret' parameter of ServiceSettings"):
        ab_settings(planted_model, db, ab_secret="short")


def test_secret_from_file_or_environment(tmp_path, planted_model, monkeypatch):
    from prodfusion.service.settings import load_settings

    (tmp_path / "secret.txt").write_text("s" * 40 + "\n")
    cfg = tmp_path / "serve.toml"
    cfg.write_text('[service]\nab_secret_file = "secret.txt"\n[experiment]\nname = "e"\n'
                   f'[[experiment.variants]]\nname = "a"\nmodel = "{planted_model}"\n')
    assert load_settings(cfg).ab_secret == "s" * 40
    monkeypatch.setenv("PRODFUSION_AB_SECRET", "e" * 40)
    assert load_settings(planted_model).ab_secret == "e" * 40
    assert load_settings(cfg).ab_secret == "s" * 40  # the file wins over the environment
    assert "s" * 40 not in repr(load_settings(cfg))  # never printed


def test_ab_report_prints_excluded_counts(client, tmp_path, capsys):
    v = visitors_of(client, "fusion", 1)[0]
    body = _served(client, v)
    _post(client, [_ev("view", body), _ev("click", body),
                   _ev("click", body, target_id="0002"), _ev("view", body, request_id="nope")])
    db = client.app.state.settings.events
    assert main(["ab", "report", db]) == 0
    out = capsys.readouterr().out
    assert ("Excluded: 2 quarantined event(s), not counted anywhere above "
            "(target_not_served 1, unverified 1; by variant: fusion 2).") in out
    assert main(["ab", "report", db, "--json"]) == 0
    import json

    rep = json.loads(capsys.readouterr().out)
    assert rep["excluded"]["by_reason"] == {"target_not_served": 1, "unverified": 1}
