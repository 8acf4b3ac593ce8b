"""Tiny models built in the tests (no downloads, seconds): distillation teachers, students and
parallel data; a randomly initialised BERT sentence encoder and planted titles for adaptation and
categorization."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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


# ----------------------------------------------------------- adaptation and categorization
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def words_of(texts) -> list[str]:
    return sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})


def make_tiny_st(folder: Path, texts, *, hidden: int = 32, seed: int = 0) -> str:
    """A 1-layer BERT (random weights) with a word-level vocabulary of ``texts`` + mean pooling.

    Returns the ``st:`` spec of the saved sentence-transformers folder.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = Path(folder)
    hf = folder / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    (hf / "vocab.txt").write_text("\n".join(SPECIALS + words_of(texts)) + "\n", encoding="utf-8")
    tok = BertTokenizer(vocab=str(hf / "vocab.txt"), do_lower_case=True)  # transformers 5: `vocab=`
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(str(hf))
    tok.save_pretrained(str(hf))
    st = SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=24), Pooling(hidden, "mean")],
                             device="cpu")
    st.save(str(folder / "st"))
    return f"st:{folder / 'st'}"


#: Planted catalog: 4 categories, each with its own words; titles mix category words and noise.
CATS = {
    "dress": ["dress", "gown", "skirt"],
    "shoe": ["sneaker", "boot", "sandal"],
    "watch": ["watch", "clock", "chrono"],
    "bag": ["bag", "tote", "backpack"],
}
NOISE = ["red", "blue", "green", "black", "large", "small", "cotton", "leather"]


def planted_titles(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = list(CATS)
    titles, labels = [], []
    for i in range(n):
        c = names[i % len(names)]
        words = [str(rng.choice(NOISE)), str(rng.choice(CATS[c])), str(rng.choice(NOISE)), f"n{i}"]
        titles.append(" ".join(words))
        labels.append(c)
    return titles, labels


@pytest.fixture(scope="session")
def planted():
    return planted_titles(160)


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory, planted):
    return make_tiny_st(tmp_path_factory.mktemp("tiny_bert"), planted[0] + ["unrelated words here"])
