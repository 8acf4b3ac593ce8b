"""Late fusion's per-modality k-means labels: computed on first use, cached on disk.

The clustering itself is :func:`prodfusion.index.clustering.cluster_auto` (k-means++ on
samples for large modalities); this module keeps what a model needs around it: the labels of
each modality computed when late fusion first asks for them (:class:`LazyLabels`), and a
content-addressed cache in the embedding cache folder (:func:`cluster_cached`) so that a
rebuild after new sessions re-clusters only the click modality.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from prodfusion.encoders.base import Embeddings
from prodfusion.index.clustering import cluster_auto

__all__ = ["cluster_cached", "LazyLabels"]

log = logging.getLogger(__name__)

#: Default clusters larger than this (products per cluster) draw a warning: a late-fusion
#: query reads its clusters' members, and on the 1,000,000-product scale catalog 128
#: clusters per modality (~7,800 products each) gave a p99 of 61–75 ms against 4.7 ms with
#: k = 707 (docs/benchmarks/scale.md, thirty-third session).
LARGE_CLUSTERS = 5_000


def cluster_cached(emb: Embeddings, k: int, *, seed: int = 0,
                   cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Late-fusion labels of one modality, through the cache in ``cache_dir`` when given.

    Keyed by the vectors' and mask's bytes, k, the seed and the algorithm, so a rebuild
    after new sessions re-clusters only the click modality (text and image vectors come
    back from the embedding cache bit for bit). The file is written atomically.
    """
    if not cache_dir:
        return cluster_auto(emb, k, seed=seed)
    h = hashlib.sha256(f"late-v1:{k}:{seed}:{emb.vectors.shape}".encode())
    h.update(memoryview(np.ascontiguousarray(emb.vectors)).cast("B"))
    h.update(memoryview(np.ascontiguousarray(emb.mask)).cast("B"))
    path = Path(cache_dir) / "late" / f"{h.hexdigest()}.npy"
    if path.is_file():
        try:
            labels = np.load(path)
            if labels.shape == emb.mask.shape:
                return labels
        except (OSError, ValueError):
            log.warning("ignoring unreadable cached labels %s", path)
    labels = cluster_auto(emb, k, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, labels)
    os.replace(tmp, path)
    return labels


class LazyLabels(Mapping):
    """Late-fusion labels per modality of a model, each computed (k-means++, through the
    cache) when first looked up; ``computed`` holds those done.

    ``model`` is anything with ``embeddings_``, ``late_k_of(m)``, ``seed``, ``cache_dir``
    and ``progress`` (a :class:`prodfusion.Recommender`).
    """

    def __init__(self, model, computed: dict[str, np.ndarray]) -> None:
        self._model = model
        self.computed = computed

    def __getitem__(self, m: str) -> np.ndarray:
        got = self.computed.get(m)
        if got is None:
            model = self._model
            if m not in model.embeddings_:
                raise KeyError(m)
            from prodfusion.progress import heartbeat

            e = model.embeddings_[m]
            k = model.late_k_of(m)
            if getattr(model, "late_k", None) is None and e.n_present > LARGE_CLUSTERS * k:
                log.warning("late fusion: %s's default %d clusters hold about %s products "
                            "each; late queries read whole clusters (slow at this size: "
                            "docs/benchmarks/scale.md). Pass late_k (--late-k), e.g. %d, "
                            "for smaller clusters at a higher k-means cost.", m, k,
                            f"{e.n_present // k:,}", int(round(np.sqrt(e.n_present / 2))))
            # only worth a line when it takes a while (a few seconds from ~2,000 vectors)
            with heartbeat(f"late fusion: k-means++ of {m} (k={k}, {e.n_present:,} vectors)",
                           enabled=model.progress is not False and e.n_present >= 2000):
                got = self.computed[m] = cluster_cached(e, k, seed=model.seed,
                                                        cache_dir=model.cache_dir)
        return got

    def __iter__(self):
        return iter(self._model.embeddings_)

    def __len__(self) -> int:
        return len(self._model.embeddings_)
