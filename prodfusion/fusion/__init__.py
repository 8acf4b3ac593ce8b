"""Early, intermediate and late fusion of per-modality embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.fusion.base import (
    FUSION_METHODS,
    Fuser,
    FusionMethod,
    check_method,
    check_modalities,
)
from prodfusion.fusion.early import EarlyFusion
from prodfusion.fusion.intermediate import IntermediateFusion
from prodfusion.fusion.late import LateFusion, cluster_modality, default_n_clusters
from prodfusion.fusion.weights import Weighting, parse_weights

__all__ = [
    "FUSION_METHODS",
    "FusionMethod",
    "Fuser",
    "EarlyFusion",
    "IntermediateFusion",
    "LateFusion",
    "make_fuser",
    "check_method",
    "check_modalities",
    "cluster_modality",
    "default_n_clusters",
    "Weighting",
    "parse_weights",
]


def make_fuser(
    method: str,
    embeddings: Mapping[str, Embeddings],
    modalities: Sequence[str],
    *,
    normalize: bool = False,
    late_labels: Mapping[str, np.ndarray] | None = None,
    n_clusters: int | Mapping[str, int] | None = None,
    n_categories: int | None = None,
    seed: int = 0,
    weighting: Weighting | None = None,
    confidence: np.ndarray | None = None,
) -> Fuser:
    """Build and fit the fuser for ``method`` over ``modalities``.

    ``weighting`` (weights, calibration, click confidence ``n0``; default: the paper's
    formulas) and ``confidence`` (``c(n)`` per row for clicks, needed with ``n0``) are
    described in :mod:`prodfusion.fusion.weights`.
    """
    check_method(method, "make_fuser()")
    kw = {"weighting": weighting, "confidence": confidence}
    if method == "early":
        return EarlyFusion(modalities=modalities, normalize=normalize, **kw).fit(embeddings)
    if method == "intermediate":
        return IntermediateFusion(modalities=modalities, **kw).fit(embeddings)
    return LateFusion(
        modalities=modalities, n_clusters=n_clusters, n_categories=n_categories, seed=seed, **kw
    ).fit(embeddings, labels=late_labels)
