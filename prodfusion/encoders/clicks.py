"""Prod2Vec: product vectors from anonymous click sessions (gensim Word2Vec skip-gram).

The corpus it reads (session splitting, the co-click view, corpus files) is
:mod:`prodfusion.encoders.corpus`.

A session is a list of product-id strings in click order; products clicked close together
in many sessions get close vectors. Products never clicked have no vector (absent).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import GeneratorType

import numpy as np

from prodfusion._checks import check_int, check_real
from prodfusion.encoders._util import logger, progress_bar
from prodfusion.encoders.base import Embeddings, Modality, check_finite
from prodfusion.encoders.corpus import (  # also importable from here, as before
    MAX_SESSION_TOKENS,
    _CoClickCorpus,
    split_session,
    write_corpus,
)
from prodfusion.errors import DataError, NotBuiltError, ParameterError, param_error

__all__ = ["Prod2Vec", "Prod2VecParams", "DEFAULT_EPOCHS", "MAX_SESSION_TOKENS", "MIN_TRAIN_OCCURRENCES", "split_session",
           "undertrained_warning", "write_corpus", "REPRODUCIBLE_MAX_CLICKS", "reproducible_params"]

#: Training epochs of Prod2Vec unless asked otherwise: 20, not gensim's 5. On the DIGINETICA
#: sample the share of products whose nearest click neighbour shares their category is 0.02
#: after 5 epochs, 0.30 after 20 and 0.56 after 50 (docs/encoders.md). The one home of this
#: default: :class:`Prod2VecParams` (so :class:`Prod2Vec`) and the CLI read it from here.
DEFAULT_EPOCHS = 20


@dataclass
class Prod2VecParams:
    """Prod2Vec (gensim Word2Vec skip-gram) settings: the one set of defaults, which
    :class:`Prod2Vec` takes too.

    ``vector_size`` and ``window`` follow the paper (512, 5). ``epochs`` is
    :data:`DEFAULT_EPOCHS` (20, not gensim's 5; see there).
    ``sample`` is 0 (no down-sampling of frequent products): in a small catalog every product
    counts as frequent and gensim's 1e-3 drops most clicks.
    """

    vector_size: int = 512
    window: int = 5
    negative: int = 5
    min_count: int = 1
    epochs: int = DEFAULT_EPOCHS
    sample: float = 0.0
    seed: int = 0
    workers: int | None = None


_DEFAULTS = Prod2VecParams()

#: Up to this many training clicks, a Prod2Vec fit given no thread count (``workers=None``)
#: runs on one thread (:func:`reproducible_params`): gensim is bit-reproducible on one thread
#: only, so two builds (and two tunings) on the same data then give the same vectors, weights
#: and lists. On the 2-core VM one thread trains H&M's 129,000 clicks × 20 epochs in about
#: 7 s, as fast as two; above the limit every core is used, for speed.
REPRODUCIBLE_MAX_CLICKS = 2_000_000


def reproducible_params(params: Prod2VecParams | None, n_clicks: int | None
                        ) -> Prod2VecParams | None:
    """``params`` with ``workers=1`` where no thread count was given and the training data
    holds at most :data:`REPRODUCIBLE_MAX_CLICKS` clicks (``n_clicks``; ``None``: unknown,
    e.g. a corpus file, left as given), else ``params`` as they are (``None``: the defaults).

    >>> reproducible_params(Prod2VecParams(), 1_000).workers
    1
    >>> reproducible_params(Prod2VecParams(workers=4), 1_000).workers
    4
    >>> reproducible_params(Prod2VecParams(), 5_000_000).workers is None
    True
    """
    from dataclasses import replace

    p = params if params is not None else Prod2VecParams()
    if p.workers is None and n_clicks is not None and 0 < n_clicks <= REPRODUCIBLE_MAX_CLICKS:
        return replace(p, workers=1)
    return params


class _EpochBar:
    """A gensim callback driving a tqdm bar over epochs."""

    def __init__(self, bar) -> None:
        self.bar = bar

    # gensim calls these by name; subclassing CallbackAny2Vec would import gensim eagerly.
    def on_train_begin(self, model) -> None:
        pass

    def on_epoch_begin(self, model) -> None:
        pass

    def on_epoch_end(self, model) -> None:
        self.bar.update(1)

    def on_train_end(self, model) -> None:
        pass


#: A product occurring fewer times than this in the training sessions has an (almost)
#: untrained click vector: it took part in too few skip-gram updates to move far from its
#: random start. The same reason makes 5 gensim's default ``min_count``. The build reports
#: how many products reach it (``n_well_trained``) and warns when fewer than half do.
MIN_TRAIN_OCCURRENCES = 5


def undertrained_warning(info: dict) -> str | None:
    """The build's warning when most click vectors are weak (None when they are not).

    >>> undertrained_warning({"n_in_catalog": 4487, "n_well_trained": 260, "min_occurrences": 5})
    'clicks: only 260 of 4,487 products with a click vector (5.8%) occur >= 5 times in the training sessions; the others are nearly untrained, so the click modality is weak (more sessions or more --p2v-epochs help)'
    """
    n = int(info.get("n_in_catalog") or 0)
    good = info.get("n_well_trained")
    if not n or good is None or good >= 0.5 * n:
        return None
    return (f"clicks: only {good:,} of {n:,} products with a click vector ({100 * good / n:.1f}%) "
            f"occur >= {info.get('min_occurrences', MIN_TRAIN_OCCURRENCES)} times in the training "
            "sessions; the others are nearly untrained, so the click modality is weak (more "
            "sessions or more --p2v-epochs help)")


def _check_int(name: str, value: object, low: int, where: str = "Prod2Vec()") -> None:
    check_int(value, name, where, low=low)


class Prod2Vec:
    """Skip-gram Word2Vec over click sessions, with negative sampling.

    Parameters
    ----------
    vector_size : int
        Dimension of the product vectors (default 512).
    window : int
        Maximum distance between a product and its context within a session (default 5).
    negative : int
        Negative samples per positive pair (default 5).
    min_count : int
        Products clicked fewer times are left out of the vocabulary (they become absent).
    epochs : int
        Passes over the sessions.
    sg : {1, 0}
        1 = skip-gram (the Prod2Vec recipe), 0 = CBOW.
    seed : int
        Random seed of the initial vectors and of sampling.
    workers : int, optional
        Training threads; ``None`` uses every core (``os.cpu_count()``).
    progress : bool
        Show a tqdm bar over epochs (only when stderr is a terminal).
    sample : float
        Word2Vec's down-sampling threshold for frequent products (0 = off, the default).
        gensim's text default (1e-3) drops most clicks of a small catalog, where every
        product is "frequent": on 16 planted products it left the groups unlearned, and on
        the DIGINETICA sample it changed nothing (see docs/encoders.md).

    Attributes
    ----------
    wv_ : gensim.models.KeyedVectors
        The product vectors, keyed by product id (set by :meth:`fit`).
    info_ : dict
        Facts about the fit: sessions used, vocabulary size, seconds.

    Notes
    -----
    Reproducibility: with ``workers=1`` and a fixed ``seed`` two fits on the same
    sessions give identical vectors (gensim 4 seeds its initial vectors with a NumPy
    generator; for gensim < 4, also fix ``PYTHONHASHSEED`` before starting Python).
    With several workers, thread scheduling changes the order of updates and the
    vectors differ slightly from run to run. Sessions with fewer than two distinct
    products are skipped: they carry no co-click signal.

    Examples
    --------
    >>> sessions = [["a", "b", "c"], ["b", "c"], ["x", "y"]] * 20
    >>> p2v = Prod2Vec(vector_size=8, epochs=2, workers=1, progress=False).fit(sessions)
    >>> sorted(p2v.wv_.key_to_index)
    ['a', 'b', 'c', 'x', 'y']
    """

    modality: Modality = "clicks"
    spec: str = "prod2vec"

    def __init__(
        self,
        vector_size: int = _DEFAULTS.vector_size,
        window: int = _DEFAULTS.window,
        negative: int = _DEFAULTS.negative,
        min_count: int = _DEFAULTS.min_count,
        epochs: int = _DEFAULTS.epochs,
        sg: int = 1,
        seed: int = _DEFAULTS.seed,
        workers: int | None = _DEFAULTS.workers,
        progress: bool = True,
        sample: float = _DEFAULTS.sample,
    ) -> None:
        self.vector_size = vector_size
        self.window = window
        self.negative = negative
        self.min_count = min_count
        self.epochs = epochs
        self.sg = sg
        self.seed = seed
        self.workers = workers
        self.progress = progress
        self.sample = sample

    @property
    def dim(self) -> int:
        """Width of the vectors (``vector_size``), as every encoder reports it."""
        return int(self.vector_size)

    def __repr__(self) -> str:
        return (
            f"Prod2Vec(vector_size={self.vector_size}, window={self.window}, "
            f"negative={self.negative}, min_count={self.min_count}, epochs={self.epochs}, "
            f"sg={self.sg}, seed={self.seed}, workers={self.workers}, sample={self.sample})"
        )

    def _validate(self) -> None:
        _check_int("vector_size", self.vector_size, 1)
        _check_int("window", self.window, 1)
        _check_int("negative", self.negative, 1)
        _check_int("min_count", self.min_count, 1)
        _check_int("epochs", self.epochs, 1)
        _check_int("seed", self.seed, 0)
        if self.sg not in (0, 1) or isinstance(self.sg, bool):
            raise param_error("sg", "Prod2Vec()", "1 (skip-gram) or 0 (CBOW)", self.sg)
        if self.workers is not None:
            _check_int("workers", self.workers, 1)
        check_real(self.sample, "sample", "Prod2Vec()", low=0, high=1, high_open=True,
                   expected="a float in [0, 1)")

    @staticmethod
    def _check_sessions(sessions: object) -> None:
        where = "Prod2Vec.fit()"
        if isinstance(sessions, (GeneratorType, Iterator)):
            raise ParameterError(
                f"The 'sessions' parameter of {where} must be re-iterable: Word2Vec reads the "
                "sessions once per epoch plus once for the vocabulary. Got a one-shot "
                f"{type(sessions).__name__} instead; pass a list of lists, or an object whose "
                "__iter__ starts over on every call (like prodfusion.data.Sessions)."
            )
        if isinstance(sessions, (str, bytes)) or not isinstance(sessions, Iterable):
            raise param_error(
                "sessions", where, "a re-iterable of sessions (lists of product-id strings)",
                type(sessions).__name__,
            )
        for k, s in enumerate(sessions):
            if isinstance(s, (str, bytes)) or not isinstance(s, Iterable):
                raise DataError(
                    f"{where}: session {k} is a {type(s).__name__}, not a list of product ids "
                    f"({s!r:.60}). Each session must be a list of product-id strings."
                )
            items = list(s)
            if items:
                bad = next((p for p in items if not isinstance(p, str)), None)
                if bad is not None:
                    raise DataError(
                        f"{where}: session {k} holds product id {bad!r} of type "
                        f"{type(bad).__name__}; ids must be strings (keep leading zeros)."
                    )
                return

    def fit(self, sessions: Iterable[list[str]]) -> Prod2Vec:
        """Train on click sessions.

        Parameters
        ----------
        sessions : re-iterable of list of str
            Each session lists product ids in click order. Must be iterable more than once
            (a list, or :class:`prodfusion.data.Sessions`); a generator is refused.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            On a one-shot iterator or a bad hyperparameter.
        DataError
            On a session that is not a list of strings, or when no session has two distinct
            products.
        """
        self._validate()
        self._check_sessions(sessions)
        from gensim.models import Word2Vec

        corpus = _CoClickCorpus(sessions)
        workers = self.workers or os.cpu_count() or 1
        t0 = time.perf_counter()
        model = Word2Vec(
            vector_size=self.vector_size,
            window=self.window,
            negative=self.negative,
            hs=0,
            min_count=self.min_count,
            sample=float(self.sample),
            sg=self.sg,
            seed=self.seed,
            workers=workers,
        )
        model.build_vocab(corpus_iterable=corpus)
        n_sessions = int(model.corpus_count)
        if n_sessions == 0:
            raise DataError(
                "Prod2Vec.fit(): no session has two or more distinct products, so there is "
                "no co-click to learn from. Check the session key and the product id column "
                "(CLI: --session-cols, --item-col)."
            )
        if len(model.wv) == 0:
            raise DataError(
                f"Prod2Vec.fit(): no product is clicked at least min_count={self.min_count} "
                "times; lower min_count."
            )
        with progress_bar(self.epochs, "prod2vec epochs", "epoch", self.progress) as bar:
            model.train(
                corpus_iterable=corpus,
                total_examples=model.corpus_count,
                epochs=self.epochs,
                callbacks=[_EpochBar(bar)],
            )
        self.wv_ = model.wv
        self.info_ = {
            "n_sessions": n_sessions,
            "n_products": len(model.wv),
            "n_clicks": int(model.corpus_total_words),
            "workers": workers,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        logger.info(
            "prod2vec: %d products from %d sessions in %.1f s",
            len(model.wv), n_sessions, self.info_["seconds"],
        )
        return self

    def fit_corpus(self, corpus_file: str | os.PathLike) -> Prod2Vec:
        """Train on a corpus file (gensim ``corpus_file`` mode: C++ reader, no Python lists).

        Write the file with :func:`write_corpus` (from a Sessions Parquet file or any
        re-iterable). Each worker thread reads its own part of the file, so throughput
        scales with ``workers`` instead of being bound by one Python iterator.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.txt"
        >>> write_corpus([["a", "b", "c"], ["b", "c"], ["x", "y"]] * 20, path)["n_lines"]
        60
        >>> p2v = Prod2Vec(vector_size=8, epochs=2, workers=1, progress=False).fit_corpus(path)
        >>> sorted(p2v.wv_.key_to_index)
        ['a', 'b', 'c', 'x', 'y']
        """
        self._validate()
        from gensim.models import Word2Vec

        corpus_file = os.fspath(corpus_file)
        if not os.path.isfile(corpus_file):
            raise DataError(f"{corpus_file}: corpus file does not exist; write it with write_corpus().")
        workers = self.workers or os.cpu_count() or 1
        t0 = time.perf_counter()
        model = Word2Vec(
            vector_size=self.vector_size, window=self.window, negative=self.negative, hs=0,
            min_count=self.min_count, sample=float(self.sample), sg=self.sg, seed=self.seed,
            workers=workers,
        )
        model.build_vocab(corpus_file=corpus_file)
        if model.corpus_count == 0 or len(model.wv) == 0:
            raise DataError(f"{corpus_file}: no session to learn from (empty corpus, or no product "
                            f"clicked at least min_count={self.min_count} times).")
        with progress_bar(self.epochs, "prod2vec epochs", "epoch", self.progress) as bar:
            model.train(
                corpus_file=corpus_file, total_examples=model.corpus_count,
                total_words=model.corpus_total_words, epochs=self.epochs,
                callbacks=[_EpochBar(bar)],
            )
        self.wv_ = model.wv
        self.info_ = {
            "n_sessions": int(model.corpus_count),
            "n_products": len(model.wv),
            "n_clicks": int(model.corpus_total_words),
            "workers": workers,
            "seconds": round(time.perf_counter() - t0, 3),
            "corpus_file": corpus_file,
        }
        logger.info("prod2vec (corpus file): %d products from %d sessions in %.1f s",
                    len(model.wv), model.corpus_count, self.info_["seconds"])
        return self

    def encode(self, catalog, sessions=None) -> Embeddings:
        """Vectors of the catalog's products; products never clicked are absent.

        Parameters
        ----------
        catalog : prodfusion.data.Catalog
        sessions : re-iterable of list of str, optional
            If given, :meth:`fit` is called on them first.

        Returns
        -------
        Embeddings
            ``info`` holds the fit facts plus ``n_in_catalog`` (catalog products with a
            vector) and ``n_unknown_clicked`` (clicked products not in the catalog; they
            still helped training as context).

        Raises
        ------
        NotBuiltError
            If the model is not fitted and no sessions are given.
        """
        if sessions is not None:
            self.fit(sessions)
        if not hasattr(self, "wv_"):
            raise NotBuiltError(
                "This Prod2Vec is not fitted yet: call fit(sessions) or encode(catalog, sessions)."
            )
        index = self.wv_.key_to_index
        rows = np.fromiter((index.get(p, -1) for p in catalog.ids), dtype=np.int64, count=len(catalog))
        mask = rows >= 0
        vectors = np.zeros((len(catalog), self.wv_.vector_size), dtype=np.float32)
        vectors[mask] = self.wv_.vectors[rows[mask]]
        info = dict(self.info_)
        info["n_in_catalog"] = int(mask.sum())
        info["n_unknown_clicked"] = int(len(index) - mask.sum())
        # How many of the catalog's click vectors were trained on enough occurrences.
        counts = np.array([self.wv_.get_vecattr(int(r), "count") for r in rows[mask]],
                          dtype=np.int64)
        info["min_occurrences"] = MIN_TRAIN_OCCURRENCES
        info["n_well_trained"] = int((counts >= MIN_TRAIN_OCCURRENCES).sum())
        emb = Embeddings(vectors, mask, self.spec, info)
        check_finite(emb, what="prod2vec click embeddings")
        return emb
