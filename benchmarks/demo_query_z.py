"""Per-query z-scores in the demo's fusion, leak-free (issue 10, twenty-fifth session).

``zmean`` standardises each modality's cosines by statistics of the modality over random
pairs, the same for every query. A per-query z-score standardises them by the query's own
distribution instead: ``(cos(q, c) − mean_c cos(q, ·)) / std_c cos(q, ·)`` over the
candidates that have the modality — the "Z-score" normalisation of metasearch (Montague &
Aslam, 2001). It was a candidate for the library (a query whose title has many
near-duplicates would no longer let its title dominate, a click vector Prod2Vec barely moved
would no longer sit far below every random pair). This probe asks whether it ranks the demo's
held-out next clicks better before anything is built, on :class:`DemoTest`'s split
(``demo_llr_fusion.py``: Prod2Vec retrained on the training part, leave-last-out, every
product a candidate, ties at their mean rank):

* both calibrations at the model's tuned weights (tuned for ``zmean``, so this favours it);
* both at the best point of the same coarse weight grid, **chosen on the test part** — an
  optimistic figure for both, compared like for like.

    prodfusion demo --out DIR
    python benchmarks/demo_query_z.py DIR [--out docs/results/demo_query_z.md]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
GRID = {"text": (0, 0.25, 0.5, 1), "image": (0, 0.05, 0.25, 1), "clicks": (0, 0.25, 0.5, 1)}


def per_query_z(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row standardised over the candidates with the modality (the query itself left
    out); a z-score of a z-score is the z-score of the raw cosine."""
    x = np.where(mask[None, :], z, np.nan)
    np.fill_diagonal(x, np.nan)
    mu, sd = np.nanmean(x, 1, keepdims=True), np.nanstd(x, 1, keepdims=True)
    return (z - mu) / np.where(sd > 0, sd, 1.0)


def main() -> None:
    from demo_llr_fusion import DemoTest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo_dir", help="the folder of `prodfusion demo --out DIR`")
    ap.add_argument("--out", default=str(REPO / "docs/results/demo_query_z.md"))
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    dt = DemoTest(Path(args.demo_dir))
    zq = {m: per_query_z(dt.zs[m], dt.mask[m]) for m in dt.mods}
    calib = {"`zmean` (the library's)": dt.zs, "per-query z": zq}
    rows = []
    for name, s in calib.items():
        rows.append((f"{name}, the model's tuned weights", dt.tuned, s))
    for name, s in calib.items():
        best = None
        for combo in itertools.product(*(GRID[m] for m in dt.mods)):
            if not any(combo):
                continue
            w = dict(zip(dt.mods, combo, strict=True))
            nd = dt.scores(dt.fused(s, w))[1].mean()
            if best is None or nd > best[0]:
                best = (nd, w)
        rows.append((f"{name}, the grid's best on the test part (optimistic)", best[1], s))
    results = [(name, w, *dt.scores(dt.fused(s, w))) for name, w, s in rows]
    base = results[0][3]
    n_grid = int(np.prod([len(v) for v in GRID.values()])) - 1
    lines = [
        "# Per-query z-scores in the demo's fusion (leak-free probe)",
        "",
        f"Command: `prodfusion demo --out DIR`, then `python benchmarks/demo_query_z.py DIR` "
        f"({{secs}} s). Machine: {platform.machine()}, {platform.system()}, 2-core VM. Data: "
        f"the demo's synthetic shop (seed 0, {dt.n:,} products, {len(set(dt.cats))} planted "
        f"categories). Prod2Vec retrained on the training part; held out: the last transition "
        f"of each of the {len(dt.q):,} test sessions (leave-last-out, test fraction 0.2, seed "
        f"0). Every product a candidate, ties at their mean rank. The grid: {n_grid} weightings "
        f"(text {GRID['text']}, photo {GRID['image']}, clicks {GRID['clicks']}), its best "
        f"chosen by nDCG@15 on the test part itself. Off-category: products of another planted "
        f"category in the top-15 lists of the {len(dt.has):,} queries with a photo.",
        "",
        "| configuration | weights | HitRate@15 | nDCG@15 | Δ nDCG@15 vs the first row "
        "[95 % CI] | off-category |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, w, hit, ndcg, off in results:
        diff = ndcg - base
        lo, hi = dt.paired_ci(diff, args.resamples)
        ci = "–" if ndcg is base else f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
        ws = ", ".join(f"{m} {w[m]:.3g}" for m in dt.mods)
        lines.append(f"| {name} | {ws} | {hit.mean():.4f} | {ndcg.mean():.4f} | {ci} | {off} |")
    text = "\n".join(lines).replace("{secs}", f"{time.perf_counter() - t0:.0f}") + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
