"""The ``ngrams`` modality: the exact cosine of the titles' character n-gram TF-IDF.

``ngrams(i, j) = x_i · x_j`` with ``x`` the L2-normalised TF-IDF of the character 3–5-grams
(``char_wb``) of the titles — the vectors of the ``tfidf`` reference baseline
(:func:`prodfusion.encoders.lexical.tfidf_matrix`), but of the titles in Unicode NFKC
(:func:`~prodfusion.encoders.lexical.normalize_title`: full-width and ASCII letters,
half-width and full-width katakana read alike) and with neighbouring pairs of Chinese,
Japanese or Korean characters as terms too
(:func:`~prodfusion.encoders.lexical.title_terms`) — kept **sparse** and scored exactly. A
product whose title has no n-gram lacks the modality.

Why beside ``lexical``: ``lexical`` is the same TF-IDF reduced by TruncatedSVD to 256
dense dimensions, which every fusion and index can use, but on H&M's 11,800 titles its 15
nearest products hold only about half of the exact TF-IDF's 15 nearest
(``benchmarks/lexical_fidelity.py``): brand, size and model tokens are blurred, which is
why ``lexical`` alone scores below the ``tfidf`` reference. ``ngrams`` keeps them. It is
a pairwise score like ``cooc`` (:mod:`prodfusion.fusion.cooc`): only intermediate fusion
(weights or trees) can use it; the approximate search adds each query's exact n-gram
neighbours to the candidates and scores every candidate exactly. It is fitted on the
catalog's titles (vocabulary and IDF kept, so products added later are encoded in the same
space) and stored sparse in the model folder (``ngrams.npz``).

Examples
--------
>>> import polars as pl
>>> from prodfusion.data.catalog import Catalog
>>> cat = Catalog(pl.DataFrame({"product_id": list("abcd"),
...                             "title": ["red shirt", "red shirts", "blue hat", None]}))
>>> g = TitleNgrams.from_titles(cat.titles)
>>> g.mask.tolist()
[True, True, True, False]
>>> g.neighbours(0).tolist()        # 'red shirts' shares most n-grams with 'red shirt'
[1]
>>> bool(g.scores([0], [1])[0, 0] > 0.5), float(g.scores([0], [2])[0, 0])
(True, 0.0)
>>> new = g.extended(["red shirt"])  # a product added later: the same vector as row 0
>>> round(float(new.scores([4], [0])[0, 0]), 5)
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prodfusion.errors import DataError, ModelError

__all__ = ["TitleNgrams", "NGRAMS"]

NGRAMS = "ngrams"

#: Random pairs the calibration's mean and spread are estimated on when there are more
#: ordered pairs than this (fewer: every pair, exactly).
STATS_PAIRS = 200_000


class TitleNgrams:
    """Exact character n-gram TF-IDF similarities over one catalog (module docstring).

    Parameters
    ----------
    matrix : sparse (n, V)
        L2-normalised TF-IDF rows (a row without n-grams is empty: the product lacks the
        modality).
    vocabulary : sequence of str
        The n-grams, in column order.
    idf : array (V,)
        Their inverse document frequencies (what encodes titles added later).
    normalize : bool
        The titles were read through
        :func:`~prodfusion.encoders.lexical.normalize_title` (spec
        ``ngrams:tfidf-nfkc-char3-5``); ``False``: lower-cased only, as model folders
        written before the fifty-first session were (spec ``ngrams:tfidf-char3-5``).
    """

    modality = NGRAMS
    FILE = "ngrams.npz"

    def __init__(self, matrix: Any, vocabulary: Sequence[str], idf: np.ndarray, *,
                 normalize: bool = True) -> None:
        from scipy import sparse

        self.normalize = bool(normalize)
        self.spec = f"ngrams:tfidf-{'nfkc-' if normalize else ''}char3-5"

        m = sparse.csr_matrix(matrix, dtype=np.float32)
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)
        if m.shape[1] != len(self.vocabulary) or len(self.idf) != len(self.vocabulary):
            raise DataError(f"ngrams: a matrix of {m.shape[1]} columns, {len(self.vocabulary)} "
                            f"n-grams and {len(self.idf)} IDF values disagree.")
        m.sort_indices()
        self.matrix = m
        self._t = None  # the transpose, made on first use
        self._vec = None  # the vectorizer of this vocabulary and IDF, made on first use
        self.mask = np.asarray(m.getnnz(axis=1) > 0)
        self.info = {"n_ngrams": len(self.vocabulary), "n_present": self.n_present}
        self._stats: tuple[float, float] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_titles(cls, titles: Sequence[str | None], *, normalize: bool = True) -> TitleNgrams:
        """Fit the n-gram vocabulary and IDF on ``titles`` and encode them."""
        from prodfusion.encoders.lexical import _vectorizer

        vec = _vectorizer(normalize=normalize)
        texts = [t or "" for t in titles]
        if not any(t.strip() for t in texts):
            raise DataError("the ngrams modality needs titles: no product has one.")
        x = vec.fit_transform(texts).tocsr()
        return cls(x, vec.get_feature_names_out().tolist(), vec.idf_, normalize=normalize)

    def transform(self, titles: Sequence[str | None]):
        """TF-IDF rows of ``titles`` in this modality's space (n-grams it never saw ignored)."""
        from prodfusion.encoders.lexical import _vectorizer

        if self._vec is None:
            self._vec = _vectorizer(vocabulary={t: i for i, t in enumerate(self.vocabulary)},
                                    idf=self.idf, normalize=self.normalize)
        return self._vec.transform([t or "" for t in titles]).tocsr().astype(np.float32)

    def extended(self, titles: Sequence[str | None]) -> TitleNgrams:
        """The modality with products appended, encoded from their ``titles``."""
        from scipy import sparse

        rows = self.transform(titles) if len(titles) else \
            sparse.csr_matrix((0, len(self.vocabulary)), dtype=np.float32)
        return TitleNgrams(sparse.vstack([self.matrix, rows]).tocsr(), self.vocabulary,
                           self.idf, normalize=self.normalize)

    def replaced(self, rows: np.ndarray, titles: Sequence[str | None]) -> TitleNgrams:
        """The modality with the products at ``rows`` re-encoded from their new ``titles``."""
        from scipy import sparse

        rows = np.asarray(rows, dtype=np.int64)
        pick = np.arange(len(self))  # row r of the result: old row r, or new row i
        pick[rows] = len(self) + np.arange(len(rows))
        both = sparse.vstack([self.matrix, self.transform(titles)]).tocsr()
        return TitleNgrams(both[pick], self.vocabulary, self.idf, normalize=self.normalize)

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_present(self) -> int:
        return int(self.mask.sum())

    def take(self, rows: np.ndarray) -> TitleNgrams:
        """The modality restricted to ``rows`` (in that order)."""
        return TitleNgrams(self.matrix[np.asarray(rows, dtype=np.int64)], self.vocabulary,
                           self.idf, normalize=self.normalize)

    # ------------------------------------------------------------------ scoring
    def _transposed(self):
        if self._t is None:
            self._t = self.matrix.T.tocsr()
        return self._t

    def row_scores(self, row: int) -> np.ndarray:
        """Exact cosines of product ``row`` to every product, dense ``(n,)`` float32.

        Only the postings of the row's own n-grams are read (rows of the transposed matrix)
        and summed in one sparse matrix–vector product: the same float32 sums, term by term
        in column order, as the sparse product ``x_row · Xᵀ``, bit for bit
        (``tests/fusion/test_ngrams.py``), and several times faster on a million titles
        (``docs/benchmarks/ngrams_scale.md``), where a title shares an n-gram with a fifth to
        two fifths of the catalog and the sparse product's bookkeeping, not the arithmetic,
        dominated.
        """
        m = self.matrix
        a, b = m.indptr[int(row)], m.indptr[int(row) + 1]
        if a == b:
            return np.zeros(m.shape[0], np.float32)
        out = self._transposed()[m.indices[a:b]].T @ m.data[a:b]
        return np.asarray(out, dtype=np.float32)

    def scores(self, query_rows, cand_rows=None) -> np.ndarray:
        """Dense ``(q, c)`` float32 cosines (0 where the titles share no n-gram; callers
        combine them with :attr:`mask` for presence); every product when ``cand_rows`` is
        None (:meth:`row_scores`, row by row)."""
        q = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
        if cand_rows is None:
            out = np.empty((len(q), len(self)), np.float32)
            for j, r in enumerate(q):
                out[j] = self.row_scores(r)
        else:
            block = self.matrix[q] @ self.matrix[np.asarray(cand_rows, np.int64)].T
            out = np.asarray(block.toarray(), dtype=np.float32)
        return np.minimum(out, 1.0, out=out)  # float rounding of a title with itself

    def neighbours(self, row: int, limit: int | None = None) -> np.ndarray:
        """Rows sharing an n-gram with ``row``, highest cosine first (ties: row ascending),
        ``row`` itself left out; the first ``limit`` of them if given."""
        s = self.row_scores(row)
        s[int(row)] = 0.0
        cols = np.flatnonzero(s > 0)
        vals = s[cols]
        if limit is not None and len(cols) > limit:  # every row tied with the limit-th kept
            kth = np.partition(vals, len(vals) - limit)[len(vals) - limit]
            keep = vals >= kth
            cols, vals = cols[keep], vals[keep]
        out = cols[np.lexsort((cols, -vals))]
        return out if limit is None else out[:limit]

    def stats(self) -> tuple[float, float]:
        """Mean and standard deviation of the cosine over ordered pairs of distinct present
        products (the z-score calibration's ``μ``, ``σ``): exact up to
        :data:`STATS_PAIRS` pairs, else over that many random pairs (seed 0)."""
        if self._stats is not None:
            return self._stats
        present = np.flatnonzero(self.mask)
        m = len(present)
        if m < 2:
            self._stats = (0.0, 1.0)
            return self._stats
        if m * (m - 1) <= STATS_PAIRS:
            x = self.matrix[present]
            g = np.asarray((x @ x.T).toarray(), np.float64)
            vals = g[~np.eye(m, dtype=bool)]
        else:
            rng = np.random.default_rng(0)
            a = rng.integers(0, m, STATS_PAIRS)
            b = rng.integers(0, m - 1, STATS_PAIRS)
            b = np.where(b >= a, b + 1, b)  # distinct
            xa, xb = self.matrix[present[a]], self.matrix[present[b]]
            vals = np.asarray(xa.multiply(xb).sum(axis=1), np.float64).ravel()
        mu, sd = float(vals.mean()), float(vals.std())
        self._stats = (mu, sd if sd > 1e-12 else 1.0)
        return self._stats

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> dict:
        """Write ``ngrams.npz`` (CSR arrays, vocabulary, IDF) into ``folder``; returns the
        manifest entry."""
        m = self.matrix
        np.savez(Path(folder) / self.FILE, data=m.data, indices=m.indices, indptr=m.indptr,
                 shape=np.asarray(m.shape, np.int64), idf=self.idf,
                 vocabulary=np.asarray(self.vocabulary, dtype=str))
        return {"file": self.FILE, "spec": self.spec, "n_present": self.n_present,
                "info": self.info}

    @classmethod
    def load(cls, folder: Path, entry: dict) -> TitleNgrams:
        from scipy import sparse

        path = Path(folder) / entry.get("file", cls.FILE)
        try:
            with np.load(path, allow_pickle=False) as z:
                m = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]),
                                      shape=tuple(int(v) for v in z["shape"]))
                vocabulary, idf = z["vocabulary"].tolist(), z["idf"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read the ngrams modality ({exc}).") from exc
        return cls(m, vocabulary, idf, normalize="-nfkc-" in str(entry.get("spec", "")))
