"""The 2-D maps of the clustering protocol: similarities to distances, classical MDS, t-SNE
(openTSNE or scikit-learn) on a precomputed distance matrix."""

from __future__ import annotations

import time
from typing import Literal

import numpy as np

from prodfusion.errors import DataError, ParameterError, param_error

__all__ = [
    "TSNEBackend",
    "tsne_2d",
    "resolve_tsne_backend",
    "classical_mds",
    "check_distance_matrix",
    "similarity_to_distance",
]

TSNEBackend = Literal["auto", "opentsne", "sklearn"]


def check_distance_matrix(d: np.ndarray, where: str = "tsne_2d()") -> np.ndarray:
    """Validate a precomputed distance matrix: square, finite, non-negative, zero diagonal.

    Returns it as a symmetric float64 array (``(D + Dᵀ)/2``, diagonal set to 0 after checking
    it is 0 up to rounding).
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise DataError(f"{where}: a distance matrix must be square; got shape {d.shape}.")
    if not np.isfinite(d).all():
        i, j = np.argwhere(~np.isfinite(d))[0]
        raise DataError(
            f"{where}: distance matrix entry ({i}, {j}) is {d[i, j]}; distances must be finite "
            "(map pairs that share no modality to a finite maximum first)."
        )
    if (d < -1e-6).any():
        i, j = np.argwhere(d < -1e-6)[0]
        raise DataError(f"{where}: distance matrix entry ({i}, {j}) is negative ({d[i, j]:.3g}).")
    if np.abs(np.diag(d)).max(initial=0.0) > 1e-4:
        i = int(np.argmax(np.abs(np.diag(d))))
        raise DataError(f"{where}: distance of item {i} to itself is {d[i, i]:.3g}, not 0.")
    d = (d + d.T) / 2.0
    np.clip(d, 0.0, None, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def similarity_to_distance(s: np.ndarray, method: str, n_modalities: int) -> np.ndarray:
    """Turn a fused similarity matrix into the distance matrix handed to t-SNE.

    * ``"early"`` / ``"intermediate"``: ``1 − s`` (cosine distance / mean cosine distance),
      clipped to ``[0, 2]``; pairs sharing no modality (``s = −inf``) get the maximum 2.
    * ``"late"``: ``(M + TIE_WEIGHT) − s`` with ``M = n_modalities`` (the score of a product
      with itself), clipped to ``[0, M + 1]``; pairs sharing no modality get ``M + 1``.

    The diagonal is set to 0 and the result symmetrised.

    >>> similarity_to_distance(np.array([[1.0, 0.5], [0.5, 1.0]]), "intermediate", 2).tolist()
    [[0.0, 0.5], [0.5, 0.0]]
    """
    from prodfusion.fusion.late import TIE_WEIGHT

    s = np.asarray(s, dtype=np.float64)
    if np.isnan(s).any():
        raise DataError("similarity_to_distance(): the similarity matrix contains NaN.")
    if method in ("early", "intermediate"):
        top, cap = 1.0, 2.0
    elif method == "late":
        top, cap = n_modalities + TIE_WEIGHT, n_modalities + 1.0
    else:
        raise param_error("method", "similarity_to_distance()", "'early', 'intermediate' or 'late'", method)
    d = np.where(np.isfinite(s), top - s, cap)
    np.clip(d, 0.0, cap, out=d)
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return d


def classical_mds(d: np.ndarray, *, squared: bool = True, tol: float = 1e-9) -> np.ndarray:
    """Classical (Torgerson) MDS: Euclidean coordinates whose distances reproduce ``d``.

    Parameters
    ----------
    d : ndarray (n, n)
        Dissimilarities. With ``squared=True`` (default) they are taken as *squared*
        Euclidean distances — exact for cosine distances of unit vectors, for means of those,
        and for the late-fusion distance (see the module docstring).
    squared : bool
        If False, ``d`` is squared first.
    tol : float
        Eigenvalues below ``tol · λ_max`` (and all negative ones, the non-Euclidean part) are
        dropped.

    Returns
    -------
    ndarray (n, r)
        Coordinates, ``r`` = number of kept eigenvalues.

    >>> pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    >>> d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    >>> y = classical_mds(d2)
    >>> bool(np.allclose(((y[:, None] - y[None]) ** 2).sum(-1), d2))
    True
    """
    from scipy.linalg import eigh

    d = check_distance_matrix(d, "classical_mds()")
    d2 = d if squared else d**2
    n = len(d2)
    # Double centring B = -1/2 J D J without forming J.
    b = -0.5 * (d2 - d2.mean(axis=0, keepdims=True) - d2.mean(axis=1, keepdims=True) + d2.mean())
    w, v = eigh(b)
    keep = w > max(tol * w.max(initial=0.0), 0.0)
    if not keep.any():  # all points coincide
        return np.zeros((n, 1))
    return v[:, keep] * np.sqrt(w[keep])


# --------------------------------------------------------------------------- t-SNE
def resolve_tsne_backend(backend: str = "auto") -> str:
    """``"opentsne"`` or ``"sklearn"``: ``auto`` picks openTSNE when it is installed.

    On precomputed distance matrices openTSNE was faster than scikit-learn at 1,000, 5,000
    and 10,000 products (H&M fused distances, one thread: 2.4 vs 4.4 s, 17 vs 23 s, 52 vs
    56 s on a 2-core VM; see ``docs/results/tsne_scaling.md``), and it is deterministic for
    a seed.
    """
    if backend not in ("auto", "opentsne", "sklearn"):
        raise param_error("backend", "tsne_2d()", "one of 'auto', 'opentsne', 'sklearn'", backend)
    if backend != "auto":
        if backend == "opentsne":
            try:
                import openTSNE  # noqa: F401
            except ImportError:
                raise ParameterError(
                    "The 'backend' parameter of tsne_2d() is 'opentsne' but openTSNE is not "
                    "installed. Install it with `pip install prodfusion[eval]` or pass 'sklearn'."
                ) from None
        return backend
    try:
        import openTSNE  # noqa: F401
    except ImportError:
        return "sklearn"
    return "opentsne"


def tsne_2d(
    x: np.ndarray | None = None,
    *,
    distances: np.ndarray | None = None,
    seed: int = 0,
    perplexity: float = 30.0,
    backend: TSNEBackend = "auto",
    n_jobs: int = 1,
) -> tuple[np.ndarray, dict]:
    """Reduce vectors or a precomputed distance matrix to 2-D with t-SNE.

    Parameters
    ----------
    x : ndarray (n, d), optional
        Vectors (Euclidean metric). Exactly one of ``x`` and ``distances`` must be given.
    distances : ndarray (n, n), optional
        Precomputed distances (``metric="precomputed"``), checked by
        :func:`check_distance_matrix`.
    seed : int
        Random state of the embedding (initialisation and optimisation).
    perplexity : float
        Capped to ``(n − 1) / 3`` for small inputs (both libraries need ``3·perplexity < n``);
        the value used is returned.
    backend : {"auto", "opentsne", "sklearn"}
        See :func:`resolve_tsne_backend`.
    n_jobs : int, default 1
        Threads (``-1``: all cores). One thread is the safe default on a shared machine:
        with the cores already busy, multithreaded t-SNE runs can become many times slower
        (measured: 0.4 s with 1 thread, 15–27 s with 2 threads for 120 points on a
        loaded 2-core machine).

    Returns
    -------
    y : ndarray (n, 2)
    info : dict
        ``backend``, ``perplexity``, ``init``, ``seconds``.
    """
    if (x is None) == (distances is None):
        raise ParameterError("tsne_2d() needs exactly one of 'x' (vectors) and 'distances'.")
    be = resolve_tsne_backend(backend)
    if distances is not None:
        data = check_distance_matrix(distances)
        metric = "precomputed"
    else:
        data = np.asarray(x, dtype=np.float64)
        if data.ndim != 2 or not np.isfinite(data).all():
            raise DataError("tsne_2d(): 'x' must be a finite 2-D array of vectors.")
        metric = "euclidean"
    n = len(data)
    if n < 4:
        raise DataError(f"tsne_2d(): t-SNE needs at least 4 items; got {n}.")
    perp = float(min(perplexity, (n - 1) / 3.0))
    t0 = time.perf_counter()
    if be == "opentsne":
        from openTSNE import TSNE

        init = "spectral" if metric == "precomputed" else "pca"
        y = TSNE(
            n_components=2,
            perplexity=perp,
            metric=metric,
            initialization=init,
            n_jobs=n_jobs,
            random_state=seed,
        ).fit(data)
        y = np.asarray(y, dtype=np.float64)
    else:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        # scikit-learn cannot PCA-initialise from a distance matrix.
        init = "random" if metric == "precomputed" else "pca"
        # Its Barnes-Hut gradient uses OpenMP threads, which n_jobs does not limit.
        with threadpool_limits(limits=n_jobs if n_jobs > 0 else None):
            y = TSNE(
                n_components=2,
                perplexity=perp,
                metric=metric,
                init=init,
                random_state=seed,
                n_jobs=n_jobs,
            ).fit_transform(data)
    info = dict(backend=be, perplexity=perp, init=init, seconds=time.perf_counter() - t0)
    return np.asarray(y, dtype=np.float64), info


