"""Fixtures for the encoder tests: tiny random HF models saved to disk, images, catalogs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image

from prodfusion.data import Catalog

TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyzçğıöşü")
    + ["red", "dress", "laptop", "blue", "shoe", "##s", "##e", "##r"]
)


@pytest.fixture(scope="session")
def tiny_st_path(tmp_path_factory) -> str:
    """A randomly initialised 2-layer, 32-d BERT + mean pooling sentence-transformers folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    from sentence_transformers import SentenceTransformer

    root = tmp_path_factory.mktemp("tiny_st")
    bert_dir = root / "bert"
    bert_dir.mkdir()
    (bert_dir / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(bert_dir / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=32)
    pooling = Pooling(32, pooling_mode="mean")
    out = root / "st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
    return str(out)


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> str:
    """A randomly initialised CLIP (32-px images, 16-d projection) + its image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    out = tmp_path_factory.mktemp("tiny_clip")
    config = CLIPConfig(
        text_config=dict(
            vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=2,
            pad_token_id=1,
        ),
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
            num_hidden_layers=2, num_attention_heads=2,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(out)
    return str(out)


def draw(kind: str, size=(60, 90), shift: int = 0) -> Image.Image:
    """Small synthetic product photos with a known look."""
    w, h = size
    a = np.full((h, w, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "red_disk":
        a[(xx - w // 2 - shift) ** 2 + (yy - h // 2) ** 2 < (w // 3) ** 2] = (200, 20, 20)
    elif kind == "blue_stripes":
        a[(yy // 6) % 2 == 0] = (20, 40, 200)
    elif kind == "green_square":
        a[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (20, 160, 40)
    else:  # pragma: no cover - test helper misuse
        raise ValueError(kind)
    return Image.fromarray(a)


@pytest.fixture
def image_dir(tmp_path):
    """Three good JPEGs, a PNG with transparency, a missing path, a corrupt JPEG, a text file."""
    d = tmp_path / "img"
    d.mkdir()
    draw("red_disk").save(d / "red.jpg", quality=95)
    draw("blue_stripes").save(d / "blue.jpg", quality=95)
    draw("green_square").save(d / "green.jpg", quality=95)
    rgba = draw("red_disk").convert("RGBA")
    rgba.putalpha(Image.fromarray(np.full((90, 60), 255, dtype=np.uint8)))
    rgba.save(d / "red_alpha.png")
    good = (d / "blue.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "notes.jpg").write_text("this is not an image", encoding="utf-8")
    return d


def make_catalog(titles, images=None, ids=None) -> Catalog:
    ids = ids or [f"{i:04d}" for i in range(len(titles))]
    data = {"product_id": ids, "title": list(titles)}
    if images is not None:
        data["image"] = [None if p is None else str(p) for p in images]
    return Catalog(pl.DataFrame(data, schema={k: pl.Utf8 for k in data}), source="<test>")
