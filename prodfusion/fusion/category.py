"""The ``category`` modality: whether two products share the catalog's category, as a similarity.

``category(i, j) = 1`` when products ``i`` and ``j`` have the same value in the catalog's
category column (``--category-col``) and ``0`` when they have different ones. A product
without a category lacks the modality (like a product without a photo lacks ``image``).

Why a modality and not only a filter: a filter (``same_category``) drops every product of
another category, while next views and co-purchases often cross categories; as a weighted
term of intermediate fusion the category lifts same-category candidates without excluding
the others, and orders what the other modalities leave tied — e.g. the many products with
no co-occurrence at all, or a product with no sessions yet (cold start), which otherwise only
its title and photo can place. Fused with ``cooc``, clicks and ``popularity`` on DIGINETICA's
whole catalog, the tuned fusion found 0.317 of the held-out next views in its top 15, against
0.217 for co-occurrence alone (``docs/results/README.md``).

**Category paths** (``build --category-paths``, ``Recommender(category_paths=True)``). A
category column of taxonomy paths (Shopify's and Google Shopping's ``Apparel & Accessories >
Clothing > Shirts & Tops``) is read as such where most values hold :data:`PATH_SEP`:
``category(i, j)`` is then the number of leading levels the two paths share
over the deeper one's depth — 1 for the same path, 2/3 for two leaves under one parent of a
3-level path, 0 when even the first level differs — so a product in a sibling category is
nearer than one in another branch (flat, such values are as unrelated as any two). The
model records it (``sep`` in the manifest): folders written before keep the flat match. Not
the default: on H&M it brought no gain — every build weighed the category 0, and the
category alone ranked as read flat, H&M's types holding more products than a list
(``benchmarks/category_paths.py``).

It is a pairwise score like ``cooc`` (:mod:`prodfusion.fusion.cooc`): only intermediate
fusion can use it, its calibration statistics are exact (:meth:`CategoryMatch.stats`), and it
is rebuilt from the catalog when a model folder is loaded (nothing but the catalog is
stored). The category column is also what the clustering evaluation scores against, so
``evaluate clustering`` leaves this modality out (it would recognise its own labels).

Examples
--------
>>> import polars as pl
>>> from prodfusion.data.catalog import Catalog
>>> cat = Catalog(pl.DataFrame({"product_id": list("abcd"), "title": list("wxyz"),
...                             "category": ["s", "s", "t", None]}))
>>> c = CategoryMatch.from_catalog(cat)
>>> c.mask.tolist()
[True, True, True, False]
>>> c.scores([0], [1, 2, 3]).tolist()
[[1.0, 0.0, 0.0]]
>>> [round(x, 4) for x in c.stats()]  # 2 of the 6 ordered pairs match: p = 1/3
[0.3333, 0.4714]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prodfusion.errors import DataError

__all__ = ["CategoryMatch", "CATEGORY_MODALITY", "PATH_SEP"]

CATEGORY_MODALITY = "category"
#: The separator of a category path's levels (``A > B > C``).
PATH_SEP = ">"
#: A category column is read as paths where at least this share of its values hold
#: :data:`PATH_SEP` (``from_catalog(sep="auto")``).
PATH_SHARE = 0.5
#: Ordered pairs sampled for a path modality's calibration statistics.
STATS_PAIRS = 200_000


def path_sep(values: list) -> str | None:
    """:data:`PATH_SEP` where at least :data:`PATH_SHARE` of the present ``values`` hold it
    (a column of category paths), else ``None``."""
    present = [v for v in values if v is not None]
    if not present or sum(PATH_SEP in str(v) for v in present) < PATH_SHARE * len(present):
        return None
    return PATH_SEP


def path_prefixes(values: list, sep: str, depth: int) -> list:
    """Each value's first ``depth`` levels (``None`` stays ``None``).

    >>> path_prefixes(["A > B > C", "A>D", None], ">", 1)
    ['A', 'A', None]
    """
    return [None if v is None else f" {sep} ".join(
        [p.strip() for p in str(v).split(sep) if p.strip()][:depth]) for v in values]


def path_levels(values: list, sep: str) -> list[np.ndarray]:
    """Per depth ``l``, an int64 code per value of its first ``l + 1`` levels (levels split at
    ``sep`` and stripped, empty ones dropped), ``-1`` where the value is missing or not that
    deep.

    >>> [x.tolist() for x in path_levels(["A > B", "A>C", "A", None, "D > B"], ">")]
    [[0, 0, 0, -1, 1], [0, 1, -1, -1, 2]]
    """
    parts = [[p.strip() for p in str(v).split(sep) if p.strip()] if v is not None else []
             for v in values]
    depth = max((len(p) for p in parts), default=0)
    out = []
    for lv in range(depth):
        seen: dict[tuple, int] = {}
        out.append(np.array([seen.setdefault(tuple(p[: lv + 1]), len(seen))
                             if len(p) > lv else -1 for p in parts], np.int64))
    return out


class CategoryMatch:
    """Same-category similarities over one catalog (see the module docstring).

    Parameters
    ----------
    codes : int array (n,)
        The category code of each product (:meth:`Catalog.codes`); ``-1`` = no category.
    """

    modality = CATEGORY_MODALITY
    spec = "category"

    def __init__(self, codes: np.ndarray, levels: list[np.ndarray] | None = None,
                 sep: str | None = None) -> None:
        self.codes = np.asarray(codes, dtype=np.int64)
        if self.codes.ndim != 1:
            raise DataError("category codes must be one integer per product.")
        self.mask = self.codes >= 0
        present = self.codes[self.mask]
        self.sizes = np.bincount(present) if len(present) else np.zeros(0, np.int64)
        self.info = {"n_present": self.n_present, "n_categories": int((self.sizes > 0).sum())}
        # category paths (module docstring): each depth's prefix codes, each product's depth
        self.sep = sep if levels else None
        self.levels = [np.asarray(x, np.int64) for x in levels] if levels else None
        if self.levels is not None:
            self.depth = sum((x >= 0).astype(np.int64) for x in self.levels)
            self.info["levels"] = len(self.levels)
            self.info["sep"] = sep
        self._members: dict[int, np.ndarray] = {}
        self._prior: np.ndarray | None = None  # the prior _by_prior was sorted by
        self._by_prior: dict[int, np.ndarray] = {}

    @classmethod
    def from_catalog(cls, catalog: Any, sep: str | None = "auto") -> CategoryMatch:
        """From the catalog's category column; refuses a catalog without categories.

        ``sep``: the separator of category paths' levels; ``"auto"`` (a new build)
        :data:`PATH_SEP` where at least :data:`PATH_SHARE` of the values hold it (else
        flat); ``None`` flat (a folder whose manifest records none)."""
        codes = catalog.codes("category")
        if codes is None or not (codes >= 0).any():
            raise DataError(
                "the category modality needs the catalog's categories: a 'category' column with "
                "values (--category-col names it).")
        if sep is None:
            return cls(codes)
        import polars as pl

        values = catalog.frame["category"].cast(pl.Utf8).to_list()
        if sep == "auto":
            sep = path_sep(values)
            if sep is None:
                return cls(codes)
        levels = path_levels(values, sep)
        if len(levels) < 2:  # one level: the flat match
            return cls(codes)
        return cls(codes, levels, sep)

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.codes)

    @property
    def n_present(self) -> int:
        return int(self.mask.sum())

    def take(self, rows: np.ndarray) -> CategoryMatch:
        """The modality restricted to ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        return CategoryMatch(self.codes[rows], None if self.levels is None else
                             [x[rows] for x in self.levels], self.sep)

    # ------------------------------------------------------------------ scoring
    def scores(self, query_rows, cand_rows=None) -> np.ndarray:
        """Dense ``(q, c)`` float32: 1 where both have the same category, else 0 — for
        category paths, the share of the deeper path's levels the two share (callers combine
        it with :attr:`mask` for presence)."""
        qr = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
        cr = slice(None) if cand_rows is None else np.asarray(cand_rows, np.int64)
        if self.levels is None:
            q, c = self.codes[qr], self.codes[cr]
            return ((q[:, None] == c[None, :]) & (q[:, None] >= 0)).astype(np.float32)
        shared = np.zeros((len(qr), len(self.codes[cr])), np.float32)
        for x in self.levels:  # a shared prefix of depth l shares every shallower one
            q = x[qr][:, None]
            shared += (q == x[cr][None, :]) & (q >= 0)
        deeper = np.maximum(self.depth[qr][:, None], self.depth[cr][None, :])
        return np.divide(shared, deeper, out=np.zeros_like(shared), where=deeper > 0)

    def neighbours(self, row: int, limit: int | None = None,
                   prior: np.ndarray | None = None) -> np.ndarray:
        """The other products of ``row``'s category (all score 1): row ascending, or with
        ``prior`` (one score per product, e.g. popularity) the ``limit`` highest by it
        first (ties: row ascending). Category paths: those of its own path first, then those
        sharing one level less, and so on (each part so ordered), down to those sharing the
        first level only."""
        code = int(self.codes[row])
        if code < 0:
            return np.zeros(0, np.int64)
        if self.levels is None:
            return self._part(("leaf", code), self.codes, code, row, limit, prior)
        parts, n = [], 0
        for lv in range(int(self.depth[row]) - 1, -1, -1):
            x = self.levels[lv]
            # a level's first ``limit`` hold every one listed from it: the deeper ones it
            # leaves out (already listed) number ``n`` at most
            got = self._part((lv, int(x[row])), x, int(x[row]), row, limit, prior)
            if lv + 1 < self.depth[row]:  # those sharing exactly lv + 1 levels: not deeper
                nxt = self.levels[lv + 1]
                got = got[nxt[got] != nxt[row]]
            parts.append(got)
            n += len(got)
            if limit is not None and n >= limit:
                break
        out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return out if limit is None else out[:limit]

    def _part(self, key: tuple, codes: np.ndarray, code: int, row: int, limit, prior):
        """The products with ``codes == code`` but ``row`` (cached per code; by ``prior``,
        once per code and prior)."""
        if key not in self._members:
            self._members[key] = np.flatnonzero(codes == code).astype(np.int64)
        out = self._members[key]
        if prior is not None:  # the part's order by the prior, once per part
            if prior is not self._prior:
                self._prior, self._by_prior = prior, {}
            if key not in self._by_prior:
                self._by_prior[key] = out[np.lexsort((out, -np.asarray(prior)[out]))]
            out = self._by_prior[key]
        out = out[out != row]
        return out if limit is None else out[:limit]

    def stats(self) -> tuple[float, float]:
        """Exact mean and standard deviation over ordered pairs of distinct products that both
        have a category: ``p = Σ_c n_c (n_c − 1) / (m (m − 1))``, ``sd = sqrt(p (1 − p))``."""
        m = float(self.n_present)
        if m < 2:
            return 0.0, 1.0
        if self.levels is not None:  # category paths: a seeded sample of ordered pairs
            rows = np.flatnonzero(self.mask)
            rng = np.random.default_rng(0)
            a = rows[rng.integers(len(rows), size=STATS_PAIRS)]
            b = rows[rng.integers(len(rows), size=STATS_PAIRS)]
            a, b = a[a != b], b[a != b]
            shared = sum(((x[a] == x[b]) & (x[a] >= 0)).astype(np.float64)
                         for x in self.levels)
            v = shared / np.maximum(self.depth[a], self.depth[b])
            sd = float(v.std())
            return float(v.mean()), sd if sd > 1e-12 else 1.0
        s = self.sizes.astype(np.float64)
        p = float((s * (s - 1)).sum() / (m * (m - 1)))
        sd = float(np.sqrt(max(p * (1 - p), 0.0)))
        return p, sd if sd > 1e-12 else 1.0

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Any) -> dict:
        """Nothing to write (the catalog holds the categories); the manifest entry (with
        ``sep`` for category paths: a folder without it loads flat)."""
        return {"spec": self.spec, "n_present": self.n_present, "info": self.info,
                **({"sep": self.sep} if self.levels is not None else {})}
