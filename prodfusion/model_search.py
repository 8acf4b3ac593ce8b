"""How a built model searches: its weighting, its fusers and its searchers (the first of
the :class:`~prodfusion.Recommender`'s two mixins; :mod:`prodfusion.querying` is the other).

:meth:`SearchMixin.searcher` resolves the options of a query (fusion, modalities, weighting,
backend): the exact fuser of :mod:`prodfusion.fusion` when the backend resolves to exact;
otherwise a fused index (:mod:`prodfusion.index.fused`), loaded from the model folder when it
was saved there under the same weighting, else built now; a query with the pairwise ``cooc``
modality gets a :class:`~prodfusion.index.pairwise.PairwiseIntermediateIndex` over the dense
modalities' index. Fusers and searchers are cached on the model (``_fusers``,
``_searchers``), keyed by ``(method, modalities)`` under the model's weighting and by
``(method, modalities, weighting)`` under another one.

The mixin reads the model's state (:mod:`prodfusion.model_state`: ``catalog``,
``embeddings_``, ``late_labels_``, ``click_counts_``, the caches) and its settings
(``fusion``, ``modalities``, ``index``, ``index_settings``, ``weights``, …).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from prodfusion._checks import FUSION_METHODS, is_int
from prodfusion.errors import NotBuiltError, ParameterError, param_error
from prodfusion.fusion import check_method, check_modalities, make_fuser
from prodfusion.fusion.cooc import PAIRWISE_MODALITIES
from prodfusion.fusion.weights import (
    Weighting,
    confidence,
    estimate_stats,
    fallback_search_weighting,
    row_confidence,
)
from prodfusion.index.base import choose_backend

__all__ = ["SearchMixin"]

log = logging.getLogger(__name__)


class SearchMixin:
    """The weighting, fusers and searchers of a built :class:`~prodfusion.Recommender`."""

    @property
    def search_backend(self) -> str:
        """How the catalog is searched: :attr:`index` resolved for its size (``"exact"``,
        ``"hnsw"`` or ``"ivfpq"``; :func:`~prodfusion.index.base.choose_backend`)."""
        return choose_backend(self.index, len(self.catalog), self.index_settings)

    def _check_built(self) -> None:
        if not hasattr(self, "embeddings_"):
            raise NotBuiltError("This Recommender is not built yet: call build() or load() first.")

    def weighting(self, modalities: Sequence[str] | None = None,
                  override: Weighting | None = None, method: str | None = None) -> Weighting:
        """The model's :class:`~prodfusion.fusion.Weighting` (or ``override``) over
        ``modalities``, with the calibration statistics estimated on first use; for a
        ``method`` other than intermediate fusion without learned trees (early and late
        fusion weigh by the weights alone)."""
        wt = override if override is not None else self.own_weighting()
        if method not in (None, "intermediate") and wt.learned is not None:
            from dataclasses import replace

            wt = replace(wt, learned=None)
        if not hasattr(self, "embeddings_"):
            return wt
        mods = tuple(modalities) if modalities is not None else self.available_modalities
        if override is not None:
            override.check(mods, "similar()")
        wt = wt.restrict(mods)
        missing = [m for m in wt.needs_stats(mods) if m not in self._calibration_stats]
        if missing:
            self._calibration_stats.update(estimate_stats(self.modality_data(), missing, seed=self.seed))
        if wt.calibration != "none" or isinstance(wt.fallback, tuple):  # fallback: z-scored
            wt = wt.with_stats({m: self._calibration_stats[m] for m in mods
                                if m in self._calibration_stats})
        return wt

    def own_weighting(self) -> Weighting:
        """The model's own :class:`~prodfusion.fusion.Weighting` (its weights, calibration,
        ``n0``, fallback, ``impute`` and learned trees), without calibration statistics."""
        return Weighting.make(self.weights, self.calibration, None, self.click_n0,
                              where="Recommender", fallback=self.zero_weight_fallback,
                              impute=getattr(self, "impute", 0.0),
                              fallback_missing=getattr(self, "fallback_missing", "drop"),
                              confidence=getattr(self, "click_confidence", "ratio"),
                              learned=getattr(self, "learned_", None))

    @property
    def profiles(self) -> dict[str, dict]:
        """The model's named weighting profiles (``tune(..., profile=NAME)``): per name, the
        weighting (as :meth:`Weighting.to_dict`) and the tuning record that chose it."""
        return dict(getattr(self, "profiles_", None) or {})

    def profile_weighting(self, name: str, *, weights=None, calibration: str | None = None,
                          where: str = "similar()") -> Weighting:
        """The :class:`~prodfusion.fusion.Weighting` of profile ``name`` (``weights`` /
        ``calibration`` given: those on top of it), for :meth:`weighting`'s ``override``.

        Raises
        ------
        ParameterError
            No profile of that name in this model (the message lists those it has).
        """
        from prodfusion.fusion.weighting import check_profile_name

        check_profile_name(name, where)
        profiles = self.profiles
        if name not in profiles:
            have = ", ".join(repr(p) for p in sorted(profiles)) or "none"
            raise ParameterError(
                f"{where}: profile {name!r} is not in this model (it has {have}); "
                f"`prodfusion tune MODEL --profile {name}` tunes one.")
        base = Weighting.from_dict(profiles[name]["weighting"])
        if weights is None and calibration is None:
            return base
        return base.overridden(weights, calibration, where)

    def fusion_for(self, fusion: str | None, profile: str | None = None) -> str:
        """The fusion a query asking for ``fusion`` uses: the model's when None, intermediate
        when it names a weighting ``profile`` (profiles are tuned for intermediate fusion)."""
        return fusion or ("intermediate" if profile else self.fusion)

    def _confidence(self, wt: Weighting) -> np.ndarray | None:
        return row_confidence(getattr(self, "click_counts_", None), wt)

    def popular_order(self) -> np.ndarray | None:
        """The rows the ``popular`` backfill draws from, most clicked first (cached on the
        click counts), or ``None`` when the model has no backfill or no click counts."""
        cc = getattr(self, "click_counts_", None)
        if getattr(self, "backfill", None) != "popular" or cc is None:
            return None
        cached = getattr(self, "_popular_order", None)
        if cached is None or cached[0] is not cc:
            from prodfusion.index.backfill import popular_order

            cached = self._popular_order = (cc, popular_order(cc))
        return cached[1]

    def backfilled(self, rows: np.ndarray, scores: np.ndarray, query_rows,
                   filters=None, one_per_code=None) -> tuple[np.ndarray, np.ndarray]:
        """A ``topk`` answer with its short lists completed by the model's backfill
        (:mod:`prodfusion.index.backfill`; unchanged without one); ``one_per_code``: no
        second product of a group already listed (``one_per_group``)."""
        order = self.popular_order()
        if order is None or not (np.asarray(rows) < 0).any():
            return rows, scores
        from prodfusion.index.backfill import backfill

        return backfill(rows, scores, query_rows, order, filters, one_per_code)

    def resolve(self, fusion: str | None = None,
                modalities: Sequence[str] | str | None = None) -> tuple[str, tuple[str, ...]]:
        """``(method, modalities)`` a query with these options uses (the model's defaults
        filled in, checked), without building anything."""
        self._check_built()
        method = check_method(fusion or self.fusion)
        return method, self._modalities_for(method, modalities)

    def _modalities_for(self, method: str,
                        modalities: Sequence[str] | str | None) -> tuple[str, ...]:
        """The modalities a query over ``method`` uses: ``modalities`` when given (checked),
        else the model's; early and late fusion then leave out the pairwise ones (``cooc``,
        ``category``, ``popularity``: scores, not vectors), which only intermediate fusion can
        fuse, so a model built with them still answers ``--fusion early|late``."""
        if modalities is not None:
            return check_modalities(modalities, self.available_modalities)
        mods = check_modalities(self.modalities, self.available_modalities)
        if method != "intermediate":
            dense = tuple(m for m in mods if m not in PAIRWISE_MODALITIES)
            if dense:
                return dense
        return mods

    def fuser(self, fusion: str | None = None, modalities: Sequence[str] | str | None = None,
              weighting: Weighting | None = None):
        """The fitted fusion object for ``fusion`` over ``modalities`` (cached), weighted by
        the model's weighting or ``weighting``."""
        self._check_built()
        method = check_method(fusion or self.fusion)
        mods = self._modalities_for(method, modalities)
        wt = self.weighting(mods, weighting, method)
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
        mods = self._modalities_for(method, modalities)
        backend = self.search_backend
        if backend == "exact" and method != "early":  # the fusers rank the fallback pairs
            return self.fuser(method, mods, weighting)
        wt = self.weighting(mods, weighting, method)
        if wt.learned is not None:
            # candidates: each modality's nearest (its own index), scored by the trees
            key = ("learned", mods, wt)
            if key not in self._searchers:
                from prodfusion.index.learned import LearnedRescorer

                data = self.modality_data()
                nearest = {m: data[m] if m in PAIRWISE_MODALITIES else self.searcher(
                    method, (m,), Weighting.make({m: 1.0})) for m in mods}
                self._searchers[key] = LearnedRescorer(nearest, data, mods, wt,
                                                       self._confidence(wt))
            return self._searchers[key]
        if backend == "exact":
            main = self.fuser(method, mods, weighting)
        elif set(mods) & set(PAIRWISE_MODALITIES):  # vector index + pairwise neighbours
            main = self._pairwise_searcher(method, mods, wt)
        else:
            main = self._fused_searcher(method, mods, wt, backend)
        routed = fallback_search_weighting(wt, mods) if method != "late" else None
        if routed is None:
            return main
        key = ("routed", method, mods, wt)  # never saved: the fallback index is built on use
        if key not in self._searchers:
            from prodfusion.index.fallback import EarlyFallbackIndex, FallbackRoutedIndex

            routed_cls = EarlyFallbackIndex if method == "early" else FallbackRoutedIndex
            self._searchers[key] = routed_cls(  # its fallback index: on first use
                main, lambda: self.searcher(method, routed[0], routed[1]),
                self.weighted_rows(mods, wt))
        return self._searchers[key]

    def fallback_query(self, fusion: str | None = None,
                       modalities: Sequence[str] | str | None = None,
                       profile: str | None = None) -> int | None:
        """The first row that a query with these options ranks by the zero-weight fallback
        (it has none of the positive-weight modalities: a new or never-clicked product under
        weights on the clicks alone), or None. A warm-up queries it so that the fallback's
        index — built on the first such query, minutes at a million products — is ready
        before the first request for a cold product (``prodfusion serve`` does)."""
        method = check_method(self.fusion_for(fusion, profile))
        if method == "late":  # late fusion ranks such pairs in its tie-break: no index
            return None
        mods = self._modalities_for(method, modalities)
        wt = self.weighting(mods, self._override(None, None, profile, "fallback_query()"))
        if fallback_search_weighting(wt, mods) is None:
            return None
        rows = np.flatnonzero(~self.weighted_rows(mods, wt))
        return int(rows[0]) if len(rows) else None

    def weighted_rows(self, modalities: Sequence[str], weighting: Weighting) -> np.ndarray:
        """Rows having a modality of ``modalities`` with a positive weight under
        ``weighting``: the queries its weighted formula serves (the others are ranked by the
        zero-weight fallback, :attr:`Weighting.fallback`)."""
        data = self.modality_data()
        served = np.zeros(len(self.catalog), bool)
        cc = getattr(self, "click_counts_", None)
        conf = confidence(cc, weighting.n0, "min") if weighting.confidence == "min" and \
            weighting.n0 is not None and cc is not None else None
        for m in modalities:
            if weighting.w(m) > 0:
                has = np.asarray(data[m].mask, bool)
                if m == "clicks" and conf is not None:  # a query seen too rarely: not by clicks
                    has = has & (conf > 0)
                served |= has
        return served

    # ------------------------------------------------------------------ approximate searchers
    def _fused_searcher(self, method: str, mods: tuple[str, ...], wt: Weighting, backend: str):
        """The fused index of ``method`` over ``mods`` under ``wt`` (cached on ``self``)."""
        key = (method, mods) if wt == self.weighting(mods) else (method, mods, wt)
        if key in self._searchers:
            return self._searchers[key]
        from prodfusion.index.fused import load_fused_index, make_fused_index

        labels = self.late_labels_ if method == "late" else None
        saved = self._index_meta.get(key)
        if saved is not None and saved[1].get("weighting") != (None if wt.is_default else wt.to_dict()):
            saved = None  # built under other weights: its vectors do not fit
        if saved is not None:
            folder, meta = saved
            self._searchers[key] = load_fused_index(
                folder, meta, self.embeddings_, labels=labels, settings=self.index_settings,
                normalize=self.normalize, mmap=getattr(self, "_mmap_index", False), weighting=wt,
                confidence=self._confidence(wt),
            )
            return self._searchers[key]
        from prodfusion.progress import heartbeat

        t = time.perf_counter()
        with heartbeat(f"index: {method} over {'+'.join(mods)} ({backend}, "
                       f"{len(self.catalog):,} products)", enabled=self.progress is not False):
            index = make_fused_index(method, mods, backend=backend, settings=self.index_settings,
                                     normalize=self.normalize, weighting=wt,
                                     confidence=self._confidence(wt))
            index.executor = getattr(self, "_index_executor", None)  # shards' tasks
            self._searchers[key] = index.build(self.embeddings_, labels=labels)
        log.info("built the %s index over %s in %.1f s", method, "+".join(mods),
                 time.perf_counter() - t)
        return self._searchers[key]

    def _pairwise_searcher(self, method: str, mods: tuple[str, ...], wt: Weighting):
        """Vector index over the dense modalities + the pairwise modalities' neighbours
        (``cooc``, ``category``; never saved)."""
        from prodfusion.fusion import check_pairwise
        from prodfusion.index.pairwise import PairwiseIntermediateIndex

        check_pairwise(method, mods, "similar()")
        key = ("pairwise", method, mods, wt)  # never saved: rebuilt from the vector index
        if key not in self._searchers:
            dense = tuple(m for m in mods if m not in PAIRWISE_MODALITIES)
            inner = None
            if dense and any(wt.w(m) > 0 for m in dense):
                inner = self.searcher(method, dense, wt.restrict(dense))
            self._searchers[key] = PairwiseIntermediateIndex(
                inner, self.modality_data(), mods, wt, self._confidence(wt),
                over_fetch=max(4, int(self.index_settings.over_fetch)))
        return self._searchers[key]

    def build_index(
        self,
        fusions: Sequence[str] | None = None,
        modalities: Sequence[str] | str | None = None,
        *,
        n_jobs: int = 1,
        executor=None,
    ) -> SearchMixin:
        """Build (or load) the search index of each fusion in ``fusions`` (default: all three)
        over ``modalities`` now, so that :meth:`save` stores them and queries start warm.

        ``n_jobs`` > 1 builds that many indexes at once in threads (FAISS and BLAS release
        the GIL). With one BLAS/OpenMP thread each, this keeps every core busy without the
        barrier waits of one multi-threaded HNSW build; it holds the build buffers of
        ``n_jobs`` indexes at the same time.

        ``executor`` (:func:`prodfusion.engine.make_executor`) runs the shards' tasks when
        ``index_settings.shards`` > 1 (e.g. on Ray); default: this process.
        """
        if not is_int(n_jobs) or n_jobs < 1:
            raise param_error("n_jobs", "build_index()", "an int >= 1", n_jobs)
        methods = list(fusions or FUSION_METHODS)
        self.build_seconds_ = {}

        def one(method: str) -> None:
            t = time.perf_counter()
            self.searcher(method, modalities)
            self.build_seconds_[method] = round(time.perf_counter() - t, 1)

        self._index_executor = executor
        try:
            if n_jobs == 1 or len(methods) == 1:
                for method in methods:
                    one(method)
                return self
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(n_jobs, len(methods)), thread_name_prefix="pf-index") as ex:
                for f in [ex.submit(one, m) for m in methods]:
                    f.result()  # re-raises the first failure
            return self
        finally:
            self._index_executor = None

    def _all_searchers(self) -> dict:
        """Every approximate searcher of the model under its own weighting, loading the saved
        ones not used yet (what :meth:`~prodfusion.Recommender.save` writes, updates maintain)."""
        for method, mods in list(self._index_meta):
            self.searcher(method, mods)
        # (method, mods, weighting) keys: per-call weightings, not part of the model
        return {k: s for k, s in self._searchers.items() if len(k) == 2}
