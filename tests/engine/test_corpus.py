"""Session preparation at scale: ``prepare_corpus`` over many files, locally and on Ray, equals
``clean_sessions`` + ``write_corpus`` on the concatenated log; ``build --corpus`` trains on it."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data import Catalog, clean_sessions, read_interactions
from prodfusion.encoders.clicks import MAX_SESSION_TOKENS, write_corpus
from prodfusion.engine import make_executor
from prodfusion.engine.corpus import CorpusFile, prepare_corpus
from prodfusion.errors import DataError, ParameterError, ProdfusionError

N_PRODUCTS = 60


def _log(rng, n_sessions: int, start_ts: int, prefix: str) -> pl.DataFrame:
    rows = []
    for s in range(n_sessions):
        # sessions share keys across files (s % 40): a session may span several files
        key = f"s{s % 40}"
        for j in range(int(rng.integers(1, 7))):
            pid = f"p{int(rng.integers(N_PRODUCTS + 5))}"  # p60..p64 are not in the catalog
            rows.append((key, pid, start_ts + int(rng.integers(0, 50)) + j))
            if rng.random() < 0.15:  # an immediate repeat, collapsed by cleaning
                rows.append((key, pid, start_ts + j))
    return pl.DataFrame(rows, schema=["session_id", "product_id", "ts"], orient="row")


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    rng = np.random.default_rng(5)
    d = tmp_path_factory.mktemp("corpus_logs")
    _log(rng, 70, 1000, "a").write_csv(d / "day1.csv")
    _log(rng, 50, 500, "b").write_parquet(d / "day2.parquet")  # earlier times than day 1
    long = pl.DataFrame({"session_id": ["long"] * (MAX_SESSION_TOKENS + 7),
                         "product_id": [f"p{i % 9}" for i in range(MAX_SESSION_TOKENS + 7)],
                         "ts": list(range(MAX_SESSION_TOKENS + 7))})
    pl.concat([_log(rng, 30, 2000, "c"), long]).write_csv(d / "day3.tsv", separator="\t")
    catalog = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(N_PRODUCTS)],
                                    "title": [f"t{i}" for i in range(N_PRODUCTS)]}))
    return d, [d / "day1.csv", d / "day2.parquet", d / "day3.tsv"], catalog


def _reference(files, catalog, tmp_path, **clean):
    """The single-process path: read every file, number rows across files, clean, write."""
    frames = [read_interactions(f, session_cols="session_id", item_col="product_id",
                                time_col="ts").with_columns(pl.col("row") + (i << 40))
              for i, f in enumerate(files)]
    sessions = clean_sessions(pl.concat(frames), catalog, **clean)
    sessions.to_parquet(tmp_path / "sessions.parquet")
    stats = write_corpus(tmp_path / "sessions.parquet", tmp_path / "ref.txt")
    return sessions, stats, (tmp_path / "ref.txt").read_bytes()


def test_local_corpus_equals_single_process_cleaning(logs, tmp_path):
    d, files, catalog = logs
    sessions, stats, ref = _reference(files, catalog, tmp_path, max_length=None)
    assert stats["n_split"] == 1 and sessions.report.n_unknown_rows > 0  # the data exercises both
    assert sessions.report.n_repeats_collapsed > 0
    seen = set()
    for buckets in (1, 3, 7):
        out = tmp_path / f"corpus{buckets}.txt"
        corpus = prepare_corpus(files, out, catalog=catalog, time_col="ts", buckets=buckets,
                                max_length=None, progress=False)
        assert out.read_bytes() == ref, buckets
        assert corpus.meta["report"] == sessions.report.as_dict()
        assert corpus.meta["corpus"] == stats
        assert corpus.product_counts() == sessions.product_counts()
        assert len(corpus) == stats["n_sessions"]
        assert not out.with_name(out.name + ".parts").exists()  # work folder removed
        seen.add(corpus.fingerprint())
    assert len(seen) == 1
    # the iterable path of write_corpus gives the same lines too
    write_corpus(sessions, tmp_path / "iter.txt")
    assert (tmp_path / "iter.txt").read_bytes() == ref
    assert [line for line in CorpusFile(tmp_path / "corpus3.txt")] == [
        line.split() for line in ref.decode().splitlines()]


def test_a_corpus_cut_at_pauses_equals_single_process_cleaning(logs, tmp_path):
    d, files, catalog = logs  # a session's clicks span files: cut after gathering them
    sessions, stats, ref = _reference(files, catalog, tmp_path, session_gap=20)
    assert sessions.report.n_split_at_gaps > 0
    for buckets in (1, 3):
        out = tmp_path / f"gap{buckets}.txt"
        corpus = prepare_corpus(files, out, catalog=catalog, time_col="ts", buckets=buckets,
                                session_gap="20s", progress=False)
        assert out.read_bytes() == ref, buckets
        assert corpus.meta["report"] == sessions.report.as_dict()
        assert corpus.meta["options"]["session_gap"] == 20.0
    with pytest.raises(ParameterError, match="time_col"):
        prepare_corpus(files, tmp_path / "x.txt", session_gap="20s", progress=False)


def test_a_corpus_of_times_in_a_named_layout_equals_one_of_unix_times(logs, tmp_path):
    """``time_format`` reaches each file's reader: the logs with their times written as
    ``%d.%m.%Y %H:%M:%S`` (a second each) make the same corpus as with Unix seconds."""
    d, files, catalog = logs
    written = []
    for i, f in enumerate(files):
        frame = read_interactions(f, session_cols="session_id", time_col="ts")
        stamp = pl.from_epoch(frame["ts"].cast(pl.Int64), time_unit="s").dt.strftime(
            "%d.%m.%Y %H:%M:%S")
        written.append(tmp_path / f"de{i}.csv")
        pl.DataFrame({"session_id": frame["session"], "product_id": frame["product_id"],
                      "ts": stamp}).write_csv(written[-1])
    ref = prepare_corpus(files, tmp_path / "unix.txt", catalog=catalog, time_col="ts",
                         session_gap="20s", progress=False)
    de = prepare_corpus(written, tmp_path / "de.txt", catalog=catalog, time_col="ts",
                        time_format="%d.%m.%Y %H:%M:%S", session_gap="20s", progress=False)
    assert (tmp_path / "de.txt").read_bytes() == (tmp_path / "unix.txt").read_bytes()
    assert de.meta["report"] == ref.meta["report"]
    with pytest.raises(DataError, match="It reads with --time-format '%d.%m.%Y %H:%M:%S'"):
        prepare_corpus(written, tmp_path / "x.txt", catalog=catalog, time_col="ts",
                       progress=False)


def _with_events(files, folder):
    """The logs again with an ``event`` column: every fourth row a cart event."""
    out = []
    for i, f in enumerate(files):
        frame = read_interactions(f, session_cols="session_id", time_col="ts")
        frame = pl.DataFrame({"session_id": frame["session"], "product_id": frame["product_id"],
                              "ts": frame["ts"].cast(pl.Int64),
                              "event": ["cart" if r % 4 == 3 else "view" for r in frame["row"]]})
        out.append(folder / f"ev{i}.csv")
        frame.write_csv(out[-1])
    return out


def test_a_corpus_of_one_event_type_equals_single_process_cleaning(logs, tmp_path, caplog):
    """``keep_rows``: the corpus of the view rows equals the single-process path reading
    them with the same filter (rows numbered in their files), whatever the buckets; checked
    once over all the files; no row left: refused, nothing written."""
    d, files, catalog = logs
    events = _with_events(files, tmp_path)
    frames = [read_interactions(f, session_cols="session_id", item_col="product_id",
                                time_col="ts", keep_rows={"event": "view"})
              .with_columns(pl.col("row") + (i << 40)) for i, f in enumerate(events)]
    assert all(0 < f.height for f in frames)
    sessions = clean_sessions(pl.concat(frames), catalog)
    sessions.to_parquet(tmp_path / "sessions.parquet")
    write_corpus(tmp_path / "sessions.parquet", tmp_path / "ref.txt")
    everything = prepare_corpus(events, tmp_path / "all.txt", catalog=catalog, time_col="ts",
                                progress=False)
    for buckets in (1, 3):
        out = tmp_path / f"views{buckets}.txt"
        with caplog.at_level("WARNING", logger="prodfusion.data"):
            corpus = prepare_corpus(events, out, catalog=catalog, time_col="ts",
                                    buckets=buckets, keep_rows=["event=view,buy"],
                                    progress=False)
        assert out.read_bytes() == (tmp_path / "ref.txt").read_bytes(), buckets
        assert corpus.meta["report"] == sessions.report.as_dict()
        assert corpus.meta["options"]["keep_rows"] == {"event": ["view", "buy"]}
        assert caplog.text.count("no row holds 'buy'") == 1  # once, over the three files
        caplog.clear()
    assert out.read_bytes() != (tmp_path / "all.txt").read_bytes()
    assert everything.meta["report"]["n_rows_in"] > corpus.meta["report"]["n_rows_in"]
    with pytest.raises(DataError, match="kept none of the .* column 'event' holds 'view'"):
        prepare_corpus(events, tmp_path / "none.txt", time_col="ts",
                       keep_rows={"event": "click"}, progress=False)
    assert not (tmp_path / "none.txt").exists()
    assert not (tmp_path / "none.txt.parts").exists()


def test_a_corpus_keyed_by_visitor_warns_once_over_the_whole_log(tmp_path, caplog):
    """Pauses of over an hour inside most sessions (a visitor's key): one warning with the
    whole log's counts, as `build` gives it; none once cut at pauses."""
    rows = [(f"v{v}", f"p{(v + j) % 9}", day * 86400 + j * 60)
            for v in range(12) for day in range(3) for j in range(3)]
    log = tmp_path / "visitors.csv"
    pl.DataFrame(rows, schema=["visitor", "product_id", "ts"], orient="row").write_csv(log)
    opts = dict(session_cols="visitor", time_col="ts", buckets=4, progress=False)
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        prepare_corpus([log], tmp_path / "a.txt", **opts)
    assert caplog.text.count("hold a pause of over an hour") == 1
    assert "12 of 12 sessions (100%)" in caplog.text and "the longest 24 hours" in caplog.text
    assert "the session key (visitor) looks like a visitor's" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        prepare_corpus([log], tmp_path / "b.txt", session_gap="30m", **opts)
    assert "pause" not in caplog.text


def test_folder_source_and_no_catalog(logs, tmp_path):
    d, files, _ = logs
    a = prepare_corpus(d, tmp_path / "a.txt", time_col="ts", buckets=4, progress=False)
    prepare_corpus(files, tmp_path / "b.txt", time_col="ts", buckets=2, progress=False)
    assert [s["path"] for s in a.meta["sources"]] == [str(f) for f in sorted(files)]
    assert a.meta["report"]["n_unknown_rows"] == 0
    # the folder lists files by name: same files, same order here
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()


def test_corpus_on_ray_equals_local(ray_local, logs, tmp_path):
    d, files, catalog = logs
    local = prepare_corpus(files, tmp_path / "local.txt", catalog=catalog, time_col="ts",
                           buckets=5, progress=False)
    ex = make_executor("ray", num_cpus_per_worker=0.5)
    try:
        on_ray = prepare_corpus(files, tmp_path / "ray.txt", catalog=catalog, time_col="ts",
                                buckets=5, executor=ex, progress=False)
    finally:
        ex.close()
    assert (tmp_path / "ray.txt").read_bytes() == (tmp_path / "local.txt").read_bytes()
    assert on_ray.meta["report"] == local.meta["report"]
    assert on_ray.product_counts() == local.product_counts()
    assert on_ray.meta["engine"] != local.meta["engine"]
    events = _with_events(files, tmp_path)  # one event type, read by Ray's workers
    ex = make_executor("ray", num_cpus_per_worker=0.5)
    try:
        prepare_corpus(events, tmp_path / "ray_views.txt", catalog=catalog, time_col="ts",
                       buckets=3, executor=ex, keep_rows={"event": "view"}, progress=False)
    finally:
        ex.close()
    prepare_corpus(events, tmp_path / "views.txt", catalog=catalog, time_col="ts",
                   buckets=3, keep_rows={"event": "view"}, progress=False)
    assert (tmp_path / "ray_views.txt").read_bytes() == (tmp_path / "views.txt").read_bytes()


def test_bad_input_names_file_and_option(logs, tmp_path):
    d, files, catalog = logs
    with pytest.raises(DataError, match="nope.csv: no such interaction file"):
        prepare_corpus([files[0], d / "nope.csv"], tmp_path / "x.txt", progress=False)
    with pytest.raises(ParameterError, match="time_col"):
        prepare_corpus(files, tmp_path / "x.txt", time_col="ts,other", progress=False)
    spaced = tmp_path / "spaced.csv"
    pl.DataFrame({"session_id": ["a", "a"], "product_id": ["p 1", "p2"]}).write_csv(spaced)
    with pytest.raises(DataError, match="'p 1'.*whitespace"):
        prepare_corpus([spaced], tmp_path / "x.txt", progress=False)
    single = tmp_path / "single.csv"
    pl.DataFrame({"session_id": ["a", "b"], "product_id": ["p1", "p2"]}).write_csv(single)
    with pytest.raises(DataError, match="no session with two distinct products"):
        prepare_corpus([single], tmp_path / "x.txt", progress=False)
    assert not (tmp_path / "x.txt").exists()
    with pytest.raises(DataError, match="missing; the corpus was not written by prepare_corpus"):
        CorpusFile(spaced)


def test_cli_corpus_then_build_trains_clicks_from_it(logs, tmp_path, capsys):
    from prodfusion import Recommender

    d, files, catalog = logs
    cat = tmp_path / "catalog.csv"
    catalog.frame.write_csv(cat)
    out = tmp_path / "corpus.txt"
    assert main(["corpus", *map(str, files), "--out", str(out), "--catalog", str(cat),
                 "--image-col", "", "--time-col", "ts", "--buckets", "3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "sessions" in err and str(out) in err
    meta = json.loads(out.with_name("corpus.txt.json").read_text())
    sessions, _, ref = _reference(files, catalog, tmp_path)
    assert out.read_bytes() == ref and meta["report"] == sessions.report.as_dict()
    common = ["build", "--catalog", str(cat), "--image-col", "", "--text", "none",
              "--image", "none", "--p2v-dim", "8", "--p2v-epochs", "2", "--workers", "1",
              "--cache-dir", "none"]
    assert main([*common, "--corpus", str(out), "--out", str(tmp_path / "model")]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err  # the corpus's own catalog: no warning
    assert "categories:" not in err  # none in this catalog
    with_cats = tmp_path / "with_cats.csv"
    catalog.frame.with_columns(pl.lit("c1").alias("category")).write_csv(with_cats)
    assert main([*common[:2], str(with_cats), *common[3:], "--corpus", str(out), "--tune",
                 "off", "--out", str(tmp_path / "model_cats")]) == 0
    assert ("categories: a --corpus file's sessions are not read here, so the share that "
            "stays in one category is not judged: no category modality") in \
        capsys.readouterr().err
    assert "category" not in Recommender.load(tmp_path / "model_cats").modalities
    # another catalog: the products it lacks are named, with the clicks they hold
    half = tmp_path / "half.csv"
    catalog.frame.head(30).write_csv(half)
    assert main([*common[:2], str(half), *common[3:], "--corpus", str(out), "--out",
                 str(tmp_path / "model_half")]) == 0
    err = capsys.readouterr().err
    assert "products" in err and f"are not in {half} (the corpus was prepared against" in err
    rec = Recommender.load(tmp_path / "model")
    clicked = {p for line in ref.decode().split() for p in [line]}
    has = rec.embeddings_["clicks"].mask
    assert {catalog.ids[i] for i in np.flatnonzero(has)} == clicked
    counts = sessions.product_counts()
    assert rec.click_counts_.tolist() == [counts.get(p, 0) for p in catalog.ids]
    assert rec.manifest_["fingerprints"]["sessions"] == meta["sha256"]
    assert rec.manifest_["data"]["interactions"]["corpus"] == str(out)  # what it learned from
    # cooc is counted from the corpus lines: the counts of the cleaned sessions themselves
    from prodfusion.fusion.cooc import Cooc

    want = Cooc.from_sessions(sessions, catalog)
    assert rec.cooc_ is not None and "cooc" in rec.modalities
    rows = np.arange(len(catalog))
    np.testing.assert_array_equal(rec.cooc_.scores(rows), want.scores(rows))
    capsys.readouterr()
    with pytest.raises(ProdfusionError, match="--corpus replaces --interactions"):
        from prodfusion.cli.build import cmd_build

        args = __import__("prodfusion.cli.main", fromlist=["build_parser"]).build_parser() \
            .parse_args([*common, "--corpus", str(out), "--interactions", str(files[0]),
                         "--out", str(tmp_path / "model2")])
        cmd_build(args)


def test_unknown_ids_are_judged_once_over_the_whole_log(logs, tmp_path, caplog):
    """A catalog that knows few of the log's products: one warning with the whole log's counts
    and the catalog's name (not one per bucket, each with its own counts); none known: the
    error clean_sessions gives, and no corpus written."""
    import logging

    d, files, catalog = logs
    small = Catalog(catalog.frame.tail(10), source="small.csv")  # not the long session's
    with caplog.at_level(logging.WARNING, logger="prodfusion"):
        corpus = prepare_corpus(files, tmp_path / "c.txt", catalog=small, time_col="ts",
                                buckets=4, progress=False)
    rep = corpus.meta["report"]
    warned = [r.getMessage() for r in caplog.records if "interaction rows" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith(f"{rep['n_unknown_rows']:,} of {rep['n_rows_in']:,} interaction "
                                "rows") and "(small.csv, 10 products)" in warned[0]
    numeric = Catalog(pl.DataFrame({"product_id": [f"x{i}" for i in range(5)],
                                    "title": ["t"] * 5}), source="other.csv")
    with pytest.raises(DataError, match=r"of \d[\d,]* interaction rows \(100%\) name products "
                                        r"that are not in the catalog \(other.csv"):
        prepare_corpus(files, tmp_path / "n.txt", catalog=numeric, time_col="ts", buckets=3,
                       progress=False)
    assert not (tmp_path / "n.txt").exists() and not list(tmp_path.glob("n.txt*"))


def test_a_corpus_of_logs_in_cp1252_equals_one_of_the_same_logs_in_utf8(logs, tmp_path):
    """``encoding`` reaches each file's reader: the logs with session keys holding umlauts,
    written in cp1252, make the same corpus as written in UTF-8."""
    d, files, catalog = logs
    utf8, cp = [], []
    for i, f in enumerate(files):
        frame = read_interactions(f, session_cols="session_id", time_col="ts")
        text = pl.DataFrame({"session_id": "Müller-" + frame["session"],
                             "product_id": frame["product_id"],
                             "ts": frame["ts"].cast(pl.Int64)}).write_csv()
        utf8.append(tmp_path / f"u{i}.csv")
        utf8[-1].write_text(text, encoding="utf-8")
        cp.append(tmp_path / f"c{i}.csv")
        cp[-1].write_text(text, encoding="cp1252")
    ref = prepare_corpus(utf8, tmp_path / "u.txt", catalog=catalog, time_col="ts",
                         progress=False)
    got = prepare_corpus(cp, tmp_path / "c.txt", catalog=catalog, time_col="ts",
                         encoding="cp1252", progress=False)
    assert (tmp_path / "c.txt").read_bytes() == (tmp_path / "u.txt").read_bytes()
    assert got.meta["report"] == ref.meta["report"]
    with pytest.raises(DataError, match="read it as it is with --interactions-encoding "
                                        "cp1252"):
        prepare_corpus(cp, tmp_path / "x.txt", catalog=catalog, time_col="ts", progress=False)
