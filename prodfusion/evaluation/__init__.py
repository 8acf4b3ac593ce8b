"""Offline evaluation: the paper's clustering protocol, retrieval of held-out co-interactions,
an offline A/B replay, and reports (Markdown, self-contained HTML, PNG figures, JSON).

Examples
--------
>>> from prodfusion.evaluation import evaluate_clustering, write_report   # doctest: +SKIP
>>> res = evaluate_clustering(Recommender.load("model"), categories=(3, 20), seeds=5)  # doctest: +SKIP
>>> write_report(res, "report/")                                           # doctest: +SKIP
"""

from __future__ import annotations

from prodfusion.evaluation.clustering import (
    adjusted_rand,
    all_combinations,
    classical_mds,
    evaluate_clustering,
    kmeans_ari,
    select_products,
    tsne_2d,
)
from prodfusion.evaluation.replay import ctr_table, replay
from prodfusion.evaluation.report import write_report
from prodfusion.evaluation.retrieval import (
    BASELINE,
    Variant,
    bootstrap_ci,
    catalog_coverage,
    category_precision_at_k,
    check_no_leak,
    evaluate_retrieval,
    heldout_recommender,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    parse_variant,
    split_interactions,
)

__all__ = [
    "evaluate_clustering",
    "evaluate_retrieval",
    "replay",
    "write_report",
    "Variant",
    "BASELINE",
    "parse_variant",
    "split_interactions",
    "check_no_leak",
    "heldout_recommender",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "category_precision_at_k",
    "catalog_coverage",
    "bootstrap_ci",
    "ctr_table",
    "adjusted_rand",
    "kmeans_ari",
    "tsne_2d",
    "classical_mds",
    "select_products",
    "all_combinations",
]
