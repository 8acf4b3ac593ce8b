"""float16 vector storage: Embeddings helpers, float16 vs float32 models, save/load, updates, CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ModelError, ParameterError
from prodfusion.fusion import EarlyFusion, make_fuser
from prodfusion.index import FusedIndex, IndexSettings
from prodfusion.recommender import Recommender
from tests.index.conftest import make_planted

QUERIES = [f"{i:08d}" for i in range(0, 600, 7)]
SUBSETS = [None, ("text",), ("image", "clicks")]
#: float16 keeps 11 significant bits: a cosine moves by a few 1e-4 at most on this data.
TOL = 1e-3
ANN = IndexSettings(exact_below=0, reduce_dim=None, ef_search=1024, min_candidates=64)


@pytest.fixture(scope="module")
def planted():
    return make_planted(np.random.default_rng(7))


@pytest.fixture(scope="module")
def pair(planted):
    """The same planted data as a float32 and a float16 model (exact search)."""
    catalog, embs, _, _ = planted
    return (Recommender.from_embeddings(catalog, embs, index="exact"),
            Recommender.from_embeddings(catalog, embs, index="exact", vector_dtype="float16"))


def assert_topk_close(ref: Recommender, got_ids, got_scores, queries, fusion, mods):
    """``got`` is a top-k of the float32 model up to float16 rounding.

    Scores match the float32 top-k position by position within TOL, and every returned
    product's float32 score is within TOL of the score it was returned with; so ids may
    differ only between candidates whose float32 scores are within TOL of each other.
    """
    ref_ids, ref_scores = ref.similar_batch(queries, 10, fusion=fusion, modalities=mods)
    np.testing.assert_array_equal(np.isfinite(got_scores), np.isfinite(ref_scores))
    fin = np.isfinite(ref_scores)
    np.testing.assert_allclose(got_scores[fin], ref_scores[fin], atol=TOL)
    fuser = ref.fuser(fusion, mods)
    for q, ids, s in zip(queries, got_ids, got_scores, strict=True):
        ok = np.array([i is not None for i in ids])
        rows = ref.catalog.rows_of(list(ids[ok]))
        true = fuser.similarity([ref.catalog.row_of(q)], rows)[0]
        np.testing.assert_allclose(s[ok], true, atol=TOL)
    same = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(got_ids, ref_ids, strict=True)])
    assert same >= 0.95  # ties within TOL are rare: almost every list is the same set


# ----------------------------------------------------------------- Embeddings
def test_embeddings_keep_float16_and_convert_the_rest():
    v16 = np.arange(12, dtype=np.float16).reshape(4, 3) + 1
    e = Embeddings(v16, np.ones(4, bool), "t")
    assert e.vectors.dtype == np.float16 and e.vector_dtype == "float16"
    assert np.shares_memory(e.vectors, v16)  # kept as it is, not copied
    for dt in (np.float64, np.int64, np.float32):
        assert Embeddings(v16.astype(dt), np.ones(4, bool), "t").vectors.dtype == np.float32
    r = e.rows([3, 0])
    assert r.dtype == np.float32 and r.tolist() == [[10, 11, 12], [1, 2, 3]]
    blocks = list(e.chunks(3))
    assert [lo for lo, _ in blocks] == [0, 3]
    assert all(b.dtype == np.float32 for _, b in blocks)
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), v16.astype(np.float32))


def test_float16_memmap_is_not_converted_wholesale(tmp_path):
    v = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float16)
    v[3] = 0.0
    np.save(tmp_path / "v.npy", v)
    mm = np.load(tmp_path / "v.npy", mmap_mode="c")
    mask = np.ones(50, bool)
    mask[3] = False
    e = Embeddings(mm, mask, "t")
    assert e.vectors.dtype == np.float16 and np.shares_memory(e.vectors, mm)


def test_astype_round_trip_and_absent_rows():
    v = np.random.default_rng(1).normal(size=(70_000, 4)).astype(np.float32)  # > one chunk
    mask = np.ones(len(v), bool)
    mask[[0, 69_999]] = False
    e = Embeddings(v, mask, "t")
    h = e.astype("float16")
    assert h.vectors.dtype == np.float16 and h.mask is e.mask and h.spec == "t"
    np.testing.assert_allclose(h.rows(slice(None)), e.vectors, rtol=2**-11, atol=1e-7)
    assert not h.vectors[[0, 69_999]].any()
    assert e.astype("float32") is e and h.astype(np.float16) is h
    back = h.astype("float32")
    assert back.vectors.dtype == np.float32
    np.testing.assert_array_equal(back.vectors, h.vectors.astype(np.float32))


def test_astype_refuses_values_float16_cannot_hold():
    v = np.ones((3, 2), np.float32)
    v[1, 0] = 1e6
    with pytest.raises(DataError, match=r"^t: vector of catalog row 1 has values beyond float16's range \(±65504\); store these vectors as float32"):
        Embeddings(v, np.ones(3, bool), "t").astype("float16")
    v = np.ones((3, 2), np.float32)
    v[2] = 1e-9
    with pytest.raises(DataError, match=r"^t: vector of catalog row 2 becomes all zeros in float16"):
        Embeddings(v, np.ones(3, bool), "t").astype("float16")
    with pytest.raises(ParameterError, match=r"^The 'vector_dtype' parameter of Embeddings.astype\(\) must be one of \['float32', 'float16'\]. Got 'float64' instead."):
        Embeddings(v, np.ones(3, bool), "t").astype("float64")


def test_fusers_never_write_into_the_given_vectors(planted):
    _, embs, _, _ = planted
    before = {m: e.vectors.copy() for m, e in embs.items()}
    EarlyFusion(modalities=tuple(embs)).fit(embs)
    make_fuser("intermediate", embs, tuple(embs))
    for m, e in embs.items():
        np.testing.assert_array_equal(e.vectors, before[m])


# ----------------------------------------------------------------- float16 vs float32 models
@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
@pytest.mark.parametrize("mods", SUBSETS)
def test_float16_model_matches_float32_exact(pair, fusion, mods):
    ref, half = pair
    assert all(e.vectors.dtype == np.float16 for e in half.embeddings_.values())
    ids, scores = half.similar_batch(QUERIES, 10, fusion=fusion, modalities=mods)
    assert_topk_close(ref, ids, scores, QUERIES, fusion, mods)


def test_float16_normalized_early_and_late_clusters(planted):
    catalog, embs, _, _ = planted
    ref = Recommender.from_embeddings(catalog, embs, normalize=True)
    half = Recommender.from_embeddings(catalog, embs, normalize=True, vector_dtype="float16")
    for m in embs:  # k-means++ on float16 vectors finds the same planted clusters here
        np.testing.assert_array_equal(half.late_labels_[m], ref.late_labels_[m])
    ids, scores = half.similar_batch(QUERIES, 10, fusion="early")
    assert_topk_close(ref, ids, scores, QUERIES, "early", None)


@pytest.mark.parametrize("fusion", ["early", "intermediate", "late"])
def test_float16_model_on_hnsw(pair, planted, fusion):
    catalog, embs, _, _ = planted
    ref, half_exact = pair
    half = Recommender.from_embeddings(catalog, embs, index="hnsw", index_settings=ANN,
                                       vector_dtype="float16")
    assert isinstance(half.searcher(fusion), FusedIndex)
    ids, scores = half.similar_batch(QUERIES, 10, fusion=fusion)
    assert_topk_close(ref, ids, scores, QUERIES, fusion, None)
    # Against the float16 model's own exact search, the index is exact (re-scored).
    ex_ids, ex_scores = half_exact.similar_batch(QUERIES, 10, fusion=fusion)
    np.testing.assert_allclose(scores, ex_scores, atol=1e-5)


def test_bad_vector_dtype_is_refused():
    with pytest.raises(ParameterError, match=r"^The 'vector_dtype' parameter of Recommender\(\) must be one of \['float32', 'float16'\]. Got 'float64' instead."):
        Recommender(vector_dtype="float64")


# ----------------------------------------------------------------- save / load
def test_save_load_keeps_float16_on_disk(pair, tmp_path):
    ref, half = pair
    p32, p16 = ref.save(tmp_path / "m32"), half.save(tmp_path / "m16")
    manifest = json.loads((p16 / "manifest.json").read_text())
    assert manifest["settings"]["vector_dtype"] == "float16"
    assert json.loads((p32 / "manifest.json").read_text())["settings"]["vector_dtype"] == "float32"
    for m, e in half.embeddings_.items():
        on_disk = np.load(p16 / f"emb_{m}.npy", mmap_mode="r")
        assert on_disk.dtype == np.float16 and on_disk.shape == e.vectors.shape
        s16, s32 = (p16 / f"emb_{m}.npy").stat().st_size, (p32 / f"emb_{m}.npy").stat().st_size
        assert abs(s16 - s32 / 2) <= 128  # half, up to the .npy header
    loaded = Recommender.load(p16)
    assert loaded.vector_dtype == "float16"
    for e in loaded.embeddings_.values():
        assert e.vectors.dtype == np.float16 and isinstance(e.vectors.base, np.memmap)
    for fusion in ("early", "intermediate", "late"):
        a_ids, a_s = half.similar_batch(QUERIES[:10], 10, fusion=fusion)
        b_ids, b_s = loaded.similar_batch(QUERIES[:10], 10, fusion=fusion)
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_array_equal(a_s, b_s)
    # Saving a loaded float16 model writes float16 again.
    again = loaded.save(tmp_path / "again")
    assert np.load(again / "emb_text.npy", mmap_mode="r").dtype == np.float16


def test_older_manifest_without_dtype_loads_as_float32(pair, tmp_path):
    ref, half = pair
    out = ref.save(tmp_path / "old")
    mpath = out / "manifest.json"
    manifest = json.loads(mpath.read_text())
    del manifest["settings"]["vector_dtype"]  # as written before float16 storage existed
    mpath.write_text(json.dumps(manifest))
    loaded = Recommender.load(out)
    assert loaded.vector_dtype == "float32"
    assert all(e.vectors.dtype == np.float32 for e in loaded.embeddings_.values())
    # A manifest that contradicts the arrays is refused, naming the file.
    manifest["settings"]["vector_dtype"] = "float16"
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"emb_text.npy: vectors are float32 but the manifest says float16; the folder is damaged"):
        Recommender.load(out)
    manifest["settings"]["vector_dtype"] = "bfloat16"
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"settings.vector_dtype is 'bfloat16'; expected 'float32' or 'float16'"):
        Recommender.load(out)


# ----------------------------------------------------------------- incremental updates
@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_add_products_and_update_embeddings_keep_float16(planted, index):
    catalog, embs, cats, _ = planted
    old = np.arange(550)
    new = np.arange(550, 600)
    rec = Recommender.from_embeddings(
        Catalog(catalog.frame[:550], source="planted"), {m: e.take(old) for m, e in embs.items()},
        index=index, index_settings=ANN, vector_dtype="float16",
    ).build_index()
    # New products arrive as float32 (as encoders produce them), without clicks.
    rec.add_products(Catalog(catalog.frame[550:], source="planted"),
                     {m: embs[m].take(new) for m in ("text", "image")})
    assert all(e.vectors.dtype == np.float16 for e in rec.embeddings_.values())
    assert not rec.embeddings_["clicks"].mask[550:].any()
    ref = Recommender.from_embeddings(catalog, {
        "text": embs["text"], "image": embs["image"],
        "clicks": Embeddings(embs["clicks"].vectors.copy(), np.r_[embs["clicks"].mask[:550],
                                                         np.zeros(50, bool)], "clicks"),
    }, index="exact")
    ids, scores = rec.similar_batch(["00000560", "00000590"], 10, fusion="intermediate")
    assert_topk_close(ref, ids, scores, ["00000560", "00000590"], "intermediate", None)
    # Replacing a modality with float32 vectors keeps the model float16.
    clicks = Embeddings(embs["clicks"].vectors[::-1].copy(), embs["clicks"].mask[::-1].copy(),
                        "clicks")
    rec.update_embeddings({"clicks": clicks})
    assert rec.embeddings_["clicks"].vectors.dtype == np.float16
    np.testing.assert_allclose(rec.embeddings_["clicks"].rows(slice(None)), clicks.vectors,
                               rtol=2**-11, atol=1e-7)
    assert rec.manifest_["settings"]["vector_dtype"] == "float16"


# ----------------------------------------------------------------- CLI
def test_cli_build_vector_dtype_float16(tmp_path, capsys):
    frame = pl.DataFrame({"product_id": [f"{i:04d}" for i in range(8)],
                          "title": ["red bag", "black bag", "leather bag", "small bag",
                                    "running shoe", "white sneaker", "leather boot", "sandal"],
                          "category": ["bags"] * 4 + ["shoes"] * 4})
    frame.write_csv(tmp_path / "catalog.csv")
    assert main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--image-col", "",
                 "--image", "none", "--cache-dir", "none", "--vector-dtype", "float16",
                 "--out", str(tmp_path / "model")]) == 0
    assert np.load(tmp_path / "model" / "emb_text.npy", mmap_mode="r").dtype == np.float16
    rec = Recommender.load(tmp_path / "model")
    assert rec.vector_dtype == "float16"
    ids, _ = rec.similar("0000", k=3)
    assert len(ids) == 3 and "0000" not in ids
    with pytest.raises(SystemExit):
        main(["build", "--catalog", "x.csv", "--out", "m", "--vector-dtype", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err
