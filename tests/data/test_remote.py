"""Catalogs, feeds and click logs named by their ``https://`` URL (a merchant feed, an export a
shop system publishes): downloaded and read as the local file, messages naming the URL. A
local HTTP server stands in for the shop's."""

from __future__ import annotations

import functools
import gzip
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prodfusion.cli import main
from prodfusion.data import make_synthetic, read_catalog, read_interactions
from prodfusion.errors import DataError

FEED = """<?xml version="1.0"?>
<rss xmlns:g="http://base.google.com/ns/1.0" version="2.0"><channel>
<item><g:id>A1</g:id><title>Red dress</title><g:image_link>img/a1.jpg</g:image_link></item>
<item><g:id>A2</g:id><title>Blue shoe</title><g:image_link>https://cdn.example/a2.jpg</g:image_link></item>
</channel></rss>
"""


class _Shop(SimpleHTTPRequestHandler):
    """The folder's files, and two answers without a file suffix: ``/export`` (a CSV said
    to be one by its Content-Type) and ``/blob`` (said to be nothing known)."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        extra = {"/export": ("text/csv; charset=utf-8", b"product_id,title\n7,Lamp\n"),
                 "/blob": ("application/octet-stream", b"product_id,title\n7,Lamp\n")}
        if self.path in extra:
            kind, body = extra[self.path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    paths = make_synthetic(folder, n_products=80, n_sessions=300, seed=2)
    with gzip.open(folder / "feed.xml.gz", "wt", encoding="utf-8") as fh:
        fh.write(FEED)
    (folder / "broken.csv").write_text('product_id,title\n1,"never closed\n', "utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Shop, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield paths, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_catalog_and_a_log_by_url_read_as_their_files(shop):
    paths, base = shop
    got = read_catalog(base + "/catalog.csv")
    local = read_catalog(paths.catalog)
    assert got.ids.tolist() == local.ids.tolist()
    assert got.frame["title"].to_list() == local.frame["title"].to_list()
    assert got.source == base + "/catalog.csv"
    # relative photo paths join the catalog's folder on the server
    first = local.frame["image"][0]
    assert got.frame["image"][0] == base + "/images/" + first.rsplit("/", 1)[-1]
    log = read_interactions(base + "/sessions.csv", time_col="timestamp")
    assert log.equals(read_interactions(paths.interactions, time_col="timestamp"))


def test_a_gzipped_feed_and_a_suffixless_export_by_url(shop):
    _, base = shop
    feed = read_catalog(base + "/feed.xml.gz", id_col="id", image_col="image_link")
    assert feed.ids.tolist() == ["A1", "A2"]
    assert feed.frame["image"].to_list() == [base + "/img/a1.jpg", "https://cdn.example/a2.jpg"]
    assert read_catalog(base + "/export").ids.tolist() == ["7"]  # its Content-Type: CSV
    with pytest.raises(DataError, match=r"/blob: its format cannot be told from its name nor "
                                        r"from its Content-Type \('application/octet-stream'\); "
                                        r"name it with fmt="):
        read_catalog(base + "/blob")
    assert read_catalog(base + "/blob", fmt="csv").ids.tolist() == ["7"]


def test_a_url_that_fails_or_a_file_that_does_not_parse_is_named_by_its_url(shop):
    _, base = shop
    with pytest.raises(DataError, match=rf"^{base}/gone\.csv: cannot be downloaded \(HTTP 404 "):
        read_catalog(base + "/gone.csv")
    with pytest.raises(DataError) as e:
        read_catalog(base + "/broken.csv")
    assert str(e.value).startswith(f"{base}/broken.csv: cannot be parsed as delimited text")
    assert "prodfusion-download-" not in str(e.value)  # not the temporary copy's path
    with pytest.raises(DataError, match=r"cannot be downloaded \(cannot reach the server"):
        read_interactions("http://127.0.0.1:9/clicks.csv")


def test_build_tune_and_add_with_files_named_by_url(shop, tmp_path, capsys):
    _, base = shop
    model = tmp_path / "model"
    assert main(["build", "--catalog", base + "/catalog.csv", "--interactions",
                 base + "/sessions.csv", "--time-col", "timestamp", "--text", "none",
                 "--image", "none", "--p2v-dim", "8", "--p2v-epochs", "2", "--workers", "1",
                 "--tune", "off", "--cache-dir", "none", "--out", str(model)]) == 0
    record = json.loads((model / "manifest.json").read_text())["data"]
    assert record["catalog"]["path"] == base + "/catalog.csv"
    assert record["interactions"]["path"] == base + "/sessions.csv"
    capsys.readouterr()
    assert main(["tune", str(model), "--dry-run", "--workers", "1", "--quiet"]) == 0
    assert f"--interactions {base}/sessions.csv" in capsys.readouterr().err  # the record
    assert main(["add", str(model), "--catalog", base + "/catalog.csv",
                 "--out", str(tmp_path / "model2")]) == 0
    assert "already in the model: none changed" in capsys.readouterr().err


def test_a_large_download_says_how_far_it_is(shop, tmp_path, capsys):
    from prodfusion.data.photos import download_file

    _, base = shop
    kind = download_file(base + "/sessions.csv", tmp_path / "s.csv", progress_from=1)
    assert kind.startswith("text/csv")
    err = capsys.readouterr().err
    assert "downloading sessions.csv" in err and "MiB" in err
    assert (tmp_path / "s.csv").stat().st_size > 0
    download_file(base + "/sessions.csv", tmp_path / "t.csv")  # small: silent
    assert "downloading" not in capsys.readouterr().err
