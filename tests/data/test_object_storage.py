"""Catalogs, click logs (one file or a folder of parts) and pairs named by their ``s3://`` URI:
read as the local files, messages naming the URI, recorded for later commands. An S3 server
in the test process (moto's, the ``s3`` fixture) stands in for the bucket."""

from __future__ import annotations

import json
import os

import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data import make_synthetic, read_catalog, read_interactions, read_pairs
from prodfusion.errors import DataError


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bucket")
    return folder, make_synthetic(folder, n_products=80, n_sessions=300, seed=2)


def test_a_catalog_and_a_folder_of_click_parts_read_as_their_files(s3, shop):
    folder, paths = shop
    uri = s3.put_file("s3://shop-a/feeds/catalog.csv", paths.catalog)
    got = read_catalog(uri)
    local = read_catalog(paths.catalog)
    assert got.ids.tolist() == local.ids.tolist()
    assert got.frame["title"].to_list() == local.frame["title"].to_list()
    assert got.source == uri
    # relative photo paths join the catalog's folder in the bucket
    first = local.frame["image"][0]
    assert got.frame["image"][0] == "s3://shop-a/feeds/images/" + first.rsplit("/", 1)[-1]

    # a folder of parts (as a warehouse exports a log): its files in name order, read as one
    log = pl.read_csv(paths.interactions, infer_schema=False)
    half = log.height // 2
    for name, part in (("part-1.parquet", log[half:]), ("part-0.parquet", log[:half])):
        part.write_parquet(folder / name)
        s3.put_file(f"s3://shop-a/clicks/{name}", folder / name)
    s3.put("s3://shop-a/clicks/_SUCCESS", b"")  # a marker file: not a log
    want = read_interactions([folder / "part-0.parquet", folder / "part-1.parquet"],
                             time_col="timestamp")
    for given in ("s3://shop-a/clicks/", "s3://shop-a/clicks"):  # a prefix, with or without /
        assert read_interactions(given, time_col="timestamp").equals(want)
    assert want.height == log.height and want["product_id"].to_list() == \
        log["product_id"].to_list()
    one = read_interactions("s3://shop-a/clicks/part-0.parquet", time_col="timestamp")
    assert one.height == half

    # the corpus of many files (`prodfusion corpus`) from the folder: the local parts' corpus
    from prodfusion.engine.corpus import prepare_corpus

    corpora = [prepare_corpus(given, folder / f"c{i}.corpus", time_col="timestamp",
                              progress=False)
               for i, given in enumerate(("s3://shop-a/clicks/",
                                          [folder / "part-0.parquet", folder / "part-1.parquet"]))]
    assert (folder / "c0.corpus").read_bytes() == (folder / "c1.corpus").read_bytes()
    assert len(corpora[0]) == len(corpora[1]) > 0


def test_pairs_and_a_gzipped_log_by_uri(s3, shop):
    import gzip

    _, paths = shop
    s3.put("s3://shop-b/pairs.csv", b"a,b\nP1,P2\nP2,P3\n")
    pairs = read_pairs("s3://shop-b/pairs.csv", a_col="a", b_col="b")
    assert pairs["product_id"].to_list() == ["P1", "P2", "P2", "P3"]
    raw = paths.interactions.read_bytes()
    s3.put("s3://shop-b/logs/sessions.csv.gz", gzip.compress(raw))
    assert read_interactions("s3://shop-b/logs/sessions.csv.gz", time_col="timestamp").equals(
        read_interactions(paths.interactions, time_col="timestamp"))
    # a bucket's root as the folder, first: the keys named after it are still found
    from prodfusion.data import storage

    storage._forget()
    s3.put("s3://shop-h/clicks.csv", raw)
    assert read_interactions("s3://shop-h/", time_col="timestamp").equals(
        read_interactions("s3://shop-h/clicks.csv", time_col="timestamp"))


def test_what_cannot_be_read_is_named_by_its_uri(s3, monkeypatch):
    with pytest.raises(DataError, match=r"^s3://shop-c/nope\.csv: cannot be downloaded "
                                        r"\(not found\)\.$"):
        read_catalog("s3://shop-c/nope.csv")
    s3.put("s3://shop-c/empty/readme.txt.md", b"x")
    with pytest.raises(DataError, match=r"^s3://shop-c/empty/: folder holds no interaction "
                                        r"file \(\.csv"):
        read_interactions("s3://shop-c/empty/")
    with pytest.raises(DataError, match=r"^s3://shop-c/missing/: cannot be listed \(not "
                                        r"found\)\.$"):
        read_interactions("s3://shop-c/missing/")
    s3.put("s3://shop-c/broken.csv", b'product_id,title\n1,"never closed\n')
    with pytest.raises(DataError, match=r"^s3://shop-c/broken\.csv"):
        read_catalog("s3://shop-c/broken.csv")
    # a store nobody answers at: named as such, not a hang
    from prodfusion.data import storage

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    storage._forget()
    with pytest.raises(DataError, match=r"^s3://shop-c/a\.csv: cannot be downloaded \(cannot "
                                        r"reach the store"):
        read_catalog("s3://shop-c/a.csv")


def test_build_and_tune_with_files_in_a_bucket(s3, shop, tmp_path, capsys):
    folder, paths = shop
    cat = s3.put_file("s3://shop-d/catalog.csv", paths.catalog)
    clicks = s3.put_file("s3://shop-d/clicks/sessions.csv", paths.interactions)
    model = tmp_path / "model"
    assert main(["build", "--catalog", cat, "--interactions", "s3://shop-d/clicks/",
                 "--time-col", "timestamp", "--text", "none", "--image", "none",
                 "--p2v-dim", "8", "--p2v-epochs", "2", "--workers", "1", "--tune", "off",
                 "--cache-dir", "none", "--out", str(model)]) == 0
    record = json.loads((model / "manifest.json").read_text())["data"]
    assert record["catalog"]["path"] == cat
    assert record["interactions"]["path"] == "s3://shop-d/clicks/"
    capsys.readouterr()
    assert main(["tune", str(model), "--dry-run", "--workers", "1", "--quiet"]) == 0
    assert "--interactions s3://shop-d/clicks/" in capsys.readouterr().err  # the record, reread
    assert clicks.endswith("sessions.csv")
    # the day's feed from the bucket: nothing new
    assert main(["add", str(model), "--catalog", cat, "--out", str(tmp_path / "model2")]) == 0
    assert "already in the model: none changed" in capsys.readouterr().err


def test_a_catalog_as_a_folder_of_parts_in_a_bucket(s3, shop):
    """A warehouse's export of the catalog into a bucket: ``catalog/part-*.parquet`` and a
    ``_SUCCESS`` marker, read as the local folder is."""
    folder, paths = shop
    frame = pl.read_csv(paths.catalog, infer_schema=False)
    local = folder / "catalog_parts"
    local.mkdir(exist_ok=True)
    for i, lo in enumerate(range(0, frame.height, 30)):
        frame[lo:lo + 30].write_parquet(local / f"part-{i:05d}.parquet")
        s3.put_file(f"s3://shop-g/export/catalog/part-{i:05d}.parquet",
                    local / f"part-{i:05d}.parquet")
    s3.put("s3://shop-g/export/catalog/_SUCCESS", b"")
    want = read_catalog(local)
    for uri in ("s3://shop-g/export/catalog/", "s3://shop-g/export/catalog"):
        got = read_catalog(uri)
        assert got.ids.tolist() == want.ids.tolist() == frame["product_id"].to_list()
        assert got.frame["title"].to_list() == want.frame["title"].to_list()
        # relative photo paths: the folder's parent, as for the local folder
        assert got.frame["image"][0] == "s3://shop-g/export/" + frame["image"][0]
    s3.put("s3://shop-g/export/catalog/part-99999.parquet", b"PAR1 broken")
    with pytest.raises(DataError, match=r"^s3://shop-g/export/catalog/part-99999\.parquet: "
                                        r"cannot be read as Parquet"):
        read_catalog("s3://shop-g/export/catalog/")


@pytest.mark.skipif(bool(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")),
                    reason="this machine has Google credentials")
def test_gs_without_credentials_fails_in_bounded_time_naming_them(monkeypatch):
    """``gs://`` (untested against a store): without Google credentials the read fails
    within its retry limit (the URI's own here; by default GCS_RETRY_S, not the client's 15
    minutes) and the message says where credentials come from."""
    import time

    from prodfusion.data import storage

    t0 = time.perf_counter()
    with pytest.raises(DataError, match=r"^gs://no-creds-here/catalog\.csv\?retry_limit_seconds"
                                        r"=1: cannot be downloaded \(no Google Cloud Storage "
                                        r"credentials could be used .*GOOGLE_APPLICATION_"):
        read_catalog("gs://no-creds-here/catalog.csv?retry_limit_seconds=1")
    assert time.perf_counter() - t0 < 60
    # without the option in the URI, the client is given GCS_RETRY_S
    seen = []

    def from_uri(uri):
        seen.append(uri)
        raise OSError("stop here")

    storage._forget()
    monkeypatch.setattr(storage, "_from_uri", from_uri)
    with pytest.raises(DataError, match=r"cannot be downloaded \(stop here\)"):
        read_catalog("gs://no-creds-here/catalog.csv")
    assert seen == [f"gs://no-creds-here/catalog.csv?retry_limit_seconds={storage.GCS_RETRY_S}"]


def test_a_folder_mirror_copies_what_is_new_each_way_and_what_was_compacted_away(s3):
    """FolderMirror (an embedding cache kept in a bucket): down, only what the local folder
    lacks; up, what is new or changed, and the removal of what was downloaded but is gone
    locally (a cache compacting its shards); names beginning with '.' stay local."""
    import shutil

    import pyarrow.fs as pafs

    from prodfusion.data.storage import FolderMirror

    for name, data in (("a.npy", b"aaaa"), ("b.keys.txt", b"bb"), ("late/c.npy", b"c")):
        s3.put(f"s3://mirror-t/cache/{name}", data)
    m = FolderMirror("s3://mirror-t/cache/")
    shutil.rmtree(m.local, ignore_errors=True)
    assert m.download() == 3
    assert (m.local / "late" / "c.npy").read_bytes() == b"c"
    assert FolderMirror("s3://mirror-t/cache").download() == 0  # the same folder: nothing new
    (m.local / "a.npy").unlink()  # compacted into d
    (m.local / "d.npy").write_bytes(b"dddd")
    (m.local / "b.keys.txt").write_bytes(b"bb2")  # rewritten
    (m.local / ".d.npy.tmp").write_bytes(b"half")  # being written: not uploaded
    assert m.upload() == (2, 1)
    listing = {i.path: i.size for i in s3.fs.get_file_info(
        pafs.FileSelector("mirror-t/cache", recursive=True)) if i.type.name == "File"}
    assert listing == {"mirror-t/cache/b.keys.txt": 3, "mirror-t/cache/d.npy": 4,
                       "mirror-t/cache/late/c.npy": 1}
    assert m.upload() == (0, 0)
    # two machines saving in turn: what the first compacted away and the second still has
    # is uploaded again by the second, and the first's new shard is kept
    other = FolderMirror("s3://mirror-t/cache")
    other.local = m.local.with_name(m.local.name + "-other")  # the second machine's folder
    shutil.rmtree(other.local, ignore_errors=True)
    other.download()
    (m.local / "b.keys.txt").unlink()
    (m.local / "d.npy").unlink()
    (m.local / "e.npy").write_bytes(b"e")
    assert m.upload() == (1, 2)
    (other.local / "f.npy").write_bytes(b"ff")
    assert other.upload() == (3, 0)  # f, and b and d which the first machine removed
    listing = {i.path: i.size for i in s3.fs.get_file_info(
        pafs.FileSelector("mirror-t/cache", recursive=True)) if i.type.name == "File"}
    assert sorted(listing) == ["mirror-t/cache/" + n for n in (
        "b.keys.txt", "d.npy", "e.npy", "f.npy", "late/c.npy")]
    shutil.rmtree(m.local)
    shutil.rmtree(other.local)


def _folder(path, files: dict[str, bytes]):
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def _bucket_files(s3, prefix: str) -> dict[str, bytes]:
    import pyarrow.fs as pafs

    out = {}
    for i in s3.fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True)):
        if i.type == pafs.FileType.File:
            with s3.fs.open_input_stream(i.path) as f:
                out[i.path[len(prefix) + 1:]] = f.read()
    return out


def test_a_published_folder_replaces_the_old_one_whole_its_marker_last(s3, tmp_path, monkeypatch):
    """publish_folder: the objects the new folder lacks are removed; the marker is taken
    away before any other file is replaced and written after all of them (a reader never
    finds the new files under the old marker); '.' names stay local."""
    from prodfusion.data import storage

    s3.fs.create_dir("pub-t")
    uri = "s3://pub-t/models/shop"
    v1 = _folder(tmp_path / "v1", {"manifest.json": b"one", "a.npy": b"A1", "old.npy": b"O",
                                   "index/x.bin": b"X1", ".in-use": b""})
    storage.publish_folder(v1, uri, "manifest.json")
    assert _bucket_files(s3, "pub-t/models/shop") == {
        "manifest.json": b"one", "a.npy": b"A1", "old.npy": b"O", "index/x.bin": b"X1"}
    order = []
    real_put = storage._put

    def spy(fs, key, path, meter):
        there = storage.folder_listing(uri)
        order.append((key.rsplit("/", 1)[-1], "manifest.json" in there, storage.BUSY in there))
        return real_put(fs, key, path, meter)

    monkeypatch.setattr(storage, "_put", spy)
    v2 = _folder(tmp_path / "v2", {"manifest.json": b"two!", "a.npy": b"A2",
                                   "index/x.bin": b"X2"})
    storage.publish_folder(v2, uri, "manifest.json")
    assert _bucket_files(s3, "pub-t/models/shop") == {
        "manifest.json": b"two!", "a.npy": b"A2", "index/x.bin": b"X2"}
    # the busy marker was there, and no manifest, while the other files were written
    assert sorted(order[:2]) == [("a.npy", False, True), ("x.bin", False, True)]
    assert order[2:] == [("manifest.json", False, True)]
    assert storage.BUSY not in storage.folder_listing(uri)
    assert storage.folder_state(uri, "manifest.json") == "ours"
    assert storage.folder_state(uri + "/a.npy", "manifest.json") == "object"
    assert storage.folder_state("s3://pub-t/other", "manifest.json") == "empty"


def test_a_folder_copy_is_one_publication_whole_made_once_and_removed_when_unused(s3, tmp_path,
                                                                                 monkeypatch):
    """folder_copy: the copy holds one publication (republished while it was copied: copied
    again); the same publication is not downloaded twice; an upload under way is waited
    for, then named; a copy another process holds is kept, one nobody holds is removed."""
    import fcntl
    import os
    import shutil
    import socket
    import subprocess
    import sys

    from prodfusion.data import storage
    from prodfusion.data.photos import PhotoFetchError

    s3.fs.create_dir("copy-t")
    uri = "s3://copy-t/m"
    shutil.rmtree(storage._local_home("copies", uri), ignore_errors=True)
    v1 = _folder(tmp_path / "v1", {"manifest.json": b"one", "a.npy": b"A1", "i/x": b"X1"})
    v2 = _folder(tmp_path / "v2", {"manifest.json": b"two", "a.npy": b"A2", "i/x": b"X2"})
    storage.publish_folder(v1, uri, "manifest.json")

    real_read = storage.read_object
    calls = []

    def republish_during_the_first_copy(u, *a, **k):  # v2 lands while v1 is being copied
        data = real_read(u, *a, **k)
        calls.append(data)
        if len(calls) == 1:
            storage.publish_folder(v2, uri, "manifest.json")
        return data

    monkeypatch.setattr(storage, "read_object", republish_during_the_first_copy)
    c2 = storage.folder_copy(uri, "manifest.json", wait_s=0)
    monkeypatch.setattr(storage, "read_object", real_read)
    assert {p.name: p.read_bytes() for p in c2.rglob("*") if p.is_file()
            and not p.name.startswith(".")} == {"manifest.json": b"two", "a.npy": b"A2",
                                                "x": b"X2"}
    assert calls[:2] == [b"one", b"two"]  # copied again, as the second publication

    downloads = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(storage, "folder_listing", lambda u: downloads.append(u) or {})
        assert storage.folder_copy(uri, "manifest.json") == c2  # the marker read, no listing
    assert downloads == []

    # an upload that stopped after its marker (the busy object left): the folder is read
    s3.put(uri + "/" + storage.BUSY, b"")
    shutil.rmtree(c2)  # not on this machine: downloaded
    assert storage.folder_copy(uri, "manifest.json", tries=1) == c2
    assert (c2 / "a.npy").read_bytes() == b"A2"
    # an upload under way (its busy object, no marker): waited for, then named
    s3.put(uri + "/" + storage.BUSY, b"")
    s3.fs.delete_file("copy-t/m/manifest.json")
    with pytest.raises(PhotoFetchError, match="being written .* tried 2 times"):
        storage.folder_copy(uri, "manifest.json", tries=2, wait_s=0)
    # ... nor written over by another upload, unless its process on this machine has ended
    with pytest.raises(PhotoFetchError, match="another upload to it is under way, started 0 "
                                              "min ago .*remove s3://copy-t/m/.prodfusion-"):
        storage.publish_folder(v1, uri, "manifest.json")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True).stdout.split()[0]
    s3.put(uri + "/" + storage.BUSY, f"{socket.gethostname()} {ended}".encode())
    storage.publish_folder(v1, uri, "manifest.json")

    # another process holds the second publication's copy: kept; let go: removed
    fd = os.open(c2 / ".in-use", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    c1 = storage.folder_copy(uri, "manifest.json")
    assert c1 != c2 and (c1 / "a.npy").read_bytes() == b"A1" and (c2 / "a.npy").is_file()
    os.close(fd)
    storage.publish_folder(v2, uri, "manifest.json")
    c3 = storage.folder_copy(uri, "manifest.json")
    assert c3 == c2 and (c3 / "a.npy").read_bytes() == b"A2"  # the kept copy, not downloaded
    assert not c1.exists()  # this process let go of it when it took the next one
    storage._sweep(c3.parent, None)
    assert c3.exists()  # held by this process
    storage.release_copies()  # as `serve`'s parent does once its workers take their own
    storage._sweep(c3.parent, None)
    assert not c3.exists()
    shutil.rmtree(storage._local_home("copies", uri), ignore_errors=True)


def test_processes_copying_one_publication_at_once_download_it_once(s3, tmp_path,
                                                                  monkeypatch):
    """Several workers starting on one machine (`serve --workers 4`) copy a new model at
    once: one downloads it, the others wait for that copy (a lock per publication)."""
    import shutil
    import threading
    import time

    from prodfusion.data import storage

    s3.fs.create_dir("once-t")
    uri = "s3://once-t/m"
    shutil.rmtree(storage._local_home("copies", uri), ignore_errors=True)
    v1 = _folder(tmp_path / "v1", {"manifest.json": b"one", "a.npy": b"A" * 1000,
                                   "i/x": b"X"})
    storage.publish_folder(v1, uri, "manifest.json")
    real_get, got = storage._get, []

    def slow_get(fs, key, path, meter):
        got.append(key)
        time.sleep(0.3)  # the others arrive while it downloads
        return real_get(fs, key, path, meter)

    monkeypatch.setattr(storage, "_get", slow_get)
    copies = []
    threads = [threading.Thread(target=lambda: copies.append(
        storage.folder_copy(uri, "manifest.json"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(copies) == 3 and len(set(copies)) == 1
    assert sorted(k.rsplit("/", 1)[-1] for k in got) == ["a.npy", "x"]  # once each
    assert (copies[0] / "a.npy").read_bytes() == b"A" * 1000
    shutil.rmtree(storage._local_home("copies", uri), ignore_errors=True)
