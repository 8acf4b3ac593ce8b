"""The ``lexical`` modality: character n-gram TF-IDF of the titles, reduced by TruncatedSVD.

Cheap, language-agnostic and strong on the tokens sentence encoders blur: brand, model
numbers, sizes ("40 den", "256 GB"). Fitted on the catalog's own titles (no weights to
download); the vectors are dense, so every fusion and index treats them like any other
modality. A title with no character n-gram left (empty after normalisation) has no lexical
vector (absent, never a zero vector).

Examples
--------
>>> import polars as pl
>>> from prodfusion.data.catalog import Catalog
>>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"],
...                             "title": ["red shirt", "red shirts", "blue hat"]}))
>>> e = LexicalEncoder(dim=2).encode(cat)
>>> e.dim, e.n_present, e.spec
(2, 3, 'lexical:tfidf-char3-5-svd2')
"""

from __future__ import annotations

import time

import numpy as np

from prodfusion._checks import is_int
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import param_error

__all__ = ["LexicalEncoder", "parse_lexical_spec", "tfidf_matrix"]


def parse_lexical_spec(spec: str) -> int:
    """``"tfidf"`` → 256 dimensions; ``"tfidf:128"`` → 128."""
    name, _, dim = str(spec).partition(":")
    if name != "tfidf" or (dim and (not dim.isdigit() or int(dim) < 2)):
        raise param_error("lexical", "build", "'tfidf' or 'tfidf:DIM' (DIM ≥ 2)", spec)
    return int(dim) if dim else 256


class LexicalEncoder:
    """Character 3–5-gram TF-IDF (``char_wb``) of titles → TruncatedSVD → L2-normalised.

    Parameters
    ----------
    dim : int
        SVD dimensions (capped below the number of titles and n-grams).
    seed : int
    """

    modality = "lexical"

    def __init__(self, *, dim: int = 256, seed: int = 0) -> None:
        if not is_int(dim) or dim < 2:
            raise param_error("dim", "LexicalEncoder()", "an int ≥ 2", dim)
        self.dim = dim
        self.seed = seed
        self.spec = f"lexical:tfidf-char3-5-svd{dim}"

    def encode(self, catalog, sessions=None) -> Embeddings:
        from sklearn.decomposition import TruncatedSVD

        t0 = time.perf_counter()
        titles = [t or "" for t in catalog.titles]
        x = tfidf_matrix(titles)
        n = len(titles)
        present = np.asarray(x.getnnz(axis=1) > 0)
        out = np.zeros((n, self.dim), dtype=np.float32)
        k = int(min(self.dim, max(1, x.shape[1] - 1), max(1, int(present.sum()) - 1)))
        if present.sum() >= 2 and k >= 1:
            z = TruncatedSVD(n_components=k, random_state=self.seed).fit_transform(x[present])
            norms = np.linalg.norm(z, axis=1)
            ok = norms > 1e-12  # a title whose n-grams the SVD dropped entirely: absent
            rows = np.flatnonzero(present)
            out[rows[ok], :k] = (z[ok] / norms[ok, None]).astype(np.float32)
            present[rows[~ok]] = False
        info = {"n_ngrams": int(x.shape[1]), "svd_dim": k,
                "seconds": round(time.perf_counter() - t0, 3)}
        return Embeddings(out, present, self.spec, info)


def tfidf_matrix(titles: list[str], *, ngram_range: tuple[int, int] = (3, 5)):
    """L2-normalised sparse TF-IDF of character n-grams (``char_wb``) of ``titles``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=True,
                          dtype=np.float32)
    return vec.fit_transform([t or "" for t in titles]).tocsr()
