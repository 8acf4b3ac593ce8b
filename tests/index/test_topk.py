"""The one Filters object: its row-local rule agrees with the matrix rule every search uses."""

from __future__ import annotations

import numpy as np
import pytest

from prodfusion.errors import ParameterError
from prodfusion.index.topk import Filters, topk_exact


def _random_filters(rng, n: int) -> list[Filters]:
    banned = rng.random(n) < 0.3
    cats = rng.integers(-1, 4, n)  # -1: no category (matches nothing)
    groups = rng.integers(-1, 6, n)  # -1: no group (never clashes)
    return [Filters(), Filters(exclude_self=False), Filters(banned=banned),
            Filters(same_code=cats), Filters(diff_code=groups),
            Filters(exclude_self=False, banned=banned, same_code=cats, diff_code=groups)]


def test_allows_is_the_row_form_of_mask(rng):
    n = 50
    for flt in _random_filters(rng, n):
        full = flt.mask(np.arange(n), n)  # the matrix rule of Filters.apply
        for q in range(n):
            cand = rng.permutation(n)[:20]
            np.testing.assert_array_equal(flt.allows(q, cand), full[q, cand])


def test_hand_computed_filters():
    cats = np.array([0, 0, 1, -1, 0])
    groups = np.array([7, 7, -1, 3, 8])
    flt = Filters(banned=np.array([0, 0, 0, 0, 1]), same_code=cats, diff_code=groups)
    # query 0 (category 0, group 7): 1 shares its group, 2 and 3 another category, 4 banned
    assert flt.allows(0, np.arange(5)).tolist() == [False, False, False, False, False]
    assert Filters(same_code=cats).allows(0, np.arange(5)).tolist() == [
        False, True, False, False, True]
    # a query without a category (-1) matches nothing; without a group (-1) clashes with none
    assert not Filters(same_code=cats).allows(3, np.arange(5)).any()
    assert Filters(diff_code=groups).allows(2, np.arange(5)).tolist() == [
        True, True, False, True, True]


def test_banned_as_ints_means_booleans():
    flt = Filters(banned=np.array([0, 1, 0]))  # ~banned must not flip the bits of ints
    assert flt.banned.dtype == bool
    assert flt.allows(0, np.array([1, 2])).tolist() == [False, True]


def test_topk_exact_takes_one_filters_object(rng):
    n = 30
    x = rng.normal(size=(n, 4)).astype(np.float32)
    sims = x @ x.T
    for flt in _random_filters(rng, n):
        rows, scores = topk_exact(lambda r: sims[r], np.arange(n), n, 5, filters=flt)
        for q in range(n):
            ok = np.flatnonzero(flt.mask(np.array([q]), n)[0])
            want = ok[np.lexsort((ok, -sims[q, ok]))][:5]  # score desc, then row asc
            got = rows[q][rows[q] >= 0]
            np.testing.assert_array_equal(got, want)
    rows, _ = topk_exact(lambda r: sims[r], np.array([3]), n, 5)  # None: the query excluded
    assert 3 not in rows[0] and (rows[0] >= 0).all()


def test_filters_of_the_wrong_length_are_refused():
    with pytest.raises(ParameterError, match=r"topk_exact\(\): same_code has 3 entries, the "
                                             r"index 10 rows"):
        topk_exact(lambda r: np.zeros((len(r), 10)), np.array([0]), 10, 2,
                   filters=Filters(same_code=np.zeros(3, np.int64)))
