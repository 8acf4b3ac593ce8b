"""A synthetic shop whose right answer is known: categories planted in titles, photos and clicks.

:func:`make_synthetic` writes a catalog with Turkish and English titles, Pillow-drawn photos
whose shape and palette depend on the category, and click sessions that mostly stay inside one
category. Every modality therefore separates the categories, which tests and the demo check.

Examples
--------
>>> import tempfile
>>> paths = make_synthetic(tempfile.mkdtemp(), n_products=60, n_categories=3, n_sessions=40,
...                        image_size=32)
>>> paths.n_products, paths.categories
(60, ('dresses', 'shoes', 'watches'))
>>> catalog = paths.read_catalog()
>>> catalog.ids[0]
'000001'
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from prodfusion._checks import check_real, is_int
from prodfusion.data.synthetic_items import (  # CATEGORIES and the colours: importable from here
    _BRANDS,
    _COLOURS_EN,  # noqa: F401
    _COLOURS_TR,  # noqa: F401
    CATEGORIES,
    _draw,
    _title,
)
from prodfusion.errors import ParameterError, param_error

if TYPE_CHECKING:
    from prodfusion.data.catalog import Catalog
    from prodfusion.data.sessions import Sessions

__all__ = ["make_synthetic", "SyntheticPaths", "CATEGORIES", "next_click_probabilities"]


@dataclass(frozen=True)
class SyntheticPaths:
    """Where :func:`make_synthetic` wrote its files, and what it planted.

    ``catalog`` and ``interactions`` read with the defaults of :func:`read_catalog` and
    :func:`read_interactions` (``time_col="timestamp"``); see :meth:`read_catalog` and
    :meth:`read_sessions`.
    """

    catalog: Path
    interactions: Path
    images: Path
    n_products: int
    n_categories: int
    categories: tuple[str, ...] = ()
    #: ``truth.csv`` (``make_synthetic(truth=True)``): what the sessions were drawn from
    truth: Path | None = None
    #: the rates the sessions were drawn with (:func:`make_synthetic`'s)
    similar_rate: float = 0.0
    in_category_rate: float = 0.85

    def next_click_probabilities(self, query_rows) -> np.ndarray:
        """:func:`next_click_probabilities` of this shop (``make_synthetic(truth=True)``)."""
        if self.truth is None:
            raise ParameterError("next_click_probabilities() needs the shop's truth: "
                                 "make_synthetic(..., truth=True).")
        truth = pl.read_csv(self.truth, schema_overrides={"product_id": pl.Utf8})
        return next_click_probabilities(truth, query_rows, self.similar_rate,
                                        self.in_category_rate)

    def read_catalog(self) -> Catalog:
        """The catalog, read with :func:`prodfusion.data.read_catalog`."""
        from prodfusion.data.io import read_catalog

        return read_catalog(self.catalog)

    def read_sessions(self, catalog: Catalog | None = None, **clean_options) -> Sessions:
        """The sessions, read with ``time_col="timestamp"`` and cleaned against ``catalog``."""
        from prodfusion.data.interactions import clean_sessions, read_interactions

        log = read_interactions(self.interactions, time_col="timestamp")
        return clean_sessions(log, catalog, **clean_options)


def next_click_probabilities(truth: pl.DataFrame, query_rows, similar_rate: float,
                             in_category_rate: float = 0.85) -> np.ndarray:
    """How likely :func:`make_synthetic`'s sessions make each product the next click after
    each query, from its ``truth.csv``: one row of scores per query row (the query ``-inf``).

    A step after product ``q`` goes, with probability ``a = similar_rate`` (where ``q``'s
    kind has another clickable product), to a clickable product of ``q``'s kind (category
    and product type) uniformly, else with ``in_category_rate`` to the session's category's
    Zipf popularity and otherwise to any clickable product. The session's category, which a
    list built from the query cannot know, is replaced by its posterior given the query,
    ``P(c | q) ∝ in_category_rate·zipf_c(q)·[c = category(q)] + (1 − in_category_rate) /
    |clickable|``. Ranking by these is the **oracle** of an item-to-item list on the shop
    (``prodfusion demo`` prints it beside the lists; ``benchmarks/demo_oracle.py``):
    up to that stand-in, no list built from the query can expect more. Immediate repeats
    (which cleaning drops) only rescale a row.
    """
    kind = truth["kind"].to_numpy()
    clickable = truth["clickable"].to_numpy().astype(bool)
    zipf = truth["zipf_p"].to_numpy().astype(np.float64)
    cats, cat = np.unique(truth["category"].to_numpy(), return_inverse=True)
    n_click = max(int(clickable.sum()), 1)
    rows = np.asarray(query_rows, dtype=np.int64)
    out = np.empty((len(rows), len(truth)))
    for i, q in enumerate(rows):
        variants = (kind == kind[q]) & clickable
        a = similar_rate if variants.sum() > 1 else 0.0
        post = np.full(len(cats), (1 - in_category_rate) / n_click)
        post[cat[q]] += in_category_rate * zipf[q]
        post /= post.sum()
        p = a * variants / max(int(variants.sum()), 1) + (1 - a) * (
            in_category_rate * post[cat] * zipf + (1 - in_category_rate) * clickable / n_click)
        p[q] = -np.inf
        out[i] = p
    return out


# --------------------------------------------------------------------------- titles


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    bad = not is_int(value) or value < low or (high is not None and value > high)
    if bad:
        rng = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise param_error(name, "make_synthetic()", rng, value)


def _zipf_cdf(n: int) -> np.ndarray:
    """Cumulative Zipf weights (exponent 1.1) of ``n`` ranks, as ``rng.choice(n, p=...)``
    computes them from the normalised weights."""
    p = 1.0 / np.arange(1, n + 1) ** 1.1
    cdf = np.cumsum(p / p.sum())
    return cdf / cdf[-1]


def _draw_rank(cdf: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn by ``cdf``: what ``rng.choice(len(cdf), p=...)`` does (one
    ``rng.random()``, a binary search), without recomputing the cumulative weights on every
    call (O(n) per click: 20 min at 1M products). Same draws bit for bit, so the shops of
    earlier sessions are unchanged."""
    return int(np.searchsorted(cdf, rng.random(), side="right"))


def make_synthetic(
    out_dir: str | Path,
    *,
    n_products: int = 2400,
    n_categories: int = 12,
    n_sessions: int = 6000,
    image_size: int = 96,
    missing_image_rate: float = 0.05,
    never_clicked_rate: float = 0.1,
    in_category_rate: float = 0.85,
    n_corrupt_images: int = 2,
    similar_rate: float = 0.0,
    seed: int = 0,
    truth: bool = False,
) -> SyntheticPaths:
    """Write a synthetic shop with planted categories to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created; existing files of the same names are replaced).
    n_products : int
        Products, spread evenly over the categories in a shuffled order.
    n_categories : int
        How many of :data:`CATEGORIES` to use (2 to 16), in that order.
    n_sessions : int
        Sessions written to ``sessions.csv`` (some hold one click or immediate repeats, so
        cleaning has something to do).
    image_size : int
        Side of the square PNG photos in pixels.
    missing_image_rate : float
        Share of products without a usable photo: half have an empty ``image`` cell, half
        name a file that does not exist.
    never_clicked_rate : float
        Share of products that no session clicks.
    in_category_rate : float
        Probability that a click stays in the session's category (the rest is noise).
    n_corrupt_images : int
        Products whose ``image`` names a file that exists but is not an image.
    similar_rate : float
        Probability that a click goes to a close variant of the previous product — same
        category and same product type (the title's noun: "running shoes", "koşu
        ayakkabısı") — as visitors comparing offers do; 0 (default) keeps the earlier
        sessions exactly (no extra random draw).
    seed : int
        Everything is a function of the seed.
    truth : bool
        Also write ``truth.csv``, what the sessions were drawn from, per product:
        ``product_id``, ``category``, ``kind`` (category and product type: a close variant
        shares it), ``clickable`` (False: never clicked) and ``zipf_p`` (its probability in a
        draw from its category's Zipf popularity; 0 for the never clicked). The shop itself
        is the same with or without it (no random draw).

    Returns
    -------
    SyntheticPaths
        ``catalog.csv`` (``product_id`` such as ``"000123"``, ``title``, ``image`` as
        ``images/<id>.png`` or empty, ``category``, ``brand``, ``price``, ``language``
        ``"en"``/``"tr"``), ``images/`` and ``sessions.csv`` (``session_id``, ``product_id``,
        ``timestamp`` as ISO datetimes increasing within a session).
    """
    _check_int("n_categories", n_categories, 2, len(CATEGORIES))
    _check_int("n_products", n_products, 2 * n_categories)
    _check_int("n_sessions", n_sessions, 1)
    _check_int("image_size", image_size, 16, 1024)
    _check_int("n_corrupt_images", n_corrupt_images, 0, n_products)
    for name, value in (("missing_image_rate", missing_image_rate),
                        ("never_clicked_rate", never_clicked_rate),
                        ("in_category_rate", in_category_rate),
                        ("similar_rate", similar_rate)):
        check_real(value, name, "make_synthetic()", low=0, high=1, high_open=True,
                   expected="a float in [0, 1)")

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    cats = CATEGORIES[:n_categories]
    ids = [f"{i + 1:06d}" for i in range(n_products)]
    category = rng.permutation(np.arange(n_products) % n_categories)
    language = np.where(rng.random(n_products) < 0.5, "en", "tr")

    # photos: missing (empty cell or absent file), corrupt, or drawn
    order = rng.permutation(n_products)
    n_missing = int(round(missing_image_rate * n_products))
    no_cell = set(order[: n_missing // 2].tolist())
    no_file = set(order[n_missing // 2 : n_missing].tolist())
    corrupt = set(order[n_missing : n_missing + n_corrupt_images].tolist())
    image_cells = []
    for i, pid in enumerate(ids):
        rel = f"images/{pid}.png"
        target = out / rel
        if i in no_cell:
            image_cells.append("")
            continue
        image_cells.append(rel)
        if i in no_file:
            target.unlink(missing_ok=True)
        elif i in corrupt:
            target.write_bytes(b"this is not a PNG file\n")
        else:
            _draw(cats[category[i]], image_size, rng).save(target, compress_level=1)

    noun = np.zeros(n_products, dtype=np.int64)
    with (out / "catalog.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title", "image", "category", "brand", "price", "language"])
        for i, pid in enumerate(ids):
            c = cats[category[i]]
            price = c.price * float(np.exp(rng.normal(0, 0.35)))
            title, noun[i] = _title(c, language[i], rng)
            w.writerow([pid, title, image_cells[i], c.name,
                        _BRANDS[rng.integers(len(_BRANDS))], f"{price:.2f}", language[i]])

    # clicks: Zipf popularity inside each category, some products never clicked
    clickable = np.ones(n_products, dtype=bool)
    clickable[rng.choice(n_products, int(round(never_clicked_rate * n_products)), replace=False)] = False
    pools, cdfs = [], []
    for c in range(n_categories):
        members = rng.permutation(np.flatnonzero((category == c) & clickable))
        pools.append(members)
        cdfs.append(_zipf_cdf(len(members)))
    everyone = np.flatnonzero(clickable)
    kind = category * 16 + noun  # category and product type
    variants = {int(x): np.flatnonzero((kind == x) & clickable) for x in np.unique(kind)}
    start = dt.datetime(2024, 3, 1)
    starts = np.sort(rng.uniform(0, 30 * 86400, n_sessions))
    with (out / "sessions.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session_id", "product_id", "timestamp"])
        for s in range(n_sessions):
            c = int(rng.integers(n_categories))
            length = 1 if rng.random() < 0.05 else int(min(2 + rng.geometric(0.25), 25))
            t = float(starts[s])
            prev = -1
            for _ in range(length):
                if prev >= 0 and rng.random() < 0.05:
                    item = prev  # a reload: an immediate repeat
                elif similar_rate > 0 and prev >= 0 and rng.random() < similar_rate \
                        and len(variants[int(kind[prev])]) > 1:
                    close = variants[int(kind[prev])]  # a close variant of the previous one
                    item = int(close[rng.integers(len(close))])
                elif rng.random() < in_category_rate and len(pools[c]):
                    item = int(pools[c][_draw_rank(cdfs[c], rng)])
                else:
                    item = int(everyone[rng.integers(len(everyone))])
                stamp = (start + dt.timedelta(seconds=int(t))).isoformat()
                w.writerow([f"s{s + 1:05d}", ids[item], stamp])
                t += float(rng.uniform(5, 120))
                prev = item
    truth_path = None
    if truth:
        zipf_p = np.zeros(n_products)
        for members, cdf in zip(pools, cdfs, strict=True):
            zipf_p[members] = np.diff(np.r_[0.0, cdf])
        truth_path = out / "truth.csv"
        with truth_path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["product_id", "category", "kind", "clickable", "zipf_p"])
            for i, pid in enumerate(ids):
                w.writerow([pid, cats[category[i]].name, int(kind[i]), bool(clickable[i]),
                            repr(float(zipf_p[i]))])
    return SyntheticPaths(
        catalog=out / "catalog.csv",
        interactions=out / "sessions.csv",
        images=images,
        n_products=n_products,
        n_categories=n_categories,
        categories=tuple(c.name for c in cats),
        truth=truth_path,
        similar_rate=float(similar_rate),
        in_category_rate=float(in_category_rate),
    )
