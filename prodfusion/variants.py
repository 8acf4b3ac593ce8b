"""What to recommend: one :class:`Variant` (fusion, modalities, weights, fallback) shared by
the offline evaluation, the replay of A/B tests and the service.

A variant is searched through the model's own searcher (:meth:`Variant.recommend_scored`), so
the offline ``baseline`` is the served ``baseline``, ranked by the same index.

>>> BASELINE.label
'baseline (Prod2Vec, text fallback)'
>>> Variant("late", "text+image").modalities
('text', 'image')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prodfusion._checks import FUSION_METHODS, check_choice
from prodfusion.encoders.base import MODALITIES
from prodfusion.errors import param_error
from prodfusion.fusion.weighting import check_profile_name
from prodfusion.index.topk import Filters, topk_one_per_code

__all__ = ["Variant", "BASELINE"]


@dataclass(frozen=True)
class Variant:
    """One recommendation configuration to evaluate or replay.

    Parameters
    ----------
    fusion : {"early", "intermediate", "late"}
    modalities : tuple of str
        Modalities fused for queries that have at least one of them.
    fallback : tuple of str, optional
        Modalities used (intermediate fusion) for queries that have none of ``modalities``,
        and to fill lists that the primary fusion cannot fill to ``k``.
    name : str, optional
        Label in reports (default: ``"intermediate:text+image+clicks"``).
    model : str, optional
        Model folder (replay configs; None: the default model).
    weights, calibration, n0 : optional
        Fusion weights / calibration / click confidence for this configuration, each in place
        of the model's own (those chosen by ``prodfusion tune``; :mod:`prodfusion.fusion.weights`)
        where given, the rest of the model's weighting kept — as ``prodfusion similar
        --weights`` serves (:meth:`weighting_for`).
    paper : bool
        Use the paper's formulas (equal weights, raw cosines, raw early blocks) whatever the
        model's weighting.
    profile : str, optional
        A named weighting of the model (``prodfusion tune MODEL --profile NAME``, e.g. one
        tuned on baskets and one on co-purchase pairs) instead of its default one; ``weights``
        and ``calibration`` given too override the profile's.

    Examples
    --------
    >>> BASELINE.label
    'baseline (Prod2Vec, text fallback)'
    >>> Variant("early", ("text", "image")).label
    'early:text+image'
    """

    fusion: str = "intermediate"
    modalities: tuple[str, ...] = ("text", "image", "clicks")
    fallback: tuple[str, ...] | None = None
    name: str | None = None
    model: str | None = None
    weights: tuple[tuple[str, float], ...] | None = None
    calibration: str | None = None
    n0: float | None = None
    paper: bool = False
    profile: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", tuple(sorted(self.weights.items())))
        check_choice(self.fusion, "fusion", "Variant()", FUSION_METHODS)
        if self.profile is not None:
            check_profile_name(self.profile, "Variant()")
        for attr in ("modalities", "fallback"):
            mods = getattr(self, attr)
            if mods is None:
                continue
            if isinstance(mods, str):
                mods = tuple(m.strip() for m in mods.replace("+", ",").split(",") if m.strip())
            mods = tuple(mods)
            if not mods or any(m not in MODALITIES for m in mods):
                raise param_error(attr, "Variant()", f"a non-empty subset of {list(MODALITIES)}", mods)
            object.__setattr__(self, attr, tuple(m for m in MODALITIES if m in mods))

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        w = " [paper]" if self.paper else f" [profile {self.profile}]" if self.profile else ""
        if self.weights is not None or self.calibration is not None:
            w = " [" + ",".join(f"{m}={x:g}" for m, x in (self.weights or ())) + (
                f" {self.calibration}" if self.calibration else "") + "]"
        return f"{self.fusion}:{'+'.join(self.modalities)}" + w + (
            f" (fallback {'+'.join(self.fallback)})" if self.fallback else ""
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["label"] = self.label
        d["weights"] = dict(self.weights) if self.weights is not None else None
        d["modalities"] = list(self.modalities)
        d["fallback"] = list(self.fallback) if self.fallback else None
        return d

    def weighting(self):
        """The :class:`~prodfusion.fusion.weights.Weighting` this variant imposes on its own,
        or ``None``: the paper's for a :attr:`paper` variant, else ``weights`` /
        ``calibration`` / ``n0`` alone (calibration ``"none"`` where not given). What a model
        ranks by is :meth:`weighting_for`, which puts them on top of the model's weighting."""
        if not (self.paper or self.weights is not None or self.calibration is not None
                or self.n0 is not None):
            return None
        from prodfusion.fusion.weights import Weighting

        return Weighting() if self.paper else Weighting.make(
            dict(self.weights) if self.weights is not None else None,
            self.calibration or "none", None, self.n0, where=self.label)

    def weighting_for(self, rec: Any):
        """The weighting this variant searches ``rec`` with (``None``: the model's own).

        The paper's for a :attr:`paper` variant; else the model's own weighting — or its
        :attr:`profile`'s — with this variant's ``weights``, ``calibration`` and ``n0`` in
        place of its own where given, and everything else (calibration, click confidence,
        zero-weight fallback) kept: what ``prodfusion similar MODEL ID --weights …`` serves,
        so an offline "these weights instead" is the list a site would get. Until the
        forty-third session weights without a calibration ranked by raw cosines here
        (calibration ``"none"``, no click confidence, no fallback), unlike ``similar``."""
        if self.paper:
            return self.weighting()
        weights = dict(self.weights) if self.weights is not None else None
        if self.profile is not None:
            wt = rec.profile_weighting(self.profile, weights=weights,
                                       calibration=self.calibration, where=self.label)
        elif weights is None and self.calibration is None and self.n0 is None:
            return None
        else:
            wt = rec.own_weighting().overridden(weights, self.calibration, self.label)
        if self.n0 is not None and self.n0 != wt.n0:
            from dataclasses import replace

            self.weighting()  # checks n0: an error naming this variant
            wt = replace(wt, n0=float(self.n0))
        return wt

    def fallback_weighting(self):
        """The weighting the ``fallback`` modalities rank by: the paper's (equal weights,
        raw cosines) for a :attr:`paper` variant, else ``None`` (the model's own)."""
        if not self.paper:
            return None
        from prodfusion.fusion.weights import Weighting

        return Weighting()

    def explain_rows(self, rec: Any, query_row: int, rows, scores=None) -> list[dict]:
        """Per row of this variant's list for ``query_row``, each modality's part of its score
        (:meth:`prodfusion.Recommender.explain_rows`), by the level that ranked it: a row the
        primary fusion could not score (none of its modalities shared with the query) and
        that the ``fallback`` modalities filled is explained by them (``"fallback": true``);
        not one the model's backfill added (``scores`` NaN)."""
        rows = np.asarray(rows, dtype=np.int64)
        backfilled = np.zeros(len(rows), bool) if scores is None else \
            np.isnan(np.asarray(scores, dtype=np.float64))
        out = rec.explain_rows(query_row, rows, fusion=self.fusion, modalities=self.modalities,
                               weighting=self.weighting_for(rec), served=True)
        if not self.fallback:
            return out
        unscored = [i for i, e in enumerate(out) if not backfilled[i]
                    and all(m.get("raw") is None for m in e["modalities"].values())]
        if unscored:
            fb = rec.explain_rows(query_row, rows[unscored], fusion="intermediate",
                                  modalities=self.fallback, weighting=self.fallback_weighting())
            for i, e in zip(unscored, fb, strict=True):
                out[i] = {**e, "fallback": True}
        return out

    def recommend_scored(self, rec: Any, query_rows, k: int, *,
                         filters: Filters | None = None,
                         diff_code: np.ndarray | None = None,
                         one_per_code: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalog rows and their scores for each query row, best first.

        Searched exactly as a model serves them: through ``rec.searcher`` (the exact fuser
        on small catalogs, the fused HNSW index above ``IndexSettings.auto_hnsw_from``), so
        an offline evaluation or replay of this variant ranks what the service would show.
        Rows the primary fusion cannot fill are filled from the ``fallback`` modalities
        (intermediate fusion), with that fusion's scores, then by the model's backfill
        (:meth:`~prodfusion.model_search.SearchMixin.backfilled`, scored ``NaN``);
        ``-1`` / ``-inf`` pad the rest. ``one_per_code`` (a code per catalog row, ``-1``
        none; the model's group codes for ``one_per_group``): at most one row of each code
        per list, at every level (:func:`~prodfusion.index.topk.topk_one_per_code`).
        """
        q = np.asarray(query_rows, dtype=np.int64)
        if filters is None:
            filters = Filters(diff_code=diff_code)
        rows, scores = _topk(rec.searcher(self.fusion, self.modalities,
                                          self.weighting_for(rec)),
                             q, k, filters, one_per_code, len(rec.catalog))
        if self.fallback:
            rows, scores = self._fill_fallback(rec, q, rows, scores, k, filters, one_per_code)
        if hasattr(rec, "backfilled"):  # the model's backfill completes what is still short
            rows, scores = rec.backfilled(rows, scores, q, filters, one_per_code=one_per_code)
        return rows, scores

    def _fill_fallback(self, rec, q, rows, scores, k, filters, one_per_code=None):
        short = np.flatnonzero((rows < 0).any(axis=1))
        if len(short) == 0:
            return rows, scores
        fb_rows, fb_scores = _topk(rec.searcher("intermediate", self.fallback,
                                                self.fallback_weighting()),
                                   q[short], 2 * k, filters, one_per_code, len(rec.catalog))
        def code(r: int) -> int:  # -1: no group, never clashes
            return -1 if one_per_code is None else int(one_per_code[r])

        for i, qi in enumerate(short):
            have = [(int(r), float(s)) for r, s in zip(rows[qi], scores[qi], strict=True)
                    if r >= 0]
            seen = {r for r, _ in have}
            groups = {code(r) for r, _ in have} - {-1}  # listed: not listed again
            for r, s in zip(fb_rows[i], fb_scores[i], strict=True):
                if len(have) >= k:
                    break
                if r >= 0 and r not in seen and code(r) not in groups:
                    have.append((int(r), float(s)))
                    seen.add(int(r))
                    if code(r) >= 0:
                        groups.add(code(r))
            rows[qi] = [r for r, _ in have] + [-1] * (k - len(have))
            scores[qi] = [s for _, s in have] + [-np.inf] * (k - len(have))
        return rows, scores

    def level_scorers(self, rec: Any, *, diff_code: np.ndarray | None = None) -> list | None:
        """The scores :meth:`recommend_scored` ranks by, for tie-aware evaluation
        (:func:`~prodfusion.evaluation.metrics.tie_aware_ranks`): one function per level
        (this fusion, then the ``fallback`` modalities, then the model's backfill: training
        click counts), ``rows → (len(rows), n)`` float32
        scores, ``-inf`` where a candidate is never served (the query itself, a ``diff_code``
        clash). ``None`` where the model searches approximately (an HNSW index ranks by
        approximate neighbours, not by these scores)."""
        if rec.search_backend != "exact":
            return None
        flt = Filters(diff_code=diff_code)
        fusers = [rec.fuser(self.fusion, self.modalities, self.weighting_for(rec))]
        if self.fallback:
            fusers.append(rec.fuser("intermediate", self.fallback, self.fallback_weighting()))

        def scorer(f):
            def score(rows: np.ndarray) -> np.ndarray:
                rows = np.asarray(rows, dtype=np.int64)
                return flt.apply(np.asarray(f.similarity(rows), dtype=np.float32), rows)
            return score

        levels = [scorer(f) for f in fusers]
        order = rec.popular_order() if hasattr(rec, "popular_order") else None
        if order is not None:  # the backfill: the clicked products, most first
            pop = np.full(len(rec.catalog), -np.inf, np.float32)
            pop[order] = rec.click_counts_[order]

            def backfill_level(rows: np.ndarray) -> np.ndarray:
                rows = np.asarray(rows, dtype=np.int64)
                return flt.apply(np.repeat(pop[None, :], len(rows), axis=0), rows)

            levels.append(backfill_level)
        return levels

    def recommend(self, rec: Any, query_rows, k: int, *, filters: Filters | None = None,
                  diff_code: np.ndarray | None = None) -> np.ndarray:
        """Top-``k`` catalog rows for each query row (``-1`` pads), best first
        (:meth:`recommend_scored` without the scores)."""
        return self.recommend_scored(rec, query_rows, k, filters=filters, diff_code=diff_code)[0]


def _topk(searcher, q: np.ndarray, k: int, filters: Filters,
          one_per_code: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``searcher``'s top ``k`` under ``filters``; with ``one_per_code``, one row per code."""
    if one_per_code is None:
        return searcher.topk(q, k, filters=filters)
    return topk_one_per_code(lambda x, m: searcher.topk(x, m, filters=filters), q, k,
                             one_per_code, n)


#: The paper's baseline: Prod2Vec neighbours, and text neighbours for products without clicks
#: (or to fill a list when fewer than k products have clicks), by raw cosines (``paper``):
#: until the twenty-fifth session it took the model's own calibration and click confidence,
#: which under ``zmean`` with ``n0`` reorder even one modality's neighbours (``c(n)`` of the
#: candidate), so on a tuned model it scored below Prod2Vec alone.
BASELINE = Variant(
    fusion="intermediate",
    modalities=("clicks",),
    fallback=("text",),
    name="baseline (Prod2Vec, text fallback)",
    paper=True,
)
