"""Learning the fusion weights, calibration and click confidence on held-out interactions.

:func:`tune_weights` never looks at the test part that ``evaluate retrieval`` scores:

1. the interactions are split exactly as the evaluation splits them (same protocol, fraction
   and seed: :func:`~prodfusion.evaluation.retrieval.split_interactions`); the held-out test
   cases are set aside unread;
2. the *training* part is split again the same way into a fitting part and a validation part,
   ``repeats`` times (pairs by another seed; time-ordered sessions keep the latest block
   unless ``rolling``, which validates split ``r`` on the ``r``-th latest block);
3. Prod2Vec is retrained on each fitting part only (from another seed each time, on one
   thread up to :data:`~prodfusion.encoders.clicks.REPRODUCIBLE_MAX_CLICKS` clicks unless a
   thread count was given, so two runs choose alike; the model's text and image vectors are
   kept), and every candidate configuration ranks the
   validation queries of every split; a target tied with other candidates counts at the mean
   of its possible ranks (:func:`~prodfusion.evaluation.metrics.tie_aware_metric`),
   so the row order that breaks ties at serving time neither helps nor hurts a weighting;
3b. with ``cooc`` and sessions of three or more clicks, the co-occurrences' proximity
   exponent (``cooc_decays``) is chosen first, on cooc alone, and every split counts with it
   (:func:`~prodfusion.evaluation.tuning_scorer._choose_decay`);
4. the search is a simplex grid over the modality weights (step ``step``) × calibrations ×
   click-confidence constants ``n0``, refined by coordinate search (multiplicative steps);
   ``"min:K"`` entries of ``n0_grid`` (a query seen fewer than K times ranked without its
   clicks, :attr:`~prodfusion.fusion.weighting.Weighting.confidence`) are not on the grid
   but tried at the weights the other entries find, and refined from there if better.
   Configurations are compared slice-safe first (none of the validation slices of
   ``min_slice_cases`` or more cases below the best single modality by more than
   ``slice_noise`` standard errors of the paired difference on its cases), then by the criterion
   (``selection="lcb"``: the objective minus one standard error of its per-case difference
   from the best single modality; ``"mean"``: the objective);
4b. with ``shrink``, the weights found are moved towards equal weights as far as validation
   allows (:func:`_shrink_to_equal`: the one-standard-error rule, preferring the weighting
   closest to the paper's equal weights); off by default, as it cost next clicks beyond the
   noise on the demo's test part (docs/results/demo_shrinkage.md);
5. when some weights are 0, the **fallback weights** that rank pairs sharing only those
   modalities are chosen the same way on every validation case as if the weighted
   modalities were missing (the sparsest within one standard error of the best:
   :func:`_one_se`), and kept if the whole scores at least as well as with the plain
   fallback. A modality the candidate lacks counts in them as a random product's z-score
   (:data:`FALLBACK_MISSING`), so a product without a photo is not ranked above one whose
   photo is as ordinary as a random product's.

Only intermediate fusion is tuned: its score is a function of the per-modality cosines, which
are computed once for the validation queries, so each configuration costs one weighted sum
and one top-k (:func:`prodfusion.fusion.weights.intermediate_combine`, the fusers' formula).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from prodfusion._checks import MAX_K, check_int, is_real
from prodfusion.errors import ParameterError, param_error
from prodfusion.evaluation.protocol import LOG_CATALOG_RATIO, LOG_CATALOG_SHARE
from prodfusion.evaluation.tuning_scorer import (
    _case_groups,
    _check_interactions,
    _covering,
    _one_se,
    _outer_parts,
    _paired_se,
    _provenance,
    _validation_folds,
)
from prodfusion.fusion.weighting import DEFAULT_N0_GRID, format_n0, n0_entry, parse_n0

__all__ = ["tune_weights", "parse_objective", "simplex_grid", "TIE_RATIO", "split_mismatch",
           "gain_verdict"]

#: The smallest weight the coordinate search gives a modality, relative to the smallest positive
#: one: small enough to order only near-ties of the others (a tie-break), large enough for
#: float32 scores to resolve it.
TIE_RATIO = 1e-3

OBJECTIVES = ("ndcg", "hitrate")

#: Most validation splits a tuning averages (``repeats``; the CLI's ``--repeats`` and
#: ``build --tune-repeats``).
MAX_REPEATS = 20

#: How tuned fallback weights treat a modality the candidate lacks
#: (:attr:`prodfusion.fusion.weighting.Weighting.fallback_missing`): as a random product's
#: similarity, so lacking one is no bonus. Folders tuned before it keep "drop".
FALLBACK_MISSING = "zero"


def parse_objective(objective: str, where: str = "tune()") -> tuple[str, int]:
    """``"ndcg@15"`` → ``("ndcg", 15)``."""
    name, sep, k = str(objective).lower().partition("@")
    if name not in OBJECTIVES or not sep or not k.isdigit() or not 1 <= int(k) <= MAX_K:
        raise param_error("objective", where, "'ndcg@K' or 'hitrate@K' (e.g. 'ndcg@15')",
                          objective)
    return name, int(k)


def gain_verdict(value: float, se: float) -> str:
    """``"none"`` (no gain at all), ``"above"`` / ``"below"`` the noise (beyond 1.96
    standard errors) or ``"within"`` it: of a tuning's gain over the best single modality
    (``prodfusion tune`` words it; a cross-fitted ``"below"`` makes :func:`tune_weights` serve
    that modality alone).

    >>> gain_verdict(0.0, 0.0), gain_verdict(0.005, 0.002), gain_verdict(-0.005, 0.002)
    ('none', 'above', 'below')
    """
    if abs(value) <= 1e-12:
        return "none"
    return "above" if value > 1.96 * se else "below" if value < -1.96 * se else "within"


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


def _calibration(c: str) -> tuple[str, float]:
    """``"zmean@0.5"`` → ``("zmean", 0.5)`` (:attr:`Weighting.impute`); ``"zscore"`` →
    ``("zscore", 0.0)``. ValueError on anything else."""
    from prodfusion.fusion.weights import CALIBRATIONS

    name, sep, beta = str(c).partition("@")
    if name not in CALIBRATIONS or sep and (name != "zmean" or not beta):
        raise ValueError(c)
    b = float(beta) if sep else 0.0
    if not 0 <= b <= 1:
        raise ValueError(c)
    return name, b


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
    calibrations: Sequence[str] = ("none", "zscore", "zmean"),
    n0_grid: Sequence[float | str | None] = DEFAULT_N0_GRID,
    max_queries: int = 2000,
    min_weight: float = 0.0,
    n_candidates: int = 200,
    validate_on: str = "all",
    protocol: str = "leave-last-out",
    prod2vec: Any = None,
    repeats: int = 3,
    rolling: bool = False,
    selection: str = "lcb",
    slice_safe: bool = True,
    min_slice_cases: int = 20,
    slice_noise: float = 1.0,
    tune_fallback: bool = True,
    cooc_decays: Sequence[float] = (0.0, 1.0),
    shrink: bool = False,
    cross_fit: bool = True,
    single_if_worse: bool = True,
    progress: bool | Callable = False,
) -> dict:
    """Choose intermediate-fusion weights, calibration and ``n0`` on a validation split.

    The search: a simplex grid (step ``step``) × calibrations × ``n0``, then a coordinate
    search from the best point that multiplies one weight at a time by 2, √2, 2^¼ (and
    their inverses), sets it to 0 or lifts a zero weight to a quarter, a sixteenth or
    :data:`TIE_RATIO` (a thousandth: a **tie-break** — it orders what the other modalities leave
    tied or nearly so, e.g. the many products with the same co-occurrence count, or none) of
    the smallest positive one — weights are scale-free ratios (a z-scored co-occurrence and a z-scored
    click cosine spread very differently), so multiplicative steps reach the small ratios an
    additive grid cannot — and finally retries every calibration and ``n0`` at the weights
    found.

    The objective is the mean of the metric **per source** (sessions, pairs), each source
    counting alike; ``validate_on="sessions"`` or ``"pairs"`` scores one source only (both
    still train): tune for the kind of interaction the recommendations will be judged on.
    Validation ranks are counted among each query's candidates (the union of every
    modality's ``n_candidates`` nearest products and its targets) plus the rest of the
    catalog, estimated from a sample of ``n_candidates`` products outside them
    (:class:`~prodfusion.evaluation.tuning_scorer._Scorer`).

    The objective is averaged over ``repeats`` validation splits (module docstring). With
    ``selection="lcb"`` (default) configurations are ranked by the objective minus one
    standard error of their per-case difference from the best single modality, so a mix
    that wins by a few noisy cases does not replace that modality; ``slice_safe`` first
    prefers configurations that are nowhere below the best single modality in a validation
    slice (query / target with or without training clicks, with or without a photo) of
    ``min_slice_cases`` or more cases, where "below" means by more than ``slice_noise``
    standard errors of the per-case difference from that slice's best single modality on
    the slice's cases (0: any shortfall, the rule until the twenty-fourth session, under
    which a 29-case slice of H&M's pairs vetoed a weighting 0.003 nDCG@15 better on 6,000
    validation cases: docs/results/README.md). Validated together, each source is such a slice too;
    where no configuration keeps every source at its best single modality (the sources
    conflict: H&M's baskets want co-occurrence, its co-purchase pairs Prod2Vec), the choice
    is the one, safe in the other slices, whose **worst source keeps the largest share** of
    its best single modality (``worst_source_share`` in the record): the mean over sources
    would let the source with the larger figures decide alone.

    A weight of exactly 0 is a **last resort** (``Weighting.fallback``, written with the
    weights): a pair sharing only zero-weight modalities is ranked after every other
    candidate instead of never, so clicks alone still serves products without click vectors
    (by their titles and photos, like the paper's baseline). With ``tune_fallback`` those
    pairs are ranked by learnt fallback weights (module docstring), else by their mean raw
    cosine. ``min_weight > 0`` instead keeps at least ``min_weight`` × the largest weight on
    a modality wherever the others would not cover every product; 0 (default) relies on the
    fallback.

    ``shrink=True`` then moves the weights along ``(1 − λ)·w + λ·(1/M, …)`` to the largest
    λ of :data:`SHRINK_STEPS` whose validation score is within one standard error of the
    tuned weights' (and as slice-safe), recorded as ``shrinkage`` (``lambda``, ``from``,
    ``score_from``, ``score``, ``se``): every modality counts more evenly, at a cost in the
    objective that validation may not resolve (on the demo it bought a top-15 category
    precision of 1.000 for −0.005 nDCG@15 on the test part, beyond the noise; on H&M's
    baskets it cost −0.010: docs/results/README.md, twentieth session).

    ``n0_grid`` entries are None, a number (``c(n) = n / (n + n0)``) or ``"min:K"``
    (the clicks of a query seen fewer than K times count as absent; recorded as ``n0`` = K
    and ``confidence`` = ``"min"``).

    Before the weights, with ``cooc`` among the modalities and sessions of three or more
    clicks, the co-occurrences' proximity exponent is chosen among ``cooc_decays`` and the
    model's own (:class:`~prodfusion.fusion.cooc.Cooc`'s ``decay``: 0 counts every pair of a
    session alike, 1 weighs a pair by 1/distance) on the same validation splits, scoring cooc
    alone; another exponent replaces the model's only when it is ahead by more than two
    standard errors (``selection="lcb"``). ``cooc_decays=()`` keeps the model's.

    Returns a dict with ``weights`` (summing to 1), ``cooc_decay`` and ``cooc_decay_scores``
    (where chosen), ``shrinkage`` (with ``shrink``), ``fallback`` (``True`` or the fallback
    weights), ``calibration``, ``n0``, ``objective``, ``validation_score`` (the objective,
    mean over the splits), ``selection_criterion``, ``slice_safe``, ``validation_slices``
    (per slice: cases, the choice, each modality alone and the best of them),
    ``reference_scores`` (equal weights and each modality alone, on the same validation
    cases), ``gain`` (``over``: the best modality alone; ``value``: the choice's validation
    objective minus that modality's; ``se``: one standard error of the paired per-case
    difference, a case counted once over the splits: whether fusing pays on this data beyond
    the validation noise; ``cross_fitted``: the same gain with the choice made and scored on
    different cases — the value above is the best of hundreds of weightings scored on the
    cases that chose it, so it runs high, most where nothing pays: on 40 catalogs of random
    clicks and titles it was "above the noise" in 9 (docs/benchmarks/gain_cross_fit_random.md).
    Here the validation cases (a case held out in several splits counted as one) are cut in
    :data:`CROSS_FIT_FOLDS` parts and each part is scored by the weighting the whole search
    (grid, coordinate search, the other calibrations and ``n0``; the same rules) chooses on
    the others, against the modality best alone on the others: ``value``, ``se``, ``folds``,
    ``same_as_chosen`` (parts whose choice is the tuned weighting), ``more_configs``
    (configurations the parts' searches scored beyond the tuning's own: its cost). The
    fallback weights and the shrinkage are not re-run per part; absent with fewer than two
    cases per part or ``cross_fit=False``, which saves the parts' searches: 6 % of the
    tuning's time on a 30,000-product synthetic shop, as much again on H&M's pairs,
    docs/benchmarks/gain_cross_fit_hm.md),
    ``single_if_worse`` (with ``single_if_worse=True``, the default, where the cross-fitted
    gain is below the noise, :func:`gain_verdict`, and the search chose more than the best
    modality alone: that modality alone is chosen instead — calibration none, no ``n0``, the
    fallback tuned for it — and this records ``modality`` and the weighting it replaced,
    ``instead_of``; ``False`` keeps the search's, as the fortieth session did),
    ``unconstrained`` (where the slice rule ruled out a weighting
    the search scored higher: the best of them, its ``validation_score`` and ``cost``, what
    the rule gives up on validation), ``n_configs``, ``split`` (counts), ``search`` (the settings) and ``fingerprints``.

    Raises
    ------
    ParameterError
        No interactions; a modality the model lacks; a bad objective.
    DataError
        No held-out validation pair left after cleaning.
    """
    from prodfusion.evaluation.retrieval import _Progress
    from prodfusion.fusion.base import check_modalities
    from prodfusion.fusion.weights import CALIBRATIONS, Weighting, format_weights

    where = "tune()"
    t0 = time.perf_counter()
    metric, k = parse_objective(objective, where)
    _check_interactions(sessions, pairs, where)
    if not is_real(step) or not 0 < step <= 0.5 or abs(round(1 / step) * step - 1) > 1e-9:
        raise param_error("step", where, "1/N for an integer N ≥ 2 (e.g. 0.25)", step)
    for c in calibrations:
        try:
            _calibration(c)
        except ValueError:
            raise param_error("calibrations", where, f"a subset of {list(CALIBRATIONS)} "
                              "(zmean@β with β in [0, 1]: Weighting.impute)", c) from None
    if isinstance(min_weight, bool) or not isinstance(min_weight, (int, float)) \
            or not 0 <= min_weight < 1:
        raise param_error("min_weight", where, "a number in [0, 1)", min_weight)
    if validate_on not in ("all", "sessions", "pairs"):
        raise param_error("validate_on", where, "'all', 'sessions' or 'pairs'", validate_on)
    if validate_on == "sessions" and sessions is None or validate_on == "pairs" and pairs is None:
        raise ParameterError(
            f"{where}: validate_on={validate_on!r} needs that source; pass "
            f"{'--interactions' if validate_on == 'sessions' else '--pairs'}."
        )
    if selection not in ("lcb", "mean"):
        raise param_error("selection", where, "'lcb' or 'mean'", selection)
    if not isinstance(shrink, bool):
        raise param_error("shrink", where, "True or False", shrink)
    if not isinstance(cross_fit, bool):
        raise param_error("cross_fit", where, "True or False", cross_fit)
    if not isinstance(single_if_worse, bool):
        raise param_error("single_if_worse", where, "True or False", single_if_worse)
    check_int(repeats, "repeats", where, low=1, high=MAX_REPEATS)
    check_int(min_slice_cases, "min_slice_cases", where, low=1)
    if not is_real(slice_noise) or not 0 <= float(slice_noise) < math.inf:
        raise param_error("slice_noise", where, "a number >= 0 (standard errors)", slice_noise)
    slice_noise = float(slice_noise)
    available = rec.available_modalities
    mods = check_modalities(modalities, available, where)
    log = _Progress(progress)
    # The outer test cases are never read below: only outer.train is split again.
    outer, s_part, p_part = _outer_parts(rec, sessions, pairs, test_fraction=test_fraction,
                                         seed=seed, protocol=protocol, where=where)
    from prodfusion.fusion.cooc import check_decay

    cooc_decays = tuple(check_decay(a, where) for a in cooc_decays)
    mods, folds, fit_sizes, masks, decay = _validation_folds(
        rec, s_part, p_part, mods, validate_on=validate_on, val_fraction=val_fraction,
        seed=seed, protocol=protocol, repeats=repeats, rolling=rolling,
        max_queries=max_queries, prod2vec=prod2vec, metric=metric, k=k,
        n_candidates=n_candidates, with_stats=bool(set(calibrations) - {"none"}) or tune_fallback,
        log=log, progress=progress, where=where, cooc_decays=cooc_decays, selection=selection)
    needed = _covering(mods, masks)
    groups = _case_groups(folds)  # a case held out in several splits counts once in errors
    case_src = np.concatenate([sc.src for sc, _ in folds])  # errors of a mean over sources
    # each n0 entry as given (None, a number or "min:K") → (n0, confidence form)
    n0_of = {n0_entry(x, where): parse_n0(x, where) for x in n0_grid}
    n0s = list(n0_of) if "clicks" in mods else [None]
    n0_of.setdefault(None, (None, "ratio"))
    cache: dict = {}
    case_values: dict = {}  # key → per-case values (float32): shrinkage, the cross-fitted gain

    def fixed(w: tuple[float, ...]) -> tuple[float, ...]:
        """Normalised to sum 1, with the zero weights that coverage needs lifted."""
        if not any(w):
            return w
        w = list(w)
        if min_weight > 0:  # a floor, not only a lift: a needed weight never goes below it
            top = max(w)
            pos = frozenset(m for m, x in zip(mods, w, strict=True) if x >= min_weight * top)
            for m in needed(pos):
                w[mods.index(m)] = max(w[mods.index(m)], min_weight * top)
        total = sum(w)
        return tuple(x / total for x in w)

    def measure(make: Callable, keep: list | None = None) -> tuple[float, dict]:
        """Objective (mean over the validation splits) and ``{slice: (value, cases)}`` of
        the weighting ``make(stats)`` builds (its per-case values appended to ``keep``)."""
        scores: list = []
        per: dict = {}
        for sc, st in folds:
            v = sc.values(make(st))
            if keep is not None:
                keep.append(v)
            scores.append(sc.objective(v))
            for name, mask in sc.slices.items():
                per.setdefault(name, []).append((sc.objective(v, mask), int(mask.sum())))
        sl = {name: (float(np.nanmean([x for x, _ in xs])) if any(n for _, n in xs)
                     else float("nan"), sum(n for _, n in xs)) for name, xs in per.items()}
        return float(np.mean(scores)), sl

    def weighting(w, cal, n0, fb) -> Callable:
        name, beta = _calibration(cal)
        value, form = n0_of[n0]
        return lambda st: Weighting.make(dict(zip(mods, w, strict=True)), name,
                                         st if name != "none" or isinstance(fb, dict) else None,
                                         value, fallback=fb, impute=beta,
                                         fallback_missing=FALLBACK_MISSING, confidence=form)

    # each modality alone (raw cosine, no fallback): the floor of every slice
    single_values: dict = {}
    singles = {m: measure(lambda st, m=m: Weighting.make({m: 1.0}, "none", None, None),
                          single_values.setdefault(m, [])) for m in mods}
    best_single = max(mods, key=lambda m: singles[m][0])
    v_best = np.concatenate(single_values[best_single])
    def slice_value(m: str, name: str) -> float:
        v = singles[m][1][name][0]
        return -math.inf if math.isnan(v) else v

    # per slice: its best single modality (floor_of) and that modality's value (floor)
    floor_of = {name: max(mods, key=lambda m, name=name: slice_value(m, name))
                for name in next(iter(singles.values()))[1]}
    floor = {name: slice_value(m, name) for name, m in floor_of.items()}
    floor_all = max(v[0] for v in singles.values())
    # the slice's cases and the per-case values of each modality alone, for the noise of a
    # shortfall (slice_noise)
    slice_cases = {name: np.concatenate([np.asarray(sc.slices[name], bool) if name in sc.slices
                                         else np.zeros(len(sc.src), bool) for sc, _ in folds])
                   for name in floor}
    single_cases = {m: np.concatenate(single_values[m]) for m in mods}
    # what every comparison with the best single modality reads; ``mask`` (None: every case)
    # restricts it to some validation cases (the cross-fitted gain, below)
    every = _Floors(floor_of, floor, floor_all, v_best, None, None)
    offsets = np.cumsum([0] + [len(sc.src) for sc, _ in folds])

    def on(vals: np.ndarray, mask: np.ndarray) -> float:
        """The objective of the per-case ``vals`` over the cases in ``mask``, as
        :func:`measure` averages it (each split's, then their mean; NaN where none)."""
        xs = [sc.objective(vals[a:b], mask[a:b])
              for (sc, _), a, b in zip(folds, offsets[:-1], offsets[1:], strict=True)]
        xs = [x for x in xs if not math.isnan(x)]
        return float(np.mean(xs)) if xs else float("nan")

    def floors_on(mask: np.ndarray, part: int) -> _Floors:
        """:class:`_Floors` of the cases in ``mask`` (part ``part``): the best single
        modality overall and in each slice, chosen on those cases alone."""
        alone = {m: on(single_cases[m], mask) for m in mods}
        fl_of, fl = {}, {}
        for name, cases in slice_cases.items():
            there = {m: on(single_cases[m], mask & cases) for m in mods}
            there = {m: -math.inf if math.isnan(v) else v for m, v in there.items()}
            fl_of[name] = max(mods, key=there.get)
            fl[name] = there[fl_of[name]]
        top = max(mods, key=alone.get)
        return _Floors(fl_of, fl, alone[top], single_cases[top], mask,
                       {name: mask & cases for name, cases in slice_cases.items()}, part)

    def slice_se(name: str, vals: np.ndarray, at: _Floors = every) -> float:
        """Standard error of the per-case difference of ``vals`` from slice ``name``'s best
        single modality, on the slice's cases (what ``slice_noise`` counts in)."""
        cases = slice_cases[name] if at.mask is None else slice_cases[name] & at.mask
        return float(_paired_se(vals[cases], single_cases[at.floor_of[name]][cases],
                                groups[cases], case_src[cases]))

    def below(name: str, v: float, vals: np.ndarray | None, at: _Floors = every) -> bool:
        """Below slice ``name``'s best single modality by more than ``slice_noise`` standard
        errors of the paired per-case difference on the slice's cases."""
        gap = at.floor[name] - v
        if gap <= 1e-12:
            return False
        if slice_noise == 0 or vals is None:
            return True
        return gap > slice_noise * slice_se(name, vals, at)

    def safe(score: float, sl: dict, vals: np.ndarray | None = None, at: _Floors = every) -> int:
        """2: not below the best single modality overall, nor in any slice of enough cases
        (beyond its noise: :func:`below`); 1: so everywhere but in a source slice
        (``source: pairs``: with sessions and pairs both validated, one kind of interaction
        may pay for the other only when no weighting serves both); 0: below somewhere else."""
        if not slice_safe:
            return 2
        if score < at.floor_all - 1e-12:
            return 0
        ok = {name: not below(name, v, vals, at) for name, (v, n) in sl.items()
              if n >= min_slice_cases and not math.isnan(v)}
        if not all(x for name, x in ok.items() if not name.startswith("source: ")):
            return 0
        return 2 if all(ok.values()) else 1

    def worst_source_share(sl: dict, at: _Floors = every) -> float:
        """The lowest ``objective / best single modality's`` over the source slices: where
        no weighting keeps every kind of interaction at its best single modality, the
        choice is the one whose worst source keeps the largest share of it — a source's
        nDCG does not buy another's (co-purchase pairs score a third of what baskets do,
        so a mean over sources would let the baskets decide alone)."""
        shares = [v / at.floor[name] for name, (v, n) in sl.items()
                  if name.startswith("source: ") and n and not math.isnan(v)
                  and at.floor[name] > 0]
        return min(shares, default=-math.inf)

    def judge(score: float, sl: dict, vals: np.ndarray, at: _Floors = every) -> tuple:
        """``(slice-safety level, criterion)`` of a weighting whose objective is ``score``,
        its slices ``sl`` and its per-case values ``vals``, against the floors ``at``."""
        cases = slice(None) if at.mask is None else at.mask
        crit = score
        if selection == "lcb":
            crit -= _paired_se(vals[cases], at.v_best[cases], groups[cases], case_src[cases])
        level = safe(score, sl, vals, at)
        if level == 1:  # the sources conflict: the worst one's share of its best
            crit = worst_source_share(sl, at)
        return level, crit

    def key_of(w, cal, n0, fb) -> tuple:
        return (tuple(round(x, 9) for x in w), cal, n0,
                fb if isinstance(fb, bool) else tuple(sorted(fb.items())))

    judged: dict = {}  # (key, part) → (level, criterion) on a part of the cases

    def evaluate(w: tuple[float, ...], cal: str, n0, fb=True,
                 at: _Floors = every) -> tuple[bool, float]:
        """``(slice-safety level, criterion)``: :func:`safe`'s level, and the objective
        minus, under ``selection="lcb"``, one standard error of the per-case difference from
        the best single modality; on the cases in ``at.mask`` only, against their own
        floors, where ``at`` is not ``every`` (the cross-fitted gain)."""
        w = fixed(w)
        key = key_of(w, cal, n0, fb)
        if key not in cache:
            if not any(w):
                cache[key] = (0, -math.inf, -math.inf, {})
            else:
                keep: list = []
                score, sl = measure(weighting(w, cal, n0, fb), keep)
                vals = np.concatenate(keep)
                case_values[key] = vals.astype(np.float32)
                level, crit = judge(score, sl, vals)
                cache[key] = (level, crit, score, sl)
        if at is every or key not in case_values:
            return cache[key][:2]
        jk = (key, at.part)
        if jk not in judged:
            vals = case_values[key]
            sl = {name: (on(vals, cases), int(cases.sum())) for name, cases in at.slices.items()}
            judged[jk] = judge(on(vals, at.mask), sl, vals, at)
        return judged[jk]

    def better(a: tuple[bool, float], b: tuple[bool, float]) -> bool:
        """The higher slice-safety level first, then the higher criterion."""
        return a[0] > b[0] or (a[0] == b[0] and a[1] > b[1] + 1e-12)

    grid = simplex_grid(len(mods), step)
    # "min:K" entries refine the weights found with the others (tried at them below): on the
    # grid they would start the coordinate search from weightings that ignore the rarely
    # seen queries' clicks, where the tie-break weights the others find are not reached
    grid_n0s = [x for x in n0s if n0_of[x][1] == "ratio"] or n0s
    log(f"simplex grid: {len(grid)} weightings × {len(calibrations)} calibrations × "
        f"{len(grid_n0s)} n0 over {'+'.join(mods)}, {repeats} validation split(s)"
        + (f"; then {len(n0s) - len(grid_n0s)} min-count n0 at the weights found"
           if len(grid_n0s) < len(n0s) else ""))

    def coordinate(w, cal, n0, score, ev=None, names=mods, at: _Floors = every):
        ev = ev or (lambda w: evaluate(w, cal, n0, at=at))
        for factor in (2.0, 2 ** 0.5, 2 ** 0.25):
            improved = True
            while improved:
                improved = False
                for j in range(len(names)):
                    pos = [x for x in w if x > 0]
                    moves = [w[j] * factor, w[j] / factor, 0.0] if w[j] > 0 else \
                        [min(pos) / 4, min(pos) / 16, min(pos) * TIE_RATIO] if pos else []
                    for x in moves:
                        cand = list(w)
                        cand[j] = x
                        if not any(cand):
                            continue
                        total = sum(cand)
                        cand = fixed(tuple(cand)) if names is mods else \
                            tuple(c / total for c in cand)
                        sc = ev(cand)
                        if better(sc, score):
                            score, w, improved = sc, cand, True
        return w, score

    def search(at: _Floors = every) -> tuple:
        """The grid, the coordinate search from its best point, then the other calibrations
        and ``n0`` at the weights found: ``(weights, calibration, n0, (level, criterion))``,
        judged on the cases of ``at``."""
        best = ((0, -math.inf), None)
        for cal in calibrations:
            for n0 in grid_n0s:
                for w in grid:
                    if n0 is not None and (w[mods.index("clicks")] == 0):
                        continue  # n0 changes nothing without a click weight
                    sc = evaluate(w, cal, n0, at=at)
                    if better(sc, best[0]):
                        best = (sc, (w, cal, n0))
        score, (w, cal, n0) = best
        w, score = coordinate(fixed(w), cal, n0, score, at=at)
        for c2 in calibrations:  # the other calibrations and n0 at the weights found
            for n2 in n0s:
                if (c2, n2) == (cal, n0) or (n2 is not None and w[mods.index("clicks")] == 0):
                    continue
                sc = evaluate(w, c2, n2, at=at)
                if better(sc, score):
                    w2, sc2 = coordinate(w, c2, n2, sc, at=at)
                    score, w, cal, n0 = sc2, w2, c2, n2
        return w, cal, n0, score

    w, cal, n0, score = search()
    shrunk = None
    if shrink and len(mods) > 1:
        w, shrunk = _shrink_to_equal(w, cal, n0, evaluate, cache, case_values, key_of, fixed,
                                     groups, case_src, log)

    def cross_fitted(n_folds: int = CROSS_FIT_FOLDS) -> dict | None:
        """The gain with the choice and the scoring on different cases: the validation cases
        (a case held out in several splits as one) in ``n_folds`` parts; each part's cases
        are scored by the weighting the whole search (grid, coordinate search, the other
        calibrations and ``n0``; the same rules) chooses on the other parts, against the
        modality best alone on the other parts. None: too few cases."""
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        if n_groups < 2 * n_folds:
            return None
        part = (np.random.default_rng(seed).permutation(n_groups) % n_folds)[groups]
        picked, alone = np.zeros(len(groups)), np.zeros(len(groups))
        same, chosen = 0, key_of(w, cal, n0, True)[:3]
        for f in range(n_folds):
            fit = part != f
            at = floors_on(fit, f)
            wf, cf, nf, _ = search(at)
            key = key_of(wf, cf, nf, True)
            same += key[:3] == chosen
            picked[~fit] = case_values[key][~fit]
            alone[~fit] = at.v_best[~fit]
        every_case = np.ones(len(groups), bool)
        return {"value": on(picked, every_case) - on(alone, every_case),
                "se": float(_paired_se(picked, alone, groups, case_src)),
                "folds": n_folds, "same_as_chosen": int(same)}

    t_cf = time.perf_counter()
    own = set(cache)  # the tuning's own configurations; the parts' searches add theirs
    oof = cross_fitted() if cross_fit else None
    by_parts = set(cache) - own
    if oof is not None:
        oof["more_configs"] = len(by_parts)
        log(f"the gain over {best_single} alone chosen and scored on different validation "
            f"cases ({oof['folds']} parts, {oof['more_configs']} more configurations scored): "
            f"{metric}@{k} "
            f"{oof['value']:+.4f} (one standard error {oof['se']:.4f}; "
            f"{time.perf_counter() - t_cf:.1f}s)")
    single = None  # the search's choice serves worse than the best modality alone
    alone = fixed(tuple(float(m == best_single) for m in mods))
    ranks_alike = key_of(w, cal, n0, True)[0] == key_of(alone, cal, n0, True)[0] \
        and (n0 is None or best_single != "clicks")  # a calibration of one modality: its order
    if oof is not None and single_if_worse and not ranks_alike \
            and gain_verdict(oof["value"], oof["se"]) == "below":
        single = {"modality": best_single, "instead_of": {
            "weights": {m: float(x) for m, x in zip(mods, w, strict=True)},
            "calibration": _calibration(cal)[0], "impute": _calibration(cal)[1],
            "n0": n0_of[n0][0]}}
        w, cal, n0, shrunk = alone, "none", None, None
        score = evaluate(w, cal, n0)
        log(f"chosen on some validation cases, the search's weighting scored below {best_single} "
            f"alone on the others beyond the noise: {best_single} alone is served instead "
            "(single_if_worse)")
    # what the slice rule costs: the highest objective the search met among the weightings
    # it ruled out (plain fallback, as the choice is compared here)
    unconstrained = None
    if slice_safe:
        kept = cache[key_of(w, cal, n0, True)]
        top = max(((v[2], k) for k, v in cache.items()
                   if k[3] is True and v[0] < kept[0] and v[2] > kept[2] + 1e-12),
                  key=lambda x: x[0], default=None)  # the score only: keys hold None
        if top is not None:
            uw, ucal, un0, _ = top[1]
            unconstrained = {
                "weights": {m: float(x) for m, x in zip(mods, uw, strict=True)},
                "calibration": _calibration(ucal)[0], "impute": _calibration(ucal)[1],
                "n0": n0_of[un0][0],
                **({"confidence": n0_of[un0][1]} if n0_of[un0][1] != "ratio" else {}),
                "validation_score": float(top[0]), "cost": float(top[0] - kept[2])}
    # the fallback: what serves the cases the weighted modalities cannot, learnt on every
    # validation case as if those modalities were missing (ranking by the others alone)
    fallback: bool | dict = True
    zero = [m for m, x in zip(mods, w, strict=True) if x == 0]
    if tune_fallback and zero:
        # the fallback mixes modalities, so it z-scores them; a modality the candidate lacks
        # counts as a random product's (z = 0), as "zmean" counts it (fallback_terms)
        fcal = "zmean"

        fb_values: dict = {}

        def ev_fb(f, zero=tuple(zero)):
            key = ("fallback", tuple(round(x, 9) for x in f), fcal)
            if key not in cache:
                keep: list = []
                sc, _ = measure(lambda st: Weighting.make(dict(zip(zero, f, strict=True)), fcal,
                                                          st if fcal != "none" else None), keep)
                cache[key] = (2, sc)
                fb_values[tuple(f)] = (sc, np.concatenate(keep))
            return cache[key]

        fgrid = simplex_grid(len(zero), step) if len(zero) > 1 else [(1.0,)]
        fbest = max(((ev_fb(f), f) for f in fgrid), key=lambda x: x[0][1])
        f, _ = coordinate(fbest[1], cal, n0, fbest[0], ev=ev_fb, names=tuple(zero))
        f = _one_se(fb_values, tuple(f), groups, case_src)
        tuned_fb = {m: float(x) for m, x in zip(zero, f, strict=True) if x > 0}
        cand = evaluate(w, cal, n0, tuned_fb)
        if not better(score, cand):  # at least as good as the plain fallback
            fallback, score = tuned_fb, cand
    final = cache[key_of(w, cal, n0, fallback)]
    is_safe, crit, score, chosen_slices = final
    equal = fixed(tuple(1.0 for _ in mods))
    evaluate(equal, "none", None)
    refs = {"equal weights (calibration none)": cache[key_of(equal, "none", None, True)][2]}
    for m in mods:  # exact zeros here: the modality really alone
        refs[f"{m} alone"] = singles[m][0]
    # the chosen weighting's per-case values: each slice's noise, and the gain's
    chosen_vals: list = []
    measure(weighting(w, cal, n0, fallback), chosen_vals)
    chosen_vals = np.concatenate(chosen_vals)
    gain = {"over": f"{best_single} alone", "value": float(score - singles[best_single][0]),
            "se": float(_paired_se(chosen_vals, v_best, groups, case_src))}

    if oof is not None:
        gain["cross_fitted"] = oof
    n_configs = len(set(cache) - by_parts)  # the tuning's own
    if slice_noise <= 0:
        chosen_vals = None
    slices = {name: {"n": n, "tuned": v, "best single": floor[name],
                     "se": None if chosen_vals is None else slice_se(name, chosen_vals),
                     **{f"{m} alone": singles[m][1][name][0] for m in mods}}
              for name, (v, n) in chosen_slices.items() if n}
    if slice_safe and is_safe == 1:
        log("no weighting scored at least the best single modality in every source (each kind "
            "of interaction) on validation; kept the one whose worst source keeps the largest "
            f"share of its best single modality ({crit:.0%}), safe in every other slice")
    elif slice_safe and not is_safe:
        log("no weighting scored at least the best single modality in every validation slice "
            f"of {min_slice_cases}+ cases; kept the best overall")
    log(f"best {metric}@{k} on validation {score:.4f}: "
        + format_weights(dict(zip(mods, w, strict=True))) + f", calibration {cal}"
        + (f", n0 {format_n0(*n0_of[n0])}" if n0 is not None else "")
        + (f", fallback {fallback}" if isinstance(fallback, dict) else ""))
    src = np.concatenate([sc.src for sc, _ in folds])
    presence = _presence(rec, slices, len(src))
    return {
        "fusion": "intermediate",
        "fallback": fallback,
        **({"fallback_missing": FALLBACK_MISSING} if isinstance(fallback, dict) else {}),
        **({"cooc_decay": decay["decay"], "cooc_decay_scores": decay["scores"]}
           if decay is not None else {}),
        "weights": {m: float(x) for m, x in zip(mods, w, strict=True)},
        "calibration": _calibration(cal)[0],
        "impute": _calibration(cal)[1],
        "n0": n0_of[n0][0],
        **({"confidence": n0_of[n0][1]} if n0_of[n0][1] != "ratio" else {}),
        "objective": f"{metric}@{k}",
        "validation_score": score,
        "reference_scores": refs,
        "slice_safe": is_safe == 2,
        "slice_safe_but_sources": is_safe == 1,
        **({"worst_source_share": crit} if is_safe == 1 else {}),
        "selection_criterion": crit,
        "gain": gain,
        **({"unconstrained": unconstrained} if unconstrained is not None else {}),
        **({"single_if_worse": single} if single is not None else {}),
        "validation_slices": slices,
        **({"presence": presence} if presence is not None else {}),
        **({"shrinkage": shrunk} if shrunk is not None else {}),
        "n_configs": n_configs,
        "search": {"step": step, "min_weight": min_weight, "calibrations": list(calibrations),
                   "n0_grid": [x for x in n0s], "max_queries": max_queries,
                   "n_candidates": n_candidates, "objective_average": "per source",
                   "validate_on": validate_on, "repeats": repeats, "rolling": rolling,
                   "selection": selection, "best_single": best_single,
                   "slice_safe": slice_safe, "min_slice_cases": min_slice_cases,
                   "slice_noise": slice_noise,
                   "tune_fallback": tune_fallback, "cooc_decays": list(cooc_decays),
                   "shrink": shrink, "single_if_worse": single_if_worse},
        **_provenance(outer, folds, fit_sizes, src, sessions, pairs, protocol=protocol,
                      test_fraction=test_fraction, val_fraction=val_fraction, seed=seed),
        "seconds": round(time.perf_counter() - t0, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


#: ``presence`` warns where at least this share of the validation targets lack training
#: clicks and that share is at least this many times the catalog's: the shares at which the
#: protocol drops such cases (:data:`~prodfusion.evaluation.protocol.LOG_CATALOG_SHARE`),
#: so under the default protocol it warns where click vectors, not interactions, are missing
#: (Prod2Vec's ``min_count``) or under ``leave-last-out-all-cases``.
PRESENCE_WARN_SHARE, PRESENCE_WARN_RATIO = LOG_CATALOG_SHARE, LOG_CATALOG_RATIO


def _presence(rec: Any, slices: dict, n_cases: int) -> dict | None:
    """How many validation targets lack training clicks against how many of the catalog's
    products do (the model's click counts), with a warning where the first far exceeds the
    second: the products without fitting-part clicks are then mostly ones seen only in
    validation sessions — a catalog of the log's own products — and a weighting can learn to
    recognise them (the presence leak of issue 10; on DIGINETICA's catalog of viewed items
    67 % of the targets against 5.5 % of the catalog). None without click counts."""
    import logging

    counts = getattr(rec, "click_counts_", None)
    if counts is None or not len(counts) or not n_cases or not any(
            name.startswith("target:") and "training clicks" in name for name in slices):
        return None  # no click counts, or no click modality to lack
    cell = slices.get("target: no training clicks") or {}
    targets, catalog = cell.get("n", 0) / n_cases, float((np.asarray(counts) == 0).mean())
    out = {"targets_no_clicks": targets, "catalog_no_clicks": catalog,
           "warned": bool(targets >= PRESENCE_WARN_SHARE
                          and targets >= PRESENCE_WARN_RATIO * catalog)}
    if out["warned"]:
        logging.getLogger("prodfusion.evaluation").warning(
            "tuning: %.0f%% of the validation targets have no training clicks against %.1f%% "
            "of the catalog's products: those are mostly products seen only in the validation "
            "sessions, as in a catalog made of the click log's own products, and the weights "
            "may have learnt to recognise them (the 'target: no training clicks' slice scores "
            "%.3f against %.3f for the best single modality). Check the lists on the targets "
            "with training clicks (`prodfusion evaluate retrieval`, its slices), or build from "
            "the full catalog.", 100 * targets, 100 * catalog, cell.get("tuned") or 0.0,
            cell.get("best single") or 0.0)
    return out


class _Floors(NamedTuple):
    """What a weighting is compared with (``tune_weights``): each validation slice's best
    single modality (``floor_of``) and its value (``floor``), the best modality alone's
    objective (``floor_all``) and per-case values (``v_best``), on the cases in ``mask``
    (None: every case; ``slices``: each slice's cases among them)."""

    floor_of: dict
    floor: dict
    floor_all: float
    v_best: np.ndarray
    mask: np.ndarray | None
    slices: dict | None  # each slice's cases within mask
    part: int | None = None  # which part of the cases mask holds (the cache's key)


#: Parts of the validation cases for the cross-fitted gain (``gain["cross_fitted"]``).
CROSS_FIT_FOLDS = 5

#: The shrinkage path's steps, largest first: λ in w = (1 − λ)·w_tuned + λ·equal.
SHRINK_STEPS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def _shrink_to_equal(w: tuple[float, ...], cal: str, n0, evaluate: Callable, cache: dict,
                     case_values: dict, key_of: Callable, fixed: Callable, groups, case_src,
                     log: Callable) -> tuple[tuple[float, ...], dict]:
    """Shrink the tuned weights ``w`` towards equal weights as far as validation allows.

    The weights the search finds are estimates from a few thousand validation cases: of the
    weightings that score alike, noise picks one, and it is often far from even (a modality at
    a fiftieth because it adds nothing *measurable*). Along ``w_λ = (1 − λ)·w + λ·(1/M, …)``,
    the largest ``λ`` of :data:`SHRINK_STEPS` is kept whose weighting is as slice-safe as
    ``w`` and whose validation score is within one standard error of the paired per-case
    difference from ``w``'s (:func:`_paired_se`; the one-standard-error rule, here preferring
    the weighting closest to the paper's equal weights instead of the sparsest). Calibration
    and ``n0`` stay. Returns the weights and the record ``{"lambda", "from", "score_from",
    "score", "se"}`` (``lambda`` 0: nothing within the band).
    """
    base = cache[key_of(w, cal, n0, True)]
    vb = case_values[key_of(w, cal, n0, True)]
    eq = tuple(1.0 / len(w) for _ in w)
    rec = {"lambda": 0.0, "from": [float(x) for x in w], "score_from": base[2],
           "score": base[2], "se": 0.0}
    for lam in SHRINK_STEPS:
        cand = fixed(tuple((1 - lam) * a + lam * b for a, b in zip(w, eq, strict=True)))
        evaluate(cand, cal, n0)
        key = key_of(cand, cal, n0, True)
        level, _, score, _ = cache[key]
        se = _paired_se(case_values[key], vb, groups, case_src)
        if level >= base[0] and score >= base[2] - se - 1e-12:
            rec.update({"lambda": lam, "score": score, "se": se})
            log(f"shrunk the weights {lam:.0%} of the way to equal weights: validation "
                f"{score:.4f} against {base[2]:.4f} (one standard error {se:.4f})")
            return cand, rec
    log("kept the tuned weights: every step towards equal weights scored more than one "
        "standard error below them on validation")
    return w, rec


#: Protocols whose training part is the same (they differ only in which held-out cases they
#: score): a tuning under one set aside the test part of the others.
_SAME_TRAINING = {"leave-last-out-all-cases": "leave-last-out",
                  "leave-last-out-log-catalog": "leave-last-out"}


def split_mismatch(record: dict | None, *, sessions: Any = None, pairs: Any = None,
                   test_fraction: float, seed: int, protocol: str,
                   what: str = "the model's weights") -> str | None:
    """Why weights tuned by ``record`` (a tuning record, the manifest's ``tuning``) may have
    seen the test part of an evaluation split this way, or ``None`` when the split is the
    tuning's own: same protocol, test fraction and seed, and the interactions the tuning
    fingerprinted (a source it did not see cannot leak into it).

    ``tune`` sets aside exactly the test part ``evaluate`` holds out with the same options;
    another seed, fraction, protocol or other interactions hold out cases the tuning
    validated on, and configurations weighted by the model's weights score optimistically.
    ``what`` names the weighting in the message (a profile: ``"profile 'pairs'"``).
    """
    if not record:
        return None
    sp = record.get("split") or {}

    def same(name, a, b):  # the leave-last-out rules that differ only in which held-out
        # cases they score train on the same part (log_catalog_cases): one split
        if name == "protocol":
            a, b = (_SAME_TRAINING.get(x, x) for x in (a, b))
        return a == b

    diffs = [f"{name.replace('_', ' ')} {sp[name]} when tuned, {ours} here"
             for name, ours in (("protocol", protocol), ("test_fraction", test_fraction),
                                ("seed", seed))
             if name in sp and not same(name, sp[name], ours)]
    fps = record.get("fingerprints") or {}
    for name, s in (("sessions", sessions), ("pairs", pairs)):
        if name in fps and s is not None and hasattr(s, "fingerprint") \
                and s.fingerprint() != fps[name]:
            diffs.append(f"other {name} than the tuning's")
    if not diffs:
        return None
    return (f"{what} were tuned on another split (" + "; ".join(diffs) + "): the "
            f"tuning may have validated on this test part, so configurations using {what} "
            "can score optimistically. Evaluate with the tuning's options and "
            "interactions, or re-tune.")
