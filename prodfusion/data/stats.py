"""Dataset statistics in the shape of the paper's Table I (``prodfusion stats``).

Examples
--------
>>> import polars as pl
>>> from prodfusion.data import Catalog, Sessions
>>> cat = Catalog(pl.DataFrame({"product_id": ["1", "2"], "title": ["red shoe", "big blue hat"]}))
>>> d = dataset_stats(cat, Sessions.from_lists([["1", "2"], ["2", "1", "2"]]))
>>> d["products"], d["sessions"], d["clicks"], d["title_words"]["max"]
(2, 2, 5, 3)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from prodfusion._checks import check_int
from prodfusion.data.catalog import CATEGORY, ID, TITLE

if TYPE_CHECKING:
    from prodfusion.data.catalog import Catalog
    from prodfusion.data.sessions import Sessions

__all__ = ["dataset_stats", "format_stats", "image_size_stats", "same_category_share",
           "sessions_stay_in_category", "CategoryBrowsing"]

#: ``prodfusion build --category-modality auto``: the category modality where the sessions'
#: steps stay in one category at least this far from chance towards always — ``(share −
#: chance) / (1 − chance)``, Cohen's kappa (:func:`sessions_stay_in_category`; so the share
#: itself is at least this too) …
CATEGORY_AUTO_SHARE = 0.5
#: … counted over at least this many steps.
CATEGORY_AUTO_STEPS = 50


def _summary(values: np.ndarray) -> dict[str, float | int | None]:
    if len(values) == 0:
        return {"min": None, "max": None, "mean": None}
    return {"min": int(values.min()), "max": int(values.max()), "mean": round(float(values.mean()), 2)}


def image_size_stats(
    paths: list[str | None], *, sample: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Image sizes over a seeded random sample of the products that name an image.

    Only the image header is read (Pillow opens files lazily). Returns the sample size, how
    many named files are missing or unreadable, width and height min/max and the most
    common ``"WxH"`` size with its count. Products with no image path are counted in
    ``no_path`` and not sampled. Photos named by URL are counted in ``urls``; those sampled
    are fetched as a build fetches them (:class:`prodfusion.data.photos.PhotoFetcher`, 16 at
    a time), a failed fetch counted as missing and the first named in a warning.
    """
    import io
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image, UnidentifiedImageError

    from prodfusion.data.io import is_url
    from prodfusion.data.photos import PhotoFetcher, PhotoFetchError

    named = [p for p in paths if p]
    out: dict[str, Any] = {"no_path": len(paths) - len(named)}
    n_urls = sum(is_url(p) for p in named)
    if n_urls:
        out["urls"] = n_urls
    rng = np.random.default_rng(seed)
    take = rng.choice(len(named), size=min(sample, len(named)), replace=False) if named else []
    take = sorted(int(i) for i in take)
    fetcher = PhotoFetcher()

    def read(p: str):
        """The photo's bytes (a URL) or its path; a PhotoFetchError or None when missing."""
        if is_url(p):
            try:
                return io.BytesIO(fetcher.fetch(p))
            except PhotoFetchError as exc:
                return exc
        return Path(p) if Path(p).is_file() else None

    with ThreadPoolExecutor(max_workers=16 if n_urls else 1) as pool:
        got = list(pool.map(read, [named[i] for i in take]))
    sizes: list[tuple[int, int]] = []
    missing = unreadable = 0
    first_failure = None
    for i, source in zip(take, got, strict=True):
        if source is None or isinstance(source, PhotoFetchError):
            missing += 1
            if source is not None and first_failure is None:
                first_failure = (named[i], str(source))
            continue
        try:
            with Image.open(source) as im:
                sizes.append(im.size)
        except (UnidentifiedImageError, OSError, ValueError):
            unreadable += 1
    if first_failure is not None:
        logging.getLogger("prodfusion.data").warning(
            "%d of the %d sampled photo URLs could not be fetched; first: %r (%s).",
            sum(isinstance(g, PhotoFetchError) for g in got),
            sum(is_url(named[i]) for i in take), *first_failure)
    out.update(sampled=len(take), missing=missing, unreadable=unreadable)
    if sizes:
        w = np.array([s[0] for s in sizes])
        h = np.array([s[1] for s in sizes])
        (mw, mh), n = Counter(sizes).most_common(1)[0]
        out.update(width_min=int(w.min()), width_max=int(w.max()), height_min=int(h.min()),
                   height_max=int(h.max()), most_common=f"{mw}x{mh}", most_common_count=n)
    return out


def _category_steps(catalog: Catalog, sessions: Sessions) -> pl.DataFrame:
    """The steps between two different consecutive products of a session that both have a
    category: one row each, their categories (``category``, ``_next_category``)."""
    from prodfusion.data.sessions import POSITION, SESSION

    cats = catalog.frame.select(ID, CATEGORY).drop_nulls(CATEGORY)
    return (sessions.frame.select(SESSION, POSITION, ID).sort(SESSION, POSITION)
            .with_columns(pl.col(ID).shift(-1).over(SESSION).alias("_next"))
            .filter(pl.col("_next").is_not_null() & (pl.col("_next") != pl.col(ID)))
            .join(cats, on=ID)
            .join(cats.rename({ID: "_next", CATEGORY: "_next_category"}), on="_next")
            .select(CATEGORY, "_next_category"))


def same_category_share(catalog: Catalog, sessions: Sessions) -> tuple[int, float | None]:
    """How often the next product of a session shares the previous one's category.

    Counted over the steps between two different consecutive products that both have a
    category in ``catalog`` (a co-interaction pair is a two-click session, one step).

    Returns
    -------
    (int, float or None)
        The number of such steps, and the share of them within one category (None for none).

    >>> import polars as pl
    >>> from prodfusion.data import Catalog, Sessions
    >>> cat = Catalog(pl.DataFrame({"product_id": ["1", "2", "3"], "title": ["a", "b", "c"],
    ...                             "category": ["hats", "hats", "shoes"]}))
    >>> same_category_share(cat, Sessions.from_lists([["1", "2", "3"], ["3", "3", "1"]]))
    (3, 0.3333333333333333)
    """
    b = sessions_stay_in_category(catalog, sessions)
    return b.steps, b.share


def _chance(steps: pl.DataFrame) -> float:
    """``Σ_c p_c q_c``: the share of steps that would stay in one category if a step's second
    category were drawn independently of its first (``p``, ``q``: the categories' shares
    among the steps' first and second products)."""
    n = steps.height
    p = steps.group_by(CATEGORY).len().rename({"len": "p"})
    q = steps.group_by("_next_category").len().rename({"_next_category": CATEGORY, "len": "q"})
    both = p.join(q, on=CATEGORY)
    return float((both["p"].cast(pl.Float64) * both["q"]).sum()) / n / n if both.height else 0.0


class CategoryBrowsing(NamedTuple):
    """:func:`sessions_stay_in_category`'s answer."""

    #: whether ``build --category-modality auto`` builds the category modality
    holds: bool
    #: steps between two different products with a category
    steps: int
    #: share of them within one category (None: no step)
    share: float | None
    #: the share independent categories would give (None: no step)
    chance: float | None

    @property
    def beyond_chance(self) -> float | None:
        """``(share − chance) / (1 − chance)`` (Cohen's kappa): how far from chance towards
        "always" the steps stay in one category; None without steps or with one category
        (chance 1: nothing to tell)."""
        if self.share is None or self.chance is None or self.chance >= 1 - 1e-12:
            return None
        return (self.share - self.chance) / (1 - self.chance)


def sessions_stay_in_category(catalog: Catalog, sessions: Sessions) -> CategoryBrowsing:
    """Whether visitors browse within a category: the sessions' steps between two products
    (:func:`same_category_share`) stay in one category at least :data:`CATEGORY_AUTO_SHARE` of
    the way from chance to always (:attr:`CategoryBrowsing.beyond_chance`), over at least
    :data:`CATEGORY_AUTO_STEPS` steps. ``prodfusion build`` and the demo build the category
    and popularity modalities where it holds (``--category-modality auto``).

    The chance correction leaves out a category column that says little: one category for
    every product (every step "stays"), or two that split the catalog 90 / 10 (82 % of
    random steps stay). On the shared data it decides as the share alone did: 85 % of
    DIGINETICA's next views stay (1 % by chance), 21–25 % of H&M's co-purchases and
    customer-day baskets (6 %), 14 % of DIGINETICA's purchases (1 %), 87 % of the demo's
    steps (8 %) (``benchmarks/category_share.py``).

    >>> import polars as pl
    >>> from prodfusion.data import Catalog, Sessions
    >>> one = Catalog(pl.DataFrame({"product_id": [str(i) for i in range(60)],
    ...                             "title": ["t"] * 60, "category": ["all"] * 60}))
    >>> b = sessions_stay_in_category(one, Sessions.from_lists(
    ...     [[str(i), str(i + 1)] for i in range(0, 58)]))
    >>> b.holds, b.steps, b.share, b.chance, b.beyond_chance
    (False, 58, 1.0, 1.0, None)
    """
    if not catalog.has_categories:
        return CategoryBrowsing(False, 0, None, None)
    steps = _category_steps(catalog, sessions)
    if not steps.height:
        return CategoryBrowsing(False, 0, None, None)
    share = float((steps[CATEGORY] == steps["_next_category"]).mean())
    out = CategoryBrowsing(False, steps.height, share, _chance(steps))
    kappa = out.beyond_chance
    return out._replace(holds=out.steps >= CATEGORY_AUTO_STEPS and kappa is not None
                        and kappa >= CATEGORY_AUTO_SHARE)


def dataset_stats(
    catalog: Catalog | None,
    sessions: Sessions | None,
    *,
    image_sample: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The paper's Table I for one dataset.

    Parameters
    ----------
    catalog : Catalog or None
        Products: counts, categories, title lengths in words and image sizes.
    sessions : Sessions or None
        Cleaned sessions: sessions, clicks, clicks per session, products clicked and the
        cleaning report.
    image_sample : int
        How many image files to open (seeded random sample; 0 skips images).
    seed : int
        Seed of the image sample.

    Returns
    -------
    dict
        Keys present for what was given: ``products``, ``categories``, ``title_words``
        (min/max/mean over the products with a title), ``products_without_title``, ``images`` (see :func:`image_size_stats`), ``sessions``,
        ``clicks``, ``clicks_per_session`` (min/max/mean), ``products_clicked``,
        ``products_never_clicked`` (both given), ``cleaning`` (the :class:`SessionReport`),
        ``next_in_same_category`` (both given, with categories: :func:`same_category_share`
        as ``steps`` and ``share``, with the ``chance`` and ``beyond_chance`` of
        :func:`sessions_stay_in_category`).
    """
    check_int(image_sample, "image_sample", "dataset_stats()", low=0)
    out: dict[str, Any] = {}
    if catalog is not None:
        out["products"] = len(catalog)
        if catalog.has_categories:
            out["categories"] = catalog.frame[CATEGORY].n_unique() - int(
                catalog.frame[CATEGORY].null_count() > 0
            )
        # words = runs of non-space characters; a product without a title is counted apart
        words = catalog.frame.select(
            pl.col(TITLE).str.extract_all(r"\S+").list.len()
        ).to_series()
        out["title_words"] = _summary(words.drop_nulls().filter(words.drop_nulls() > 0)
                                      .to_numpy())
        out["products_without_title"] = int(words.null_count() + (words == 0).sum())
        if image_sample:
            out["images"] = image_size_stats(catalog.image_paths, sample=image_sample, seed=seed)
    if sessions is not None:
        out["sessions"] = len(sessions)
        out["clicks"] = sessions.n_clicks
        out["clicks_per_session"] = _summary(sessions.lengths)
        clicked = sessions.frame[ID].unique()
        out["products_clicked"] = len(clicked)
        if catalog is not None:
            out["products_never_clicked"] = int((~catalog.frame[ID].is_in(clicked.implode())).sum())
        out["cleaning"] = sessions.report.as_dict()
        if catalog is not None and catalog.has_categories:
            b = sessions_stay_in_category(catalog, sessions)
            out["next_in_same_category"] = {
                "steps": b.steps, **{name: None if x is None else round(x, 4) for name, x in
                                     (("share", b.share), ("chance", b.chance),
                                      ("beyond_chance", b.beyond_chance))}}
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def format_stats(d: dict[str, Any]) -> str:
    """An aligned two-column text table of :func:`dataset_stats` output (nested keys dotted).

    Examples
    --------
    >>> print(format_stats({"products": 11800, "title_words": {"min": 1, "mean": 2.9}}))
    products          11,800
    title_words.min        1
    title_words.mean    2.90
    """
    rows = []
    for name, value in _flatten(d):
        if isinstance(value, bool) or value is None:
            text = "-" if value is None else str(value)
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, float):
            text = f"{value:,.2f}"
        else:
            text = str(value)
        rows.append((name, text))
    if not rows:
        return ""
    wn = max(len(n) for n, _ in rows)
    wv = max(len(v) for _, v in rows)
    return "\n".join(f"{n:<{wn}}  {v:>{wv}}" for n, v in rows)
