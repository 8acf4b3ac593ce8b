"""How a built model searches: its weighting, the filters of a query, and its searchers.

:meth:`prodfusion.Recommender.searcher` resolves the options of a query (fusion, modalities,
weighting, backend) and delegates here when the backend is not exact: a fused index
(:mod:`prodfusion.index.fused`) is loaded from the model folder when it was saved there under
the same weighting, else built now; a query with the pairwise ``cooc`` modality gets a
:class:`~prodfusion.index.pairwise.PairwiseIntermediateIndex` over the dense modalities' index.
The searchers are cached on the model (``rec._searchers``), keyed by ``(method, modalities)``
under the model's weighting and by ``(method, modalities, weighting)`` under another one.
:func:`model_weighting` (calibration statistics estimated on first use) and
:func:`query_filters` (the one :class:`~prodfusion.index.topk.Filters` of a query) serve
:meth:`~prodfusion.Recommender.weighting` and :meth:`~prodfusion.Recommender.filters`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from prodfusion._checks import FUSION_METHODS, is_int
from prodfusion.errors import ParameterError, param_error
from prodfusion.fusion.weights import Weighting, estimate_stats
from prodfusion.index.topk import Filters

__all__ = ["model_weighting", "query_filters", "fused_searcher", "pairwise_searcher",
           "build_indexes", "saved_searchers"]

log = logging.getLogger(__name__)


def model_weighting(rec, modalities: Sequence[str] | None = None,
                    override: Weighting | None = None) -> Weighting:
    """See :meth:`prodfusion.Recommender.weighting`."""
    wt = override if override is not None else Weighting.make(
        rec.weights, rec.calibration, None, rec.click_n0, where="Recommender",
        fallback=rec.zero_weight_fallback)
    if not hasattr(rec, "embeddings_"):
        return wt
    mods = tuple(modalities) if modalities is not None else rec.available_modalities
    if override is not None:
        override.check(mods, "similar()")
    wt = wt.restrict(mods)
    missing = [m for m in wt.needs_stats(mods) if m not in rec._calibration_stats]
    if missing:
        rec._calibration_stats.update(estimate_stats(rec.modality_data(), missing, seed=rec.seed))
    if wt.calibration != "none":
        wt = wt.with_stats({m: rec._calibration_stats[m] for m in mods
                            if m in rec._calibration_stats})
    return wt


def query_filters(rec, *, same_category: bool = False, exclude: Sequence[str] = (),
                  exclude_group: bool = False, where: str = "similar()") -> Filters:
    """See :meth:`prodfusion.Recommender.filters`."""
    banned = None
    if exclude:
        banned = np.zeros(len(rec.catalog), dtype=bool)
        ex_rows, found = rec.catalog.lookup(list(exclude))
        banned[ex_rows[found]] = True
    same_code = None
    if same_category:
        if rec._category_codes is None:
            raise ParameterError(
                f"{where}: same_category=True needs a catalog with a 'category' column; "
                "this model has none."
            )
        same_code = rec._category_codes
    diff_code = None
    if exclude_group:
        if rec._group_codes is None:
            raise ParameterError(
                f"{where}: exclude_group=True needs a catalog built with a group column "
                "(--group-col); this model has none."
            )
        diff_code = rec._group_codes
    return Filters(banned=banned, same_code=same_code, diff_code=diff_code)


def fused_searcher(rec, method: str, mods: tuple[str, ...], wt: Weighting, backend: str):
    """The fused index of ``method`` over ``mods`` under ``wt`` (cached on ``rec``)."""
    key = (method, mods) if wt == rec.weighting(mods) else (method, mods, wt)
    if key in rec._searchers:
        return rec._searchers[key]
    from prodfusion.index.fused import load_fused_index, make_fused_index

    labels = rec.late_labels_ if method == "late" else None
    saved = rec._index_meta.get(key)
    if saved is not None and saved[1].get("weighting") != (None if wt.is_default else wt.to_dict()):
        saved = None  # built under other weights: its vectors do not fit
    if saved is not None:
        folder, meta = saved
        rec._searchers[key] = load_fused_index(
            folder, meta, rec.embeddings_, labels=labels, settings=rec.index_settings,
            normalize=rec.normalize, mmap=getattr(rec, "_mmap_index", False), weighting=wt,
            confidence=rec._confidence(wt),
        )
        return rec._searchers[key]
    from prodfusion.progress import heartbeat

    t = time.perf_counter()
    with heartbeat(f"index: {method} over {'+'.join(mods)} ({backend}, "
                   f"{len(rec.catalog):,} products)", enabled=rec.progress is not False):
        index = make_fused_index(method, mods, backend=backend, settings=rec.index_settings,
                                 normalize=rec.normalize, weighting=wt,
                                 confidence=rec._confidence(wt))
        index.executor = getattr(rec, "_index_executor", None)  # shards' tasks
        rec._searchers[key] = index.build(rec.embeddings_, labels=labels)
    log.info("built the %s index over %s in %.1f s", method, "+".join(mods),
             time.perf_counter() - t)
    return rec._searchers[key]


def pairwise_searcher(rec, method: str, mods: tuple[str, ...], wt: Weighting):
    """Vector index over the dense modalities + the ``cooc`` neighbours (never saved)."""
    from prodfusion.fusion import check_pairwise
    from prodfusion.index.pairwise import PairwiseIntermediateIndex

    check_pairwise(method, mods, "similar()")
    key = ("pairwise", method, mods, wt)  # never saved: rebuilt from the vector index
    if key not in rec._searchers:
        dense = tuple(m for m in mods if m != "cooc")
        inner = None
        if dense and any(wt.w(m) > 0 for m in dense):
            inner = rec.searcher(method, dense, wt.restrict(dense))
        rec._searchers[key] = PairwiseIntermediateIndex(
            inner, rec.modality_data(), mods, wt, rec._confidence(wt),
            over_fetch=max(4, int(rec.index_settings.over_fetch)))
    return rec._searchers[key]


def build_indexes(rec, fusions: Sequence[str] | None, modalities, *, n_jobs: int = 1,
                  executor=None) -> None:
    """See :meth:`prodfusion.Recommender.build_index`."""
    if not is_int(n_jobs) or n_jobs < 1:
        raise param_error("n_jobs", "build_index()", "an int >= 1", n_jobs)
    methods = list(fusions or FUSION_METHODS)
    rec.build_seconds_ = {}

    def one(method: str) -> None:
        t = time.perf_counter()
        rec.searcher(method, modalities)
        rec.build_seconds_[method] = round(time.perf_counter() - t, 1)

    rec._index_executor = executor
    try:
        if n_jobs == 1 or len(methods) == 1:
            for method in methods:
                one(method)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(n_jobs, len(methods)), thread_name_prefix="pf-index") as ex:
            for f in [ex.submit(one, m) for m in methods]:
                f.result()  # re-raises the first failure
    finally:
        rec._index_executor = None


def saved_searchers(rec) -> dict:
    """Every approximate searcher of ``rec`` under its own weighting, loading the saved ones
    not used yet (what :meth:`~prodfusion.Recommender.save` writes and updates maintain)."""
    for method, mods in list(rec._index_meta):
        rec.searcher(method, mods)
    # (method, mods, weighting) keys: per-call weightings, not part of the model
    return {k: s for k, s in rec._searchers.items() if len(k) == 2}
