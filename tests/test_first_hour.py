"""The first hour on a new catalog (issue 13): only modalities that have data, a warning when
click vectors are undertrained, late-fusion k-means only on request with a k rule that
scales, plain progress lines when stderr is not a terminal, a model folder that remembers its
data sources, `evaluate clustering --category-col` without a rebuild, and
`--category-col subcategory` beside a `category` column."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import time

import pytest

from prodfusion.cli import main
from prodfusion.recommender import Recommender

N = 40


@pytest.fixture
def shop(tmp_path):
    """40 products: subcategory i % 4, dept i % 2, a file column 'category' that is *not* the
    one used; 240 sessions of 4 products from one subcategory (no images at all)."""
    rows = ["product_id,title,category,subcategory,dept"]
    for i in range(N):
        rows.append(f"{i:04d},Product {i},file-cat-{i % 3},sub{i % 4},dept{i % 2}")
    (tmp_path / "catalog.csv").write_text("\n".join(rows) + "\n")
    rng = random.Random(0)
    lines = ["sid;item"]
    for s in range(240):
        members = [i for i in range(N) if i % 4 == s % 4]
        for i in rng.sample(members, 4):
            lines.append(f"s{s};{i:04d}")
    (tmp_path / "clicks.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _build(shop, *extra, out="model"):
    return main(["build", "--catalog", str(shop / "catalog.csv"), "--category-col", "subcategory",
                 "--interactions", str(shop / "clicks.csv"), "--session-cols", "sid",
                 "--item-col", "item", "--p2v-dim", "8", "--p2v-epochs", "5", "--workers", "1",
                 "--text", "none", "--cache-dir", "none", "--out", str(shop / out), *extra])


# ---------------------------------------------------------------------- modalities with data
def test_no_image_column_means_no_image_modality(shop, capsys, monkeypatch):
    import prodfusion.encoders as encoders

    made = []
    real = encoders.make_encoder
    monkeypatch.setattr(encoders, "make_encoder", lambda spec, **kw: made.append(spec) or real(spec, **kw))
    assert _build(shop) == 0  # --image left at its default: the packaged EfficientNet
    out = capsys.readouterr().out
    assert made == []  # no image encoder was even loaded
    assert "image      not built: the catalog has no image paths" in out
    m = json.loads((shop / "model" / "manifest.json").read_text())
    # cooc: built by default from the sessions (a pairwise score, no encoder); the category
    # and popularity too, as every session stays in one subcategory (no encoder either)
    assert list(m["encoders"]) == ["clicks"]
    assert m["settings"]["modalities"] == ["clicks", "cooc", "category", "popularity"]
    assert not (shop / "model" / "emb_image.npy").exists()
    rec = Recommender.load(shop / "model")
    assert list(rec.embeddings_) == ["clicks"]


def test_library_build_skips_modalities_without_data(shop):
    from prodfusion.data import read_catalog

    cat = read_catalog(shop / "catalog.csv", category_col="subcategory")
    with pytest.raises(Exception, match=r"no modality has data \(image: the catalog has no image "
                                        r"paths .*; clicks: no sessions given"):
        Recommender(text=None, cache_dir=None).build(cat)


# ---------------------------------------------------------------------- undertrained clicks
def test_undertrained_click_vectors_are_reported(tmp_path, capsys):
    # 30 products; only 0000-0002 occur often, every other product in one or two sessions
    (tmp_path / "c.csv").write_text("product_id,title\n" + "".join(
        f"{i:04d},P {i}\n" for i in range(30)))
    lines = ["sid;item"] + [f"h{s};{s % 3:04d}\nh{s};{(s + 1) % 3:04d}" for s in range(30)]
    lines += [f"r{i};{i:04d}\nr{i};{i + 1:04d}" for i in range(3, 29, 2)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    assert main(["build", "--catalog", str(tmp_path / "c.csv"), "--interactions",
                 str(tmp_path / "s.csv"), "--session-cols", "sid", "--item-col", "item",
                 "--p2v-dim", "8", "--p2v-epochs", "2", "--workers", "1", "--text", "none",
                 "--cache-dir", "none", "--out", str(tmp_path / "m")]) == 0
    cap = capsys.readouterr()
    assert "clicks     prod2vec" in cap.out and "present 29/30; 3 occur >= 5 times in training" in cap.out
    assert ("warning: clicks: only 3 of 29 products with a click vector (10.3%) occur >= 5 times "
            "in the training sessions") in cap.err
    info = json.loads((tmp_path / "m" / "manifest.json").read_text())["encoders"]["clicks"]["info"]
    assert (info["n_well_trained"], info["min_occurrences"]) == (3, 5)


def test_well_trained_clicks_give_no_warning(shop, capsys):
    assert _build(shop) == 0
    cap = capsys.readouterr()
    assert "present 40/40; 40 occur >= 5 times in training" in cap.out
    assert "warning: clicks" not in cap.err


# ---------------------------------------------------------------------- late fusion on request
def test_late_kmeans_runs_only_when_asked(shop, capsys, monkeypatch):
    import prodfusion.fusion.clustering as recmod  # the late-fusion label cache

    calls = []
    real = recmod.cluster_auto
    monkeypatch.setattr(recmod, "cluster_auto",
                        lambda e, k, seed=0: calls.append(k) or real(e, k, seed=seed))
    assert _build(shop) == 0
    assert calls == []  # not at build time
    m = json.loads((shop / "model" / "manifest.json").read_text())
    assert "late_labels" not in m["files"]["clicks"]
    assert m["settings"]["late_k"] == {"clicks": 4}  # the rule: 4 categories
    assert main(["similar", str(shop / "model"), "0001", "-k", "3", "--fusion", "late"]) == 0
    assert calls == [4]  # on first use of late fusion
    assert main(["similar", str(shop / "model"), "0001", "-k", "3"]) == 0
    assert calls == [4]  # early fusion needs no clusters
    assert main(["similar", str(shop / "model"), "0001", "-k", "3", "--fusion", "late"]) == 0
    assert calls == [4, 4]  # a new load computes it again (the folder did not store it)
    assert _build(shop, "--cluster-late", out="m2") == 0  # on request: stored
    m2 = json.loads((shop / "m2" / "manifest.json").read_text())
    assert m2["files"]["clicks"]["late_labels"] == "late_clicks.npy"


def test_default_k_rule_scales():
    from prodfusion.fusion import default_n_clusters

    assert default_n_clusters(2400, 12) == 12          # categories when known
    assert default_n_clusters(5000) == 50               # else sqrt(n / 2)
    assert default_n_clusters(50_000, 782) == 128       # never more than 128 ...
    assert default_n_clusters(192_000, 782) == 128
    assert default_n_clusters(192_001, 782) == 129      # ... unless clusters would
    assert default_n_clusters(686_000, 782) == 458      # average over 1,500 products
    assert default_n_clusters(10_000_000) == 2236       # sqrt(n / 2) still bounds it
    assert default_n_clusters(686_000, 782, grow=False) == 128  # the rule before
    assert default_n_clusters(3, 12) == 3               # never more than n


# ---------------------------------------------------------------------- progress lines
def test_plain_progress_lines_when_not_a_terminal():
    from prodfusion.progress import Progress, heartbeat

    buf = io.StringIO()  # not a TTY
    p = Progress(100, "encoding text (usem3)", "titles", every_s=0.0, stream=buf)
    for _ in range(4):
        p.update(25)
    p.close()
    lines = buf.getvalue().splitlines()
    # the last update's periodic line is the end line: close() does not print it twice
    assert len(lines) == 4 and lines[-1].startswith("encoding text (usem3): 100/100 titles (100.0%)")
    assert lines[0].startswith("encoding text (usem3): 25/100 titles (25.0%)")
    buf = io.StringIO()  # no periodic line yet: close() prints where it ended
    with Progress(20, "prod2vec epochs", "epoch", every_s=3600.0, stream=buf) as p:
        p.update(19)
        p.update(1)
    assert len(buf.getvalue().splitlines()) == 1
    assert buf.getvalue().startswith("prod2vec epochs: 20/20 epoch (100.0%)")
    buf = io.StringIO()
    with heartbeat("k-means++ of image (k=107)", every_s=0.05, stream=buf):
        time.sleep(0.3)
    out = buf.getvalue().splitlines()
    assert out[0] == "k-means++ of image (k=107): started"
    assert any(ln.startswith("k-means++ of image (k=107): still running") for ln in out[1:-1])
    assert out[-1].startswith("k-means++ of image (k=107): done in 0.")


def test_build_writes_progress_lines_into_a_log_file(shop):
    log = shop / "build.log"
    with log.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "prodfusion.cli", "--progress-every", "0.001", "build",
             "--catalog", str(shop / "catalog.csv"), "--category-col", "subcategory",
             "--interactions", str(shop / "clicks.csv"), "--session-cols", "sid", "--item-col",
             "item", "--p2v-dim", "8", "--p2v-epochs", "3", "--workers", "1", "--text", "none",
             "--lexical", "tfidf:8", "--cache-dir", "none", "--out", str(shop / "m")],
            stdout=subprocess.DEVNULL, stderr=fh, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "prod2vec epochs: 3/3 epoch (100.0%)" in text
    assert text.count("prod2vec epochs: 3/3 epoch (100.0%)") == text.count("prod2vec epochs: 1/3")
    # the lexical modality's fit has no count: a start and an end line (2.5 min at 1M titles)
    assert re.search(r"lexical:tfidf-nfkc-char3-5-svd8 of [\d,]+ titles: started\n", text), text
    assert re.search(r"lexical:tfidf-nfkc-char3-5-svd8 of [\d,]+ titles: done in \d", text), text
    # the tuner's scoring of each validation split (minutes at 1M products) reports too
    assert re.search(r"validation queries scored: ([\d,]+)/\1 queries \(100\.0%\)", text), text
    assert "\r" not in text  # plain lines, no terminal bar


# ---------------------------------------------------------------------- remembered sources
def test_evaluate_retrieval_reuses_the_recorded_interactions(shop, capsys):
    assert _build(shop) == 0
    m = json.loads((shop / "model" / "manifest.json").read_text())
    assert m["data"]["interactions"]["path"] == str(shop / "clicks.csv")
    assert m["data"]["interactions"]["session_cols"] == ["sid"]
    assert m["data"]["catalog"]["category_col"] == "subcategory"
    capsys.readouterr()
    assert main(["evaluate", "retrieval", str(shop / "model"), "--out", str(shop / "rep"),
                 "--n-boot", "20", "--quiet", "--variants", "intermediate:clicks,cooc"]) == 0
    out, err = capsys.readouterr()
    assert (f"from the model's record: --interactions {shop / 'clicks.csv'} --session-cols sid "
            "--item-col item") in err
    assert "HitRate@15" in out and "HitRate@15" not in err  # results on stdout: `> results.txt`
    res = json.loads((shop / "rep" / "results.json").read_text())["retrieval"]
    assert any(r["variant"].startswith("intermediate") and r["n"] > 0 for r in res["rows"])
    assert {r["variant"] for r in res["rows"]} >= {"cooc"}  # commas separate variants too
    # `all`: every combination × fusion of what the model has, beside the configs named
    from prodfusion.evaluation.retrieval import default_variants

    assert main(["evaluate", "retrieval", str(shop / "model"), "--out", str(shop / "rep-all"),
                 "--n-boot", "20", "--quiet", "--variants", "all,cooc"]) == 0
    res = json.loads((shop / "rep-all" / "results.json").read_text())["retrieval"]
    labels = [v["label"] for v in res["config"]["variants"]]
    grid = {v.label for v in default_variants(tuple(res["config"]["modalities"]))}
    assert grid <= set(labels) and labels.count("cooc") == 1 and res["served"] in labels
    # overridable: an option given on the command line wins
    assert main(["evaluate", "retrieval", str(shop / "model"), "--out", str(shop / "rep2"),
                 "--quiet", "--item-col", "nope", "--variants", "intermediate:clicks"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_evaluate_without_any_record_or_option_says_what_to_pass(shop, capsys):
    assert _build(shop) == 0
    m = json.loads((shop / "model" / "manifest.json").read_text())
    m.pop("data")
    (shop / "model" / "manifest.json").write_text(json.dumps(m))
    assert main(["evaluate", "retrieval", str(shop / "model"), "--quiet"]) == 2
    assert "the model folder records none" in capsys.readouterr().err


# ---------------------------------------------------------------------- labels
def test_clustering_against_other_label_columns_without_rebuild(shop, capsys):
    assert _build(shop) == 0  # --category-col subcategory; the file also has 'category'
    rec = Recommender.load(shop / "model")
    assert sorted(set(rec.catalog.categories)) == ["sub0", "sub1", "sub2", "sub3"]
    common = ["--seeds", "1", "--fusions", "intermediate", "--no-direct", "--quiet",
              "--max-per-category", "0"]
    for col, names in (("dept", ["dept0", "dept1"]),
                       ("category", ["file-cat-0", "file-cat-1", "file-cat-2"]),  # the file's
                       ("subcategory", ["sub0", "sub1", "sub2", "sub3"])):
        out = shop / f"rep-{col}"
        assert main(["evaluate", "clustering", str(shop / "model"), "--category-col", col,
                     "--categories", str(len(names)), "--out", str(out), *common]) == 0, col
        res = json.loads((out / "results.json").read_text())["clustering"]
        assert sorted(res["sets"][str(len(names))]["categories"]) == names
    assert main(["evaluate", "clustering", str(shop / "model"), "--category-col", "colour",
                 "--out", str(shop / "x"), *common]) == 2
    assert "--category-col 'colour': the model's catalog has no such column" in \
        capsys.readouterr().err


def test_clustering_skips_with_a_note_what_cannot_run(shop, capsys):
    assert _build(shop) == 0
    capsys.readouterr()
    assert main(["evaluate", "clustering", str(shop / "model"), "--categories", "3,20",
                 "--combos", "clicks;clicks,image", "--seeds", "1", "--fusions", "intermediate",
                 "--no-direct", "--quiet", "--out", str(shop / "rep")]) == 0
    err = capsys.readouterr().err
    assert ("skipped: combination clicks+image: the model has no ['image'] modality "
            "(it has ['clicks'])") in err
    assert "skipped: clustering: N = 20 skipped: only 4 categories have products" in err
    res = json.loads((shop / "rep" / "results.json").read_text())
    assert len(res["meta"]["notes"]["skipped"]) == 2
    assert {c["n_categories"] for c in res["clustering"]["cells"]} == {3}
    assert "N = 20 skipped" in (shop / "rep" / "report.md").read_text()


def test_kmeans_and_index_building_print_progress_lines(capsys):
    """The long steps that cannot count their work say when they start and end (and every
    --progress-every seconds in between)."""
    import numpy as np
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings

    n = 2500
    rng = np.random.default_rng(0)
    cat = Catalog(pl.DataFrame({"product_id": [f"{i:05d}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    emb = Embeddings(rng.normal(size=(n, 8)).astype(np.float32), np.ones(n, bool), "rand")
    rec = Recommender.from_embeddings(cat, {"text": emb}, index="hnsw", late_k=3)
    capsys.readouterr()
    rec.similar("00001", 5, fusion="early")
    err = capsys.readouterr().err
    assert "index: early over text (hnsw, 2,500 products): started" in err
    assert "index: early over text (hnsw, 2,500 products): done in" in err
    assert "k-means" not in err  # early fusion needs no clusters
    rec.similar("00001", 5, fusion="late")
    err = capsys.readouterr().err
    assert "late fusion: k-means++ of text (k=3, 2,500 vectors): started" in err
    assert "late fusion: k-means++ of text (k=3, 2,500 vectors): done in" in err
    quiet = Recommender.from_embeddings(cat, {"text": emb}, index="hnsw", late_k=3)
    quiet.progress = False
    quiet.similar("00001", 5, fusion="late")
    assert capsys.readouterr().err == ""


def test_cli_turns_library_progress_bars_off_when_stderr_is_a_log(monkeypatch, tmp_path):
    """Libraries' own tqdm bars (model loading, trainers, model cards) would fill a log file
    with carriage returns; the CLI sets TQDM_DISABLE for them (a user's setting wins)."""
    import os
    import subprocess
    import sys

    monkeypatch.setenv("TQDM_DISABLE", "")  # so that teardown removes what main() sets
    monkeypatch.delenv("TQDM_DISABLE")
    main(["stats", "--catalog", str(_shop_catalog(tmp_path))])  # stderr captured: not a TTY
    assert os.environ.get("TQDM_DISABLE") == "1"
    code = ("import sys; from prodfusion.cli import main; "  # as `prodfusion …` runs: the
            "main(['stats', '--catalog', sys.argv[1]]); "  # libraries import tqdm later
            "import tqdm; [None for _ in tqdm.tqdm(range(3), desc='library bar')]")
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-c", code, str(_shop_catalog(tmp_path))], stdout=fh,
                       stderr=fh, check=True, env={k: v for k, v in os.environ.items()
                                                   if k != "TQDM_DISABLE"})
    assert "library bar" not in log.read_text()


def _shop_catalog(folder):
    path = folder / "tiny.csv"
    path.write_text("product_id,title\n01,red shoe\n02,blue hat\n", encoding="utf-8")
    return path


def test_large_default_late_clusters_warn_and_name_late_k(monkeypatch, caplog):
    """Late queries read their clusters' members: default clusters larger than
    ``LARGE_CLUSTERS`` products draw a warning naming ``late_k``; a chosen ``late_k`` does not."""
    import logging

    import numpy as np
    import polars as pl

    import prodfusion.fusion.clustering as clustering
    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings

    n = 600
    rng = np.random.default_rng(0)
    cat = Catalog(pl.DataFrame({"product_id": [f"{i:05d}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    emb = Embeddings(rng.normal(size=(n, 8)).astype(np.float32), np.ones(n, bool), "rand")
    monkeypatch.setattr(clustering, "LARGE_CLUSTERS", 20)  # default k 17: ~35 per cluster
    with caplog.at_level(logging.WARNING, logger="prodfusion.fusion.clustering"):
        Recommender.from_embeddings(cat, {"text": emb}).late_labels_["text"]
        assert "default 17 clusters hold about 35 products" in caplog.text
        assert "late_k (--late-k), e.g. 17" in caplog.text
        caplog.clear()
        Recommender.from_embeddings(cat, {"text": emb}, late_k=17).late_labels_["text"]
        assert "late fusion" not in caplog.text
    monkeypatch.setattr(clustering, "LARGE_CLUSTERS", 50)
    with caplog.at_level(logging.WARNING, logger="prodfusion.fusion.clustering"):
        Recommender.from_embeddings(cat, {"text": emb}).late_labels_["text"]
        assert "late fusion" not in caplog.text


def test_default_late_k_grows_with_large_catalogs_but_not_for_older_folders(tmp_path,
                                                                             monkeypatch):
    """New models cap the default k at ``max(128, n / 1,500)`` (scaled down here); a folder
    saved before (no ``late_k_rule`` in its manifest) keeps the fixed cap it was built with."""
    import numpy as np
    import polars as pl

    import prodfusion.fusion.late as late
    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings

    monkeypatch.setattr(late, "MAX_DEFAULT_CLUSTERS", 4)
    monkeypatch.setattr(late, "MAX_DEFAULT_CLUSTER_SIZE", 10)
    n = 300
    rng = np.random.default_rng(0)
    cat = Catalog(pl.DataFrame({"product_id": [f"{i:05d}" for i in range(n)],
                                "title": [f"t{i}" for i in range(n)]}))
    emb = Embeddings(rng.normal(size=(n, 8)).astype(np.float32), np.ones(n, bool), "rand")
    rec = Recommender.from_embeddings(cat, {"text": emb}, index="exact")
    assert rec.late_k_of("text") == 12  # sqrt(150): the cap grew to 30 clusters
    rec.save(tmp_path / "new")
    manifest = json.loads((tmp_path / "new" / "manifest.json").read_text())
    assert manifest["settings"]["late_k_rule"] == 2
    assert Recommender.load(tmp_path / "new").late_k_of("text") == 12
    del manifest["settings"]["late_k_rule"]  # a folder from before the rule
    (tmp_path / "new" / "manifest.json").write_text(json.dumps(manifest))
    old = Recommender.load(tmp_path / "new")
    assert old.late_k_of("text") == 4  # the fixed cap, as built
    labels = old.late_labels_["text"]
    assert len(np.unique(labels)) == 4
    old.save(tmp_path / "resaved")  # re-saved by this version: still the old rule
    again = Recommender.load(tmp_path / "resaved")
    assert again.late_k_rule == 1 and again.late_k_of("text") == 4
