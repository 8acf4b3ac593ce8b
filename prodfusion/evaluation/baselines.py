"""Reference baselines that a team would try before prodfusion: every report shows them.

* ``cooc`` — item-to-item co-occurrence counts in the training sessions (the SIMS idea):
  ``score(a, b)`` = number of training sessions holding both ``a`` and ``b``. Products never
  seen with ``a`` are not recommended (the list is shorter than ``k``).
* ``tfidf`` — character 3–5-gram TF-IDF of the titles (``char_wb``, fitted on the catalog),
  cosine similarity. Titles sharing no n-gram are not recommended.
* ``popular`` — the most clicked training products, the same list for every query.
* ``cooc+tfidf`` — the co-occurrence list, filled up to ``k`` with TF-IDF neighbours.
* ``cooc+category`` (for catalogs with categories: in the default reports of those since the
  forty-second session, on request otherwise) — the
  co-occurrence list, filled up to ``k`` with the most clicked training products of the
  query's category (then the rest of that category by row): what a team with categories and
  no titles would try first; the reference for the ``category`` modality.
* ``popular+category`` (for catalogs with categories, likewise) — the most clicked training
  products of the query's category (then the rest of that category by row), no
  co-occurrence: "the bestsellers of this category", the simplest list a shop with
  categories shows (twenty-sixth session; on DIGINETICA's views it beat ``cooc+category``).

Ties are broken by catalog row (ascending), so every ranking here can be computed by hand.
They have the ``recommend(rec, query_rows, k, diff_code=None)`` method of
:class:`prodfusion.evaluation.retrieval.Variant`, so ``evaluate retrieval`` and ``replay``
score them exactly like prodfusion's configurations. The training sessions are the ones the
evaluation retrained Prod2Vec on (``rec.train_sessions_``, set by ``heldout_recommender``).

Examples
--------
>>> import polars as pl
>>> from prodfusion.data.catalog import Catalog
>>> from prodfusion.data.sessions import Sessions
>>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"], "title": ["x", "y", "z"]}))
>>> cooc_matrix(Sessions.from_lists([["a", "b"], ["a", "b", "c"]]), cat).toarray().tolist()
[[0.0, 2.0, 1.0], [2.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from prodfusion.encoders.lexical import tfidf_matrix
from prodfusion.errors import ParameterError, param_error

__all__ = ["REFERENCES", "ON_REQUEST", "Reference", "cooc_matrix", "popularity", "tfidf_matrix",
           "tfidf_svd"]

REFERENCES: tuple[str, ...] = ("cooc", "tfidf", "popular", "cooc+tfidf")
#: References that need categories: in default reports where the catalog has them, and
#: nameable in any variant list.
ON_REQUEST: tuple[str, ...] = ("cooc+category", "popular+category")

#: Queries scored per block (block × n float64 must stay small).
_BLOCK = 512


def _session_rows(sessions: Any, catalog: Any) -> tuple[np.ndarray, np.ndarray]:
    """(session index, catalog row) of every click whose product is in the catalog."""
    f = sessions.frame
    rows, ok = catalog.lookup(f["product_id"].to_list())
    sess = np.repeat(np.arange(len(sessions)), sessions.lengths)
    return sess[ok], rows[ok]


def cooc_matrix(sessions: Any, catalog: Any):
    """Sparse ``(n, n)`` float64: sessions holding both products (diagonal 0)."""
    from scipy import sparse

    n = len(catalog)
    s, r = _session_rows(sessions, catalog)
    b = sparse.csr_matrix((np.ones(len(s)), (s, r)), shape=(len(sessions), n))
    b.data[:] = 1.0  # a product clicked twice in a session counts once
    c = (b.T @ b).tocsr()
    c.setdiag(0.0)
    c.eliminate_zeros()
    return c


def popularity(sessions: Any, catalog: Any) -> np.ndarray:
    """Training clicks per catalog row (float64)."""
    _, r = _session_rows(sessions, catalog)
    return np.bincount(r, minlength=len(catalog)).astype(np.float64)


def tfidf_svd(titles: list[str], *, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Dense ``(n, dim)`` title vectors: TF-IDF reduced by TruncatedSVD (for clustering)."""
    from sklearn.decomposition import TruncatedSVD

    x = tfidf_matrix(titles)
    dim = int(max(1, min(dim, x.shape[1] - 1, x.shape[0] - 1)))
    return TruncatedSVD(n_components=dim, random_state=seed).fit_transform(x).astype(np.float32)


def _topk_sparse(scores_of, query_rows: np.ndarray, n: int, k: int, diff_code) -> np.ndarray:
    """Top-``k`` rows with a positive score per query; ties by row ascending; ``-1`` pads."""
    from prodfusion.index.topk import topk_rows

    q = np.asarray(query_rows, dtype=np.int64)
    out = np.full((len(q), k), -1, dtype=np.int64)
    # Scores here are counts or cosines in [0, 1]: a tie-break of row·1e-9/n keeps their
    # order (counts differ by ≥ 1; distinct cosines differ by far more than 1e-9).
    tie = np.arange(n, dtype=np.float64) * (1e-9 / max(n, 1))
    for lo in range(0, len(q), _BLOCK):
        rows = q[lo : lo + _BLOCK]
        s = np.asarray(scores_of(rows), dtype=np.float64)
        s = np.where(s > 0, s - tie[None, :], -np.inf)
        s[np.arange(len(rows)), rows] = -np.inf
        if diff_code is not None:
            qc = diff_code[rows]
            s[(diff_code[None, :] == qc[:, None]) & (qc[:, None] >= 0)] = -np.inf
        out[lo : lo + len(rows)] = topk_rows(s, k)[0]
    return out


def _fill(first: np.ndarray, second: np.ndarray, k: int) -> np.ndarray:
    """``first``'s lists, completed up to ``k`` with ``second``'s rows not already in them."""
    out = first.copy()
    for i in np.flatnonzero((first < 0).any(axis=1)):
        have = [int(r) for r in first[i] if r >= 0]
        seen = set(have)
        for r in second[i]:
            if len(have) >= k:
                break
            if r >= 0 and int(r) not in seen:
                have.append(int(r))
                seen.add(int(r))
        out[i] = have + [-1] * (k - len(have))
    return out


@dataclass(frozen=True)
class Reference:
    """One reference baseline (see the module docstring), scored like a ``Variant``.

    >>> Reference("cooc+tfidf").label
    'cooc+tfidf'
    """

    kind: str
    name: str | None = None
    model: str | None = None

    fusion: ClassVar[str] = "reference"
    modalities: ClassVar[tuple[str, ...]] = ()
    fallback: ClassVar[None] = None

    def __post_init__(self) -> None:
        if self.kind not in REFERENCES + ON_REQUEST:
            raise param_error("kind", "Reference()", f"one of {list(REFERENCES + ON_REQUEST)}",
                              self.kind)

    @property
    def label(self) -> str:
        return self.name or self.kind

    def as_dict(self) -> dict:
        return {"reference": self.kind, "label": self.label, "fusion": "reference",
                "modalities": [], "fallback": None, "name": self.name, "model": self.model}

    # ------------------------------------------------------------------ state per recommender
    @staticmethod
    def _cache(rec: Any) -> dict:
        c = getattr(rec, "_reference_cache", None)
        if c is None:
            c = {}
            rec._reference_cache = c
        return c

    def _train(self, rec: Any):
        train = getattr(rec, "train_sessions_", None)
        if train is None or not len(train):
            raise ParameterError(
                f"The {self.kind!r} baseline needs the training sessions; this evaluation has "
                "none (pass --interactions and/or --pairs)."
            )
        return train

    def _cooc(self, rec: Any):
        c = self._cache(rec)
        if "cooc" not in c:
            c["cooc"] = cooc_matrix(self._train(rec), rec.catalog)
        return c["cooc"]

    def _tfidf(self, rec: Any):
        c = self._cache(rec)
        if "tfidf" not in c:
            c["tfidf"] = tfidf_matrix(rec.catalog.titles)
        return c["tfidf"]

    def _scorers(self, rec: Any) -> list:
        """One score function per level, served first to last (``rows → (len(rows), n)``;
        a score ≤ 0 is never served): a list from the first, filled from the next."""
        n = len(rec.catalog)
        if self.kind == "popular":
            pop = popularity(self._train(rec), rec.catalog)
            return [lambda rows: np.broadcast_to(pop, (len(rows), n))]
        out = []
        if self.kind in ("cooc", "cooc+tfidf", "cooc+category"):
            c = self._cooc(rec)
            out.append(lambda rows: c[rows].toarray())
        if self.kind in ("tfidf", "cooc+tfidf"):
            x = self._tfidf(rec)
            out.append(lambda rows: (x[rows] @ x.T).toarray())
        if self.kind in ("cooc+category", "popular+category"):
            if not rec.catalog.has_categories:
                raise ParameterError(f"The {self.kind!r} baseline needs the catalog's "
                                     "categories (`prodfusion build --category-col COLUMN`).")
            codes = rec.catalog.codes("category")
            pop = popularity(self._train(rec), rec.catalog) + 1.0  # > 0: every member counts

            def same_category(rows):
                qc = codes[rows][:, None]
                return np.where((codes[None, :] == qc) & (qc >= 0), pop[None, :], 0.0)

            out.append(same_category)
        return out

    def recommend(self, rec: Any, query_rows: np.ndarray, k: int, *,
                  diff_code: np.ndarray | None = None) -> np.ndarray:
        """Top-``k`` catalog rows per query row (``-1`` pads), best first."""
        n = len(rec.catalog)
        q = np.asarray(query_rows, dtype=np.int64)
        lists = [_topk_sparse(f, q, n, k, diff_code) for f in self._scorers(rec)]
        out = lists[0]
        for nxt in lists[1:]:
            out = _fill(out, nxt, k)
        return out

    def level_scorers(self, rec: Any, *, diff_code: np.ndarray | None = None) -> list:
        """The scores :meth:`recommend` ranks by, level by level, ``-inf`` where a candidate
        is never served (as :meth:`prodfusion.variants.Variant.level_scorers`)."""
        from prodfusion.index.topk import Filters

        flt = Filters(diff_code=diff_code)

        def scorer(f):
            def score(rows: np.ndarray) -> np.ndarray:
                rows = np.asarray(rows, dtype=np.int64)
                s = np.asarray(f(rows), dtype=np.float64)
                return flt.apply(np.where(s > 0, s, -np.inf), rows)
            return score

        return [scorer(f) for f in self._scorers(rec)]
