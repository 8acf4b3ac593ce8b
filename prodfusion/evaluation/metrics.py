"""Ranking metrics of held-out test cases (one relevant item per case) and their bootstrap
confidence intervals: HitRate@k, MRR@k, nDCG@k, category precision@k, catalog coverage; and
the clustering protocol's agreement score (:func:`kmeans_ari`, :func:`adjusted_rand`).

>>> import numpy as np
>>> ranked = np.array([[5, 7, 9], [1, 2, 3], [4, 4, 4]])
>>> targets = np.array([7, 8, 4])
>>> hit_rate_at_k(ranked, targets), mrr_at_k(ranked, targets)
(0.6666666666666666, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import DataError


def rank_of_target(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> np.ndarray:
    """1-based rank of each target in its ranked list (first ``k`` entries), 0 if absent.

    ``ranked`` is ``(q, K)`` (rows or ids, best first; padding — ``-1`` in int arrays,
    ``None`` in id arrays — never counts as a hit); ``targets`` is ``(q,)``.

    >>> rank_of_target(np.array([[3, 1, 2], [0, -1, -1]]), np.array([2, 5])).tolist()
    [3, 0]
    """
    ranked = np.asarray(ranked)
    targets = np.asarray(targets)
    if ranked.ndim != 2 or targets.shape != (ranked.shape[0],):
        raise DataError(
            f"rank_of_target(): ranked lists have shape {ranked.shape} and targets "
            f"{targets.shape}; pass one ranked list (row) per target."
        )
    if k is not None:
        k = check_int(k, "k", "rank_of_target()", low=1, expected="a positive int")
        ranked = ranked[:, :k]
    eq = ranked == targets[:, None]
    # Padding (-1 rows, None ids) is never a recommended product, whatever the target.
    if ranked.dtype.kind in "iu":
        eq &= ranked >= 0
    elif ranked.dtype == object:
        eq &= np.frompyfunc(lambda x: x is not None, 1, 1)(ranked).astype(bool)
    found = eq.any(axis=1)
    return np.where(found, eq.argmax(axis=1) + 1, 0).astype(np.int64)


def per_query_metrics(
    ranked: np.ndarray, targets: np.ndarray, k: int | None = None
) -> dict[str, np.ndarray]:
    """Per-test-case ``hit`` (0/1), ``rr`` (1/rank or 0) and ``ndcg`` (1/log2(rank+1) or 0).

    With a single relevant item the ideal DCG is 1, so nDCG@k is ``1 / log2(rank + 1)``.
    """
    r = rank_of_target(ranked, targets, k)
    hit = (r > 0).astype(np.float64)
    with np.errstate(divide="ignore"):
        rr = np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)
        ndcg = np.where(r > 0, 1.0 / np.log2(r + 1.0), 0.0)
    return {"hit": hit, "rr": rr, "ndcg": ndcg, "rank": r}


def tie_aware_metric(ahead: np.ndarray, ties: np.ndarray, k: int, metric: str) -> np.ndarray:
    """HitRate@k, MRR@k or nDCG@k (one relevant item) of targets scored below ``ahead``
    candidates and tied with ``ties`` others, **averaged over every order of the ties**
    (McSherry & Najork, ECIR 2008): the target is at each rank ``ahead+1 … ahead+ties+1``
    with equal chance. ``tune`` validates and ``evaluate retrieval`` tests this way
    (:func:`tie_aware_ranks`), so the arbitrary order in which
    :func:`~prodfusion.index.topk.topk_rows` breaks ties (catalog row ascending) neither helps
    nor hurts a configuration — a coarse modality such as ``category`` ties thousands of
    products, co-occurrence counts tie many.

    ``metric``: ``"hitrate"``, ``"mrr"`` or ``"ndcg"``.

    >>> tie_aware_metric(np.array([0, 14, 0]), np.array([0, 1, 29]), 15, "hitrate").tolist()
    [1.0, 0.5, 0.5]
    >>> tie_aware_metric(np.array([0]), np.array([1]), 15, "mrr").tolist()  # (1 + 1/2) / 2
    [0.75]
    """
    ahead = np.asarray(ahead, np.int64)
    ties = np.asarray(ties, np.int64)
    r = np.arange(1, k + 1, dtype=np.float64)
    if metric == "ndcg":
        gain = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(r + 1.0))])
    elif metric == "mrr":
        gain = np.concatenate([[0.0], np.cumsum(1.0 / r)])
    elif metric == "hitrate":
        gain = np.arange(k + 1, dtype=np.float64)
    else:
        raise ValueError(f"tie_aware_metric(): metric {metric!r} is not hitrate, mrr or ndcg")
    hi = np.minimum(ahead + ties + 1, k)
    lo = np.minimum(ahead, k)
    return (gain[hi] - gain[lo]) / (ties + 1.0)


def tie_aware_ranks(levels: Sequence[np.ndarray], targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How many candidates rank strictly ahead of each target and how many tie with it.

    ``levels`` are ``(q, n)`` score arrays ranked **lexicographically**, as a list filled from
    a fallback is: the candidates with a finite first-level score come first, by that score;
    then those with a finite second-level score only, by it; and so on. ``-inf`` marks a
    candidate a level does not serve (the query itself, a filtered product). Returns
    ``ahead``, ``ties`` (other candidates at the target's exact score, on its level) and
    ``servable`` (the target has a finite score on some level; where it has none its metrics
    are 0).

    >>> s = np.array([[3.0, 1.0, 1.0, 1.0, -np.inf]])
    >>> [x.tolist() for x in tie_aware_ranks([s], np.array([2]))]
    [[1], [2], [True]]
    >>> fb = np.array([[0.0, 0.0, 0.0, 0.0, 0.5]])  # the fallback level serves row 4 last
    >>> [x.tolist() for x in tie_aware_ranks([s, fb], np.array([4]))]
    [[4], [0], [True]]
    """
    targets = np.asarray(targets, dtype=np.int64)
    q = len(targets)
    ahead = np.zeros(q, dtype=np.int64)
    ties = np.zeros(q, dtype=np.int64)
    done = np.zeros(q, dtype=bool)
    taken = np.zeros((q, levels[0].shape[1]) if q else (0, 0), dtype=bool)  # served above
    for s in levels:
        s = np.asarray(s)
        if s.shape != (q, taken.shape[1]):
            raise DataError(f"tie_aware_ranks(): a level has shape {s.shape}, expected "
                            f"{(q, taken.shape[1])}.")
        here = np.isfinite(s) & ~taken
        st = s[np.arange(q), targets]
        at = ~done & here[np.arange(q), targets]
        if at.any():
            sa, ha = s[at], here[at]
            ahead[at] += ((sa > st[at, None]) & ha).sum(axis=1)
            ties[at] = ((sa == st[at, None]) & ha).sum(axis=1) - 1
        rest = ~done & ~at  # the target is below every candidate this level serves
        ahead[rest] += here[rest].sum(axis=1)
        done |= at
        taken |= here
    return ahead, ties, done


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else math.nan


def hit_rate_at_k(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> float:
    """Share of test cases whose target is among the first ``k`` recommendations."""
    return _mean(per_query_metrics(ranked, targets, k)["hit"])


def mrr_at_k(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> float:
    """Mean reciprocal rank of the target, counting 0 when it is not in the top ``k``."""
    return _mean(per_query_metrics(ranked, targets, k)["rr"])


def ndcg_at_k(ranked: np.ndarray, targets: np.ndarray, k: int | None = None) -> float:
    """Mean nDCG@k with one relevant item per test case: ``1/log2(rank + 1)``, 0 if absent.

    >>> ndcg_at_k(np.array([[1, 2], [2, 1]]), np.array([2, 2]))  # ranks 2 and 1
    0.8154648767857288
    """
    return _mean(per_query_metrics(ranked, targets, k)["ndcg"])


def category_precision_at_k(
    ranked_rows: np.ndarray, query_rows: np.ndarray, category_codes: np.ndarray
) -> np.ndarray:
    """Per query: share of the returned products that share the query's category.

    ``category_codes`` holds an int per catalog row (``-1``: no category). Padding rows
    (``-1``) are not returned products and do not count. NaN where the query has no category
    or nothing was returned.

    >>> category_precision_at_k(np.array([[1, 2, -1]]), np.array([0]), np.array([7, 7, 3])).tolist()
    [0.5]
    """
    ranked_rows = np.asarray(ranked_rows, dtype=np.int64)
    q = np.asarray(query_rows, dtype=np.int64)
    codes = np.asarray(category_codes, dtype=np.int64)
    valid = ranked_rows >= 0
    rc = np.where(valid, codes[np.where(valid, ranked_rows, 0)], -2)
    qc = codes[q]
    same = (rc == qc[:, None]) & valid
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = same.sum(axis=1) / n
    out = out.astype(np.float64)
    out[(qc < 0) | (n == 0)] = np.nan
    return out


def catalog_coverage(ranked_rows: np.ndarray, n_catalog: int) -> float:
    """Share of the catalog that appears in at least one recommendation list.

    >>> catalog_coverage(np.array([[0, 1], [1, -1]]), 4)
    0.5
    """
    r = np.asarray(ranked_rows, dtype=np.int64)
    return float(len(np.unique(r[r >= 0])) / n_catalog) if n_catalog else math.nan


def bootstrap_ci(
    values: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval, resampling whole groups.

    Parameters
    ----------
    values : ndarray (n,)
        Per-test-case values (NaN entries are ignored, e.g. queries without a category).
    groups : ndarray (n,), optional
        The resampling unit of each value (a session). Default: each value alone.
    n_boot : int
        Bootstrap resamples (``scipy.stats.bootstrap``, paired over per-group sums and counts,
        so the statistic is the pooled mean ``Σ sums / Σ counts`` of the resampled groups).
    alpha : float
        ``1 − confidence``.
    seed : int

    Returns
    -------
    (mean, lo, hi) : tuple of float
        NaN when there are no values; ``lo == hi == mean`` when there is one group.
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    g = np.arange(len(v)) if groups is None else np.asarray(groups)
    if g.shape != v.shape:
        raise DataError(f"bootstrap_ci(): {len(v)} values but {len(g)} group labels.")
    ok = ~np.isnan(v)
    v, g = v[ok], g[ok]
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    _, inv = np.unique(g, return_inverse=True)
    sums = np.bincount(inv, weights=v)
    counts = np.bincount(inv).astype(np.float64)
    if len(sums) < 2 or np.ptp(sums / counts) == 0:  # constant statistic: no interval to draw
        return (mean, mean, mean)

    def stat(s, c, axis=-1):
        return s.sum(axis=axis) / c.sum(axis=axis)

    res = bootstrap(
        (sums, counts),
        stat,
        paired=True,
        vectorized=True,
        n_resamples=n_boot,
        confidence_level=1.0 - alpha,
        method="percentile",
        batch=max(1, int(2e7 // max(1, len(sums)))),
        rng=np.random.default_rng(seed),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (mean, lo, hi)


# --------------------------------------------------------------------------- clustering
def adjusted_rand(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Adjusted Rand Index (scikit-learn's ``adjusted_rand_score``) as a Python float."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(labels_true), np.asarray(labels_pred)))


def kmeans_ari(
    points: np.ndarray,
    labels: Sequence,
    n_clusters: int,
    seed: int = 0,
    n_init: int = 10,
    n_jobs: int | None = 1,
) -> float:
    """Cluster ``points`` with k-means++ (k = ``n_clusters``) and return the ARI with ``labels``.

    Parameters
    ----------
    points : ndarray (n, d)
        Finite coordinates (t-SNE output, fused vectors, or an MDS embedding).
    labels : sequence of length n
        The reference classes (categories).
    n_clusters : int
        k, normally the number of categories.
    seed : int
        ``random_state`` of :class:`sklearn.cluster.KMeans`.
    n_init : int
        k-means++ restarts; the best inertia wins.
    n_jobs : int or None
        OpenMP/BLAS threads (None: the library default).
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(labels):
        raise DataError(
            f"kmeans_ari(): points have shape {x.shape} but there are {len(labels)} labels; "
            "pass one row per labelled product."
        )
    if not np.isfinite(x).all():
        raise DataError("kmeans_ari(): points contain NaN or Inf; nothing can be clustered.")
    check_int(n_clusters, "n_clusters", "kmeans_ari()", low=1, high=len(x))
    km = KMeans(n_clusters=int(n_clusters), init="k-means++", n_init=n_init, random_state=seed)
    with threadpool_limits(limits=n_jobs if n_jobs is not None and n_jobs > 0 else None):
        pred = km.fit_predict(x)
    return adjusted_rand(labels, pred)
