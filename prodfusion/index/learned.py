"""Approximate search under a learned weighting (:mod:`prodfusion.fusion.learned`): the
``k · over_fetch`` best candidates of the linear weighting's own index (the learned
weighting's weights, so the same index a linear model of those weights searches), re-scored
by the trees and the best ``k`` kept.

The trees can rank a product the linear weighting leaves outside its top ``k · over_fetch``
above those inside it; such a product is missed here and found by the exact search (the
fuser, which scores every product by the trees). Small catalogs resolve to the exact search
(``--index auto``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.fusion.base import check_query_rows
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES
from prodfusion.fusion.weights import Weighting, intermediate_combine
from prodfusion.index.exact import topk_rows
from prodfusion.index.topk import Filters

__all__ = ["LearnedRescorer"]


class LearnedRescorer:
    """``topk`` / ``pair_scores`` of a learned weighting over an inner linear index."""

    method = "intermediate"

    def __init__(self, inner, data: Mapping, modalities: Sequence[str], weighting: Weighting,
                 confidence: np.ndarray | None = None, over_fetch: int = 4) -> None:
        from prodfusion.fusion.learned import best_similarity

        self.inner = inner
        self.modalities = tuple(modalities)
        self.data = {m: data[m] for m in self.modalities}
        self.weighting = weighting
        self.confidence = confidence
        self.over_fetch = int(over_fetch)
        self.n = len(np.asarray(self.data[self.modalities[0]].mask))
        self.best = {m: best_similarity(self.data[m]) for m in self.modalities}
        self._norms = {m: np.linalg.norm(np.asarray(d.vectors, np.float32), axis=1)
                       for m, d in self.data.items() if m not in PAIRWISE_MODALITIES}

    def pair_scores(self, q: int, c: np.ndarray) -> np.ndarray:
        """The trees' score of query row ``q`` with candidate rows ``c`` (float32)."""
        c = np.asarray(c, np.int64)
        cos, both, q_has = {}, {}, {}
        for m in self.modalities:
            d = self.data[m]
            mask = np.asarray(d.mask, bool)
            if m in PAIRWISE_MODALITIES:
                cos[m] = np.asarray(d.scores([q], c)[0], np.float32)
            else:
                dots = np.asarray(d.vectors[c], np.float32) @ np.asarray(d.vectors[q], np.float32)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cos[m] = np.where(mask[c], dots / (self._norms[m][c] * self._norms[m][q]),
                                      0).astype(np.float32)
            cos[m] = cos[m][None]
            both[m] = (mask[c] & mask[q])[None]
            q_has[m] = np.array([bool(mask[q])])
        conf = self.confidence
        return intermediate_combine(
            self.weighting, self.modalities, cos, both,
            None if conf is None else conf[[q]], None if conf is None else conf[c],
            q_has=q_has, q_best={m: self.best[m][[q]] for m in self.modalities})[0]

    def topk(self, query_rows, k: int = 15, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = check_query_rows(query_rows, self.n)
        out_r = np.full((len(rows), k), -1, np.int64)
        out_s = np.full((len(rows), k), -np.inf, np.float32)
        r_in, _ = self.inner.topk(rows, k * self.over_fetch, filters=filters)
        for i, q in enumerate(rows):
            c = r_in[i][r_in[i] >= 0]
            if not len(c):
                continue
            s = self.pair_scores(int(q), c)
            out_r[i], out_s[i] = topk_rows(s[None, :], k, c[None, :])
        return out_r, out_s
