"""The Recommender on approximate indexes: routing, save/load, incremental updates vs full rebuild."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ModelError, ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.index import FusedIndex, IndexSettings
from prodfusion.recommender import Recommender
from tests.index.conftest import assert_same_topk, make_planted

MODS = ("text", "image", "clicks")
ANN = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, min_candidates=64)
QUERIES = [f"{i:08d}" for i in range(0, 600, 23)]


def _rec(catalog, embs, **kw):
    return Recommender.from_embeddings(catalog, embs, index="hnsw", index_settings=ANN, **kw)


def _check_against_exact(rec, fusion, queries=QUERIES, **kw):
    """``rec`` (approximate) returns an exact top-k for its own embeddings and labels."""
    exact = make_fuser(fusion, rec.embeddings_, MODS, late_labels=rec.late_labels_)
    rows = rec.catalog.rows_of(queries)
    ids, scores = rec.similar_batch(queries, 10, fusion=fusion, **kw)
    got = np.array([[rec.catalog.row_of(i) if i is not None else -1 for i in r] for r in ids])
    r0, s0 = exact.topk(rows, 10)
    assert_same_topk(exact, rows, r0, s0, got, scores)


def test_routing_auto_exact_hnsw(planted):
    catalog, embs, _, _ = planted
    auto = Recommender.from_embeddings(catalog, embs)
    assert not isinstance(auto.searcher("early"), FusedIndex)  # 600 < 50,000: exact fuser
    small = IndexSettings(auto_hnsw_from=100)
    rec = Recommender.from_embeddings(catalog, embs, index_settings=small)
    assert isinstance(rec.searcher("early"), FusedIndex)
    assert rec.searcher("early").backend_ == "hnsw"
    with pytest.raises(ParameterError, match=r"The 'index' parameter of Recommender\(\) must be one of \['auto', 'exact', 'hnsw', 'ivfpq'\]. Got 'annoy' instead."):
        Recommender(index="annoy")


@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_similar_on_index_equals_exact(planted, fusion):
    catalog, embs, _, _ = planted
    rec = _rec(catalog, embs, fusion=fusion)
    _check_against_exact(rec, fusion)
    exact = Recommender.from_embeddings(catalog, embs, fusion=fusion, index="exact")
    for kw in ({"same_category": True}, {"exclude_group": True},
               {"exclude": ["00000001", "00000002"]}):
        a_ids, a_s = rec.similar("00000000", k=10, **kw)
        b_ids, b_s = exact.similar("00000000", k=10, **kw)
        np.testing.assert_allclose(a_s, b_s, atol=1e-5)
        assert set(a_ids) == set(b_ids)


def test_save_load_reads_the_index_or_maps_it(planted, tmp_path):
    catalog, embs, _, _ = planted
    rec = _rec(catalog, embs).build_index()
    out = rec.save(tmp_path / "m")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["index"] == "hnsw"
    assert set(manifest["index"]) == {f"{f}/text+image+clicks" for f in ("early", "intermediate", "late")}
    assert (out / "index" / "early-text+image+clicks" / "piece0.faiss").is_file()
    loaded = Recommender.load(out)
    assert loaded.index == "hnsw" and loaded.index_settings == ANN
    s = loaded.searcher("intermediate")
    assert not any(p.index._mmapped for p in s.pieces_.values())  # read into memory
    mapped = Recommender.load(out, mmap_index=True).searcher("intermediate")
    assert all(p.index._mmapped for p in mapped.pieces_.values())
    for fusion in ("early", "intermediate", "late"):
        a = rec.similar("00000003", k=10, fusion=fusion)
        b = loaded.similar("00000003", k=10, fusion=fusion)
        assert list(a[0]) == list(b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    # Saving the loaded model again carries the (loaded) indexes over.
    again = Recommender.load(loaded.save(tmp_path / "m2"))
    assert set(again._index_meta) == set(loaded._index_meta)


def test_stale_saved_index_is_refused(planted, tmp_path):
    catalog, embs, _, _ = planted
    out = _rec(catalog, embs).build_index(["early"]).save(tmp_path / "m")
    np.save(out / "index" / "early-text+image+clicks" / "piece0.rows.npy", np.arange(5))
    with pytest.raises(ModelError, match="indexes .* vectors but lists 5 rows"):
        Recommender.load(out).similar("00000000")


def _split(catalog, embs, n_old):
    old = catalog.take(np.arange(n_old))
    new = catalog.take(np.arange(n_old, len(catalog)))
    e_old = {m: e.take(np.arange(n_old)) for m, e in embs.items()}
    e_new = {m: e.take(np.arange(n_old, len(catalog))) for m, e in embs.items()}
    return old, new, e_old, e_new


def test_add_products_equals_full_rebuild(planted):
    catalog, embs, _, _ = planted
    old, new, e_old, e_new = _split(catalog, embs, 500)
    e_new.pop("clicks")  # cold start: the new products have no clicks yet
    rec = _rec(old, e_old).build_index()
    report = rec.add_products(new, e_new)
    assert report["early/text+image+clicks"]["grown"] == ["all"]
    assert "text+image" in report["intermediate/text+image+clicks"]["grown"]
    assert len(rec.catalog) == 600 and rec.catalog.ids[-1] == "00000599"
    assert not rec.embeddings_["clicks"].mask[500:].any()
    full_embs = dict(rec.embeddings_)
    full = _rec(rec.catalog, full_embs)
    queries = QUERIES + ["00000510", "00000599"]
    for fusion in ("early", "intermediate"):
        a = rec.similar_batch(queries, 10, fusion=fusion)
        b = full.similar_batch(queries, 10, fusion=fusion)
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
        _check_against_exact(rec, fusion, queries)
    # Late: the new products joined existing clusters (old labels untouched) and the
    # inverted lists answer exactly for those labels.
    assert np.array_equal(rec.late_labels_["text"][:500],
                          Recommender.from_embeddings(old, e_old).late_labels_["text"])
    _check_against_exact(rec, "late", queries)


def test_update_products_equals_a_model_built_with_the_new_vectors(planted, rng):
    catalog, embs, _, _ = planted
    rec = _rec(catalog, embs).build_index()
    rec.cluster_late()
    rows = np.array([3, 40, 41, 200])
    sub = catalog.take(rows)
    text = embs["text"].take(rows)
    new_text = Embeddings(text.vectors[::-1].copy(), text.mask[::-1].copy(), text.spec)
    report = rec.update_products(sub, {"text": new_text})
    inter = report["intermediate/text+image+clicks"]
    assert "image+clicks" in inter["kept"] and "text" in inter["rebuilt"]
    assert report["late/text+image+clicks"]["rebuilt"] == ["text"]
    assert np.array_equal(rec.embeddings_["image"].vectors, embs["image"].vectors)
    vec, mask = embs["text"].vectors.copy(), embs["text"].mask.copy()
    vec[rows], mask[rows] = new_text.vectors, new_text.mask
    vec[~mask] = 0
    full = _rec(catalog, {**embs, "text": Embeddings(vec, mask, text.spec)})
    full.late_labels_ = rec.late_labels_  # same clusters; compare the search, not k-means
    queries = QUERIES + ["00000040", "00000200"]
    for fusion in ("early", "intermediate", "late"):
        a = rec.similar_batch(queries, 10, fusion=fusion)
        b = full.similar_batch(queries, 10, fusion=fusion)
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
        _check_against_exact(rec, fusion, queries)


def test_add_products_assigns_planted_clusters(rng):
    catalog, embs, cats, _ = make_planted(rng, n=600, n_cat=6)
    old, new, e_old, e_new = _split(catalog, embs, 550)
    rec = Recommender.from_embeddings(old, e_old, late_k=6)
    rec.add_products(new, e_new)
    lab = rec.late_labels_["text"]
    for r in range(550, 600):
        if embs["text"].mask[r]:
            mates = np.flatnonzero((lab[:550] == lab[r]) & (lab[:550] >= 0))
            assert np.mean(cats[mates] == cats[r]) > 0.9


def test_add_products_errors(planted):
    catalog, embs, _, _ = planted
    old, new, e_old, e_new = _split(catalog, embs, 500)
    rec = Recommender.from_embeddings(old, {"text": e_old["text"]})
    with pytest.raises(ParameterError, match=r"the model has no \['image'\] modality"):
        rec.add_products(new, {"image": e_new["image"]})
    with pytest.raises(ParameterError, match=r"3 of the 3 products are already in the model "
                                             r"\(e.g. '00000000'\).*update_products\(\)"):
        rec.add_products(old.take(np.arange(3)), {"text": e_old["text"].take(np.arange(3))})
    n = len(rec.catalog)
    assert rec.add_products(new.take(np.arange(0))) == {} and len(rec.catalog) == n  # no new one
    with pytest.raises(ParameterError, match="'catalog' parameter of add_products"):
        rec.add_products(["x"])
    with pytest.raises(ParameterError, match="text embeddings have 3 rows but the new catalog has 100"):
        rec.add_products(new, {"text": e_new["text"].take(np.arange(3))})


def test_update_clicks_rebuilds_only_the_click_pieces(planted, rng):
    catalog, embs, _, _ = planted
    rec = _rec(catalog, embs).build_index()
    text_labels = rec.late_labels_["text"].copy()
    before = {n: p.index for n, p in rec.searcher("intermediate").pieces_.items()}
    clicks = embs["clicks"]
    new_clicks = Embeddings(clicks.vectors + rng.normal(size=clicks.vectors.shape).astype(np.float32),
                            clicks.mask, "prod2vec")
    report = rec.update_embeddings({"clicks": new_clicks})
    inter = report["intermediate/text+image+clicks"]
    assert set(inter["kept"]) == {"text", "image", "text+image"}
    assert set(inter["rebuilt"]) == {"clicks", "text+clicks", "image+clicks", "text+image+clicks"}
    assert report["late/text+image+clicks"] == {"rebuilt": ["clicks"], "kept": ["text", "image"],
                                                 "dropped": []}
    after = rec.searcher("intermediate").pieces_
    assert after["text+image"].index is before["text+image"]
    assert np.array_equal(rec.late_labels_["text"], text_labels)
    assert rec.embeddings_["clicks"] is new_clicks
    full = _rec(catalog, {**embs, "clicks": new_clicks})
    full.late_labels_ = rec.late_labels_  # same clusters; compare the search, not k-means
    for fusion in ("early", "intermediate", "late"):
        a = rec.similar_batch(QUERIES, 10, fusion=fusion)
        b = full.similar_batch(QUERIES, 10, fusion=fusion)
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
        _check_against_exact(rec, fusion)


def test_update_when_products_gain_clicks_moves_them_between_pieces(planted):
    catalog, embs, _, _ = planted
    rec = _rec(catalog, embs).build_index(["intermediate"])
    clicks = embs["clicks"]
    mask = clicks.mask.copy()
    gained = np.flatnonzero(~mask)[:5]
    mask[gained] = True
    v = clicks.vectors.copy()
    v[gained] = 1.0
    report = rec.update_embeddings({"clicks": Embeddings(v, mask, "prod2vec")})
    assert "text+image" in report["intermediate/text+image+clicks"]["rebuilt"]
    pieces = rec.searcher("intermediate").pieces_
    assert not np.isin(gained, pieces["text+image"].rows).any()
    _check_against_exact(rec, "intermediate")


def test_indexes_built_concurrently_answer_like_serially_built_ones(planted):
    catalog, embs, _, _ = planted
    serial = _rec(catalog, embs).build_index()
    parallel = _rec(catalog, embs).build_index(n_jobs=3)
    assert set(parallel.build_seconds_) == {"early", "intermediate", "late"}
    for fusion in ("early", "intermediate", "late"):
        assert isinstance(parallel._searchers[(fusion, MODS)], FusedIndex)
        a_ids, a_s = serial.similar_batch(QUERIES, 10, fusion=fusion)
        b_ids, b_s = parallel.similar_batch(QUERIES, 10, fusion=fusion)
        assert [list(x) for x in a_ids] == [list(x) for x in b_ids]
        np.testing.assert_allclose(a_s, b_s, rtol=1e-6)
    with pytest.raises(ParameterError, match=r"The 'n_jobs' parameter of build_index\(\) must be an int >= 1. Got 0 instead."):
        serial.build_index(n_jobs=0)
