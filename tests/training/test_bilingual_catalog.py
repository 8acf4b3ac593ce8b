"""A student distilled on English/Turkish title pairs finds a Turkish title's English twin
among its top 15 in a bilingual catalog (text-only Recommender, planted answer)."""

from __future__ import annotations

import numpy as np

from prodfusion.data.synthetic_sts import bilingual_titles
from prodfusion.training import DistillConfig, ParallelData, distill
from tests.training.conftest import word_tokenizer


def _words(titles):
    return sorted({w for t in titles for w in t.lower().split()})


def test_turkish_titles_find_their_english_twins(tmp_path):
    import polars as pl
    import torch
    from sentence_transformers import SentenceTransformer

    from prodfusion.data import read_catalog
    from prodfusion.recommender import Recommender
    from prodfusion.training.distill_models import st_modules

    StaticEmbedding, _, _, _ = st_modules()
    en, tr = bilingual_titles(400, seed=5)
    en, tr = [t.lower() for t in en], [t.lower() for t in tr]
    en_words, all_words = _words(en), _words(en + tr)
    # An English-only teacher: random word vectors, Turkish words unknown to it.
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(len(en_words) + 1, 32)).astype(np.float32)
    weights[0] = 0
    teacher = SentenceTransformer(modules=[StaticEmbedding(
        word_tokenizer(en_words), embedding_weights=torch.from_numpy(weights))], device="cpu")
    teacher.save(str(tmp_path / "teacher"))
    word_tokenizer(all_words).save(str(tmp_path / "tokenizer.json"))

    train = ParallelData(en[:300], tr[:300], ["en-tr"] * 300, [])
    cfg = DistillConfig(teacher=f"st:{tmp_path / 'teacher'}",
                        student=f"static:{tmp_path / 'tokenizer.json'}", static_dim=32,
                        epochs=8, batch_size=16, learning_rate=1.0, warmup_ratio=0.0, dev_size=0)
    distill(train, tmp_path / "student", cfg, progress=False)

    # The catalog: the 100 products never seen in training, each in both languages.
    ids = [f"en{i}" for i in range(300, 400)] + [f"tr{i}" for i in range(300, 400)]
    pl.DataFrame({"product_id": ids, "title": en[300:] + tr[300:]}).write_csv(tmp_path / "c.csv")
    catalog = read_catalog(tmp_path / "c.csv", category_col=None)
    rec = Recommender(text=f"st:{tmp_path / 'student'}", image=None, clicks=None,
                      progress=False).build(catalog)
    got, _ = rec.similar_batch([f"tr{i}" for i in range(300, 400)], k=15)
    hits = [f"en{300 + j}" in set(row) for j, row in enumerate(got)]
    assert np.mean(hits) >= 0.95
