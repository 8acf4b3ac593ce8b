"""Approximate intermediate fusion with a pairwise modality (``cooc``): candidates from the
vector modalities' index plus the query's co-occurrence neighbours, re-scored exactly.

A pairwise score has no vector, so no vector index can rank by it. The candidates of a
query are

* the ``kd`` best products of the **vector** modalities' own intermediate index (the same
  weighting restricted to them; :mod:`prodfusion.index.fused`), with the filters applied;
* its ``kp = max(k·over_fetch, 64)`` strongest **co-occurrence** neighbours
  (:meth:`Cooc.neighbours`), filtered;
* with ``category``: the ``kp`` best products of the vector index *within the query's
  category* (the filter ``same_code``) and the first ``kp`` of that category by row (all of
  them score 1, so the vector modalities decide among them) — or, when ``popularity`` is
  fused too, the category's ``kp·over_fetch`` most popular products instead of the first by
  row: in a large category an often-clicked product far down the vector order can outscore
  the vector index's best of the category (recall@15 0.944 at 1M without them, 1.000 at 100K
  with them: ``docs/benchmarks/fusion_weights.md``);
* with ``popularity``: the ``kp`` most popular products of the catalog;
* with ``ngrams``: the query's ``max(kp·over_fetch, n/256)`` nearest titles
  (:meth:`TitleNgrams.neighbours`, :meth:`PairwiseIntermediateIndex.ngrams_limit`): most of
  a catalog shares some n-gram with a title, and ``kp`` of them missed products modestly
  close in both titles and vectors.

Each candidate is re-scored exactly by the fusion formula over every modality
(:func:`prodfusion.fusion.weights.intermediate_combine`, the fusers' formula: per-modality
cosines of the candidate rows only). A product that shares no session with the query
scores its vector part plus a cooc term that is constant under ``"zmean"`` (the same
denominator ``D(q)`` for every candidate; ``z = −μ/σ`` if it has sessions, ``0`` if not),
so among such products the vector index's order is nearly the fused order and
``kd = max(4k, 32)`` vector candidates suffice (:data:`ZMEAN_DENSE_OVER_FETCH`). Under
``"none"`` / ``"zscore"`` a product without sessions drops the cooc term from its mean while
one with sessions averages in a low score, which reorders the vector candidates: ``kd = kp``
there. Recall and latency of each: ``docs/benchmarks/fusion_weights.md`` (100K products:
recall@15 0.999–1.000; with ``zscore`` and ``kd = 4k`` it would fall to 0.968).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from prodfusion.fusion.base import check_query_rows
from prodfusion.fusion.ngrams import NGRAMS
from prodfusion.fusion.weights import Weighting, intermediate_combine
from prodfusion.index.exact import topk_rows
from prodfusion.index.topk import Filters

__all__ = ["PairwiseIntermediateIndex", "ZMEAN_DENSE_OVER_FETCH", "NGRAMS_SHARE",
           "ngrams_limit", "row_similarities"]

#: Vector candidates per wanted result under ``"zmean"`` (module docstring).
ZMEAN_DENSE_OVER_FETCH = 4

#: The n-gram neighbours a query adds are at least this share of the catalog (module
#: docstring): near-duplicate titles grow with the catalog.
NGRAMS_SHARE = 1 / 256


def ngrams_limit(n: int, kp: int, over_fetch: int) -> int:
    """How many n-gram neighbours a query adds on ``n`` products: ``max(kp × over_fetch,
    n × NGRAMS_SHARE)`` (:meth:`PairwiseIntermediateIndex.ngrams_limit`).

    >>> ngrams_limit(100_000, 120, 8), ngrams_limit(1_000_000, 120, 8)
    (960, 3907)
    """
    return max(kp * over_fetch, int(np.ceil(n * NGRAMS_SHARE)))


def row_similarities(data: Mapping, norms: Mapping, modalities: Sequence[str], q: int,
                     c: np.ndarray | None) -> tuple[dict, dict, dict]:
    """``(cos, both, q_has)`` of query row ``q`` and candidate rows ``c`` (None: every row,
    read in place), per modality, as ``(1, len(c))`` arrays: cosines of the vector
    modalities (``norms``: their row norms), the pairwise ones' scores, whether both
    products have the modality, whether ``q`` has it (what
    :func:`~prodfusion.fusion.weights.intermediate_combine` takes)."""
    c = slice(None) if c is None else np.asarray(c, np.int64)
    cos, both, q_has = {}, {}, {}
    for m in modalities:
        d = data[m]
        mask = np.asarray(d.mask, bool)
        if hasattr(d, "scores"):
            cos[m] = d.scores([q], None if isinstance(c, slice) else c)[0]
        else:
            dots = np.asarray(d.vectors[c], np.float32) @ np.asarray(d.vectors[q], np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                cos[m] = np.where(mask[c], dots / (norms[m][c] * norms[m][q]), 0)
        q_has[m] = np.array([bool(mask[q])])
        both[m] = (mask[c] & mask[q])[None]
        cos[m] = np.asarray(cos[m], np.float32)[None]
    return cos, both, q_has


class PairwiseIntermediateIndex:
    """``topk`` of intermediate fusion over vector modalities + pairwise ones (see module)."""

    method = "intermediate"

    def __init__(self, dense_index, data: Mapping, modalities: Sequence[str],
                 weighting: Weighting, confidence: np.ndarray | None = None,
                 over_fetch: int = 4, dense_over_fetch: int | None = None) -> None:
        self.dense = dense_index
        self.modalities = tuple(modalities)
        self.pairwise = {m: data[m] for m in self.modalities if hasattr(data[m], "scores")}
        self.vectors = {m: data[m] for m in self.modalities if m not in self.pairwise}
        self.weighting = weighting
        self.confidence = confidence
        self.over_fetch = over_fetch
        #: n-gram neighbours a query adds (None: :meth:`ngrams_limit`'s rule; module docstring)
        self.ngrams_fetch: int | None = None
        if dense_over_fetch is None and weighting.calibration == "zmean":
            dense_over_fetch = ZMEAN_DENSE_OVER_FETCH
        self.dense_over_fetch = dense_over_fetch  # None: kp, as the co-occurrence neighbours
        masks = [np.asarray(d.mask, bool) for d in (*self.vectors.values(),
                                                    *self.pairwise.values())]
        self.n = len(masks[0])
        self.present = np.logical_or.reduce(masks)
        self._norms = {m: np.linalg.norm(np.asarray(e.vectors, np.float32), axis=1)
                       for m, e in self.vectors.items()}

    def ngrams_limit(self, kp: int) -> int:
        """How many n-gram neighbours a query adds: ``ngrams_fetch`` if set, else
        ``max(kp × over_fetch, n × NGRAMS_SHARE)``.

        A title shares n-grams with much of the catalog, and a product modestly close in
        both titles and vectors is in neither candidate list's first ``kp``; their cost is
        reading the query's postings, which does not grow with the limit, plus the exact
        scores of the extra candidates. Measured on synthetic catalogs whose titles follow
        the vectors' category (recall@15 against the exact fusion): at 100,000 products
        ``kp`` gave 0.861 and ``kp × 8`` (960) 1.000; at 1,000,000, 960 gave 0.827, 1,920
        0.971 and 3,907 (n / 256) 0.999 (``docs/benchmarks/ngrams_served_100k.md``,
        ``ngrams_served_1m.md``; titles independent of the vectors, the worst case: 0.761).
        """
        if self.ngrams_fetch is not None:
            return int(self.ngrams_fetch)
        return ngrams_limit(self.n, kp, self.over_fetch)

    def pair_scores(self, q: int, c: np.ndarray) -> np.ndarray:
        """Exact fused similarity of query row ``q`` to candidate rows ``c``."""
        cos, both, q_has = row_similarities({**self.vectors, **self.pairwise}, self._norms,
                                            self.modalities, q, c)
        conf = self.confidence
        out = intermediate_combine(self.weighting, self.modalities, cos, both,
                                   None if conf is None else conf[[q]],
                                   None if conf is None else conf[c], q_has=q_has)[0]
        return out.astype(np.float32)

    def topk(self, query_rows, k: int = 15, *,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = check_query_rows(query_rows, self.n)
        flt = (filters or Filters()).check(self.n)
        kp = max(k * self.over_fetch, 64)
        out_r = np.full((len(rows), k), -1, np.int64)
        out_s = np.full((len(rows), k), -np.inf, np.float32)
        pop = self.pairwise.get("popularity")
        rows = np.asarray(rows, np.int64)
        dense_near, cat_near = None, None
        if self.dense is not None and len(rows):  # each index searched once for the block
            kd = kp if self.dense_over_fetch is None else max(k * self.dense_over_fetch, 32)
            dense_near = self.dense.topk(rows, kd, filters=flt)[0]
            cat = self.pairwise.get("category")
            if cat is not None:
                # the same category holds many products that all score 1: its best by the
                # vector modalities, then the first kp by row
                has = np.flatnonzero(np.asarray(cat.mask, bool)[rows])
                cat_near = {}
                if len(has):
                    r, _ = self.dense.topk(rows[has], kp,
                                           filters=replace(flt, same_code=cat.codes))
                    cat_near = dict(zip(has.tolist(), r, strict=True))
        for i, q in enumerate(rows):
            q = int(q)
            pools = []
            if dense_near is not None:
                pools.append(dense_near[i][dense_near[i] >= 0])
            for m, p in self.pairwise.items():
                if not p.mask[q]:
                    continue
                if m == "category" and cat_near is not None:
                    pools.append(cat_near[i][cat_near[i] >= 0])
                if m == "category" and pop is not None:
                    # with popularity fused, the category's most popular come next: a product
                    # further down the vector order but clicked often can outscore the
                    # vector index's best of the category (docs/benchmarks/fusion_weights.md)
                    pools.append(p.neighbours(q, kp * self.over_fetch, prior=pop.values))
                elif m == NGRAMS:
                    pools.append(p.neighbours(q, self.ngrams_limit(kp)))
                else:
                    pools.append(p.neighbours(q, kp))
            c = np.unique(np.concatenate(pools)) if pools else np.zeros(0, np.int64)
            c = c[flt.allows(q, c)]
            if not len(c):
                continue
            s = self.pair_scores(q, c)
            out_r[i], out_s[i] = topk_rows(s[None, :], k, c[None, :])
        return out_r, out_s
