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


class DemoTest:
    """The demo's test part scored leak-free (also ``demo_shrinkage.py``'s): Prod2Vec
    retrained on the training part, z-scores (``zmean``) and likelihood ratios of each
    modality, and :meth:`scores` of a fused score matrix."""

    def __init__(self, d: Path) -> None:
        from demo_cold_calibration import _llr_table, _unit, demo_split

        from prodfusion.evaluation.split import heldout_recommender

        self.rec, split, self.pos = demo_split(d)
        rec = self.rec
        self.train = split.train
        self.ev = ev = heldout_recommender(rec, split.train, progress=False)
        held = split.heldout["sessions"]
        self.q, self.t, self.groups = held.query_rows, held.target_rows, held.groups
        self.cats = np.asarray(rec.catalog.categories)
        self.mods = ("text", "image", "clicks")
        self.tuned = {m: rec.weighting(self.mods).w(m) for m in self.mods}
        rng = np.random.default_rng(0)
        self.mask, self.zs, self.llr = {}, {}, {}
        for m in self.mods:
            v, self.mask[m] = _unit(ev.embeddings_[m])
            cos = v @ v.T
            rows = np.flatnonzero(self.mask[m])
            a, b = rng.choice(rows, 20_000), rng.choice(rows, 20_000)
            c = cos[a, b]
            self.zs[m] = (cos - c.mean()) / c.std()
            centres, table = _llr_table(cos, self.mask[m], self.pos, rng)
            self.llr[m] = np.interp(cos, centres, table)
        self.n = len(self.cats)
        self.has = np.flatnonzero(self.mask["image"])

    def fused(self, s: dict, w: dict) -> np.ndarray:
        """Σ w_m s_m over the modalities both have, / the query's Σ w_m (as ``zmean``)."""
        n, mask = self.n, self.mask
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

    def baselines(self) -> dict[str, np.ndarray]:
        """The reference baselines of ``evaluate retrieval`` as score matrices on the same
        split (:mod:`prodfusion.evaluation.baselines`): ``cooc`` (training sessions holding
        both products), ``tfidf`` (character 3–5-gram TF-IDF cosine of the titles),
        ``cooc+tfidf`` (cooc first, TF-IDF where it has none) and ``popular`` (training
        clicks); ``-inf`` where a baseline serves nothing."""
        from prodfusion.evaluation.baselines import cooc_matrix, popularity, tfidf_matrix

        cat = self.rec.catalog
        cooc = cooc_matrix(self.train, cat).toarray()
        x = tfidf_matrix(cat.titles)
        tfidf = (x @ x.T).toarray()
        pop = np.broadcast_to(popularity(self.train, cat), (self.n, self.n))
        out = {"cooc": np.where(cooc > 0, cooc, -np.inf),
               "tfidf": np.where(tfidf > 0, tfidf, -np.inf),
               "cooc+tfidf": np.where(cooc > 0, 10.0 + cooc,
                                      np.where(tfidf > 0, tfidf, -np.inf)),
               "popular": np.where(pop > 0, pop, -np.inf)}
        for s in out.values():
            np.fill_diagonal(s, -np.inf)
        return out

    def scores(self, s: np.ndarray):
        """Per-case HitRate@15 and nDCG@15 (ties at their mean rank) and the off-category
        products in the top-15 lists of the queries with a photo (products served only:
        a baseline's list may be shorter)."""
        q, t, has, cats = self.q, self.t, self.has, self.cats
        st = s[q, t][:, None]
        ahead = (s[q] > st).sum(1)
        ties = (s[q] == st).sum(1) - 1
        r = ahead[:, None] + np.arange(ties.max() + 1)[None, :]
        valid = np.arange(ties.max() + 1)[None, :] <= ties[:, None]
        hit = ((r < K) & valid).sum(1) / (ties + 1)
        ndcg = np.where((r < K) & valid, 1 / np.log2(r + 2), 0).sum(1) / (ties + 1)
        top = np.argpartition(-s[has], K, axis=1)[:, :K]
        served = np.isfinite(np.take_along_axis(s[has], top, axis=1))  # a short list: fewer
        return hit, ndcg, int(((cats[top] != cats[has][:, None]) & served).sum())

    def paired_ci(self, diff: np.ndarray, resamples: int) -> tuple[float, float]:
        """95 % bootstrap interval of the mean per-case difference, resampling sessions."""
        ug, inv = np.unique(self.groups, return_inverse=True)
        cnt = np.bincount(inv, None, len(ug))
        per = np.bincount(inv, diff, len(ug)) / cnt
        brng = np.random.default_rng(1)
        boots = []
        for _ in range(resamples):
            p = brng.integers(len(ug), size=len(ug))
            boots.append((per[p] * cnt[p]).sum() / cnt[p].sum())
        lo, hi = np.percentile(boots, [2.5, 97.5])
        return float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_dir", help="the folder of `prodfusion demo --out DIR`")
    ap.add_argument("--out", default=str(REPO / "docs/results/demo_llr_fusion.md"))
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    dt = DemoTest(Path(args.demo_dir))
    q, pos, cats, mods, tuned = dt.q, dt.pos, dt.cats, dt.mods, dt.tuned
    zs, llr, n, has, fused, scores = dt.zs, dt.llr, dt.n, dt.has, dt.fused, dt.scores
    configs = [("z-scores (`zmean`), the model's tuned weights", zs, tuned)]
    configs += [(f"z-scores, photo {wi:.3g}", zs, {**tuned, "image": wi})
                for wi in (0.3, 1.0)]
    configs += [(f"likelihood ratios, photo {wi:.3g}, clicks {wc:.3g}", llr,
                 {**tuned, "image": wi, "clicks": wc})
                for wc in (tuned["clicks"], 0.8) for wi in (tuned["image"], 0.3, 1.0)]
    configs += [("clicks alone", zs, {"clicks": 1.0}), ("photo alone", zs, {"image": 1.0})]
    results = [(name, *scores(fused(s, w))) for name, s, w in configs]
    base = results[0][2]
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
        lo, hi = dt.paired_ci(diff, args.resamples)
        ci = "–" if ndcg is base else f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        lines.append(f"| {name} | {fmt(w)} | {hit.mean():.4f} | {ndcg.mean():.4f} | {ci} | "
                     f"{off} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
