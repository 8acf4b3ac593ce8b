"""k-means++ for late fusion at scale, and cluster assignment of new (cold-start) products.

:func:`prodfusion.fusion.late.cluster_modality` runs scikit-learn's ``KMeans`` (k-means++,
3 restarts) on every vector: right for thousands of products, hours for a million. Here
the centroids are learnt the same way (k-means++ seeding, then Lloyd) on a random sample of
``sample_per_cluster`` vectors per cluster, and every product is then assigned to its nearest
centroid in chunks. The sample is the only large allocation.
"""

from __future__ import annotations

import numpy as np

from prodfusion._checks import check_int
from prodfusion.encoders.base import Embeddings
from prodfusion.fusion.base import l2_normalize

__all__ = [
    "LARGE_CLUSTERING_FROM",
    "kmeans_sampled",
    "centroids_from_labels",
    "assign_to_centroids",
    "cluster_auto",
]

#: Modalities with at least this many present vectors are clustered on a sample.
LARGE_CLUSTERING_FROM = 50_000
_CHUNK = 32_768


def _normalized_rows(emb: Embeddings, rows: np.ndarray) -> np.ndarray:
    sub = emb.take(rows)
    return l2_normalize(sub.vectors, sub.mask)


def assign_to_centroids(emb: Embeddings, centroids: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Nearest centroid (Euclidean, on L2-normalised vectors) for ``rows``; ``-1`` where absent.

    >>> e = Embeddings(np.array([[1, 0], [0, 2], [1, 1]], "float32"), np.array([1, 1, 0], bool), "t")
    >>> assign_to_centroids(e, np.array([[0, 1], [1, 0]], "float32")).tolist()
    [1, 0, -1]
    """
    whole = rows is None
    rows = np.arange(len(emb.mask)) if whole else np.asarray(rows, dtype=np.int64)
    c = np.asarray(centroids, dtype=np.float32)
    c2 = (c * c).sum(axis=1)
    ct = np.ascontiguousarray(c.T)
    out = np.full(len(rows), -1, dtype=np.int32)
    for lo in range(0, len(rows), _CHUNK):
        r = rows[lo : lo + _CHUNK]
        keep = emb.mask[r]
        if not keep.any():
            continue
        # Contiguous slices need no gather; absent rows are zero and are dropped below.
        v = emb.vectors[lo : lo + len(r)] if whole else emb.vectors[r]
        v = np.asarray(v, dtype=np.float32)
        dots = v @ ct
        norms = np.sqrt(np.einsum("ij,ij->i", v, v))
        # ||x/|x| - c||² = 1 + |c|² - 2 x·c/|x|: the same argmin without normalising x.
        d = c2[None, :] - 2.0 * dots / np.maximum(norms, 1e-30)[:, None]
        out[lo : lo + len(r)][keep] = np.argmin(d[keep], axis=1).astype(np.int32)
    return out


def centroids_from_labels(emb: Embeddings, labels: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
    """Mean of the L2-normalised vectors of each cluster (what k-means converged to).

    Empty clusters get a zero centroid, which :func:`assign_to_centroids` then never prefers
    over a real one unless every centroid is zero.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    sums = np.zeros((k, emb.dim), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    rows = np.flatnonzero((labels >= 0) & emb.mask)
    for lo in range(0, len(rows), _CHUNK):
        r = rows[lo : lo + _CHUNK]
        x = _normalized_rows(emb, r)
        lab = labels[r]
        np.add.at(sums, lab, x)
        counts += np.bincount(lab, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        cent = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], 0.0)
    return cent.astype(np.float32)


def kmeans_sampled(
    emb: Embeddings,
    n_clusters: int,
    *,
    seed: int = 0,
    sample_per_cluster: int = 64,
    seed_per_cluster: int = 8,
    max_iter: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ on a sample of the present vectors, then every vector to its nearest centroid.

    k-means++ seeding is sequential in k (each new centre needs distances to every point),
    so it runs on ``seed_per_cluster·k`` of the sampled points; Lloyd iterations then refine
    the centres on all ``sample_per_cluster·k`` sampled points.

    Returns
    -------
    labels : int32 (n,), ``-1`` where the modality is absent
    centroids : float32 (k, dim)
    """
    from sklearn.cluster import KMeans, kmeans_plusplus

    n_clusters = check_int(n_clusters, "n_clusters", "kmeans_sampled()", low=1,
                           expected="a positive int")
    present = np.flatnonzero(emb.mask)
    if not len(present):
        return np.full(len(emb.mask), -1, dtype=np.int32), np.zeros((0, emb.dim), np.float32)
    k = int(min(n_clusters, len(present)))
    rng = np.random.default_rng(seed)
    ns = min(len(present), max(k * sample_per_cluster, 10_000))
    sample = np.sort(rng.choice(present, size=ns, replace=False))
    x = _normalized_rows(emb, sample)
    pick = rng.choice(len(x), size=min(len(x), max(k, k * seed_per_cluster)), replace=False)
    seeds, _ = kmeans_plusplus(x[pick], k, random_state=seed)
    km = KMeans(n_clusters=k, init=seeds, n_init=1, max_iter=max_iter, random_state=seed)
    km.fit(x)
    centroids = km.cluster_centers_.astype(np.float32)
    return assign_to_centroids(emb, centroids), centroids


def cluster_auto(emb: Embeddings, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """Late-fusion labels: full k-means++ below :data:`LARGE_CLUSTERING_FROM`, sampled above."""
    if emb.n_present < LARGE_CLUSTERING_FROM:
        from prodfusion.fusion.late import cluster_modality

        return cluster_modality(emb, n_clusters, seed=seed)
    return kmeans_sampled(emb, n_clusters, seed=seed)[0]
