"""A model folder in a bucket (``build --out s3://…``): written locally and uploaded, its
manifest last; every command reading a model reads this machine's copy of it; ``tune`` and
``add`` write it back; what is not a model folder there is never replaced. An S3 server in
the test process (moto's, the ``s3`` fixture) stands in for the bucket."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pyarrow.fs as pafs
import pytest

from prodfusion.cli import main
from prodfusion.data import make_synthetic
from prodfusion.errors import ModelError
from prodfusion.recommender import Recommender

BUILD = ["--time-col", "timestamp", "--text", "none", "--image", "none", "--p2v-dim", "8",
         "--p2v-epochs", "2", "--workers", "1", "--tune", "off", "--cache-dir", "none"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shop")
    return make_synthetic(folder, n_products=60, n_sessions=300, seed=3)


def _listing(s3, prefix: str) -> dict[str, int]:
    return {i.path[len(prefix) + 1:]: i.size for i in s3.fs.get_file_info(
        pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        if i.type == pafs.FileType.File}


def _manifest(s3, key: str) -> dict:
    with s3.fs.open_input_stream(key + "/manifest.json") as f:
        return json.loads(f.read())


def test_a_model_built_into_a_bucket_is_read_tuned_added_to_and_exported_from_there(
        s3, shop, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    s3.fs.create_dir("models-t")
    uri = "s3://models-t/shop/current"
    assert main(["build", "--catalog", str(shop.catalog), "--interactions",
                 str(shop.interactions), *BUILD, "--out", uri]) == 0
    assert f"model written to {uri} in" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # no local folder named 's3:' (what it wrote before)
    files = _listing(s3, "models-t/shop/current")
    assert "manifest.json" in files and "emb_clicks.npy" in files and ".prodfusion-writing" \
        not in files

    # the copy read from the bucket is the folder uploaded: the same lists as the folder's own
    local = tmp_path / "downloaded"
    local.mkdir()
    pafs.copy_files("models-t/shop/current", str(local), source_filesystem=s3.fs,
                    destination_filesystem=pafs.LocalFileSystem())
    rec, there = Recommender.load(uri), Recommender.load(local)
    assert rec.uri_ == uri and rec.path_ != local
    for pid in rec.catalog.ids[:5]:
        (ids, scores), (ids2, scores2) = rec.similar(pid, 10), there.similar(pid, 10)
        assert list(ids) == list(ids2) and np.array_equal(scores, scores2)
    assert main(["similar", uri, str(rec.catalog.ids[0]), "-k", "3"]) == 0
    assert str(rec.catalog.ids[0]) in capsys.readouterr().out

    # a model read from the bucket and saved back there keeps its copy while it lives:
    # its index pieces, read on first use, are still there after the save
    held = Recommender.load(uri)
    copy = held.path_
    held.retire([str(held.catalog.ids[0])])  # another manifest: another publication
    held.save(uri)
    assert Recommender.load(uri).path_ != copy
    assert copy.is_dir() and held.similar(str(held.catalog.ids[1]), 5)[0].size == 5
    del held, rec  # every model read from that copy
    import gc

    gc.collect()
    again = Recommender.load(uri)
    again.retire([str(again.catalog.ids[0])], retired=False)
    again.retire([str(again.catalog.ids[2])])
    again.save(uri)  # the next publication's copy made: the one let go of is removed
    assert not copy.exists()
    again.save(uri)  # saved unchanged: another upload all the same, another copy
    assert Recommender.load(uri).path_ != again.path_

    # tune writes the bucket's folder back: its manifest now holds the weighting
    assert "weighting" not in _manifest(s3, "models-t/shop/current")["settings"]
    assert main(["tune", uri, "--workers", "1", "--quiet"]) == 0
    assert _manifest(s3, "models-t/shop/current")["settings"]["weighting"]["weights"]
    assert Recommender.load(uri).weighting().weights is not None  # the new publication read

    # a day's feed with two new products, added into the bucket's folder
    cat = pl.read_csv(shop.catalog, infer_schema_length=0)
    feed = pl.concat([cat, cat[:2].with_columns(pl.Series("product_id", ["new-1", "new-2"]))])
    feed.write_csv(tmp_path / "feed.csv")
    capsys.readouterr()
    assert main(["add", uri, "--catalog", str(tmp_path / "feed.csv")]) == 0
    assert "a running `prodfusion serve` of this folder reloads it by itself" in \
        capsys.readouterr().out
    assert _manifest(s3, "models-t/shop/current")["counts"]["products"] == len(cat) + 2
    assert "new-1" in Recommender.load(uri).catalog.ids.tolist()

    # built again into the same folder: said, and replaced
    capsys.readouterr()
    assert main(["build", "--catalog", str(shop.catalog), "--interactions",
                 str(shop.interactions), *BUILD, "--out", uri]) == 0
    assert f"note: {uri} holds a model ({len(cat) + 2:,} products, built" in \
        capsys.readouterr().err
    assert _manifest(s3, "models-t/shop/current")["counts"]["products"] == len(cat)
    assert main(["add", uri, "--catalog", str(tmp_path / "feed.csv")]) == 0

    # export reads it too (its workers are given the URI, a Ray node makes its own copy)
    assert main(["export", uri, "--out", str(tmp_path / "lists.parquet")]) == 0
    assert pl.read_parquet(tmp_path / "lists.parquet").height == len(cat) + 2
    capsys.readouterr()
    assert main(["publish", uri, str(tmp_path / "live")]) != 0
    assert "A model folder in a bucket is published by writing it there" in \
        capsys.readouterr().err
    assert not (tmp_path / "live").exists()


def test_a_folder_in_a_bucket_that_is_not_a_model_is_never_replaced(s3, shop, tmp_path,
                                                                   capsys):
    s3.put("s3://models-u/reports/q1.csv", b"a,b\n")
    s3.put("s3://models-u/feed.csv", b"a,b\n")
    args = ["build", "--catalog", str(shop.catalog), "--interactions", str(shop.interactions),
            *BUILD]
    for out, why in (("s3://models-u/reports", "an existing folder that is not a prodfusion "
                                               "model .no manifest.json.; refusing"),
                     ("s3://models-u/feed.csv", "is an existing object, not a folder"),
                     ("s3://models-u", "name a folder in the bucket for the model"),
                     ("s3://no-such-bucket-u/m", "no such bucket")):
        capsys.readouterr()
        assert main([*args, "--out", out]) == 2
        assert re.search(why, capsys.readouterr().err)
    assert _listing(s3, "models-u") == {"reports/q1.csv": 4, "feed.csv": 4}
    with pytest.raises(ModelError, match="'s3://models-u/reports' is not a prodfusion model "
                                         "folder: no manifest.json"):
        Recommender.load("s3://models-u/reports/")
    # --overwrite replaces it, its other objects removed once the model is in place
    assert main([*args, "--out", "s3://models-u/reports", "--overwrite"]) == 0
    assert "q1.csv" not in _listing(s3, "models-u/reports")
    assert "manifest.json" in _listing(s3, "models-u/reports")
    # another machine uploading to it now: refused before any work
    s3.put("s3://models-u/reports/.prodfusion-writing", b"build-host-2 4242")
    capsys.readouterr()
    assert main([*args, "--out", "s3://models-u/reports"]) == 2
    assert "another upload to it is under way by process 4242 on build-host-2, started 0 " \
           "min ago" in capsys.readouterr().err
