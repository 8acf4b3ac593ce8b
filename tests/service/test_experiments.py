"""Visitor bucketing (golden vectors, determinism, balance) and the stable allocation scheme."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

from prodfusion.errors import ParameterError
from prodfusion.service.events import SQLiteEventStore
from prodfusion.service.experiments import (
    N_BUCKETS,
    Allocation,
    ExperimentConfig,
    VariantConfig,
    bucket_of,
    rebalance,
    target_counts,
)

# Frozen: changing the hash would move every visitor of a running experiment.
GOLDEN = [
    ("visitor-1", "demo-salt", 4790),
    ("visitor-2", "demo-salt", 1596),
    ("0", "s", 3504),
    ("a" * 128, "fusion-vs-prod2vec", 9026),
    ("7cfafa855aeb45cba60450f85890bd29", "2024-06", 912),
    ("Ünïcode", "salt-ü", 7942),
]

VISITORS = [f"visitor-{i}" for i in range(10_000)]


@pytest.mark.parametrize(("visitor", "salt", "bucket"), GOLDEN)
def test_golden_buckets(visitor, salt, bucket):
    assert bucket_of(visitor, salt) == bucket


def test_bucket_is_the_documented_formula():
    d = hashlib.sha256(b"demo-salt\x00visitor-1").digest()
    assert d[:8].hex() == "4051cd3461dd68f6"
    assert int.from_bytes(d[:8], "big") % N_BUCKETS == bucket_of("visitor-1", "demo-salt")


def test_salt_changes_the_split_and_same_visitor_same_bucket():
    a = [bucket_of(v, "salt-a") for v in VISITORS[:500]]
    assert a == [bucket_of(v, "salt-a") for v in VISITORS[:500]]
    b = [bucket_of(v, "salt-b") for v in VISITORS[:500]]
    assert np.mean(np.array(a) == np.array(b)) < 0.01  # independent splits


def test_bucket_rejects_bad_input():
    with pytest.raises(ParameterError, match=r"The 'visitor' parameter of bucket_of\(\) must be a non-empty string without NUL. Got '' instead."):
        bucket_of("", "s")
    with pytest.raises(ParameterError, match=r"'salt' parameter of bucket_of\(\)"):
        bucket_of("v", "a\x00b")


def test_target_counts_largest_remainder():
    assert target_counts([1, 1, 1]) == [3334, 3333, 3333]
    assert target_counts([0.2, 0.3, 0.5]) == [2000, 3000, 5000]
    assert target_counts([2, 1]) == [6667, 3333]
    assert target_counts([1, 0]) == [10_000, 0]
    with pytest.raises(ParameterError, match="non-negative finite numbers with a positive sum"):
        target_counts([0, 0])


@pytest.mark.parametrize("weights", [[1, 1], [20, 30, 50], [90, 10]])
def test_balance_of_10000_visitors_matches_weights(weights):
    alloc = Allocation.initial("exp", "balance-salt", [f"v{i}" for i in range(len(weights))], weights)
    got = [alloc.variant_of(v) for v in VISITORS]
    observed = [got.count(n) for n in alloc.names]
    expected = np.array(weights, dtype=float) / sum(weights) * len(VISITORS)
    # within statistical tolerance: chi-square goodness of fit and 4 sigma per variant
    assert chisquare(observed, expected).pvalue > 0.001
    for o, e in zip(observed, expected, strict=True):
        p = e / len(VISITORS)
        assert abs(o - e) < 4 * np.sqrt(len(VISITORS) * p * (1 - p))


def test_same_visitor_always_same_variant_across_objects():
    a1 = Allocation.initial("exp", "s", ["a", "b"], [1, 1])
    a2 = Allocation.initial("exp", "s", ["a", "b"], [5, 5])
    assert [a1.variant_of(v) for v in VISITORS[:2000]] == [a2.variant_of(v) for v in VISITORS[:2000]]


def test_first_allocation_is_contiguous_in_order():
    a = Allocation.initial("exp", "s", ["a", "b", "c"], [20, 30, 50])
    assert a.ranges() == {"a": [[0, 2000]], "b": [[2000, 5000]], "c": [[5000, 10000]]}


def _assign(alloc):
    return {v: alloc.variant_of(v) for v in VISITORS}


def test_two_variants_weight_change_moves_only_released_buckets():
    old = Allocation.initial("exp", "s", ["a", "b"], [50, 50])
    new = old.evolve(["a", "b"], [60, 40])
    assert new.version == 2 and new.counts() == {"a": 6000, "b": 4000}
    before, after = _assign(old), _assign(new)
    # a grows: none of its visitors move; b shrinks: its remaining visitors stay in b
    assert all(after[v] == "a" for v in VISITORS if before[v] == "a")
    assert all(before[v] == "b" for v in VISITORS if after[v] == "b")
    moved = sum(before[v] != after[v] for v in VISITORS)
    assert 0.07 * len(VISITORS) < moved < 0.13 * len(VISITORS)  # about 10 % of visitors


def test_three_variants_a_variant_keeping_its_share_keeps_all_its_visitors():
    old = Allocation.initial("exp", "s", ["a", "b", "c"], [34, 33, 33])
    new = old.evolve(["a", "b", "c"], [20, 33, 47])  # b keeps its share; a gives to c
    before, after = _assign(old), _assign(new)
    assert {v for v in VISITORS if before[v] == "b"} == {v for v in VISITORS if after[v] == "b"}
    assert all(after[v] == "c" for v in VISITORS if before[v] == "c")
    assert all(after[v] in ("a", "c") for v in VISITORS if before[v] == "a")
    # contiguous ranges in order would have shifted b: this is what the ledger prevents
    naive = Allocation.initial("exp", "s", ["a", "b", "c"], [20, 33, 47])
    assert any(naive.variant_of(v) != "b" for v in VISITORS if before[v] == "b")


def test_adding_and_removing_variants():
    old = Allocation.initial("exp", "s", ["a", "b"], [50, 50])
    added = old.evolve(["a", "b", "c"], [50, 25, 25])
    b_old, b_new = _assign(old), _assign(added)
    assert all(b_new[v] == "a" for v in VISITORS if b_old[v] == "a")
    assert all(b_old[v] == "b" for v in VISITORS if b_new[v] == "b")
    removed = added.evolve(["a", "c"], [50, 50])
    r = _assign(removed)
    assert all(r[v] == "a" for v in VISITORS if b_new[v] == "a")
    assert all(r[v] == "c" for v in VISITORS if b_new[v] == "c")
    assert removed.counts() == {"a": 5000, "c": 5000}


def test_evolve_without_count_change_is_the_same_allocation():
    old = Allocation.initial("exp", "s", ["a", "b"], [1, 1])
    assert old.evolve(["a", "b"], [50, 50]) is old
    with pytest.raises(ParameterError, match="must match names and sum to 10,000"):
        rebalance(None, (), ["a"], [10])


def test_ranges_round_trip():
    a = Allocation.initial("exp", "s", ["a", "b", "c"], [34, 33, 33]).evolve(["a", "b", "c"], [20, 33, 47])
    owner = Allocation.owner_from_ranges(a.names, a.ranges())
    assert np.array_equal(owner, a.owner)
    with pytest.raises(ParameterError, match="do not cover all 10,000 buckets"):
        Allocation.owner_from_ranges(["a"], {"a": [[0, 10]]})


def test_ledger_survives_restarts_and_versions_changes(tmp_path: Path):
    path = tmp_path / "ev.sqlite3"
    store = SQLiteEventStore(path).open()
    a1 = store.resolve_allocation("exp", "s", ["a", "b", "c"], [34, 33, 33])
    store.close()
    store = SQLiteEventStore(path).open()  # a "restart"
    again = store.resolve_allocation("exp", "s", ["a", "b", "c"], [34, 33, 33])
    assert again.version == 1 and np.array_equal(again.owner, a1.owner)
    a2 = store.resolve_allocation("exp", "s", ["a", "b", "c"], [20, 33, 47])
    assert a2.version == 2
    assert np.array_equal(a2.owner == 1, a1.owner == 1)  # b's buckets unchanged
    latest = store.latest_allocation("exp")
    assert latest.version == 2 and np.array_equal(latest.owner, a2.owner)
    other_salt = store.resolve_allocation("exp", "new-salt", ["a", "b", "c"], [20, 33, 47])
    assert other_salt.version == 1  # a new salt starts a new ledger
    store.close()


def test_config_validation():
    v = VariantConfig("a", 1, "m")
    with pytest.raises(ParameterError, match=r"The 'name' parameter of a variant must be 1-64 characters"):
        VariantConfig("bad name", 1, "m")
    with pytest.raises(ParameterError, match=r"The 'weight' parameter of variant 'a' must be a non-negative number. Got -1 instead."):
        VariantConfig("a", -1, "m")
    with pytest.raises(ParameterError, match=r"The 'fusion' parameter of variant 'a' must be one of 'early', 'intermediate', 'late'. Got 'mean' instead."):
        VariantConfig("a", 1, "m", fusion="mean")
    with pytest.raises(ParameterError, match=r"'modalities' parameter of variant 'a'"):
        VariantConfig("a", 1, "m", modalities=("text", "audio"))
    with pytest.raises(ParameterError, match=r"Experiment 'x': duplicate variant names \['a'\]"):
        ExperimentConfig("x", variants=(v, v))
    with pytest.raises(ParameterError, match=r"Experiment 'x': all variant weights are 0."):
        ExperimentConfig("x", variants=(VariantConfig("a", 0, "m"),))
    with pytest.raises(ParameterError, match=r"The 'control' parameter of experiment 'x' must be one of \['a'\]. Got 'b' instead."):
        ExperimentConfig("x", variants=(v,), control="b")
