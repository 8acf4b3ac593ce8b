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
) -> Fuser:
    """Build and fit the fuser for ``method`` over ``modalities``."""
    check_method(method, "make_fuser()")
    if method == "early":
        return EarlyFusion(modalities=modalities, normalize=normalize).fit(embeddings)
    if method == "intermediate":
        return IntermediateFusion(modalities=modalities).fit(embeddings)
    return LateFusion(
        modalities=modalities, n_clusters=n_clusters, n_categories=n_categories, seed=seed
    ).fit(embeddings, labels=late_labels)
