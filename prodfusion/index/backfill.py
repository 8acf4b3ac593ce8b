"""Backfill: a list the modalities cannot fill is completed with the most popular products.

A query's list comes up short when too few candidates share a modality with it: a product
without training clicks on a model whose only modalities are ``clicks`` and ``cooc``, a
product with no vector at all, a strict filter. The ``popular`` backfill
(``Recommender(backfill="popular")``, the default of a new build; ``prodfusion build
--backfill``) appends, after the ranked results, the products with the most training
occurrences (``click_counts_``, the counts behind ``n0`` and the ``popularity`` modality),
most first, ties by catalog row, under the query's filters, never the query itself nor a
product already listed. It is the ``popular`` reference baseline used as a last resort, as
the simple recommenders a team would otherwise run do.

A backfilled result has no similarity to the query: its score is ``NaN`` (``null`` in JSON;
the CLI prints ``popular``), so a caller can tell it from a ranked one. A model without click
counts (built without sessions) has nothing to backfill with and keeps short lists; so does a
model folder saved before backfill existed (its manifest has no ``backfill`` setting).

Examples
--------
>>> order = popular_order(np.array([0, 5, 2, 5]))  # row 0 was never clicked
>>> order.tolist()
[1, 3, 2]
>>> rows = np.array([[3, -1, -1]]); scores = np.array([[0.5, -np.inf, -np.inf]], np.float32)
>>> r, s = backfill(rows, scores, np.array([2]), order)
>>> r.tolist(), s.tolist()
([[3, 1, -1]], [[0.5, nan, -inf]])
"""

from __future__ import annotations

import numpy as np

from prodfusion.errors import ParameterError
from prodfusion.index.topk import Filters, firsts_of_codes

__all__ = ["BACKFILLS", "backfill", "check_backfill", "popular_order", "score_or_none"]

#: The accepted ``backfill`` settings (``None``: short lists stay short).
BACKFILLS = ("popular",)


def check_backfill(value, where: str):
    """``value`` as a backfill setting (``None`` or ``"popular"``; ``"none"`` reads as None)."""
    if value is None or value == "none":
        return None
    if value in BACKFILLS:
        return value
    raise ParameterError(f"{where}: backfill must be 'popular' or None (\"none\"), "
                         f"not {value!r}.")


def score_or_none(score) -> float | None:
    """A listed score for JSON: ``None`` for a backfilled result (``NaN``), else a float."""
    s = float(score)
    return None if s != s else s


def popular_order(counts: np.ndarray) -> np.ndarray:
    """Rows with at least one training occurrence, most first, ties by row."""
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    return order[counts[order] > 0]


def backfill(rows: np.ndarray, scores: np.ndarray, query_rows: np.ndarray, order: np.ndarray,
             filters: Filters | None = None,
             one_per_code: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fill the ``-1`` padding of each list with the first allowed rows of ``order``.

    ``rows`` / ``scores`` are a ``topk`` answer (``(q, k)``, ``-1`` / ``-inf`` pad the end);
    returns new arrays, the filled places scored ``NaN``. ``filters`` are the query's
    (:class:`~prodfusion.index.topk.Filters`; ``None``: only the query itself is excluded).
    ``one_per_code`` (an int code per row, ``-1`` none): a list that holds one product per
    group (``one_per_group``) gets no second product of a group already in it.
    """
    rows = np.array(rows, dtype=np.int64, copy=True)
    scores = np.array(scores, dtype=np.float32, copy=True)
    if rows.ndim != 2 or rows.shape != scores.shape:
        raise ValueError(f"backfill(): rows {rows.shape} and scores {scores.shape} must be "
                         "the same (q, k) shape.")
    flt = filters if filters is not None else Filters()
    q = np.asarray(query_rows, dtype=np.int64)
    k = rows.shape[1]
    for i in np.flatnonzero((rows < 0).any(axis=1)):
        have = rows[i][rows[i] >= 0]
        need = k - len(have)
        taken: list[np.ndarray] = []
        lo, step = 0, max(4 * k, 256)
        while need > 0 and lo < len(order):  # geometric chunks: a strict filter reads far
            cand = order[lo:lo + step]
            cand = cand[flt.allows(int(q[i]), cand) & ~np.isin(cand, have)]
            if one_per_code is not None:
                cand = _new_codes(cand, one_per_code,
                                  np.concatenate([have, *taken]) if taken else have)
            cand = cand[:need]
            taken.append(cand)
            need -= len(cand)
            lo, step = lo + step, 2 * step
        if taken:
            add = np.concatenate(taken)
            n0 = len(have)
            rows[i, :n0], rows[i, n0:n0 + len(add)] = have, add
            scores[i, n0:n0 + len(add)] = np.nan
    return rows, scores


def _new_codes(cand: np.ndarray, codes: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """``cand`` less rows whose code (``>= 0``) is a listed row's or an earlier
    candidate's."""
    c = codes[cand]
    return cand[firsts_of_codes(c) & ~np.isin(c, codes[listed][codes[listed] >= 0])]
