"""``prodfusion build --index-param NAME=VALUE`` (thirty-fourth session): the approximate
indexes' ``IndexSettings`` from the command line, saved with the model and used by the
indexes it builds; bad input is refused before any work, naming the option."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from prodfusion.cli import main
from prodfusion.cli.engine_options import _INDEX_PARAM_NAMES, parse_index_params
from prodfusion.errors import ParameterError
from prodfusion.index import IndexSettings
from prodfusion.recommender import Recommender
from tests.index.conftest import write_catalog_csv


def _catalog(path, n: int) -> None:
    write_catalog_csv(path, n, seed=3)


def _build(tmp_path, out, *extra):
    return main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--text", "none",
                 "--image", "none", "--no-clicks", "--lexical", "tfidf:32", "--fusion",
                 "early", "--cache-dir", "none", "--out", str(out), *extra])


def test_every_index_setting_but_shards_can_be_named():
    names = {f.name for f in dataclasses.fields(IndexSettings)}
    assert set(_INDEX_PARAM_NAMES) == names - {"shards"}
    got = parse_index_params(["pq_m=16", "reduce-dim=none", "hnsw_storage=sq8",
                              "auto_hnsw_from=1_000"])
    assert (got.pq_m, got.reduce_dim, got.hnsw_storage, got.auto_hnsw_from) == (
        16, None, "sq8", 1000)
    d = IndexSettings()
    assert dataclasses.replace(got, pq_m=d.pq_m, reduce_dim=d.reduce_dim,
                               hnsw_storage=d.hnsw_storage,
                               auto_hnsw_from=d.auto_hnsw_from) == d
    assert parse_index_params(None) == IndexSettings()


def test_build_index_params_reach_the_saved_model_and_its_ivfpq_index(tmp_path):
    _catalog(tmp_path / "catalog.csv", 3_000)
    out = tmp_path / "m"
    assert _build(tmp_path, out, "--index", "ivfpq", "--index-fusions", "early",
                  "--index-param", "pq_m=8", "--index-param", "nprobe=4",
                  "--index-param", "exact_below=16") == 0
    saved = json.loads((out / "manifest.json").read_text())["settings"]["index_settings"]
    assert (saved["pq_m"], saved["nprobe"], saved["exact_below"]) == (8, 4, 16)
    rec = Recommender.load(out)
    assert (rec.index_settings.pq_m, rec.index_settings.nprobe) == (8, 4)
    index = rec.searcher("early").pieces_["all"].index
    assert index.kind == "ivfpq" and index.index_.pq.M == 8  # the codes FAISS built
    ids, _ = rec.similar_batch(list(rec.catalog.ids[:5]), 10)
    assert ids.shape == (5, 10)


@pytest.mark.parametrize("param, words", [
    ("pq_m", "NAME=VALUE"),
    ("colour=red", "unknown name 'colour'"),
    ("pq_m=many", "pq_m takes an int"),
    ("reduce_dim=wide", "reduce_dim takes an int or none"),
    ("pq_m=0", "'pq_m' parameter of IndexSettings() must be an int >= 1"),
    ("hnsw_storage=int4", "one of ['flat', 'sq8', 'fp16']"),
    ("shards=2", "use --index-shards"),
])
def test_bad_index_params_are_refused_before_any_work(tmp_path, capsys, param, words):
    _catalog(tmp_path / "catalog.csv", 50)
    out = tmp_path / "m"
    assert _build(tmp_path, out, "--index-param", param) == 2
    err = capsys.readouterr().err
    assert "--index-param" in err and words in err
    assert not out.exists()
    with pytest.raises(ParameterError, match="twice"):
        parse_index_params(["pq_m=8", "pq-m=16"])


def test_new_models_get_64_byte_ivfpq_codes_and_older_folders_keep_theirs(tmp_path):
    """The thirty-fourth session's default (64 codes of 8 bits, 32 before) reaches FAISS; a
    folder whose manifest says 32 (every folder built before) builds its indexes with 32."""
    from prodfusion.encoders.base import Embeddings
    from tests.index.conftest import make_planted

    cat, _, cats, _ = make_planted(np.random.default_rng(5), n=2_000)
    rng = np.random.default_rng(6)
    v = rng.normal(size=(20, 128))[cats] + rng.normal(size=(2_000, 128))
    embs = {"text": Embeddings(v.astype(np.float32), np.ones(2_000, bool), "text")}
    settings = IndexSettings(exact_below=16)
    assert settings.pq_m == 64
    new = Recommender.from_embeddings(cat, embs, fusion="early", index="ivfpq",
                                      index_settings=settings)
    new.similar(cat.ids[0], k=5)
    assert new.searcher("early").pieces_["all"].index.index_.pq.M == 64
    folder = new.save(tmp_path / "m")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["settings"]["index_settings"]["pq_m"] = 32  # as every earlier build wrote it
    for key in [k for k in manifest.get("index", {})]:
        manifest["index"].pop(key)  # and no saved index: built on first use
    (folder / "manifest.json").write_text(json.dumps(manifest))
    old = Recommender.load(folder)
    assert old.index_settings.pq_m == 32
    old.similar(cat.ids[0], k=5)
    assert old.searcher("early").pieces_["all"].index.index_.pq.M == 32


def test_index_params_on_an_exactly_searched_catalog_are_saved_with_a_note(tmp_path, capsys):
    _catalog(tmp_path / "catalog.csv", 300)
    out = tmp_path / "m"
    assert _build(tmp_path, out, "--index-param", "pq_m=8") == 0
    err = capsys.readouterr().err
    assert "--index-param: 300 products are searched exactly (--index auto" in err
    assert Recommender.load(out).index_settings.pq_m == 8
    assert _build(tmp_path, tmp_path / "m2") == 0  # no option, no note
    assert "--index-param" not in capsys.readouterr().err
