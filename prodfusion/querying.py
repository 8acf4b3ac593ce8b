"""The query API of a built model: ``similar`` in its three forms, ``explain``, the filters
(the second of the :class:`~prodfusion.Recommender`'s two mixins, over
:class:`~prodfusion.model_search.SearchMixin`).

Every query goes one way: its options (:class:`QueryOptions`) become one searcher
(:meth:`~prodfusion.model_search.SearchMixin.searcher`) and one
:class:`~prodfusion.index.topk.Filters` (:meth:`QueryMixin.filters`), and the searcher's
``topk`` ranks catalog rows; ``similar`` and ``similar_batch`` map rows to ids at the end,
``similar_rows`` (the CLI, the service, evaluation) does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from prodfusion._checks import check_k
from prodfusion.errors import ParameterError, param_error
from prodfusion.fusion import check_method, check_pairwise
from prodfusion.fusion.weights import Weighting
from prodfusion.index.topk import Filters, topk_one_per_code
from prodfusion.model_search import SearchMixin

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["QueryMixin", "QueryOptions", "mark_backfilled"]


class QueryOptions(TypedDict, total=False):
    """The options of a query, shared by :meth:`Recommender.similar`, ``similar_batch`` and
    ``similar_rows`` (see :meth:`Recommender.similar` for each)."""

    fusion: str | None
    modalities: Sequence[str] | str | None
    same_category: bool
    exclude: Sequence[str]
    exclude_group: bool
    one_per_group: bool | None
    weights: Mapping[str, float] | str | None
    calibration: str | None
    profile: str | None


def mark_backfilled(why: list[dict], scores) -> list[dict]:
    """Explanations of a list with ``"backfill": "popular"`` on its backfilled results (score
    ``NaN``: the fused score they would explain is not what placed them)."""
    for e, s in zip(why, np.asarray(scores, dtype=np.float64), strict=True):
        if np.isnan(s):
            e["backfill"] = "popular"
    return why


def _check_options(options: dict, where: str) -> None:
    """Refuse keyword arguments that are not query options, naming the method."""
    unknown = sorted(set(options) - set(QueryOptions.__annotations__))
    if unknown:
        raise TypeError(f"{where} got unexpected keyword argument(s) {unknown}; the query "
                        f"options are {sorted(QueryOptions.__annotations__)}.")


class QueryMixin(SearchMixin):
    """``similar``, ``similar_batch``, ``similar_rows``, ``explain`` and the filters of a
    built :class:`~prodfusion.Recommender`."""

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
        one_per_group: bool | None = None,
        weights: Mapping[str, float] | str | None = None,
        calibration: str | None = None,
        profile: str | None = None,
        explain: bool = False,
    ):
        """The ``k`` most similar other products to ``product_id``, best first.

        ``weights`` / ``calibration`` override the model's for this call
        (:mod:`prodfusion.fusion.weights`); ``profile`` names one of the model's tuned
        weighting profiles (:attr:`profiles`, ``prodfusion tune --profile``) to rank by
        instead of its default weighting (intermediate fusion unless ``fusion`` says
        otherwise; ``weights`` / ``calibration`` then override the profile's). With
        ``explain=True`` a third value is returned: per result, each modality's raw and calibrated similarity (``None`` where one of the
        two products lacks it), weight and share of the score; ``base`` plus the shares is
        the score (:mod:`prodfusion.fusion.explain`). ``exclude_group=True`` leaves out the
        products of the query's variation group (the catalog's ``group`` column);
        ``one_per_group=True`` that, and keeps each other group's best ranked product only
        (``None``: the model's setting, :attr:`one_per_group`, ``build --one-per-group``).

        Returns
        -------
        ids : ndarray of str (object dtype)
            Product ids, never the query itself. Where the modalities rank fewer than ``k``
            (e.g. a product with no modality in common with anyone), the model's backfill
            completes the list with the most clicked products (``backfill="popular"``,
            :mod:`prodfusion.index.backfill`); fewer than ``k`` without one.
        scores : ndarray of float32
            Fused similarities (late fusion: shared-cluster count + tie-break fraction);
            ``NaN`` for a backfilled product.

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
            exclude=exclude, exclude_group=exclude_group, one_per_group=one_per_group,
            weights=weights, calibration=calibration, profile=profile, where="similar()")
        keep = r[0] >= 0
        rows, scores = r[0][keep], scores[0][keep]
        ids = self._ids[rows]
        if not explain:
            return ids, scores
        why = self.explain_rows(q, rows, fusion=fusion, modalities=modalities,
                                weights=weights, calibration=calibration, profile=profile,
                                served=True)
        return ids, scores, mark_backfilled(why, scores)

    def similar_batch(self, product_ids: Sequence[str], k: int = 15,
                      **options: Unpack[QueryOptions]) -> tuple[np.ndarray, np.ndarray]:
        """Batch form of :meth:`similar`: arrays of shape ``(len(product_ids), k)``.

        ``options`` are those of :meth:`similar` (:class:`QueryOptions`). Backfilled
        results score ``NaN``; missing ones (fewer than ``k`` candidates, no backfill) are
        ``None`` ids with ``-inf`` scores.
        """
        where = "similar_batch()"
        self._check_built()
        if isinstance(product_ids, str):
            raise param_error("product_ids", where, "a sequence of product ids, not one string",
                              product_ids)
        k = check_k(k, where)
        _check_options(options, where)
        r, s = self._search(self.catalog.rows_of(product_ids), k, where=where, **options)
        return self.ids_of(r), s

    def similar_rows(self, rows, k: int = 15,
                     **options: Unpack[QueryOptions]) -> tuple[np.ndarray, np.ndarray]:
        """Row form of :meth:`similar_batch` for callers that hold catalog rows (the CLI,
        the service, evaluation): no id → row → id round trip. ``options`` are those of
        :meth:`similar` (:class:`QueryOptions`).

        Returns
        -------
        rows : int64 array (len(rows), k), best first, ``-1`` where fewer candidates exist
        scores : float32 array (len(rows), k), ``NaN`` where backfilled, ``-inf`` at the
            padding
        """
        _check_options(options, "similar_rows()")
        return self._search(rows, k, where="similar()", **options)

    def ids_of(self, rows) -> np.ndarray:
        """Product ids of catalog rows (object array of the same shape; ``None`` at ``-1``)."""
        rows = np.asarray(rows, dtype=np.int64)
        ids = np.empty(rows.shape, dtype=object)
        ids[:] = None
        valid = rows >= 0
        ids[valid] = self._ids[rows[valid]]
        return ids

    def explain(self, product_id: str, candidate_ids: Sequence[str], *,
                fusion: str | None = None, modalities: Sequence[str] | str | None = None,
                weights=None, calibration: str | None = None,
                profile: str | None = None) -> list[dict]:
        """Per candidate, each modality's part of its fused similarity to ``product_id``
        (``candidate_ids``: ids, or one id)."""
        self._check_built()
        if isinstance(candidate_ids, str):  # one id, not its characters
            candidate_ids = [candidate_ids]
        return self.explain_rows(self.catalog.row_of(product_id),
                                 self.catalog.rows_of(candidate_ids), fusion=fusion,
                                 modalities=modalities, weights=weights, calibration=calibration,
                                 profile=profile)

    def explain_rows(self, query_row: int, candidate_rows, *, fusion: str | None = None,
                     modalities: Sequence[str] | str | None = None, weights=None,
                     calibration: str | None = None, profile: str | None = None,
                     weighting: Weighting | None = None, served: bool = False) -> list[dict]:
        """Row form of :meth:`explain` for internal callers (rows in, no id lookups);
        ``weighting`` (e.g. a variant's :meth:`~prodfusion.variants.Variant.weighting_for`)
        replaces ``weights`` / ``calibration`` / ``profile``. ``served``: the rows are what
        the model's search returned for the query (under a learned weighting searched
        through the indexes, every one was in its pool, filters or not)."""
        from prodfusion.fusion.explain import explain_pairs

        # Not self.fuser(): fitting one copies every row's fused vectors (9 GB at 1M
        # products) while an explanation reads only the query's and the candidates' rows.
        self._check_built()
        method = check_method(self.fusion_for(fusion, profile))
        mods = self._modalities_for(method, modalities)
        check_pairwise(method, mods, "explain()")
        wt = self.weighting(mods, weighting if weighting is not None
                            else self._override(weights, calibration, profile, "explain()"),
                            method)
        candidate_rows = np.asarray(candidate_rows, dtype=np.int64)
        pool_rows = None
        if method == "intermediate" and wt.learned is not None:
            searcher = self.searcher(method, mods, wt)
            from prodfusion.index.learned import LearnedRescorer

            if isinstance(searcher, LearnedRescorer):  # the indexes' pool, not a catalog scan
                from prodfusion.index.topk import Filters

                pool_rows = searcher.candidates(int(query_row), Filters())
                if served:
                    pool_rows = np.union1d(pool_rows, candidate_rows)
        out = explain_pairs(method, self.modality_data(), mods, wt, int(query_row),
                            candidate_rows, normalize=self.normalize, labels=self.late_labels_,
                            confidence=self._confidence(wt), pool_rows=pool_rows)
        if method == "early":
            out = self._early_fallback_explained(out, mods, wt, int(query_row), candidate_rows)
        for r, e in zip(candidate_rows, out, strict=True):
            e["product_id"] = str(self._ids[r])
        return out

    def _early_fallback_explained(self, out: list[dict], mods, wt, q: int,
                                  candidate_rows: np.ndarray) -> list[dict]:
        """Early fusion's explanations of a query its weighted blocks cannot serve: what the
        zero-weight fallback ranks it by (:class:`~prodfusion.index.fallback.EarlyFallbackIndex`:
        early fusion over the fallback's modalities and weights, less ``FALLBACK_OFFSET``)."""
        from prodfusion.fusion.explain import explain_pairs
        from prodfusion.fusion.weights import FALLBACK_OFFSET, fallback_search_weighting

        routed = fallback_search_weighting(wt, mods)
        if routed is None or self.weighted_rows(mods, wt)[q]:
            return out
        fb = explain_pairs("early", self.modality_data(), routed[0], routed[1], q,
                           candidate_rows, normalize=self.normalize,
                           confidence=self._confidence(routed[1]))
        for e, f in zip(out, fb, strict=True):
            e["modalities"].update(f["modalities"])
            e["base"] = -FALLBACK_OFFSET
            e["score"] = e["base"] + sum(v["share"] for v in e["modalities"].values())
            e["fallback"] = 1
        return out

    def filters(self, *, same_category: bool = False, exclude: Sequence[str] = (),
                exclude_group: bool = False, where: str = "similar()") -> Filters:
        """The :class:`~prodfusion.index.topk.Filters` of a query on this model: what the
        options exclude, and the model's retired products (:meth:`retire`) always."""
        banned = getattr(self, "retired_", None)
        if banned is not None and not banned.any():
            banned = None
        if isinstance(exclude, str):  # one id, not its characters
            exclude = [exclude]
        if exclude:
            banned = np.zeros(len(self.catalog), dtype=bool) if banned is None else banned.copy()
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
        return Filters(banned=banned, same_code=same_code, diff_code=diff_code)

    def _override(self, weights, calibration, profile=None,
                  where: str = "similar()") -> Weighting | None:
        if profile is not None:
            return self.profile_weighting(profile, weights=weights, calibration=calibration,
                                          where=where)
        if weights is None and calibration is None:
            return None
        return self.own_weighting().overridden(weights, calibration, "similar()")

    def groups_once(self, one_per_group: bool | None, where: str = "similar()") -> bool:
        """Whether a query with this ``one_per_group`` option keeps one product per group
        (``None``: the model's :attr:`one_per_group`); refused for a model without group
        codes."""
        once = bool(getattr(self, "one_per_group", False) if one_per_group is None
                    else one_per_group)
        if once and self._group_codes is None:
            raise ParameterError(
                f"{where}: one_per_group=True needs a catalog built with a group column "
                "(--group-col); this model has none.")
        return once

    def _search(self, rows, k, *, where: str, fusion=None, modalities=None,
                same_category=False, exclude=(), exclude_group=False, one_per_group=None,
                weights=None, calibration=None,
                profile=None) -> tuple[np.ndarray, np.ndarray]:
        self._check_built()
        k = check_k(k, where)
        f = self.searcher(self.fusion_for(fusion, profile), modalities,
                          self._override(weights, calibration, profile, where))
        once = self.groups_once(one_per_group, where)
        flt = self.filters(same_category=same_category, exclude=exclude,
                           exclude_group=exclude_group or once, where=where)
        rows = np.asarray(rows, dtype=np.int64)
        if not once:
            r, s = f.topk(rows, int(k), filters=flt)
            return self.backfilled(r, s, rows, flt)
        r, s = topk_one_per_code(lambda q, m: f.topk(q, m, filters=flt), rows, int(k),
                                 self._group_codes, len(self.catalog))
        return self.backfilled(r, s, rows, flt, one_per_code=self._group_codes)
