"""The clustering protocol on planted categories, the report renderer and the CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prodfusion.errors import DataError, ParameterError
from prodfusion.evaluation.clustering import evaluate_clustering, tsne_2d
from prodfusion.evaluation.replay import replay
from prodfusion.evaluation.report import write_report
from prodfusion.evaluation.retrieval import evaluate_retrieval


def test_clustering_recovers_planted_categories(planted_clusters):
    rec, _ = planted_clusters
    res = evaluate_clustering(
        rec, categories=(2, 3), seeds=2, max_per_category=None, main_categories=3,
        combos=[("text",), ("image",), ("text", "image", "clicks")],
        table3_fusions=("intermediate",), progress=False,
    )
    cells = {(c["n_categories"], "+".join(c["combo"]), c["fusion"]): c for c in res["cells"]}
    # Table II (N = 3): every fusion; the other N: only the Table III fusions.
    assert len([c for c in res["cells"] if c["n_categories"] == 3 and not c.get("reference")]) \
        == 3 * 3
    # the title TF-IDF reference (titles here are "item <i>": no category signal)
    ref = [c for c in res["cells"] if c.get("reference")]
    assert [c["n_categories"] for c in ref] == [2, 3]
    assert abs(ref[1]["ari_tsne"]["mean"]) < 0.3 and len(ref[1]["ari_tsne"]["values"]) == 2
    assert {f for (n, _, f) in cells if n == 2} == {"intermediate"}
    for f in ("early", "intermediate", "late"):
        assert cells[(3, "text", f)]["ari_tsne"]["mean"] == 1.0
        assert cells[(3, "text+image+clicks", f)]["ari_direct"]["mean"] == 1.0
        assert abs(cells[(3, "image", f)]["ari_tsne"]["mean"]) < 0.3  # noise modality
    cell = cells[(3, "text", "intermediate")]
    assert cell["seeds"] == [0, 1] and len(cell["ari_tsne"]["values"]) == 2
    assert cell["tsne_input"] == "precomputed distances"
    assert cells[(3, "text", "early")]["tsne_input"] == "vectors"
    # "complete": products 0 and 1 have no click vector and are left out everywhere
    assert res["sets"]["3"]["n_products"] == 58 and res["config"]["eligible_products"] == 58
    assert res["tsne"]["backends"] == ["opentsne"]
    fig = res["figure"]
    assert fig["combo"] == ["text", "image", "clicks"] and fig["fusion"] == "intermediate"
    assert len(fig["xy"]) == 58 and "0000" not in fig["product_ids"]


def test_clustering_parameter_errors(planted_clusters):
    rec, _ = planted_clusters
    with pytest.raises(ParameterError, match=r"'seeds' parameter of evaluate_clustering\(\)"):
        evaluate_clustering(rec, seeds=0, progress=False)
    with pytest.raises(ParameterError, match=r"'fusions' parameter of evaluate_clustering\(\)"):
        evaluate_clustering(rec, categories=(2,), fusions=("mean",), progress=False)
    with pytest.raises(DataError, match="Only 3 categories have eligible products"):
        evaluate_clustering(rec, categories=(5,), progress=False)


def test_tsne_backends_and_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    for backend in ("opentsne", "sklearn"):
        y, info = tsne_2d(distances=d, seed=1, backend=backend)
        assert y.shape == (40, 2) and np.isfinite(y).all() and info["backend"] == backend
        assert info["perplexity"] == 13.0  # capped to (n - 1) / 3
    y1, _ = tsne_2d(x, seed=3)
    y2, _ = tsne_2d(x, seed=3)
    np.testing.assert_array_equal(y1, y2)  # the seed fixes the map
    with pytest.raises(ParameterError, match="exactly one of 'x'"):
        tsne_2d(x, distances=d)
    with pytest.raises(ParameterError, match=r"'backend' parameter of tsne_2d\(\)"):
        tsne_2d(x, backend="umap")


def test_report_renders_every_section_offline(tmp_path, planted_clusters, angle_model,
                                              angle_sessions):
    rec, _ = planted_clusters
    clu = evaluate_clustering(rec, categories=(2, 3), seeds=2, max_per_category=None,
                              main_categories=3, combos=[("text",), ("text", "image", "clicks")],
                              progress=False)
    ret = evaluate_retrieval(angle_model, sessions=angle_sessions, test_fraction=0.375, k=3,
                             variants=["intermediate:text", "baseline"], n_boot=50, progress=False)
    rep = replay("baseline", "intermediate:text+image", model=angle_model,
                 sessions=angle_sessions, test_fraction=0.375, k=3, progress=False)
    paths = write_report({"clustering": clu, "retrieval": ret, "replay": rep}, tmp_path / "r",
                         meta={"data": "planted"})
    names = {p.name for p in paths.values()}
    assert {"report.md", "report.html", "results.json", "fig4_tsne.png", "ari_main.png",
            "retrieval_sessions.png", "replay_sessions.png"} <= names
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Table II — ARI (t-SNE + k-means++), N = 3 categories" in md
    assert "Table III" in md and "Table IV — simulated CTR on held-out sessions" in md
    assert "| text | **1.000 ± 0.000** |" in md
    assert "![Fig. 4" in md and "data: planted" in md
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 4
    assert "http://" not in html and "https://" not in html  # nothing fetched: opens offline
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["replay"]["sources"]["sessions"]["total"]["clicks_b"] >= 0
    assert data["clustering"]["config"]["seeds"] == [0, 1]
    assert data["retrieval"]["config"]["k"] == 3 and data["meta"]["notes"]["data"] == "planted"
    assert data["meta"]["machine"]["cpu_count"] >= 1
    # a results.json renders again, keeping its meta (when, where, how)
    again = write_report(data, tmp_path / "again", meta={"machine": "noted"})
    data2 = json.loads(again["results_json"].read_text())
    assert data2["meta"]["created"] == data["meta"]["created"]
    assert data2["meta"]["machine"] == data["meta"]["machine"]
    assert data2["meta"]["notes"] == {"data": "planted", "machine": "noted"}
    assert data2["clustering"] == data["clustering"]
    with pytest.raises(DataError, match="every result must be a dict returned by"):
        write_report([{"kind": "nope"}], tmp_path / "bad")


def test_cli_evaluate_all_and_replay(tmp_path, angle_model, angle_sessions, capsys):
    from prodfusion.cli import main

    model_dir = angle_model.save(tmp_path / "model")
    f = angle_sessions.frame
    f.select(pl.col("session").alias("sid"), pl.col("product_id").alias("item"),
             pl.col("ts").cast(pl.Int64).alias("t")).write_csv(tmp_path / "views.csv")
    data = ["--interactions", str(tmp_path / "views.csv"), "--session-cols", "sid",
            "--item-col", "item", "--time-col", "t", "--test-fraction", "0.375", "-k", "3",
            "--p2v-dim", "8", "--p2v-epochs", "1", "--workers", "1", "--quiet", "--p2v-seed", "3"]
    rc = main(["evaluate", "all", str(model_dir), "--categories", "2,3", "--seeds", "1",
               "--main-categories", "3", "--combos", "text;text,image", "--n-boot", "30",
               "--out", str(tmp_path / "rep"), "--note", "data=planted", "--ties", "row", *data])
    assert rc == 0
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert set(res) >= {"clustering", "retrieval", "replay", "meta"}
    assert res["replay"]["config"]["a"]["label"] == "baseline (Prod2Vec, text fallback)"
    # the treatment by default: what the model serves (its fusion, modalities and weights)
    method, mods = angle_model.resolve()
    assert res["replay"]["config"]["b"]["label"] == \
        f"the model's lists ({method}:{'+'.join(mods)})"
    assert res["retrieval"]["config"]["prod2vec"]["seed"] == 3  # --p2v-seed reaches Prod2Vec
    assert res["retrieval"]["config"]["ties"] == "row"  # --ties reaches the evaluation
    assert {r["ties"] for r in res["retrieval"]["rows"]} == {"as served"}
    # the A/B replay alone, with config files naming the model (no MODEL_DIR)
    for name, mod in (("a", "text"), ("b", "image")):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"model": str(model_dir), "fusion": "intermediate", "modalities": [mod]}))
    rc = main(["evaluate", "replay", "--a", str(tmp_path / "a.json"), "--b",
               str(tmp_path / "b.json"), "--out", str(tmp_path / "rep2"), "--protocol", "whole",
               *data])
    assert rc == 0
    tot = json.loads((tmp_path / "rep2" / "results.json").read_text())["replay"]["sources"][
        "sessions"]["total"]
    assert (tot["ctr_a"], tot["ctr_b"]) == (0.75, 0.25)  # as in the planted replay test
    # the replay of a model folder alone: the baseline against the model's own lists
    rc = main(["evaluate", "replay", str(model_dir), "--out", str(tmp_path / "rep4"), *data])
    cfg = json.loads((tmp_path / "rep4" / "results.json").read_text())["replay"]["config"]
    assert rc == 0 and cfg["a"]["label"].startswith("baseline") and \
        cfg["b"]["label"].startswith("the model's lists (")
    rc = main(["evaluate", "render", str(tmp_path / "rep2" / "results.json"), "--out",
               str(tmp_path / "rep2b")])
    assert rc == 0 and "Table IV" in (tmp_path / "rep2b" / "report.md").read_text()
    rc = main(["evaluate", "retrieval", str(model_dir), "--out", str(tmp_path / "rep3")])
    assert rc == 2 and "needs held-out interactions" in capsys.readouterr().err
