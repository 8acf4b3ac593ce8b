"""Learning the fusion weights, calibration and click confidence on held-out interactions.

:func:`tune_weights` never looks at the test part that ``evaluate retrieval`` scores:

1. the interactions are split exactly as the evaluation splits them (same protocol, fraction
   and seed: :func:`~prodfusion.evaluation.retrieval.split_interactions`); the held-out test
   cases are set aside unread;
2. the *training* part is split again the same way into a fitting part and a validation part;
3. Prod2Vec is retrained on the fitting part only (the model's text and image vectors are
   kept), and every candidate configuration ranks the validation queries;
4. the search is a simplex grid over the modality weights (step ``step``) × calibrations ×
   click-confidence constants ``n0``, refined by coordinate search (half and quarter steps).

Only intermediate fusion is tuned: its score is a function of the per-modality cosines, which
are computed once for the validation queries, so each configuration costs one weighted sum
and one top-k (:func:`prodfusion.fusion.weights.intermediate_combine`, the fusers' formula).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from prodfusion._checks import MAX_K, is_real
from prodfusion.errors import DataError, ParameterError, param_error

__all__ = ["tune_weights", "parse_objective", "simplex_grid"]

OBJECTIVES = ("ndcg", "hitrate")


def parse_objective(objective: str, where: str = "tune()") -> tuple[str, int]:
    """``"ndcg@15"`` → ``("ndcg", 15)``."""
    name, sep, k = str(objective).lower().partition("@")
    if name not in OBJECTIVES or not sep or not k.isdigit() or not 1 <= int(k) <= MAX_K:
        raise param_error("objective", where, "'ndcg@K' or 'hitrate@K' (e.g. 'ndcg@15')",
                          objective)
    return name, int(k)


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """Every ``n``-vector of multiples of ``step`` summing to 1.

    >>> simplex_grid(2, 0.5)
    [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    """
    parts = int(round(1.0 / step))
    out = []
    for c in itertools.product(range(parts + 1), repeat=n):
        if sum(c) == parts:
            out.append(tuple(x / parts for x in c))
    return out


def _part(sessions, prefixes: tuple[str, ...]):
    from prodfusion.data.sessions import Sessions

    if sessions is None:
        return None
    f = sessions.frame.filter(pl.any_horizontal([pl.col("session").str.starts_with(p)
                                                 for p in prefixes]))
    return Sessions(f) if f.height else None


class _Scorer:
    """Per-modality cosines of the validation queries, combined per configuration."""

    def __init__(self, ev: Any, mods: tuple[str, ...], q: np.ndarray, t: np.ndarray,
                 counts: np.ndarray | None, metric: str, k: int) -> None:
        self.mods, self.metric, self.k = mods, metric, k
        self.uq, inv = np.unique(q, return_inverse=True)
        self.inv, self.t = inv, t
        self.counts = counts
        self.cos, self.both = {}, {}
        for m in mods:
            e = ev.embeddings_[m]
            v = np.asarray(e.rows(slice(None)) if hasattr(e, "rows") else e.vectors, np.float32)
            norms = np.linalg.norm(v, axis=1)
            u = np.where(e.mask[:, None], v / np.maximum(norms, 1e-30)[:, None], 0.0)
            u = u.astype(np.float32)
            self.cos[m] = u[self.uq] @ u.T
            self.both[m] = e.mask[self.uq][:, None] & e.mask[None, :]
        self.n = len(ev.catalog)

    def score(self, wt) -> float:
        from prodfusion.evaluation.retrieval import per_query_metrics
        from prodfusion.fusion.weights import confidence, intermediate_combine
        from prodfusion.index.exact import topk_rows

        conf = confidence(self.counts, wt.n0) if wt.n0 is not None else None
        s = intermediate_combine(wt, self.mods, self.cos, self.both,
                                 None if conf is None else conf[self.uq], conf)
        s[np.arange(len(self.uq)), self.uq] = -np.inf
        ranked = topk_rows(s, self.k)[0]
        m = per_query_metrics(ranked[self.inv], self.t, self.k)
        return float(np.mean(m["ndcg" if self.metric == "ndcg" else "hit"]))


def tune_weights(
    rec: Any,
    *,
    sessions: Any = None,
    pairs: Any = None,
    objective: str = "ndcg@15",
    modalities: Sequence[str] | str | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
    step: float = 0.25,
    calibrations: Sequence[str] = ("none", "zscore"),
    n0_grid: Sequence[float | None] = (None, 2.0, 10.0),
    max_queries: int = 2000,
    min_weight: float = 0.05,
    protocol: str = "leave-last-out",
    prod2vec: Any = None,
    progress: bool | Callable = False,
) -> dict:
    """Choose intermediate-fusion weights, calibration and ``n0`` on a validation split.

    ``min_weight`` is the smallest weight a modality can get (after normalisation): with a
    weight of exactly 0, a product that has only that modality in common with the query —
    e.g. a product without clicks when the search picked clicks alone — would get no
    recommendation at all; at a small floor its other modalities still serve it (cold
    start), and the validation score says what the floor costs. ``0`` allows exact zeros.

    Returns a dict with ``weights`` (summing to 1), ``calibration``, ``n0``, ``objective``,
    ``validation_score``, ``reference_scores`` (equal weights and each modality alone, on the
    same validation cases), ``n_configs``, ``split`` (counts) and ``fingerprints``.

    Raises
    ------
    ParameterError
        No interactions; a modality the model lacks; a bad objective.
    DataError
        No held-out validation pair left after cleaning.
    """
    from prodfusion.evaluation.retrieval import (
        _Progress,
        check_no_leak,
        heldout_recommender,
        split_interactions,
    )
    from prodfusion.fusion.base import check_modalities
    from prodfusion.fusion.weights import Weighting, estimate_stats

    where = "tune()"
    t0 = time.perf_counter()
    metric, k = parse_objective(objective, where)
    if sessions is None and pairs is None:
        raise ParameterError(
            f"{where} needs interactions to learn from: pass --interactions (sessions) and/or "
            "--pairs (co-interaction pairs)."
        )
    if not is_real(step) or not 0 < step <= 0.5 or abs(round(1 / step) * step - 1) > 1e-9:
        raise param_error("step", where, "1/N for an integer N ≥ 2 (e.g. 0.25)", step)
    for c in calibrations:
        if c not in ("none", "zscore"):
            raise param_error("calibrations", where, "a subset of ['none', 'zscore']", c)
    available = tuple(rec.embeddings_)
    mods = check_modalities(modalities, available, where)
    log = _Progress(progress)
    outer = split_interactions(rec.catalog, sessions, pairs, test_fraction=test_fraction,
                               seed=seed, protocol=protocol)
    # The outer test cases are never read below: only outer.train is split again.
    s_part = _part(outer.train, ("s:", "h:"))
    p_part = _part(outer.train, ("p:",))
    if s_part is not None and len(s_part) < 2:
        s_part = None
    if s_part is None and p_part is None:
        raise DataError(f"{where}: nothing is left to learn from once the test part is held out.")
    inner = split_interactions(rec.catalog, s_part, p_part, test_fraction=val_fraction,
                               seed=seed + 7919, protocol=protocol)
    check_no_leak(inner, rec.catalog)
    q = np.concatenate([ho.query_rows for ho in inner.heldout.values()] or [np.zeros(0, int)])
    t = np.concatenate([ho.target_rows for ho in inner.heldout.values()] or [np.zeros(0, int)])
    if len(q) == 0:
        raise DataError(
            f"{where}: no held-out validation pair is left after cleaning (the interactions "
            "hold too few sessions of 2+ known products, or pairs of products with 2+ "
            "partners). Pass more interactions."
        )
    uq = np.unique(q)
    if len(uq) > max_queries:
        keep = np.random.default_rng(seed).choice(uq, size=max_queries, replace=False)
        sel = np.isin(q, keep)
        q, t = q[sel], t[sel]
    log(f"retraining Prod2Vec on the fitting part ({len(inner.train or []):,} sessions); "
        f"{len(q):,} validation cases")
    ev = heldout_recommender(rec, inner.train, prod2vec=prod2vec, progress=bool(progress is True))
    mods = tuple(m for m in mods if m in ev.embeddings_)
    counts = None
    if "clicks" in mods and inner.train is not None:
        pc = inner.train.product_counts()
        counts = np.array([pc.get(p, 0) for p in rec.catalog.ids], dtype=np.int64)
    scorer = _Scorer(ev, mods, q, t, counts, metric, k)
    stats = estimate_stats(ev.embeddings_, mods, seed=seed) if "zscore" in calibrations else {}
    n0s = list(n0_grid) if "clicks" in mods else [None]
    cache: dict = {}

    def floored(w: tuple[float, ...]) -> tuple[float, ...]:
        if not any(w):
            return w
        total = sum(w)
        w = tuple(x / total for x in w)
        if min_weight <= 0 or min(w) >= min_weight:
            return w
        free = [x for x in w if x > min_weight]
        scale = (1.0 - min_weight * (len(w) - len(free))) / sum(free)
        return tuple(min_weight if x <= min_weight else x * scale for x in w)

    def evaluate(w: tuple[float, ...], cal: str, n0) -> float:
        w = floored(w)
        key = (tuple(round(x, 9) for x in w), cal, n0)
        if key not in cache:
            if not any(w):
                cache[key] = -math.inf
            else:
                wt = Weighting.make(dict(zip(mods, w, strict=True)), cal,
                                    stats if cal != "none" else None, n0)
                cache[key] = scorer.score(wt)
        return cache[key]

    grid = simplex_grid(len(mods), step)
    log(f"simplex grid: {len(grid)} weightings × {len(calibrations)} calibrations × "
        f"{len(n0s)} n0 over {'+'.join(mods)}")
    best = (-math.inf, None)
    for cal in calibrations:
        for n0 in n0s:
            for w in grid:
                if n0 is not None and (w[mods.index("clicks")] == 0):
                    continue  # n0 changes nothing without a click weight
                sc = evaluate(w, cal, n0)
                if sc > best[0]:
                    best = (sc, (w, cal, n0))
    score, (w, cal, n0) = best
    w = floored(w)
    for delta in (step / 2, step / 4):  # coordinate search around the best grid point
        improved = True
        while improved:
            improved = False
            for j in range(len(mods)):
                for sign in (1, -1):
                    cand = list(w)
                    cand[j] = max(0.0, cand[j] + sign * delta)
                    total = sum(cand)
                    if total <= 0:
                        continue
                    cand = floored(tuple(x / total for x in cand))
                    sc = evaluate(cand, cal, n0)
                    if sc > score + 1e-12:
                        score, w, improved = sc, cand, True
    refs = {"equal weights (calibration none)": evaluate(tuple(1.0 for _ in mods), "none", None)}
    for m in mods:  # exact zeros here: the modality really alone
        wt = Weighting.make({m: 1.0}, "none", None, None)
        refs[f"{m} alone"] = scorer.score(wt)
    fingerprints = {}
    for name, s in (("sessions", sessions), ("pairs", pairs)):
        if s is not None and hasattr(s, "fingerprint"):
            fingerprints[name] = s.fingerprint()
    log(f"best {metric}@{k} on validation {score:.4f}: "
        + ", ".join(f"{m}={x:.3f}" for m, x in zip(mods, w, strict=True)) + f", calibration {cal}"
        + (f", n0 {n0}" if n0 is not None else ""))
    return {
        "fusion": "intermediate",
        "weights": {m: float(x) for m, x in zip(mods, w, strict=True)},
        "calibration": cal,
        "n0": n0,
        "objective": f"{metric}@{k}",
        "validation_score": score,
        "reference_scores": refs,
        "n_configs": len(cache),
        "search": {"step": step, "min_weight": min_weight, "calibrations": list(calibrations),
                   "n0_grid": [x for x in n0s], "max_queries": max_queries},
        "split": {"protocol": protocol, "test_fraction": test_fraction,
                  "val_fraction": val_fraction, "seed": seed,
                  "n_validation_cases": int(len(q)),
                  "n_validation_queries": int(len(np.unique(q))),
                  "n_fitting_sessions": len(inner.train) if inner.train is not None else 0,
                  "test_cases_set_aside": int(sum(len(h) for h in outer.heldout.values()))},
        "fingerprints": fingerprints,
        "seconds": round(time.perf_counter() - t0, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
