"""Photos named by URL: fetched (a local HTTP server stands in for a shop's CDN), encoded as
the same files would be, their vectors cached under the URL for later runs; failures named
by their URL; ``build``, ``add`` and the service with such a catalog."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from prodfusion.data.photos import PhotoFetcher, PhotoFetchError
from prodfusion.encoders import ImageFailure, make_encoder
from prodfusion.encoders.cache import EmbeddingCache
from tests.encoders.conftest import draw, make_catalog


class _Server:
    """Serves ``routes`` (path → list of (status, content type, body), the last repeated)
    and counts the requests per path."""

    def __init__(self, routes):
        self.routes, self.hits, self.heads = routes, Counter(), Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, counts, pick) -> bytes:
                path = self.path.split("?")[0]
                counts[path] += 1
                answers = server.routes.get(path, [(404, "text/html", b"<h1>Not Found</h1>")])
                status, kind, body, *extra = pick(answers, counts[path])
                self.send_response(status)
                for key, value in (extra[0] if extra else {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return body

            def do_HEAD(self):  # noqa: N802 - the stdlib's name; the route's last answer
                self._answer(server.heads, lambda answers, _: answers[-1])

            def do_GET(self):  # noqa: N802 - the stdlib's name
                server.accept = self.headers.get("Accept")
                self.wfile.write(self._answer(
                    server.hits, lambda answers, n: answers[min(n, len(answers)) - 1]))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def cdn(image_dir):
    red, blue = (image_dir / "red.jpg").read_bytes(), (image_dir / "blue.jpg").read_bytes()
    server = _Server({
        "/p/red.jpg": [(200, "image/jpeg", red)],
        "/p/blue.jpg": [(200, "image/jpeg", blue)],
        "/p/busy.jpg": [(503, "text/plain", b"busy"), (200, "image/jpeg", blue)],
        "/p/page.jpg": [(200, "text/html; charset=utf-8", b"<html>moved</html>")],
    })
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def server_accepts_images(accept: str) -> bool:
    """The Accept header asks for the formats Pillow decodes first."""
    return accept.startswith("image/webp,image/jpeg,image/png")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_photos_are_fetched_with_retries_and_failures_named(cdn):
    f = PhotoFetcher()
    assert f.fetch(f"{cdn.url}/p/red.jpg") == cdn.routes["/p/red.jpg"][0][2]
    assert f.fetch(f"{cdn.url}/p/blue.jpg?w=800") == cdn.routes["/p/blue.jpg"][0][2]
    assert f.fetch(f" {cdn.url}/p/busy.jpg") == cdn.routes["/p/blue.jpg"][0][2]  # a 503 first
    assert cdn.hits["/p/busy.jpg"] == 2
    for path, reason in (("/p/gone.jpg", "HTTP 404 Not Found"),
                         ("/p/page.jpg", "not a photo: the server answered text/html")):
        with pytest.raises(PhotoFetchError, match=f"^{reason}$"):
            f.fetch(cdn.url + path)
    assert cdn.hits["/p/gone.jpg"] == 1  # a 404 is not retried
    with pytest.raises(PhotoFetchError, match=r"^ftp:// URLs are not read; copy the photos"):
        f.fetch("ftp://shop.example/a.jpg")
    assert (f.n_tried, f.n_fetched, f.gave_up) == (6, 3, None)
    assert server_accepts_images(cdn.accept)
    # a busy server's Retry-After is honoured (instead of the half-second first pause)
    cdn.routes["/p/later.jpg"] = [(429, "text/plain", b"slow down", {"Retry-After": "1"}),
                                  (200, "image/jpeg", cdn.routes["/p/red.jpg"][0][2])]
    t0 = time.perf_counter()
    assert f.fetch(f"{cdn.url}/p/later.jpg") == cdn.routes["/p/red.jpg"][0][2]
    assert time.perf_counter() - t0 >= 1.0 and cdn.hits["/p/later.jpg"] == 2
    # a URL as shop exports write it, with a space and umlauts: sent percent-encoded
    cdn.routes["/p/Gr%C3%B6%C3%9Fe%20rot.jpg"] = cdn.routes["/p/red.jpg"]
    assert f.fetch(f"{cdn.url}/p/Größe rot.jpg") == cdn.routes["/p/red.jpg"][0][2]


def test_an_unreachable_host_stops_the_fetches_after_the_first_few():
    f = PhotoFetcher(probe=3, retries=0, timeout=2)
    url = f"http://127.0.0.1:{_closed_port()}/p/1.jpg"
    reasons = []
    for _ in range(10):
        with pytest.raises(PhotoFetchError) as err:
            f.fetch(url)
        reasons.append(str(err.value))
    assert all(r.startswith("cannot reach the server") for r in reasons[:3])
    assert all(r.startswith("not tried: none of the first 3 photo URLs could be reached "
                            "(cannot reach the server") for r in reasons[3:])
    assert f.n_tried == 3 and f.n_probed == 3


def test_bad_fetcher_options_are_refused():
    from prodfusion.errors import ParameterError

    for kw in ({"probe": 0}, {"timeout": 0}, {"retries": -1}, {"max_bytes": 1.5}):
        with pytest.raises(ParameterError, match=f"'{next(iter(kw))}' parameter of "
                                                 "PhotoFetcher"):
            PhotoFetcher(**kw)


def test_encoded_urls_equal_the_files_and_are_reused_from_the_cache(cdn, image_dir, tmp_path,
                                                                     tiny_clip_path, caplog):
    cache = EmbeddingCache(tmp_path / "cache")
    urls = [f"{cdn.url}/p/red.jpg", f"{cdn.url}/p/gone.jpg", str(image_dir / "green.jpg"),
            f"{cdn.url}/p/blue.jpg", f"{cdn.url}/p/red.jpg"]
    enc = make_encoder(f"clip:{tiny_clip_path}", cache=cache, batch_size=2, progress=False)
    emb = enc.encode(make_catalog(list("abcde"), urls))
    assert emb.mask.tolist() == [True, False, True, True, True]
    local = make_encoder(f"clip:{tiny_clip_path}", progress=False)
    want, _, _ = local.encode_paths([str(image_dir / n) for n in ("red.jpg", "green.jpg",
                                                                   "blue.jpg", "red.jpg")])
    np.testing.assert_allclose(emb.vectors[[0, 2, 3, 4]], want, rtol=1e-5, atol=1e-6)
    assert emb.info["failures"] == [["0001", urls[1], "missing: download failed: HTTP 404 "
                                                      "Not Found"]]
    assert cdn.hits["/p/red.jpg"] == 1  # one URL twice: fetched once (the cache's key)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()) == []
    # a later run: the vectors from the cache by URL, nothing fetched but the failed one
    again = make_encoder(f"clip:{tiny_clip_path}", cache=cache, progress=False)
    emb2 = again.encode(make_catalog(list("abcde"), urls))
    assert emb2.info["n_cached"] == 4 and emb2.info["n_encoded"] == 0
    np.testing.assert_array_equal(emb2.vectors, emb.vectors)
    assert (cdn.hits["/p/red.jpg"], cdn.hits["/p/blue.jpg"], cdn.hits["/p/gone.jpg"]) == (1, 1, 2)
    # without a cache: fetched into memory each time, nothing written
    vectors, mask, failures = local.encode_paths(urls[:2])
    np.testing.assert_allclose(vectors[0], want[0], rtol=1e-5, atol=1e-6)
    assert mask.tolist() == [True, False] and cdn.hits["/p/red.jpg"] == 2
    assert failures == [ImageFailure(1, urls[1], "missing", "download failed: HTTP 404 Not Found")]
    # an unreachable host: the first 20 tried, the rest named as not tried, one warning
    dead = [f"http://127.0.0.1:{_closed_port()}/p/{i}.jpg" for i in range(60)]
    quick = make_encoder(f"clip:{tiny_clip_path}", progress=False)
    with caplog.at_level("WARNING", logger="prodfusion.encoders"):
        _, mask, failures = quick.encode_paths(dead)
    assert not mask.any() and len(failures) == 60
    skipped = [f for f in failures if f.reason.startswith("download failed: not tried")]
    assert len(skipped) >= 60 - 20 - 16 * 4  # at most the batches under way were tried
    assert "none of the first 20 photo URLs could be reached (cannot reach the server" in \
        caplog.text


def test_build_add_and_service_with_a_catalog_of_photo_urls(cdn, tmp_path, tiny_clip_path,
                                                             image_dir, capsys):
    from fastapi.testclient import TestClient

    from prodfusion.cli import main
    from prodfusion.recommender import Recommender
    from prodfusion.service.app import create_app
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    for i in range(6):
        draw(("red_disk", "blue_stripes", "green_square")[i % 3], shift=i).save(
            tmp_path / f"{i}.jpg", quality=95)
        cdn.routes[f"/p/{i}.jpg"] = [(200, "image/jpeg", (tmp_path / f"{i}.jpg").read_bytes())]
    rows = [f"000{i},Product {i},{cdn.url}/p/{i}.jpg" for i in range(6)]
    (tmp_path / "catalog.csv").write_text("id,title,image_url\n" + "\n".join(rows) + "\n",
                                          encoding="utf-8")
    model, cache = tmp_path / "model", tmp_path / "cache"
    common = ["--catalog", str(tmp_path / "catalog.csv"), "--cache-dir", str(cache)]
    assert main(["build", *common, "--id-col", "id", "--image-col", "image_url", "--text",
                 "none", "--image", f"clip:{tiny_clip_path}", "--out", str(model)]) == 0
    rec = Recommender.load(model)
    assert rec.embeddings_["image"].mask.all()
    assert sum(cdn.hits.values()) == 6
    # what the photos' files give, in the same order
    local = make_encoder(f"clip:{tiny_clip_path}", progress=False)
    want, _, _ = local.encode_paths([str(tmp_path / f"{i}.jpg") for i in range(6)])
    np.testing.assert_allclose(rec.embeddings_["image"].vectors, want, rtol=1e-5, atol=1e-6)

    # add: a product's photo moved to another URL, one new product; nothing else fetched
    rows[2] = f"0002,Product 2,{cdn.url}/p/blue.jpg"  # was a green square
    rows.append(f"0006,Product 6,{cdn.url}/p/0.jpg?v=2")
    (tmp_path / "catalog.csv").write_text("id,title,image_url\n" + "\n".join(rows) + "\n",
                                          encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), *common]) == 0
    out = capsys.readouterr()
    assert "photo files named by the catalog are missing" not in out.err
    rec = Recommender.load(model)
    vectors = rec.embeddings_["image"].vectors
    np.testing.assert_allclose(vectors[2], local.encode_paths([str(image_dir / "blue.jpg")])[0][0],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vectors[6], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vectors[[0, 1, 3, 4, 5]], want[[0, 1, 3, 4, 5]], rtol=1e-5,
                               atol=1e-6)
    assert cdn.hits["/p/blue.jpg"] == 1 and cdn.hits["/p/0.jpg"] == 2
    assert sum(cdn.hits.values()) == 8
    assert "6 of 7 products" in out.err and "1 changed since the model last encoded them " \
        "(photos 1): re-encoded" in out.err
    updates = json.loads((model / "manifest.json").read_text())["updates"]
    assert [(u.get("added_products"), u.get("updated_products")) for u in updates] == \
        [(None, 1), (1, None)]

    # the service: a product's photo is its URL, reached through /images/{id}
    exp = ExperimentConfig(name="urls", variants=(VariantConfig("only", 100, model),))
    settings = ServiceSettings(experiment=exp, events=str(tmp_path / "ev.sqlite3"),
                               reload_interval_s=0)
    with TestClient(create_app(settings)) as client:
        items = client.get("/v1/products?limit=10").json()["items"]
        assert [p["image_url"] for p in items] == [f"/images/000{i}" for i in range(7)]
        r = client.get("/images/0003", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == f"{cdn.url}/p/3.jpg"
        assert client.get("/images/0009").status_code == 404


def test_build_and_add_with_an_image_root_url(cdn, tmp_path, tiny_clip_path, capsys):
    """`--image-root URL --image-template '{product_id}.jpg'`: the photos on a web server by
    name; the root is recorded, so `add` finds the next product's photo there too."""
    from prodfusion.cli import main
    from prodfusion.recommender import Recommender

    for i in range(4):
        draw(("red_disk", "blue_stripes")[i % 2], shift=i).save(tmp_path / f"{i}.jpg")
        cdn.routes[f"/p/000{i}.jpg"] = [(200, "image/jpeg", (tmp_path / f"{i}.jpg").read_bytes())]
    (tmp_path / "c.csv").write_text("product_id,title\n0000,a\n0001,b\n0002,c\n", "utf-8")
    model = tmp_path / "model"
    assert main(["build", "--catalog", str(tmp_path / "c.csv"), "--image-root", f"{cdn.url}/p",
                 "--image-template", "{product_id}.jpg", "--text", "none", "--image",
                 f"clip:{tiny_clip_path}", "--cache-dir", "none", "--out", str(model)]) == 0
    rec = Recommender.load(model)
    assert rec.embeddings_["image"].mask.all()
    assert rec.manifest_["data"]["catalog"]["image_root"] == f"{cdn.url}/p"
    (tmp_path / "c.csv").write_text("product_id,title\n0000,a\n0001,b\n0002,c\n0003,d\n",
                                    "utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(tmp_path / "c.csv"), "--cache-dir",
                 "none"]) == 0
    assert f"--image-root {cdn.url}/p" in capsys.readouterr().err
    rec = Recommender.load(model)
    assert rec.embeddings_["image"].mask.tolist() == [True] * 4
    assert cdn.hits["/p/0003.jpg"] == 1


def test_stats_fetch_a_sample_of_photo_urls(cdn, tmp_path, caplog):
    """`prodfusion stats` checks photos named by URL as a build would read them: the sample
    fetched, sizes read, failures counted as missing and the first named."""
    from prodfusion.data.stats import image_size_stats

    urls = [f"{cdn.url}/p/red.jpg", f"{cdn.url}/p/gone.jpg", f"{cdn.url}/p/blue.jpg", None]
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        got = image_size_stats(urls, sample=10)
    assert got == {"no_path": 1, "urls": 3, "sampled": 3, "missing": 1, "unreadable": 0,
                   "width_min": 60, "width_max": 60, "height_min": 90, "height_max": 90,
                   "most_common": "60x90", "most_common_count": 2}
    assert (f"1 of the 3 sampled photo URLs could not be fetched; first: '{cdn.url}/p/gone.jpg' "
            "(HTTP 404 Not Found).") in caplog.text


def test_clustering_figures_and_trainable_towers_read_photo_urls(cdn, image_dir):
    """The clustering report's example photos and ConVIRT's trainable tower read a photo
    named by URL as they read a file (through the encoders' ``_read``)."""
    from prodfusion.encoders.image import _read
    from prodfusion.evaluation.clustering_inputs import _example_images

    cat = make_catalog(["a", "b"], [f"{cdn.url}/p/red.jpg", image_dir / "nope.jpg"])
    got = _example_images(cat, np.arange(2), np.array([0, 1]), 2)
    assert got == [{"product_id": "0000", "image": f"{cdn.url}/p/red.jpg"}, None]
    assert _read(got[0]["image"]) == (image_dir / "red.jpg").read_bytes()
    with pytest.raises(PhotoFetchError, match="HTTP 404"):
        _read(f"{cdn.url}/p/gone.jpg")


def test_the_number_of_photo_fetching_threads_is_set_by_the_environment(cdn, tiny_clip_path,
                                                                        monkeypatch):
    """``$PRODFUSION_PHOTO_WORKERS`` sets the fetching threads (a GPU encodes faster than 16
    fetches arrive); a value that is no number of threads is refused, naming the variable."""
    import concurrent.futures

    from prodfusion.errors import ParameterError

    made = []
    real = concurrent.futures.ThreadPoolExecutor

    def spy(*args, **kw):
        made.append((kw.get("max_workers"), kw.get("thread_name_prefix")))
        return real(*args, **kw)

    monkeypatch.setattr("prodfusion.encoders.image.ThreadPoolExecutor", spy)
    enc = make_encoder(f"clip:{tiny_clip_path}", progress=False)
    monkeypatch.setenv("PRODFUSION_PHOTO_WORKERS", "3")
    _, mask, _ = enc.encode_paths([f"{cdn.url}/p/red.jpg", f"{cdn.url}/p/blue.jpg"])
    assert mask.all() and (3, "pf-url") in made
    monkeypatch.delenv("PRODFUSION_PHOTO_WORKERS")
    made.clear()
    enc.encode_paths([f"{cdn.url}/p/red.jpg"])
    assert (16, "pf-url") in made
    monkeypatch.setenv("PRODFUSION_PHOTO_WORKERS", "many")
    with pytest.raises(ParameterError, match=r"\$PRODFUSION_PHOTO_WORKERS must be a whole "
                                             r"number of threads from 1 to 1024"):
        enc.encode_paths([f"{cdn.url}/p/red.jpg"])


def test_photos_in_a_bucket_are_encoded_as_their_files_and_served(s3, tmp_path, tiny_clip_path,
                                                                   caplog):
    """A catalog in S3 naming its photos relative to itself, one photo absent, one not an
    image: built, the vectors those of the files; ``/images/{id}`` sends the photo's bytes."""
    from fastapi.testclient import TestClient

    from prodfusion.cli import main
    from prodfusion.recommender import Recommender
    from prodfusion.service.app import create_app
    from prodfusion.service.experiments import ExperimentConfig, VariantConfig
    from prodfusion.service.settings import ServiceSettings

    files = []
    for i in range(5):
        draw(("red_disk", "blue_stripes", "green_square")[i % 3], shift=i).save(
            tmp_path / f"{i}.jpg", quality=95)
        files.append(tmp_path / f"{i}.jpg")
        if i != 3:  # photo 3 never uploaded
            s3.put_file(f"s3://photos-e/feed/img/{i}.jpg", files[-1])
    s3.put("s3://photos-e/feed/img/5.jpg", b"<html>not a photo</html>")
    rows = [f"P{i},Product {i},img/{i}.jpg" for i in range(6)]
    s3.put("s3://photos-e/feed/catalog.csv",
           ("id,title,photo\n" + "\n".join(rows) + "\n").encode())
    model = tmp_path / "model"
    assert main(["build", "--catalog", "s3://photos-e/feed/catalog.csv", "--id-col", "id",
                 "--image-col", "photo", "--text", "none", "--image", f"clip:{tiny_clip_path}",
                 "--cache-dir", "none", "--out", str(model)]) == 0
    assert "2 of 6 product images could not be used (1 missing, 1 corrupt)" in caplog.text
    assert "s3://photos-e/feed/img/3.jpg (missing: download failed: not found)" in caplog.text
    rec = Recommender.load(model)
    image = rec.embeddings_["image"]
    assert image.mask.tolist() == [True, True, True, False, True, False]
    want, _, _ = make_encoder(f"clip:{tiny_clip_path}", progress=False).encode_paths(
        [str(f) for f in files])
    np.testing.assert_allclose(image.vectors[[0, 1, 2, 4]], want[[0, 1, 2, 4]], rtol=1e-5,
                               atol=1e-6)

    exp = ExperimentConfig(name="bucket", variants=(VariantConfig("only", 100, model),))
    settings = ServiceSettings(experiment=exp, events=str(tmp_path / "ev.sqlite3"),
                               reload_interval_s=0)
    with TestClient(create_app(settings)) as client:
        items = client.get("/v1/products?limit=10").json()["items"]
        assert [p["image_url"] for p in items] == ["/images/P0", "/images/P1", "/images/P2",
                                                   None, "/images/P4", None]
        r = client.get("/images/P1")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content == files[1].read_bytes()
        # gone from the bucket since the build: a 404, not an error page
        s3.fs.delete_file("photos-e/feed/img/2.jpg")
        assert client.get("/images/P2").status_code == 404
        # a photo read once is kept by the worker (64 MiB of them): not read from the store again
        s3.fs.delete_file("photos-e/feed/img/1.jpg")
        again = client.get("/images/P1")
        assert again.status_code == 200 and again.content == files[1].read_bytes()


def _only_the_second_photo_reencoded(model, before, new_photo, clip_path):
    """The model's photo vectors: row 1 that of ``new_photo``, rows 0 and 2 as ``before``."""
    from prodfusion.recommender import Recommender

    after = Recommender.load(model).embeddings_["image"].vectors
    want, _, _ = make_encoder(f"clip:{clip_path}", progress=False).encode_paths([str(new_photo)])
    np.testing.assert_allclose(after[1], want[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[1], before[1], atol=1e-3)
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])


def test_a_photo_replaced_in_place_in_a_bucket_is_found_by_add_and_encoded_again(
        s3, tmp_path, tiny_clip_path, capsys):
    """A photo in a bucket overwritten under the same key: `add` with the same feed finds it
    changed (its object's size and time differ from when it was encoded; the others, listed
    with it, do not) and encodes the new photo — not the cache's vector of the old one,
    which is keyed by the URI with the object's size and time."""
    import time

    from prodfusion.cli import main
    from prodfusion.recommender import Recommender

    for i, kind in enumerate(("red_disk", "blue_stripes", "green_square")):
        draw(kind, shift=i).save(tmp_path / f"{i}.jpg", quality=95)
        s3.put_file(f"s3://photos-r/feed/img/{i}.jpg", tmp_path / f"{i}.jpg")
    s3.put("s3://photos-r/feed/catalog.csv", (
        "id,title,photo\n" + "".join(f"P{i},Product {i},img/{i}.jpg\n" for i in range(3))
    ).encode())
    model = tmp_path / "model"
    args = ["--id-col", "id", "--image-col", "photo"]
    assert main(["build", "--catalog", "s3://photos-r/feed/catalog.csv", *args, "--text",
                 "none", "--image", f"clip:{tiny_clip_path}", "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(model)]) == 0
    before = Recommender.load(model).embeddings_["image"].vectors.copy()
    assert (Recommender.load(model).photo_stamps_[:, 0] > 0).all()  # the objects' sizes

    def served_photo():  # what /images/P1 sends (a worker keeps the photos it read)
        from fastapi.testclient import TestClient

        from prodfusion.service.app import create_app
        from prodfusion.service.settings import ServiceSettings

        settings = ServiceSettings.for_model(model, events=str(tmp_path / "ev.sqlite3"),
                                             reload_interval_s=0)
        with TestClient(create_app(settings)) as client:
            return client.get("/images/P1").content

    assert served_photo() == (tmp_path / "1.jpg").read_bytes()
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", "s3://photos-r/feed/catalog.csv"]) == 0
    assert "none changed" in capsys.readouterr().err  # nothing replaced: nothing re-encoded
    time.sleep(1.1)  # the store's clock has seconds
    draw("red_disk", shift=9).save(tmp_path / "new.jpg", quality=60)
    s3.put_file("s3://photos-r/feed/img/1.jpg", tmp_path / "new.jpg")
    assert main(["add", str(model), "--catalog", "s3://photos-r/feed/catalog.csv"]) == 0
    assert "1 changed" in capsys.readouterr().err
    _only_the_second_photo_reencoded(model, before, tmp_path / "new.jpg", tiny_clip_path)
    assert served_photo() == (tmp_path / "new.jpg").read_bytes()  # not the worker's old bytes


def _web_shop(cdn, tmp_path, clip_path, folder, headers, options):
    """Three photos on the test server under ``/folder/`` (each answer carrying
    ``headers(i)``), a catalog naming them, and a model built from it with ``options``;
    returns the model folder and the ``--catalog`` arguments."""
    from prodfusion.cli import main

    for i, kind in enumerate(("red_disk", "blue_stripes", "green_square")):
        draw(kind, shift=i).save(tmp_path / f"{i}.jpg", quality=95)
        cdn.routes[f"/{folder}/{i}.jpg"] = [
            (200, "image/jpeg", (tmp_path / f"{i}.jpg").read_bytes(), headers(i))]
    (tmp_path / "catalog.csv").write_text("id,title,photo\n" + "".join(
        f"P{i},Product {i},{cdn.url}/{folder}/{i}.jpg\n" for i in range(3)), encoding="utf-8")
    model = tmp_path / "model"
    feed = ["--catalog", str(tmp_path / "catalog.csv")]
    assert main(["build", *feed, "--id-col", "id", "--image-col", "photo", "--text", "none",
                 "--image", f"clip:{clip_path}", "--cache-dir", str(tmp_path / "cache"),
                 *options, "--out", str(model)]) == 0
    return model, feed


def test_a_photo_replaced_on_a_web_server_is_found_with_check_photo_urls(
        cdn, tmp_path, tiny_clip_path, capsys):
    """A photo on a web server replaced under the same URL: `add --check-photo-urls` asks
    each photo's server (HEAD) for its ETag, finds the one that changed and encodes the new
    photo — not the cache's vector of the old one, keyed by the URL with that answer;
    without the option `add` goes by the URL, as before."""
    from prodfusion.cli import main
    from prodfusion.data.photos import CHECK_URLS_ENV
    from prodfusion.recommender import Recommender

    model, feed = _web_shop(cdn, tmp_path, tiny_clip_path, "w",
                            lambda i: {"ETag": f'"v1-{i}"'}, ["--check-photo-urls"])
    assert CHECK_URLS_ENV not in os.environ  # set for the command only
    rec = Recommender.load(model)
    before = rec.embeddings_["image"].vectors.copy()
    sizes = [(tmp_path / f"{i}.jpg").stat().st_size for i in range(3)]
    assert rec.photo_stamps_[:, 0].tolist() == sizes  # Content-Length, with the ETag's hash
    gets = sum(cdn.hits.values())
    capsys.readouterr()
    assert main(["add", str(model), *feed, "--check-photo-urls"]) == 0
    assert "none changed" in capsys.readouterr().err and sum(cdn.hits.values()) == gets
    assert all(cdn.heads[f"/w/{i}.jpg"] >= 2 for i in range(3))  # asked, not fetched
    draw("red_disk", shift=9).save(tmp_path / "new.jpg", quality=60)
    cdn.routes["/w/1.jpg"] = [(200, "image/jpeg", (tmp_path / "new.jpg").read_bytes(),
                               {"ETag": '"v2-1"'})]
    assert main(["add", str(model), *feed]) == 0  # the URL unchanged: nothing to see
    assert "none changed" in capsys.readouterr().err
    assert main(["add", str(model), *feed, "--check-photo-urls"]) == 0
    assert "1 changed" in capsys.readouterr().err
    _only_the_second_photo_reencoded(model, before, tmp_path / "new.jpg", tiny_clip_path)


def test_a_model_built_without_check_photo_urls_gets_the_servers_stamps_at_the_first_add(
        cdn, tmp_path, tiny_clip_path, capsys):
    """Built without the option (no stamp for its web photos): the first `add
    --check-photo-urls` records what the servers say, and the next one finds a photo
    replaced since."""
    from prodfusion.cli import main
    from prodfusion.recommender import Recommender

    model, feed = _web_shop(cdn, tmp_path, tiny_clip_path, "u",
                            lambda i: {"Last-Modified": "Mon, 07 Dec 2026 10:00:00 GMT"}, [])
    unasked = Recommender.load(model).photo_stamps_
    assert unasked is None or (unasked == -1).all()  # nothing asked
    before = Recommender.load(model).embeddings_["image"].vectors.copy()
    capsys.readouterr()
    assert main(["add", str(model), *feed, "--check-photo-urls"]) == 0
    out = capsys.readouterr()
    assert "3 photos on web servers had no stamp in the model" in out.err
    assert "the servers' stamps of 3 photos recorded" in out.out
    assert (Recommender.load(model).photo_stamps_[:, 0] > 0).all()
    draw("red_disk", shift=9).save(tmp_path / "new.jpg", quality=60)
    cdn.routes["/u/1.jpg"] = [(200, "image/jpeg", (tmp_path / "new.jpg").read_bytes(),
                               {"Last-Modified": "Mon, 07 Dec 2026 11:00:00 GMT"})]
    assert main(["add", str(model), *feed, "--check-photo-urls"]) == 0
    assert "1 changed" in capsys.readouterr().err
    _only_the_second_photo_reencoded(model, before, tmp_path / "new.jpg", tiny_clip_path)


def test_an_embedding_cache_in_a_bucket_outlives_the_machine(s3, tmp_path, tiny_clip_path,
                                                            capsys, monkeypatch):
    """``--cache-dir s3://…``: the cache mirrored into a local folder and saved back when the
    command ends; a build on a fresh machine (the mirror gone) finds every photo's vector in
    it — no photo is read again."""
    import shutil

    from prodfusion.cli import main
    from prodfusion.data.storage import FolderMirror
    from prodfusion.recommender import Recommender

    for i in range(4):
        draw(("red_disk", "blue_stripes")[i % 2], shift=i).save(tmp_path / f"{i}.jpg",
                                                                quality=95)
        s3.put_file(f"s3://photos-m/img/{i}.jpg", tmp_path / f"{i}.jpg")
    rows = [f"P{i},Product {i},s3://photos-m/img/{i}.jpg" for i in range(4)]
    (tmp_path / "catalog.csv").write_text("id,title,photo\n" + "\n".join(rows) + "\n")
    s3.fs.create_dir("cache-m")
    cache = "s3://cache-m/prodfusion"
    shutil.rmtree(FolderMirror(cache).local, ignore_errors=True)  # this machine's, if any
    common = ["--catalog", str(tmp_path / "catalog.csv"), "--id-col", "id", "--image-col",
              "photo", "--text", "none", "--image", f"clip:{tiny_clip_path}", "--cache-dir",
              cache]
    assert main(["build", *common, "--out", str(tmp_path / "m1")]) == 0
    err = capsys.readouterr().err
    assert f"embedding cache {cache}: 0 file(s) downloaded" in err
    assert f"embedding cache {cache}: 3 file(s) uploaded, 0 removed" in err  # a shard + json
    first = Recommender.load(tmp_path / "m1").embeddings_["image"]
    assert first.mask.all()

    # a fresh machine: no local mirror; no photo read again (listed only: their sizes and
    # times are the cache's keys with their URIs)
    shutil.rmtree(FolderMirror(cache).local)
    from prodfusion.data import storage

    read = storage.read_object
    monkeypatch.setattr(storage, "read_object", lambda uri, *a, **k: (
        pytest.fail(f"{uri} read again") if "/img/" in uri else read(uri, *a, **k)))
    assert main(["build", *common, "--out", str(tmp_path / "m2")]) == 0
    err = capsys.readouterr().err
    assert f"embedding cache {cache}: 3 file(s) downloaded" in err
    again = Recommender.load(tmp_path / "m2").embeddings_["image"]
    assert again.mask.all()
    np.testing.assert_array_equal(again.vectors, first.vectors)
    assert "uploaded" not in err  # nothing new to save back
    shutil.rmtree(FolderMirror(cache).local)


def test_photo_workers_option_sets_the_fetching_threads_for_the_command_only(
        s3, tmp_path, tiny_clip_path, monkeypatch):
    """`build --photo-workers 3`: the photos are fetched by 3 threads (what
    $PRODFUSION_PHOTO_WORKERS sets), the environment as it was after the command."""
    from prodfusion.cli import main
    from prodfusion.encoders import image

    for i in range(3):
        draw("red_disk", shift=i).save(tmp_path / f"{i}.jpg", quality=95)
        s3.put_file(f"s3://photos-w/img/{i}.jpg", tmp_path / f"{i}.jpg")
    (tmp_path / "catalog.csv").write_text("id,title,photo\n" + "".join(
        f"P{i},Product {i},s3://photos-w/img/{i}.jpg\n" for i in range(3)))
    monkeypatch.delenv(image.PHOTO_WORKERS_ENV, raising=False)
    seen = []
    real = image.url_workers
    monkeypatch.setattr(image, "url_workers", lambda: seen.append(real()) or seen[-1])
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "id",
                 "--image-col", "photo", "--text", "none", "--image",
                 f"clip:{tiny_clip_path}", "--cache-dir", "none", "--photo-workers", "3",
                 "--out", str(tmp_path / "m")]) == 0
    assert seen == [3]
    assert image.PHOTO_WORKERS_ENV not in os.environ
