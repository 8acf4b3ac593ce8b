"""Likelihood-ratio calibration in the demo's whole fusion, leak-free (issue 10, nineteenth
session).

The fifteenth session's probe (``benchmarks/demo_cold_calibration.py``) found that mapping
title and photo cosines to **log-likelihood ratios** (``log p(cos | next click) / p(cos |
random pair)``, a histogram made monotone by isotonic regression) was free in next clicks and
lifted the category precision of the demo's queries *without clicks* from 0.975 to 0.996. It
left open whether that calibration, applied to every modality, would help the whole fusion —
the candidate for a library calibration learned from the user's interactions. This script
asks on the demo's test part:

* Prod2Vec is retrained on the training part only (:func:`heldout_recommender`, as
  ``evaluate retrieval`` does), so the click vectors never saw the held-out transitions;
* z-scores (``zmean``) use statistics sampled on those vectors; likelihood ratios are fitted
  on the training transitions only;
* every configuration ranks every product of the catalog (ties at their mean rank), scored by
  HitRate@15 / nDCG@15 on the last transition of each test session (leave-last-out, test
  fraction 0.2, seed 0) with a paired 95 % bootstrap interval against the model's own tuned
  weighting, and by off-category products in the top-15 lists of the queries with a photo.

The weights are fixed grid points, not tuned (the model's: clicks 0.39, text 0.585, photo
0.024; the photo and click weights varied), so the table says what each calibration *can*
do, not what a tuner would pick.

    prodfusion demo --out DIR
    python benchmarks/demo_llr_fusion.py DIR [--out docs/results/demo_llr_fusion.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
K = 15


def main() -> None:
    from demo_cold_calibration import _llr_table, _unit, demo_split

    from prodfusion.evaluation.split import heldout_recommender

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_dir", help="the folder of `prodfusion demo --out DIR`")
    ap.add_argument("--out", default=str(REPO / "docs/results/demo_llr_fusion.md"))
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    d = Path(args.demo_dir)
    rec, split, pos = demo_split(d)
    ev = heldout_recommender(rec, split.train, progress=False)
    held = split.heldout["sessions"]
    q, t, groups = held.query_rows, held.target_rows, held.groups
    cats = np.asarray(rec.catalog.categories)
    mods = ("text", "image", "clicks")
    tuned = {m: rec.weighting(mods).w(m) for m in mods}
    rng = np.random.default_rng(0)
    mask, zs, llr = {}, {}, {}
    for m in mods:
        v, mask[m] = _unit(ev.embeddings_[m])
        cos = v @ v.T
        rows = np.flatnonzero(mask[m])
        a, b = rng.choice(rows, 20_000), rng.choice(rows, 20_000)
        c = cos[a, b]
        zs[m] = (cos - c.mean()) / c.std()
        centres, table = _llr_table(cos, mask[m], pos, rng)
        llr[m] = np.interp(cos, centres, table)
    n = len(cats)
    has = np.flatnonzero(mask["image"])

    def fused(s: dict, w: dict) -> np.ndarray:
        """Σ w_m s_m over the modalities both have, / the query's Σ w_m (as ``zmean``)."""
        out, den, qd = np.zeros((n, n)), np.zeros((n, n)), np.zeros(n)
        for m, wm in w.items():
            both = mask[m][:, None] & mask[m][None, :]
            out += np.where(both, wm * s[m], 0.0)
            den += np.where(both, wm, 0.0)
            qd += wm * mask[m]
        out /= np.maximum(qd, 1e-12)[:, None]
        out[den == 0] = -np.inf
        np.fill_diagonal(out, -np.inf)
        return out

    def scores(s: np.ndarray):
        st = s[q, t][:, None]
        ahead = (s[q] > st).sum(1)
        ties = (s[q] == st).sum(1) - 1
        r = ahead[:, None] + np.arange(ties.max() + 1)[None, :]
        valid = np.arange(ties.max() + 1)[None, :] <= ties[:, None]
        hit = ((r < K) & valid).sum(1) / (ties + 1)
        ndcg = np.where((r < K) & valid, 1 / np.log2(r + 2), 0).sum(1) / (ties + 1)
        top = np.argpartition(-s[has], K, axis=1)[:, :K]
        return hit, ndcg, int((cats[top] != cats[has][:, None]).sum())

    configs = [("z-scores (`zmean`), the model's tuned weights", zs, tuned)]
    configs += [(f"z-scores, photo {wi:.3g}", zs, {**tuned, "image": wi})
                for wi in (0.3, 1.0)]
    configs += [(f"likelihood ratios, photo {wi:.3g}, clicks {wc:.3g}", llr,
                 {**tuned, "image": wi, "clicks": wc})
                for wc in (tuned["clicks"], 0.8) for wi in (tuned["image"], 0.3, 1.0)]
    configs += [("clicks alone", zs, {"clicks": 1.0}), ("photo alone", zs, {"image": 1.0})]
    results = [(name, *scores(fused(s, w))) for name, s, w in configs]
    base = results[0][2]
    ug, inv = np.unique(groups, return_inverse=True)
    cnt = np.bincount(inv, None, len(ug))
    brng = np.random.default_rng(1)
    picks = [brng.integers(len(ug), size=len(ug)) for _ in range(args.resamples)]
    fmt = lambda w: ", ".join(f"{m} {w[m]:.3g}" for m in mods if m in w)  # noqa: E731
    lines = [
        "# Likelihood-ratio calibration in the demo's whole fusion (leak-free)",
        "",
        f"Command: `prodfusion demo --out DIR`, then `python benchmarks/demo_llr_fusion.py DIR` "
        f"({time.perf_counter() - t0:.0f} s). Machine: {platform.machine()}, "
        f"{platform.system()}, 2-core VM. Data: the demo's synthetic shop (seed 0, {n:,} "
        f"products, {len(set(cats))} planted categories). Prod2Vec retrained on the training "
        f"part; held out: the last transition of each of the {len(q):,} test sessions "
        f"(leave-last-out, test fraction 0.2, seed 0); likelihood ratios fitted on the "
        f"{len(pos):,} training transitions. Every product a candidate, ties at their mean "
        f"rank. Off-category: products of another planted category in the top-15 lists of "
        f"the {len(has):,} queries with a photo ({len(has) * K:,} recommendations).",
        "",
        "| configuration | weights | HitRate@15 | nDCG@15 | Δ nDCG@15 vs the first row "
        "[95 % CI] | off-category |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (name, _, w), (_, hit, ndcg, off) in zip(configs, results, strict=True):
        diff = ndcg - base
        per = np.bincount(inv, diff, len(ug)) / cnt
        boots = [(per[p] * cnt[p]).sum() / cnt[p].sum() for p in picks]
        lo, hi = np.percentile(boots, [2.5, 97.5])
        ci = "–" if ndcg is base else f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        lines.append(f"| {name} | {fmt(w)} | {hit.mean():.4f} | {ndcg.mean():.4f} | {ci} | "
                     f"{off} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
