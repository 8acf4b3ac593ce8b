"""A model's fused indexes built as shards on Ray tasks (``build_index(executor=…)``,
``prodfusion build --engine ray``): the same answers as shards built locally and as one index
per piece, saved with the list of shards and loaded back."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from prodfusion.engine import make_executor
from prodfusion.index import IndexSettings
from prodfusion.recommender import Recommender
from tests.index.conftest import make_planted, write_catalog_csv

pytestmark = pytest.mark.slow

# ef_search above every shard's size: exhaustive per shard, so the three builds must agree
SETTINGS = IndexSettings(exact_below=40, reduce_dim=None, ef_search=1024, min_candidates=64,
                         shards=3)
QUERIES = [f"{i:08d}" for i in range(0, 700, 19)]


def test_index_shards_on_ray_equal_local_shards_and_one_index(ray_local, tmp_path):
    cat, embs, *_ = make_planted(np.random.default_rng(11), n=700)
    fusions = ["early", "intermediate"]
    on_ray = Recommender.from_embeddings(cat, embs, index="hnsw", index_settings=SETTINGS)
    on_ray.build_index(fusions, executor=make_executor("ray", num_cpus_per_worker=0.5))
    local = Recommender.from_embeddings(cat, embs, index="hnsw", index_settings=SETTINGS)
    local.build_index(fusions)
    one = Recommender.from_embeddings(cat, embs, index="hnsw",
                                      index_settings=dataclasses.replace(SETTINGS, shards=1))
    exact = Recommender.from_embeddings(cat, embs, index="exact")
    piece = on_ray.searcher("early").pieces_["all"].index
    assert piece.kind == "sharded" and len(piece.shards) == 3
    assert [len(s) for s in piece.shards] == \
        [len(s) for s in local.searcher("early").pieces_["all"].index.shards]
    loaded = Recommender.load(on_ray.save(tmp_path / "m"))
    for fusion in fusions:
        ids, scores = on_ray.similar_batch(QUERIES, 10, fusion=fusion)
        for other in (local, one, exact, loaded):
            o_ids, o_scores = other.similar_batch(QUERIES, 10, fusion=fusion)
            assert ids.tolist() == o_ids.tolist()
            np.testing.assert_allclose(scores, o_scores, rtol=0, atol=1e-5)


def test_cli_build_on_ray_builds_index_shards(ray_local, tmp_path):
    from prodfusion.cli import main

    csv = tmp_path / "catalog.csv"
    write_catalog_csv(csv, 8_300)  # pieces need >= 2 x exact_below (4,096) rows for 2 shards
    out = tmp_path / "m"
    assert main(["build", "--catalog", str(csv), "--text", "none", "--image", "none",
                 "--no-clicks", "--lexical", "tfidf:32", "--fusion", "early", "--index", "hnsw",
                 "--cache-dir", "none", "--engine", "ray", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["index_settings"]["shards"] == 2  # default: the Ray CPUs
    piece = manifest["index"]["early/lexical"]["pieces"]["all"]
    assert piece["kind"] == "sharded" and [(s["lo"], s["hi"]) for s in piece["shards"]] == [
        (0, 4150), (4150, 8300)]
    rec = Recommender.load(out)
    queries = list(rec.catalog.ids[::97])
    ids, scores = rec.similar_batch(queries, 10)
    exact = Recommender.from_embeddings(rec.catalog, rec.embeddings_, fusion="early",
                                        index="exact")
    e_ids, e_scores = exact.similar_batch(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), e_ids.tolist(),
                                                                 strict=True)])
    assert recall >= 0.95
    # what is returned is exactly scored: the exact fuser's score of each listed product
    rows = rec.catalog.rows_of(queries)
    fuser = exact.fuser("early")
    for q, r_ids, s in zip(rows, ids.tolist(), scores, strict=True):
        true = fuser.similarity([q], rec.catalog.rows_of(r_ids))[0]
        np.testing.assert_allclose(s, true, atol=1e-5)
