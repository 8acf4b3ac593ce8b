"""EmbeddingCache: storage, consistency, and encoders re-encoding only what changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from prodfusion.encoders import EmbeddingCache, content_key, make_encoder
from prodfusion.encoders.cache import _slug
from prodfusion.errors import DataError, ModelError, ParameterError
from tests.encoders.conftest import draw, make_catalog

K = [content_key(s) for s in ("a", "b", "c", "d")]


def test_put_then_get_returns_vectors_by_key(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    v, found = cache.get("enc", K[:2])
    assert v.shape == (2, 0) and not found.any()
    cache.put("enc", K[:2], np.array([[1, 2], [3, 4]], dtype=np.float32))
    cache.put("enc", K[1:3], np.array([[30, 40], [5, 6]], dtype=np.float32))  # b overwritten
    v, found = cache.get("enc", [K[2], K[3], K[0], K[1]])
    assert found.tolist() == [True, False, True, True]
    assert v.tolist() == [[5, 6], [0, 0], [1, 2], [30, 40]]
    # Namespaces are separate.
    assert not cache.get("other", K[:1])[1].any()
    assert cache.namespaces() == ["enc"]
    # Storage is .npy + keys text, one shard per put, no pickles; nothing is rewritten.
    files = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "c").iterdir())
    assert files == ["000001.keys.txt", "000001.npy", "000002.keys.txt", "000002.npy", "json"]
    shapes = [np.load(p, allow_pickle=False).shape for p in sorted((tmp_path / "c").glob("*.npy"))]
    assert shapes == [(2, 2), (2, 2)]


def test_repeated_keys_in_one_lookup(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", K[:2], np.array([[1, 2], [3, 4]]))
    v, found = cache.get("enc", [K[1], K[3], K[1]])
    assert found.tolist() == [True, False, True] and v.tolist() == [[3, 4], [0, 0], [3, 4]]


def test_many_puts_then_get_and_compact_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    keys = [content_key(str(i)) for i in range(40)]
    cache = EmbeddingCache(tmp_path)
    expected: dict[str, np.ndarray] = {}
    for _ in range(12):  # overlapping writes: the latest vector of every key must win
        pick = rng.choice(40, size=7, replace=False)
        vectors = rng.normal(size=(7, 5)).astype(np.float32)
        cache.put("enc", [keys[i] for i in pick], vectors)
        expected.update({keys[i]: vectors[j] for j, i in enumerate(pick)})
    assert cache.n_shards("enc") == 12
    wanted = keys + [content_key("never")]
    before, found = cache.get("enc", wanted)
    assert found.tolist() == [k in expected for k in wanted]
    for k, row in zip(wanted, before, strict=True):
        np.testing.assert_array_equal(row, expected.get(k, np.zeros(5, dtype=np.float32)))

    assert cache.compact("enc") == len(expected)
    assert cache.n_shards("enc") == 1
    assert len(list(tmp_path.glob("*.npy"))) == 1 and len(list(tmp_path.glob("*.keys.txt"))) == 1
    after, found_after = cache.get("enc", wanted)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(found_after, found)
    # Writing after a compaction appends again, and still wins.
    cache.put("enc", keys[:1], np.full((1, 5), 7.0))
    assert cache.get("enc", keys[:1])[0].tolist() == [[7.0] * 5]


def test_namespace_is_compacted_when_it_has_too_many_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, max_shards=3)
    for i in range(3):
        cache.put("enc", K[i : i + 1], np.full((1, 2), float(i)))
    assert cache.n_shards("enc") == 3
    cache.put("enc", K[3:], np.full((1, 2), 3.0))  # a 4th shard: over the limit
    assert cache.n_shards("enc") == 1
    v, found = cache.get("enc", K)
    assert found.all() and v[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_half_written_or_damaged_shards_are_ignored_with_a_warning(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", K[:2], np.eye(2))
    cache.put("enc", K[2:3], np.ones((1, 2)))
    cache.put("enc", K[3:], np.ones((1, 2)))
    second, third = sorted(tmp_path.glob("*.keys.txt"))[1:]
    # Crash after the second shard's matrix was published but before its keys file was.
    second.unlink()
    # A keys file longer than its matrix (outside interference).
    third.write_text(third.read_text() + K[0] + "\n")
    v, found = cache.get("enc", K)
    assert found.tolist() == [True, True, False, False]
    assert v[:2].tolist() == [[1, 0], [0, 1]]
    assert "has no keys file (a write was interrupted); ignoring it" in caplog.text
    assert "does not match its keys file (2 keys, matrix (1, 2) float32); ignoring it" in caplog.text
    # Appending still works, and compaction clears the debris.
    cache.put("enc", K[2:3], np.full((1, 2), 5.0))
    assert cache.compact("enc") == 3
    assert len(list(tmp_path.glob("*.npy"))) == 1
    caplog.clear()
    v, found = cache.get("enc", K)
    assert found.tolist() == [True, True, True, False] and v[2].tolist() == [5.0, 5.0]
    assert caplog.text == ""


def test_unreadable_matrix_is_ignored_with_a_warning(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", K[:1], np.ones((1, 2)))
    cache.put("enc", K[1:2], np.ones((1, 2)))
    last = sorted(tmp_path.glob("*.npy"))[-1]
    last.write_bytes(last.read_bytes()[:50])  # truncated by a full disk
    _, found = cache.get("enc", K[:2])
    assert found.tolist() == [True, False]
    assert f"Embedding cache shard {last} is unreadable" in caplog.text


def test_single_file_layout_of_earlier_versions_is_read_as_shard_zero(tmp_path):
    slug = _slug("enc")
    np.save(tmp_path / f"{slug}.npy", np.array([[1, 2], [3, 4], [9, 9]], dtype=np.float32))
    # Earlier versions could leave a keys file that is a prefix of the matrix: still valid.
    (tmp_path / f"{slug}.keys.txt").write_text(f"{K[0]}\n{K[1]}\n")
    cache = EmbeddingCache(tmp_path)
    v, found = cache.get("enc", K[:3])
    assert found.tolist() == [True, True, False] and v[:2].tolist() == [[1, 2], [3, 4]]
    cache.put("enc", K[1:2], np.array([[30, 40]]))  # a newer shard overrides the old file
    assert cache.get("enc", K[:2])[0].tolist() == [[1, 2], [30, 40]]
    with pytest.raises(ModelError, match="holds 2-d vectors for 'enc' but the encoder now produces 3-d"):
        cache.put("enc", K[2:3], np.ones((1, 3)))
    assert cache.compact("enc") == 2
    assert not (tmp_path / f"{slug}.npy").exists() and not (tmp_path / f"{slug}.keys.txt").exists()
    assert cache.get("enc", K[:2])[0].tolist() == [[1, 2], [30, 40]]


def test_float16_cache_halves_the_files_and_returns_float32(tmp_path, caplog):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 64)).astype(np.float32)
    keys = [content_key(str(i)) for i in range(50)]
    full, half = EmbeddingCache(tmp_path / "32"), EmbeddingCache(tmp_path / "16", dtype="float16")
    full.put("enc", keys, vectors)
    half.put("enc", keys, vectors)
    got, found = half.get("enc", keys)
    assert found.all() and got.dtype == np.float32
    np.testing.assert_allclose(got, vectors, rtol=2**-11, atol=2**-25)  # float16 rounding
    assert not np.array_equal(got, vectors)  # really stored as float16
    (f32,), (f16,) = (tmp_path / "32").glob("*.npy"), (tmp_path / "16").glob("*.npy")
    assert np.load(f16).dtype == np.float16
    header = 128  # .npy header of a 2-D array
    assert f16.stat().st_size - header == (f32.stat().st_size - header) // 2 == 50 * 64 * 2
    assert json.loads(next((tmp_path / "16").glob("*.json")).read_text())["dtype"] == "float16"

    # A float32 cache object reads float16 shards; shards of both types mix; compaction
    # writes the compacting cache's type.
    mixed = EmbeddingCache(tmp_path / "16")
    mixed.put("enc", keys[:1], np.ones((1, 64)))
    got, _ = mixed.get("enc", keys[:2])
    assert got[0].tolist() == [1.0] * 64 and got[1].tolist() == vectors[1].astype(np.float16).tolist()
    half.compact("enc")
    assert np.load(next((tmp_path / "16").glob("*.npy"))).dtype == np.float16

    with pytest.raises(DataError, match=r"vector 1 overflows or vanishes in float16 \(largest magnitude 1e\+05\)"):
        half.put("enc", K[:2], np.array([[1.0, 2.0], [1e5, 0.0]]))
    with pytest.raises(DataError, match="vector 0 overflows or vanishes in float16"):
        half.put("enc", K[:1], np.array([[1e-9, 0.0]]))


def test_cache_settings_and_copies(tmp_path):
    half = EmbeddingCache(tmp_path, dtype="float16", max_shards=5)
    copy = EmbeddingCache(half)
    assert (copy.directory, copy.dtype, copy.max_shards) == (tmp_path, "float16", 5)
    assert EmbeddingCache(half, dtype="float32").dtype == "float32"
    assert os.fspath(half) == str(tmp_path) and Path(half) / "late" == tmp_path / "late"
    assert repr(half) == f"EmbeddingCache({str(tmp_path)!r}, dtype='float16')"
    with pytest.raises(ParameterError, match=r"The 'dtype' parameter of EmbeddingCache\(\) must be 'float32' or 'float16'. Got 'int8' instead."):
        EmbeddingCache(tmp_path, dtype="int8")
    with pytest.raises(ParameterError, match=r"The 'max_shards' parameter of EmbeddingCache\(\) must be an int >= 1. Got 0 instead."):
        EmbeddingCache(tmp_path, max_shards=0)


def test_put_refuses_bad_input(tmp_path):
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(DataError, match=r"got 2 keys but vectors of shape \(1, 2\)"):
        cache.put("enc", K[:2], np.ones((1, 2)))
    with pytest.raises(DataError, match="key 'red' is not a SHA-256 hex digest"):
        cache.put("enc", ["red"], np.ones((1, 2)))
    with pytest.raises(DataError, match="vectors contain NaN or Inf"):
        cache.put("enc", K[:1], np.array([[np.inf, 1.0]]))
    cache.put("enc", K[:1], np.ones((1, 2)))
    with pytest.raises(ModelError, match="holds 2-d vectors for 'enc' but the encoder now produces 3-d"):
        cache.put("enc", K[1:2], np.ones((1, 3)))


def _count_calls(enc, monkeypatch):
    calls: list[int] = []
    original = enc._embed

    def spy(batch):
        calls.append(len(batch))
        return original(batch)

    monkeypatch.setattr(enc, "_embed", spy)
    return calls


def test_text_encoder_reuses_cached_titles(tiny_st_path, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path / "cache")
    spec = f"st:{tiny_st_path}"
    catalog = make_catalog(["red dress", "blue shoe", "red dress"])
    first_enc = make_encoder(spec, cache=cache, progress=False)
    first_calls = _count_calls(first_enc, monkeypatch)
    first = first_enc.encode(catalog)
    assert sum(first_calls) == 2

    second_enc = make_encoder(spec, cache=cache, progress=False)
    second_calls = _count_calls(second_enc, monkeypatch)
    second = second_enc.encode(catalog)
    assert second_calls == []  # every title came from the cache
    assert second.info["n_cached"] == 2 and second.info["n_encoded"] == 0
    np.testing.assert_array_equal(second.vectors, first.vectors)

    # One new product: only its title is encoded.
    grown = make_catalog(["red dress", "blue shoe", "red dress", "laptop"])
    third = second_enc.encode(grown)
    assert second_calls == [1]
    np.testing.assert_array_equal(third.vectors[:3], first.vectors)
    # Free-text queries do not go through the cache unless asked.
    second_enc.encode_texts(["laptop"])
    assert second_calls == [1, 1]
    second_enc.encode_texts(["laptop"], use_cache=True)
    assert second_calls == [1, 1]


def test_image_encoder_reuses_cached_files_by_content(tiny_clip_path, image_dir, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path / "cache")
    spec = f"clip:{tiny_clip_path}"
    images = [image_dir / "red.jpg", image_dir / "blue.jpg", image_dir / "nope.jpg"]
    catalog = make_catalog(["a", "b", "c"], images)
    enc = make_encoder(spec, cache=cache, progress=False)
    calls = _count_calls(enc, monkeypatch)
    first = enc.encode(catalog)
    assert sum(calls) == 2 and first.mask.tolist() == [True, True, False]

    enc2 = make_encoder(spec, cache=cache, progress=False)
    calls2 = _count_calls(enc2, monkeypatch)
    second = enc2.encode(catalog)
    assert calls2 == []
    np.testing.assert_array_equal(second.vectors, first.vectors)
    assert second.mask.tolist() == [True, True, False] and second.info["n_missing"] == 1

    # Same bytes under a new name: a hit. Edited photo: a miss, re-encoded alone.
    shutil.copy(image_dir / "red.jpg", image_dir / "red_copy.jpg")
    draw("green_square").save(image_dir / "blue.jpg", quality=95)
    third = enc2.encode(make_catalog(["a", "b"], [image_dir / "red_copy.jpg", image_dir / "blue.jpg"]))
    assert calls2 == [1]
    np.testing.assert_array_equal(third.vectors[0], first.vectors[0])
    assert not np.allclose(third.vectors[1], first.vectors[1])
