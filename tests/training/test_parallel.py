"""Reading parallel sentences: formats, languages, limits and bad input named by file and line."""

from __future__ import annotations

import gzip

import polars as pl
import pytest

from prodfusion.errors import DataError, ParameterError
from prodfusion.training import read_parallel


def test_tsv_and_tsv_gz_with_language_from_file_name(tmp_path):
    a = tmp_path / "shop-en-tr.tsv"
    a.write_text("red dress\tkırmızı elbise\nblack bike\tsiyah bisiklet\n", encoding="utf-8")
    b = tmp_path / "talks_en_de.tsv.gz"
    c = tmp_path / "toy-en-de.txt"
    c.write_text("a\tb\n", encoding="utf-8")
    b.write_bytes(gzip.compress(b"Good morning.\tGuten Morgen.\r\n"))
    data = read_parallel([a, b, c])
    assert data.sources == ["red dress", "black bike", "Good morning.", "a"]
    assert data.targets == ["kırmızı elbise", "siyah bisiklet", "Guten Morgen.", "b"]
    assert data.languages == ["en-tr", "en-tr", "en-de", "en-de"]
    assert data.language_counts() == {"en-tr": 2, "en-de": 2}
    assert [f["rows"] for f in data.files] == [2, 1, 1]
    assert all(len(f["sha256"]) == 64 for f in data.files)


def test_two_column_csv_and_parquet_with_language_column(tmp_path):
    c = tmp_path / "pairs.csv"
    c.write_text('en,other,lang\n"red, long dress",kırmızı uzun elbise,tr\nhat,Hut,de\n',
                 encoding="utf-8")
    data = read_parallel(c, source_col="en", target_col="other", language_col="lang")
    assert data.sources == ["red, long dress", "hat"]
    assert data.languages == ["tr", "de"]
    p = tmp_path / "pairs.parquet"
    pl.DataFrame({"source": ["cat", "dog"], "target": ["Katze", "Hund"]}).write_parquet(p)
    data = read_parallel(p, languages="en-de")
    assert data.targets == ["Katze", "Hund"] and data.languages == ["en-de", "en-de"]


def test_length_limit_and_per_language_cap_are_counted(tmp_path):
    f = tmp_path / "x-en-de.tsv"
    f.write_text("a\tb\n" + "long " * 60 + "\tlang\nc\td\ne\tf\n", encoding="utf-8")
    data = read_parallel(f, max_sentence_length=250, max_sentences_per_language=2)
    assert data.sources == ["a", "c"]
    rec = data.files[0]
    assert (rec["rows"], rec["kept"], rec["dropped_too_long"], rec["dropped_over_cap"]) == (4, 2, 1, 1)
    assert len(read_parallel(f, max_sentence_length=None)) == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a\tb\n\nc\td\n", r"x\.tsv line 2: blank line"),
        (b"a\tb\nc\td\nno tab here\n", r"x\.tsv line 3: no tab"),
        (b"a\tb\tc\n", r"x\.tsv line 1: 2 tabs"),
        (b"a\tb\n \td\n", r"x\.tsv line 2: empty source"),
        (b"a\tb\ncaf\xe9\tKaffee\n", r"x\.tsv line 2: byte b'\\xe9' at column 4 is not UTF-8"),
    ],
)
def test_bad_tsv_lines_are_named(tmp_path, content, message):
    f = tmp_path / "x.tsv"
    f.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_parallel(f)


def test_bad_gz_csv_and_parquet_inputs(tmp_path):
    g = tmp_path / "x.tsv.gz"
    g.write_bytes(gzip.compress(b"ok\tok\n\xff\xfe\tz\n"))
    with pytest.raises(DataError, match=r"x\.tsv\.gz line 2: .* not UTF-8"):
        read_parallel(g)
    c = tmp_path / "x.csv"
    c.write_text("source,target\na,b\n\nc,d\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.csv line 3: blank line"):
        read_parallel(c)
    c.write_text("src,target\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column 'source' \(source_col\); the file has \['src', 'target'\]"):
        read_parallel(c)
    p = tmp_path / "x.parquet"
    pl.DataFrame({"source": ["a", None], "target": ["b", "c"]}).write_parquet(p)
    with pytest.raises(DataError, match=r"x\.parquet row 2: empty source"):
        read_parallel(p)
    with pytest.raises(DataError, match="does not exist"):
        read_parallel(tmp_path / "nope.tsv")
    with pytest.raises(ParameterError, match="max_sentence_length"):
        read_parallel(p, max_sentence_length=0)


def test_split_keeps_a_source_sentence_on_one_side(tmp_path):
    f = tmp_path / "x.tsv"
    lines = [f"s{i % 10}\tt{i}" for i in range(30)]  # each source three times
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    train, dev = read_parallel(f).split(6, seed=1)
    assert len(train) + len(dev) == 30 and len(dev) == 6
    assert not set(train.sources) & set(dev.sources)
