"""`prodfusion ab report`, `prodfusion publish` and the `serve` parser."""

from __future__ import annotations

import json

from prodfusion.cli import build_parser, main
from prodfusion.service.events import Event, open_event_store


def _config(tmp_path, model):
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f"""
[service]
events = "events.sqlite3"

[experiment]
name = "exp"
salt = "s"

[[experiment.variants]]
name = "baseline"
weight = 1
model = "{model}"

[[experiment.variants]]
name = "fusion"
weight = 1
model = "{model}"
""")
    return cfg


def _fill(path):
    store = open_event_store(path)
    store.resolve_allocation("exp", "s", ["baseline", "fusion"], [1, 1])
    evs = []
    for variant, clicks in (("baseline", 1), ("fusion", 3)):
        for i in range(50):
            rid = f"{variant}-{i}"
            evs.append(Event(f"v-{rid}", "view", "exp", variant, f"vis-{variant}-{i}", rid, "0001",
                             category="Shoes", received_at=1e10))
            if i < clicks:
                evs.append(Event(f"c-{rid}", "click", "exp", variant, f"vis-{variant}-{i}", rid,
                                 "0001", target_id="0005", rank=1, category="Shoes",
                                 received_at=1e10))
    store.add(evs)
    store.close()


def test_ab_report_table_and_json(tmp_path, capsys, planted_model):
    cfg = _config(tmp_path, planted_model)
    _fill(tmp_path / "events.sqlite3")
    assert main(["ab", "report", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "Experiment 'exp' (control: baseline)" in out
    lines = [ln.split() for ln in out.splitlines()]
    row = next(ln for ln in lines if ln[:2] == ["(all)", "fusion"])
    assert row[2:6] == ["50", "3", "0", "6.00%"]  # views, clicks, jumps, CTR
    assert "+200.0%" in out  # CTR lift of fusion over baseline: 6 % vs 2 %
    assert "Sample ratio: visitors baseline=50, fusion=50" in out and "-> ok" in out
    assert main(["ab", "report", str(tmp_path / "events.sqlite3"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["experiment"] == "exp" and rep["variants"][1]["clicks"] == 3
    assert main(["ab", "report", str(tmp_path / "events.sqlite3"), "--experiment", "nope"]) == 1
    assert "no experiment 'nope'" in capsys.readouterr().err
    assert main(["ab", "report", str(cfg), "--control", "nope"]) == 2
    assert "control 'nope' (CLI: --control) is not a variant of experiment 'exp'; it has " \
           "['baseline', 'fusion']" in capsys.readouterr().err
    assert main(["ab", "report", str(cfg), "--alpha", "2"]) == 2
    assert "(CLI: --alpha)" in capsys.readouterr().err
    # a mistyped store: named, and nothing created (neither the file nor its folder)
    for typo in (tmp_path / "event.sqlite3", tmp_path / "nodir" / "x.sqlite3"):
        assert main(["ab", "report", str(typo)]) == 2
        assert "no event store there (no such file)" in capsys.readouterr().err
        assert not typo.exists()
    assert not (tmp_path / "nodir").exists()


def test_ab_views_writes_the_traffic_as_a_log_that_build_reads_by_visit(tmp_path, capsys):
    """`ab views`: the verified page views as (visitor, product_id, ts), in Parquet or CSV;
    read back and cut at pauses they are the visitors' visits; a file it did not write is
    never replaced, and a mistyped store is not created."""
    import polars as pl

    from prodfusion.data import clean_sessions, read_interactions

    store = open_event_store(tmp_path / "events.sqlite3")
    day = 1_780_000_000.0
    visits = {"vis-1": [("0001", 0), ("0003", 40), ("0002", 4000), ("0004", 4030)],
              "vis-2": [("0005", 10), ("0007", 70)]}
    store.add([Event(f"{v}-{i}", "view", "exp", "a", v, f"r-{v}-{i}", p, received_at=day + t)
               for v, views in visits.items() for i, (p, t) in enumerate(views)]
              + [Event("forged", "view", "exp", "a", "vis-2", "r-x", "0009",
                       received_at=day + 80, status="unverified")])
    store.close()
    for name in ("views.parquet", "views.csv"):
        out = tmp_path / name
        for _ in range(2):  # the second run replaces its own file
            assert main(["ab", "views", str(tmp_path / "events.sqlite3"), "--out", str(out)]) == 0
            err = capsys.readouterr().err
            assert "6 page views of 2 visitors" in err and "--session-gap 30m" in err
        log = read_interactions(out, session_cols="visitor", item_col="product_id",
                                time_col="ts")
        assert log.height == 6 and "0009" not in log["product_id"].to_list()
        sessions = clean_sessions(log, session_gap="30m")
        assert sorted(map(tuple, sessions)) == [("0001", "0003"), ("0002", "0004"),
                                                ("0005", "0007")]
    theirs = tmp_path / "theirs.csv"
    pl.DataFrame({"a": [1]}).write_csv(theirs)
    assert main(["ab", "views", str(tmp_path / "events.sqlite3"), "--out", str(theirs)]) == 2
    assert "is not an earlier views export" in capsys.readouterr().err
    assert theirs.read_text() == "a\n1\n"
    assert main(["ab", "views", str(tmp_path / "nope.sqlite3"), "--out",
                 str(tmp_path / "v.parquet")]) == 2
    assert "no event store there" in capsys.readouterr().err
    assert not (tmp_path / "nope.sqlite3").exists() and not (tmp_path / "v.parquet").exists()


def test_publish_command(tmp_path, capsys, planted_model):
    link = tmp_path / "current"
    assert main(["publish", str(planted_model), str(link)]) == 0
    assert link.resolve() == planted_model.resolve()
    assert f"-> {planted_model.resolve()}" in capsys.readouterr().out
    assert main(["publish", str(tmp_path), str(link)]) == 2  # no manifest: refused
    assert "no manifest.json" in capsys.readouterr().err
    assert link.resolve() == planted_model.resolve()
    assert main(["publish", str(planted_model), str(tmp_path / "nodir" / "link")]) == 2
    assert f"the folder {tmp_path / 'nodir'} does not exist" in capsys.readouterr().err


def test_serve_parser_defaults():
    args = build_parser().parse_args(["serve", "model_dir"])
    assert (args.config, args.host, args.port, args.events) == ("model_dir", "127.0.0.1", 8000, None)
    assert args.func.__name__ == "cmd_serve"


def test_serve_refuses_a_missing_model_or_profile_before_starting(tmp_path, capsys,
                                                                  planted_model):
    """One clear line, before uvicorn and its workers start (a traceback per worker, and the
    event store created, before)."""
    cfg = _config(tmp_path, tmp_path / "nothere")
    assert main(["serve", str(cfg), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "variant 'baseline': model folder" in err and "nothere" in err
    assert "serving experiment" not in err and not (tmp_path / "events.sqlite3").exists()
    cfg = _config(tmp_path, planted_model)
    cfg.write_text(cfg.read_text() + 'profile = "basket"\n')  # the second variant's
    assert main(["serve", str(cfg), "--port", "1"]) == 2
    assert "variant 'fusion': profile 'basket' is not in the model" in capsys.readouterr().err


def test_serve_refuses_a_variant_its_model_cannot_serve_before_starting(tmp_path, capsys,
                                                                       planted_model):
    """A modality the model lacks: one line naming the folder and the variant before the
    server starts (a start-up traceback from uvicorn before)."""
    from prodfusion.recommender import Recommender

    lacking = sorted({"lexical", "cooc", "category"} - set(Recommender.load(
        planted_model).available_modalities))[0]
    cfg = _config(tmp_path, planted_model)
    cfg.write_text(cfg.read_text() + f'modalities = ["text", "{lacking}"]\n')  # "fusion"'s
    assert main(["serve", str(cfg), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot serve variant 'fusion'" in err and f"asks for '{lacking}'" in err
    assert "Traceback" not in err and "serving experiment" not in err
    assert not (tmp_path / "events.sqlite3").exists()


def test_serve_refuses_a_lists_file_it_cannot_serve_before_starting(tmp_path, capsys,
                                                                   planted_model):
    """A lists file that is missing, not a lists file, or ranked over other modalities than
    the model serves: one clear line before uvicorn starts (a start-up traceback before)."""
    lists = tmp_path / "lists.parquet"
    assert main(["export", str(planted_model), "--out", str(lists), "--modalities", "text"]) == 0
    capsys.readouterr()
    for given, says in ((tmp_path / "none.parquet", "does not exist"),
                        (planted_model / "catalog.parquet", "not a prodfusion lists file"),
                        (lists, "export the lists with the variant's --fusion and --modalities")):
        assert main(["serve", str(planted_model), "--port", "1", "--lists", str(given),
                     "--events", str(tmp_path / "ev.sqlite3")]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and "serving experiment" not in err
    assert not (tmp_path / "ev.sqlite3").exists()
    notes = tmp_path / "notes.txt"  # an event store it cannot open: the same, file untouched
    notes.write_text("not a database, but long enough to be read as one" * 4)
    before = notes.read_bytes()
    assert main(["serve", str(planted_model), "--port", "1", "--events", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "cannot be opened: file is not a database" in err and "Traceback" not in err
    assert "serving experiment" not in err and notes.read_bytes() == before


def test_serve_with_workers_exits_non_zero_when_no_worker_starts(tmp_path, planted_model):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from .helpers import free_port

    # a lists file whose metadata passes the parent's checks but whose table a worker
    # cannot open (its scores column gone): every worker fails at start-up
    lists = tmp_path / "lists.parquet"
    assert main(["export", str(planted_model), "--out", str(lists), "-k", "3"]) == 0
    table = pq.read_table(lists)
    pq.write_table(table.drop_columns(["scores"]).replace_schema_metadata(
        table.schema.metadata), lists)
    cfg = _config(tmp_path, planted_model)
    proc = subprocess.run([sys.executable, "-m", "prodfusion.cli", "serve", str(cfg), "--port",
                           str(free_port()), "--workers", "2", "--log-level", "warning",
                           "--lists", str(lists)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "error: no worker started" in proc.stderr
    # each worker says why in one line, not in a traceback
    assert proc.stderr.count("prodfusion cannot start (process ") == 2, proc.stderr[-2000:]
    assert "lacks column(s) ['scores']" in proc.stderr and "Traceback" not in proc.stderr
