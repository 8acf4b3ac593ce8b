"""read_interactions / read_pairs / clean_sessions / Sessions on hand-computed cases."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from prodfusion.data import Catalog, Sessions, clean_sessions, read_interactions, read_pairs
from prodfusion.data.sessions import KEY_SEPARATOR, SessionReport
from prodfusion.errors import DataError, ParameterError

# row: session, product, ts  (X and Y are not in the catalog)
LOG = [
    ("s1", "a", 30.0),  # 1
    ("s2", "c", 10.0),  # 2
    ("s1", "b", 10.0),  # 3
    ("s1", "b", 20.0),  # 4
    ("s1", "X", 25.0),  # 5  unknown: dropping it makes b b b adjacent
    ("s1", "b", 26.0),  # 6
    ("s2", "d", 5.0),  # 7
    ("s3", "e", 1.0),  # 8  a one-click session
    ("s1", "a", 40.0),  # 9
    ("s4", "Y", 1.0),  # 10 only an unknown product
    ("s5", "f", 1.0),  # 11
    ("s5", "g", 2.0),  # 12
    ("s5", "h", 3.0),  # 13
    ("s5", "f", 4.0),  # 14 cut by max_length=3
    ("s2", "c", 10.0),  # 15 same time as row 2: source row decides, then collapsed
]


@pytest.fixture
def log() -> pl.DataFrame:
    s, p, t = zip(*LOG, strict=True)
    return pl.DataFrame({"session": s, "product_id": p, "ts": t,
                         "row": list(range(1, len(LOG) + 1))})


@pytest.fixture
def catalog() -> Catalog:
    ids = list("abcdefgh")
    return Catalog(pl.DataFrame({"product_id": ids, "title": ids}))


def test_cleaning_hand_computed(log, catalog):
    s = clean_sessions(log, catalog, min_length=2, max_length=3)
    assert list(s) == [["b", "a"], ["d", "c"], ["f", "g", "h"]]
    assert s.keys == ["s1", "s2", "s5"]
    assert s.report == SessionReport(
        n_rows_in=15, n_sessions_in=5, n_unknown_rows=2, n_unknown_products=2,
        n_repeats_collapsed=4, n_short_dropped=2, n_capped=1, n_sessions=3, n_clicks=7,
        n_capped_clicks=1,
    )
    assert s.report.as_dict()["n_capped"] == 1
    assert len(s) == 3 and s.n_clicks == 7
    assert s.frame.columns == ["session", "position", "product_id", "ts"]
    assert s.frame["position"].to_list() == [0, 1, 0, 1, 0, 1, 2]
    assert s.product_counts() == {"a": 1, "b": 1, "c": 1, "d": 1, "f": 1, "g": 1, "h": 1}


def test_cleaning_options(log, catalog):
    raw = clean_sessions(log, None, min_length=1, max_length=None, collapse_repeats=False)
    assert list(raw)[0] == ["b", "b", "X", "b", "a", "a"]
    assert raw.report.n_unknown_rows == 0 and raw.report.n_repeats_collapsed == 0
    assert len(raw) == 5 and raw.n_clicks == 15
    no_collapse = clean_sessions(log, catalog, collapse_repeats=False, max_length=None)
    assert list(no_collapse) == [["b", "b", "b", "a", "a"], ["d", "c", "c"], ["f", "g", "h", "f"]]
    assert clean_sessions(log, catalog, min_length=3).keys == ["s5"]


def test_cleaning_without_time_keeps_source_order():
    frame = pl.DataFrame({"session": ["x", "y", "x", "x"], "product_id": ["1", "2", "3", "1"]})
    s = clean_sessions(frame, min_length=1)
    assert list(s) == [["1", "3", "1"], ["2"]]


def test_cleaning_orders_by_row_when_row_is_given():
    frame = pl.DataFrame({"session": ["x", "y", "x", "x"], "product_id": ["1", "2", "3", "4"],
                          "row": [4, 1, 3, 2]})
    s = clean_sessions(frame, min_length=1)
    assert s.keys == ["y", "x"]  # sessions by their first source row
    assert list(s) == [["2"], ["4", "3", "1"]]


def test_cleaning_parameter_errors(log):
    with pytest.raises(ParameterError, match=re.escape(
            "The 'min_length' parameter of clean_sessions() must be an int >= 1. Got 0 instead.")):
        clean_sessions(log, min_length=0)
    with pytest.raises(ParameterError, match=re.escape(
            "The 'max_length' parameter of clean_sessions() must be None or an int >= min_length "
            "(2). Got 1 instead.")):
        clean_sessions(log, max_length=1)
    with pytest.raises(DataError, match=re.escape(
            "clean_sessions(): the interactions frame has no 'product_id' column (found: "
            "'session', 'item').")):
        clean_sessions(pl.DataFrame({"session": ["1"], "item": ["a"]}))


def test_sessions_reiterable_and_chunked(log, catalog):
    s = clean_sessions(log, catalog, max_length=3)
    assert list(s) == list(s)
    s.chunk_rows = 2  # forces several chunks, including a session longer than a chunk
    assert list(s) == [["b", "a"], ["d", "c"], ["f", "g", "h"]]
    assert s.lengths.tolist() == [2, 2, 3]


def test_from_lists_and_frame_validation():
    s = Sessions.from_lists([["001", "002"], ["002", "003", "001"]])
    assert list(s) == [["001", "002"], ["002", "003", "001"]]
    assert s.keys == ["0", "1"]
    assert s.report == SessionReport.unchanged(2, 5)
    with pytest.raises(ParameterError, match="The 'sessions' parameter of Sessions.from_lists"):
        Sessions.from_lists([["a", 1]])
    with pytest.raises(DataError, match="Sessions frame is not in session order"):
        Sessions(s.frame[[0, 2, 1, 3, 4]])
    with pytest.raises(DataError, match=re.escape("Sessions frame lacks column(s) 'position'")):
        Sessions(s.frame.drop("position"))


def test_split_by_time_respects_time_and_leaks_nothing(rng):
    n = 50
    starts = rng.permutation(n).astype(float) * 100
    rows = [(f"k{i}", f"p{rng.integers(20)}", starts[i] + j) for i in range(n) for j in range(3)]
    s_, p_, t_ = zip(*rows, strict=True)
    s = clean_sessions(pl.DataFrame({"session": s_, "product_id": p_, "ts": t_}),
                       collapse_repeats=False)
    train, test = s.split_by_time(0.2)
    assert (len(train), len(test)) == (40, 10)
    assert not set(train.keys) & set(test.keys)
    assert set(train.keys) | set(test.keys) == set(s.keys)
    first = {k: min(t for kk, _, t in rows if kk == k) for k in s.keys}
    assert min(first[k] for k in test.keys) >= max(first[k] for k in train.keys)
    assert sorted(first[k] for k in test.keys) == sorted(starts)[40:]
    assert train.n_clicks + test.n_clicks == s.n_clicks


def test_split_without_time_is_seeded_and_disjoint():
    s = Sessions.from_lists([["a", "b"]] * 100)
    tr1, te1 = s.split_by_time(0.25, seed=1)
    tr2, te2 = s.split_by_time(0.25, seed=1)
    tr3, te3 = s.split_by_time(0.25, seed=2)
    assert te1.keys == te2.keys and te1.keys != te3.keys
    assert len(te1) == 25 and not set(tr1.keys) & set(te1.keys)
    assert te1.keys == sorted(te1.keys, key=int)  # parts keep iteration order
    with pytest.raises(ParameterError, match=re.escape(
            "The 'test_fraction' parameter of split_by_time() must be a float in (0, 1). Got 1.0 "
            "instead.")):
        s.split_by_time(1.0)
    with pytest.raises(DataError, match=re.escape("split_by_time(): cannot split 1 session(s)")):
        Sessions.from_lists([["a", "b"]]).split_by_time()


def test_split_refuses_partial_times():
    s = Sessions.from_lists([["a", "b"], ["c", "d"]])
    frame = s.frame.with_columns(ts=pl.Series([1.0, 2.0, None, None]))
    with pytest.raises(DataError, match="some clicks have times and others do not"):
        Sessions(frame).split_by_time()


def test_fingerprint_stable_and_sensitive():
    a = Sessions.from_lists([["1", "2"], ["3", "4"]])
    b = Sessions.from_lists([["1", "2"], ["3", "4"]])
    c = Sessions.from_lists([["1", "2"], ["4", "3"]])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", a.fingerprint())


def test_parquet_round_trip(tmp_path, log, catalog):
    s = clean_sessions(log, catalog, max_length=3)
    s.to_parquet(tmp_path / "s.parquet")
    back = Sessions.from_parquet(tmp_path / "s.parquet")
    assert list(back) == list(s) and back.report == s.report
    assert back.fingerprint() == s.fingerprint()
    with pytest.raises(DataError, match="sessions file does not exist"):
        Sessions.from_parquet(tmp_path / "none.parquet")


def test_corpus_file(tmp_path):
    s = Sessions.from_lists([["001", "002"], ["002", "003", "001"]])
    mapping = s.write_corpus_file(tmp_path / "c.txt")
    assert (tmp_path / "c.txt").read_text("utf-8") == "001 002\n002 003 001\n"
    assert mapping == {"001": "001", "002": "002", "003": "003"}
    spaced = Sessions.from_lists([["a b", "c"], ["c", "a b"]])
    mapping = spaced.write_corpus_file(tmp_path / "d.txt")
    assert (tmp_path / "d.txt").read_text("utf-8") == "p0 p1\np1 p0\n"
    assert mapping == {"p0": "a b", "p1": "c"}
    with pytest.raises(DataError, match=re.escape(
            "write_corpus_file(): product id 'a b' contains whitespace")):
        spaced.write_corpus_file(tmp_path / "e.txt", tokens="id")


# --------------------------------------------------------------------------- reading
def test_read_interactions_iso_times_and_keys(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "customer,day,item,when\n"
        "c1,2024-03-01,007,2024-03-01T00:00:00\n"
        "c1,2024-03-01,008,2024-03-01 00:00:10\n"
        "c2,2024-03-01,007,2024-03-01T00:00:00Z\n"
        "c2,2024-03-02,009,2024-03-01T02:00:00+02:00\n"
        "c3,2024-03-02,010,2024-03-02\n", "utf-8")
    log = read_interactions(path, session_cols="customer,day", item_col="item", time_col="when")
    assert log.columns == ["session", "product_id", "ts", "row"]
    assert log["session"].to_list()[:2] == [f"c1{KEY_SEPARATOR}2024-03-01"] * 2
    assert log["product_id"].to_list() == ["007", "008", "007", "009", "010"]
    t0 = 1709251200.0  # 2024-03-01T00:00:00 UTC
    assert log["ts"].to_list() == [t0, t0 + 10, t0, t0, t0 + 86400]
    assert log["row"].to_list() == [1, 2, 3, 4, 5]
    sessions = clean_sessions(log, min_length=1)
    assert len(sessions) == 4


def test_year_first_slashed_times_read_as_iso_without_a_format(tmp_path):
    """``2024/03/01 00:00:10`` (Japanese, Chinese and Korean exports; month and day never
    swapped when the year comes first) reads as its ISO form; single-digit months and days
    too; a day-first slashed date is still refused without --time-format."""
    iso, slashed = tmp_path / "iso.csv", tmp_path / "slashed.csv"
    iso.write_text("session_id,product_id,t\n1,a,2024-03-01T00:00:00\n1,b,2024-03-01 00:00:10\n"
                   "2,a,2024-03-02\n2,c,2024-03-02 09:05\n", "utf-8")
    slashed.write_text("session_id,product_id,t\n1,a,2024/03/01 00:00:00\n1,b,2024/3/1 0:00:10\n"
                       "2,a,2024/03/02\n2,c,2024/3/2 09:05\n", "utf-8")
    want = read_interactions(iso, time_col="t")["ts"].to_list()
    assert read_interactions(slashed, time_col="t")["ts"].to_list() == want
    assert want[:2] == [1709251200.0, 1709251210.0]
    slashed.write_text("session_id,product_id,t\n1,a,01/03/2024 00:00\n", "utf-8")
    with pytest.raises(DataError, match="cannot read time '01/03/2024 00:00'"):
        read_interactions(slashed, time_col="t")


def test_read_interactions_numbers_several_time_columns_and_no_time(tmp_path):
    path = tmp_path / "views.csv"
    path.write_text("session_id;item_id;timeframe;eventdate\n"
                    "1;5;900;2016-05-09\n1;6;100;2016-05-09\n2;5;50;2016-05-10\n"
                    "2;7;10;2016-05-10\n", "utf-8")
    log = read_interactions(path, item_col="item_id", time_col="timeframe")
    assert log["ts"].to_list() == [900.0, 100.0, 50.0, 10.0]
    log = read_interactions(path, item_col="item_id", time_col=("eventdate", "timeframe"))
    assert log["ts"].to_list() == [2.0, 1.0, 4.0, 3.0]  # lexicographic order, as a dense rank
    assert list(clean_sessions(log)) == [["6", "5"], ["7", "5"]]
    log = read_interactions(path, item_col="item_id")
    assert log["ts"].null_count() == 4


def test_times_in_a_named_layout_are_read_and_others_refused_naming_the_layouts(tmp_path):
    """Day-first dotted dates (German exports) and US 12-hour times read with ``time_format``;
    without it the refusal names the layouts that would read the column, both where day and
    month cannot be told apart."""
    path = tmp_path / "log.csv"
    path.write_text("session_id,product_id,t\n1,a,01.02.2023 10:00\n1,b,13.02.2023 10:01\n",
                    "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 1: cannot read time '01.02.2023 10:00' (column 't'; 2 row(s) in all). "
            "Use numbers (e.g. Unix seconds) or ISO dates/datetimes such as 2016-05-09 or "
            "2016-05-09T10:00:00 (or 2016/05/09 10:00), or name the layout with --time-format (time_format=). It "
            "reads with --time-format '%d.%m.%Y %H:%M' (time_format= in Python).")):
        read_interactions(path, time_col="t")
    log = read_interactions(path, time_col="t", time_format="%d.%m.%Y %H:%M")
    # the 1st of February 2023, 10:00 UTC, and the 13th, 10:01
    assert log["ts"].to_list() == [1675245600.0, 1675245600.0 + 12 * 86400 + 60]
    path.write_text("session_id,product_id,t\n1,a,1/2/2023 10:00 AM\n1,b,1/2/2023 1:03 PM\n",
                    "utf-8")
    with pytest.raises(DataError, match=re.escape(
            "It reads with --time-format '%d/%m/%Y %I:%M %p' or '%m/%d/%Y %I:%M %p' (the day "
            "or the month first: which one your file means only you know)")):
        read_interactions(path, time_col="t")
    us = read_interactions(path, time_col="t", time_format="%m/%d/%Y %I:%M %p")["ts"].to_list()
    assert us == [1672653600.0, 1672653600.0 + 3 * 3600 + 180]  # 2 January, 10:00 and 13:03
    # dates without a time of day, and a value the layout does not fit
    path.write_text("session_id,product_id,t\n1,a,31.12.2023\n1,b,2024-01-01\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 2: time '2024-01-01' does not match --time-format '%d.%m.%Y' (column "
            "'t'; 1 row(s) in all).")):
        read_interactions(path, time_col="t", time_format="%d.%m.%Y")
    path.write_text("session_id,product_id,t\n1,a,31.12.2023\n1,b,01.01.2024\n", "utf-8")
    assert read_interactions(path, time_col="t", time_format="%d.%m.%Y")["ts"].to_list() == [
        1703980800.0, 1704067200.0]


def test_read_interactions_errors(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("session_id,product_id,t\n1,a,5\n1,,6\n2,b,x\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path}: no column 'sid' (found columns: 'session_id', 'product_id', 't'). Name the "
            "right column with session_cols= (--session-cols on the command line).")):
        read_interactions(path, session_cols="sid")
    with pytest.raises(DataError, match=re.escape("with time_col= (--time-col")):
        read_interactions(path, time_col="time")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 2: empty product id (column 'product_id'; 1 row(s) in all). Fill it in "
            "or remove the row.")):
        read_interactions(path)
    path.write_text("session_id,product_id,t\n1,a,5\n1,c,6\n2,b,x\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 3: cannot read time 'x' (column 't'; 1 row(s) in all). Use numbers")):
        read_interactions(path, time_col="t")
    path.write_text("session_id,product_id,t\n1,a,5\n1,c,2024-01-01\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 1: time '5' is a number but row 2 holds the date '2024-01-01' (column "
            "'t'). Use one kind of time in the whole column.")):
        read_interactions(path, time_col="t")
    path.write_text("session_id,product_id,t\n1,a,5\n1,c,nan\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 2: time 'nan' is not a finite number (column 't').")):
        read_interactions(path, time_col="t")
    path.write_text("session_id,product_id,t\n1,a,5\n,c,6\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path} row 2: empty session key (column "
                                                  "'session_id'")):
        read_interactions(path)
    path.write_bytes(b"session_id,product_id\n1,a\n1,\xc3\n")
    with pytest.raises(DataError, match=re.escape(f"{path} line 3 (data row 2): bytes b'\\xc3' are "
                                                  "not valid UTF-8, column 'product_id'.")):
        read_interactions(path)
    with pytest.raises(ParameterError, match="The 'session_cols' parameter of read_interactions"):
        read_interactions(path, session_cols=())


def test_read_pairs(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("a,b,score\n001,002,0.5\n002,001,0.4\n003,003,0.1\n", "utf-8")
    log = read_pairs(path, a_col="a", b_col="b")
    assert log["product_id"].to_list() == ["001", "002", "002", "001", "003", "003"]
    assert log["session"].to_list() == ["1", "1", "2", "2", "3", "3"]
    s = clean_sessions(log)
    assert list(s) == [["001", "002"], ["002", "001"]]
    assert s.report.n_short_dropped == 1 and s.report.n_repeats_collapsed == 1
    with pytest.raises(DataError, match=re.escape("Name the right column with b_col= "
                                                  "(--pair-cols A,B: B on the command line)")):
        read_pairs(path, a_col="a", b_col="partner")


# --------------------------------------------------------------------------- real data
def test_diginetica_views(shared_data):
    path = shared_data / "diginetica" / "train-item-views.sample.csv"
    log = read_interactions(path, session_cols="session_id", item_col="item_id",
                            time_col="eventdate,timeframe")
    assert log.height == 12391  # README: 12,391 rows
    assert log["session"].n_unique() == 2986 and log["product_id"].n_unique() == 7139
    s = clean_sessions(log)
    assert s.report.n_rows_in == 12391 and s.report.n_sessions == len(s)
    assert min(s.lengths) >= 2
    # within a session, timeframe order is respected
    first = log.filter(pl.col("session") == s.keys[0]).sort(["ts", "row"])["product_id"].to_list()
    dedup = [p for i, p in enumerate(first) if i == 0 or first[i - 1] != p]
    assert next(iter(s)) == dedup[:200]


def test_hm_baskets_and_copurchase(shared_data):
    from prodfusion.data import read_catalog

    hm = shared_data / "hm"
    cat = read_catalog(hm / "articles.csv", id_col="article_id", title_col="prod_name")
    log = read_interactions(hm / "transactions.csv", session_cols=("customer_id", "t_dat"),
                            item_col="article_id", time_col="t_dat")
    assert log.height == 31662 and log["product_id"][0] == "0493995001"
    s = clean_sessions(log, cat)
    assert s.report.n_rows_in - s.report.n_unknown_rows == 9925  # README: rows in the catalog
    assert len(s) == 2030  # README: baskets with >= 2 items
    pairs = read_pairs(hm / "copurchase.csv", a_col="article_id", b_col="partner_article_id")
    assert pairs.height == 2 * 61186
    ps = clean_sessions(pairs, cat)
    assert ps.report.n_unknown_rows == 0 and set(np.unique(ps.lengths)) == {2}


def test_split_by_time_windows_hold_out_earlier_blocks():
    s = Sessions.from_lists([["a", "b"]] * 10)
    s = Sessions(s.frame.with_columns(pl.col("session").cast(pl.Utf8)))
    tr0, te0 = s.split_by_time(0.2)
    tr1, te1 = s.split_by_time(0.2, window=1)
    tr3, te3 = s.split_by_time(0.2, window=3)
    assert len(te0) == len(te1) == len(te3) == 2 and len(tr1) == 8
    assert not set(te0.keys) & set(te1.keys) and not set(te1.keys) & set(tr1.keys)
    assert set(te0.keys) <= set(tr1.keys)  # the later block trains
    with pytest.raises(DataError, match="window=4 leaves no training session"):
        s.split_by_time(0.2, window=4)


def test_ids_that_differ_from_the_catalogs_fail_fast_with_examples_and_the_cause(caplog):
    """A log whose ids were read as numbers ('0042' -> 42) names no catalog product: an error
    before any work, with examples from both sides and the cause; a log that mostly misses
    warns; a few unknown products are dropped quietly (counted in the report)."""
    ids = [f"{i:04d}" for i in range(1, 9)]
    catalog = Catalog(pl.DataFrame({"product_id": ids, "title": [f"t{i}" for i in ids]}),
                      source="cat.csv")
    numeric = pl.DataFrame({"session": ["a", "a", "b", "b"],
                            "product_id": ["1", "2.0", "3", "4"]})
    with pytest.raises(DataError) as err:
        clean_sessions(numeric, catalog)
    text = str(err.value)
    assert "4 of 4 interaction rows (100%)" in text and "cat.csv, 8 products" in text
    assert "'1', '2.0', '3' in the interactions" in text and "'0001', '0002'" in text
    assert "4 of the 4 unknown ids match a catalog id once leading zeros" in text

    other = pl.DataFrame({"session": ["a", "a", "b"], "product_id": ["x", "y", "z"]})
    with pytest.raises(DataError, match="Check that the interactions' item column"):
        clean_sessions(other, catalog)

    mostly = pl.DataFrame({"session": ["a"] * 5, "product_id": ["0001", "0002", "x", "y", "z"]})
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        s = clean_sessions(mostly, catalog)
    assert list(s) == [["0001", "0002"]] and s.report.n_unknown_rows == 3
    assert "3 of 5 interaction rows (60%)" in caplog.text
    assert "Expected if the log covers more products than this catalog" in caplog.text
    caplog.clear()
    few = pl.DataFrame({"session": ["a"] * 3, "product_id": ["0001", "0002", "9"]})
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert clean_sessions(few, catalog).report.n_unknown_rows == 1
    assert caplog.text == ""


def test_a_log_naming_products_by_another_catalog_column_is_told_which(tmp_path):
    """Orders naming variants by SKU against a catalog keyed by handle: the refusal names the
    catalog column that holds the log's ids and the option that reads the catalog by it."""
    catalog = Catalog(pl.DataFrame({"product_id": ["red-dress", "blue-shirt", "scarf"],
                                    "title": ["Red dress", "Blue shirt", "Scarf"],
                                    "Variant SKU": ["RD-S", "BS-M", "GS 1"]}), source="p.csv")
    orders = pl.DataFrame({"session": ["#1001", "#1001", "#1002", "#1002"],
                           "product_id": ["RD-S", "BS-M", "GS 1", "XX-9"]})
    with pytest.raises(DataError) as err:
        clean_sessions(orders, catalog)
    assert ("3 of the first 4 unknown ids are values of the catalog's column 'Variant SKU': if "
            "the log names products by it, read the catalog with that column as its ids (CLI: "
            "--id-col 'Variant SKU').") in str(err.value)
    assert "match a catalog id once leading zeros" not in str(err.value)


# ----------------------------------------------------------------- a visitor's log cut at pauses
def _visitors(times, unit=1.0):
    """A log keyed by visitor: ``times`` maps a visitor to its (product, seconds) clicks."""
    rows = [(v, p, t * unit) for v, clicks in times.items() for p, t in clicks]
    s, p, t = zip(*rows, strict=True)
    return pl.DataFrame({"session": s, "product_id": p, "ts": t})


VISITS = {"v1": [("a", 0), ("b", 60), ("c", 1900), ("d", 1960), ("e", 7200), ("a", 7260)],
          "v2": [("c", 100), ("d", 1900)],  # a pause of exactly 30 minutes: not cut
          "v3": [("f", 50)]}


@pytest.mark.parametrize("unit", [1.0, 1e3, 1e6, 1e9])
def test_session_gap_cuts_a_visitors_clicks_at_pauses(unit):
    log = _visitors(VISITS, unit)
    # Unix times of 2026 (seconds, or ms, µs, ns since the epoch, read by their size)
    log = log.with_columns(pl.col("ts") + 1.78e9 * unit)
    s = clean_sessions(log.reverse(), session_gap="30m")  # the file's order does not matter
    assert sorted(map(tuple, s)) == [("a", "b"), ("c", "d"), ("c", "d"), ("e", "a")]
    assert set(s.keys) == {"v1", f"v1{KEY_SEPARATOR}#2", f"v1{KEY_SEPARATOR}#3", "v2"}
    r = s.report
    assert (r.n_sessions_in, r.n_split_at_gaps, r.n_short_dropped, r.n_sessions) == (3, 2, 1, 4)
    assert r.n_sessions == r.n_sessions_in + r.n_split_at_gaps - r.n_short_dropped
    # the same log as one session per visitor, and with a gap of 1 minute
    assert sorted(map(tuple, clean_sessions(log))) == [("a", "b", "c", "d", "e", "a"),
                                                       ("c", "d")]
    assert clean_sessions(log, session_gap=59).report.n_split_at_gaps == 6


def test_a_gap_that_cuts_most_steps_warns_about_the_time_unit(caplog):
    # milliseconds since the start of the log (not the epoch) read as seconds: a 30-minute
    # gap is 1.8 seconds of them and cuts almost every step
    log = _visitors(VISITS, 1e3)
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        s = clean_sessions(log, session_gap="30m", min_length=1)
    assert s.report.n_split_at_gaps == 6 and "cut 6 of the 6 steps" in caplog.text
    assert "read as seconds" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        clean_sessions(log.with_columns(pl.col("ts") + 1.78e12), session_gap="30m")
    assert "steps" not in caplog.text  # Unix milliseconds: read as such, 2 of 6 cut


def test_session_gap_leaves_untimed_rows_and_needs_times(tmp_path):
    log = _visitors(VISITS).with_columns(pl.col("ts") + 1.78e9)
    pairs = pl.DataFrame({"session": ["p1", "p1"], "product_id": ["a", "f"],
                          "ts": [None, None]}, schema_overrides={"ts": pl.Float64})
    s = clean_sessions(pl.concat([log, pairs]), session_gap=1800)
    assert ["a", "f"] in list(s) and s.report.n_split_at_gaps == 2
    with pytest.raises(ParameterError, match="session_gap needs the clicks' times"):
        clean_sessions(pairs, session_gap="30m")
    with pytest.raises(ParameterError, match="session_gap needs the clicks' times"):
        clean_sessions(log.drop("ts"), session_gap="30m")
    for bad in ("0", "-5m", "30 parsecs", "m", True, float("nan"), "inf"):
        with pytest.raises(ParameterError, match="'session_gap'.*positive duration"):
            clean_sessions(log, session_gap=bad)
    # ISO datetimes are read as seconds
    (tmp_path / "log.csv").write_text(
        "visitor,item,time\nx,a,2026-12-01T10:00:00\nx,b,2026-12-01T10:10:00\n"
        "x,c,2026-12-01T12:00:00Z\nx,d,2026-12-01T12:05:00+00:00\n", encoding="utf-8")
    iso = read_interactions(tmp_path / "log.csv", session_cols="visitor", item_col="item",
                            time_col="time")
    assert list(clean_sessions(iso, session_gap="1h")) == [["a", "b"], ["c", "d"]]


def test_a_cap_that_cuts_much_of_a_log_warns_and_names_session_gap(caplog):
    rng = np.random.default_rng(0)
    # two visitors over a month: a visit of 2 to 6 clicks a day, a minute apart
    rows = [(v, f"p{rng.integers(50)}", day * 86400.0 + j * 60.0 + v_i)
            for v_i, v in enumerate(("v1", "v2")) for day in range(60)
            for j in range(int(rng.integers(2, 7)))]
    s, p, t = zip(*rows, strict=True)
    log = pl.DataFrame({"session": s, "product_id": p, "ts": t})
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        whole = clean_sessions(log)
    assert whole.report.n_capped == 2 and whole.report.n_capped_clicks > 0.1 * len(rows)
    assert "If a session key names a visitor rather than one visit" in caplog.text
    assert "--session-gap 30m" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cut = clean_sessions(log, session_gap="30m")
    assert caplog.text == "" and cut.report.n_capped == 0
    assert cut.report.n_sessions_in == 2 and len(cut) + cut.report.n_short_dropped == 120
    assert cut.n_clicks > whole.n_clicks


def test_hm_customers_cut_at_half_a_day_are_the_customer_day_baskets(shared_data):
    path = shared_data / "hm" / "transactions.csv"
    days = clean_sessions(read_interactions(path, session_cols=("customer_id", "t_dat"),
                                            item_col="article_id", time_col="t_dat"))
    customers = read_interactions(path, session_cols="customer_id", item_col="article_id",
                                  time_col="t_dat")
    cut = clean_sessions(customers, session_gap="12h")
    assert sorted(map(tuple, cut)) == sorted(map(tuple, days)) and len(cut) == 5959
    assert cut.report.n_sessions_in == 1364 and cut.report.n_clicks == days.report.n_clicks
    whole = clean_sessions(customers)  # a customer's months of purchases as one session
    assert len(whole) == 1219 and whole.report.n_capped_clicks == 501
    # what gives the customer key away: pauses of days inside "sessions" (the CLI warns)
    from prodfusion.data.interactions import long_pauses

    assert long_pauses(whole)[0] == 904 and long_pauses(whole)[1] > 600 * 86400
    assert long_pauses(cut) == (0, 0.0) and long_pauses(days) == (0, 0.0)


def test_a_folder_of_daily_files_reads_as_their_concatenation(tmp_path):
    """``read_interactions(folder)``: its files sorted by name, read with the same options, a
    session spanning two files one session, rows counted on across files; cleaned, the same
    sessions as one file holding every row."""
    days = {"2026-12-01.csv": "sid,item,ts\na,p1,10\na,p2,20\nb,p3,30\n",
            "2026-12-02.csv": "sid,item,ts\nb,p4,40\nc,p1,50\nc,p5,60\n"}
    (tmp_path / "logs").mkdir()
    for name, text in days.items():
        (tmp_path / "logs" / name).write_text(text, encoding="utf-8")
    (tmp_path / "logs" / "README.md").write_text("not a log")  # not an interaction file
    (tmp_path / "all.csv").write_text(days["2026-12-01.csv"] + days["2026-12-02.csv"].split(
        "\n", 1)[1], encoding="utf-8")
    opts = {"session_cols": "sid", "item_col": "item", "time_col": "ts"}
    folder = read_interactions(tmp_path / "logs", **opts)
    whole = read_interactions(tmp_path / "all.csv", **opts)
    assert folder.drop("row").equals(whole.drop("row"))
    assert folder["row"].to_list() == [1, 2, 3, 2**40 + 1, 2**40 + 2, 2**40 + 3]
    assert list(clean_sessions(folder)) == list(clean_sessions(whole)) == [
        ["p1", "p2"], ["p3", "p4"], ["p1", "p5"]]
    files = sorted((tmp_path / "logs").glob("*.csv"))
    assert read_interactions(files, **opts).equals(folder)
    with pytest.raises(ParameterError, match="several columns are ranked per file"):
        read_interactions(tmp_path / "logs", session_cols="sid", item_col="item",
                          time_col="ts,sid")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder holds no interaction file"):
        read_interactions(tmp_path / "empty", **opts)


EVENTS = """visitor,event,item,ts
v1,view,p1,10
v1,addtocart,p1,11
v1,view,p2,12
v1,transaction,p1,
v2,view,p3,20
v2,View,p4,21
v2,view,p4,22
"""


def test_keep_rows_reads_one_event_type_of_a_mixed_log(tmp_path, caplog):
    """``keep_rows``: only the rows holding one of the values (as text, spaces around
    ignored); the rows keep their file numbers; a left-out row is not checked (the purchase
    has no time); errors name the file's row; no row left is an error that lists the
    column's values, a value no row holds a warning that does."""
    (tmp_path / "log.csv").write_text(EVENTS, encoding="utf-8")
    opts = {"session_cols": "visitor", "item_col": "item", "time_col": "ts"}
    with pytest.raises(DataError, match=r"row 4: empty time value.* These rows all hold "
                                        r"'transaction' in column 'event', which no other "
                                        r"row does: .*--keep-rows event=View,addtocart,view"):
        read_interactions(tmp_path / "log.csv", **opts)  # the purchase row has no time
    (tmp_path / "gap.csv").write_text(EVENTS.replace("v2,view,p3,20", "v2,view,p3,"))
    with pytest.raises(DataError, match=r"row 4: empty time value \(column 'ts'; 2 row\(s\) "
                                        r"in all\)\. Fill it in, or leave out the time "
                                        r"column\.$"):
        read_interactions(tmp_path / "gap.csv", **opts)  # no kind of row to leave out
    untimed_v2 = "\n".join(line.rsplit(",", 1)[0] + "," if line.startswith("v2") else line
                           for line in EVENTS.replace("transaction,p1,", "transaction,p1,13")
                           .splitlines()) + "\n"
    (tmp_path / "v2.csv").write_text(untimed_v2)  # one visitor's rows: a key, not a kind
    with pytest.raises(DataError, match=r"row 5: empty time value \(column 'ts'; 3 row\(s\) "
                                        r"in all\)\. Fill it in, or leave out the time "
                                        r"column\.$"):
        read_interactions(tmp_path / "v2.csv", **opts)
    views = read_interactions(tmp_path / "log.csv", **opts, keep_rows={"event": "view"})
    assert views["product_id"].to_list() == ["p1", "p2", "p3", "p4"]
    assert views["row"].to_list() == [1, 3, 5, 7]
    assert views.equals(read_interactions(tmp_path / "log.csv", **opts,
                                          keep_rows=[" event = view "]))
    both = read_interactions(tmp_path / "log.csv", **opts,
                             keep_rows=["event=view,addtocart", "visitor=v1"])
    assert both["row"].to_list() == [1, 2, 3]
    assert [list(s) for s in clean_sessions(views)] == [["p1", "p2"], ["p3", "p4"]]
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        read_interactions(tmp_path / "log.csv", **opts, keep_rows={"event": ["view", "click"]})
    assert ("keep_rows event=view,click: no row holds 'click'; column 'event' holds 'view' "
            "(4), 'View' (1), 'addtocart' (1), 'transaction' (1)") in caplog.text
    with pytest.raises(DataError, match=r"kept none of the 7 rows; column 'event' holds "
                                        r"'view' \(4\)"):
        read_interactions(tmp_path / "log.csv", **opts, keep_rows={"event": "VIEW"})
    with pytest.raises(DataError, match=r"no column 'kind' \(found columns: 'visitor', "
                                        r"'event', 'item', 'ts'\)\. .*--keep-rows"):
        read_interactions(tmp_path / "log.csv", **opts, keep_rows={"kind": "view"})
    bad = EVENTS.replace("v2,view,p4,22", "v2,view,p4,soon")
    (tmp_path / "bad.csv").write_text(bad, encoding="utf-8")
    with pytest.raises(DataError, match=r"row 7: cannot read time 'soon'"):  # the file's row
        read_interactions(tmp_path / "bad.csv", **opts, keep_rows={"event": "view"})
    for spec in (["event"], ["=view"], ["event="], {"event": []}, 3, ["event=a", "event=b"]):
        with pytest.raises(ParameterError, match="keep_rows"):
            read_interactions(tmp_path / "log.csv", **opts, keep_rows=spec)


def test_keep_rows_over_a_folder_warns_only_for_a_value_no_file_holds(tmp_path, caplog):
    """A day without purchases is no warning when another day has them; the rows kept are
    those of the files one by one."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "d1.csv").write_text("sid,event,item\na,view,p1\na,buy,p2\n")
    (tmp_path / "logs" / "d2.csv").write_text("sid,event,item\nb,view,p3\nb,view,p4\n")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        kept = read_interactions(tmp_path / "logs", session_cols="sid", item_col="item",
                                 keep_rows={"event": ["view", "buy"]})
    assert "no row holds" not in caplog.text
    assert kept["row"].to_list() == [1, 2, 2**40 + 1, 2**40 + 2]
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        read_interactions(tmp_path / "logs", session_cols="sid", item_col="item",
                          keep_rows={"event": ["view", "cart"]})
    assert ("2 interaction files: keep_rows event=view,cart: no row holds 'cart'; column "
            "'event' holds 'view' (3), 'buy' (1)") in caplog.text
