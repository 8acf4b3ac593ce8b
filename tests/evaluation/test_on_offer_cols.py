"""``build --on-offer-cols posted,sold_at`` (``Recommender(on_offer_cols=)``): the catalog's
own dates of when each product was on offer decide which products a held-out case ranks
(the tuning's and ``evaluate retrieval``'s), widened to every click of the product."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data.catalog import Catalog
from prodfusion.data.sessions import Sessions
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import DataError, ParameterError
from prodfusion.evaluation.split import on_offer_note, on_offer_rule, on_offer_windows
from prodfusion.evaluation.tuning import tune_weights
from prodfusion.recommender import Recommender

from .test_on_offer import KW, _archive

DAY = 86400.0


def _dated(rec, posted, ended):
    """``rec`` with its catalog's ``posted`` / ``ended`` columns (strings, blank: none)."""
    frame = rec.catalog.frame.with_columns(pl.Series("posted", posted, pl.Utf8),
                                           pl.Series("ended", ended, pl.Utf8))
    rec.catalog = Catalog(frame, source="listings.csv")
    rec.on_offer_cols = ("posted", "ended")
    return rec


def test_windows_from_the_catalogs_dates_widened_to_every_click():
    """Against the rule written out per product: from the start, or the first click if
    earlier or no start; until the end, or the last click if later; no end: for ever if
    still recommended, the last click if retired; neither a start nor a click: always if
    recommended, never if retired. ISO dates and Unix numbers read alike; the windows hold
    even where nothing is retired."""
    rng = np.random.default_rng(5)
    n = 40
    ids = [f"p{i:02d}" for i in range(n)]
    rec = Recommender.from_embeddings(Catalog(pl.DataFrame({"product_id": ids, "title": ids})), {
        "text": Embeddings(rng.normal(size=(n, 4)).astype(np.float32), np.ones(n, bool), "t")})
    start = rng.uniform(0, 50, n).round() * DAY
    end = start + rng.uniform(1, 30, n).round() * DAY
    has_start, has_end = rng.random(n) < 0.7, rng.random(n) < 0.6
    iso = [str(np.datetime64(int(s), "s")).replace("T", " ") for s in start]
    posted = [x if h else "" for x, h in zip(iso, has_start, strict=True)]
    ended = [f"{e:.0f}" if h else " " for e, h in zip(end, has_end, strict=True)]
    _dated(rec, posted, ended)
    retired = rng.random(n) < 0.4
    rec.retired_ = retired
    clicked = rng.random(n) < 0.6
    rows = [(f"s{i}", ids[i], float(t)) for i in np.flatnonzero(clicked)
            for t in rng.uniform(0, 90, 3) * DAY]
    sessions = Sessions(pl.DataFrame({"session": [r[0] for r in rows],
                                      "position": [j % 3 for j in range(len(rows))],
                                      "product_id": [r[1] for r in rows],
                                      "ts": [r[2] for r in rows]}))
    first, last = on_offer_windows(rec, sessions)
    for i in range(n):
        ts = [r[2] for r in rows if r[1] == ids[i]]
        lo = min(ts + ([start[i]] if has_start[i] else []), default=None)
        want_first = lo if lo is not None else (np.inf if retired[i] else -np.inf)
        if has_end[i]:
            want_last = max([end[i], *ts])
        else:
            want_last = max(ts, default=-np.inf) if retired[i] else np.inf
        assert (first[i], last[i]) == (want_first, want_last), i
    rec.retired_ = None  # nothing retired: the dates still say when each was on offer
    first, last = on_offer_windows(rec, sessions)
    assert np.isfinite(first[has_start]).all() and np.isfinite(last[has_end]).all()
    rec.on_offer_cols = None  # without the dates and nothing retired: every product
    assert on_offer_windows(rec, sessions) is None


def _twins_online_once():
    """:func:`~tests.evaluation.test_on_offer._archive`'s site with nothing retired: the
    sold twins are still in the catalog as products, and only their dates tell they were
    online before the validation cases (their clicks: up to time 100)."""
    rec, sessions = _archive()
    rec.retired_ = None
    n = len(rec.catalog)
    sold = np.arange(n) >= n // 2
    return _dated(rec, ["0" if s else "100" for s in sold],
                  ["100" if s else "" for s in sold]), sessions


def test_a_tuning_ranks_by_the_catalogs_dates_where_nothing_is_retired(monkeypatch):
    """Nothing retired, so the log alone would rank every product: the twins (same titles)
    cost the titles their hits; with the catalog's dates the twins are off offer at the
    validation cases' times and the titles score as among the listings then online. The
    record names the columns in its rule."""
    import prodfusion.evaluation.tuning_scorer as ts

    rec, sessions = _twins_online_once()
    kw = {**KW, "objective": "hitrate@2"}
    on = tune_weights(rec, sessions=sessions, **kw)
    rule = on["split"]["on_offer"]["rule"]
    assert rule == on_offer_rule(rec) and "'posted'" in rule and "'ended'" in rule
    assert on["split"]["on_offer"]["candidates_not_on_offer"] > 0.2
    monkeypatch.setattr(ts, "on_offer_windows", lambda rec, sessions: None)
    off = tune_weights(rec, sessions=sessions, **kw)
    a, b = on["reference_scores"]["text alone"], off["reference_scores"]["text alone"]
    assert a > b + 0.1, (a, b)


def test_dates_at_odds_with_the_log_are_said_and_a_log_without_times_too():
    rec, sessions = _twins_online_once()
    offer = on_offer_windows(rec, sessions)
    assert on_offer_note(rec, sessions, offer) is None  # in agreement
    f = sessions.frame
    off = Sessions(f.with_columns(pl.col("ts") - 10 * DAY))  # ten days off the catalog's
    note = on_offer_note(rec, off, on_offer_windows(rec, off))
    k = f["product_id"].n_unique()  # every clicked product: all have dates
    assert note.startswith(f"warning: {k} of the {k} clicked products with --on-offer-cols")
    untimed = Sessions(f.with_columns(pl.lit(None, pl.Float64).alias("ts")))
    assert on_offer_windows(rec, untimed) is None
    assert "--on-offer-cols is not applied: the interactions have no times" in \
        on_offer_note(rec, untimed, None)


CATALOG = """sku,title,kind,posted,sold_at
0001,PS5 disc edition like new,consoles,2024-05-01 10:00,
0002,Playstation 5 with two controllers,consoles,2024-05-01 11:00,2024-05-03 09:00
0003,PS5 digital must go,consoles,2024-05-02 08:00,
0004,Xbox Series X 1TB,consoles,2024-05-02,
0005,Bugaboo Fox stroller,strollers,2024-05-01,2024-05-02
0006,Bugaboo Fox 2 pram,strollers,2024-05-03,
"""
CLICKS = ("sid,item,ts\n" + "".join(
    f"{s}{i},{a},2024-05-0{d} 12:0{i}\n{s}{i},{b},2024-05-0{d} 12:3{i}\n"
    for i in range(3) for s, a, b, d in (("a", "0001", "0002", 2), ("b", "0005", "0006", 3),
                                         ("c", "0003", "0004", 4))))


def _build(tmp_path, *extra, catalog=CATALOG):
    (tmp_path / "catalog.csv").write_text(catalog, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(CLICKS, encoding="utf-8")
    model = tmp_path / "model"
    code = main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "sku",
                 "--category-col", "kind", "--image-col", "", "--interactions",
                 str(tmp_path / "clicks.csv"), "--session-cols", "sid", "--item-col", "item",
                 "--time-col", "ts", "--p2v-dim", "8", "--workers", "1", "--image", "none",
                 "--text", "none", "--cache-dir", "none", "--tune", "off", "--out", str(model),
                 *extra])
    return model, code


def test_build_records_the_columns_and_add_takes_a_feeds_new_end(tmp_path, capsys):
    model, code = _build(tmp_path, "--on-offer-cols", "posted,sold_at")
    assert code == 0
    out = capsys.readouterr().out
    assert "on offer: from 'posted' (6 of 6 given) until 'sold_at' (2 of 6 given)" in out
    m = json.loads((model / "manifest.json").read_text())
    assert m["settings"]["on_offer_cols"] == ["posted", "sold_at"]
    rec = Recommender.load(model)
    assert rec.on_offer_cols == ("posted", "sold_at")
    first, last = on_offer_windows(rec, Sessions(pl.DataFrame({
        "session": ["x", "x"], "position": [0, 1], "product_id": ["0001", "0003"],
        "ts": [0.0, 1.0]})))
    row = rec.catalog.row_of("0002")
    assert last[row] == np.datetime64("2024-05-03T09:00").astype("datetime64[s]").astype(float)
    # the next feed: 0001 sold on the 4th; the model takes its end, and keeps the rest
    feed = CATALOG.replace("0001,PS5 disc edition like new,consoles,2024-05-01 10:00,",
                           "0001,PS5 disc edition like new,consoles,2024-05-01 10:00,"
                           "2024-05-04 18:00")
    (tmp_path / "feed.csv").write_text(feed, encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(tmp_path / "feed.csv"), "--id-col", "sku",
                 "--category-col", "kind", "--image-col", ""]) == 0
    err = capsys.readouterr().err
    assert "1 product of the model has other posted / sold_at times in" in err
    rec = Recommender.load(model)
    sold = rec.catalog.frame.filter(pl.col("product_id") == "0001")["sold_at"].item()
    assert sold == "2024-05-04 18:00"
    # a feed whose end does not read is refused, the model untouched
    before = (model / "manifest.json").read_bytes()
    (tmp_path / "bad.csv").write_text(feed.replace("2024-05-04 18:00", "soon"),
                                      encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(tmp_path / "bad.csv"), "--id-col", "sku",
                 "--category-col", "kind", "--image-col", ""]) != 0
    assert "bad.csv row 1: cannot read time 'soon' (column 'sold_at'" in capsys.readouterr().err
    assert (model / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("spec, catalog, match", [
    ("posted,gone", CATALOG, "catalog.csv has no column 'gone' (it has 'product_id', 'title', "
                             "'category', 'posted', 'sold_at'); nothing was written"),
    ("posted,sold_at", CATALOG.replace("2024-05-03 09:00", "third of May"),
     "catalog.csv row 2: cannot read time 'third of May' (column 'sold_at'"),
    ("posted,sold_at", CATALOG.replace("2024-05-03 09:00", "2024-04-30"),
     "row 2 ('0002'): on offer until '2024-04-30' (column 'sold_at'), before it went on offer "
     "('2024-05-01 11:00', column 'posted')"),
    ("posted,posted", CATALOG, "names 'posted' as both the start and the end"),
    (",", CATALOG, "names no column"),
])
def test_bad_columns_are_refused_before_any_work(tmp_path, capsys, spec, catalog, match):
    _, code = _build(tmp_path, "--on-offer-cols", spec, catalog=catalog)
    assert code != 0
    assert match in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "model").exists()


def test_evaluate_retrieval_ranks_by_the_catalogs_dates_and_says_so(tmp_path, angled_titles):
    """Nothing retired; p4 (p0's nearest title) was posted at time 4: the held-out p0 → p2
    at time 3 ranks p1, p2 and hits at k=2, where without the dates p4 comes first and it
    misses; the record and the report name the columns."""
    from prodfusion.evaluation.report import write_report
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    kw = dict(test_fraction=0.4, k=2, variants=["intermediate:text"], n_boot=20,
              progress=False, keep_cases=True)

    def hits(res):
        (case,) = [c for (label, _), c in res["cases"].items() if "text" in label]
        return case["hit"].tolist()

    rec, sessions = angled_titles(posted=["0", "0", "0", "0", "4", "0"])
    every = evaluate_retrieval(rec, sessions=sessions, **kw)
    rec.on_offer_cols = ("posted", None)
    dated = evaluate_retrieval(rec, sessions=sessions, **kw)
    assert sorted(hits(every)) == [0.0, 1.0] and hits(dated) == [1.0, 1.0]
    cfg = dated["config"]["catalog"]
    assert cfg["on_offer_cols"] == ["posted", None] and "'posted'" in cfg["on_offer"]
    assert "on_offer" not in every["config"]["catalog"]
    dated.pop("cases")
    write_report(dated, tmp_path)
    said = " ".join((tmp_path / "report.md").read_text("utf-8").split())
    assert ("Each case ranked among the products on offer at its time, as the tuning "
            "validates: from its 'posted' time") in said
    assert "The catalog's columns 'posted' (`--on-offer-cols`)" in said


def test_python_build_takes_the_columns(tmp_path):
    from prodfusion import build
    from prodfusion.data import clean_sessions, read_catalog, read_interactions

    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(CLICKS, encoding="utf-8")
    cat = read_catalog(tmp_path / "catalog.csv", id_col="sku", category_col="kind")
    sessions = clean_sessions(read_interactions(tmp_path / "clicks.csv", session_cols=["sid"],
                                                item_col="item", time_col="ts"), cat)
    rec = build(cat, sessions, text="none", image="none", tune="off", p2v_dim=8, workers=1,
                on_offer_cols=",sold_at")
    assert rec.on_offer_cols == (None, "sold_at")
    rec.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.on_offer_cols == (None, "sold_at")
    loaded.on_offer_cols = "posted,sold_at"  # set as a string on a loaded model: read so
    assert on_offer_windows(loaded, sessions) is not None and "'posted'" in on_offer_rule(loaded)
    loaded.save(tmp_path / "m2")
    assert Recommender.load(tmp_path / "m2").on_offer_cols == ("posted", "sold_at")
    with pytest.raises(ParameterError, match="on_offer_cols=: .*has no column 'sold'"):
        build(cat, sessions, text="none", image="none", tune="off", on_offer_cols="posted,sold")


def test_tune_and_evaluate_take_the_columns_for_a_model_built_without(tmp_path, capsys):
    """``tune --on-offer-cols`` ranks by them and records them with the tuning (a column the
    model's catalog lacks: refused, the folder untouched); ``evaluate retrieval
    --on-offer-cols none`` leaves them out for that evaluation only."""
    model, code = _build(tmp_path)
    assert code == 0 and "on_offer_cols" not in json.loads(
        (model / "manifest.json").read_text())["settings"]
    before = (model / "manifest.json").read_bytes()
    assert main(["tune", str(model), "--on-offer-cols", "posted,sold"]) != 0
    assert "has no column 'sold'" in capsys.readouterr().err
    assert (model / "manifest.json").read_bytes() == before
    assert main(["tune", str(model), "--on-offer-cols", "posted,sold_at", "--step", "0.5"]) == 0
    assert "validation: each case ranked among the products on offer at its time: from its " \
           "'posted' time" in " ".join(capsys.readouterr().err.split())
    m = json.loads((model / "manifest.json").read_text())
    assert m["settings"]["on_offer_cols"] == ["posted", "sold_at"]
    assert "'sold_at'" in m["tuning"]["split"]["on_offer"]["rule"]
    for spec, out in (("none", "ev_none"), (None, "ev")):
        args = ["evaluate", "retrieval", str(model), "--out", str(tmp_path / out),
                "--n-boot", "20", "--variants", "cooc"]
        assert main(args + (["--on-offer-cols", spec] if spec else [])) == 0
    cfg = {out: json.loads((tmp_path / out / "results.json").read_text())["retrieval"]["config"]
           ["catalog"] for out in ("ev", "ev_none")}
    assert cfg["ev"]["on_offer_cols"] == ["posted", "sold_at"] and "on_offer" in cfg["ev"]
    assert "on_offer_cols" not in cfg["ev_none"] and "on_offer" not in cfg["ev_none"]
    for spec, out in (("none", "rp_none"), (None, "rp")):  # replay likewise
        args = ["evaluate", "replay", str(model), "--a", "cooc", "--out", str(tmp_path / out)]
        assert main(args + (["--on-offer-cols", spec] if spec else [])) == 0
    cfg = {out: json.loads((tmp_path / out / "results.json").read_text())["replay"]["config"]
           ["catalog"] for out in ("rp", "rp_none")}
    assert cfg["rp"]["on_offer_cols"] == ["posted", "sold_at"] and "on_offer" in cfg["rp"]
    assert "on_offer_cols" not in cfg["rp_none"] and "on_offer" not in cfg["rp_none"]
    assert Recommender.load(model).on_offer_cols == ("posted", "sold_at")  # evaluate: as was


def test_a_build_retiring_products_names_date_columns_it_could_read(tmp_path, capsys):
    """``--recommend-rows`` on a catalog with a ``posted`` and a ``sold_at`` column of times:
    the build suggests ``--on-offer-cols posted,sold_at``; given, or without such columns
    (a number named like a start, ``start_price``, is no time), it says nothing."""
    hint = ("hint: the catalog's 'posted' and 'sold_at' look like when each product was on "
            "offer: --on-offer-cols posted,sold_at lets the tuning")
    for extra, catalog, said in (
            ((), CATALOG, True),
            (("--on-offer-cols", "posted,sold_at"), CATALOG, False),
            ((), CATALOG.replace("posted,sold_at", "start_price,sale").replace(
                "2024-05-0", "1").replace(" 1", "").replace(":", ""), False)):
        folder = tmp_path / str(len(extra)) / ("a" if said else "b")
        folder.mkdir(parents=True)
        _, code = _build(folder, "--recommend-rows", "kind=consoles", *extra,
                         catalog=catalog)
        assert code == 0
        assert (hint in " ".join(capsys.readouterr().err.split())) is said


def test_the_logs_time_format_or_iso_dates_in_the_catalog():
    """The build's ``--time-format`` (the log's layout) reads the catalog's dates where they
    follow it; a catalog exporting ISO dates beside a day-first log reads too; a column
    neither reads is refused naming both."""
    from prodfusion.data.interactions import column_times

    frame = pl.DataFrame({"day_first": ["07.05.2024 10:00", ""],
                          "iso": ["2024-05-07 10:00", "2024-05-08"],
                          "neither": ["7 May", "8 May"]})
    want = np.datetime64("2024-05-07T10:00").astype("datetime64[s]").astype(float)
    fmt = "%d.%m.%Y %H:%M"
    a = column_times(frame, "day_first", "c.csv", fmt)
    assert a[0] == want and np.isnan(a[1])
    assert column_times(frame, "iso", "c.csv", fmt)[0] == want
    with pytest.raises(DataError, match=r"column 'neither' reads neither with --time-format "
                                        r"'%d.%m.%Y %H:%M' \(the log's\) nor as numbers"):
        column_times(frame, "neither", "c.csv", fmt)
