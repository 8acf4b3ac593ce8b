"""Top-k search backends and approximate search for each fusion method.

* :class:`ExactIndex` — NumPy brute force, the oracle.
* :class:`HNSWIndex` — FAISS HNSW (inner product), the default approximate backend.
* :class:`IVFPQIndex` — FAISS IVF-PQ, compact codes for catalogs that do not fit HNSW.
* :class:`EarlyIndex`, :class:`IntermediateIndex`, :class:`LateIndex` — the fusions' ``topk``
  over those backends, with exact re-scoring, query-time filters and incremental updates.

``Recommender(index="auto" | "exact" | "hnsw" | "ivfpq")`` chooses among them.
"""

from __future__ import annotations

from prodfusion.index.base import (
    INDEX_BACKENDS,
    IndexBackend,
    IndexSettings,
    VectorIndex,
    check_backend,
    choose_backend,
)
from prodfusion.index.clustering import (
    LARGE_CLUSTERING_FROM,
    assign_to_centroids,
    centroids_from_labels,
    cluster_auto,
    kmeans_sampled,
)
from prodfusion.index.exact import ExactIndex
from prodfusion.index.faiss_index import HNSWIndex, IVFPQIndex, fit_projection
from prodfusion.index.fused import (
    EarlyIndex,
    FusedIndex,
    IntermediateIndex,
    LateIndex,
    load_fused_index,
    make_fused_index,
)

__all__ = [
    "INDEX_BACKENDS",
    "IndexBackend",
    "IndexSettings",
    "VectorIndex",
    "check_backend",
    "choose_backend",
    "ExactIndex",
    "HNSWIndex",
    "IVFPQIndex",
    "fit_projection",
    "FusedIndex",
    "EarlyIndex",
    "IntermediateIndex",
    "LateIndex",
    "make_fused_index",
    "load_fused_index",
    "LARGE_CLUSTERING_FROM",
    "kmeans_sampled",
    "centroids_from_labels",
    "assign_to_centroids",
    "cluster_auto",
]
