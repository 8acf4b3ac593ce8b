"""The paper's clustering protocol: fused representation → t-SNE (2-D) → k-means++ → ARI.

For the products of the N most frequent categories, every modality combination and fusion
method gives a representation of the products; t-SNE reduces it to 2-D, k-means++ (k = N)
clusters the 2-D points and the Adjusted Rand Index (scikit-learn's) scores the agreement of
the clusters with the categories. t-SNE and k-means are random, so every cell is the mean ±
standard deviation over several seeds. The ARI of k-means++ run directly on the fused
representation (no t-SNE) is reported next to it, to show what t-SNE adds.

What each fusion hands to t-SNE (as in the paper):

* early — the fused unit vectors (Euclidean metric; for unit vectors the squared Euclidean
  distance is twice the cosine distance);
* intermediate — the fused *distance matrix* ``1 − similarity`` (mean cosine distance over the
  modalities both products have) as a precomputed metric;
* late — the late-fusion score turned into a distance, ``(M + TIE_WEIGHT) − score`` (0 for a
  product and itself), as a precomputed metric.

"Directly on the fused representation" means k-means++ on the early fused vectors, and on the
classical-MDS embedding of the distance matrix for intermediate and late fusion. For products
that have every fused modality both distances are squared Euclidean distances (a mean of
cosine distances of unit vectors; a count of differing one-hot cluster labels plus such a
mean), so the embedding reproduces them exactly and k-means++ sees the fused geometry itself.

Examples
--------
>>> import numpy as np
>>> labels = np.repeat([0, 1, 2], 20)
>>> rng = np.random.default_rng(0)
>>> points = rng.normal(size=(60, 2)) * 0.1 + np.repeat([[0, 0], [5, 0], [0, 5]], 20, axis=0)
>>> kmeans_ari(points, labels, n_clusters=3, seed=0)
1.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any, Literal

import numpy as np

from prodfusion._checks import FUSION_METHODS, is_int
from prodfusion.errors import DataError, param_error
from prodfusion.evaluation.clustering_inputs import (
    _example_images,
    fused_representation,
    select_products,
)
from prodfusion.evaluation.metrics import adjusted_rand, kmeans_ari
from prodfusion.evaluation.tsne import (
    TSNEBackend,
    check_distance_matrix,
    classical_mds,
    resolve_tsne_backend,
    similarity_to_distance,
    tsne_2d,
)

__all__ = [
    "TSNEBackend",
    "ProductSet",
    "all_combinations",
    "adjusted_rand",
    "kmeans_ari",
    "tsne_2d",
    "resolve_tsne_backend",
    "classical_mds",
    "check_distance_matrix",
    "similarity_to_distance",
    "select_products",
    "fused_representation",
    "evaluate_clustering",
]

ProductSet = Literal["complete", "any"]

#: Default numbers of categories, as in the paper's Table III.
DEFAULT_CATEGORIES: tuple[int, ...] = (3, 20, 50)


# --------------------------------------------------------------------------- small pieces
#: The reference row of the clustering tables: title character 3-5-gram TF-IDF → SVD 128.
REFERENCE_TFIDF = "tfidf (reference: char 3-5-grams, SVD 128)"


def all_combinations(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modalities``, singletons first (order kept).

    >>> all_combinations(("text", "image", "clicks"))[:4]
    [('text',), ('image',), ('clicks',), ('text', 'image')]
    >>> len(all_combinations(("text", "image", "clicks")))
    7
    """
    mods = tuple(modalities)
    return [c for r in range(1, len(mods) + 1) for c in combinations(mods, r)]


def _mean_std(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "values": [float(a) for a in v],
    }


def _check_int_list(name: str, values: Sequence[int], lo: int) -> list[int]:
    out = list(values)
    if not out or any(not is_int(v) or v < lo for v in out):
        raise param_error(name, "evaluate_clustering()", f"a non-empty list of ints >= {lo}", values)
    return [int(v) for v in out]


def evaluate_clustering(
    rec: Any,
    categories: Sequence[int] = DEFAULT_CATEGORIES,
    seeds: int | Sequence[int] = 5,
    *,
    max_per_category: int | None = 100,
    combos: Sequence[Sequence[str]] | None = None,
    fusions: Sequence[str] = FUSION_METHODS,
    main_categories: int | None = 20,
    table3_fusions: Sequence[str] | None = None,
    products: ProductSet = "complete",
    perplexity: float = 30.0,
    backend: TSNEBackend = "auto",
    direct: bool = True,
    sample_seed: int = 0,
    n_jobs: int = 1,
    progress: bool | Callable = True,
    references: Sequence[str] = ("tfidf",),
) -> dict:
    """Run the paper's clustering protocol on a built recommender.

    Parameters
    ----------
    rec : Recommender
        Anything with ``catalog`` (categories required), ``embeddings_`` and
        ``fuser(method, modalities)``.
    categories : sequence of int, default (3, 20, 50)
        The numbers N of most frequent categories to evaluate.
    seeds : int or sequence of int, default 5
        An int n means seeds ``0 … n−1``; each cell is the mean ± std over them. The same
        seed drives t-SNE and k-means of one run.
    max_per_category : int or None, default 100
        At most this many products per category (a fixed random sample, ``sample_seed``),
        so that the N × N distance matrices fit in memory and time.
    combos : sequence of modality tuples, optional
        Default: every non-empty subset of the model's modalities (7 for three).
    fusions : sequence of str
        Fusion methods for the full table (Table II).
    main_categories : int or None, default 20
        The N of the full combinations × fusions table (Table II) and of the figure. For the
        other N only ``table3_fusions`` are run. ``None``: the full table for every N.
    table3_fusions : sequence of str, optional
        Fusions run for the N other than ``main_categories`` (Table III). Default: ``fusions``.
    products : {"complete", "any"}
        ``"complete"`` (default): only products that have every modality of ``combos``, so
        every cell scores the same products. ``"any"``: every categorised product (pairs
        sharing no modality get the maximum distance).
    perplexity, backend, n_jobs
        Passed to :func:`tsne_2d` (``n_jobs`` also limits the k-means threads).
    direct : bool
        Also report k-means++ ARI on the fused representation without t-SNE.
    sample_seed : int
        Seed of the per-category product sample.
    progress : bool or callable
        Show a tqdm bar (True), nothing (False), or call ``progress(message)`` per run.

    Returns
    -------
    dict
        ``config`` (every parameter), ``sets`` (per N: products, categories and their
        sizes), ``cells`` (one per N × combination × fusion with ``ari_tsne`` /
        ``ari_direct`` as ``{mean, std, values}``), ``tsne`` (backend used and timings) and
        ``figure`` (2-D points of the 3-modality intermediate fusion, first seed, main N).

    Examples
    --------
    >>> res = evaluate_clustering(rec, categories=(3, 20), seeds=5)  # doctest: +SKIP
    >>> res["cells"][0]["ari_tsne"]["mean"]  # doctest: +SKIP
    0.41
    """
    where = "evaluate_clustering()"
    ns = _check_int_list("categories", categories, 2)
    if isinstance(seeds, bool) or (is_int(seeds) and seeds < 1):
        raise param_error("seeds", where, "an int >= 1 or a list of ints >= 0", seeds)
    seed_list = list(range(seeds)) if is_int(seeds) else list(seeds)
    seed_list = _check_int_list("seeds", seed_list, 0)
    if products not in ("complete", "any"):
        raise param_error("products", where, "'complete' or 'any'", products)
    for f in list(fusions) + list(table3_fusions or []):
        if f not in FUSION_METHODS:
            raise param_error("fusions", where, f"a subset of {list(FUSION_METHODS)}", f)
    catalog = rec.catalog
    if not catalog.has_categories:
        raise DataError(
            f"{catalog.source}: the catalog has no 'category' column with values; the "
            "clustering protocol scores agreement with categories. Map a category column "
            "when building the model."
        )
    available = tuple(rec.embeddings_)
    if combos is None:
        combo_list = all_combinations(available)
    else:
        from prodfusion.fusion.base import check_modalities

        combo_list = [check_modalities(c, available, where) for c in combos]
    used = sorted({m for c in combo_list for m in c}, key=available.index)
    if products == "complete":
        eligible = np.ones(len(catalog), dtype=bool)
        for m in used:
            eligible &= rec.embeddings_[m].mask
    else:
        eligible = np.zeros(len(catalog), dtype=bool)
        for m in used:
            eligible |= rec.embeddings_[m].mask
    # N larger than the categories that have eligible products cannot run: skip it, say so.
    notes: list[str] = []
    cats_ok = {c for c, ok in zip(catalog.categories, eligible, strict=True)
               if ok and c is not None and c != ""}
    too_many = [n for n in ns if n > len(cats_ok)]
    if too_many:
        notes.append(
            f"N = {', '.join(map(str, too_many))} skipped: only {len(cats_ok)} categories have "
            f"products with every evaluated modality ({'+'.join(used)})")
        ns = [n for n in ns if n <= len(cats_ok)]
    if not ns:
        raise DataError(
            f"Only {len(cats_ok)} categories have eligible products (with every evaluated "
            f"modality: {'+'.join(used)}); cannot take the {min(too_many)} most frequent. "
            + ("Check the category column." if len(cats_ok) < 2 else "Ask for fewer categories.")
        )
    main_n = main_categories if main_categories in ns else None
    t3 = tuple(table3_fusions) if table3_fusions is not None else tuple(fusions)

    # The largest N's sample contains every smaller N's sample: compute once, slice.
    n_max = max(ns)
    rows_all, labels_all, names_all = select_products(
        catalog.categories,
        n_max,
        eligible=eligible,
        max_per_category=max_per_category,
        seed=sample_seed,
    )
    sets = {}
    for n in ns:
        keep = labels_all < n
        sizes = np.bincount(labels_all[keep], minlength=n)
        sets[n] = {
            "n_categories": n,
            "n_products": int(keep.sum()),
            "categories": names_all[:n],
            "category_sizes": [int(s) for s in sizes],
            "keep": keep,
        }

    jobs: list[tuple[int, tuple[str, ...], str]] = []
    for combo in combo_list:
        for fusion in dict.fromkeys(list(fusions) + list(t3)):
            for n in ns:
                wanted = fusions if (main_n is None or n == main_n) else t3
                if fusion in wanted:
                    jobs.append((n, combo, fusion))
    n_runs = len(jobs) * len(seed_list) * (2 if direct else 1)
    bar = None
    if progress is True:
        from prodfusion.progress import Progress  # a bar on a terminal, plain lines in a log

        bar = Progress(n_runs, "clustering (t-SNE + k-means++)", "run")

    def tick(msg: str) -> None:
        if bar is not None:
            bar.set_postfix_str(msg, refresh=False)
            bar.update(1)
        elif callable(progress):
            progress(msg)

    cells = []
    tsne_seconds: list[float] = []
    backends_used: set[str] = set()
    figure = None
    fig_combo = tuple(m for m in ("text", "image", "clicks") if m in available)
    fig_n = main_n if main_n is not None else ns[0]
    t_start = time.perf_counter()
    try:
        for combo in combo_list:
            for fusion in dict.fromkeys(f for (_, c, f) in jobs if c == combo):
                fuser = rec.fuser(fusion, combo)
                rep = fused_representation(fuser, rows_all)
                mds_all = None
                for n in [n for (n, c, f) in jobs if c == combo and f == fusion]:
                    keep = sets[n]["keep"]
                    labels = labels_all[keep]
                    vec = rep["vectors"][keep] if rep["vectors"] is not None else None
                    dist = (
                        rep["distances"][np.ix_(keep, keep)] if rep["distances"] is not None else None
                    )
                    ari_t, ari_d, infos = [], [], []
                    direct_points = None
                    if direct:
                        if vec is not None:
                            direct_points = vec
                        elif n == n_max and mds_all is not None:
                            direct_points = mds_all
                        else:
                            direct_points = classical_mds(dist)
                            if n == n_max:
                                mds_all = direct_points
                    for s in seed_list:
                        y, info = tsne_2d(
                            vec,
                            distances=dist,
                            seed=s,
                            perplexity=perplexity,
                            backend=backend,
                            n_jobs=n_jobs,
                        )
                        infos.append(info)
                        tsne_seconds.append(info["seconds"])
                        backends_used.add(info["backend"])
                        ari_t.append(kmeans_ari(y, labels, n, seed=s, n_jobs=n_jobs))
                        tick(f"N={n} {'+'.join(combo)} {fusion} seed={s} t-SNE")
                        if direct:
                            ari_d.append(
                                kmeans_ari(direct_points, labels, n, seed=s, n_jobs=n_jobs)
                            )
                            tick(f"N={n} {'+'.join(combo)} {fusion} seed={s} direct")
                        if figure is None and n == fig_n and combo == fig_combo and fusion == "intermediate":
                            rows_n = rows_all[keep]
                            figure = {
                                "examples": _example_images(catalog, rows_n, labels, n),
                                "n_categories": n,
                                "combo": list(combo),
                                "fusion": fusion,
                                "seed": s,
                                "product_ids": [str(p) for p in catalog.ids[rows_n]],
                                "labels": [int(v) for v in labels],
                                "categories": sets[n]["categories"],
                                "xy": [[float(a), float(b)] for a, b in y],
                            }
                    cells.append(
                        {
                            "n_categories": n,
                            "combo": list(combo),
                            "fusion": fusion,
                            "n_products": int(len(labels)),
                            "seeds": seed_list,
                            "ari_tsne": _mean_std(ari_t),
                            "ari_direct": _mean_std(ari_d) if direct else None,
                            "tsne_input": "vectors" if vec is not None else "precomputed distances",
                            "perplexity": infos[0]["perplexity"],
                        }
                    )
        if "tfidf" in references:  # the reference a team would try first: title n-grams
            from prodfusion.evaluation.baselines import tfidf_svd

            vec_all = tfidf_svd(catalog.titles, dim=128, seed=0)[rows_all].astype(np.float64)
            vec_all /= np.maximum(np.linalg.norm(vec_all, axis=1, keepdims=True), 1e-12)
            for n in ns:
                keep = sets[n]["keep"]
                labels = labels_all[keep]
                ari_t, ari_d = [], []
                for s_ in seed_list:
                    y, info = tsne_2d(vec_all[keep], seed=s_, perplexity=perplexity,
                                      backend=backend, n_jobs=n_jobs)
                    ari_t.append(kmeans_ari(y, labels, n, seed=s_, n_jobs=n_jobs))
                    if direct:
                        ari_d.append(kmeans_ari(vec_all[keep], labels, n, seed=s_, n_jobs=n_jobs))
                cells.append({
                    "n_categories": n, "combo": [REFERENCE_TFIDF], "fusion": "intermediate",
                    "reference": True, "n_products": int(len(labels)), "seeds": seed_list,
                    "ari_tsne": _mean_std(ari_t), "ari_direct": _mean_std(ari_d) if direct else None,
                    "tsne_input": "vectors", "perplexity": info["perplexity"],
                })
    finally:
        if bar is not None:
            bar.close()

    for s in sets.values():
        s.pop("keep")
    return {
        "kind": "clustering",
        "config": {
            "categories": ns,
            "seeds": seed_list,
            "max_per_category": max_per_category,
            "combos": [list(c) for c in combo_list],
            "fusions": list(fusions),
            "main_categories": main_n,
            "table3_fusions": list(t3),
            "products": products,
            "perplexity": perplexity,
            "backend": backend,
            "direct": direct,
            "sample_seed": sample_seed,
            "references": list(references),
            "kmeans": "sklearn KMeans(init='k-means++', n_init=10, random_state=seed), k = N",
            "catalog": {"source": catalog.source, "n_products": len(catalog)},
            "eligible_products": int(eligible.sum()),
            "modalities": {
                m: {"spec": rec.embeddings_[m].spec, "n_present": rec.embeddings_[m].n_present}
                for m in available
            },
        },
        "sets": {str(n): s for n, s in sets.items()},
        "cells": cells,
        "tsne": {
            "backends": sorted(backends_used),
            "runs": len(tsne_seconds),
            "seconds_total": float(sum(tsne_seconds)),
            "seconds_mean": float(np.mean(tsne_seconds)) if tsne_seconds else math.nan,
        },
        "seconds": time.perf_counter() - t_start,
        "figure": figure,
        "notes": notes,
    }
