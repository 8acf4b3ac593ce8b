"""Recommender: similar/similar_batch semantics, save/load round trip, bad model folders."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import (
    DataError,
    FormatVersionError,
    ModelError,
    NotBuiltError,
    ParameterError,
    UnknownProductError,
)
from prodfusion.recommender import FORMAT_VERSION, Recommender


@pytest.fixture
def planted(rng):
    """60 products in 3 categories; every modality carries the category plus noise."""
    n, n_cat = 60, 3
    cats = np.arange(n) % n_cat
    ids = [f"{i:010d}" for i in range(n)]  # leading zeros
    frame = pl.DataFrame({
        "product_id": ids,
        "title": [f"item {i}" for i in range(n)],
        "category": [f"c{c}" for c in cats],
        "group": [f"g{i // 2}" for i in range(n)],
        "price": [float(i) for i in range(n)],
    })
    catalog = Catalog(frame, source="planted")
    embs = {}
    for m, d in {"text": 16, "image": 24, "clicks": 8}.items():
        centers = rng.normal(size=(n_cat, d)) * 3
        v = centers[cats] + rng.normal(size=(n, d))
        mask = np.ones(n, bool)
        if m == "image":
            mask[[5, 6]] = False
        if m == "clicks":
            mask[[7, 8, 9]] = False
        embs[m] = Embeddings(v.astype(np.float32), mask, m)
    return catalog, embs, cats


@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_similar_recovers_planted_categories(planted, fusion):
    catalog, embs, cats = planted
    rec = Recommender.from_embeddings(catalog, embs, fusion=fusion)
    for pid in ["0000000000", "0000000005", "0000000007"]:  # full, no image, no clicks
        ids, scores = rec.similar(pid, k=15)
        assert len(ids) == 15 and pid not in ids
        assert np.all(np.diff(scores) <= 0)
        q = catalog.row_of(pid)
        assert all(cats[catalog.row_of(i)] == cats[q] for i in ids)


def test_batch_and_row_forms_take_the_options_of_similar(planted):
    """similar_batch / similar_rows share similar()'s options (QueryOptions): the same
    options give the same lists, and a misspelt option is refused by name."""
    catalog, embs, _ = planted
    rec = Recommender.from_embeddings(catalog, embs, fusion="early")
    opts = {"fusion": "intermediate", "modalities": ["text", "image"], "same_category": True,
            "exclude": ["0000000003"], "weights": "text=2,image=1"}
    single, _ = rec.similar("0000000002", k=6, **opts)
    batch, _ = rec.similar_batch(["0000000002"], k=6, **opts)
    rows, _ = rec.similar_rows([2], k=6, **opts)
    assert list(batch[0][: len(single)]) == list(single) == list(rec.ids_of(rows[0])[: len(single)])
    assert list(single) != list(rec.similar("0000000002", k=6)[0])  # the options mattered
    with pytest.raises(TypeError, match=r"similar_batch\(\) got unexpected keyword argument"
                                        r"\(s\) \['same_categroy'\]"):
        rec.similar_batch(["0000000002"], k=6, same_categroy=True)
    with pytest.raises(TypeError, match=r"similar_rows\(\) got unexpected keyword"):
        rec.similar_rows([2], k=6, fusoin="late")


def test_similar_batch_shapes_and_filters(planted):
    catalog, embs, cats = planted
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate")
    ids, scores = rec.similar_batch(["0000000000", "0000000001"], k=5)
    assert ids.shape == scores.shape == (2, 5)
    single, _ = rec.similar("0000000001", k=5)
    assert list(ids[1]) == list(single)
    ex = list(ids[0][:2])
    ids2, _ = rec.similar("0000000000", k=5, exclude=ex)
    assert not set(ex) & set(ids2)
    ids3, _ = rec.similar("0000000000", k=20, same_category=True)
    assert all(cats[catalog.row_of(i)] == 0 for i in ids3)
    # k = every other product, so the group mate (g0: rows 0 and 1) is returned unless
    # exclude_group removes it, whatever its category.
    every, _ = rec.similar("0000000000", k=59, modalities=["text"])
    assert "0000000001" in every
    ids4, _ = rec.similar("0000000000", k=59, exclude_group=True, modalities=["text"])
    assert set(ids4) == set(every) - {"0000000001"}  # same group g0, nothing else dropped


def test_modality_subsets_and_errors(planted):
    catalog, embs, _ = planted
    rec = Recommender.from_embeddings(catalog, {"text": embs["text"]})
    with pytest.raises(UnknownProductError, match=r"Product id '42' is not in the catalog"):
        rec.similar("42")
    with pytest.raises(UnknownProductError, match=r"Product id 0 .* of type int, not str: "
                                                  r"did you mean '0000000000'\?$"):
        rec.similar(0)  # the catalog's ids are ten digits
    with pytest.raises(UnknownProductError, match=r"leading zeros included\. Did you mean "
                                                  r"'0000000007'\?$"):
        rec.similar("7")
    with pytest.raises(UnknownProductError, match=r"leading zeros included\.$"):
        rec.similar("7x")  # no id written another way: no suggestion
    with pytest.raises(UnknownProductError, match=r"of type float, not str\.$"):
        rec.similar(7.5)
    import polars as pl

    numeric = Catalog(pl.DataFrame({"product_id": ["5", "6"], "title": ["a", "b"]}))
    with pytest.raises(UnknownProductError, match=r"of type int, not str: did you mean '5'\?"):
        numeric.row_of(5)
    with pytest.raises(UnknownProductError, match=r"of type list, not str"):
        numeric.row_of(["5"])
    with pytest.raises(ParameterError, match=r"The 'k' parameter of similar\(\) must be an int in \[1, 1000\]. Got 0 instead."):
        rec.similar("0000000000", k=0)
    with pytest.raises(ParameterError, match=r"asks for 'image', but this model has only \['text'\]"):
        rec.similar("0000000000", modalities=["image"])
    with pytest.raises(ParameterError, match="must be a non-empty subset"):
        rec.similar("0000000000", modalities=[])
    with pytest.raises(ParameterError, match="The 'fusion' parameter of similar"):
        rec.similar("0000000000", fusion="hybrid")
    with pytest.raises(ParameterError, match="The 'fusion' parameter of Recommender"):
        Recommender(fusion="average")
    with pytest.raises(NotBuiltError, match="not built yet"):
        Recommender().similar("x")


def test_nan_vectors_refused(planted):
    catalog, embs, _ = planted
    v = embs["text"].vectors.copy()
    v[3, 0] = np.inf
    with pytest.raises(DataError, match="catalog row 3 contains NaN or Inf"):
        Recommender.from_embeddings(catalog, {"text": Embeddings(v, embs["text"].mask, "t")})


def test_save_load_round_trip(planted, tmp_path):
    catalog, embs, _ = planted
    rec = Recommender.from_embeddings(catalog, embs, fusion="late")
    out = rec.save(tmp_path / "model")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left over
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["encoders"]["image"]["n_present"] == 58
    assert "numpy" in manifest["libraries"] and manifest["fingerprints"]["catalog"]
    loaded = Recommender.load(out)
    assert loaded.catalog.ids[0] == "0000000000"  # leading zeros kept
    assert loaded.catalog.frame["price"].to_list() == catalog.frame["price"].to_list()
    for fusion in ("early", "intermediate", "late"):
        a = rec.similar("0000000003", k=10, fusion=fusion)
        b = loaded.similar("0000000003", k=10, fusion=fusion)
        assert list(a[0]) == list(b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    # Overwriting an existing folder is atomic too and leaves a loadable model.
    Recommender.from_embeddings(catalog, {"text": embs["text"]}).save(out)
    assert list(Recommender.load(out).embeddings_) == ["text"]


def test_bad_model_folders(planted, tmp_path):
    catalog, embs, _ = planted
    with pytest.raises(ModelError, match="does not exist or is not a folder"):
        Recommender.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no manifest.json"):
        Recommender.load(tmp_path / "empty")
    out = Recommender.from_embeddings(catalog, embs).save(tmp_path / "m")
    mpath = out / "manifest.json"
    good = mpath.read_text()
    mpath.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable manifest"):
        Recommender.load(out)
    m = json.loads(good)
    m["format_version"] = FORMAT_VERSION + 1
    mpath.write_text(json.dumps(m))
    with pytest.raises(FormatVersionError, match=f"format version {FORMAT_VERSION + 1} is newer"):
        Recommender.load(out)
    mpath.write_text(good)
    (out / "emb_text.npy").unlink()
    with pytest.raises(ModelError, match=r"m', file 'emb_text.npy': cannot read the array"):
        Recommender.load(out)


def test_failed_save_leaves_nothing_half_written(planted, tmp_path, monkeypatch):
    catalog, embs, _ = planted
    rec = Recommender.from_embeddings(catalog, embs)
    rec.save(tmp_path / "m")
    before = sorted(p.name for p in (tmp_path / "m").iterdir())

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        Recommender.from_embeddings(catalog, {"text": embs["text"]}).save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_a_model_folder_and_cache_files_get_the_usual_permissions(planted, tmp_path):
    """A model folder is made through a temporary folder (mode 0700) renamed into place, an
    embedding cache's files through temporary files (0600): they get what a new folder and
    file get (0777 / 0666 less the umask), so a service running as another user reads a
    model built by a deploy user."""
    import os
    import stat

    from prodfusion.encoders.cache import EmbeddingCache, content_key

    catalog, embs, _ = planted
    old = os.umask(0o022)
    try:
        folder = Recommender.from_embeddings(catalog, embs).save(tmp_path / "m")
        cache = EmbeddingCache(tmp_path / "cache")
        cache.put("ns", [content_key("a"), content_key("b")], np.ones((2, 4), np.float32))
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(folder) == 0o755 and mode(folder / "manifest.json") == 0o644
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert files and {mode(p) for p in files} == {0o644}


def test_late_labels_are_cached_by_content(planted, tmp_path, monkeypatch):
    """A rebuild with the same text vectors re-uses their clusters; changed vectors re-cluster."""
    import prodfusion.fusion.clustering as recmod  # the late-fusion label cache lives there

    catalog, embs, _ = planted
    calls = []
    real = recmod.cluster_auto

    def counting(emb, k, *, seed=0):
        calls.append(emb.spec)
        return real(emb, k, seed=seed)

    monkeypatch.setattr(recmod, "cluster_auto", counting)
    rec = Recommender(cache_dir=tmp_path / "cache")
    rec._set_state(catalog, {"text": embs["text"], "clicks": embs["clicks"]})
    assert calls == []  # lazy: nothing is clustered before late fusion is used
    first = {m: lab.copy() for m, lab in rec.late_labels_.items()}
    assert sorted(calls) == ["clicks", "text"]
    calls.clear()
    new_clicks = Embeddings(embs["clicks"].vectors * 2 + 1, embs["clicks"].mask, "clicks")
    rec._set_state(catalog, {"text": embs["text"], "clicks": new_clicks})
    rec.cluster_late()
    assert calls == ["clicks"]  # text clusters came from the cache
    np.testing.assert_array_equal(rec.late_labels_["text"], first["text"])


def test_load_scans_values_only_when_asked(planted, tmp_path, monkeypatch):
    """load() checks shapes and dtypes, not values: a mapped model reads no vector page until
    queried. verify=True (and publish) scan every present vector and refuse a damaged one."""
    import prodfusion.model_state as R  # where the state (and its value scan) is set
    from prodfusion.service.models import publish_model

    catalog, embs, _ = planted
    out = Recommender.from_embeddings(catalog, embs).save(tmp_path / "model")
    v = np.load(out / "emb_text.npy")
    v[3, 0] = np.nan  # damaged on disk after the build checked it
    np.save(out / "emb_text.npy", v)
    im = np.load(out / "emb_image.npy")
    assert not np.load(out / "mask_image.npy")[5] and not im[5].any()
    im[5] = 1.0  # an absent row that is not zero: only a scan of absent rows would see it
    np.save(out / "emb_image.npy", im)
    scanned = []
    real = R.check_finite
    monkeypatch.setattr(R, "check_finite", lambda e, **kw: scanned.append(kw["what"]) or real(e, **kw))
    lazy = Recommender.load(out, mmap=True)
    assert scanned == []
    base = lazy.embeddings_["text"].vectors
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    assert isinstance(base, np.memmap)  # still a mapping of the file, not a copy
    assert lazy.embeddings_["image"].vectors[5].all()  # absent rows were not read
    assert not Recommender.load(out, mmap=False).embeddings_["image"].vectors[5].any()
    with pytest.raises(DataError, match="catalog row 3 contains NaN or Inf"):
        Recommender.load(out, verify=True)
    assert scanned and scanned[0].startswith("text embeddings")
    with pytest.raises(DataError, match="catalog row 3 contains NaN or Inf"):
        publish_model(out, tmp_path / "current")
    assert not (tmp_path / "current").exists()


def test_rebuild_clicks_retrains_only_the_click_vectors(planted):
    """rebuild_clicks: new sessions → new click neighbours; text and image untouched, their
    late-fusion clusters kept (not recomputed)."""
    from prodfusion.encoders.clicks import Prod2VecParams

    catalog, embs, _ = planted
    ids = list(catalog.ids)
    rec = Recommender.from_embeddings(catalog, {"text": embs["text"], "image": embs["image"]},
                                      fusion="intermediate")
    rec.prod2vec = Prod2VecParams(vector_size=8, window=2, epochs=40, workers=1, seed=0)
    rec.cluster_late(["text"])
    text_labels = rec.late_labels_["text"]
    text_before = rec.embeddings_["text"].vectors.copy()

    def sessions(partner):  # ids[0] always clicked with ``partner``, ``partner + 1``
        order = np.random.default_rng(0)
        return [[ids[i] for i in order.permutation(c)]
                for c in ([0, partner, partner + 1], [10, 11, 12], [20, 21, 22])
                for _ in range(60)]

    for partner in (4, 6):  # a first build of the clicks, then a rebuild on other sessions
        assert rec.rebuild_clicks(sessions(partner)) is rec
        clicks = rec.embeddings_["clicks"]
        assert np.flatnonzero(clicks.mask).tolist() == sorted(
            [0, partner, partner + 1, 10, 11, 12, 20, 21, 22])
        top, _ = rec.similar(ids[0], k=2, modalities=("clicks",))
        assert set(top.tolist()) == {ids[partner], ids[partner + 1]}
        np.testing.assert_array_equal(rec.embeddings_["text"].vectors, text_before)
        assert rec.late_labels_.computed["text"] is text_labels  # kept, not re-clustered
        assert "clicks" not in rec.late_labels_.computed
        assert rec.manifest_["counts"]["clicks_present"] == 9


def test_similar_json_on_an_hnsw_model_builds_no_exact_fuser(planted, tmp_path, capsys,
                                                             monkeypatch):
    pytest.importorskip("faiss")
    import json

    from prodfusion.cli import main

    catalog, embs, _ = planted
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate", index="hnsw")
    rec.build_index(["intermediate"])
    folder = rec.save(tmp_path / "m")
    want, _ = Recommender.load(folder).similar("0000000000", k=5)

    def no_fuser(self, *a, **k):
        raise AssertionError("similar --json built an exact N x D fuser")

    monkeypatch.setattr(Recommender, "fuser", no_fuser)
    assert main(["similar", str(folder), "0000000000", "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fusion"] == "intermediate"
    assert out["modalities"] == ["text", "image", "clicks"]
    assert [r["product_id"] for r in out["results"]] == want.tolist()
    assert out["query"]["product_id"] == "0000000000"


def test_inputs_that_would_be_read_wrongly_are_refused_or_taken_as_meant(planted, tmp_path):
    """A table of interactions (iterates over its columns), one string (its characters), a
    list of ids for a list of sessions: refused, naming what to pass; one id where ids are
    expected: that id."""
    from prodfusion.data import Sessions, read_catalog

    catalog, embs, _ = planted
    frame = pl.DataFrame({"session": ["a", "a"], "product_id": catalog.ids[:2].tolist()})
    plain = Recommender(text=None, image=None)
    with pytest.raises(ParameterError, match=r"'sessions' is a DataFrame of interactions; "
                                             r"clean it into sessions first: clean_sessions"):
        plain.build(catalog, frame)
    with pytest.raises(ParameterError, match="'sessions' is a list of product ids"):
        plain.build(catalog, catalog.ids[:2].tolist())
    with pytest.raises(ParameterError, match="session 0 is one string"):
        Sessions.from_lists(["00001", "00006"])
    with pytest.raises(ParameterError, match="'catalog' parameter of Recommender.build"):
        plain.build("catalog.csv", [catalog.ids[:2].tolist()])
    with pytest.raises(NotBuiltError):
        Recommender().explain("a", ["b"])
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate")
    ids, _ = rec.similar(catalog.ids[0], k=3)
    again, _ = rec.similar(catalog.ids[0], k=3, exclude=ids[0])  # one id, not its characters
    assert ids[0] not in again and again[0] == ids[1]
    one = rec.explain(catalog.ids[0], ids[0])
    assert len(one) == 1 and one == rec.explain(catalog.ids[0], [ids[0]])
    with pytest.raises(ParameterError, match="'sessions' is a DataFrame"):
        rec.tune(frame)
    # a list of sessions works where Sessions do (tune and evaluate split them)
    from prodfusion.data.sessions import as_sessions
    s = as_sessions([catalog.ids[:3].tolist()] * 2, "sessions", "t()")
    assert isinstance(s, Sessions) and len(s) == 2
    # category_col=None: the file's 'category' column is not the categories
    path = tmp_path / "c.csv"
    path.write_text("product_id,title,category\n01,a,x\n02,b,y\n", encoding="utf-8")
    off = read_catalog(path, category_col=None, image_col=None)
    assert not off.has_categories and off.frame["category (file)"].to_list() == ["x", "y"]
    assert read_catalog(path, image_col=None).has_categories


def test_build_warns_when_most_session_clicks_name_no_catalog_product(planted, caplog):
    import logging

    from prodfusion.data import Sessions

    catalog, _, _ = planted
    ids = catalog.ids.tolist()
    mostly_unknown = Sessions.from_lists([[ids[0], "x1", "x2"], ["x3", "x4", ids[1]]])
    rec = Recommender(text=None, image=None, fusion="intermediate",
                      prod2vec=__import__("prodfusion").Prod2VecParams(vector_size=4, epochs=1))
    with caplog.at_level(logging.WARNING, logger="prodfusion"):
        rec.build(catalog, mostly_unknown)
    assert any("4 of 6 interaction rows (67%) name products that are not in the catalog"
               in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match="6 of 6 interaction rows"):
        rec.build(catalog, Sessions.from_lists([["x1", "x2", "x5"], ["x3", "x4", "x6"]]))
