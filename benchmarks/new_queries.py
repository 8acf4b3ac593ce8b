"""Products without clicks asking for their list, on the test part (issue 10, thirtieth
session): every held-out case of ``evaluate retrieval``'s split scored twice — as it is, and
with its query made a product without training clicks (no click vector, no co-occurrence
row, 0 clicks: what a product appended by ``prodfusion add`` has until the next training) —
under the model's own weighting (with and without its trees for new queries), its tuned
weights and each modality alone. The test part is the one the tuning never read; ranks
count every product of the catalog (exact, tie-aware).

Usage::

    python benchmarks/new_queries.py MODEL_DIR [--out docs/results/new_queries_v30.md]

The interactions are those the model's record names (as ``evaluate`` takes them); the
split is ``evaluate``'s default (leave-last-out, test fraction 0.2, seed 0); Prod2Vec is
retrained on the training part on one thread, as the tuning does.

Beside ``benchmarks/cold_queries.py`` (an earlier session's: the same question through the
library's fusers, with many more tables): that one hides the query's click vector and
co-occurrence row but keeps its click count — which boosted trees read as a feature, so a
trees weighting still sees a clicked query and never routes it as a new one — and it scores
exact search only; this one scores through the tuning's scorer
(``_Scorer.as_new_queries``: count 0 too) on any catalog size. Merging the two is left open.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace

import numpy as np


def _interactions(rec, model: str):
    from prodfusion.cli.evaluate_steps import load_interactions
    from prodfusion.cli.options import add_interaction_options, fill_interactions_from_record

    p = argparse.ArgumentParser()
    add_interaction_options(p)
    ns = p.parse_args([])
    ns.model = model
    fill_interactions_from_record(ns, rec)
    return load_interactions(ns, rec.catalog)


def heldout_model(model: str):
    """``(rec, split, ev)``: the model, ``evaluate retrieval``'s default split of the
    interactions its record names (leave-last-out, test fraction 0.2, seed 0; leak-checked)
    and the model that evaluation scores (Prod2Vec and co-occurrences retrained on the
    training part)."""
    from prodfusion.evaluation.split import (
        check_no_leak,
        heldout_recommender,
        retrain_params,
        split_interactions,
    )
    from prodfusion.recommender import Recommender

    rec = Recommender.load(model)
    sessions, pairs = _interactions(rec, model)
    split = split_interactions(rec.catalog, sessions, pairs, test_fraction=0.2, seed=0,
                               protocol="leave-last-out")
    check_no_leak(split, rec.catalog)
    ev = heldout_recommender(rec, split.train, prod2vec=retrain_params(rec.prod2vec, split.train))
    return rec, split, ev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--out", default=None, help="markdown file to write (default: print)")
    args = ap.parse_args()

    from prodfusion.evaluation.metrics import bootstrap_ci
    from prodfusion.evaluation.tuning_scorer import _Scorer
    from prodfusion.fusion.learned import DEFAULT_POOL
    from prodfusion.fusion.weights import Weighting

    t0 = time.perf_counter()
    rec, split, ev = heldout_model(args.model)
    own = ev.own_weighting()
    if own.learned is None:
        raise SystemExit(f"{args.model}: its own weighting has no trees")
    mods = own.learned.modalities
    nq = own.learned.new_query
    how = ("the trees" if nq is None else "the weights" if nq == "linear"
           else "trees of their own")
    configs = {f"own weighting (trees; queries without clicks ranked by {how})": own}
    if nq is not None:
        configs["the same trees for every query"] = replace(
            own, learned=own.learned.with_new_query(None))
    if "weights" in (ev.profiles or {}):
        configs["tuned weights (profile weights)"] = ev.profile_weighting("weights")
    for m in mods:
        configs[f"{m} alone"] = Weighting.make({m: 1.0}, "none", None, None)
    configs = {k: ev.weighting(mods, w) if w.learned is not None or k.startswith("tuned")
               else w for k, w in configs.items()}
    parts = list(split.heldout.items())
    q = np.concatenate([ho.query_rows for _, ho in parts])
    t = np.concatenate([ho.target_rows for _, ho in parts])
    src = np.concatenate([np.full(len(ho), name, dtype=object) for name, ho in parts])
    n = len(rec.catalog)
    sc = _Scorer(ev, tuple(mods), q, t, src.astype(str), ev.click_counts_, "ndcg", 15,
                 n_cand=DEFAULT_POOL, n_outside=n, learned_pool=DEFAULT_POOL)
    views = {"as they are": sc, "made click-less": sc.as_new_queries(DEFAULT_POOL)}
    vals: dict = {}
    for metric in ("hitrate", "ndcg"):
        for vname, v in views.items():
            v.metric = metric
            for cname, w in configs.items():
                vals[metric, vname, cname] = v.values(w)
    sources = [name for name, _ in parts]
    has_clicks = np.asarray(sc.q_has.get("clicks", np.ones(len(sc.uq), bool)))[sc.inv]
    lines = [
        "# Products without clicks asking for their list: the test part (thirtieth session)",
        "",
        f"Command: `python benchmarks/new_queries.py {args.model}`; model: {args.model}; "
        f"data: the interactions its record names; {platform.platform()}, "
        f"{__import__('os').cpu_count()} CPUs; {time.perf_counter() - t0:.0f} s.",
        "",
        "Every test case of `evaluate retrieval`'s split (leave-last-out, test fraction 0.2, "
        "seed 0; the tuning never read it) is ranked twice over the whole catalog (exact, "
        "ties at their mean rank): with its query **as it is**, and with the query **made "
        "click-less** (no click vector, no co-occurrence row, 0 training clicks: a product "
        "appended by `prodfusion add`, or first seen since the last training, asking for its "
        "list). Prod2Vec and the co-occurrences are retrained on the training part (one "
        "thread). The test cases whose query truly has no training clicks are "
        f"{int((~has_clicks).sum())} of {len(q):,}.",
        "",
    ]
    for s in sources:
        sel = src == s
        lines += [f"## {s} ({int(sel.sum()):,} test cases)", "",
                  "| configuration | as they are: HitRate@15 / nDCG@15 | made click-less: "
                  "HitRate@15 / nDCG@15 |", "|---|---:|---:|"]
        for cname in configs:
            cells = [f"{vals['hitrate', v, cname][sel].mean():.3f} / "
                     f"{vals['ndcg', v, cname][sel].mean():.3f}" for v in views]
            lines.append(f"| {cname} | {cells[0]} | {cells[1]} |")
        lines += ["", "Paired differences of the own weighting on the click-less queries "
                  "(nDCG@15, mean [95 % bootstrap interval over the cases]):", ""]
        base = vals["ndcg", "made click-less", next(iter(configs))][sel]
        for cname in list(configs)[1:]:
            d = base - vals["ndcg", "made click-less", cname][sel]
            _, lo, hi = bootstrap_ci(d, n_boot=2000, seed=0)
            verdict = "above" if lo > 0 else "below" if hi < 0 else "inside the noise"
            lines.append(f"- minus {cname}: {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}], {verdict}")
        lines.append("")
    text = "\n".join(lines)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
