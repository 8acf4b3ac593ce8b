"""``build --recommend-rows`` / ``add --recommend-rows``: a catalog that keeps products no
longer for sale (a classifieds site's sold listings, kept for their clicks) recommends only
the rows with the values named; the others are retired."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data import clean_sessions, read_catalog, read_interactions
from prodfusion.errors import DataError, ParameterError
from prodfusion.recommender import Recommender

CATALOG = """sku,title,kind,state
0001,PS5 disc edition like new,consoles,active
0002,Playstation 5 with two controllers,consoles,sold
0003,PS5 digital must go,consoles,expired
0004,Xbox Series X 1TB,consoles,active
0005,Bugaboo Fox stroller,strollers,sold
0006,Bugaboo Fox 2 pram,strollers,active
0007,Cybex Priam stroller,strollers,active
0008,IKEA Kivik sofa,sofas,sold
0009,Kivik 3 seat couch,sofas,active
0010,Corner sofa grey,sofas, active
"""
#: the sold and expired listings carry most of the clicks, as on a classifieds site
SESSIONS = ("sid,item,ts\n" + "".join(
    f"{s}{i},{a},{2 * i}\n{s}{i},{b},{2 * i + 1}\n"
    for i in range(3) for s, a, b in (("a", "0002", "0003"), ("b", "0005", "0006"),
                                      ("c", "0008", "0009"), ("d", "0001", "0002"),
                                      ("e", "0004", "0001"), ("f", "0007", "0005"))))
SOLD = {"0002", "0003", "0005", "0008"}


def _build(tmp_path, *extra):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    model = tmp_path / "model"
    code = main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--id-col", "sku",
                 "--category-col", "kind", "--image-col", "", "--interactions",
                 str(tmp_path / "clicks.csv"), "--session-cols", "sid", "--item-col", "item",
                 "--time-col", "ts", "--p2v-dim", "8", "--workers", "1", "--image", "none",
                 "--cache-dir", "none", "--tune", "off", "--out", str(model), *extra])
    return model, code


def _listed(model) -> set[str]:
    rec = Recommender.load(model)
    ids, _ = rec.similar_batch(rec.catalog.ids.tolist(), k=5)
    return {str(x) for x in ids.ravel().tolist() if x}


def test_build_recommends_only_the_rows_named_and_learns_from_the_others(tmp_path, capsys):
    model, code = _build(tmp_path, "--recommend-rows", "state=active")
    assert code == 0
    cap = capsys.readouterr()
    assert ("recommended: the 6 of 10 products with state=active (--recommend-rows); the "
            "other 4 keep their vectors, clicks and own lists but never enter a list "
            "(retired)") in cap.err
    assert "recommended: 6 of 10 products (4 retired" in cap.out  # the build's summary
    rec = Recommender.load(model)
    assert {p for p, r in zip(rec.catalog.ids, rec.retired_, strict=True) if r} == SOLD
    clicks = rec.embeddings_["clicks"].mask
    assert all(clicks[rec.catalog.row_of(p)] for p in SOLD)  # their clicks trained the model
    listed = _listed(model)
    assert listed and not listed & SOLD  # never in a list, under the model's own fusion
    ids, _ = rec.similar("0002", k=3)  # a sold listing's own page still gets a list
    assert len(ids) == 3 and not set(ids.tolist()) & SOLD
    # a value with spaces around it ("0010": " active") matches
    assert not rec.retired_[rec.catalog.row_of("0010")]
    m = json.loads((model / "manifest.json").read_text())
    assert m["data"]["catalog"]["recommend_rows"] == {"state": ["active"]}
    assert m["counts"]["retired"] == 4
    # without the option nothing is retired (and nothing is recorded)
    plain, code = _build(tmp_path / "plain")
    assert code == 0 and Recommender.load(plain).retired_ is None
    assert json.loads((plain / "manifest.json").read_text())["data"]["catalog"][
        "recommend_rows"] is None


def test_a_value_no_product_has_or_an_unknown_column_is_refused_before_any_work(
        tmp_path, capsys):
    model, code = _build(tmp_path, "--recommend-rows", "state=actve")
    assert code != 0 and not model.exists()
    err = capsys.readouterr().err
    assert "--recommend-rows: no product of" in err and ("has state=actve, so none would be "
                                                          "recommended; column 'state' holds "
                                                          "'active' (6), 'sold' (3)") in err
    model, code = _build(tmp_path, "--recommend-rows", "status=active")
    assert code != 0 and not model.exists()
    assert "--recommend-rows names no column 'status'" in (err := capsys.readouterr().err) \
        and "'state'" in err
    # the file's name of a column read as the category is understood
    model, code = _build(tmp_path, "--recommend-rows", "kind=sofas,strollers")
    assert code == 0
    assert _listed(model) <= {"0005", "0006", "0007", "0008", "0009", "0010"}
    with pytest.raises(SystemExit):
        main(["build", "--catalog", "x.csv", "--out", "m", "--recommend-rows", "state"])


def test_add_applies_the_builds_rows_to_each_feed(tmp_path, capsys):
    model, code = _build(tmp_path, "--recommend-rows", "state=active")
    assert code == 0
    capsys.readouterr()
    # the next day: 0001 sold, 0005 back on sale (relisted), a new sold one and a new one
    feed = tmp_path / "feed.csv"
    feed.write_text(CATALOG.replace("0001,PS5 disc edition like new,consoles,active",
                                    "0001,PS5 disc edition like new,consoles,sold")
                    .replace("0005,Bugaboo Fox stroller,strollers,sold",
                             "0005,Bugaboo Fox stroller,strollers,active")
                    + "0011,PS5 slim,consoles,sold\n0012,Babyzen Yoyo stroller,strollers,"
                      "active\n", encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    cap = capsys.readouterr()
    assert "from the model's record:" in cap.err and "--recommend-rows state=active" in cap.err
    assert "2 of the feed's products without state=active retired" in cap.out
    assert "1 back in the feed recommended again" in cap.out
    rec = Recommender.load(model)
    retired = {p for p, r in zip(rec.catalog.ids, rec.retired_, strict=True) if r}
    assert retired == (SOLD - {"0005"}) | {"0001", "0011"}
    listed = _listed(model)
    assert not listed & retired and "0005" in listed
    # nothing changed in the next feed: nothing to do
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none"]) == 0
    assert "none is retired or recommended again; nothing was written" in \
        capsys.readouterr().out
    # `--recommend-rows all`: the feed's rows leave every product as it is
    feed.write_text(CATALOG.replace(",sold", ",active"), encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--recommend-rows", "all"]) == 0
    assert Recommender.load(model).retired_.sum() == len(retired)
    capsys.readouterr()
    # both rules at once, on the first day's rows: the feed drops 0004 and 0012 (missing),
    # marks 0005 and 0006 sold, and 0001 on sale again
    feed.write_text("\n".join(ln for ln in CATALOG.replace(
        "0006,Bugaboo Fox 2 pram,strollers,active", "0006,Bugaboo Fox 2 pram,strollers,sold"
    ).splitlines() if not ln.startswith("0004")) + "\n", encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(feed), "--cache-dir", "none",
                 "--retire-missing"]) == 0
    out = capsys.readouterr().out
    assert ("2 products no longer in the feed retired, 2 of the feed's products without "
            "state=active retired (never recommended; their own lists still served), 1 back "
            "in the feed recommended again") in out
    rec = Recommender.load(model)
    assert {p for p, r in zip(rec.catalog.ids, rec.retired_, strict=True) if r} == \
        (SOLD | {"0004", "0006", "0011", "0012"})
    # a feed without the recorded column is refused, the model untouched
    before = (model / "manifest.json").read_text()
    (tmp_path / "bare.csv").write_text("sku,title,kind\n0013,PS5,consoles\n", encoding="utf-8")
    assert main(["add", str(model), "--catalog", str(tmp_path / "bare.csv"),
                 "--cache-dir", "none"]) != 0
    assert "no column 'state'" in capsys.readouterr().err
    assert (model / "manifest.json").read_text() == before


def test_retire_missing_refusal_names_recommend_rows(tmp_path, capsys):
    model, code = _build(tmp_path)
    assert code == 0
    live = tmp_path / "live.csv"  # the listings on sale only: most of the archive "missing"
    live.write_text("sku,title,kind\n0001,PS5 disc edition like new,consoles\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["add", str(model), "--catalog", str(live), "--cache-dir", "none",
                 "--retire-missing"]) != 0
    err = capsys.readouterr().err
    assert "--retire-missing would retire 9 of the model's 10 products" in err
    assert "--recommend-rows (e.g. status=active)" in err


def test_a_tuned_build_says_which_products_its_tuning_ranks(tmp_path, capsys):
    """With the clicks' times, each validation case ranks the products on offer then (the
    log's first to last click of a retired one); without them, every product, said as a
    note naming what it costs."""
    from prodfusion.pipeline import BUILD_DEFAULTS, tune_after_build

    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    cat = read_catalog(tmp_path / "catalog.csv", id_col="sku", category_col="kind")
    from prodfusion import build

    for time_col in ("ts", None):
        sessions = clean_sessions(read_interactions(tmp_path / "clicks.csv",
                                                    session_cols=["sid"], item_col="item",
                                                    time_col=time_col), cat)
        rec = build(cat, sessions, text="none", image="none", tune="off", p2v_dim=8,
                    workers=1, recommend_rows={"state": "active"})
        capsys.readouterr()
        opts = SimpleNamespace(**{**BUILD_DEFAULTS, "p2v_dim": 8, "workers": 1}, corpus=None,
                               interactions=True, pairs=False)
        assert tune_after_build(opts, rec, (sessions, None)) == (None, None)  # too few cases
        err = " ".join(capsys.readouterr().err.split())
        assert "not tuned" in err
        timed = ("each case ranked among the products on offer at its time: clicked at or "
                 "before it and, if retired since, clicked at or after it")
        untimed = ("the validation ranks each case among all 10 products, the 4 retired ones "
                   "too: the interactions have no times")
        assert (timed in err, untimed in err) == ((True, False) if time_col else (False, True))
        if time_col:
            assert "(4 of the 10 products retired)" in err


def test_python_build_takes_recommend_rows(tmp_path):
    from prodfusion import build

    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    cat = read_catalog(tmp_path / "catalog.csv", id_col="sku", category_col="kind")
    sessions = clean_sessions(read_interactions(tmp_path / "clicks.csv", session_cols=["sid"],
                                                item_col="item", time_col="ts"), cat)
    rec = build(cat, sessions, text="none", image="none", tune="off", p2v_dim=8,
                workers=1, recommend_rows={"state": "active"})
    assert {p for p, r in zip(rec.catalog.ids, rec.retired_, strict=True) if r} == SOLD
    ids, _ = rec.similar_batch(rec.catalog.ids.tolist(), k=4)
    assert not {x for x in ids.ravel().tolist() if x} & SOLD
    with pytest.raises(ParameterError, match=r"recommend_rows=: no product .* has state=gone"):
        build(cat, sessions, text="none", image="none", tune="off",
              recommend_rows={"state": "gone"})
    with pytest.raises(DataError, match="recommend_rows= names no column 'status'"):
        build(cat, sessions, text="none", image="none", tune="off",
              recommend_rows="status=active")
    np.testing.assert_array_equal(
        cat.rows_where({"category": ["sofas"], "state": "active"}, "test"),
        (cat.frame["category"] == "sofas").to_numpy()
        & (cat.frame["state"].str.strip_chars() == "active").to_numpy())
    assert isinstance(cat.frame, pl.DataFrame)


def test_a_log_mostly_of_products_left_out_names_recommend_rows_once(tmp_path, caplog):
    from prodfusion.data.interactions import unknown_ids_said

    (tmp_path / "live.csv").write_text(
        "\n".join(ln for ln in CATALOG.splitlines() if "sold" not in ln and "expired" not in ln
                  and not ln.startswith("0001")) + "\n", encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    cat = read_catalog(tmp_path / "live.csv", id_col="sku", category_col="kind")
    log = read_interactions(tmp_path / "clicks.csv", session_cols=["sid"], item_col="item",
                            time_col="ts")
    with caplog.at_level("WARNING", logger="prodfusion"):
        clean_sessions(log, cat)
        with unknown_ids_said():  # the build's second reading, to tune
            clean_sessions(log, cat)
    said = [r.getMessage() for r in caplog.records if "name products that are not in the "
            "catalog" in r.getMessage()]
    assert len(said) == 1 and "24 of 36 interaction rows" in said[0]
    assert "--recommend-rows status=active" in said[0]
    with caplog.at_level("WARNING", logger="prodfusion"):
        clean_sessions(log, cat)  # outside the block: said again
    assert sum("name products that are not" in r.getMessage() for r in caplog.records) == 2


def test_evaluate_retrieval_ranks_retired_products_as_when_the_clicks_were_made(
        tmp_path, angled_titles):
    """Held out: p0 → p4 (p4, p0's nearest title, sold since: retired). The served list of
    p0 leaves p4 out; the evaluation ranks it as it was ranked when the click was made, and
    its report says so."""
    from prodfusion.evaluation.report import write_report
    from prodfusion.evaluation.retrieval import evaluate_retrieval

    rec, sessions = angled_titles()
    kw = dict(sessions=sessions, test_fraction=0.4, k=1, variants=["intermediate:text"],
              n_boot=20, progress=False)
    before = evaluate_retrieval(rec, **kw)
    assert rec.similar("p0", k=1)[0].tolist() == ["p4"]
    rec.retire(["p4"])
    assert rec.similar("p0", k=1)[0].tolist() == ["p1"]  # served: p4 left out
    after = evaluate_retrieval(rec, **kw)
    assert after["rows"] == before["rows"] and after["paired"] == before["paired"]
    row = next(r for r in after["rows"] if r["slice"] == "all")
    assert row["hit_rate"]["value"] > 0  # p0 → p4 counted a hit, as ranked when clicked
    assert before["config"]["catalog"]["n_retired"] == 0
    assert after["config"]["catalog"]["n_retired"] == 1
    report = write_report(after, tmp_path / "rep")
    text_md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "1 of the model's 6 products are retired" in text_md and report
    write_report(before, tmp_path / "rep0")
    assert "are retired" not in (tmp_path / "rep0" / "report.md").read_text(encoding="utf-8")
    from prodfusion.evaluation.replay import replay

    rkw = dict(model=rec, sessions=sessions, test_fraction=0.4, k=1, progress=False)
    res = replay("intermediate:text", "intermediate:text", **rkw)
    rec.retire(["p4"], retired=False)
    plain = replay("intermediate:text", "intermediate:text", **rkw)
    assert res["sources"] == plain["sources"]  # shown as when the views were made
    assert res["config"]["catalog"]["n_retired"] == 1
    assert plain["config"]["catalog"]["n_retired"] == 0
    write_report(res, tmp_path / "rp")
    assert "1 of the model's 6 products are retired" in (tmp_path / "rp" / "report.md"
                                                          ).read_text(encoding="utf-8")


def test_an_index_mostly_retired_scores_the_rows_left_exactly(monkeypatch):
    """95 % of 6,000 products retired: an HNSW model lists what exact search lists (the few
    rows left are scored exactly, not fetched through the graph), never a retired one."""
    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.index.faiss_index import HNSWIndex

    n = 6000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    ids = [f"p{i}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    emb = {"text": Embeddings(x, np.ones(n, bool), "t")}
    gone = [ids[i] for i in np.flatnonzero(rng.random(n) < 0.95)]
    got = {}
    for kind in ("hnsw", "exact"):
        rec = Recommender.from_embeddings(cat, emb, fusion="intermediate", index=kind)
        assert len(rec.similar(ids[0], k=15)[0]) == 15  # the index built, none retired
        rec.retire(gone)
        with monkeypatch.context() as m:
            if kind == "hnsw":  # the graph is not walked for the 5 % left
                m.setattr(HNSWIndex, "search", lambda *a, **k: pytest.fail("graph walked"))
            got[kind] = rec.similar_batch(ids[:60], k=15)
    assert got["hnsw"][0].tolist() == got["exact"][0].tolist()
    np.testing.assert_allclose(got["hnsw"][1], got["exact"][1], rtol=1e-5)
    assert not set(got["hnsw"][0].ravel().tolist()) & set(gone)
