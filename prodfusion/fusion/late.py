"""Late fusion: k-means++ per modality; similarity = number of modalities sharing a cluster."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion._checks import check_int
from prodfusion.encoders.base import Embeddings
from prodfusion.fusion.base import ExactSearchMixin, _prepare, l2_normalize
from prodfusion.fusion.intermediate import IntermediateFusion
from prodfusion.fusion.weights import Weighting, late_combine, tie_weighting

__all__ = ["LateFusion", "cluster_modality", "default_n_clusters", "TIE_WEIGHT"]

#: Weight of the intermediate-similarity tie-break. The score is
#: ``count + TIE_WEIGHT · (1 + s_int) / 2``, in ``[count, count + TIE_WEIGHT]``, so the integer
#: part is always the paper's count and the tie-break can never overturn it.
TIE_WEIGHT = 0.999


#: Largest default k of the late-fusion k-means (see :func:`default_n_clusters`) on catalogs
#: of up to ``MAX_DEFAULT_CLUSTERS × MAX_DEFAULT_CLUSTER_SIZE`` (192,000) products.
MAX_DEFAULT_CLUSTERS = 128
#: Above that the default k grows so that clusters average at most this many products
#: (thirty-third session): a late query reads its clusters' members, and on the 1,000,000-
#: product scale catalog 128 clusters (~7,800 products each) gave a p99 of 61–75 ms
#: (docs/benchmarks/scale.md). Model folders saved before keep the fixed cap (their
#: manifest lacks ``late_k_rule``: loaded with ``Recommender.late_k_rule = 1``).
MAX_DEFAULT_CLUSTER_SIZE = 1_500


def default_n_clusters(n_present: int, n_categories: int | None = None, *,
                       grow: bool = True) -> int:
    """k for one modality: the number of categories when known, else ``round(sqrt(n/2))``,
    at most :data:`MAX_DEFAULT_CLUSTERS` (128) or, on catalogs over 192,000 products,
    ``ceil(n / MAX_DEFAULT_CLUSTER_SIZE)`` (clusters of 1,500 products on average; not with
    ``grow=False``, the rule before the thirty-third session), within ``[2, n]``.

    ``sqrt(n/2)`` is the classic rule of thumb (Mardia et al.). The cap keeps k-means cost
    (``n × k × dim`` per iteration) linear in the catalog up to 192,000 products: a catalog
    with 782 categories would otherwise pay 6× more for clusters whose only use is the
    integer part of the late score (ties are broken by intermediate similarity anyway).
    Beyond, query cost wins: a late query reads its clusters' members, so the cap grows with
    the catalog (1,000,000 products: 667 clusters; on the scale benchmark's catalog k-means
    about 100 s instead of 13 s, late p99 under 10 ms instead of 61–75 ms). Pass ``late_k``
    to choose.

    >>> default_n_clusters(2400, 12), default_n_clusters(20000), default_n_clusters(50000, 782)
    (12, 100, 128)
    >>> default_n_clusters(1_000_000, 707), default_n_clusters(1_000_000, 707, grow=False)
    (667, 128)
    """
    if n_present < 2:
        return max(1, n_present)
    k = n_categories if n_categories else int(round(np.sqrt(n_present / 2)))
    cap = MAX_DEFAULT_CLUSTERS
    if grow:
        cap = max(cap, math.ceil(n_present / MAX_DEFAULT_CLUSTER_SIZE))
    return int(min(max(2, k), cap, n_present))


def cluster_modality(emb: Embeddings, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """k-means++ on the L2-normalised present vectors of one modality.

    Returns int32 labels of length ``n``; ``-1`` where the modality is absent.
    """
    from sklearn.cluster import KMeans

    n_clusters = check_int(n_clusters, "n_clusters", "cluster_modality()", low=1,
                           expected="a positive int")
    labels = np.full(len(emb.mask), -1, dtype=np.int32)
    x = l2_normalize(emb.vectors, emb.mask)[emb.mask]
    if len(x) == 0:
        return labels
    k = int(min(n_clusters, len(x)))
    km = KMeans(n_clusters=k, init="k-means++", n_init=3, random_state=seed)
    labels[emb.mask] = km.fit_predict(x).astype(np.int32)
    return labels


class LateFusion(ExactSearchMixin):
    """Late fusion: ``score(i, j) = #{m : c_m(i) = c_m(j)} + tie-break``.

    ``c_m`` is the k-means++ cluster of the product in modality ``m`` (absent modality: no
    cluster, never shared). The paper leaves ties undefined and they are massive (all
    products of one cluster tie); we break them by the intermediate similarity, scaled into
    ``[0, TIE_WEIGHT]`` so the integer part of the score is the paper's count. With weights the
    count is ``Σ w_m [c_m(i) = c_m(j)]`` and the tie-break is scaled below the smallest gap
    between two weighted counts (:func:`prodfusion.fusion.weights.late_combine`).

    Parameters
    ----------
    modalities : sequence of str
    n_clusters : int or dict modality → int, optional
        Default: :func:`default_n_clusters` with ``n_categories``.
    n_categories : int, optional
        Number of catalog categories, used by the default k.
    seed : int
    """

    method = "late"

    def __init__(
        self,
        *,
        modalities: Sequence[str],
        n_clusters: int | Mapping[str, int] | None = None,
        n_categories: int | None = None,
        seed: int = 0,
        weighting: Weighting | None = None,
        confidence: np.ndarray | None = None,
    ) -> None:
        self.modalities = tuple(modalities)
        self.n_clusters = n_clusters
        self.n_categories = n_categories
        self.seed = seed
        self.weighting = weighting or Weighting()
        self.confidence = confidence

    def fit(
        self,
        embeddings: Mapping[str, Embeddings],
        labels: Mapping[str, np.ndarray] | None = None,
    ) -> LateFusion:
        """Cluster each modality (or take precomputed ``labels``) and fit the tie-break."""
        embs = _prepare(embeddings, self.modalities)
        self.labels_ = {}
        for m, e in zip(self.modalities, embs, strict=True):
            if labels is not None and m in labels:
                self.labels_[m] = np.asarray(labels[m], dtype=np.int32)
                continue
            if isinstance(self.n_clusters, Mapping):
                k = self.n_clusters.get(m) or default_n_clusters(e.n_present, self.n_categories)
            else:
                k = self.n_clusters or default_n_clusters(e.n_present, self.n_categories)
            self.labels_[m] = cluster_modality(e, int(k), seed=self.seed)
        self.weighting.check(self.modalities, "LateFusion")
        self._tie = IntermediateFusion(modalities=self.modalities,
                                       weighting=tie_weighting(self.weighting),
                                       confidence=self.confidence).fit(embeddings)
        self.present = self._tie.present
        self.n = self._tie.n
        return self

    def count(self, query_rows, cand_rows=None) -> np.ndarray:
        """The paper's late-fusion similarity: modalities in which the two share a cluster."""
        q = self._query_rows(query_rows)
        out = np.zeros((len(q), self.n if cand_rows is None else len(cand_rows)), dtype=np.float32)
        for lab in self.labels_.values():
            lq, lc = lab[q], (lab if cand_rows is None else lab[cand_rows])
            out += (lq[:, None] == lc[None, :]) & (lq[:, None] >= 0)
        return out

    def similarity(self, query_rows, cand_rows=None) -> np.ndarray:
        tie = self._tie.similarity(query_rows, cand_rows)
        if not self.weighting.is_default:
            q = self._query_rows(query_rows)
            match = {}
            for m, lab in self.labels_.items():
                lq, lc = lab[q], (lab if cand_rows is None else lab[cand_rows])
                match[m] = (lq[:, None] == lc[None, :]) & (lq[:, None] >= 0)
            return late_combine(self.weighting, self.modalities, match, tie)
        s = self.count(query_rows, cand_rows) + np.float32(TIE_WEIGHT) * (1.0 + tie) / 2.0
        s[~np.isfinite(tie)] = -np.inf
        return s
