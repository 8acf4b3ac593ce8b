"""Learning a fusion's trees on held-out interactions (``prodfusion tune MODEL --learner gbdt
[--profile NAME]``; :meth:`prodfusion.Recommender.tune` with ``learner="gbdt"``).

The protocol is :func:`~prodfusion.evaluation.tuning.tune_weights`' own: the test part set
aside exactly as ``evaluate`` holds it out (never read), the training part split again
``repeats`` times into fitting and validation parts, Prod2Vec and the co-occurrences
retrained on each fitting part (:func:`~prodfusion.evaluation.tuning_scorer._validation_folds`).
On each validation split the training rows are every query's **pool**, the candidates the
trees will score when serving — each modality's 200 nearest products
(:func:`~prodfusion.fusion.learned.pool_mask`) — a validation target among them a positive,
the others negatives (at most :data:`NEGATIVES_PER_QUERY` per query, weighted up to stand
for the rest). A target in no modality's nearest is not a row: the trees never see it, as
they never score it when serving (it ranks after the pool, by the linear weighting). Training
on the tuning's candidate pools as such — the targets are added to them — would teach the
trees the presence leak of the issue's first part in a learner's form: a product lacking
every modality, there only because it is a target, would look like an answer
(``tests/fusion/test_learned.py`` checks that such targets are never rows).

**How well the trees do is measured out of fold**: the validation queries fall into
:data:`OOF_GROUPS` groups (by row), and each group's cases, in every split, are ranked by
trees trained on the other groups' queries alone (a query's cases are never both learnt from
and scored); the record's ``validation_score`` is the mean over splits, for the better of
two kinds of trees (:data:`TREE_CONFIGS`, chosen on that same measure, so slightly
optimistic), beside the linear weighting the trees re-score (the model's own unless
``weights`` are given) and each modality alone on the same cases, and ``gain`` says by how much the trees beat the better of them with one standard
error. The trees kept are then trained on every split.

**New products.** Having learnt that clicked products are likelier answers, trees rank a
product without training clicks below where titles and photos alone would (H&M, out of fold:
0.026 against 0.065 for the titles on such targets). The trees' scorer adds a
``cold_bonus`` to such candidates (:class:`~prodfusion.fusion.learned.LearnedScorer`),
chosen on the same out-of-fold trees (``cold_bonus="auto"``, :func:`_choose_cold_bonus`):
among :data:`COLD_BONUSES`, those that bring the validation targets without training clicks
to the best single modality's score there while spending at most :data:`COLD_MAX_SPEND` of
the trees' gain, the one with the best objective; none such: 0. The record's
``validation_score``, ``gain`` and slices are the kept bonus's (``trees.cold_bonus_tried``
lists every bonus's).

**New queries.** A product without training clicks asking for its list (one appended by
``add``, or first seen since the last training) has no click vector, no co-occurrence row
and a click count of 0, which the validation queries — nearly all clicked — seldom show
the trees: on H&M, every validation query made click-less
(:meth:`~prodfusion.evaluation.tuning_scorer._Scorer.as_new_queries`) is ranked by the
trees at nDCG@15 0.033 out of fold, below the weights (0.040) and the titles alone
(0.039). What ranks such queries (:attr:`~prodfusion.fusion.learned.LearnedScorer.new_query`,
``new_queries``) is chosen out of fold among the trees, trees of their own — trained on the
validation rows as they are and made click-less (weight :data:`NEW_QUERY_WEIGHT`: the
modality dropout of DropoutNet, Volkovs et al. 2017) — and the weights
(:func:`_new_query_trees`, ``trees.new_queries``). Only queries without training clicks
are routed, so every other list is the trees' as learnt. The learner is scikit-learn's
``HistGradientBoostingClassifier`` (early stopping on a share of the rows); its trees are
stored as arrays (:class:`~prodfusion.fusion.learned.LearnedScorer`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from prodfusion.errors import ParameterError, param_error

__all__ = ["tune_learned", "LEARNERS"]

#: The learners ``tune`` knows: ``linear`` (weights, :func:`tune_weights`) and ``gbdt``.
LEARNERS = ("linear", "gbdt")
#: The two kinds of trees tried (module docstring): ``free`` (31 leaves, any shape) and
#: ``monotone`` (7 leaves; the score never falls as a similarity or the weights' score rises),
#: which holds where the validation cases are few (H&M's 368 baskets: out of fold 0.0518
#: against 0.0386 for ``free``; its 6,000 pairs: 0.0546 against 0.0588;
#: ``benchmarks/issue10_learned.sh``, docs/results/README.md, twenty-seventh session).
TREE_CONFIGS = {"free": {"max_leaf_nodes": 31, "monotone": False},
                "monotone": {"max_leaf_nodes": 7, "monotone": True}}
#: Groups of validation queries for the out-of-fold measure (module docstring).
OOF_GROUPS = 3
#: Negatives kept per validation query from its candidate pool (the rest: their weight).
NEGATIVES_PER_QUERY = 200
#: The bonuses for candidates without training clicks tried out of fold
#: (:attr:`~prodfusion.fusion.learned.LearnedScorer.cold_bonus`, in the trees' log-odds).
COLD_BONUSES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
#: The share of the trees' out-of-fold gain over the best reference (the weights, each
#: modality alone) a bonus may spend to bring the targets without training clicks to the
#: best single modality's score there (:func:`_choose_cold_bonus`).
COLD_MAX_SPEND = 0.5
#: The weight of the new-query rows (every validation query as a product without clicks,
#: :meth:`~prodfusion.evaluation.tuning_scorer._Scorer.as_new_queries`) beside the
#: validation rows as they are, in the training of the trees for new queries
#: (:func:`_new_query_trees`).
NEW_QUERY_WEIGHT = 0.5
#: What ``new_queries`` takes: what ranks the lists of queries without training clicks —
#: chosen out of fold (``"auto"``), trees of their own (``"trees"``), the weights
#: (``"weights"``), the trees as learnt (``"off"``: nothing more is learnt).
NEW_QUERY_CHOICES = ("auto", "trees", "weights", "off")


def _rows(sc, mods: Sequence[str], keep_queries: np.ndarray, rng, linear=None) -> tuple:
    """Training rows ``(X, y, w)`` of one validation split's scorer, for its queries in
    ``keep_queries`` (bool per unique query): the candidates the trees will score (each
    modality's nearest), a validation target positive, at most
    :data:`NEGATIVES_PER_QUERY` others per query weighted up to stand for the rest. Where
    the scorer ranks each case among the products on offer at its time
    (:func:`~prodfusion.evaluation.split.on_offer_windows`), a negative is a candidate on
    offer at the time of one of its query's cases."""
    from prodfusion.fusion.learned import pair_features

    counts = sc.counts
    logc = None if counts is None else np.log1p(counts.astype(np.float64)).astype(np.float32)
    lin = None
    if linear is not None:  # the linear weighting's scores of the pool (a feature)
        from prodfusion.fusion.weights import row_confidence

        conf = row_confidence(counts, linear)
        lin = sc.fused_by_query(linear, conf, sc.cos, sc.both, sc.safe, sc.valid)
    X = pair_features(mods, sc.cos, sc.both, sc.best,
                      None if logc is None else sc.query_confidence(logc),
                      None if logc is None else logc[sc.safe], lin)
    y = np.zeros(sc.cand.shape, bool)
    y[sc.inv, sc.tpos] = True
    offered = np.ones(sc.cand.shape, bool)
    if getattr(sc, "on_offer", None) is not None:  # a negative on offer at one of its cases'
        offered[:] = False  # times (a listing sold before them all was never shown beside it)
        np.logical_or.at(offered, sc.inv, sc.on_offer[0])
    xs, ys, ws = [], [], []
    for u in np.flatnonzero(keep_queries):
        pos = np.flatnonzero(sc.natural[u] & y[u])
        neg = np.flatnonzero(sc.natural[u] & ~y[u] & offered[u])
        wn = 1.0
        if len(neg) > NEGATIVES_PER_QUERY:
            wn = len(neg) / NEGATIVES_PER_QUERY
            neg = rng.choice(neg, NEGATIVES_PER_QUERY, replace=False)
        xs += [X[u, pos], X[u, neg]]
        ys += [np.ones(len(pos)), np.zeros(len(neg))]
        ws += [np.ones(len(pos)), np.full(len(neg), wn)]
    if not xs:
        return np.zeros((0, X.shape[-1]), np.float32), np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def _fit(parts: list, mods: Sequence[str], seed: int, max_iter: int, config: str = "free"):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from prodfusion.fusion.learned import LearnedScorer, feature_names

    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    w = np.concatenate([p[2] for p in parts])
    if y.sum() < 2 or (y == 0).sum() < 2:
        raise ParameterError("tune(learner='gbdt'): too few validation cases to learn from "
                             f"({int(y.sum())} targets among the candidates).")
    w = w * (len(w) / w.sum())
    X[:, np.isnan(X).all(axis=0)] = 0.0  # a feature no row has (no clicks): never split on
    cfg = TREE_CONFIGS[config]
    mono = None
    if cfg["monotone"]:  # a higher similarity, a smaller gap to the best: never lower
        mono = [1 if n.startswith(("sim:", "gap:")) or n == "linear" else 0
                for n in feature_names(mods)]
    clf = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.05, max_leaf_nodes=cfg["max_leaf_nodes"],
        min_samples_leaf=50, l2_regularization=1.0, early_stopping=len(y) >= 10000,
        validation_fraction=0.15, random_state=seed, monotonic_cst=mono)
    clf.fit(X, y, sample_weight=w)
    return LearnedScorer.from_estimator(clf, mods), int(y.sum()), len(y)


def _score_group(vals: list, folds, groups_of, lins, g: int, scorer) -> None:
    """Fill ``vals`` (per split, per case) at the cases of group ``g`` with their metric
    under ``scorer``'s trees (over each split's weights ``lins``), each split's cases of the
    group scored on a scorer of their own (:meth:`_Scorer.restricted`, made and dropped here:
    a third of the work of scoring every case, and one group's copy in memory at a time)."""
    for r, (sc, _) in enumerate(folds):
        keep = groups_of[r] == g
        if keep.any():
            vals[r][keep[sc.inv]] = sc.restricted(keep).values(replace(lins[r], learned=scorer))


def _choose_cold_bonus(cold_bonus, folds, groups_of, lins, scorers: dict,
                       vals0: list, single_vals: dict, best_ref: float, log,
                       where: str) -> tuple:
    """``(bonus, what was tried, the chosen bonus's out-of-fold values per split)``:
    ``cold_bonus`` as given, or (``"auto"``) among :data:`COLD_BONUSES`, scored by
    the same out-of-fold trees (``scorers``, per group of queries), those that bring the
    validation targets without training clicks to the best single modality's score there
    (``single_vals``) while spending at most :data:`COLD_MAX_SPEND` of the trees' gain over
    the best reference (``best_ref``, its objective), the one with the best objective; 0
    (the trees as learnt) where none does or no such target exists."""
    grid = COLD_BONUSES if cold_bonus == "auto" else (float(cold_bonus),)
    name = "target: no training clicks"
    cold = np.concatenate([np.asarray(sc.slices[name], bool) if name in sc.slices
                           else np.zeros(len(sc.src), bool) for sc, _ in folds])
    if grid == (0.0,) or (cold_bonus == "auto" and not cold.any()):
        return 0.0, {}, vals0
    per: dict[float, list] = {}
    for b in grid:
        if b == 0.0:
            per[b] = vals0
            continue
        vals = [np.zeros(len(sc.inv)) for sc, _ in folds]
        for g, scorer in scorers.items():
            _score_group(vals, folds, groups_of, lins, g, scorer.with_cold_bonus(b))
        per[b] = vals
    obj = {b: float(np.mean([sc.objective(v) for (sc, _), v in zip(folds, vals, strict=True)]))
           for b, vals in per.items()}
    cold_of = {b: float(np.concatenate(v)[cold].mean()) if cold.any() else float("nan")
               for b, v in per.items()}
    par = max((float(np.concatenate(v)[cold].mean()) for v in single_vals.values()),
              default=float("nan")) if cold.any() else float("nan")
    obj0 = float(np.mean([sc.objective(v) for (sc, _), v in zip(folds, vals0, strict=True)]))
    floor = obj0 - COLD_MAX_SPEND * max(0.0, obj0 - best_ref)
    if len(grid) == 1:
        chosen = grid[0]
    else:
        ok = [b for b in per if cold_of[b] >= par and obj[b] >= floor]
        chosen = max(ok, key=lambda b: (obj[b], -b)) if ok else 0.0
        log("out of fold, by bonus for candidates without training clicks (objective; the "
            f"{int(cold.sum())} targets without, the best single modality {par:.4f} there): "
            + ", ".join(f"{b:g} {obj[b]:.4f}; {cold_of[b]:.4f}" for b in per)
            + f"; kept {chosen:g}" + ("" if ok else " (none reaches it within the spend)"))
    scores = {f"{b:g}": {"objective": obj[b], "targets without training clicks": cold_of[b]}
              for b in per}
    return float(chosen), {"by_bonus": scores, "best_single_there": par,
                           "objective_floor": floor}, per[chosen]


def _mixed_rows(folds, views, mods, keep_of, lins, rng_w, rng_n) -> list:
    """Training rows of trees for new queries: each split's validation queries in
    ``keep_of(r)`` (bool per query) as they are (``folds``; negatives drawn by ``rng_w``, or
    by ``rng_w(r)`` per split) and made click-less (``views``, by ``rng_n``, weighted by
    :data:`NEW_QUERY_WEIGHT`)."""
    parts = [_rows(sc, mods, keep_of(r), rng_w(r) if callable(rng_w) else rng_w, lins[r])
             for r, (sc, _) in enumerate(folds)]
    for r, (sc, _) in enumerate(views):
        X, y, w = _rows(sc, mods, keep_of(r), rng_n, lins[r])
        parts.append((X, y, w * NEW_QUERY_WEIGHT))
    return parts


def _new_query_trees(choice: str, folds, groups_of, lins, mods, scorers: dict, vals0: list,
                     config: str, seed: int, max_iter: int, log) -> dict:
    """What ranks the lists of queries without training clicks (``LearnedScorer.new_query``),
    chosen out of fold.

    Every validation query is also scored as a new product would be
    (:meth:`~prodfusion.evaluation.tuning_scorer._Scorer.as_new_queries`: no click vector,
    no co-occurrence row, 0 clicks). For each group of queries, trees for new queries are
    trained on the other groups' rows as they are and made click-less (weight
    :data:`NEW_QUERY_WEIGHT`); the group's click-less cases are ranked by the trees as learnt
    (``scorers``), by the trees with the new-query trees, and by the trees with the weights
    for new queries, beside each modality alone. ``"auto"`` keeps the best of the three on
    those cases among those whose out-of-fold objective on the validation cases as they are
    (where the few queries without clicks are routed too) is at least the trees' (``vals0``);
    ``"trees"`` / ``"weights"`` keep that one. Returns ``{"kept", "scorers" (per group, routed
    or None), "views", "vals" (the kept routing's values on the validation cases),
    "record"}``."""
    from prodfusion.evaluation.tuning_scorer import NEW_PRODUCT_LACKS
    from prodfusion.fusion.learned import DEFAULT_POOL
    from prodfusion.fusion.weights import Weighting

    none = {"kept": False, "scorers": None, "vals": vals0}
    if not set(NEW_PRODUCT_LACKS) & set(mods):
        return {**none, "record": {"skipped": "no click modality (clicks, cooc)"}}
    views = [(sc.as_new_queries(DEFAULT_POOL), st) for sc, st in folds]
    if not any(v.natural.any() for v, _ in views):
        return {**none, "record": {
            "skipped": "a product without clicks shares no modality with any candidate"}}
    names = ("the trees", "trees for new queries", "the weights")
    rng_w, rng_n = np.random.default_rng(seed + 1), np.random.default_rng(seed + 2)
    view_vals = {k: [np.zeros(len(sc.inv)) for sc, _ in views] for k in names}
    real_vals = {k: [np.zeros(len(sc.inv)) for sc, _ in folds] for k in names[1:]}
    routed: dict = {k: {} for k in names}
    for g, main in scorers.items():
        parts = _mixed_rows(folds, views, mods, lambda r, g=g: groups_of[r] != g, lins,
                            rng_w, rng_n)
        routed["the trees"][g] = main
        routed["trees for new queries"][g] = main.with_new_query(
            _fit(parts, mods, seed, max_iter, config)[0])
        routed["the weights"][g] = main.with_new_query("linear")
        for k in names:
            _score_group(view_vals[k], views, groups_of, lins, g, routed[k][g])
            if k != "the trees":
                _score_group(real_vals[k], folds, groups_of, lins, g, routed[k][g])
    real_vals["the trees"] = vals0

    def mean(fl, vals):
        return float(np.mean([sc.objective(v) for (sc, _), v in zip(fl, vals, strict=True)]))

    view = {k: mean(views, v) for k, v in view_vals.items()}
    real = {k: mean(folds, v) for k, v in real_vals.items()}
    alone = {f"{m} alone": mean(views, [sc.values(Weighting.make({m: 1.0}, "none", None, None))
                                        for sc, _ in views]) for m in mods}
    if choice == "auto":
        ok = [k for k in names if real[k] >= real["the trees"]]
        kept = max(ok, key=lambda k: (view[k], -names.index(k)))
    else:
        kept = {"trees": "trees for new queries", "weights": "the weights"}[choice]
    log("out of fold, every validation query as a product without clicks: " + ", ".join(
        f"{k} {view[k]:.4f}" for k in names) + f"; the best modality alone "
        f"{max(alone.values()):.4f}; on the validation cases as they are " + ", ".join(
        f"{k} {real[k]:.4f}" for k in names) + f"; new queries ranked by {kept}")
    record = {"cases": int(sum(len(sc.inv) for sc, _ in views)), "kept": kept,
              "new_query_weight": NEW_QUERY_WEIGHT, "made click-less": view,
              "made click-less, each modality alone": alone, "as they are": real}
    if kept == "the trees":
        return {**none, "views": views, "record": record}
    return {"kept": kept, "scorers": routed[kept], "views": views, "vals": real_vals[kept],
            "record": record}


def _oof_slices(folds, mods, learned_vals, single_vals, groups, case_src) -> dict:
    """Per validation slice (the evaluation report's: query / target with or without
    training clicks, photo; each source): its cases, the trees' mean metric out of fold, the
    best modality alone's and each modality's there, and the standard error of the trees'
    paired difference from that best (the cases of every split pooled; same keys as
    :func:`~prodfusion.evaluation.tuning.tune_weights`'s ``validation_slices``)."""
    from prodfusion.evaluation.tuning_scorer import _paired_se

    names: list[str] = []
    for sc, _ in folds:
        names += [nm for nm in sc.slices if nm not in names]
    lv = np.concatenate(learned_vals)
    sv = {m: np.concatenate(single_vals[m]) for m in mods}
    out = {}
    for name in names:
        cases = np.concatenate([np.asarray(sc.slices[name], bool) if name in sc.slices
                                else np.zeros(len(sc.src), bool) for sc, _ in folds])
        n = int(cases.sum())
        if not n:
            continue
        per = {m: float(sv[m][cases].mean()) for m in mods}
        best = max(per, key=per.get)
        out[name] = {"n": n, "tuned": float(lv[cases].mean()), "best single": per[best],
                     "se": float(_paired_se(lv[cases], sv[best][cases], groups[cases],
                                            case_src[cases])),
                     **{f"{m} alone": v for m, v in per.items()}}
    return out


def tune_learned(rec: Any, *, sessions: Any = None, pairs: Any = None,
                 objective: str = "ndcg@15", validate_on: str = "all",
                 test_fraction: float = 0.2, val_fraction: float = 0.2, seed: int = 0,
                 protocol: str = "leave-last-out", repeats: int = 3, max_queries: int = 2000,
                 n_candidates: int = 200, max_iter: int = 300, weights: Any = None,
                 prod2vec: Any = None, cold_bonus: float | str = "auto",
                 new_queries: str = "auto", progress: bool | Callable = False,
                 final_above_se: float | None = None) -> dict:
    """Learn a fusion's trees (module docstring; ``cold_bonus``: ``"auto"`` or a bonus
    given, "New products" there); returns the tuning record with the
    :class:`~prodfusion.fusion.learned.LearnedScorer` under ``"scorer"`` and the linear
    weighting it re-scores (``weights``, ``calibration``, ``n0``, ...: the model's own, or
    ``weights`` given) as a :func:`~prodfusion.evaluation.tuning.tune_weights` record has.

    ``final_above_se``: the trees that serve are learnt on every split only when their
    out-of-fold gain is above this many standard errors — for a caller that discards them
    otherwise (``Recommender.tune(min_gain_se=…)`` without ``keep_worse``), which then
    does not wait for them; ``"scorer"`` is then None and ``trees.n_trees`` None, the rest
    of the record (everything measured out of fold) the same. None: always learnt.

    Raises
    ------
    ParameterError
        No interactions; a bad objective, ``validate_on``, ``repeats`` or ``cold_bonus``;
        too few validation cases.
    DataError
        No held-out validation pair left after cleaning.
    """
    from prodfusion._checks import check_int
    from prodfusion.evaluation.retrieval import _Progress
    from prodfusion.evaluation.tuning import parse_objective
    from prodfusion.evaluation.tuning_scorer import (
        _case_groups,
        _check_interactions,
        _outer_parts,
        _paired_se,
        _provenance,
        _validation_folds,
    )
    from prodfusion.fusion.learned import DEFAULT_POOL
    from prodfusion.fusion.weights import Weighting

    where = "tune(learner='gbdt')"
    t0 = time.perf_counter()
    metric, k = parse_objective(objective, where)
    _check_interactions(sessions, pairs, where)
    if validate_on not in ("all", "sessions", "pairs"):
        raise param_error("validate_on", where, "'all', 'sessions' or 'pairs'", validate_on)
    check_int(repeats, "repeats", where, low=1, high=10)
    check_int(max_iter, "max_iter", where, low=1, high=5000)
    if not (cold_bonus == "auto" if isinstance(cold_bonus, str) else (
            isinstance(cold_bonus, (int, float)) and not isinstance(cold_bonus, bool)
            and np.isfinite(cold_bonus) and cold_bonus >= 0)):
        raise param_error("cold_bonus", where, "'auto' or a finite number >= 0", cold_bonus)
    if not isinstance(new_queries, str) or new_queries not in NEW_QUERY_CHOICES:
        raise param_error("new_queries", where, "'auto', 'trees', 'weights' or 'off'",
                          new_queries)
    log = _Progress(progress)
    mods = tuple(m for m in rec.modalities if m in rec.available_modalities)
    base = rec.weighting(mods) if weights is None else rec.weighting(
        mods, rec.own_weighting().overridden(weights, None, where))
    if base.learned is not None:  # the model's own trees: their weights are re-scored
        base = replace(base, learned=None)
    if base.weights is None:  # the paper's equal weights, written out
        base = base.overridden({m: 1.0 for m in mods}, None, where)
    outer, s_part, p_part = _outer_parts(rec, sessions, pairs, test_fraction=test_fraction,
                                         seed=seed, protocol=protocol, where=where)
    mods2, folds, fit_sizes, _, _ = _validation_folds(
        rec, s_part, p_part, mods, validate_on=validate_on, val_fraction=val_fraction,
        seed=seed, protocol=protocol, repeats=repeats, rolling=False, max_queries=max_queries,
        prod2vec=prod2vec, metric=metric, k=k, n_candidates=n_candidates,
        with_stats=base.calibration != "none" or isinstance(base.fallback, tuple), log=log,
        progress=progress, where=where, cooc_decays=(), learned_pool=DEFAULT_POOL)
    if mods2 != mods:
        raise ParameterError(f"{where}: a validation split lacks {sorted(set(mods) - set(mods2))}"
                             "; the trees need every modality of the model.")
    rng = np.random.default_rng(seed)
    log(f"learning trees over {len(mods)} modalities on {len(folds)} validation splits "
        "(out of fold first)")
    # out of fold by query: the queries fall into OOF_GROUPS groups (by row); the trees
    # that rank a group's cases never trained on that group's queries (the validation
    # splits of sessions hold out the same latest block, so splits cannot be the folds)
    groups_of = [sc.uq % OOF_GROUPS for sc, _ in folds]
    lins = [base.with_stats(st) if st else base for _, st in folds]  # each split's statistics
    oof: dict[str, list] = {}
    oof_scorers: dict[str, dict] = {}
    for config in TREE_CONFIGS:
        vals = [np.zeros(len(sc.inv)) for sc, _ in folds]
        oof_scorers[config] = {}
        for g in range(OOF_GROUPS):
            parts = [_rows(sc, mods, gq != g, rng, lins[r])
                     for r, ((sc, _), gq) in enumerate(zip(folds, groups_of, strict=True))]
            if not sum(int(p[1].sum()) for p in parts):
                continue
            scorer, _, _ = _fit(parts, mods, seed, max_iter, config)
            oof_scorers[config][g] = scorer
            _score_group(vals, folds, groups_of, lins, g, scorer)
        oof[config] = vals
    config_scores = {c: float(np.mean([sc.objective(v) for (sc, _), v in
                                       zip(folds, vals, strict=True)]))
                     for c, vals in oof.items()}
    config = max(config_scores, key=config_scores.get)
    log("out of fold, by kind of trees: " + ", ".join(
        f"{c} {v:.4f}" for c, v in config_scores.items()) + f"; kept {config}")
    newq = {"kept": False, "record": {"skipped": "new_queries='off'"}}
    if new_queries != "off":
        newq = _new_query_trees(new_queries, folds, groups_of, lins, mods,
                                oof_scorers[config], oof[config], config, seed, max_iter, log)
    if newq["kept"]:  # the validation queries without clicks: ranked as new queries are
        oof_scorers[config] = newq["scorers"]
        oof[config] = newq["vals"]
    linear_vals, single_vals = [], {m: [] for m in mods}
    for r, (sc, _) in enumerate(folds):
        linear_vals.append(sc.values(lins[r]))
        for m in mods:
            single_vals[m].append(sc.values(Weighting.make({m: 1.0}, "none", None, None)))
    refs = {"linear": float(np.mean([sc.objective(v) for (sc, _), v in
                                     zip(folds, linear_vals, strict=True)]))}
    for m in mods:
        refs[f"{m} alone"] = float(np.mean([sc.objective(v) for (sc, _), v in
                                            zip(folds, single_vals[m], strict=True)]))
    bonus, bonus_tried, learned_vals = _choose_cold_bonus(
        cold_bonus, folds, groups_of, lins, oof_scorers[config], oof[config],
        single_vals, max(refs.values()), log, where)
    scores = {"learned": float(np.mean([sc.objective(v) for (sc, _), v in
                                        zip(folds, learned_vals, strict=True)]))}
    groups = _case_groups(folds)
    case_src = np.concatenate([sc.src for sc, _ in folds])
    best_ref = max(refs, key=refs.get)
    ref_vals = np.concatenate(linear_vals if best_ref == "linear" else single_vals[
        best_ref[: -len(" alone")]])
    gain = {"over": best_ref, "value": scores["learned"] - refs[best_ref],
            "se": float(_paired_se(np.concatenate(learned_vals), ref_vals, groups, case_src))}
    slices = _oof_slices(folds, mods, learned_vals, single_vals, groups, case_src)
    log(f"out of fold: trees {scores['learned']:.4f}, linear {refs['linear']:.4f}, best "
        f"reference {best_ref} {refs[best_ref]:.4f}; gain {gain['value']:+.4f} "
        f"± {gain['se']:.4f}")
    final = final_above_se is None or gain["value"] > final_above_se * gain["se"]
    scorer, n_pos, n_rows = _fit([_rows(sc, mods, np.ones(len(sc.uq), bool), rng, lins[r])
                                  for r, (sc, _) in enumerate(folds)], mods, seed, max_iter,
                                 config) if final else (None, None, None)
    if newq["kept"]:
        served = [np.zeros(len(sc.inv)) for sc, _ in newq["views"]]
        for g, routed in oof_scorers[config].items():
            _score_group(served, newq["views"], groups_of, lins, g, routed.with_cold_bonus(bonus))
        newq["record"]["served"] = float(np.mean([sc.objective(v) for (sc, _), v in zip(
            newq["views"], served, strict=True)]))
    if not final:
        log(f"the trees' gain is not above {final_above_se:g} standard errors: they are not "
            "learnt on every split (they would not be kept)")
    elif newq["kept"] == "the weights":
        scorer = scorer.with_new_query("linear")
    elif newq["kept"]:
        parts = _mixed_rows(folds, newq["views"], mods,
                            lambda r: np.ones(len(folds[r][0].uq), bool), lins,
                            lambda r: np.random.default_rng(seed + 1),
                            np.random.default_rng(seed + 2))
        new_trees = _fit(parts, mods, seed, max_iter, config)[0]
        scorer = scorer.with_new_query(new_trees)
        newq["record"]["n_trees"] = new_trees.n_trees
        log(f"trees for new queries kept: {new_trees.n_trees}")
    if final:
        scorer = scorer.with_cold_bonus(bonus)
        log(f"trees learnt on every split: {scorer.n_trees} ({n_rows:,} rows, {n_pos:,} "
            "targets)")
    return {
        "fusion": "intermediate",
        "learner": "gbdt",
        "scorer": scorer,
        "weights": dict(base.weights),
        "calibration": base.calibration,
        "impute": base.impute,
        "n0": base.n0,
        **({"confidence": base.confidence} if base.confidence != "ratio" else {}),
        "fallback": base.fallback if base.fallback is True or not base.fallback
        else dict(base.fallback),
        **({"fallback_missing": base.fallback_missing}
           if base.fallback_missing != "drop" else {}),
        "objective": f"{metric}@{k}",
        "validation_score": scores["learned"],
        "validation_measure": "out of fold (trees trained on the other groups of validation queries)",
        "reference_scores": refs,
        "gain": gain,
        "validation_slices": slices,
        "trees": {"n_trees": scorer.n_trees if final else None,
                  "fingerprint": scorer.fingerprint if final else None,
                  "pool": scorer.pool if final else None,
                  "training_rows": n_rows, "training_targets": n_pos,
                  "learner": "sklearn HistGradientBoostingClassifier", "max_iter": max_iter,
                  "kind": config, "kind_scores": config_scores, **TREE_CONFIGS[config],
                  "cold_bonus": bonus, "new_queries": newq["record"],
                  **({"cold_bonus_tried": bonus_tried} if bonus_tried else {})},
        "search": {"max_queries": max_queries, "n_candidates": n_candidates,
                   "validate_on": validate_on, "repeats": repeats,
                   "objective_average": "per source"},
        **_provenance(outer, folds, fit_sizes, case_src, sessions, pairs, protocol=protocol,
                      test_fraction=test_fraction, val_fraction=val_fraction, seed=seed),
        "seconds": round(time.perf_counter() - t0, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
