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
from prodfusion.fusion.category import CategoryMatch
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES, Cooc
from prodfusion.fusion.early import EarlyFusion
from prodfusion.fusion.intermediate import IntermediateFusion
from prodfusion.fusion.late import LateFusion, cluster_modality, default_n_clusters
from prodfusion.fusion.ngrams import TitleNgrams
from prodfusion.fusion.popularity import PopularityPrior
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
    "Cooc",
    "CategoryMatch",
    "PopularityPrior",
    "TitleNgrams",
    "check_pairwise",
]


def check_pairwise(method: str, modalities: Sequence[str], where: str) -> None:
    """Refuse a pairwise modality (``cooc``, ``category``) under early or late fusion, which
    need vectors."""
    bad = [m for m in modalities if m in PAIRWISE_MODALITIES]
    if bad and method != "intermediate":
        from prodfusion.errors import ParameterError

        raise ParameterError(
            f"{where}: {bad} is a pairwise score (co-occurrence, same category, popularity, title n-grams), "
            "not a "
            "vector; only "
            f"intermediate fusion can fuse it, not {method}. Use fusion='intermediate' or drop "
            f"{bad[0]!r} from the modalities."
        )


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
    check_pairwise(method, modalities, "make_fuser()")
    kw = {"weighting": weighting, "confidence": confidence}
    if method == "early":
        return EarlyFusion(modalities=modalities, normalize=normalize, **kw).fit(embeddings)
    if method == "intermediate":
        return IntermediateFusion(modalities=modalities, **kw).fit(embeddings)
    return LateFusion(
        modalities=modalities, n_clusters=n_clusters, n_categories=n_categories, seed=seed, **kw
    ).fit(embeddings, labels=late_labels)
