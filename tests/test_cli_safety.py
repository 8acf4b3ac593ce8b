"""CLI and model-folder defects of issue 13: `build --out` never destroys what is not a model,
duplicate ids name the first repeated row, `similar --json | head` exits quietly, and every
model-folder read error names the folder and the file (similar, publish, service reload)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prodfusion.cli import main
from prodfusion.errors import DataError, ModelError, ParameterError
from prodfusion.model_folder import check_model_destination

CATALOG = "product_id,title,category\n" + "".join(
    f"{i:04d},{'Red bag' if i % 2 else 'Blue shoe'} {i},{'bags' if i % 2 else 'shoes'}\n"
    for i in range(1, 11))
SESSIONS = "sid;item\n" + "".join(
    f"s{s};{i:04d}\n" for s in range(30) for i in ((s % 5) * 2 + 1, (s % 5) * 2 + 2, (s % 3) + 1))


@pytest.fixture
def files(tmp_path):
    (tmp_path / "catalog.csv").write_text(CATALOG)
    (tmp_path / "clicks.csv").write_text(SESSIONS)
    return tmp_path


def _build(files, out, *extra):
    return main([
        "build", "--catalog", str(files / "catalog.csv"), "--interactions", str(files / "clicks.csv"),
        "--session-cols", "sid", "--item-col", "item", "--p2v-dim", "8", "--p2v-epochs", "2",
        "--workers", "1", "--text", "none", "--image", "none", "--cache-dir", "none",
        "--out", str(out), *extra,
    ])


# ---------------------------------------------------------------------- build --out
def test_build_refuses_a_folder_that_is_not_a_model_and_keeps_its_files(files, capsys):
    u = files / "u"
    u.mkdir()
    (u / "notes.txt").write_text("x")
    assert _build(files, u) == 2
    err = capsys.readouterr().err
    assert "an existing folder that is not a prodfusion model (no manifest.json)" in err
    assert "--overwrite" in err
    assert (u / "notes.txt").read_text() == "x"
    # with --overwrite it is replaced by the model
    assert _build(files, u, "--overwrite") == 0
    assert (u / "manifest.json").is_file() and not (u / "notes.txt").exists()
    # a model folder is replaced without --overwrite, and the build says so first
    old = json.loads((u / "manifest.json").read_text())
    capsys.readouterr()
    assert _build(files, u) == 0
    assert json.loads((u / "manifest.json").read_text())["model_id"] != old["model_id"]
    assert capsys.readouterr().err.startswith(
        f"note: {u} holds a model (10 products, built {old['created']}); the new one replaces it")


def test_build_never_touches_a_file(files, capsys):
    victim = files / "victim.csv"
    victim.write_text("keep me")
    for extra in ((), ("--overwrite",)):
        assert _build(files, victim, *extra) == 2
        assert "is an existing file, not a folder; it is never replaced" in capsys.readouterr().err
        assert victim.read_text() == "keep me"


def test_build_validates_the_destination_before_any_work(files, capsys, monkeypatch):
    # the catalog does not exist: the destination error comes first, so nothing was read
    monkeypatch.chdir(files)
    assert main(["build", "--catalog", "missing.csv", "--out", "."]) == 2
    err = capsys.readouterr().err
    assert "--out '.' is the current folder or one of its parents" in err
    assert "missing.csv" not in err
    assert main(["build", "--catalog", "missing.csv", "--out", "..", "--overwrite"]) == 2
    assert "is the current folder or one of its parents" in capsys.readouterr().err
    assert main(["build", "--catalog", "missing.csv", "--out", "/"]) == 2
    assert "is the file-system root" in capsys.readouterr().err
    assert sorted(p.name for p in files.iterdir()) == ["catalog.csv", "clicks.csv"]


def test_check_model_destination_cases(tmp_path):
    assert check_model_destination(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert check_model_destination(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "a").write_text("1")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(ParameterError, match="is a symlink to a folder"):
        check_model_destination(tmp_path / "link", overwrite=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ParameterError, match="is a broken symlink"):
        check_model_destination(tmp_path / "dangling")


def test_save_refuses_a_non_model_folder(tmp_path):
    import numpy as np
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.recommender import Recommender

    cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"], "title": ["x", "y", "z"]}))
    emb = Embeddings(np.eye(3, dtype=np.float32), np.ones(3, bool), "t")
    rec = Recommender.from_embeddings(cat, {"text": emb})
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("years of work")
    with pytest.raises(ParameterError, match="not a prodfusion model.*replace it with "
                                             "overwrite=True"):  # the Python spelling
        rec.save(tmp_path / "docs")
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "years of work"


# ---------------------------------------------------------------------- duplicate ids
def test_duplicate_id_error_names_the_first_repeated_row(tmp_path):
    from prodfusion.data import read_catalog

    # rows (1-based): a b b c d a -> the first repeat is row 3 ('b'), not row 6 ('a')
    (tmp_path / "c.csv").write_text("product_id,title\na,1\nb,2\nb,3\nc,4\nd,5\na,6\n")
    with pytest.raises(DataError, match=r"c.csv row 3: duplicate product id 'b' \(first seen at "
                                        r"row 2, column 'product_id'; 4 rows hold a repeated id\)"):
        read_catalog(tmp_path / "c.csv")


# ---------------------------------------------------------------------- broken pipe
def test_similar_json_into_a_closed_pipe_is_quiet(files):
    assert _build(files, files / "m") == 0
    r, w = os.pipe()
    os.close(r)  # the reader (e.g. `head`) is gone before we write: every write is EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "prodfusion.cli", "similar", str(files / "m"), "0001",
             "--json", "-k", "5"], stdout=w, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(w)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr and b"BrokenPipeError" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------- damaged folders
def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("victim", ["catalog.parquet", "emb_clicks.npy", "mask_clicks.npy"])
def test_damaged_model_files_are_named_in_similar_and_publish(files, capsys, victim):
    m = files / "m"
    assert _build(files, m) == 0
    _truncate(m / victim)
    capsys.readouterr()
    assert main(["similar", str(m), "0001"]) == 2
    err = capsys.readouterr().err
    assert f"model folder {str(m)!r}, file {victim!r}: cannot read" in err
    assert "Traceback" not in err
    assert main(["publish", str(m), str(files / "current")]) == 2
    assert f"model folder {str(m)!r}, file {victim!r}: cannot read" in capsys.readouterr().err
    with pytest.raises(ModelError, match=f"file '{victim}'"):
        from prodfusion.recommender import Recommender

        Recommender.load(m)


# ------------------------------------------------------- other outputs (thirty-sixth session)
def test_no_output_replaces_or_empties_what_prodfusion_did_not_write(files, capsys):
    """corpus --out / --work-dir, categorize train --out and predict --out: a user's folder
    or file (an input, a catalog, notes) is refused before any work and left as it was;
    their own earlier outputs are still replaced."""
    mine = files / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    clicks = files / "clicks.csv"
    common = ["--session-cols", "sid", "--item-col", "item", "--sep", ";"]
    assert main(["corpus", str(clicks), *common, "--out", str(files / "c.corpus"),
                 "--work-dir", str(mine)]) == 2
    assert "work_dir" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "x"
    before = clicks.read_bytes()
    assert main(["corpus", str(clicks), *common, "--out", str(clicks)]) == 2
    assert "is also an input of this command" in capsys.readouterr().err
    assert clicks.read_bytes() == before
    assert main(["corpus", str(clicks), *common, "--out", str(mine / "notes.txt")]) == 2
    assert "is not a corpus file" in capsys.readouterr().err
    out = files / "c.corpus"  # its own output, and its kept working folder, are replaced
    work = files / "work"
    for _ in range(2):
        assert main(["corpus", str(clicks), *common, "--out", str(out), "--work-dir", str(work),
                     "--keep-work", "--quiet"]) == 0
    assert out.stat().st_size > 0 and (work / ".prodfusion-corpus-work").exists()

    catalog = files / "catalog.csv"
    args = ["--catalog", str(catalog), "--category-col", "category"]
    assert main(["categorize", "train", *args, "--frozen", "--out", str(mine)]) == 2
    assert "no labels.json" in capsys.readouterr().err and (mine / "notes.txt").exists()
    clf = files / "clf"
    assert main(["categorize", "train", *args, "--frozen", "--out", str(clf)]) == 0
    assert main(["categorize", "train", *args, "--frozen", "--out", str(clf)]) == 0  # its own
    capsys.readouterr()
    cat_before = catalog.read_bytes()
    assert main(["categorize", "predict", str(clf), *args, "--out", str(catalog)]) == 2
    assert "is also an input" in capsys.readouterr().err and catalog.read_bytes() == cat_before
    assert main(["categorize", "predict", str(clf), *args, "--out", str(mine / "notes.txt")]) == 2
    assert "is not a predictions file" in capsys.readouterr().err
    pred = files / "pred.csv"
    for _ in range(2):  # its own earlier output is replaced
        assert main(["categorize", "predict", str(clf), *args, "--out", str(pred)]) == 0
    assert pred.read_text().startswith("product_id,category,predicted_category")


def test_demo_never_writes_into_a_users_folder(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "catalog.csv").write_text("mine")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "no .prodfusion-demo" in capsys.readouterr().err
    assert (tmp_path / "data" / "catalog.csv").read_text() == "mine"
    assert not (tmp_path / ".prodfusion-demo").exists()


@pytest.mark.parametrize("argv", [
    ["evaluate", "retrieval", "MODEL", "--out", "s3://reports/eval"],
    ["demo", "--out", "s3://shop/demo"],
    ["corpus", "CLICKS", "--out", "s3://shop/clicks.corpus"],
    ["categorize", "train", "--catalog", "CATALOG", "--out", "s3://shop/categorizer"],
    ["ab", "views", "EVENTS", "--out", "s3://shop/views.parquet"],
    ["corpus", "CLICKS", "--out", "c.txt", "--work-dir", "s3://shop/work"],
])
def test_an_output_in_a_bucket_of_a_command_that_writes_locally_is_refused_first(
        files, argv, monkeypatch, capsys):
    """A command that writes a local file or folder, given `--out s3://…`, wrote a local
    folder named `s3:` (`corpus` said `written to s3:/x/c.txt`); now it is refused before
    any work, naming the commands that do write to a bucket."""
    monkeypatch.chdir(files)
    names = {"MODEL": str(files / "model"), "CLICKS": str(files / "clicks.csv"),
             "CATALOG": str(files / "catalog.csv"), "EVENTS": str(files / "events.sqlite3")}
    before = sorted(p.name for p in files.iterdir())
    assert main([names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"`prodfusion {argv[0]}` writes it locally; name a local path" in err
    assert "`export --out`" in err
    assert sorted(p.name for p in files.iterdir()) == before  # no folder named 's3:'


def test_the_python_functions_writing_locally_refuse_a_bucket_uri_too(tmp_path, monkeypatch):
    """From Python (a URI, or a Path made of one, which folds its '//'): refused before any
    work, the URI named."""
    from pathlib import Path

    from prodfusion.demo import run_demo
    from prodfusion.engine.corpus import prepare_corpus

    monkeypatch.chdir(tmp_path)
    (tmp_path / "clicks.csv").write_text(SESSIONS)
    for call in (lambda: run_demo(out_dir="s3://shop/demo"),
                 lambda: run_demo(out_dir=Path("s3://shop/demo")),
                 lambda: prepare_corpus([str(tmp_path / "clicks.csv")], Path("s3://shop/c.txt"))):
        with pytest.raises(ParameterError, match="'s3://shop/.*': written locally; name a "
                                                 "local path"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.csv"]
