"""The ``lexical`` modality: character n-gram TF-IDF of the titles, reduced by TruncatedSVD.

Cheap, language-agnostic and strong on the tokens sentence encoders blur: brand, model
numbers, sizes ("40 den", "256 GB"). Fitted on the catalog's own titles (no weights to
download); the vectors are dense, so every fusion and index treats them like any other
modality. Titles are read in Unicode NFKC (:func:`normalize_title`), so full-width and
ASCII letters, half-width and full-width katakana give the same n-grams, and neighbouring
pairs of Chinese, Japanese or Korean characters count too (:func:`title_terms`). A title with no
character n-gram left (empty after normalisation) has no lexical vector (absent, never a
zero vector).

Examples
--------
>>> import polars as pl
>>> from prodfusion.data.catalog import Catalog
>>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"],
...                             "title": ["red shirt", "red shirts", "blue hat"]}))
>>> enc = LexicalEncoder(dim=2)
>>> e = enc.encode(cat)
>>> e.dim, e.n_present, e.spec
(2, 3, 'lexical:tfidf-nfkc-char3-5-svd2')
>>> new = enc.transform(Catalog(pl.DataFrame({"product_id": ["d"], "title": ["red shirt"]})))
>>> bool(np.allclose(new.vectors[0], e.vectors[0], atol=1e-6))  # the same title, the same vector
True
"""

from __future__ import annotations

import re
import time
import unicodedata
from pathlib import Path

import numpy as np

from prodfusion._checks import is_int
from prodfusion.encoders.base import Embeddings
from prodfusion.errors import param_error

__all__ = ["LexicalEncoder", "normalize_title", "parse_lexical_spec", "tfidf_matrix",
           "title_terms"]


def parse_lexical_spec(spec: str) -> int:
    """``"tfidf"`` → 256 dimensions; ``"tfidf:128"`` → 128."""
    name, _, dim = str(spec).partition(":")
    if name != "tfidf" or (dim and (not dim.isdigit() or int(dim) < 2)):
        raise param_error("lexical", "build", "'tfidf' or 'tfidf:DIM' (DIM ≥ 2)", spec)
    return int(dim) if dim else 256


#: Titles the lexical SVD is fitted on at most (a uniform sample above it; every title is
#: still projected): see :class:`LexicalEncoder`'s ``max_fit_rows``.
MAX_FIT_ROWS = 200_000


class LexicalEncoder:
    """Character 3–5-gram TF-IDF (``char_wb``) of titles → TruncatedSVD → L2-normalised.

    Titles are read through :func:`normalize_title` first (Unicode NFKC, then lower case),
    so one product written in two notations — full-width ``ＡＣＭＥ　２６ｃｍ`` and ASCII
    ``ACME 26cm``, half-width katakana ``ﾗﾝﾆﾝｸﾞ`` and ``ランニング``, a decomposed ``é`` and
    a composed one, ``ﬁ`` and ``fi`` — gives the same n-grams; neighbouring pairs of
    Chinese, Japanese or Korean characters are terms too (:func:`title_terms`).

    :meth:`fit` learns the n-gram vocabulary, their IDF and the SVD projection from a
    catalog's titles; :meth:`transform` maps any titles into that space, so products added
    later (:meth:`prodfusion.Recommender.add_products`) get vectors comparable with the
    catalog's. :meth:`encode` is both on one catalog. A model folder keeps the fitted state
    (:meth:`save` / :meth:`load`: a Parquet vocabulary and two ``.npy`` arrays, no pickle).

    Parameters
    ----------
    dim : int
        SVD dimensions (capped below the number of titles and n-grams).
    seed : int
    max_fit_rows : int or None
        The SVD is fitted on a uniform sample of this many titles (seeded) when the catalog
        has more, default :data:`MAX_FIT_ROWS` (200,000); every title is still projected,
        and the vocabulary and IDF come from all of them. At a million titles the fit takes
        a fraction of the time, with the same neighbours up to the noise
        (docs/benchmarks/lexical_fit.md); below the cap nothing changes. ``None``: every
        title.
    normalize : bool
        Read the titles through :func:`normalize_title` (default). ``False``: lower case
        only, the encoder of model folders written before the fifty-first session (their
        spec has no ``nfkc``), which keep it so titles added later land in their space.

    Attributes
    ----------
    vocabulary_ : dict[str, int]
        n-gram → column, after :meth:`fit`.
    idf_ : ndarray of shape (n_ngrams,)
    components_ : ndarray of shape (svd_dim, n_ngrams), float32
        The SVD's right singular vectors; a title's vector is its TF-IDF row times their
        transpose, L2-normalised.
    """

    modality = "lexical"

    #: Files of a fitted encoder in a model folder.
    FILES = {"vocabulary": "lexical_vocabulary.parquet", "idf": "lexical_idf.npy",
             "components": "lexical_components.npy"}

    def __init__(self, *, dim: int = 256, seed: int = 0,
                 max_fit_rows: int | None = MAX_FIT_ROWS, normalize: bool = True) -> None:
        if not is_int(dim) or dim < 2:
            raise param_error("dim", "LexicalEncoder()", "an int ≥ 2", dim)
        if max_fit_rows is not None and (not is_int(max_fit_rows) or max_fit_rows < 2):
            raise param_error("max_fit_rows", "LexicalEncoder()", "an int ≥ 2 or None",
                              max_fit_rows)
        self.dim = dim
        self.seed = seed
        self.max_fit_rows = max_fit_rows
        self.normalize = bool(normalize)
        self.spec = f"lexical:tfidf-{'nfkc-' if normalize else ''}char3-5-svd{dim}"
        self._vocabulary: dict[str, int] | None = None
        self._vocabulary_file: Path | None = None  # a loaded encoder reads it on first use

    @property
    def vocabulary_(self) -> dict[str, int]:
        if self._vocabulary is None and self._vocabulary_file is not None:
            import polars as pl

            terms = pl.read_parquet(self._vocabulary_file)["ngram"].to_list()
            self._vocabulary = {t: i for i, t in enumerate(terms)}
        if self._vocabulary is None:
            self._check_fitted()
        return self._vocabulary

    # ------------------------------------------------------------------ fitting
    def fit(self, catalog) -> LexicalEncoder:
        """Learn the vocabulary, IDF and projection from ``catalog``'s titles."""
        from sklearn.decomposition import TruncatedSVD

        t0 = time.perf_counter()
        vec = _vectorizer(normalize=self.normalize)
        x = vec.fit_transform([t or "" for t in catalog.titles]).tocsr()
        present = np.asarray(x.getnnz(axis=1) > 0)
        self._vocabulary, self._vocabulary_file = vec.vocabulary_, None
        self.idf_ = vec.idf_.astype(np.float64)
        rows = np.flatnonzero(present)
        if self.max_fit_rows is not None and len(rows) > self.max_fit_rows:  # a sample: lexical_fit.md
            rows = np.sort(np.random.default_rng(self.seed).choice(
                rows, self.max_fit_rows, replace=False))
        k = int(min(self.dim, max(1, x.shape[1] - 1), max(1, len(rows) - 1)))
        if len(rows) >= 2 and k >= 1:
            svd = TruncatedSVD(n_components=k, random_state=self.seed).fit(x[rows])
            self.components_ = svd.components_.astype(np.float32)
        else:  # fewer than two titles with an n-gram: nothing to project onto
            self.components_ = np.zeros((0, x.shape[1]), np.float32)
        self._vec = vec
        self.fit_info_ = {"n_ngrams": int(x.shape[1]), "svd_dim": int(len(self.components_)),
                          "svd_rows": int(len(rows)),
                          "seconds": round(time.perf_counter() - t0, 3)}
        return self

    def transform(self, catalog, *, batch_size: int = 100_000) -> Embeddings:
        """The fitted space's vectors of ``catalog``'s titles (any catalog, e.g. new
        products). A title with no n-gram of the fitted vocabulary is absent."""
        self._check_fitted()
        t0 = time.perf_counter()
        titles = [t or "" for t in catalog.titles]
        n, k = len(titles), len(self.components_)
        out = np.zeros((n, self.dim), dtype=np.float32)
        mask = np.zeros(n, dtype=bool)
        vec = self._vectorizer()
        comp_t = np.ascontiguousarray(self.components_.T)
        for lo in range(0, n, batch_size):  # bounded memory at a million titles
            x = vec.transform(titles[lo:lo + batch_size]).tocsr().astype(np.float32, copy=False)
            if k == 0:
                continue
            z = np.asarray(x @ comp_t)
            norms = np.linalg.norm(z, axis=1)
            ok = norms > 1e-12  # no n-gram in the vocabulary, or none the SVD kept: absent
            rows = np.flatnonzero(ok)
            out[lo + rows, :k] = z[ok] / norms[ok, None]
            mask[lo + rows] = True
        info = {**getattr(self, "fit_info_", {}), "seconds": round(time.perf_counter() - t0, 3)}
        return Embeddings(out, mask, self.spec, info)

    def encode(self, catalog, sessions=None) -> Embeddings:
        """:meth:`fit` on ``catalog``, then its vectors (what a build does)."""
        emb = self.fit(catalog).transform(catalog)
        emb.info["seconds"] = round(self.fit_info_["seconds"] + emb.info["seconds"], 3)
        return emb

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "components_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            from prodfusion.errors import NotBuiltError

            raise NotBuiltError("This LexicalEncoder is not fitted; call fit(catalog) first.")

    def _vectorizer(self):
        if getattr(self, "_vec", None) is None:
            self._vec = _vectorizer(vocabulary=self.vocabulary_, idf=self.idf_,
                                    normalize=self.normalize)
        return self._vec

    # ------------------------------------------------------------------ persistence
    def save(self, folder) -> dict[str, str]:
        """Write the fitted state into ``folder``; returns the file names (for a manifest)."""
        import polars as pl

        self._check_fitted()
        folder = Path(folder)
        if self._vocabulary is None and self._vocabulary_file is not None:
            import shutil  # loaded and never used: the file as it was

            shutil.copyfile(self._vocabulary_file, folder / self.FILES["vocabulary"])
        else:
            terms = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
            pl.DataFrame({"ngram": terms}, schema={"ngram": pl.String}).write_parquet(
                folder / self.FILES["vocabulary"])
        np.save(folder / self.FILES["idf"], np.asarray(self.idf_))
        np.save(folder / self.FILES["components"], np.asarray(self.components_))
        return dict(self.FILES)

    @classmethod
    def load(cls, folder, files: dict[str, str], spec: str, *, seed: int = 0) -> LexicalEncoder:
        """A fitted encoder from :meth:`save`'s files in ``folder``; ``spec`` is the
        modality's recorded spec (``lexical:tfidf-nfkc-char3-5-svdDIM``; without ``nfkc``,
        an older folder's: titles lower-cased only)."""
        import polars as pl

        from prodfusion.errors import ModelError

        folder = Path(folder)
        try:
            dim = int(str(spec).rsplit("svd", 1)[1])
            vocab = folder / files["vocabulary"]
            n_terms = pl.scan_parquet(vocab).select(pl.len()).collect().item()
            idf = np.load(folder / files["idf"])
            comp = np.load(folder / files["components"], mmap_mode="r")
        except (OSError, ValueError, IndexError, KeyError, pl.exceptions.PolarsError) as exc:
            raise ModelError(f"{folder}: cannot read the lexical encoder's files "
                             f"({exc}).") from exc
        if len(idf) != n_terms or comp.ndim != 2 or comp.shape[1] != n_terms \
                or comp.shape[0] > dim:
            raise ModelError(
                f"{folder}: the lexical encoder's files disagree (vocabulary {n_terms}, "
                f"idf {len(idf)}, components {comp.shape}); the folder is damaged.")
        enc = cls(dim=dim, seed=seed, normalize="-nfkc-" in str(spec))
        enc._vocabulary_file = vocab  # read when first needed (a million n-grams: ~1 s)
        enc.idf_ = idf
        enc.components_ = comp
        enc.fit_info_ = {"n_ngrams": n_terms, "svd_dim": int(comp.shape[0])}
        return enc


def normalize_title(text: str) -> str:
    """``text`` in Unicode NFKC, then lower case: what the ``lexical`` and ``ngrams``
    modalities cut into n-grams.

    NFKC folds the compatibility forms shop systems mix into one: full-width letters,
    digits and spaces (``ＡＣＭＥ　２６．５ｃｍ`` → ``ACME 26.5cm``), half-width katakana
    (``ﾗﾝﾆﾝｸﾞ`` → ``ランニング``), ligatures and circled numbers (``ﬁ`` → ``fi``, ``①`` → ``1``),
    and decomposed accents into composed ones (``e`` + U+0301 → ``é``).

    >>> normalize_title("ＡＣＭＥ　ﾗﾝﾆﾝｸﾞｼｭｰｽﾞ　２６．５ｃｍ")
    'acme ランニングシューズ 26.5cm'
    """
    return unicodedata.normalize("NFKC", text).lower()


#: Runs of Chinese, Japanese or Korean characters (Han, kana, Hangul): their neighbouring
#: pairs are terms too (:func:`title_terms`).
_CJK_RUN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                      "\uac00-\ud7af]{2,}")


class _TitleTerms:
    """:func:`title_terms` with one ``ngram_range`` (a class, so the vectorizer pickles)."""

    def __init__(self, ngram_range: tuple[int, int]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._char_wb = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range,
                                        preprocessor=str).build_analyzer()

    def __call__(self, title: str) -> list[str]:
        text = normalize_title(title)
        grams = self._char_wb(text)
        for run in _CJK_RUN.findall(text):
            grams.extend(run[i:i + 2] for i in range(len(run) - 1))
        return grams


def title_terms(title: str, ngram_range: tuple[int, int] = (3, 5)) -> list[str]:
    """The terms the ``lexical`` and ``ngrams`` modalities count in a title: the character
    n-grams of its words (``char_wb``, 3–5 by default) in :func:`normalize_title`'s form,
    and every neighbouring pair of Chinese, Japanese or Korean characters. Those scripts
    write a title without spaces between its words (``耐克背包黑色``), and most of their
    words are two characters long, which no 3-gram of a word holds alone: the pairs are
    what search engines index them by. A title without such characters gets exactly its
    n-grams.

    >>> title_terms("ACME 背包")[:4], title_terms("ACME 背包")[-2:]
    ([' ac', 'acm', 'cme', 'me '], [' 背包 ', '背包'])
    """
    return _TitleTerms(tuple(ngram_range))(title)


def _vectorizer(*, ngram_range: tuple[int, int] = (3, 5), vocabulary=None, idf=None,
                normalize: bool = False):
    """The titles' TF-IDF vectorizer; with ``vocabulary`` and ``idf`` a fitted one's state
    (what encodes titles added later in the same space). ``normalize``: the terms of
    :func:`title_terms` (else the character n-grams of the lower-cased title, as
    scikit-learn's default does: the ``tfidf`` reference baseline, and model folders
    written before the fifty-first session)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if normalize:
        vec = TfidfVectorizer(analyzer=_TitleTerms(tuple(ngram_range)), dtype=np.float32,
                              vocabulary=vocabulary)
    else:
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=True,
                              dtype=np.float32, vocabulary=vocabulary)
    if idf is not None:
        vec.idf_ = idf
    return vec


def tfidf_matrix(titles: list[str], *, ngram_range: tuple[int, int] = (3, 5)):
    """L2-normalised sparse TF-IDF of character n-grams (``char_wb``) of ``titles``: the
    ``tfidf`` reference baseline, scikit-learn's vectorizer as a user would first call it
    (lower case, no Unicode normalisation)."""
    return _vectorizer(ngram_range=ngram_range).fit_transform(
        [t or "" for t in titles]).tocsr()
