"""EmbeddingCache: storage, consistency, and encoders re-encoding only what changed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from prodfusion.encoders import EmbeddingCache, content_key, make_encoder
from prodfusion.errors import DataError, ModelError
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
    # Storage is .npy + keys text, no pickles.
    files = sorted(p.suffix for p in (tmp_path / "c").iterdir())
    assert files == [".json", ".npy", ".txt"]
    arr = np.load(next((tmp_path / "c").glob("*.npy")), allow_pickle=False)
    assert arr.shape == (3, 2)


def test_interrupted_write_keeps_a_consistent_prefix(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", K[:2], np.eye(2, dtype=np.float32))
    keys_file = next(tmp_path.glob("*.keys.txt"))
    old_keys = keys_file.read_text()
    cache.put("enc", K[2:4], 2 * np.eye(2, dtype=np.float32))
    # Crash after the matrix was replaced but before the keys file was: old keys, new matrix.
    keys_file.write_text(old_keys)
    v, found = cache.get("enc", K)
    assert found.tolist() == [True, True, False, False]
    assert v[:2].tolist() == [[1, 0], [0, 1]]


def test_matrix_shorter_than_keys_is_ignored_with_a_warning(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", K[:2], np.eye(2, dtype=np.float32))
    np.save(next(tmp_path.glob("*.npy")), np.ones((1, 2), dtype=np.float32))
    v, found = cache.get("enc", K[:2])
    assert not found.any()
    assert "does not match its keys file" in caplog.text


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
