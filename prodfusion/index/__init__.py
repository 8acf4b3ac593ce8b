"""Top-k search backends and approximate search for each fusion method.

* :class:`ExactIndex` — NumPy brute force, the oracle.
* :class:`HNSWIndex` — FAISS HNSW (inner product), the default approximate backend.
* :class:`IVFPQIndex` — FAISS IVF-PQ, compact codes for catalogs that do not fit HNSW.
* :class:`EarlyIndex`, :class:`IntermediateIndex`, :class:`LateIndex` — the fusions' ``topk``
  over those backends, with exact re-scoring, query-time filters and incremental updates.

``Recommender(index="auto" | "exact" | "hnsw" | "ivfpq")`` chooses among them.

* :class:`Filters` and :func:`topk_rows` (:mod:`prodfusion.index.topk`) — the one top-k
  kernel and the query-time filters every search takes.

Names are imported on first use (PEP 562), so that the leaf modules (``topk``, ``base``)
can be imported without the FAISS-backed indexes.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "INDEX_BACKENDS": "prodfusion.index.base",
    "IndexBackend": "prodfusion.index.base",
    "IndexSettings": "prodfusion.index.base",
    "VectorIndex": "prodfusion.index.base",
    "check_backend": "prodfusion.index.base",
    "choose_backend": "prodfusion.index.base",
    "LARGE_CLUSTERING_FROM": "prodfusion.index.clustering",
    "assign_to_centroids": "prodfusion.index.clustering",
    "centroids_from_labels": "prodfusion.index.clustering",
    "cluster_auto": "prodfusion.index.clustering",
    "kmeans_sampled": "prodfusion.index.clustering",
    "ExactIndex": "prodfusion.index.exact",
    "HNSWIndex": "prodfusion.index.faiss_index",
    "IVFPQIndex": "prodfusion.index.faiss_index",
    "fit_projection": "prodfusion.index.faiss_index",
    "EarlyIndex": "prodfusion.index.fused",
    "FusedIndex": "prodfusion.index.fused",
    "IntermediateIndex": "prodfusion.index.fused",
    "LateIndex": "prodfusion.index.fused",
    "load_fused_index": "prodfusion.index.fused",
    "make_fused_index": "prodfusion.index.fused",
    "Filters": "prodfusion.index.topk",
    "topk_rows": "prodfusion.index.topk",
}

__all__ = [
    "Filters",
    "topk_rows",
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


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
