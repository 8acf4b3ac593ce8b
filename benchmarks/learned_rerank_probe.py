"""Probe: does a learned (gradient-boosted) re-ranker over the fused modalities beat the tuned
linear fusion on the test part?

    python benchmarks/learned_rerank_probe.py MODEL_DIR [--validate-on sessions|pairs|all]
        [--out docs/results/NAME.md]

The model folder must record its data (``prodfusion build`` does). The split is the one
``tune`` and ``evaluate retrieval`` use (leave-last-out, seed 0, test fraction 0.2): the
re-ranker learns on the tuning's validation splits of the training part (Prod2Vec retrained
on each fitting part, as ``tune`` does) and is scored once on the test part, whose Prod2Vec
is retrained on the training part (as ``evaluate retrieval`` does). Features of a
(query, candidate) pair: each modality's raw similarity (missing where one product lacks the
modality) and its distance to the query's best similarity in that modality, and both
products' training click counts. The metric is the tuning's: tie-aware ranks among each
query's candidates plus an estimate for the rest of the catalog from a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _report import write_markdown

#: PROBE_RELATIVE=0: without the distance to the query's best similarity
RELATIVE = os.environ.get("PROBE_RELATIVE", "1")


def features(sc, pool: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(X, valid)``: X of shape (queries, width, n_features) for the padded pool (or the
    outside sample), features as in the module docstring."""
    idx = sc.cand if pool else sc.out
    valid = sc.valid if pool else sc.out_valid
    cos = sc.cos if pool else sc.out_cos
    both = sc.both if pool else sc.out_both
    safe = sc.safe if pool else sc.out_safe
    cols = []
    for m in sc.mods:
        c = np.where(both[m], cos[m], np.nan).astype(np.float32)
        # the query's best similarity over the pool is its best over the catalog (the pool
        # holds each modality's nearest products)
        pc = np.where(sc.both[m], sc.cos[m], np.nan)
        with np.errstate(all="ignore"):
            best = np.nanmax(np.where(np.isfinite(pc), pc, -np.inf), axis=1)
        best = np.where(np.isfinite(best), best, np.nan).astype(np.float32)
        if RELATIVE == "z":  # the query's similarity distribution, from its outside sample
            oc = np.where(sc.out_both[m], sc.out_cos[m], np.nan)
            with np.errstate(all="ignore"):
                mu = np.nanmean(oc, axis=1).astype(np.float32)
                sd = np.nanstd(oc, axis=1).astype(np.float32)
            cols += [c, (c - mu[:, None]) / np.maximum(sd, 1e-6)[:, None]]
        else:
            cols += [c, c - best[:, None]] if RELATIVE != "0" else [c]
    counts = sc.counts if sc.counts is not None else np.zeros(sc.n, np.int64)
    cq = np.log1p(counts[sc.uq]).astype(np.float32)
    if os.environ.get("PROBE_COUNTS", "1") != "0":
        cols += [np.log1p(counts[safe]).astype(np.float32),
                 np.broadcast_to(cq[:, None], idx.shape).astype(np.float32)]
    return np.stack(cols, axis=-1), valid


def labels(sc) -> np.ndarray:
    y = np.zeros(sc.cand.shape, bool)
    y[sc.inv, sc.tpos] = True
    return y


def metric_values(sc, s_pool: np.ndarray, s_out: np.ndarray) -> np.ndarray:
    """Per-case metric for per-query scores of the pool and of the outside sample (as
    ``_Scorer.values``)."""
    from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks

    s = np.where(sc.valid, s_pool, -np.inf)[sc.inv]
    ahead, ties, ok = tie_aware_ranks([s], sc.tpos)
    if sc.out.shape[1]:
        so = np.where(sc.out_valid, s_out, -np.inf)[sc.inv]
        st = s[np.arange(len(s)), sc.tpos][:, None]
        fin = np.isfinite(so)
        w = sc.out_w[sc.inv]
        ahead = ahead + np.rint(w * ((so > st) & fin).sum(axis=1)).astype(np.int64)
        ties = ties + np.rint(w * ((so == st) & fin).sum(axis=1)).astype(np.int64)
    return np.where(ok, tie_aware_metric(ahead, ties, sc.k, sc.metric), 0.0)


def train_reranker(folds, seed: int, neg_per_query: int = 200):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    xs, ys, ws = [], [], []
    for sc in folds:
        X, valid = features(sc, True)
        y = labels(sc)
        Xo, vo = features(sc, False)
        for u in range(X.shape[0]):
            pos = np.flatnonzero(valid[u] & y[u])
            neg = np.flatnonzero(valid[u] & ~y[u])
            wn = 1.0
            if len(neg) > neg_per_query:
                wn = len(neg) / neg_per_query
                neg = rng.choice(neg, neg_per_query, replace=False)
            o = np.flatnonzero(vo[u])
            # the outside sample stands for every product outside the pool (its weight):
            # without it the pool's membership (targets are always in it) would be learnt
            wo = float(sc.out_w[u]) if len(o) else 0.0
            xs += [X[u, pos], X[u, neg], Xo[u, o]]
            ys += [np.ones(len(pos)), np.zeros(len(neg)), np.zeros(len(o))]
            ws += [np.ones(len(pos)), np.full(len(neg), wn), np.full(len(o), wo)]
    X, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    w = w * (len(w) / w.sum())
    print(f"training rows {len(y):,}, positives {int(y.sum()):,}", flush=True)
    clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=31,
                                         min_samples_leaf=50, l2_regularization=1.0,
                                         early_stopping=True, validation_fraction=0.15,
                                         random_state=seed)
    clf.fit(X, y, sample_weight=w)
    return clf


def predict(clf, sc, pool: bool) -> np.ndarray:
    X, valid = features(sc, pool)
    s = np.full(valid.shape, -np.inf, np.float64)
    if valid.any():
        s[valid] = clf.decision_function(X[valid])
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--validate-on", default="all", choices=["all", "sessions", "pairs"])
    ap.add_argument("--objective", default="ndcg@15")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from types import SimpleNamespace

    from prodfusion import Recommender
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.evaluation.metrics import bootstrap_ci
    from prodfusion.evaluation.split import heldout_recommender, retrain_params, split_interactions
    from prodfusion.evaluation.tuning import parse_objective
    from prodfusion.evaluation.tuning_scorer import _part, _Scorer, _validation_folds
    from prodfusion.fusion.weights import Weighting

    t0 = time.perf_counter()
    rec = Recommender.load(args.model_dir)
    man = json.loads((Path(args.model_dir) / "manifest.json").read_text())
    inter = man["data"]["interactions"]
    ns = SimpleNamespace(interactions=inter["path"], session_cols=inter["session_cols"],
                         item_col=inter["item_col"], time_col=inter["time_col"],
                         sep=inter["sep"], pairs=inter["pairs"], pair_cols=inter["pair_cols"],
                         min_session_length=inter["min_session_length"],
                         max_session_length=inter["max_session_length"])
    sessions, pairs = load_interactions(ns, rec.catalog)
    metric, k = parse_objective(args.objective)
    mods = tuple(rec.modalities)
    outer = split_interactions(rec.catalog, sessions, pairs, test_fraction=0.2, seed=0,
                               protocol="leave-last-out")
    s_part = _part(outer.train, ("s:", "h:"))
    p_part = _part(outer.train, ("p:",))
    mods, folds, _, _, _ = _validation_folds(
        rec, s_part, p_part, mods, validate_on=args.validate_on, val_fraction=0.2, seed=0,
        protocol="leave-last-out", repeats=3, rolling=False, max_queries=2000,
        prod2vec=None, metric=metric, k=k, n_candidates=200, with_stats=False,
        log=lambda s: print(s, flush=True), progress=False, where="probe", cooc_decays=())
    folds = [sc for sc, _ in folds]
    print(f"validation folds ready ({time.perf_counter() - t0:.0f} s); modalities {mods}",
          flush=True)
    clf = train_reranker(folds, args.seed)
    print(f"re-ranker trained ({time.perf_counter() - t0:.0f} s), "
          f"{clf.n_iter_} iterations", flush=True)

    used = retrain_params(rec.prod2vec, outer.train)
    ev = heldout_recommender(rec, outer.train, prod2vec=used)
    parts = [(n, ho) for n, ho in outer.heldout.items() if args.validate_on in ("all", n)]
    q = np.concatenate([ho.query_rows for _, ho in parts])
    t = np.concatenate([ho.target_rows for _, ho in parts])
    src = np.concatenate([np.full(len(ho), n, dtype=object) for n, ho in parts]).astype(str)
    pc = outer.train.product_counts()
    counts = np.array([pc.get(p, 0) for p in rec.catalog.ids], dtype=np.int64)
    sc = _Scorer(ev, mods, q, t, src, counts, metric, k, n_cand=200)
    rows = {}
    weightings = {f"{m} alone": Weighting.make({m: 1.0}, "none", None, None) for m in mods}
    weightings["own weighting"] = ev.weighting(mods)
    for name in sorted(getattr(ev, "profiles_", {}) or {}):
        weightings[f"profile {name}"] = ev.weighting(mods, ev.profile_weighting(name))
    for name, wt in weightings.items():
        rows[name] = sc.values(wt)
    rows["learned re-ranker"] = metric_values(sc, predict(clf, sc, True),
                                              predict(clf, sc, False))
    lines = [f"# Learned re-ranker probe: `{args.model_dir}`", "",
             f"`python benchmarks/learned_rerank_probe.py {args.model_dir} --validate-on "
             f"{args.validate_on}` ({time.perf_counter() - t0:.0f} s on this machine). "
             f"{args.objective}, test part of leave-last-out seed 0 ({len(q):,} cases).", "",
             "| configuration | source | cases | HitRate@15 | nDCG@15 | learned − this, nDCG@15 "
             "[95 % CI] |", "| --- | --- | --- | --- | --- | --- |"]
    hit_sc = _Scorer.__new__(_Scorer)
    hit_sc.__dict__.update(sc.__dict__)
    hit_sc.metric = "hitrate"
    for name, v in rows.items():
        if name == "learned re-ranker":
            hv = metric_values(hit_sc, predict(clf, sc, True), predict(clf, sc, False))
        else:
            hv = hit_sc.values(weightings[name])
        for s in sorted(set(src)):
            sel = src == s
            d = rows["learned re-ranker"][sel] - v[sel]
            if name == "learned re-ranker":
                ci = "–"
            else:
                b = bootstrap_ci(d, seed=0)
                ci = f"{b[0]:+.4f} [{b[1]:+.4f}, {b[2]:+.4f}]"
            lines.append(f"| {name} | {s} | {sel.sum()} | {hv[sel].mean():.3f} | "
                         f"{v[sel].mean():.3f} | {ci} |")
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
