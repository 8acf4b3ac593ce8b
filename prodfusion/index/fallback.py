"""Approximate search under a zero-weight fallback (``Weighting.fallback``).

A query that has none of the positive-weight modalities shares none with any candidate: every
pair is ranked by the fallback (:func:`prodfusion.fusion.weights.fallback_terms`). The
weighted index's estimates are all zero for it, so its candidates would be arbitrary. This
searcher routes such queries to an index over the fallback modalities under the fallback's
own weighting (:func:`~prodfusion.fusion.weights.fallback_search_weighting`), whose order is
the fallback's first tier, and re-scores those candidates exactly with the main index. Other
queries go to the main index unchanged. The fallback index is built on the first query that
needs it (``fallback`` may be a callable returning it) and is not saved with the model.
"""

from __future__ import annotations

import numpy as np

from prodfusion.fusion.base import check_query_rows
from prodfusion.fusion.weights import FALLBACK_OFFSET
from prodfusion.index.exact import topk_rows
from prodfusion.index.topk import Filters

__all__ = ["EarlyFallbackIndex", "FallbackRoutedIndex"]


class _Routed:
    """A main searcher, the fallback one (built on first use when given as a callable) and
    the rows the main one serves."""

    def __init__(self, main, fallback, served: np.ndarray) -> None:
        self.main, self._fallback = main, fallback
        self.served = np.asarray(served, bool)
        self.n = len(self.served)

    @property
    def fallback(self):
        if callable(self._fallback) and not hasattr(self._fallback, "topk"):
            self._fallback = self._fallback()
        return self._fallback

    def _main_topk(self, query_rows, k: int, filters):
        """``(rows, out_r, out_s, served)``: the main searcher's answers for the queries it
        serves, ``-1`` / ``-inf`` for the others (the subclass fills them)."""
        rows = check_query_rows(query_rows, self.n)
        out_r = np.full((len(rows), int(k)), -1, np.int64)
        out_s = np.full((len(rows), int(k)), -np.inf, np.float32)
        a = self.served[rows]
        if a.any():
            out_r[a], out_s[a] = self.main.topk(rows[a], int(k), filters=filters)
        return rows, out_r, out_s, a


class FallbackRoutedIndex(_Routed):
    """``topk`` of the main index, with queries it cannot serve routed to ``fallback``.

    Parameters
    ----------
    main : index with ``topk`` and exact ``pair_scores(q, rows)``
    fallback : index with ``topk`` over the fallback modalities, or a callable building it
    served : bool array (n,)
        Rows having a positive-weight modality (the main index serves them).
    """

    method = "intermediate"

    def pair_scores(self, q: int, cand_rows: np.ndarray) -> np.ndarray:
        return self.main.pair_scores(q, cand_rows)

    def topk(self, query_rows, k: int = 15, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows, out_r, out_s, a = self._main_topk(query_rows, k, filters)
        k = int(k)
        idx = np.flatnonzero(~a)
        if len(idx):
            r, _ = self.fallback.topk(rows[idx], k, filters=filters)
            for j, i in enumerate(idx):
                c = r[j][r[j] >= 0]
                if len(c):
                    s = np.asarray(self.main.pair_scores(int(rows[i]), c), np.float32)
                    out_r[i], out_s[i] = topk_rows(s[None, :], k, c[None, :])
        return out_r, out_s


class EarlyFallbackIndex(_Routed):
    """Early fusion's ``topk`` with the queries its weighted blocks cannot serve ranked by
    the zero-weight fallback.

    Early fusion concatenates the weighted blocks, so a query having none of the
    positive-weight modalities (a product without clicks under weights that tuning gave to
    the clicks alone) has an all-zero fused vector and no neighbour: its list would be the
    backfill alone. Such a query is answered instead by early fusion over the fallback's
    modalities under the fallback's weighting
    (:func:`~prodfusion.fusion.weights.fallback_search_weighting`), its scores lowered by
    :data:`~prodfusion.fusion.weights.FALLBACK_OFFSET` as intermediate fusion's first
    fallback tier is (``explain`` marks them ``"fallback": 1``). Queries having a weighted
    modality go to ``main`` unchanged (their candidates lacking every weighted modality
    stay unranked, as before).

    Parameters
    ----------
    main : index or fuser with ``topk`` (early fusion under the weighting)
    fallback : the same over the fallback modalities and weighting, or a callable building it
    served : bool array (n,)
        Rows having a positive-weight modality.
    """

    method = "early"

    def topk(self, query_rows, k: int = 15, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows, out_r, out_s, a = self._main_topk(query_rows, k, filters)
        if not a.all():
            r, s = self.fallback.topk(rows[~a], int(k), filters=filters)
            out_r[~a] = r
            out_s[~a] = np.where(r >= 0, np.asarray(s, np.float32)
                                 - np.float32(FALLBACK_OFFSET), -np.inf)
        return out_r, out_s
