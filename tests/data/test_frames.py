"""Tables already in memory (pandas, polars, pyarrow) read as the files they came from: the
catalog, the click log and pairs, with the messages a notebook user needs."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import prodfusion
from prodfusion import Recommender
from prodfusion.data import (
    clean_sessions,
    make_synthetic,
    read_catalog,
    read_interactions,
    read_pairs,
)
from prodfusion.errors import DataError, ParameterError


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("shop"), n_products=120, n_categories=4,
                          n_sessions=500, seed=3)


def _same_catalog(a, b):
    assert a.ids.tolist() == b.ids.tolist()
    for col in ("title", "image", "category", "brand", "price"):
        assert a.frame[col].to_list() == b.frame[col].to_list(), col


@pytest.mark.parametrize("kind", ["pandas", "polars", "lazy", "arrow", "batch", "capsule"])
def test_a_catalog_in_memory_reads_as_its_file(shop, kind, monkeypatch):
    # pandas as a notebook reads it: ids as int64 (the leading zeros go, as in the log below),
    # titles as strings, prices as floats; photo paths relative to the file's folder, which
    # for a table in memory is the working folder
    monkeypatch.chdir(shop.catalog.parent)
    df = pd.read_csv(shop.catalog)
    assert df["product_id"].dtype == np.int64
    table = {"pandas": df, "polars": pl.from_pandas(df), "lazy": pl.from_pandas(df).lazy(),
             "arrow": pa.Table.from_pandas(df), "batch": pa.RecordBatch.from_pandas(df),
             "capsule": _Capsule(pa.Table.from_pandas(df))}[kind]
    got = read_catalog(table)
    # the same rows written back to a file and read from it
    df.to_csv(shop.catalog.parent / "as_written.csv", index=False)
    _same_catalog(got, read_catalog(shop.catalog.parent / "as_written.csv"))
    assert got.ids[0] == str(df["product_id"][0])  # '1', not '1.0' or '000001'
    assert got.frame["image"][0] == os.path.join(os.getcwd(), df["image"][0])


class _Capsule:
    """Anything that hands out an Arrow stream (DuckDB's results, …)."""

    def __init__(self, table):
        self.table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self.table.__arrow_c_stream__(requested_schema)


def test_pandas_types_become_the_text_a_file_would_hold(tmp_path):
    df = pd.DataFrame({
        "sku": [101.0, np.nan, 103.0],          # an integer column with a gap: floats
        "name": ["Red shoe", "Blue hat", None],
        "kind": pd.Categorical(["shoes", "hats", "shoes"]),
        "mixed": ["A-1", 7, 2.5],                # a sheet's column of ids and numbers
        "price": [9.5, 10.0, 11.25],
    }).set_index("sku")                          # the ids as the index
    cat_frame = read_catalog(df.iloc[[0, 2]], id_col="sku", title_col="name",
                             category_col="kind", image_col=None)
    assert cat_frame.ids.tolist() == ["101", "103"]
    assert cat_frame.frame["category"].to_list() == ["shoes", "shoes"]
    assert cat_frame.frame["mixed"].to_list() == ["A-1", "2.5"]
    assert cat_frame.frame["price"].to_list() == ["9.5", "11.25"]
    assert cat_frame.source == "<pandas DataFrame>"
    # the gap itself: named by row, counted from 1 as a file's data rows are
    with pytest.raises(DataError, match=r"^<pandas DataFrame> row 2: empty product id "
                                        r"\(column 'sku'"):
        read_catalog(df, id_col="sku", title_col="name", image_col=None)
    # a column asked for that is not there: the likely one named, as for a file
    # (as parameters: a table in memory has no command line)
    with pytest.raises(DataError, match=r"^<pandas DataFrame>: no column 'title' .*Name the "
                                        r"right column with title_col=\. 'name' looks like "
                                        r"it: title_col='name'\.$"):
        read_catalog(df, id_col="sku", title_col="title", image_col=None)


def test_duplicate_column_names_and_unused_file_options_are_named(caplog):
    twice = pd.DataFrame([["1", "a", "b"]], columns=["product_id", "title", "title"])
    with pytest.raises(DataError, match=r"<pandas DataFrame>: column name\(s\) \['title'\] "
                                        r"appear more than once"):
        read_catalog(twice)
    photo = pd.DataFrame({"product_id": ["1"], "title": ["a"], "Bild": ["a.jpg"]})
    with caplog.at_level(logging.WARNING, logger="prodfusion"):
        assert read_catalog(photo).image_paths == [None]
    assert ("no 'image' column, so the products have no photos; 'Bild' may be one: "
            "image_col='Bild' (or image_col=None to say there is none)") in caplog.text
    one = pl.DataFrame({"product_id": ["1", "2"], "title": ["a", "b"]})
    with caplog.at_level(logging.WARNING, logger="prodfusion"):
        cat = read_catalog(one, sep=";", encoding="cp1252")
    assert len(cat) == 2
    assert "<polars DataFrame>: sep=, encoding= not used" in caplog.text


@pytest.mark.parametrize("tz", [None, "Europe/Berlin"])
def test_a_click_log_in_memory_reads_its_datetimes_as_times(shop, tz):
    text = pd.read_csv(shop.interactions, dtype=str)
    typed = pd.read_csv(shop.interactions, parse_dates=["timestamp"])
    if tz:  # the same instants in Berlin's wall-clock time
        typed["timestamp"] = typed["timestamp"].dt.tz_localize("UTC").dt.tz_convert(tz)
    want = read_interactions(shop.interactions, session_cols="session_id", time_col="timestamp")
    for table in (typed, pl.from_pandas(typed), pa.Table.from_pandas(typed)):
        got = read_interactions(table, session_cols="session_id", time_col="timestamp")
        assert got["ts"].to_list() == want["ts"].to_list()
        assert got["session"].to_list() == want["session"].to_list()
        assert got["row"].to_list() == want["row"].to_list()
    # ids as int64 in the log: the same ids as the catalog read from pandas the same way
    cat = read_catalog(pd.read_csv(shop.catalog), image_col=None)
    sessions = clean_sessions(read_interactions(typed, session_cols="session_id",
                                                time_col="timestamp"), cat)
    assert sessions.n_clicks == clean_sessions(want, read_catalog(shop.catalog)).n_clicks
    # several tables read one after the other, as several files are
    halves = [text.iloc[:1000], text.iloc[1000:]]
    both = read_interactions(halves, session_cols="session_id", time_col="timestamp")
    assert both["ts"].to_list() == want["ts"].to_list()


def test_a_log_in_memory_is_checked_as_a_file_is():
    log = pd.DataFrame({"visit": ["v1", "v1", None], "item": [1, 2, 3],
                        "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    with pytest.raises(DataError, match=r"^<pandas DataFrame> row 3: empty session key "
                                        r"\(column 'visit'"):
        read_interactions(log, session_cols="visit", item_col="item", time_col="when")
    with pytest.raises(DataError, match=r"<pandas DataFrame>.*'item' looks like it: "
                                        r"item_col='item'\.$"):
        read_interactions(log, session_cols="visit", time_col="when")
    pairs = read_pairs(pd.DataFrame({"a": [1, 2], "b": [2, 3]}), a_col="a", b_col="b")
    assert [list(s) for s in clean_sessions(pairs, min_length=2)] == [["1", "2"], ["2", "3"]]


def test_the_builders_name_read_catalog_and_read_interactions_for_raw_tables(shop):
    df = pd.read_csv(shop.catalog)
    log = pd.read_csv(shop.interactions)
    for call in (lambda: prodfusion.build(df), lambda: Recommender(text=None).build(df)):
        with pytest.raises(ParameterError, match=r"'catalog' is a pandas DataFrame; read it "
                                                 r"first with read_catalog\(frame, id_col="):
            call()
    with pytest.raises(ParameterError, match=r"^Catalog\(\) takes a polars DataFrame with the "
                                             r"standard columns; got a pandas DataFrame: "
                                             r"read_catalog\(frame, id_col=…"):
        prodfusion.Catalog(df)
    cat = read_catalog(df, image_col=None)
    with pytest.raises(ParameterError, match=r"^clean_sessions\(\): 'interactions' is a pandas "
                                             r"DataFrame as it came; read it first with "
                                             r"read_interactions\(frame, session_cols="):
        clean_sessions(log, cat)
    with pytest.raises(ParameterError, match=r"^clean_sessions\(\): 'catalog' is a pandas "
                                             r"DataFrame"):
        clean_sessions(pl.from_pandas(log), df)
    with pytest.raises(ParameterError, match=r"'sessions' is a DataFrame of interactions; "
                                             r"clean it into sessions first: clean_sessions\("
                                             r"read_interactions\(frame_or_file"):
        prodfusion.build(cat, log)
    # and the whole notebook path, DataFrames in, a model out
    sessions = clean_sessions(read_interactions(log, session_cols="session_id",
                                                time_col="timestamp"), cat)
    rec = prodfusion.build(cat, sessions, text="none", image="none", tune="off", p2v_dim=8,
                           p2v_epochs=2, workers=1)
    ids, scores = rec.similar(cat.ids[0], k=5)
    assert len(ids) == 5 and cat.ids[0] not in ids.tolist()


def test_parquet_ids_written_from_pandas_with_a_gap_read_as_integers(tmp_path):
    # pandas writes an integer column with a missing value as doubles
    pd.DataFrame({"product_id": [5.0, 6.0, np.nan], "title": ["a", "b", "c"]}).iloc[:2].to_parquet(
        tmp_path / "c.parquet")
    assert read_catalog(tmp_path / "c.parquet").ids.tolist() == ["5", "6"]


def test_every_column_type_becomes_text_and_lists_of_photos_stay_lists(tmp_path):
    import datetime as dt
    import decimal

    typed = pl.DataFrame({
        "product_id": ["1"], "title": ["a"], "day": [dt.date(2024, 1, 2)],
        "at": [dt.time(10, 0)], "wait": [dt.timedelta(seconds=5)],
        "price": [decimal.Decimal("1.50")], "raw": [b"ab"], "kind": [None],
        "size": pl.Series(["M"], dtype=pl.Enum(["S", "M"]))})
    got = read_catalog(typed, image_col=None).frame.row(0, named=True)
    assert {k: got[k] for k in ("day", "at", "wait", "price", "raw", "kind", "size")} == {
        "day": "2024-01-02", "at": "10:00:00", "wait": "0:00:05", "price": "1.50",
        "raw": "ab", "kind": None, "size": "M"}
    # pandas: a column of photo lists beside one mixing ids and numbers (converted alone)
    df = pd.DataFrame({"product_id": ["1", "2"], "title": ["a", "b"],
                       "image": [["x.jpg", "y.jpg"], ["z.jpg"]], "ref": [7, "A-1"]})
    cat = read_catalog(df, image_root=tmp_path)
    assert cat.frame["image"].to_list() == [str(tmp_path / "x.jpg"), str(tmp_path / "z.jpg")]
    assert cat.frame["ref"].to_list() == ["7", "A-1"]
