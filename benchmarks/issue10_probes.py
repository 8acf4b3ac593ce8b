"""Issue 10, fifth session: the small figures docs/results/README.md quotes beside the reports.

* how often a held-out DIGINETICA next view shares the query's category (test part of the
  leave-last-out split), and how often an H&M co-purchase pair shares its product type;
* cooc alone on DIGINETICA's catalog of viewed items, and the category alone on the whole
  catalog (targets without training clicks), scored two ways on the test part: ties broken by
  catalog row, as ``evaluate retrieval`` serves them, and tie-aware (the mean over every order
  of the ties, :func:`~prodfusion.evaluation.metrics.tie_aware_metric`, as ``tune`` scores);
* on the whole catalog, how likely a next view in the query's category is a product with
  training clicks against one without, per product (why a ranking that uses the clicks cannot
  keep the category alone's share of targets without clicks);
* the spread of the click cosines of the pairs-tuned H&M model (its calibration statistics).

Needs the models of ``bash benchmarks/issue10_fusion.sh`` (``runs/digi1``, ``runs/digif_t``,
``runs/hmc_tp``). Usage::

    python benchmarks/issue10_probes.py --data ../shared/data --out docs/results/issue10_probes.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from prodfusion import Recommender
from prodfusion.data.interactions import clean_sessions, read_interactions
from prodfusion.evaluation.metrics import tie_aware_metric
from prodfusion.evaluation.split import heldout_recommender, split_interactions
from prodfusion.fusion import make_fuser
from prodfusion.fusion.weights import Weighting


def digi_test(model: str, data: Path):
    """The evaluation's held-out next views and its retrained recommender for ``model``."""
    rec = Recommender.load(model)
    inter = read_interactions(data / "diginetica" / "train-item-views.sample.csv",
                              session_cols=("session_id",), item_col="item_id",
                              time_col=["eventdate", "timeframe"], sep=";")
    split = split_interactions(rec.catalog, clean_sessions(inter, rec.catalog), None)
    return rec, split.heldout["sessions"], heldout_recommender(rec, split.train)


def two_ways(ev, ho, weights: dict, where: np.ndarray | None = None) -> dict:
    """HitRate@15 / nDCG@15 of the raw intermediate fusion of ``weights``: ties by row (as
    served) and tie-aware; over the cases in ``where`` (default: all)."""
    q, t = ho.query_rows, ho.target_rows
    f = make_fuser("intermediate", ev.modality_data(), tuple(weights),
                   weighting=Weighting.make(weights))
    s = np.concatenate([f.similarity(q[lo:lo + 64]) for lo in range(0, len(q), 64)])
    s[np.arange(len(q)), q] = -np.inf  # never the query itself
    st = s[np.arange(len(q)), t]
    ahead = (s > st[:, None]).sum(1)
    ties = (s == st[:, None]).sum(1) - 1
    lower = ((s == st[:, None]) & (np.arange(s.shape[1])[None, :] < t[:, None])).sum(1)
    ok = np.isfinite(st)
    sel = np.ones(len(q), bool) if where is None else where
    out = {"cases": int(sel.sum())}
    for metric in ("hitrate", "ndcg"):
        by_row = tie_aware_metric(ahead + lower, np.zeros_like(ties), 15, metric)
        aware = tie_aware_metric(ahead, ties, 15, metric)
        out[f"{metric}_by_row"] = float(np.where(ok, by_row, 0)[sel].mean())
        out[f"{metric}_tie_aware"] = float(np.where(ok, aware, 0)[sel].mean())
    out["hits_by_row"] = round(out["hitrate_by_row"] * out["cases"], 1)
    out["hits_tie_aware"] = round(out["hitrate_tie_aware"] * out["cases"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    data = Path(args.data)
    res: dict = {}
    # 1. category shares
    rec, ho, ev = digi_test("runs/digif_t", data)
    codes = rec.catalog.codes("category")
    same = codes[ho.query_rows] == codes[ho.target_rows]
    res["diginetica_test_next_views_same_category"] = {"share": float(same.mean()),
                                                        "cases": len(same)}
    arts = pl.read_csv(data / "hm" / "articles.csv", infer_schema=False)
    cop = pl.read_csv(data / "hm" / "copurchase.csv", infer_schema=False)
    ptype = dict(zip(arts["article_id"], arts["product_type_name"], strict=True))
    share = np.mean([ptype.get(a) == ptype.get(b) for a, b in
                     zip(cop["article_id"], cop["partner_article_id"], strict=True)])
    res["hm_copurchase_pairs_same_product_type"] = {"share": float(share), "pairs": cop.height}
    # 2. the category alone on the whole catalog, targets without training clicks
    cold = ~np.asarray(ev.modality_data()["clicks"].mask, bool)[ho.target_rows]
    res["diginetica_whole_category_alone_cold_targets"] = two_ways(
        ev, ho, {"category": 1.0}, where=cold)
    # 2b. why a ranking that uses the clicks cannot keep the category alone's share of cold
    # targets: within the query's category, how likely the next view is a product with
    # training clicks ("warm") against one without, per product
    from prodfusion.evaluation.baselines import popularity

    warm = popularity(ev.train_sessions_, rec.catalog) > 0
    per_q = []
    for qi, ti in zip(ho.query_rows, ho.target_rows, strict=True):
        members = np.flatnonzero(codes == codes[qi])
        members = members[members != qi]
        per_q.append((warm[members].sum(), (~warm[members]).sum(), codes[ti] == codes[qi],
                      warm[ti]))
    nw, nc, s, w = np.array(per_q, dtype=np.float64).T
    res["diginetica_whole_same_category_rates"] = {
        "queries": len(per_q), "targets_in_category_warm": int((s * w).sum()),
        "targets_in_category_cold": int((s * (1 - w)).sum()),
        "per_product_rate_warm": float((s * w).sum() / nw.sum()),
        "per_product_rate_cold": float((s * (1 - w)).sum() / nc.sum()),
        "median_warm_others_in_category": float(np.median(nw)),
        "median_cold_others_in_category": float(np.median(nc)),
        "share_of_queries_with_15_or_more_warm_others": float((nw >= 15).mean()),
    }
    # 3. cooc alone on the catalog of viewed items
    _, ho1, ev1 = digi_test("runs/digi1", data)
    res["diginetica_viewed_cooc_alone"] = two_ways(ev1, ho1, {"cooc": 1.0})
    # 4. the click cosines of the pairs-tuned H&M model
    st = json.loads(Path("runs/hmc_tp/manifest.json").read_text())["settings"]["weighting"]
    res["hm_pairs_model_click_cosine_mean_sd"] = st["stats"]["clicks"]
    lines = [f"`python benchmarks/issue10_probes.py {' '.join(sys.argv[1:])}` "
             "(models of `bash benchmarks/issue10_fusion.sh`; the test part of the "
             "leave-last-out split):", "", "```json", json.dumps(res, indent=2), "```", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
