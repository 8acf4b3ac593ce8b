"""Approximate top-k for each fusion method, with exact re-scoring, filters and incremental updates.

Every searcher here has the fusers' ``topk`` signature and returns what the exact fuser
would return, up to the recall of its candidate generation. The package generates
candidates; the scores come from :mod:`prodfusion.fusion` (:mod:`prodfusion.fusion.pairs`):

* :mod:`~prodfusion.index.fused.early` — one vector index over the fused unit vectors;
* :mod:`~prodfusion.index.fused.intermediate` — one index per presence pattern;
* :mod:`~prodfusion.index.fused.late` — per-modality cluster inverted lists;
* :mod:`~prodfusion.index.fused.base` (state, exact scores, ``topk``, the exact paths),
  :mod:`~prodfusion.index.fused.vector` (pieces, candidates, over-fetch, updates, save/load)
  and :mod:`~prodfusion.index.fused.filtering` (the filters compiled per query).

Filters (``banned``, ``same_code``, ``diff_code``; see :class:`prodfusion.index.topk.Filters`)
are applied after re-scoring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ModelError
from prodfusion.fusion.weights import Weighting
from prodfusion.index.base import IndexSettings
from prodfusion.index.fused.base import FusedIndex
from prodfusion.index.fused.early import EarlyIndex
from prodfusion.index.fused.intermediate import IntermediateIndex
from prodfusion.index.fused.late import LateIndex
from prodfusion.index.fused.vector import _VectorFusedIndex  # noqa: F401 (benchmarks patch it)

__all__ = ["FusedIndex", "EarlyIndex", "IntermediateIndex", "LateIndex", "make_fused_index",
           "load_fused_index"]

_CLASSES = {"early": EarlyIndex, "intermediate": IntermediateIndex, "late": LateIndex}


def make_fused_index(
    method: str,
    modalities: Sequence[str],
    *,
    backend: str = "auto",
    settings: IndexSettings | None = None,
    normalize: bool = False,
    weighting: Weighting | None = None,
    confidence: np.ndarray | None = None,
) -> FusedIndex:
    """An unbuilt approximate searcher for ``method`` (``"early"|"intermediate"|"late"``)."""
    return _CLASSES[method](modalities=modalities, backend=backend, settings=settings,
                            normalize=normalize, weighting=weighting, confidence=confidence)


def load_fused_index(
    folder: Path,
    meta: dict,
    embeddings: Mapping[str, Embeddings],
    *,
    labels=None,
    settings: IndexSettings | None = None,
    normalize: bool = False,
    mmap: bool = True,
    weighting: Weighting | None = None,
    confidence: np.ndarray | None = None,
) -> FusedIndex:
    """Rebuild a searcher saved by :meth:`FusedIndex.save` (FAISS files memory-mapped)."""
    try:
        method, mods = meta["method"], tuple(meta["modalities"])
        obj = make_fused_index(method, mods, backend=meta.get("requested", "auto"),
                               settings=settings, normalize=normalize, weighting=weighting,
                               confidence=confidence)
        if method == "late":
            return obj.build(embeddings, labels)
        obj._set_data(embeddings)
        obj.backend_ = meta["backend"]
        obj._load_pieces(Path(folder), meta, mmap)
    except KeyError as exc:
        raise ModelError(f"{folder}: index description lacks {exc}; rebuild the index.") from exc
    covered = sum(len(p) for p in obj.pieces_.values())
    if covered != int(obj.present.sum()):
        raise ModelError(
            f"{folder}: the saved {method} index covers {covered} products but the model has "
            f"{int(obj.present.sum())} with those modalities; it is stale. Rebuild the index."
        )
    return obj
