"""The lexical modality (character n-gram TF-IDF + TruncatedSVD) and the norm-ratio warning."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pytest

from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.encoders.lexical import LexicalEncoder
from prodfusion.errors import ParameterError
from prodfusion.fusion.weights import norm_ratio_warnings
from prodfusion.recommender import Prod2VecParams, Recommender

TITLES = ["20 den 1p Stockings", "40 den 2p Tights", "20 den 2p Tights", "Box 4p Socks",
          "Flirty Posh necklace", "Cool Kennedy necklace", "Class Luca Necklace",
          "Henrik ballerina", "Basic Ronaldo necklace", "40 den 1p Tights"]


def _catalog():
    return Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(len(TITLES))],
                                 "title": TITLES}))


def test_lexical_vectors_rank_shared_tokens_first():
    e = LexicalEncoder(dim=8).encode(_catalog())
    assert e.dim == 8 and e.n_present == len(TITLES)
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1.0, atol=1e-5)
    sim = e.vectors @ e.vectors.T
    np.fill_diagonal(sim, -1)
    necklaces = [4, 5, 6, 8]
    for i in necklaces:  # the nearest title of a necklace is a necklace
        assert int(np.argmax(sim[i])) in necklaces
    assert int(np.argmax(sim[1])) in (2, 9)  # "40 den 2p Tights" → another tights title


def test_lexical_modality_builds_fuses_saves_and_loads(tmp_path):
    cat = _catalog()
    sessions = Sessions.from_lists([["p0", "p1"], ["p1", "p2", "p9"], ["p4", "p5"]])
    rec = Recommender(text=None, image=None, lexical="tfidf:6", fusion="intermediate",
                      prod2vec=Prod2VecParams(vector_size=4, epochs=1, workers=1)
                      ).build(cat, sessions)
    assert rec.modalities == ("clicks", "lexical")
    ids, _ = rec.similar("p4", k=3, modalities=["lexical"])
    assert set(ids) <= {"p5", "p6", "p8"}
    ids, scores, why = rec.similar("p4", k=3, weights={"lexical": 1, "clicks": 0}, explain=True)
    assert why[0]["modalities"]["clicks"]["weight"] == 0.0
    loaded = Recommender.load(rec.save(tmp_path / "m"))
    assert loaded.embeddings_["lexical"].spec == "lexical:tfidf-nfkc-char3-5-svd6"
    assert loaded.similar("p4", k=3, modalities=["lexical"])[0].tolist() == \
        rec.similar("p4", k=3, modalities=["lexical"])[0].tolist()
    with pytest.raises(ParameterError, match=r"'lexical' parameter of build must be 'tfidf' "
                                             r"or 'tfidf:DIM'"):
        Recommender(lexical="bm25")


def test_early_fusion_warns_when_a_modality_is_effectively_ignored(caplog):
    rng = np.random.default_rng(0)
    n = 50
    text = rng.normal(size=(n, 16)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    clicks = (rng.normal(size=(n, 16)) * 0.03 / 4).astype(np.float32)  # norms ~0.03
    embs = {"text": Embeddings(text, np.ones(n, bool), "t"),
            "clicks": Embeddings(clicks, np.ones(n, bool), "c")}
    w = norm_ratio_warnings(embs, ("text", "clicks"))
    assert len(w) == 1 and w[0].startswith("early fusion effectively ignores 'clicks'")
    assert norm_ratio_warnings(embs, ("text",)) == []
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                                "title": [f"item {i} {'xyz'[i % 3]}" for i in range(n)]}))
    with caplog.at_level(logging.WARNING, logger="prodfusion.recommender"):
        rec = Recommender(text=None, image=None, clicks=None, lexical="tfidf:4").build(cat)
    assert rec.build_info_["warnings"] == []  # one modality: nothing to ignore


def test_the_svd_is_fitted_on_a_sample_above_max_fit_rows_and_projects_every_title():
    rng = np.random.default_rng(0)
    titles = [f"{TITLES[i % len(TITLES)]} {rng.integers(100)}" for i in range(300)]
    cat = Catalog(pl.DataFrame({"product_id": [f"q{i}" for i in range(300)], "title": titles}))
    full = LexicalEncoder(dim=8)  # the default cap (200,000) is far above: every title
    e_full = full.encode(cat)
    assert full.fit_info_["svd_rows"] == 300
    part = LexicalEncoder(dim=8, max_fit_rows=120)
    e_part = part.encode(cat)
    assert part.fit_info_["svd_rows"] == 120 and e_part.n_present == 300
    np.testing.assert_allclose(np.linalg.norm(e_part.vectors, axis=1), 1.0, atol=1e-5)
    # seeded: the same sample and projection twice
    np.testing.assert_array_equal(LexicalEncoder(dim=8, max_fit_rows=120).encode(cat).vectors,
                                  e_part.vectors)
    # the sample's space keeps the catalog's similarities (a product type's titles together)
    s_full, s_part = e_full.vectors @ e_full.vectors.T, e_part.vectors @ e_part.vectors.T
    iu = np.triu_indices(300, 1)
    assert np.corrcoef(s_full[iu], s_part[iu])[0, 1] > 0.9
    with pytest.raises(ParameterError, match="max_fit_rows"):
        LexicalEncoder(max_fit_rows=1)


#: One product each, written in two notations a shop system may mix: full-width letters,
#: digits and an ideographic space; half-width katakana; a decomposed accent; a ligature.
TWINS = [("ACME Running shoe 26.5cm", "ＡＣＭＥ　Ｒｕｎｎｉｎｇ　ｓｈｏｅ　２６．５ｃｍ"),
         ("ランニングシューズ 赤 M", "ﾗﾝﾆﾝｸﾞｼｭｰｽﾞ 赤 Ｍ"),
         ("Café crème mug", "Cafe\u0301 cre\u0300me mug"),
         ("Office file folder", "Oﬃce ﬁle folder")]
OTHERS = ["Winter jacket blue", "ダウンジャケット 黒 L", "Tea pot white", "Leather wallet"]


def _twins_catalog():
    titles = [t for pair in TWINS for t in pair] + OTHERS
    return Catalog(pl.DataFrame({"product_id": [f"t{i}" for i in range(len(titles))],
                                 "title": titles}))


def test_a_title_in_another_notation_gets_the_same_lexical_vector_and_ngrams():
    from prodfusion.fusion.ngrams import TitleNgrams

    cat = _twins_catalog()
    e = LexicalEncoder(dim=6).encode(cat)
    assert e.spec == "lexical:tfidf-nfkc-char3-5-svd6"
    g = TitleNgrams.from_titles(cat.titles)
    for i in range(len(TWINS)):
        a, b = 2 * i, 2 * i + 1
        np.testing.assert_allclose(e.vectors[a], e.vectors[b], atol=1e-6)
        assert g.scores([a], [b])[0, 0] == pytest.approx(1.0, abs=1e-5)
    # lower case only (the encoder of older folders, the tfidf reference): strangers
    raw = LexicalEncoder(dim=11, normalize=False).encode(cat)
    raw_g = TitleNgrams.from_titles(cat.titles, normalize=False)
    for i in range(len(TWINS)):
        a, b = 2 * i, 2 * i + 1
        assert raw_g.scores([a], [b])[0, 0] < 0.9
        assert not np.allclose(raw.vectors[a], raw.vectors[b], atol=1e-3)


def test_a_folder_written_before_normalisation_keeps_encoding_titles_as_it_did(tmp_path):
    import json

    cat = _twins_catalog()
    rec = Recommender(text=None, image=None, clicks=None, lexical="tfidf:11", ngrams=True,
                      fusion="intermediate").build(cat)
    folder = rec.save(tmp_path / "m")
    # the folder as the code before NFKC wrote it: its specs carry no "nfkc"
    man = json.loads((folder / "manifest.json").read_text())
    man["encoders"]["lexical"]["spec"] = "lexical:tfidf-char3-5-svd11"
    man["files"]["ngrams"]["spec"] = "ngrams:tfidf-char3-5"
    (folder / "manifest.json").write_text(json.dumps(man))
    old = Recommender.load(folder)
    assert not old.lexical_encoder_.normalize and not old.ngrams_.normalize
    new = Recommender.load(rec.save(tmp_path / "m2"))
    assert new.lexical_encoder_.normalize and new.ngrams_.normalize
    twin = Catalog(pl.DataFrame({"product_id": ["x"], "title": [TWINS[0][1]]}))
    for r in (old, new):
        r.add_products(twin)  # encoded by the model's own encoders
    # the new folder reads the full-width twin as its ASCII product; the old one as before
    np.testing.assert_allclose(new.embeddings_["lexical"].vectors[-1],
                               new.embeddings_["lexical"].vectors[0], atol=1e-6)
    assert new.ngrams_.scores([len(cat)], [0])[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert old.ngrams_.scores([len(cat)], [0])[0, 0] < 0.9
    assert not np.allclose(old.embeddings_["lexical"].vectors[-1],
                           old.embeddings_["lexical"].vectors[0], atol=1e-3)
    again = Recommender.load(old.save(tmp_path / "m3"))  # and keeps saying so
    assert again.embeddings_["lexical"].spec == "lexical:tfidf-char3-5-svd11"
    assert again.ngrams_.spec == "ngrams:tfidf-char3-5" and not again.ngrams_.normalize


def test_chinese_two_character_words_count_without_spaces_and_latin_titles_keep_their_ngrams():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from prodfusion.encoders.lexical import title_terms
    from prodfusion.fusion.ngrams import TitleNgrams

    # the same product type (背包, a backpack) in two titles written without spaces: no
    # 3-gram in common, the pair 背包 is
    titles = ["特步背包蓝色", "李宁背包红色", "耐克手表白色"]
    g = TitleNgrams.from_titles(titles)
    old = TitleNgrams.from_titles(titles, normalize=False)
    assert old.scores([0], [1])[0, 0] == 0.0 and g.scores([0], [1])[0, 0] > 0.0
    assert g.scores([0], [2])[0, 0] == 0.0 and g.neighbours(0).tolist() == [1]
    assert "背包" in title_terms(titles[0]) and "背包" not in old.vocabulary
    # a title without those scripts: exactly scikit-learn's char_wb n-grams of its lower case
    char_wb = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).build_analyzer()
    for t in TITLES + ["Café crème — 2 × 500 ml", "İstanbul ŞAL"]:
        assert title_terms(t) == char_wb(t), t
