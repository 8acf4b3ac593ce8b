"""Predicted categories for a catalog, and a catalog with its missing categories filled in."""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["predict_categories", "fill_categories"]


#: The columns of :func:`predict_categories`' table (and of ``categorize predict --out``).
PREDICTIONS_SCHEMA = {"product_id": pl.Utf8, "category": pl.Utf8, "predicted_category": pl.Utf8,
                      "probability": pl.Float64, "source": pl.Utf8}


def is_predictions_file(path) -> bool:
    """Whether ``path`` (Parquet, TSV or CSV) holds exactly the columns of a predictions
    table: an earlier ``categorize predict --out``, which a new one may replace."""
    from pathlib import Path

    p = Path(path)
    if p.suffix == ".parquet":
        cols = list(pl.read_parquet_schema(p))
    else:
        cols = pl.read_csv(p, n_rows=0, separator="\t" if p.suffix == ".tsv" else ",").columns
    return cols == list(PREDICTIONS_SCHEMA)


def _missing(catalog) -> np.ndarray:
    cats = catalog.categories
    if cats is None:
        return np.ones(len(catalog), dtype=bool)
    return np.array([c is None or str(c).strip() == "" for c in cats], dtype=bool)


def predict_categories(model, catalog, *, only_missing: bool = False, device: str = "cpu") -> pl.DataFrame:
    """One row per product: ``product_id``, ``category`` (given), ``predicted_category``, ``probability``.

    Parameters
    ----------
    model : CategoryClassifier or path
        A fitted classifier or a folder written by ``CategoryClassifier.save``.
    catalog : prodfusion.data.Catalog
    only_missing : bool
        Predict only the products without a category; the others get
        ``predicted_category = category`` and probability null, and ``source = "given"``.

    ``source`` is ``"predicted"``, ``"given"`` (the catalog's own category kept), or
    ``"no title"``: a product without a title and without a category, which nothing can be
    predicted from (``predicted_category`` null).
    """
    from prodfusion.encoders.text import title_mask
    from prodfusion.training.categorize import CategoryClassifier

    clf = model if isinstance(model, CategoryClassifier) else CategoryClassifier.load(model, device=device)
    given = catalog.categories or [None] * len(catalog)
    titles = catalog.titles
    has_title = title_mask(titles)  # a product without a title keeps its given category
    todo = np.flatnonzero((_missing(catalog) if only_missing else True) & has_title)
    labels, probs = clf.predict([titles[i] for i in todo]) if len(todo) else ([], [])
    predicted: list = list(given)
    probability: list = [None] * len(catalog)
    missing = _missing(catalog)
    source = ["no title" if missing[i] and not has_title[i] else "given"
              for i in range(len(catalog))]
    for i, lab, p in zip(todo, labels, probs, strict=True):
        predicted[i], probability[i], source[i] = str(lab), float(p), "predicted"
    return pl.DataFrame({
        "product_id": catalog.ids.tolist(), "category": given, "predicted_category": predicted,
        "probability": probability, "source": source,
    }, schema=PREDICTIONS_SCHEMA)


def fill_categories(catalog, model, *, device: str = "cpu"):
    """A copy of ``catalog`` whose products without a category get the predicted one.

    Given categories are never changed. Adds a ``category_source`` column (``given`` /
    ``predicted`` / ``no title``: left without a category, see :func:`predict_categories`)
    and ``category_probability``. Returns ``(catalog, n_filled)``.
    """
    from prodfusion.data import Catalog

    pred = predict_categories(model, catalog, only_missing=True, device=device)
    frame = catalog.frame.with_columns(
        pred["predicted_category"].alias("category"),
        pred["source"].alias("category_source"),
        pred["probability"].alias("category_probability"),
    )
    n = int((pred["source"] == "predicted").sum())
    return Catalog(frame, source=catalog.source), n
