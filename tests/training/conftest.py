"""Tiny teachers, students and parallel data built in the tests (no downloads, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

EN = ["red", "black", "white", "blue", "dress", "bike", "shoe", "lamp", "big", "small", "old", "new"]
DE = ["rot", "schwarz", "weiss", "blau", "kleid", "rad", "schuh", "lampe", "gross", "klein", "alt", "neu"]
DIM = 16


def word_tokenizer(words):
    """A whitespace word-level ``tokenizers.Tokenizer`` over ``words`` (+ [UNK] = id 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = {}
    while len(out) < n:
        idx = rng.choice(len(EN), size=int(rng.integers(2, 4)), replace=False)
        out[" ".join(EN[i] for i in idx)] = " ".join(DE[i] for i in idx)
    return list(out.items())


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """An English-only static teacher ending in Normalize, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer

    from prodfusion.training.distill_models import st_modules

    StaticEmbedding, _, Normalize, _ = st_modules()
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(len(EN) + 1, DIM)).astype(np.float32)
    weights[0] = 0.0  # [UNK]: the teacher knows nothing of German
    model = SentenceTransformer(modules=[StaticEmbedding(word_tokenizer(EN),
                                                         embedding_weights=torch.from_numpy(weights)),
                                         Normalize()], device="cpu")
    path = tmp_path_factory.mktemp("teacher") / "teacher"
    model.save(str(path))
    return path


@pytest.fixture(scope="session")
def student_tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    word_tokenizer(EN + DE).save(str(path))
    return path


@pytest.fixture
def parallel_file(tmp_path):
    f = tmp_path / "toy-en-de.tsv"
    f.write_text("".join(f"{e}\t{d}\n" for e, d in pairs(60)), encoding="utf-8")
    return f
