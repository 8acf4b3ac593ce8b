"""Search under a learned weighting (:mod:`prodfusion.fusion.learned`) on catalogs whose
index is not exact: a query's candidates are each modality's ``pool`` nearest products —
the vector modalities' own indexes (one per modality, weight 1), the pairwise ones'
neighbours (:meth:`Cooc.neighbours` and the like) — with the filters applied, scored by the
trees, the best ``k`` kept. The exact search (the fuser) draws the same pool from every
product (:func:`~prodfusion.fusion.learned.pool_mask`), so the two differ only where a
modality's index misses one of its nearest products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.encoders.base import row_norms
from prodfusion.fusion.base import check_query_rows
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES
from prodfusion.fusion.weights import Weighting, intermediate_combine
from prodfusion.index.base import owned_threads
from prodfusion.index.exact import topk_rows
from prodfusion.index.topk import Filters

__all__ = ["LearnedRescorer"]

#: Queries whose candidates are scored together (:meth:`LearnedRescorer._block_scores`).
SCORE_BLOCK = 256


class LearnedRescorer:
    """``topk`` / ``pair_scores`` of a learned weighting (module docstring).

    ``nearest[m]``: for a vector modality, a searcher with ``topk`` over it alone; for a
    pairwise one, its data (``neighbours``)."""

    method = "intermediate"

    def __init__(self, nearest: Mapping, data: Mapping, modalities: Sequence[str],
                 weighting: Weighting, confidence: np.ndarray | None = None) -> None:
        self.nearest = dict(nearest)
        self.modalities = tuple(modalities)
        self.data = {m: data[m] for m in self.modalities}
        self.weighting = weighting
        self.pool = weighting.learned.pool
        self.confidence = confidence
        self.n = len(np.asarray(self.data[self.modalities[0]].mask))
        self._last: tuple[int, np.ndarray] | None = None  # candidates() of the last query
        self._norms = {m: row_norms(d) for m, d in self.data.items()
                       if m not in PAIRWISE_MODALITIES}

    def pair_scores(self, q: int, c: np.ndarray, best_of: np.ndarray | None = None
                    ) -> np.ndarray:
        """The trees' score of query row ``q`` with candidate rows ``c`` (float32); the
        query's best similarity per modality is the best over ``c`` and ``best_of`` (rows;
        none: :meth:`candidates` without filters)."""
        c = np.asarray(c, np.int64)
        if best_of is None:
            best_of = self.candidates(q, Filters())
        return self._block_scores(np.array([q], np.int64), [c], [best_of])[1][0, : len(c)]

    def candidates(self, q: int, flt: Filters) -> np.ndarray:
        """Each modality's ``pool`` nearest products of row ``q`` that the filters allow (the
        last query's unfiltered ones are kept: ``similar(..., explain=True)`` asks twice)."""
        plain = _unfiltered(flt)
        last = self._last
        if plain and last is not None and last[0] == q:
            return last[1]
        c = self.candidates_many(np.array([q], np.int64), flt)[0]
        if plain:
            self._last = (q, c)  # one tuple, replaced whole: safe across threads
        return c

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_threads_", None)  # threads do not travel; made again on first use
        return state

    def _threads(self):
        """Threads that search the vector modalities' indexes at once (the largest
        ``search_threads`` of their settings, :class:`~prodfusion.index.IndexSettings`), or
        None for one after the other (the default, 1)."""
        n = max((int(getattr(getattr(near, "settings", None), "search_threads", 1))
                 for m, near in self.nearest.items() if m not in PAIRWISE_MODALITIES),
                default=1)
        return owned_threads(self, "_threads_", n, "pf-pools")

    def candidates_many(self, rows: np.ndarray, flt: Filters) -> list[np.ndarray]:
        """:meth:`candidates` of every row of ``rows``, each vector modality's index searched
        once for all of them (a batch: what an export's blocks of queries gain); with
        ``search_threads`` > 1 the modalities' indexes are searched concurrently (FAISS
        and numpy release the GIL; the union of the pools is the same)."""
        parts: list[list[np.ndarray]] = [[] for _ in rows]
        prior = None if self.confidence is None else np.asarray(self.confidence)
        searches = []
        for m in self.modalities:
            has = np.flatnonzero(np.asarray(self.data[m].mask, bool)[rows])
            if not len(has):
                continue
            near = self.nearest[m]
            if m in PAIRWISE_MODALITIES:  # the category: its bestsellers (pool_mask's order)
                kw = {"prior": prior} if m == "category" else {}
                for i in has:
                    parts[i].append(np.asarray(near.neighbours(int(rows[i]), self.pool, **kw),
                                               np.int64))
            else:
                searches.append((near, has))

        def search(job):
            near, has = job
            return has, near.topk(rows[has], self.pool, filters=flt)[0]

        pool = self._threads() if len(searches) > 1 else None
        for has, r in (pool.map(search, searches) if pool is not None
                       else map(search, searches)):
            for i, rr in zip(has, r, strict=True):
                parts[i].append(rr[rr >= 0])
        out = []
        for q, p in zip(rows, parts, strict=True):
            c = np.unique(np.concatenate(p)) if p else np.zeros(0, np.int64)
            c = c[c != q]
            out.append(c[flt.allows(int(q), c)] if len(c) else c)
        return out

    def topk(self, query_rows, k: int = 15, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = check_query_rows(query_rows, self.n)
        flt = (filters or Filters()).check(self.n)
        out_r = np.full((len(rows), k), -1, np.int64)
        out_s = np.full((len(rows), k), -np.inf, np.float32)
        rows = np.asarray(rows, np.int64)
        cands = self.candidates_many(rows, flt)
        # the query's best over the catalog: its unfiltered nearest hold it
        plain = cands if _unfiltered(flt) else self.candidates_many(rows, Filters())
        if len(rows):  # what an explanation of the last query asks for next
            self._last = (int(rows[-1]), plain[-1])
        for lo in range(0, len(rows), SCORE_BLOCK):
            hi = min(len(rows), lo + SCORE_BLOCK)
            c, s = self._block_scores(rows[lo:hi], cands[lo:hi], plain[lo:hi])
            out_r[lo:hi], out_s[lo:hi] = topk_rows(s, k, c)
        return out_r, out_s

    def _block_scores(self, rows: np.ndarray, cands: list, plain: list) -> tuple:
        """``(c, s)``: each query's candidates ``cands[i]`` as a ``-1``-padded ``(q, w)``
        array and their scores (``-inf`` in the padding), as :meth:`pair_scores` gives them
        query by query — the trees walked once for the block's pairs, not once per query."""
        from prodfusion.fusion.learned import query_best
        from prodfusion.index.pairwise import row_similarities

        w = max((len(c) for c in cands), default=0)
        c_pad = np.full((len(rows), max(w, 1)), -1, np.int64)
        cos = {m: np.zeros(c_pad.shape, np.float32) for m in self.modalities}
        both = {m: np.zeros(c_pad.shape, bool) for m in self.modalities}
        best = {m: np.full(len(rows), np.nan, np.float32) for m in self.modalities}
        q_has = {m: np.zeros(len(rows), bool) for m in self.modalities}
        for i, q in enumerate(rows):
            c = np.asarray(cands[i], np.int64)
            c_pad[i, : len(c)] = c
            if not len(c):
                continue
            allr = np.union1d(c, plain[i])
            cs, bs, qh = row_similarities(self.data, self._norms, self.modalities, int(q),
                                          allr)
            b = query_best(self.modalities, cs, bs, (allr == q)[None])
            at = np.searchsorted(allr, c)
            for m in self.modalities:
                cos[m][i, : len(c)] = cs[m][0, at]
                both[m][i, : len(c)] = bs[m][0, at]
                best[m][i] = b[m][0]
                q_has[m][i] = qh[m][0]
        valid = c_pad >= 0
        conf = self.confidence
        s = intermediate_combine(
            self.weighting, self.modalities, cos, both,
            None if conf is None else conf[rows],
            None if conf is None else conf[np.where(valid, c_pad, 0)],
            q_has=q_has, q_best=best, pool=valid)
        return c_pad, np.where(valid, s, -np.inf).astype(np.float32)


def _unfiltered(flt: Filters) -> bool:
    """Whether ``flt`` only leaves out the query itself (its pool is then the unfiltered one)."""
    return flt.banned is None and flt.same_code is None and flt.diff_code is None
