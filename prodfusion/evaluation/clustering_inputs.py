"""What the clustering protocol clusters: which products (:func:`select_products`, the N most
frequent categories), the representation each fusion hands to t-SNE and k-means
(:func:`fused_representation`), and one example photo per category for the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prodfusion._checks import check_int
from prodfusion.errors import DataError
from prodfusion.evaluation.tsne import similarity_to_distance

__all__ = ["select_products", "fused_representation"]


# --------------------------------------------------------------------------- product choice
def select_products(
    categories: Sequence[str | None],
    n_categories: int,
    *,
    eligible: np.ndarray | None = None,
    max_per_category: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of the ``n_categories`` most frequent categories, at most ``max_per_category`` each.

    Frequencies are counted among ``eligible`` rows (all by default). Ties in frequency are
    broken by category name so the choice is deterministic. The per-category sample is drawn
    with ``seed`` and does not depend on ``n_categories``: the rows for N = 3 are a subset of
    the rows for N = 20.

    Returns
    -------
    rows : int64 array, grouped by category (most frequent first), sorted inside a category
    labels : int64 array, the category index (0 = most frequent) of each row
    names : list of str, the chosen categories, most frequent first

    >>> rows, labels, names = select_products(["a", "b", "a", None, "c", "a", "b"], 2)
    >>> rows.tolist(), labels.tolist(), names
    ([0, 2, 5, 1, 6], [0, 0, 0, 1, 1], ['a', 'b'])
    """
    cats = np.asarray([c if c is not None else "" for c in categories], dtype=object)
    ok = np.asarray([c is not None and c != "" for c in categories], dtype=bool)
    if eligible is not None:
        ok &= np.asarray(eligible, dtype=bool)
    check_int(n_categories, "n_categories", "select_products()", low=2)
    check_int(max_per_category, "max_per_category", "select_products()", low=2, none=True)
    values, counts = np.unique(cats[ok].astype(str), return_counts=True)
    if len(values) < n_categories:
        raise DataError(
            f"Only {len(values)} categories have eligible products; cannot take the "
            f"{n_categories} most frequent. Ask for fewer categories."
        )
    order = sorted(range(len(values)), key=lambda i: (-counts[i], values[i]))[:n_categories]
    names = [str(values[i]) for i in order]
    rows_out, labels_out = [], []
    for lab, name in enumerate(names):
        members = np.flatnonzero(ok & (cats == name))
        if max_per_category is not None and len(members) > max_per_category:
            # One generator per category: the sample of a category does not depend on N.
            sub = np.random.default_rng([seed, lab]).choice(members, max_per_category, replace=False)
            members = np.sort(sub)
        rows_out.append(members)
        labels_out.append(np.full(len(members), lab, dtype=np.int64))
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(labels_out), names


# --------------------------------------------------------------------------- representations
def fused_representation(fuser: Any, rows: np.ndarray) -> dict[str, np.ndarray | None]:
    """What t-SNE and k-means see for one fitted fuser on ``rows``.

    Returns a dict with ``"vectors"`` (early fusion: the fused unit vectors; else None) and
    ``"distances"`` (intermediate/late: the fused distance matrix; else None).
    """
    rows = np.asarray(rows, dtype=np.int64)
    method = fuser.method
    if method == "early":
        return {"vectors": np.asarray(fuser.representation(rows), dtype=np.float64), "distances": None}
    s = np.asarray(fuser.similarity(rows, rows), dtype=np.float64)
    return {
        "vectors": None,
        "distances": similarity_to_distance(s, method, len(fuser.modalities)),
    }


def _example_images(catalog: Any, rows: np.ndarray, labels: np.ndarray, n: int) -> list:
    """One product with an existing image per category (first in row order), or None."""
    from pathlib import Path

    from prodfusion.data.io import is_url

    paths = catalog.image_paths
    out: list = []
    for lab in range(n):
        ex = None
        for r in rows[labels == lab]:
            p = paths[int(r)]
            if p and (is_url(p) or Path(p).is_file()):  # a URL: fetched when drawn
                ex = {"product_id": str(catalog.ids[int(r)]), "image": str(p)}
                break
        out.append(ex)
    return out
