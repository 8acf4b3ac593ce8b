"""Categorization on a planted catalog: accuracy, save/load, predict --only-missing, build --category-from."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from prodfusion.cli import main
from prodfusion.data import Catalog
from prodfusion.errors import DataError, ParameterError
from prodfusion.training.categorize import CategoryClassifier
from prodfusion.training.predict import fill_categories, predict_categories
from prodfusion.training.protocol import evaluate_categorization
from prodfusion.training.report import write_categorization_report

from .conftest import planted_titles


@pytest.fixture(scope="module")
def split(planted):
    titles, labels = planted
    test_t, test_l = planted_titles(40, seed=9)   # unseen titles (other noise words, other ids)
    return titles, labels, test_t, test_l


@pytest.mark.parametrize("frozen", [True, False])
def test_planted_catalog_reaches_high_accuracy(split, tiny_st, frozen):
    titles, labels, test_t, test_l = split
    clf = CategoryClassifier(encoder=tiny_st, frozen=frozen, epochs=6, lr=1e-3, head_lr=1e-2,
                             batch_size=16, progress=False, seed=0)
    clf.fit(titles, labels, dev=(test_t[:20], test_l[:20]))
    pred, prob = clf.predict(test_t)
    acc = float(np.mean(pred == np.asarray(test_l, dtype=object)))
    assert acc >= 0.9, acc
    assert prob.shape == (40,) and np.all((prob > 0) & (prob <= 1))
    if not frozen:
        assert [h["epoch"] for h in clf.history_] == list(range(1, 7)) and 1 <= clf.best_epoch_ <= 6


def test_holdout_measures_titles_the_classifier_did_not_learn_from(tmp_path, split, tiny_st):
    from prodfusion.training._st import embed_pooled
    from prodfusion.training.categorize import _holdout_rows, logistic_head

    titles, labels, _, _ = split
    titles, labels = list(titles) + ["lonely title"], list(labels) + ["only one"]
    held = _holdout_rows(labels, 0.2, seed=0)
    n = len(labels)
    assert labels.index("only one") not in held  # a label's only product always trains
    for lab in set(labels) - {"only one"}:        # stratified: each label about its share
        rows = [i for i in range(n) if labels[i] == lab]
        assert abs(sum(i in set(held) for i in rows) - 0.2 * len(rows)) <= 1.5
    frozen = CategoryClassifier(encoder=tiny_st, frozen=True, progress=False, seed=0)
    frozen.fit(titles, labels, holdout=0.2)
    h = frozen.holdout_
    assert h["n"] == len(held) and h["refit_on_all"] and frozen.n_train_ == n
    # the held-out figure is a logistic regression fitted without those rows, scored on them
    x = embed_pooled(frozen.model_, titles)
    y = np.array([frozen.classes_.index(v) for v in labels])
    keep = np.setdiff1d(np.arange(n), held)
    w, b = logistic_head(x[keep], y[keep], len(frozen.classes_), frozen.C, 0)
    assert h["accuracy"] == pytest.approx(float(np.mean((x[held] @ w.T + b).argmax(1) == y[held])))
    # ... and the saved model is then refitted on every row: the same as no holdout at all
    plain = CategoryClassifier(encoder=tiny_st, frozen=True, progress=False, seed=0).fit(
        titles, labels)
    np.testing.assert_allclose(frozen.weight_, plain.weight_, atol=1e-6)
    assert plain.holdout_ is None
    path = frozen.save(tmp_path / "cat")
    assert json.loads((path / "manifest.json").read_text())["holdout"]["n"] == len(held)
    # fine-tuned: the held-out rows choose the epoch and stay out of training
    tuned = CategoryClassifier(encoder=tiny_st, epochs=2, lr=1e-3, head_lr=1e-2, batch_size=16,
                               progress=False, seed=0).fit(titles, labels, holdout=0.2)
    assert tuned.n_train_ == n - len(held) and not tuned.holdout_["refit_on_all"]
    assert all("dev_accuracy" in e for e in tuned.history_)
    best = max(e["dev_accuracy"] for e in tuned.history_)
    assert tuned.holdout_["accuracy"] == pytest.approx(best)
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ParameterError, match="holdout"):
            CategoryClassifier(encoder=tiny_st, frozen=True, progress=False).fit(
                titles, labels, holdout=bad)
    with pytest.raises(ParameterError, match="dev"):
        CategoryClassifier(encoder=tiny_st, progress=False).fit(
            titles, labels, holdout=0.2, dev=(titles[:2], labels[:2]))


def test_save_load_round_trip_and_predict_only_missing(tmp_path, split, tiny_st):
    titles, labels, test_t, test_l = split
    clf = CategoryClassifier(encoder=tiny_st, frozen=True, progress=False).fit(titles, labels)
    path = clf.save(tmp_path / "cat")
    assert sorted(p.name for p in path.iterdir()) == ["encoder", "head.safetensors", "labels.json", "manifest.json"]
    again = CategoryClassifier.load(path, progress=False)
    assert again.classes_ == clf.classes_
    np.testing.assert_allclose(again.predict_proba(test_t), clf.predict_proba(test_t), atol=1e-5)

    given = [None if i % 3 == 0 else "GIVEN" for i in range(len(test_t))]   # "GIVEN" is not a class
    cat = Catalog(pl.DataFrame({"product_id": [f"q{i}" for i in range(len(test_t))], "title": test_t,
                                "category": given}, schema_overrides={"category": pl.Utf8}))
    frame = predict_categories(path, cat, only_missing=True)
    missing = frame.filter(pl.col("category").is_null())
    kept = frame.filter(pl.col("category").is_not_null())
    assert kept["predicted_category"].to_list() == ["GIVEN"] * kept.height          # never overwritten
    assert set(kept["source"].to_list()) == {"given"} and kept["probability"].null_count() == kept.height
    want = [test_l[i] for i in range(len(test_t)) if i % 3 == 0]
    assert np.mean(np.array(missing["predicted_category"].to_list()) == np.array(want)) >= 0.9
    filled, n = fill_categories(cat, path)
    assert n == missing.height and filled.categories.count("GIVEN") == kept.height
    assert None not in filled.categories
    # a product without a title has nothing to predict from: it keeps its missing category
    blank = Catalog(pl.DataFrame({"product_id": ["x", "y"], "title": [test_t[0], None],
                                  "category": [None, None]},
                                 schema_overrides={"title": pl.Utf8, "category": pl.Utf8}))
    frame = predict_categories(path, blank, only_missing=True)
    assert frame["source"].to_list() == ["predicted", "no title"]  # not "given": it had none
    assert frame["predicted_category"].to_list()[1] is None
    filled, n = fill_categories(blank, path)
    assert n == 1 and filled.frame["category_source"].to_list() == ["predicted", "no title"]


def test_cli_train_predict_and_build_category_from(tmp_path, split, tiny_st, capsys):
    titles, labels, test_t, _ = split
    train_csv = tmp_path / "train.csv"
    pl.DataFrame({"pid": [f"p{i}" for i in range(len(titles))], "name": titles, "kind": labels}).write_csv(train_csv)
    assert main(["categorize", "train", "--catalog", str(train_csv), "--id-col", "pid", "--title-col", "name",
                 "--category-col", "kind", "--encoder", tiny_st, "--frozen", "--out", str(tmp_path / "m")]) == 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["frozen"] is True and manifest["n_classes"] == 4 and manifest["data"]["label_column"] == "kind"
    # measured on the default 10 % held out, then refitted on every product
    held = manifest["holdout"]
    assert held["n"] == pytest.approx(0.1 * len(titles), abs=2) and held["refit_on_all"]
    assert manifest["n_train"] == len(titles)
    line = capsys.readouterr().out
    assert re.search(rf"on {held['n']} held-out products \(1[01] %, stratified; then refitted on every "
                     rf"labelled product\): accuracy {held['accuracy']:.3f}, macro-F1 ", line), line
    assert main(["categorize", "train", "--catalog", str(train_csv), "--id-col", "pid", "--title-col",
                 "name", "--category-col", "kind", "--encoder", tiny_st, "--frozen", "--holdout", "0",
                 "--out", str(tmp_path / "m0")]) == 0
    assert "training accuracy" in capsys.readouterr().out
    assert "holdout" not in json.loads((tmp_path / "m0" / "manifest.json").read_text())

    new_csv = tmp_path / "new.csv"
    pl.DataFrame({"pid": ["a", "b", "c"], "name": test_t[:3], "kind": ["dress", None, None]}).write_csv(new_csv)
    out = tmp_path / "pred.csv"
    assert main(["categorize", "predict", str(tmp_path / "m"), "--catalog", str(new_csv), "--id-col", "pid",
                 "--title-col", "name", "--category-col", "kind", "--only-missing", "--out", str(out)]) == 0
    pred = pl.read_csv(out)
    assert pred["source"].to_list() == ["given", "predicted", "predicted"]
    assert pred["predicted_category"][0] == "dress"
    assert "3 products written to" in capsys.readouterr().err  # 2 predicted, 1 given

    model = tmp_path / "rec"
    assert main(["build", "--catalog", str(new_csv), "--id-col", "pid", "--title-col", "name",
                 "--category-col", "kind", "--text", tiny_st, "--image", "none", "--no-clicks",
                 "--cache-dir", "none", "--category-from", str(tmp_path / "m"), "--out", str(model)]) == 0
    assert "2 missing categories predicted" in capsys.readouterr().err
    from prodfusion.recommender import Recommender

    rec = Recommender.load(model)
    assert rec.catalog.categories[0] == "dress" and None not in rec.catalog.categories


def test_cli_unknown_label_column(tmp_path, split, capsys):
    titles, labels, _, _ = split
    csv = tmp_path / "c.csv"
    pl.DataFrame({"product_id": ["1", "2"], "title": titles[:2]}).write_csv(csv)
    assert main(["categorize", "train", "--catalog", str(csv), "--category-col", "product_type",
                 "--out", str(tmp_path / "m")]) == 2
    assert "product_type" in capsys.readouterr().err
    assert main(["categorize", "train", "--catalog", str(csv), "--out", str(tmp_path / "m")]) == 2
    assert "no category labels" in capsys.readouterr().err


def test_evaluate_protocol_end_to_end_and_report(tmp_path, tiny_st):
    from prodfusion.training.adapt import AdaptConfig

    titles, labels = planted_titles(320, seed=4)
    keep = [i for i, lab in enumerate(labels) if lab != "watch" or i % 16 == 2]   # watches: a tail label
    titles, labels = [titles[i] for i in keep], [labels[i] for i in keep]
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))], "title": titles,
                                "category": labels}))
    res = evaluate_categorization(
        cat, methods=["origin", "simcse"], base=tiny_st, fractions=[0.25, 1.0], seeds=[0, 1], frozen=True,
        adapt_config=AdaptConfig(epochs=1, batch_size=16, lr=1e-3), classifier={"progress": False},
        work_dir=tmp_path / "work", progress=False)
    assert res["kind"] == "categorization" and len(res["runs"]) == 2 * 2 * 2
    sizes = res["data"]["split_sizes"]
    assert sum(sizes.values()) == len(titles) and abs(sizes["adaptation"] - len(titles) / 2) <= 2
    assert res["data"]["tail_labels"] == ["watch"] and len(res["data"]["head_labels"]) == 3
    assert res["summary"]["origin"]["1.0"]["accuracy"]["mean"] >= 0.85
    assert res["adaptation"]["simcse"]["reused"] is False
    again = evaluate_categorization(
        cat, methods=["simcse"], base=tiny_st, fractions=[1.0], seeds=[0], frozen=True,
        adapt_config=AdaptConfig(epochs=1, batch_size=16, lr=1e-3), classifier={"progress": False},
        work_dir=tmp_path / "work", progress=False)
    assert again["adaptation"]["simcse"]["reused"] is True   # same data and settings: not adapted twice
    with pytest.raises(DataError, match="no run was left to score: every training subset held "
                                        "a single label"):  # not a report of NaN
        evaluate_categorization(cat, methods=["origin"], base=tiny_st, fractions=[0.01], seeds=[0],
                                frozen=True, classifier={"progress": False}, progress=False,
                                work_dir=tmp_path / "work1")
    paths = write_categorization_report(res, tmp_path / "rep", meta={"data": "planted"})
    md = paths["report_md"].read_text()
    assert "Table 2 layout" in md and "Macro-F1 on tail labels" in md and "fig5_head_tail.png" in md
    assert json.loads(paths["results_json"].read_text())["categorization"]["runs"][0]["method"] == "origin"
    write_categorization_report(json.loads(paths["results_json"].read_text()), tmp_path / "rep2")


def test_evaluate_reuses_finished_runs_from_the_work_dir(tmp_path, tiny_st, monkeypatch):
    import prodfusion.training.categorize as categorize_module

    titles, labels = planted_titles(160, seed=5)
    cat = Catalog(pl.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))], "title": titles,
                                "category": labels}))
    kw = dict(methods=["origin"], base=tiny_st, fractions=[0.5, 1.0], frozen=True,
              classifier={"progress": False}, work_dir=tmp_path / "work", progress=False)
    first = evaluate_categorization(cat, seeds=[0], **kw)
    assert len((tmp_path / "work" / "runs.jsonl").read_text().splitlines()) == 2

    class Boom:   # any new run would construct a classifier
        def __init__(self, *a, **k):
            raise AssertionError("a finished run was run again")

    monkeypatch.setattr(categorize_module, "CategoryClassifier", Boom)
    again = evaluate_categorization(cat, seeds=[0], **kw)
    assert [(r["fraction"], r["accuracy"]) for r in again["runs"]] == \
        [(r["fraction"], r["accuracy"]) for r in first["runs"]]
    with pytest.raises(AssertionError, match="run again"):   # a new seed is a new run
        evaluate_categorization(cat, seeds=[0, 1], **kw)
    with (tmp_path / "work" / "runs.jsonl").open("a") as fh:
        fh.write('{"key": "torn')   # an interrupted append is ignored, not an error
    assert len(evaluate_categorization(cat, seeds=[0], **kw)["runs"]) == 2
