"""Sharded index pieces (``IndexSettings(shards=…)``, issue 14): the same answers as one index
per piece, saved with a list of shards, loaded back; older model folders still load."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from prodfusion.errors import ParameterError
from prodfusion.fusion import make_fuser
from prodfusion.index import Filters, IndexSettings
from prodfusion.index.fused import load_fused_index, make_fused_index
from prodfusion.index.sharded import ShardedVectorIndex, shard_bounds
from prodfusion.recommender import Recommender
from tests.index.conftest import assert_same_topk

MODS = ("text", "image", "clicks")
QUERIES = [f"{i:08d}" for i in range(0, 600, 17)]
# ef_search above every shard's size: each shard's HNSW search is exhaustive, so a sharded
# and an unsharded model must agree exactly (what differs is only where candidates come from)
ANN = dict(exact_below=40, reduce_dim=None, ef_search=1024, min_candidates=64)


# early: exact shards; intermediate (exact search would be one mixed piece): exhaustive HNSW
@pytest.mark.parametrize(("method", "backend"), [("early", "exact"), ("intermediate", "hnsw")])
def test_shards_equal_one_index_per_piece_with_filters(planted, method, backend, tmp_path):
    catalog, embs, cats, groups = planted
    one = make_fused_index(method, MODS, backend=backend,
                           settings=IndexSettings(**ANN)).build(embs)
    sharded = make_fused_index(method, MODS, backend=backend,
                               settings=IndexSettings(**ANN, shards=3)).build(embs)
    for p in sharded.pieces_.values():  # a shard never has fewer than exact_below rows
        n_shards = min(3, len(p) // 40)
        assert p.index.kind == ("sharded" if n_shards > 1 and not p.mixed else
                                one.pieces_[p.name].index.kind)
        assert n_shards < 2 or [len(s) for s in p.index.shards] == [
            hi - lo for lo, hi in shard_bounds(len(p), n_shards)]
    big = max(sharded.pieces_.values(), key=len)
    assert len(big.index.shards) == 3 and len(big.index) == len(big)
    fuser = make_fuser(method, embs, MODS)
    q = np.arange(0, 600, 11)
    banned = np.zeros(600, bool)
    banned[[1, 2, 3, 50]] = True
    for kw in ({}, {"banned": banned}, {"same_code": cats}, {"diff_code": groups}):
        r1, s1 = one.topk(q, 10, filters=Filters(**kw))
        r2, s2 = sharded.topk(q, 10, filters=Filters(**kw))
        np.testing.assert_array_equal(r2, r1)
        np.testing.assert_array_equal(s2, s1)
    r0, s0 = fuser.topk(q, 10)
    assert_same_topk(fuser, q, r0, s0, *sharded.topk(q, 10))
    meta = sharded.save(tmp_path)
    again = load_fused_index(tmp_path, meta, embs, settings=IndexSettings(**ANN))
    np.testing.assert_array_equal(again.topk(q, 10)[0], sharded.topk(q, 10)[0])


def test_sharded_model_equals_unsharded_and_round_trips(planted, tmp_path):
    catalog, embs, _, _ = planted
    one = Recommender.from_embeddings(catalog, embs, index="hnsw",
                                      index_settings=IndexSettings(**ANN))
    rec = Recommender.from_embeddings(catalog, embs, index="hnsw",
                                      index_settings=IndexSettings(**ANN, shards=4))
    rec.build_index(["early", "intermediate"])
    exact = Recommender.from_embeddings(catalog, embs, index="exact")
    for fusion in ("early", "intermediate"):
        ids, scores = rec.similar_batch(QUERIES, 10, fusion=fusion)
        ids1, scores1 = one.similar_batch(QUERIES, 10, fusion=fusion)
        ids0, scores0 = exact.similar_batch(QUERIES, 10, fusion=fusion)
        assert ids.tolist() == ids1.tolist() == ids0.tolist()
        np.testing.assert_array_equal(scores, scores1)  # the same exact re-scoring
        np.testing.assert_allclose(scores, scores0, atol=1e-5)
    out = rec.save(tmp_path / "m")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["index_settings"]["shards"] == 4
    piece = manifest["index"]["early/text+image+clicks"]["pieces"]["all"]
    assert piece["kind"] == "sharded" and piece["shard_kind"] == "hnsw"
    n = len(np.load(out / "index" / "early-text+image+clicks" / piece["rows"]))
    assert [(s["lo"], s["hi"]) for s in piece["shards"]] == shard_bounds(n, 4)
    for s in piece["shards"]:
        assert (out / "index" / "early-text+image+clicks" / s["files"][0]).is_file()
    for mmap_index in (False, True):
        loaded = Recommender.load(out, mmap_index=mmap_index)
        for fusion in ("early", "intermediate"):
            a = loaded.similar_batch(QUERIES, 10, fusion=fusion)
            b = rec.similar_batch(QUERIES, 10, fusion=fusion)
            assert a[0].tolist() == b[0].tolist()
            np.testing.assert_array_equal(a[1], b[1])


def test_old_model_folder_without_shards_loads(planted, tmp_path):
    """A folder written before ``shards`` existed (no such setting, one index per piece)."""
    catalog, embs, _, _ = planted
    rec = Recommender.from_embeddings(catalog, embs, index="hnsw",
                                      index_settings=IndexSettings(**ANN)).build_index(["early"])
    out = rec.save(tmp_path / "old")
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["settings"]["index_settings"]["shards"]
    path.write_text(json.dumps(manifest))
    loaded = Recommender.load(out)
    assert loaded.index_settings.shards == 1
    assert loaded.searcher("early").pieces_["all"].index.kind == "hnsw"
    a, b = loaded.similar_batch(QUERIES, 10), rec.similar_batch(QUERIES, 10)
    assert a[0].tolist() == b[0].tolist()


def test_cold_start_grows_the_last_shard(planted):
    catalog, embs, _, _ = planted
    old_cat = catalog.take(np.arange(500))
    e_old = {m: e.take(np.arange(500)) for m, e in embs.items()}
    e_new = {m: e.take(np.arange(500, 600)) for m, e in embs.items()}
    rec = Recommender.from_embeddings(old_cat, e_old, index="hnsw",
                                      index_settings=IndexSettings(**ANN, shards=3))
    rec.build_index(["early"])
    before = [len(s) for s in rec.searcher("early").pieces_["all"].index.shards]
    rec.add_products(catalog.take(np.arange(500, 600)), e_new)
    after = [len(s) for s in rec.searcher("early").pieces_["all"].index.shards]
    assert after[:2] == before[:2] and after[2] > before[2]
    exact = Recommender.from_embeddings(catalog, embs, index="exact")
    q = ["00000510", "00000599", "00000003"]
    assert rec.similar_batch(q, 10)[0].tolist() == exact.similar_batch(q, 10)[0].tolist()


def test_shard_building_blocks(planted):
    catalog, embs, _, _ = planted
    with pytest.raises(ParameterError, match="The 'shards' parameter of IndexSettings"):
        IndexSettings(shards=0)
    with pytest.raises(ParameterError, match="The 'n_shards' parameter of shard_bounds"):
        shard_bounds(10, 0)
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]  # never an empty shard
    idx = make_fused_index("early", MODS, backend="ivfpq",
                           settings=IndexSettings(exact_below=40, shards=2)).build(embs)
    sharded = idx.pieces_["all"].index
    assert isinstance(sharded, ShardedVectorIndex) and sharded.shard_kind == "ivfpq"
    # every shard is a copy of one trained index: same coarse centroids, the same codes
    # chosen on the sample (IVFPQIndex: plain or rows of equal norm)
    a, b = (s.index_.quantizer for s in sharded.shards)
    assert a.ntotal == b.ntotal
    assert sharded.shards[0].choice_ is not None
    assert len({(s.radius_, s.index_.metric_type, s.index_.d) for s in sharded.shards}) == 1
    # a shard travels to and from a worker by pickle (FAISS bytes), unchanged
    copy = pickle.loads(pickle.dumps(sharded))
    q = np.random.default_rng(0).normal(size=(3, sharded.dim)).astype(np.float32)
    for x, y in zip(copy.search(q, 7), sharded.search(q, 7), strict=True):
        np.testing.assert_array_equal(x, y)
