"""Late-fusion clustering at scale: sampled k-means++, centroids and cold-start assignment."""

from __future__ import annotations

import numpy as np
import pytest

from prodfusion.encoders.base import Embeddings
from prodfusion.errors import ParameterError
from prodfusion.index import (
    assign_to_centroids,
    centroids_from_labels,
    cluster_auto,
    kmeans_sampled,
)


def _blobs(rng, n=3000, k=12, d=20):
    centres = rng.normal(size=(k, d)) * 10
    truth = rng.integers(0, k, n)
    v = (centres[truth] + rng.normal(size=(n, d))) * rng.uniform(0.5, 3, size=(n, 1))
    mask = rng.random(n) > 0.1
    return Embeddings(v.astype(np.float32), mask, "t"), truth


def _same_partition(a, b):
    """Every cluster of ``a`` maps to exactly one of ``b`` and back (labels up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_sampled_kmeans_recovers_planted_clusters(rng):
    emb, truth = _blobs(rng)
    labels, centroids = kmeans_sampled(emb, 12, seed=0, sample_per_cluster=20)
    assert centroids.shape == (12, 20)
    assert np.all(labels[~emb.mask] == -1)
    assert _same_partition(labels[emb.mask], truth[emb.mask])


def test_centroids_and_assignment_by_hand():
    v = np.array([[2, 0], [0, 3], [1, 1], [4, 0], [5, 5]], dtype=np.float32)
    emb = Embeddings(v, np.array([1, 1, 1, 1, 0], bool), "t")
    labels = np.array([0, 1, 1, 0, -1])
    cent = centroids_from_labels(emb, labels)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(cent, [[1, 0], [s / 2, (1 + s) / 2]], atol=1e-6)
    # Direction, not length, decides: (10, 1) is near (1, 0) although it is long.
    new = Embeddings(np.array([[10, 1], [0.1, 2], [0, 0]], np.float32), np.array([1, 1, 0], bool), "t")
    assert assign_to_centroids(new, cent).tolist() == [0, 1, -1]
    assert assign_to_centroids(emb, cent, rows=np.array([4, 3])).tolist() == [-1, 0]


def test_assignment_agrees_with_kmeans_labels(rng):
    emb, _ = _blobs(rng)
    labels, centroids = kmeans_sampled(emb, 12, seed=0)
    np.testing.assert_array_equal(assign_to_centroids(emb, centroids), labels)


def test_cluster_auto_switches_to_sampling(rng, monkeypatch):
    emb, truth = _blobs(rng, n=500)
    calls = []
    import prodfusion.index.clustering as C

    monkeypatch.setattr(C, "kmeans_sampled", lambda e, k, seed=0: calls.append(k) or (
        np.zeros(len(e.mask), np.int32), None))
    cluster_auto(emb, 12)
    assert calls == []  # 450 present < LARGE_CLUSTERING_FROM: full k-means++
    monkeypatch.setattr(C, "LARGE_CLUSTERING_FROM", 100)
    cluster_auto(emb, 12)
    assert calls == [12]  # 450 present >= the (patched) threshold: sampled k-means


def test_errors(rng):
    emb, _ = _blobs(rng, n=50)
    with pytest.raises(ParameterError, match=r"The 'n_clusters' parameter of kmeans_sampled\(\) must be a positive int. Got 0 instead."):
        kmeans_sampled(emb, 0)
    empty = Embeddings(np.zeros((3, 2), np.float32), np.zeros(3, bool), "t")
    labels, cent = kmeans_sampled(empty, 2)
    assert labels.tolist() == [-1, -1, -1] and cent.shape == (0, 2)
