"""Hot reload: a new model folder is published atomically and served without a failed request;
a broken folder is refused and the old model keeps serving."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from prodfusion.errors import ModelError
from prodfusion.service.app import create_app
from prodfusion.service.models import publish_model

from .conftest import ab_settings
from .helpers import make_model

A_ANSWER = {f"{i:04d}" for i in range(5, 40, 4)}  # planted by category (i % 4): 0001 -> 5, 9, …
B_ANSWER = {f"{i:04d}" for i in range(0, 10) if i != 1}  # planted by block (i // 10)


def _wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _model_id(folder) -> str:
    import json

    return json.loads((folder / "manifest.json").read_text())["model_id"]


def test_hot_reload_during_requests_and_broken_folder_refused(tmp_path):
    a = make_model(tmp_path / "a", by="category")
    b = make_model(tmp_path / "b", by="block", seed=1)
    current = tmp_path / "current"
    publish_model(a, current)
    s = ab_settings(current, tmp_path / "events.sqlite3", reload_interval_s=0.05)
    results: list[tuple[int, frozenset]] = []
    stop = threading.Event()
    with TestClient(create_app(s)) as c:

        def hammer():
            i = 0
            while not stop.is_set():
                r = c.get(f"/v1/similar/0001?k=9&visitor=v{i % 7}")
                ids = frozenset(it["product_id"] for it in r.json().get("items", []))
                results.append((r.status_code, ids))
                i += 1

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            assert _wait(lambda: len(results) > 20)
            publish_model(b, current)
            assert _wait(lambda: results and results[-1][1] == B_ANSWER), "never switched to B"
            n_switched = len(results)
            # a broken publication: manifest is not JSON
            broken = tmp_path / "broken" / "model"
            broken.parent.mkdir()
            import shutil

            shutil.copytree(b, broken)
            (broken / "manifest.json").write_text("{not json")
            publish_model(broken, current, validate=False)
            assert _wait(lambda: c.get("/readyz").json()["reload_errors"] != {})
            assert _wait(lambda: len(results) > n_switched + 30)
        finally:
            stop.set()
            for t in threads:
                t.join()
        ready = c.get("/readyz").json()
        (err,) = ready["reload_errors"].values()
        assert "unreadable manifest" in err
        assert str(tmp_path) not in str(ready)  # no server path in a public answer
        assert ready["variants"]["fusion"]["model_id"] == _model_id(b)  # the last good model
        assert c.get("/v1/similar/0001?k=9").json()["model"] == _model_id(b)
        metrics = c.get("/metrics").text
        assert 'prodfusion_model_reloads_total{outcome="loaded"} 1.0' in metrics
        assert 'prodfusion_model_reloads_total{outcome="refused"} 1.0' in metrics
        # published back to the model served: the refusal is history, not a live error
        publish_model(b, current)
        assert c.app.state.registry.check_reload() == []
        assert c.get("/readyz").json()["reload_errors"] == {}
        # a good publication after the broken one is picked up again
        publish_model(a, current)
        assert _wait(lambda: c.get("/v1/similar/0001?k=9").json()["model"] == _model_id(a))
    statuses = {st for st, _ in results}
    assert statuses == {200}, "a request failed during the reload"
    answers = {ids for _, ids in results}
    assert answers == {frozenset(A_ANSWER), frozenset(B_ANSWER)}  # never a mix of the two


def test_publish_model_validates_and_refuses_real_folders(tmp_path):
    a = make_model(tmp_path / "a")
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(ModelError, match="no manifest.json"):
        publish_model(bad, tmp_path / "current")
    assert not (tmp_path / "current").exists()
    real = tmp_path / "real"
    real.mkdir()
    with pytest.raises(ModelError, match="is a real folder, not a symlink"):
        publish_model(a, real)
    assert publish_model(a, tmp_path / "current") == a.resolve()
    assert (tmp_path / "current").resolve() == a.resolve()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".current")] == []


def test_service_refuses_to_start_on_a_broken_folder(tmp_path):
    broken = tmp_path / "m"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"format_version": 99}')
    s = ab_settings(broken, tmp_path / "ev.sqlite3")
    with pytest.raises(ModelError, match="format version 99 is newer"):
        with TestClient(create_app(s)):
            pass
