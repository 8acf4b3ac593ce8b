"""The dictd reader on a tiny dictionary written in the test (no GPL data)."""

from __future__ import annotations

import gzip

import pytest

from prodfusion.data.dictd import b64_number, dictd_examples, read_dictd
from prodfusion.errors import DataError

_ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(n: int) -> str:
    out = ""
    while True:
        out = _ALPHA[n % 64] + out
        n //= 64
        if not n:
            return out


def _write(tmp_path, entries, compress=True):
    body, index = b"", []
    for head, text in entries:
        raw = text.encode("utf-8")
        index.append(f"{head}\t{_b64(len(body))}\t{_b64(len(raw))}\n")
        body += raw
    (tmp_path / "toy.index").write_text("".join(index), encoding="utf-8")
    if compress:
        (tmp_path / "toy.dict.dz").write_bytes(gzip.compress(body))
    else:
        (tmp_path / "toy.dict").write_bytes(body)
    return tmp_path / "toy"


def test_b64_numbers():
    assert b64_number("A") == 0 and b64_number("8") == 60 and b64_number("B8") == 64 + 60
    with pytest.raises(ValueError, match="not a dictd base-64 number"):
        b64_number("a-b")


@pytest.mark.parametrize("compress", [True, False])
def test_entries_and_examples(tmp_path, compress):
    entries = [
        ("apple", 'apple /ˈapəl/\nApfel <masc>\n      "an apple a day"  - ein Apfel am Tag\n'
                  '      "apples"  - Äpfel\n'),
        ("pear", 'pear\nBirne <fem>\n      "a ripe pear for you"  - eine reife Birne für dich\n'
                 '      "an apple a day"  - ein Apfel pro Tag\n'),
    ]
    prefix = _write(tmp_path, entries, compress)
    assert [h for h, _ in read_dictd(prefix)] == ["apple", "pear"]
    assert list(read_dictd(str(prefix) + ".index"))[1][1].startswith("pear\nBirne")
    # Examples of 3+ words, one per distinct English sentence (the first translation wins).
    assert dictd_examples(prefix) == [("an apple a day", "ein Apfel am Tag"),
                                      ("a ripe pear for you", "eine reife Birne für dich")]
    assert dictd_examples(prefix, min_words=1)[1] == ("apples", "Äpfel")


def test_missing_or_bad_dictionary(tmp_path):
    with pytest.raises(DataError, match="apt-get install dict-freedict-eng-deu"):
        list(read_dictd(tmp_path / "nothing"))
    prefix = _write(tmp_path, [("a", "b")])
    (tmp_path / "toy.index").write_text("a\tB\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"toy\.index line 1: expected headword<TAB>offset<TAB>length"):
        list(read_dictd(prefix))
