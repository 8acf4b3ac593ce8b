"""The categorization protocol's pieces against hand-computed cases, and its input checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest

from prodfusion.data import Catalog
from prodfusion.errors import DataError, ParameterError
from prodfusion.training.categorize import CategoryClassifier, check_labels
from prodfusion.training.protocol import (
    classification_metrics,
    evaluate_categorization,
    head_tail_labels,
    stratified_split,
)


def test_head_tail_split_by_hand():
    # 10 instances: a×5, b×3, c×1, d×1. a alone holds 50 %; a+b hold 80 % -> head {a, b}.
    labels = list("aaaaabbbcd")
    assert head_tail_labels(labels, 0.8) == (["a", "b"], ["c", "d"])
    # 79 % of instances is not enough: the label that crosses the threshold is head.
    assert head_tail_labels(labels, 0.81) == (["a", "b", "c"], ["d"])
    # ties in frequency are broken by name
    assert head_tail_labels(list("xxyy"), 0.5) == (["x"], ["y"])


def test_metrics_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2, FP 0, FN 1 -> 4/5;  b: TP 1, FP 1, FN 1 -> 2/4;  c: TP 1, FP 1, FN 0 -> 2/3
    f1 = {"a": 0.8, "b": 0.5, "c": 2 / 3}
    m = classification_metrics(y_true, y_pred, head=["a", "b"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx(np.mean(list(f1.values())))
    assert m["head_macro_f1"] == pytest.approx((0.8 + 0.5) / 2)
    assert m["tail_macro_f1"] == pytest.approx(2 / 3)
    assert m["head_accuracy"] == pytest.approx(3 / 5) and m["tail_accuracy"] == 1.0
    assert (m["head_n"], m["tail_n"], m["head_labels"], m["tail_labels"]) == (5, 1, 2, 1)
    # agrees with scikit-learn on the overall figure
    from sklearn.metrics import f1_score

    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_stratified_split_keeps_label_shares():
    rng = np.random.default_rng(0)
    labels = list(rng.choice(["a", "b", "c", "d"], p=[0.55, 0.3, 0.1, 0.05], size=2000))
    parts = stratified_split(labels, (0.5, 0.3, 0.1, 0.1), seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(2000))      # a partition
    counts = Counter(labels)
    for k, share in enumerate((0.5, 0.3, 0.1, 0.1)):
        got = Counter(labels[i] for i in parts[k])
        for lab, n in counts.items():
            assert abs(got[lab] - share * n) <= 3, (k, lab, got[lab], share * n)
    again = stratified_split(labels, (0.5, 0.3, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.mark.parametrize("fractions", [[0.0], [1.5], [-0.1, 0.5]])
def test_fraction_outside_unit_interval_is_refused(fractions):
    cat = Catalog(pl.DataFrame({"product_id": ["1", "2"], "title": ["a", "b"], "category": ["x", "y"]}))
    with pytest.raises(ParameterError, match=r"'fractions' parameter of evaluate_categorization\(\) must be numbers in \(0, 1\]"):
        evaluate_categorization(cat, fractions=fractions)


@pytest.mark.parametrize("seeds", [[], [-1], [0.5]])
def test_no_seed_or_a_bad_one_is_refused(seeds):
    cat = Catalog(pl.DataFrame({"product_id": ["1", "2"], "title": ["a", "b"], "category": ["x", "y"]}))
    with pytest.raises(ParameterError, match=r"'seeds' parameter of evaluate_categorization\(\) must be "
                                             r"at least one int >= 0"):
        evaluate_categorization(cat, seeds=seeds)


def test_single_class_and_missing_labels_are_refused():
    with pytest.raises(DataError, match="1 class .'dress'.; a classifier needs at least 2"):
        check_labels(["dress"] * 5, "train")
    with pytest.raises(DataError, match="label 1 is missing"):
        check_labels(["dress", None], "train")
    with pytest.raises(DataError, match="1 class"):
        CategoryClassifier(frozen=True).fit(["a", "b"], ["x", "x"])


def test_catalog_without_labels_is_refused():
    cat = Catalog(pl.DataFrame({"product_id": ["1", "2"], "title": ["a", "b"]}))
    with pytest.raises(DataError, match="no category labels; name the label column with --category-col"):
        evaluate_categorization(cat)
