"""The ``popularity`` modality: how often the candidate was clicked in training, as a prior.

``popularity(i, j) = log(1 + n_j) / log(1 + max_k n_k)`` with ``n_j`` the candidate's
training occurrences (the click counts the model keeps for ``n0``): it does not depend on
the query. Fused with weights it is the prior every simple recommender has — "the popular
ones first" — ordering what the other modalities leave tied or nearly so (the many products
of a category, or with no co-occurrence at all), and it lets the tuner reproduce the simple
baselines (``popular``, ``cooc+category``) inside the fusion and then improve on them.

Every product has it (a product never clicked scores 0, a measured absence, like a 0 of
``cooc``), so it never changes which modalities a pair shares. It is a pairwise score like
``cooc`` (:mod:`prodfusion.fusion.cooc`): intermediate fusion only, exact calibration
statistics (:meth:`PopularityPrior.stats`), and it is rebuilt from the click counts whenever
they change (retraining, appended products, a model folder loaded).

Examples
--------
>>> p = PopularityPrior(np.array([0, 1, 3, 0]))
>>> [round(float(x), 3) for x in p.scores([0], [1, 2, 3])[0]]  # log 2 / log 4, 1, 0
[0.5, 1.0, 0.0]
>>> p.neighbours(2).tolist()  # the most clicked others, ties by row
[1, 0, 3]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prodfusion.errors import DataError

__all__ = ["PopularityPrior", "POPULARITY"]

POPULARITY = "popularity"


class PopularityPrior:
    """Query-independent popularity similarities over one catalog (see the module docstring).

    Parameters
    ----------
    counts : int array (n,)
        Training occurrences of each product.
    """

    modality = POPULARITY
    spec = "popularity:log"

    def __init__(self, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or (counts < 0).any():
            raise DataError("popularity needs one count >= 0 per product.")
        self.counts = counts
        top = float(np.log1p(counts.max())) if len(counts) else 0.0
        self.values = (np.log1p(counts) / top if top > 0 else np.zeros(len(counts))
                       ).astype(np.float32)
        self.mask = np.ones(len(counts), bool)
        self.info = {"n_clicked": int((counts > 0).sum()), "max_count": int(counts.max())
                     if len(counts) else 0}
        self._order: np.ndarray | None = None

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.counts)

    @property
    def n_present(self) -> int:
        return int(self.mask.sum())

    def take(self, rows: np.ndarray) -> PopularityPrior:
        """The modality restricted to ``rows`` (in that order; the scale follows them)."""
        return PopularityPrior(self.counts[np.asarray(rows, dtype=np.int64)])

    # ------------------------------------------------------------------ scoring
    def scores(self, query_rows, cand_rows=None) -> np.ndarray:
        """Dense ``(q, c)`` float32: each candidate's popularity, the same for every query."""
        q = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
        c = self.values if cand_rows is None else self.values[np.asarray(cand_rows, np.int64)]
        return np.broadcast_to(c, (len(q), len(c))).copy()

    def neighbours(self, row: int, limit: int | None = None) -> np.ndarray:
        """The most popular other products, highest first (ties: row ascending)."""
        if self._order is None:
            self._order = np.lexsort((np.arange(len(self.values)), -self.values))
        out = self._order if limit is None else self._order[: limit + 1]
        out = out[out != row]
        return out.astype(np.int64) if limit is None else out[:limit].astype(np.int64)

    def stats(self) -> tuple[float, float]:
        """Exact mean and standard deviation over ordered pairs of distinct products: a pair
        ``(i, j)`` scores ``s_j`` and every ``j`` is the candidate of ``n − 1`` pairs, so they
        are the mean and deviation of ``s`` over the products."""
        if len(self.values) < 2:
            return 0.0, 1.0
        v = self.values.astype(np.float64)
        sd = float(v.std())
        return float(v.mean()), sd if sd > 1e-12 else 1.0

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Any) -> dict:
        """Nothing to write (``click_counts.npy`` holds the counts); the manifest entry."""
        return {"spec": self.spec, "info": self.info}
