"""New products in a built model, encoded by its own encoders: the fitted lexical encoder
kept in the folder, ``Recommender.encode_products`` / ``add_products`` and ``prodfusion add``."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.encoders.lexical import LexicalEncoder
from prodfusion.errors import ModelError, UnknownProductError
from prodfusion.fusion.category import CategoryMatch
from prodfusion.recommender import Prod2VecParams, Recommender

TITLES = ["20 den 1p Stockings", "40 den 2p Tights", "20 den 2p Tights", "Box 4p Socks",
          "Flirty Posh necklace", "Cool Kennedy necklace", "Class Luca Necklace",
          "Henrik ballerina", "Basic Ronaldo necklace", "40 den 1p Tights"]


def _catalog(titles=TITLES, prefix="p"):
    return Catalog(pl.DataFrame({"product_id": [f"{prefix}{i}" for i in range(len(titles))],
                                 "title": titles}))


def _model():
    sessions = Sessions.from_lists([["p0", "p1"], ["p1", "p2", "p9"], ["p4", "p5"]])
    return Recommender(text=None, image=None, lexical="tfidf:6", fusion="intermediate",
                       prod2vec=Prod2VecParams(vector_size=4, epochs=1, workers=1)
                       ).build(_catalog(), sessions)


def test_transform_of_the_fitted_titles_is_the_build_and_unknown_ngrams_are_absent():
    enc = LexicalEncoder(dim=6)
    built = enc.encode(_catalog())
    again = enc.transform(_catalog())
    np.testing.assert_allclose(again.vectors, built.vectors, atol=1e-6)
    new = enc.transform(_catalog(["Luca necklace", "zzzz qqqq", ""], prefix="n"))
    assert new.mask.tolist() == [True, False, False]  # no known n-gram / no title: absent
    sim = built.vectors @ new.vectors[0]
    assert int(np.argmax(sim)) == 6  # "Class Luca Necklace"
    assert not new.vectors[1:].any()


def test_new_products_get_lexical_vectors_in_the_models_space(tmp_path):
    rec = _model()
    assert rec.lexical_encoder_ is not None
    new = _catalog(["Class Luca Necklace", "Henrik ballerina flats"], prefix="n")
    emb = rec.encode_products(new)
    assert set(emb) == {"lexical"}  # no text/image encoder in this model; clicks need sessions
    np.testing.assert_allclose(emb["lexical"].vectors[0], rec.embeddings_["lexical"].vectors[6],
                               atol=1e-5)  # a twin title: the twin's vector
    rec.add_products(new)  # encodes them itself
    ids, _ = rec.similar("n0", k=1, modalities=["lexical"])
    assert ids.tolist() == ["p6"]
    ids, _ = rec.similar("n1", k=1, modalities=["lexical"])
    assert ids.tolist() == ["p7"]
    # the folder keeps the fitted encoder: a loaded model encodes the same vectors
    loaded = Recommender.load(rec.save(tmp_path / "m"))
    more = _catalog(["Flirty Posh necklace", "Box 2p Socks"], prefix="x")
    np.testing.assert_allclose(loaded.encode_products(more)["lexical"].vectors,
                               rec.encode_products(more)["lexical"].vectors, atol=1e-6)
    # saved again without ever being used: the same files, the same vectors
    again = Recommender.load(loaded.save(tmp_path / "m2"))
    np.testing.assert_allclose(again.encode_products(more)["lexical"].vectors,
                               rec.encode_products(more)["lexical"].vectors, atol=1e-6)


def test_add_products_keeps_the_build_and_tuning_record(tmp_path):
    rec = _model()
    rec.manifest_["tuning"] = {"weights": {"lexical": 1.0}}  # as tune() records it
    rec.manifest_["data"] = {"catalog": {"path": "/data/catalog.csv"}}
    sessions_fp = rec.manifest_["fingerprints"].get("sessions")
    rec.add_products(_catalog(["Cool necklace"], prefix="n"))
    m = json.loads((rec.save(tmp_path / "m") / "manifest.json").read_text())
    assert m["tuning"] == {"weights": {"lexical": 1.0}}
    assert m["data"]["catalog"]["path"] == "/data/catalog.csv"
    assert m["fingerprints"].get("sessions") == sessions_fp is not None
    assert m["counts"]["products"] == len(TITLES) + 1
    assert [u["added_products"] for u in m["updates"]] == [1]
    assert m["updates"][0]["present"] == {"lexical": 1}


def test_an_older_folder_without_the_encoder_warns_and_replaced_vectors_drop_it(tmp_path,
                                                                                caplog):
    rec = _model()
    path = rec.save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    for f in manifest["files"]["lexical"].pop("encoder").values():  # as folders were before
        (path / f).unlink()
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = Recommender.load(path)
    assert old.lexical_encoder_ is None
    with caplog.at_level(logging.WARNING, logger="prodfusion.recommender"):
        assert old.encode_products(_catalog(["Cool necklace"], prefix="n")) == {}
    assert "does not keep its fitted lexical encoder" in caplog.text
    # vectors replaced from elsewhere: the fitted encoder no longer describes them
    e = rec.embeddings_["lexical"]
    rec.update_embeddings({"lexical": Embeddings(e.vectors[:, ::-1].copy(), e.mask, "x")})
    assert rec.lexical_encoder_ is None
    m = json.loads((rec.save(tmp_path / "m3") / "manifest.json").read_text())
    assert "encoder" not in m["files"]["lexical"]


def test_damaged_encoder_files_are_named(tmp_path):
    path = _model().save(tmp_path / "m")
    np.save(path / "lexical_idf.npy", np.ones(3))
    with pytest.raises(ModelError, match=r"lexical encoder's files disagree"):
        Recommender.load(path)
    (path / "lexical_idf.npy").unlink()
    with pytest.raises(ModelError, match=r"cannot read the lexical encoder's files"):
        Recommender.load(path)


CATALOG = """sku,title,category
0001,Red leather handbag,bags
0002,Kırmızı deri kadın çanta,bags
0003,Black leather shoulder bag,bags
0004,Siyah deri omuz çantası,bags
0005,Running shoes for men,shoes
0006,Erkek koşu ayakkabısı,shoes
0007,White leather sneakers,shoes
0008,Beyaz deri spor ayakkabı,shoes
0009,Gaming laptop 16 GB RAM,laptops
0010,Oyun bilgisayarı dizüstü 16 GB,laptops
"""

SESSIONS = "sid;item;ts\na;0001;1\na;0003;2\na;0002;3\nb;0005;1\nb;0007;2\nb;0006;3\n" \
           "c;0009;1\nc;0010;2\nd;0004;1\nd;0001;2\n"


def _cli_model(tmp_path):
    """A model built by the CLI from CATALOG (ids in column 'sku') and SESSIONS."""
    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    model = tmp_path / "model"
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "sku",
                 "--image-col", "", "--interactions", str(tmp_path / "clicks.csv"),
                 "--session-cols", "sid", "--item-col", "item", "--time-col", "ts",
                 "--p2v-dim", "16", "--workers", "1", "--image", "none", "--cache-dir", "none",
                 "--out", str(model)]) == 0
    return model


def test_cli_add_appends_only_new_products_with_the_models_encoders(tmp_path, capsys):
    model = _cli_model(tmp_path)
    capsys.readouterr()
    feed = tmp_path / "feed.csv"  # today's feed: the whole catalog plus two new products
    feed.write_text(CATALOG + "0011,Red leather handbag,bags\n0012,Gaming laptop 32 GB RAM,"
                    "laptops\n", encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "from the model's record: --id-col sku" in cap.err  # not given: as the build read
    assert "10 of 12 products of" in cap.err and "already in the model" in cap.err
    assert "added 2 products" in cap.out and "(12 in all)" in cap.out
    assert "text    2/2" in cap.out and "lexical 2/2" in cap.out
    assert "clicks  0/2" in cap.out
    for pid, twin in (("0011", "0001"), ("0012", "0009")):
        assert main(["similar", str(model), pid, "-k", "1", "--json",
                     "--modalities", "lexical"]) == 0
        assert json.loads(capsys.readouterr().out)["results"][0]["product_id"] == twin
    assert main(["similar", str(model), "0011", "-k", "3", "--json"]) == 0  # model's fusion
    res = json.loads(capsys.readouterr().out)["results"]
    assert len(res) == 3 and res[0]["product_id"] == "0001"
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["updates"][0]["added_products"] == 2
    # the same feed again: nothing new, nothing written
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    assert "nothing to add" in capsys.readouterr().out
    assert json.loads((model / "manifest.json").read_text())["model_id"] == \
        manifest["model_id"]
    # --out: the original folder untouched
    shutil.copy(feed, tmp_path / "feed2.csv")
    with open(tmp_path / "feed2.csv", "a", encoding="utf-8") as f:
        f.write("0013,Blue leather handbag,bags\n")
    assert main(["add", str(model), "--catalog", str(tmp_path / "feed2.csv"),
                 "--cache-dir", "none", "--out", str(tmp_path / "grown")]) == 0
    assert json.loads((model / "manifest.json").read_text())["counts"]["products"] == 12
    out = capsys.readouterr().out  # a new folder: live once published, not by itself
    assert "recommended by their titles;" in out  # no photos in this model
    assert f"`prodfusion publish {tmp_path / 'grown'} LINK`" in out
    grown = json.loads((tmp_path / "grown" / "manifest.json").read_text())
    assert grown["counts"]["products"] == 13
    assert [u["added_products"] for u in grown["updates"]] == [2, 1]


def test_retired_products_are_never_results_but_keep_their_own_lists(tmp_path):
    rec = _model()
    ids, _ = rec.similar("p4", k=3, modalities=["lexical"])
    gone = str(ids[0])  # the nearest necklace is discontinued
    assert rec.retire([gone]) == 1 and rec.retire([gone]) == 0
    for r in (rec, Recommender.load(rec.save(tmp_path / "m"))):  # kept by save
        ids2, _ = r.similar("p4", k=3, modalities=["lexical"])
        assert gone not in ids2 and ids2.tolist() == ids[1:].tolist() + ids2.tolist()[2:]
        got, _ = r.similar_batch(r.catalog.ids.tolist(), k=5)
        assert gone not in set(got.ravel().tolist())  # under the model's own fusion too
        assert len(r.similar(gone, k=3)[0]) == 3  # its own page still gets a list
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert m["counts"]["retired"] == 1 and m["files"]["retired"] == "retired.npy"
    rec.add_products(_catalog(["Cool necklace"], prefix="n"))  # appended: not retired
    assert rec.retired_.tolist() == [p == gone for p in rec.catalog.ids]
    assert rec.retire([gone], retired=False) == 1 and rec.retired_ is None
    assert gone in rec.similar("p4", k=3, modalities=["lexical"])[0]
    with pytest.raises(UnknownProductError, match=r"retire\(\): 1 product id"):
        rec.retire(["nope"])



def test_cli_add_retire_missing_stops_recommending_what_the_feed_dropped(tmp_path, capsys):
    model = _cli_model(tmp_path)
    lines = CATALOG.splitlines()
    feed = tmp_path / "feed.csv"  # 0003 and 0004 discontinued; nothing new
    feed.write_text("\n".join(ln for ln in lines if not ln.startswith(("0003", "0004")))
                    + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "2 products of the model are not in" in cap.err and "nothing to add" in cap.out
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--retire-missing"]) == 0
    assert "2 products no longer in the feed retired" in capsys.readouterr().out
    for pid in ("0001", "0002", "0009"):
        assert main(["similar", str(model), pid, "-k", "7", "--json"]) == 0
        shown = {r["product_id"] for r in json.loads(capsys.readouterr().out)["results"]}
        assert len(shown) == 7 and not shown & {"0003", "0004"}
    assert main(["similar", str(model), "0003", "-k", "3"]) == 0  # its own page: a list
    out = capsys.readouterr().out
    assert "(retired: never recommended itself)" in out and "0004" not in out
    # 0004 is back in the next feed
    feed.write_text("\n".join(ln for ln in lines if not ln.startswith("0003")) + "\n",
                    encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--retire-missing"]) == 0
    assert "0 products no longer in the feed retired" in capsys.readouterr().out
    # without --retire-missing the product already retired is not called "recommended"
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    assert "1 products of the model are not in" in (err := capsys.readouterr().err) \
        and "all retired already" in err and "still recommended" not in err
    assert json.loads((model / "manifest.json").read_text())["counts"]["retired"] == 1
    # a feed that shares almost no id with the model (a wrong --id-col, say): refused
    before = (model / "manifest.json").read_text()
    (tmp_path / "other.csv").write_text("sku,title\nA1,x\nA2,y\n0001,Red leather handbag\n",
                                        encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(tmp_path / "other.csv"),
                 "--cache-dir", "none", "--retire-missing"]) != 0
    assert "--retire-missing would retire 8 of the model's 10 products" in \
        capsys.readouterr().err
    assert (model / "manifest.json").read_text() == before


def test_update_products_re_encodes_changed_titles_and_keeps_the_rest(tmp_path):
    rec = _model()
    rec.similar("p1", k=3, modalities=["lexical"])  # an index built before the update
    clicks = rec.embeddings_["clicks"].vectors.copy()
    rec.cluster_late(["lexical"])
    titles = list(TITLES)
    titles[4] = "40 den 3p Tights"  # p4 was a necklace
    feed = _catalog(titles)
    changed = rec.changed_products(feed)
    assert changed.to_dicts() == [{"product_id": "p4", "title": True, "photo": False,
                                   "category": False}]
    rec.update_products(Catalog(feed.frame[4:5]))
    assert rec.catalog.titles == titles
    want = rec.lexical_encoder_.transform(Catalog(feed.frame[4:5])).vectors[0]
    np.testing.assert_allclose(rec.embeddings_["lexical"].vectors[4], want, rtol=1e-6)
    np.testing.assert_array_equal(rec.embeddings_["clicks"].vectors, clicks)  # kept
    assert rec.similar("p1", k=1, modalities=["lexical"])[0][0] in {"p4", "p9", "p2"}
    assert "p4" in rec.similar("p9", k=3, modalities=["lexical"])[0]
    assert "p4" not in rec.similar("p5", k=3, modalities=["lexical"])[0]
    lab = rec.late_labels_["lexical"]
    assert lab[4] == lab[1] or lab[4] == lab[9]  # moved to a tights cluster
    assert rec.changed_products(feed).height == 0
    assert rec.manifest_["updates"][-1]["updated_products"] == 1
    # given vectors: a modality left out keeps its own
    text = rec.embeddings_["lexical"].vectors[[0]].copy()
    rec.update_products(Catalog(feed.frame[4:5]),
                        {"lexical": Embeddings(text, np.ones(1, bool), "x")})
    np.testing.assert_array_equal(rec.embeddings_["lexical"].vectors[4], text[0])
    with pytest.raises(UnknownProductError, match="add_products"):
        rec.update_products(_catalog(["new"], prefix="n"))
    with pytest.raises(Exception, match="rebuild_clicks"):
        rec.update_products(Catalog(feed.frame[4:5]),
                            {"clicks": Embeddings(np.zeros((1, 4), np.float32),
                                                  np.ones(1, bool), "x")})


def test_changed_products_tells_changed_photos_from_the_same_photo(tmp_path, caplog):
    import os

    files = {}
    for name, data in {"a": b"one", "b": b"two", "a2": b"one", "c": b"three",
                       "d": b"four"}.items():
        files[name] = tmp_path / f"{name}.jpg"
        files[name].write_bytes(data)
    old_time = 1_000_000_000  # long before the model was built
    for f in files.values():
        os.utime(f, (old_time, old_time))
    frame = pl.DataFrame({"product_id": ["p0", "p1", "p2", "p3", "p4"],
                          "title": ["x"] * 5,
                          "image": [str(files[n]) for n in ("a", "b", "c", "d")] + [None]})
    emb = Embeddings(np.eye(5, 3, dtype=np.float32) + 0.1, np.array([1, 1, 1, 1, 0], bool),
                     "img")
    rec = Recommender.from_embeddings(Catalog(frame), {"image": emb}, fusion="intermediate")
    feed = frame.with_columns(pl.Series("image", [
        str(files["a2"]),             # another file, the same bytes: unchanged
        str(files["c"]),              # another file, other bytes: changed
        str(files["c"]),              # the same file, rewritten after the build: changed
        None,                         # the photo is gone: changed
        str(files["d"])]))            # gained a photo (it had none): changed
    os.utime(files["c"], None)        # now
    got = rec.changed_products(Catalog(feed))
    assert got["product_id"].to_list() == ["p1", "p2", "p3", "p4"]
    assert got["photo"].all() and not got["title"].any()
    # a named file that does not exist is a path problem, not a photo gone: kept, warned
    moved = feed.with_columns(pl.Series("image", [str(tmp_path / "elsewhere" / "a.jpg")]
                                        + feed["image"].to_list()[1:]))
    with caplog.at_level(logging.WARNING, logger="prodfusion.model_updates"):
        got = rec.changed_products(Catalog(moved))
    assert "p0" not in got["product_id"].to_list()
    assert "1 photo files named by the catalog are missing" in caplog.text
    # a catalog without the image column says nothing about photos
    assert rec.changed_products(Catalog(feed.drop("image"))).height == 0
    rec.update_products(Catalog(feed.filter(pl.col("product_id") == "p3")),
                        {"image": Embeddings(np.zeros((1, 3), np.float32), np.zeros(1, bool),
                                             "img")})
    assert not rec.embeddings_["image"].mask[3] and rec.catalog.image_paths[3] is None
    assert "p3" not in rec.changed_products(Catalog(feed))["product_id"].to_list()


def test_photo_stamps_find_a_photo_replaced_by_an_older_file(tmp_path):
    """add_products stamps each new photo's size and modification time; a file replaced in
    place by one with an older time (copied keeping its time) is found changed, the same
    file untouched is not, and the stamps survive save/load. Rows without a stamp (vectors
    of a folder written before them) keep the rule by time."""
    import os

    old_time = 1_000_000_000
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    for f in (a, b):
        os.utime(f, (old_time, old_time))
    frame = pl.DataFrame({"product_id": ["p0"], "title": ["x"], "image": [str(a)]})
    rec = Recommender.from_embeddings(
        Catalog(frame), {"image": Embeddings(np.ones((1, 3), np.float32), np.ones(1, bool),
                                             "img")}, fusion="intermediate")
    assert rec.photo_stamps_ is None
    new = pl.DataFrame({"product_id": ["p1"], "title": ["y"], "image": [str(b)]})
    rec.add_products(Catalog(new), {"image": Embeddings(np.eye(1, 3, dtype=np.float32),
                                                        np.ones(1, bool), "img")})
    np.testing.assert_array_equal(rec.photo_stamps_,
                                  [[-1, -1], [3, old_time * 1_000_000_000]])
    rec = Recommender.load(rec.save(tmp_path / "model"))
    np.testing.assert_array_equal(rec.photo_stamps_[1], [3, old_time * 1_000_000_000])
    # a later add keeps the stamps of the products the model already had
    c = tmp_path / "c.jpg"
    c.write_bytes(b"three!")
    more = pl.DataFrame({"product_id": ["p2"], "title": ["z"], "image": [str(c)]})
    rec.add_products(Catalog(more), {"image": Embeddings(np.ones((1, 3), np.float32),
                                                         np.ones(1, bool), "img")})
    np.testing.assert_array_equal(rec.photo_stamps_[:2],
                                  [[-1, -1], [3, old_time * 1_000_000_000]])
    assert rec.photo_stamps_[2, 0] == 6
    frame = pl.concat([frame, more])
    feed = Catalog(pl.concat([frame, new]))
    assert rec.changed_products(feed).height == 0
    b.write_bytes(b"another photo")
    os.utime(b, (old_time - 3600, old_time - 3600))  # older than when it was encoded
    a.write_bytes(b"ONE")  # no stamp: by time, and its time is long before the model
    os.utime(a, (old_time, old_time))
    assert rec.changed_products(feed)["product_id"].to_list() == ["p1"]
    rec.update_products(Catalog(new), {"image": Embeddings(np.ones((1, 3), np.float32),
                                                           np.ones(1, bool), "img")})
    assert rec.changed_products(feed).height == 0  # stamped again by the update
    # photo vectors from elsewhere for the whole catalog: no stamp is known any more
    rec.update_embeddings({"image": Embeddings(np.ones((3, 3), np.float32), np.ones(3, bool),
                                               "img")})
    assert rec.photo_stamps_ is None


def test_cli_add_re_encodes_changed_products_unless_kept(tmp_path, capsys):
    model = _cli_model(tmp_path)
    feed = tmp_path / "feed.csv"  # 0003 is now a laptop
    feed.write_text(CATALOG.replace("0003,Black leather shoulder bag,bags",
                                    "0003,Gaming laptop 32 GB RAM,laptops"), encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--keep-changed"]) == 0
    cap = capsys.readouterr()
    assert "1 changed since the model last encoded them (titles 1, categories 1): kept" \
        in cap.err and "nothing to add" in cap.out
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "(titles 1, categories 1): re-encoded" in cap.err
    assert "no new product; 1 changed products re-encoded" in cap.out
    assert main(["similar", str(model), "0009", "-k", "1", "--json",
                 "--modalities", "lexical"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["product_id"] == "0003"
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["updates"][-1]["updated_products"] == 1
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    assert "none changed" in capsys.readouterr().err


def test_cli_add_with_interactions_retrains_clicks_and_keeps_the_weights(tmp_path, capsys):
    model = _cli_model(tmp_path)
    before = json.loads((model / "manifest.json").read_text())
    feed = tmp_path / "feed.csv"
    feed.write_text(CATALOG + "0011,Red leather handbag,bags\n", encoding="utf-8")
    clicks = tmp_path / "clicks2.csv"  # the whole history plus today's: 0011 with 0005
    clicks.write_text(SESSIONS + "e;0011;1\ne;0005;2\nf;0005;1\nf;0011;2\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--interactions", str(clicks)]) == 0
    cap = capsys.readouterr()
    assert "--session-cols sid --item-col item --time-col ts" in cap.err  # from the record
    assert "clicks: 6 sessions; Prod2Vec retrained" in cap.out
    assert not before.get("tuning") and "the model was not tuned" in cap.out
    assert "clicks  1/1: from the sessions given" in cap.out
    assert "recommended by their titles and the clicks of the sessions given;" in cap.out
    rec = Recommender.load(model)
    assert rec.embeddings_["clicks"].mask[-1] and rec.click_counts_[-1] == 2
    if rec.cooc_ is not None:  # co-occurrences counted again: 0011's partner is 0005
        ids, _ = rec.similar("0011", k=1, modalities=["cooc"])
        assert ids[0] == "0005"
    after = json.loads((model / "manifest.json").read_text())
    assert after["data"]["interactions"]["path"] == str(clicks)
    assert after["counts"]["sessions"] == 6 != before["counts"]["sessions"]
    assert after["updates"][-1]["retrained_clicks"] == 6
    assert after.get("tuning") == before.get("tuning")
    assert after["settings"].get("weighting") == before["settings"].get("weighting")
    # nothing new, but sessions given: still retrained (no "nothing to add")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--interactions", str(clicks)]) == 0
    assert "no new product" in capsys.readouterr().out
    # a model without clicks: refused before anything is read
    bare = tmp_path / "bare"
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "sku",
                 "--image-col", "", "--image", "none", "--cache-dir", "none",
                 "--out", str(bare)]) == 0
    capsys.readouterr()
    assert main(["add", str(bare), "--catalog", str(feed), "--cache-dir", "none",
                 "--interactions", str(clicks)]) != 0
    assert "has no click or co-occurrence modality" in capsys.readouterr().err


def test_cli_add_refuses_a_days_clicks_that_would_replace_the_history(tmp_path, capsys):
    """Sessions naming under half the products the model has clicks for (a day's clicks
    given as if added to the history) are refused, the folder untouched; --replace-clicks
    retrains on them anyway."""
    model = _cli_model(tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text(CATALOG + "0011,Red leather handbag,bags\n", encoding="utf-8")
    day = tmp_path / "today.csv"  # today's clicks only: 0011 with 0005
    day.write_text("sid;item;ts\ne;0011;1\ne;0005;2\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    n_clicked = int((Recommender.load(model).click_counts_ > 0).sum())
    assert n_clicked == 9  # every catalog product but 0008
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--interactions", str(day)]) != 0
    err = capsys.readouterr().err
    assert f"its 1 sessions name 1 of the {n_clicked} products the model has training clicks" \
        in err and "--replace-clicks" in err and "Nothing was written" in err
    assert {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()} == before
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--interactions", str(day), "--replace-clicks"]) == 0
    rec = Recommender.load(model)
    assert int((rec.click_counts_ > 0).sum()) == 2 and rec.click_counts_[-1] == 1


def test_rebuild_clicks_keeps_the_tuning_record_and_records_the_new_sessions():
    rec = _model()
    rec.manifest_["tuning"] = {"objective": "ndcg@15", "validation_score": 0.5}
    rec.manifest_["data"] = {"catalog": {"path": "c.csv"}}
    fp = rec.manifest_["fingerprints"]["sessions"]
    rec.rebuild_clicks(Sessions.from_lists([["p0", "p3"], ["p3", "p7"]]))
    m = rec.manifest_
    assert m["tuning"]["validation_score"] == 0.5 and m["data"]["catalog"]["path"] == "c.csv"
    assert m["counts"]["sessions"] == 2 and m["fingerprints"]["sessions"] != fp
    assert m["updates"][-1]["retrained_clicks"] == 2
    assert rec.click_counts_.tolist() == [1, 0, 0, 2, 0, 0, 0, 1, 0, 0]


def test_update_products_refuses_misaligned_vectors_and_changes_nothing():
    rec = _model()
    before = rec.embeddings_["lexical"].vectors.copy()
    feed = Catalog(_catalog().frame[:2])
    with pytest.raises(Exception, match=r"lexical embeddings are 1 x 6; expected 2 x 6"):
        rec.update_products(feed, {"lexical": Embeddings(np.ones((1, 6), np.float32),
                                                         np.ones(1, bool), "x")})
    with pytest.raises(Exception, match=r"expected 2 x 6"):
        rec.update_products(feed, {"lexical": Embeddings(np.ones((2, 5), np.float32),
                                                         np.ones(2, bool), "x")})
    bad = np.ones((2, 6), np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(Exception, match="NaN|finite"):
        rec.update_products(feed, {"lexical": Embeddings(bad, np.ones(2, bool), "x")})
    np.testing.assert_array_equal(rec.embeddings_["lexical"].vectors, before)


def test_cli_add_refuses_a_feed_that_changes_most_titles(tmp_path, capsys):
    model = _cli_model(tmp_path)
    before = (model / "manifest.json").read_text()
    feed = tmp_path / "feed.csv"
    feed.write_text(CATALOG, encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--title-col", "category"]) != 0  # a wrong column, every title "changed"
    err = capsys.readouterr().err
    assert "the title of 10 of the 10 products the model has differs" in err
    assert "read with --title-col category" in err and "Nothing was written" in err
    assert (model / "manifest.json").read_text() == before
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--title-col", "category", "--keep-changed"]) == 0  # adds nothing, changes none
    assert (model / "manifest.json").read_text() == before


def test_update_products_moves_a_product_to_its_new_category_modality():
    frame = pl.DataFrame({"product_id": [f"p{i}" for i in range(6)],
                          "title": ["a", "b", "c", "d", "e", "f"],
                          "category": ["bags", "bags", "bags", "shoes", "shoes", "shoes"]})
    emb = Embeddings(np.eye(6, 4, dtype=np.float32) + 0.5, np.ones(6, bool), "t")
    rec = Recommender.from_embeddings(Catalog(frame), {"text": emb}, fusion="intermediate")
    rec.category = True
    rec.category_ = CategoryMatch.from_catalog(rec.catalog)
    assert rec.category_.scores(np.array([0]))[0].tolist() == [1, 1, 1, 0, 0, 0]
    moved = frame[0:1].with_columns(pl.lit("shoes").alias("category"))
    assert rec.changed_products(Catalog(moved))["category"].to_list() == [True]
    rec.update_products(Catalog(moved), {})
    assert rec.catalog.categories[0] == "shoes"
    assert rec.category_.scores(np.array([0]))[0].tolist() == [1, 0, 0, 1, 1, 1]
    assert set(rec.similar("p0", k=3, same_category=True)[0]) == {"p3", "p4", "p5"}


def test_cli_add_with_a_corpus_file_retrains_clicks_and_records_it(tmp_path, capsys):
    """`add --corpus FILE` (sessions cleaned beforehand by `prodfusion corpus`, on Ray at
    scale) retrains the clicks and recounts the co-occurrences as --interactions does, and
    the manifest records the corpus (a --corpus build recorded no session source at all)."""
    model = _cli_model(tmp_path)
    feed = tmp_path / "feed.csv"
    feed.write_text(CATALOG + "0011,Red leather handbag,bags\n", encoding="utf-8")
    clicks = tmp_path / "clicks2.csv"
    clicks.write_text(SESSIONS + "e;0011;1\ne;0005;2\nf;0005;1\nf;0011;2\n", encoding="utf-8")
    corpus = tmp_path / "clicks.corpus"
    assert main(["corpus", str(clicks), "--out", str(corpus), "--catalog", str(feed),
                 "--id-col", "sku", "--session-cols", "sid", "--item-col", "item",
                 "--time-col", "ts", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "clicks: 6 sessions; Prod2Vec retrained" in out
    assert "clicks  1/1: from the sessions given" in out
    rec = Recommender.load(model)
    assert rec.embeddings_["clicks"].mask[-1] and rec.click_counts_[-1] == 2
    if rec.cooc_ is not None:
        ids, _ = rec.similar("0011", k=1, modalities=["cooc"])
        assert ids[0] == "0005"
    m = json.loads((model / "manifest.json").read_text())
    assert m["data"]["interactions"]["corpus"] == str(corpus)
    assert m["updates"][-1]["retrained_clicks"] == 6
    # one source or the other, refused before anything is read
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--corpus", str(corpus), "--interactions", str(clicks)]) != 0
    assert "--corpus replaces --interactions/--pairs" in capsys.readouterr().err


def test_updates_keep_the_calibration_statistics_so_untouched_lists_stay(tmp_path):
    """Under a z-score calibration every score depends on the modalities' μ, σ. They were
    estimated again from a new sample after each add, so a day's feed moved lists of products
    it never touched (on the demo shop's tuned model: 393 of the 1,776 lists that hold no
    added, re-encoded or retired product changed order or members). Appending or re-encoding
    products keeps them now; retraining the clicks estimates the clicks' (and cooc's) again."""
    from prodfusion.fusion.weights import estimate_stats

    rng = np.random.default_rng(3)
    n = 60
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    embs = {m: Embeddings(rng.normal(size=(n, 6)).astype(np.float32), np.ones(n, bool), m)
            for m in ("text", "image", "clicks")}
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.weights, rec.calibration = {"text": 0.5, "image": 0.2, "clicks": 0.3}, "zmean"
    folder = rec.save(tmp_path / "m")
    rec = Recommender.load(folder)
    mods = ("text", "image", "clicks")
    stats = rec.weighting(mods).stats
    before = {p: rec.similar(p, k=8) for p in ("p1", "p2", "p3")}
    new = Catalog(pl.DataFrame({"product_id": ["n0", "n1"], "title": ["x", "y"]}))
    far = {m: Embeddings(np.full((2, 6), 50.0, np.float32), np.ones(2, bool), m)
           for m in ("text", "image")}  # far from everything: enters no list of p1..p3
    rec.add_products(new, far)
    rec.update_products(Catalog(pl.DataFrame({"product_id": ["p40"], "title": ["t40b"]})),
                        {"text": Embeddings(np.full((1, 6), -50.0, np.float32),
                                            np.ones(1, bool), "text")})
    assert rec.weighting(mods).stats == stats  # kept, not sampled again
    for p, (ids, scores) in before.items():
        ids2, scores2 = rec.similar(p, k=8)
        assert list(ids2) == list(ids)
        np.testing.assert_allclose(scores2, scores, rtol=0, atol=1e-6)
    saved = json.loads((rec.save(tmp_path / "m2") / "manifest.json").read_text())
    assert saved["settings"]["weighting"]["stats"] == {m: [mu, sd] for m, mu, sd in stats}
    # the clicks retrained: their statistics follow the new vectors, the others stay
    sessions = Sessions.from_lists([[f"p{i}", f"p{(i * 7) % n}", f"p{(i * 3) % n}"]
                                    for i in range(n)])
    rec.prod2vec = Prod2VecParams(vector_size=6, epochs=2, workers=1)
    rec.rebuild_clicks(sessions)
    after = dict((m, (mu, sd)) for m, mu, sd in rec.weighting(mods).stats)
    old = dict((m, (mu, sd)) for m, mu, sd in stats)
    assert after["text"] == old["text"] and after["image"] == old["image"]
    assert after["clicks"] == estimate_stats(rec.modality_data(), ["clicks"],
                                             seed=rec.seed)["clicks"] != old["clicks"]


def test_cli_add_refuses_a_feed_whose_ids_lost_their_leading_zeros(tmp_path, capsys):
    # a feed written with a numeric id column: "0001" became "1"; added as is, every product
    # would be in the model twice
    model = _cli_model(tmp_path)
    capsys.readouterr()
    before = (model / "manifest.json").read_text()
    feed = tmp_path / "feed.csv"
    feed.write_text("\n".join([CATALOG.splitlines()[0]] + [
        line.lstrip("0") for line in CATALOG.splitlines()[1:]]) + "\n", encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 2
    err = capsys.readouterr().err
    assert "10 of its 10 new ids are ids of the model written another way" in err
    assert "'1' ~ '0001'" in err and "Nothing was written" in err
    assert (model / "manifest.json").read_text() == before
    # one such id among real new ones: added, with a warning naming it
    feed.write_text(CATALOG + "0011,Blue leather handbag,bags\n0012,Gaming laptop 32 GB RAM,"
                    "laptops\n10,Oyun bilgisayarı dizüstü 16 GB,laptops\n", encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "warning: 1 of the 3 new ids" in cap.err and "'10' ~ '0010'" in cap.err
    assert "added 3 products" in cap.out


def test_the_added_products_are_said_to_be_ranked_by_what_they_got():
    # a model with photos and categories, a feed whose new products have neither a photo
    # nor (some) a category: "by their titles", not "titles and photos"
    from prodfusion.cli.add import _recommended_by

    cat = Catalog(pl.DataFrame({"product_id": ["a", "b"], "title": ["t a", "t b"],
                                "category": ["x", "y"]}))
    rec = Recommender.from_embeddings(cat, {
        "text": Embeddings(np.eye(2, dtype=np.float32), np.ones(2, bool), "t"),
        "image": Embeddings(np.eye(2, dtype=np.float32), np.ones(2, bool), "i")})
    text = Embeddings(np.ones((2, 2), np.float32), np.ones(2, bool), "t")
    new = Catalog(pl.DataFrame({"product_id": ["c", "d"], "title": ["t c", "t d"],
                                "category": [None, None]}, schema_overrides={
                                    "category": pl.Utf8}))
    assert _recommended_by(rec, new, {"text": text}, False) == "their titles"
    photos = Embeddings(np.ones((2, 2), np.float32), np.array([True, False]), "i")
    assert _recommended_by(rec, new, {"text": text, "image": photos}, True) == \
        "their titles and photos and the clicks of the sessions given"
    assert _recommended_by(rec, new, {}, False) == "the backfill"
    rec.category_ = CategoryMatch.from_catalog(cat)  # fused: named where they have one
    assert _recommended_by(rec, new, {"text": text}, False) == "their titles"
    new = Catalog(pl.DataFrame({"product_id": ["c", "d"], "title": ["t c", "t d"],
                                "category": ["x", None]}))
    assert _recommended_by(rec, new, {"text": text}, False) == "their titles and category"


def test_a_catalog_in_another_encoding_builds_and_adds_with_the_recorded_encoding(tmp_path,
                                                                                  capsys):
    """`build --encoding cp1254` (a Turkish Windows export) records the encoding; `add` reads
    the day's feed, saved the same way, with it when not given."""
    (tmp_path / "catalog.csv").write_bytes(CATALOG.encode("cp1254"))
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    model = tmp_path / "model"
    base = ["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "sku",
            "--image-col", "", "--interactions", str(tmp_path / "clicks.csv"),
            "--session-cols", "sid", "--item-col", "item", "--time-col", "ts",
            "--p2v-dim", "16", "--workers", "1", "--image", "none", "--cache-dir", "none",
            "--tune", "off", "--out", str(model)]
    assert main(base) == 2
    err = capsys.readouterr().err  # the refusal shows the line as the likely encodings read it
    assert "'0002,Kırmızı deri kadın çanta,bags' in cp1254 (Turkish): read the file with " \
        "--encoding and the one that shows it right" in err
    assert main([*base, "--encoding", "cp1254"]) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["data"]["catalog"]["encoding"] == "cp1254"
    assert Recommender.load(model).catalog.titles[1] == "Kırmızı deri kadın çanta"
    feed = tmp_path / "feed.csv"
    feed.write_bytes((CATALOG + "0011,Kırmızı deri çanta,bags\n").encode("cp1254"))
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "--encoding cp1254" in cap.err and "added 1 products" in cap.out
    assert Recommender.load(model).catalog.titles[-1] == "Kırmızı deri çanta"


def test_a_shop_export_with_variant_rows_builds_and_adds_with_the_recorded_choice(tmp_path,
                                                                                  capsys):
    """`build --duplicate-ids first` (a shop export with a row per variant) records the
    choice; `add` reads the next day's export the same way when not told."""
    from tests.data.test_io import SHOPIFY

    (tmp_path / "products_export.csv").write_text(SHOPIFY, encoding="utf-8")
    model = tmp_path / "model"
    base = ["build", "--catalog", str(tmp_path / "products_export.csv"), "--id-col", "Handle",
            "--title-col", "Title", "--image-col", "", "--category-col", "Type",
            "--text", "none", "--lexical", "tfidf:2", "--image", "none", "--cache-dir", "none",
            "--out", str(model)]
    assert main(base) == 2
    assert "--duplicate-ids first" in capsys.readouterr().err  # the refusal says how
    assert main([*base, "--duplicate-ids", "first"]) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["data"]["catalog"]["duplicate_ids"] == "first"
    assert Recommender.load(model).catalog.ids.tolist() == ["red-dress", "blue-shirt",
                                                            "green-scarf"]
    feed = SHOPIFY + ("black-boot,Black Leather Boot,<p>Sturdy</p>,Acme,Boots,Size,42,BB-42,,1\n"
                      "black-boot,,,,,,43,BB-43,,\n")
    (tmp_path / "products_export.csv").write_text(feed, encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(tmp_path / "products_export.csv"),
                 "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "--duplicate-ids first" in cap.err and "added 1 products" in cap.out
    cat = Recommender.load(model).catalog
    assert cat.ids.tolist()[-1] == "black-boot" and cat.titles[-1] == "Black Leather Boot"


def test_orders_naming_variants_by_sku_build_a_model_of_products(tmp_path, capsys):
    """A shop's product export (a row per variant) and its orders (lines naming variants by
    SKU): `--duplicate-ids first --alias-col 'Variant SKU'` builds a model of products whose
    co-occurrences come from the orders; the aliases travel with the model (so `add` and
    re-read logs name products alike) and `similar` answers a SKU with its product."""
    from tests.data.test_io import SHOPIFY

    (tmp_path / "products_export.csv").write_text(SHOPIFY, encoding="utf-8")
    lines = ["Name,Lineitem sku,Created at"]
    skus = ["RD-S", "RD-M", "RD-L", "BS-M", "BS-L", "GS-1"]
    for i in range(60):  # orders of two lines: a dress with a shirt, or a shirt with a scarf
        a, b = (skus[i % 3], skus[3 + i % 2]) if i % 2 else (skus[3 + i % 2], "GS-1")
        lines += [f"#{1000 + i},{a},2026-11-{1 + i % 28:02d}",
                  f"#{1000 + i},{b},2026-11-{1 + i % 28:02d}"]
    (tmp_path / "orders_export.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = tmp_path / "model"
    base = ["build", "--catalog", str(tmp_path / "products_export.csv"), "--id-col", "Handle",
            "--title-col", "Title", "--image-col", "", "--category-col", "Type",
            "--duplicate-ids", "first", "--interactions", str(tmp_path / "orders_export.csv"),
            "--session-cols", "Name", "--item-col", "Lineitem sku", "--time-col", "Created at",
            "--text", "none", "--lexical", "tfidf:2", "--image", "none", "--no-clicks",
            "--tune", "off", "--category-modality", "off", "--cache-dir", "none",
            "--out", str(model)]
    assert main(base) == 2  # the SKUs are not product ids: the refusal names the column
    assert "values of the catalog's column 'Variant SKU'" in capsys.readouterr().err
    assert main([*base, "--alias-col", "Variant SKU"]) == 0
    rec = Recommender.load(model)
    assert rec.manifest_["data"]["catalog"]["alias_col"] == "Variant SKU"
    assert rec.catalog.alias_map()["RD-L"] == "red-dress"
    ids, _ = rec.similar("blue-shirt", k=2, modalities=["cooc"])
    assert set(ids) == {"red-dress", "green-scarf"}  # every order of a shirt had one of them
    capsys.readouterr()
    assert main(["similar", str(model), "BS-L", "-k", "1"]) == 1
    assert "Did you mean 'blue-shirt'?" in capsys.readouterr().err
    feed = SHOPIFY + "black-boot,Black Boot,<p>x</p>,Acme,Boots,Size,42,BB-42,,1\n"
    (tmp_path / "products_export.csv").write_text(feed, encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(tmp_path / "products_export.csv"),
                 "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "--alias-col Variant SKU" in cap.err and "added 1 products" in cap.out
    assert Recommender.load(model).catalog.alias_map()["BB-42"] == "black-boot"
