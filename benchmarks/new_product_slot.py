"""One slot of the list kept for a product without clicks (issue 10, twenty-first session): a
probe on the tuner's own validation cases.

``fallback_offset.py`` found that no score offset lets the right new products into a clicked
product's list without pushing the clicked ones out. A shop would rather keep a **slot**: the
last of the ``k`` places goes to the best product that shares no weighted modality with the
query (a new product, ranked by the fallback: z-scored titles), but only when its fallback
score reaches ``tau``; otherwise the list is as today. This scores that rule for several
``tau`` on the validation cases of the same synthetic shop and tuned weighting:

* a target the weighted modalities rank (``warm``) keeps its rank; a list with a filled slot
  has ``k - 1`` places for it;
* a ``cold`` target fills the slot when no other cold candidate scores above it (tied ones
  share the slot's chance), and then sits at place ``k``;
* counts of the catalog outside each query's candidate pool are estimated from the scorer's
  uniform sample (as the tuner does).

    python benchmarks/new_product_slot.py [--products 100000] [--repeats 1] [--workdir DIR]
                                          [--out docs/results/new_product_slot.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _report import write_markdown

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
TAUS = (-np.inf, 0.0, 2.0, 4.0, 6.0, 8.0, np.inf)


def slot_values(sc, wt, tau: float) -> np.ndarray:
    """Per-case metric of the slot rule at threshold ``tau`` (``inf``: no slot, the tuner's
    own :meth:`_Scorer.values`)."""
    from prodfusion.evaluation.metrics import tie_aware_metric, tie_aware_ranks
    from prodfusion.fusion.weights import FALLBACK_OFFSET, confidence

    if tau == np.inf:
        return sc.values(wt)
    k, metric = sc.k, sc.metric
    conf = confidence(sc.counts, wt.n0) if wt.n0 is not None else None
    s = sc._fused(wt, conf, sc.cos, sc.both, sc.safe, sc.valid)
    rows = np.arange(len(s))
    st = s[rows, sc.tpos]
    fin = np.isfinite(s)
    cold = fin & (s < -FALLBACK_OFFSET / 2)
    warm = fin & ~cold
    w = sc.out_w[sc.inv]
    if sc.out.shape[1]:
        so = sc._fused(wt, conf, sc.out_cos, sc.out_both, sc.out_safe, sc.out_valid)
    else:
        so = np.full((len(s), 0), -np.inf, np.float32)
    ofin = np.isfinite(so)
    ocold = ofin & (so < -FALLBACK_OFFSET / 2)
    n_warm = warm.sum(1) + np.rint(w * (ofin & ~ocold).sum(1))
    best_cold = np.maximum(np.where(cold, s, -np.inf).max(1),
                           np.where(ocold, so, -np.inf).max(1, initial=-np.inf))
    slot = (best_cold + FALLBACK_OFFSET >= tau) & (n_warm >= k)  # else the list is as today
    ahead, ties, ok = tie_aware_ranks([s], sc.tpos)
    if sc.out.shape[1]:
        ahead = ahead + np.rint(w * ((so > st[:, None]) & ofin).sum(1)).astype(np.int64)
        ties = ties + np.rint(w * ((so == st[:, None]) & ofin).sum(1)).astype(np.int64)
    today = np.where(ok, tie_aware_metric(ahead, ties, k, metric), 0.0)
    shorter = np.where(ok, tie_aware_metric(ahead, ties, k - 1, metric), 0.0)
    t_cold = np.isfinite(st) & (st < -FALLBACK_OFFSET / 2)
    c_ahead = (cold & (s > st[:, None])).sum(1) + np.rint(w * (ocold & (so > st[:, None])).sum(1))
    c_ties = (cold & (s == st[:, None])).sum(1) - 1 + np.rint(
        w * (ocold & (so == st[:, None])).sum(1))
    place_k = {"ndcg": 1.0 / np.log2(k + 1.0), "hitrate": 1.0, "mrr": 1.0 / k}[metric]
    in_slot = np.where(c_ahead == 0, place_k / (np.maximum(c_ties, 0) + 1), 0.0)
    return np.where(slot, np.where(t_cold, in_slot, shorter), today)


def main() -> None:
    from fallback_offset import measure_folds, slice_cells, tuned_folds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="keep the shop and model here")
    ap.add_argument("--out", default=str(REPO / "docs/results/new_product_slot.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    res, folds, weighting, built = tuned_folds(args.products, args.repeats, args.workdir)
    rows = [(tau, *measure_folds(folds, lambda sc, st, tau=tau: slot_values(
        sc, weighting(st), tau))) for tau in TAUS]
    names = list(rows[0][2])
    base = rows[-1][1]
    w = ", ".join(f"{m} {x:.3g}" for m, x in res["weights"].items())
    lines = [
        "# One slot for a product without clicks, probed on the tuner's validation cases",
        "",
        f"Command: `python benchmarks/new_product_slot.py --products {args.products} "
        f"--repeats {args.repeats}` ({time.perf_counter() - t0:.0f} s"
        f"{' with the build' if built else '; the shop was built before'}). Machine: "
        f"{platform.machine()}, {platform.system()}, 2-core VM. Data and tuning: as "
        f"[fallback_offset.md](fallback_offset.md) (the tuned weighting: {w}, calibration "
        f"{res['calibration']}, n0 {res.get('n0')}, fallback {res.get('fallback')}). The last "
        "of the 15 places goes to the best product sharing no weighted modality with the "
        "query when its fallback score (z-scored titles) reaches tau; tau = inf is the "
        "library (no slot). nDCG@15, ties at their mean rank; cases in brackets.",
        "",
        "| tau | all | Δ vs no slot | " + " | ".join(names) + " |",
        "| ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for tau, score, sl in rows:
        lines.append(f"| {tau:g} | {score:.4f} | {score - base:+.4f} | "
                     + slice_cells(sl, names) + " |")
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
