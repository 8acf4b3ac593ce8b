"""Fixtures for the training tests: a tiny randomly initialised BERT sentence encoder and planted data."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("sentence_transformers")

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
