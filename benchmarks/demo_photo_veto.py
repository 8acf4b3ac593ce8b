"""The photo as a veto in the demo's fusion: negative evidence only, or a cluster gate
(issue 10, twenty-first session).

The demo's tuned fusion puts 73 products of another planted category into the top-15 lists
of its queries with a photo (``demo_llr_fusion.md``); every photo weighting that removes them
cost next clicks, because within a category the photos carry no next-click signal and a
photo term reorders the lists there. This probe asks whether the photo can remove the
off-category products *without* reordering inside a category, two ways:

* **negative evidence only**: the photo's term is ``min(LLR, 0)``, its log-likelihood ratio
  of a next click (fitted on the training transitions, as in ``demo_cold_calibration.py``)
  clipped at zero, so it can only push a candidate down, never up;
* **a cluster gate**: candidates in another k-means++ cluster of the photos (k = 12, the
  number of categories, as late fusion's default) are ranked below every candidate in the
  query's cluster; *lenient* lets candidates without a photo through, *strict* does not.

Scored as ``demo_llr_fusion.py`` scores (:class:`DemoTest`: Prod2Vec retrained on the
training part, leave-last-out, every product a candidate, ties at their mean rank). The
off-category column is split by whether the recommended product has a photo: photos alone
can never recommend one without.

    prodfusion demo --out DIR
    python benchmarks/demo_photo_veto.py DIR [--out docs/results/demo_photo_veto.md]
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
    from demo_llr_fusion import DemoTest

    from prodfusion.fusion.late import cluster_modality

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_dir", help="the folder of `prodfusion demo --out DIR`")
    ap.add_argument("--out", default=str(REPO / "docs/results/demo_photo_veto.md"))
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--clusters", type=int, default=12, help="k of the gate's k-means++")
    args = ap.parse_args()
    t0 = time.perf_counter()
    dt = DemoTest(Path(args.demo_dir))
    zs, tuned, img = dt.zs, dt.tuned, dt.mask["image"]
    base = dt.fused(zs, tuned)
    neg = np.minimum(dt.llr["image"], 0.0)

    # the gate: a tie-break in [0, 0.999) under an integer "shares the photo cluster" part
    finite = np.isfinite(base)
    lo_, hi_ = base[finite].min(), base[finite].max()
    tie = np.where(finite, 0.999 * (base - lo_) / (hi_ - lo_), -np.inf)
    lab = cluster_modality(dt.ev.embeddings_["image"], args.clusters, seed=0)
    same = lab[:, None] == lab[None, :]
    lenient = same | (lab[:, None] < 0) | (lab[None, :] < 0)
    strict = (same & (lab[None, :] >= 0)) | (lab[:, None] < 0)

    def gate(passes):
        s = np.where(passes, 1.0, 0.0) + tie
        s[~finite] = -np.inf
        return s

    configs = [("z-scores (`zmean`), the model's tuned weights", base)]
    configs += [(f"photo as negative evidence, weight {w:g}",
                 dt.fused({**zs, "image": neg}, {**tuned, "image": w}))
                for w in (0.1, 0.3, 1.0, 3.0)]
    # a candidate without a photo, for a query with one, counted as a random pair's veto
    # (the mean of min(LLR, 0) over random pairs with photos): held back like a stranger
    rng = np.random.default_rng(0)
    rows = np.flatnonzero(img)
    a, b = rng.choice(rows, 50_000), rng.choice(rows, 50_000)
    imputed = float(neg[a, b].mean())
    veto = np.where(img[:, None] & img[None, :], neg, np.where(img[:, None], imputed, 0.0))
    dt.mask["veto"] = np.ones(dt.n, bool)  # every pair has the term (0 for photo-less queries)
    configs += [(f"… a candidate without a photo counted as a random pair ({imputed:.2f}), "
                 f"weight {w:g}", dt.fused({**zs, "veto": veto},
                                           {"text": tuned["text"], "clicks": tuned["clicks"],
                                            "veto": w})) for w in (1.0,)]
    configs += [(f"photo z-scores, weight {w:g} (for comparison)",
                 dt.fused(zs, {**tuned, "image": w})) for w in (0.3, 1.0)]
    configs += [(f"photo cluster gate (k = {args.clusters}), lenient", gate(lenient)),
                (f"photo cluster gate (k = {args.clusters}), strict", gate(strict)),
                ("photo alone", dt.fused(zs, {"image": 1.0}))]
    # the reference baselines a team would try first, on the same split (DemoTest.baselines)
    configs += [(f"`{b}` (reference baseline)", s) for b, s in dt.baselines().items()]

    has, cats = dt.has, dt.cats
    _, nb, _ = dt.scores(base)
    lines = [
        "# The photo as a veto in the demo's fusion (leak-free probe)",
        "",
        f"Command: `prodfusion demo --out DIR`, then `python benchmarks/demo_photo_veto.py "
        f"DIR` ({{secs}} s). Machine: {platform.machine()}, {platform.system()}, 2-core VM. "
        f"Data: the demo's synthetic shop (seed 0, {dt.n:,} products, {len(set(cats))} planted "
        f"categories, {int(img.sum()):,} with a photo). Prod2Vec retrained on the training "
        f"part; held out: the last transition of each of the {len(dt.q):,} test sessions "
        f"(leave-last-out, test fraction 0.2, seed 0); likelihood ratios fitted on the "
        f"{len(dt.pos):,} training transitions. Every product a candidate, ties at their "
        f"mean rank. Off-category: products of another planted category in the top-15 lists "
        f"of the {len(has):,} queries with a photo ({len(has) * K:,} recommendations); "
        f"*without a photo*: those of them that have no photo (photos alone cannot serve "
        f"them). Text and clicks keep the model's tuned weights and z-scores in every row "
        f"(text {tuned['text']:.3g}, clicks {tuned['clicks']:.3g}; photo {tuned['image']:.3g}).",
        "",
        "| configuration | HitRate@15 | nDCG@15 | Δ nDCG@15 vs the first row [95 % CI] "
        "| off-category | … without a photo | category precision@15 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in configs:
        hit, ndcg, off = dt.scores(s)
        top = np.argpartition(-s[has], K, axis=1)[:, :K]
        served = np.isfinite(np.take_along_axis(s[has], top, axis=1))
        wrong = (cats[top] != cats[has][:, None]) & served
        no_photo = int((wrong & ~img[top]).sum())
        diff = ndcg - nb
        lo, hi = dt.paired_ci(diff, args.resamples)
        ci = "–" if s is base else f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        lines.append(f"| {name} | {hit.mean():.4f} | {ndcg.mean():.4f} | {ci} | {off} | "
                     f"{no_photo} | {1 - off / served.sum():.4f} |")
    text = "\n".join(lines).replace("{secs}", f"{time.perf_counter() - t0:.0f}") + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
