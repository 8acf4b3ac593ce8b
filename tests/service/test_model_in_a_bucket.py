"""``prodfusion serve s3://…/model``: the service serves a local copy of a model folder in a
bucket and switches to each new upload of it by itself; an upload under way (no manifest
yet) keeps the model served; a configuration file keeps the URI. An S3 server in the test
process (moto's, the ``s3`` fixture) stands in for the bucket."""

from __future__ import annotations

import shutil

import httpx
import pytest
from fastapi.testclient import TestClient

from prodfusion.data import storage
from prodfusion.errors import ModelError
from prodfusion.recommender import Recommender
from prodfusion.service.app import create_app
from prodfusion.service.models import preflight
from prodfusion.service.settings import ServiceSettings, load_settings

from .helpers import free_port, make_model, start_server, stop_server


def _ids(client, pid):
    r = client.get(f"/v1/similar/{pid}", params={"visitor": "v1", "k": 5})
    assert r.status_code == 200, r.text
    return [it["product_id"] for it in r.json()["items"]]


def test_a_model_in_a_bucket_is_served_and_each_new_upload_switched_to(s3, tmp_path):
    s3.fs.create_dir("serve-t")
    uri = "s3://serve-t/models/current"
    by_category = Recommender.load(make_model(tmp_path / "a"))
    by_block = Recommender.load(make_model(tmp_path / "b", by="block"))
    by_category.save(uri)
    settings = ServiceSettings.for_model(uri + "/", events=str(tmp_path / "ev.sqlite3"),
                                         reload_interval_s=0)
    assert settings.experiment.variants[0].model == uri
    with TestClient(create_app(settings)) as c:
        assert _ids(c, "0001") == [str(i) for i in by_category.similar("0001", 5)[0]]
        assert c.get("/readyz").json()["variants"]["default"]["folder"] == "current"
        registry = c.app.state.registry
        assert registry.check_reload() == []  # the same publication: nothing loaded
        by_block.save(uri)
        assert registry.check_reload() == [f"loaded {uri}"]
        assert _ids(c, "0001") == [str(i) for i in by_block.similar("0001", 5)[0]]
        # an upload under way (its manifest taken away first): the model served stays
        s3.put(uri + "/.prodfusion-writing", b"")
        s3.fs.delete_file("serve-t/models/current/manifest.json")
        assert registry.check_reload() == []
        assert _ids(c, "0001") == [str(i) for i in by_block.similar("0001", 5)[0]]
        assert c.get("/readyz").status_code == 200
    with pytest.raises(ModelError, match="model folder 's3://serve-t/models/current' has no "
                                         "readable manifest.json"):
        preflight(settings.experiment)
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[experiment]\nname = "e"\n[[experiment.variants]]\nname = "a"\n'
                   f'model = "{uri}"\n')
    assert load_settings(cfg).experiment.variants[0].model == uri


def test_two_workers_serve_one_copy_of_a_model_in_a_bucket(s3, tmp_path):
    s3.fs.create_dir("serve-w")
    uri = "s3://serve-w/m"
    rec = Recommender.load(make_model(tmp_path / "a"))
    rec.save(uri)
    home = storage._local_home("copies", uri)
    shutil.rmtree(home)  # this machine's copy (the save's folder): the workers download it
    port = free_port()
    server = start_server(uri, port, tmp_path / "server.log", "--events",
                          str(tmp_path / "events.sqlite3"), "--workers", "2")
    try:
        want = [str(i) for i in rec.similar("0003", 5)[0]]
        for i in range(6):
            r = httpx.get(f"http://127.0.0.1:{port}/v1/similar/0003?k=5&visitor=v{i}")
            assert r.status_code == 200 and [it["product_id"] for it in r.json()["items"]] == want
    finally:
        stop_server(server)
    assert [p.name for p in home.iterdir()] == [storage.folder_copy(uri, "manifest.json").name]
