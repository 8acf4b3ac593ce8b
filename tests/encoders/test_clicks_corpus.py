"""Prod2Vec at scale: corpus files streamed from Parquet, long sessions split, not truncated."""

from __future__ import annotations

import pytest

from prodfusion.data.sessions import Sessions
from prodfusion.encoders.clicks import (
    MAX_SESSION_TOKENS,
    Prod2Vec,
    _CoClickCorpus,
    split_session,
    write_corpus,
)
from prodfusion.errors import DataError


@pytest.mark.parametrize("n", [1, 2, MAX_SESSION_TOKENS, MAX_SESSION_TOKENS + 1, 25_000, 30_001])
def test_split_session_loses_no_click(n):
    s = [f"p{i}" for i in range(n)]
    pieces = split_session(s)
    assert sum(pieces, []) == s
    assert all(1 <= len(p) <= MAX_SESSION_TOKENS for p in pieces)
    assert len(pieces) == -(-n // MAX_SESSION_TOKENS)
    assert all(len(p) == len(pieces[0]) for p in pieces[:-1])


def test_iterable_path_splits_long_sessions_too():
    long = [f"p{i % 97}" for i in range(MAX_SESSION_TOKENS * 2 + 5)]
    pieces = list(_CoClickCorpus([long, ["a"], ["b", "b"], ["a", "b"]]))
    assert sum(pieces[:-1], []) == long and pieces[-1] == ["a", "b"]


def _sessions(rng):
    long = [f"{i % 300:05d}" for i in rng.permutation(25_001)]
    lists = [long, ["00001"], ["00002", "00002"]]
    lists += [[f"{g * 3 + j:05d}" for j in rng.integers(0, 3, 6)] for g in rng.integers(0, 100, 400)]
    return lists


@pytest.mark.parametrize("batch_rows", [997, 1 << 20])
def test_corpus_from_parquet_equals_corpus_from_lists(rng, tmp_path, batch_rows):
    lists = _sessions(rng)
    Sessions.from_lists(lists).to_parquet(tmp_path / "s.parquet")
    a = write_corpus(tmp_path / "s.parquet", tmp_path / "a.txt", batch_rows=batch_rows)
    b = write_corpus(lists, tmp_path / "b.txt")
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
    kept = [s for s in lists if len(set(s)) >= 2]
    assert a == b == {"n_sessions": len(kept), "n_clicks": sum(map(len, kept)),
                      "n_lines": len(kept) + 2, "n_split": 1,
                      "n_dropped": len(lists) - len(kept)}
    lines = (tmp_path / "a.txt").read_text().splitlines()
    assert [len(x.split()) for x in lines[:3]] == [8334, 8334, 8333]
    assert " ".join(lines[:3]).split() == lists[0]  # the long session, whole and in order


def test_training_on_the_corpus_file_learns_planted_groups(rng, tmp_path):
    lists = [[f"{g * 3 + j:05d}" for j in rng.integers(0, 3, 8)] for g in rng.integers(0, 30, 3000)]
    write_corpus(lists, tmp_path / "c.txt")
    p2v = Prod2Vec(vector_size=16, epochs=5, workers=1, progress=False, seed=1)
    p2v.fit_corpus(tmp_path / "c.txt")
    assert p2v.info_["n_clicks"] == sum(map(len, lists))
    wv = p2v.wv_
    for g in range(0, 30, 7):
        a = f"{g * 3:05d}"
        best = wv.most_similar(a, topn=2)
        assert {k for k, _ in best} == {f"{g * 3 + 1:05d}", f"{g * 3 + 2:05d}"}


def test_errors(tmp_path):
    with pytest.raises(DataError, match="product id 'a b' in session 0 is empty or contains whitespace"):
        write_corpus([["a b", "c"]], tmp_path / "c.txt")
    Sessions.from_lists([["a b", "c"]]).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(DataError, match="product id 'a b' in .*s.parquet is empty or contains whitespace"):
        write_corpus(tmp_path / "s.parquet", tmp_path / "c.txt")
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(DataError, match="bad.parquet: cannot be read as Parquet"):
        write_corpus(tmp_path / "bad.parquet", tmp_path / "c.txt")
    with pytest.raises(DataError, match="missing.txt: corpus file does not exist"):
        Prod2Vec(progress=False).fit_corpus(tmp_path / "missing.txt")
