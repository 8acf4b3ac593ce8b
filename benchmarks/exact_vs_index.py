"""The served lists (the model's index: HNSW above 4,096 products) against the exact search,
query by query (thirtieth session): how many of 80 random queries' top 15 differ, their
recall@15, and the first three that differ with their scores.

    python benchmarks/exact_vs_index.py MODEL_DIR [--no-reduce]

``--no-reduce``: the indexes built without their PCA reduction (``reduce_dim=None``). 60 queries with training clicks and 20 without (seed 0). Nothing is asserted.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from prodfusion.recommender import Recommender


def main() -> None:
    rec = Recommender.load(sys.argv[1])
    if "--no-reduce" in sys.argv[2:]:
        from dataclasses import replace

        from prodfusion.index import IndexSettings

        rec.index_settings = replace(rec.index_settings or IndexSettings(), reduce_dim=None)
        rec._fusers, rec._searchers = {}, {}
    rng = np.random.default_rng(0)
    cc = rec.click_counts_
    qs = [*rng.choice(np.flatnonzero(cc > 0), 60, replace=False),
          *rng.choice(np.flatnonzero(cc == 0), 20, replace=False)]
    ids = [rec.catalog.ids[q] for q in qs]
    t = time.perf_counter()
    approx = [rec.similar(i, k=15) for i in ids]
    ta = time.perf_counter() - t
    rec.index = "exact"
    rec._fusers, rec._searchers = {}, {}
    t = time.perf_counter()
    exact = [rec.similar(i, k=15) for i in ids]
    te = time.perf_counter() - t
    pairs = list(zip(approx, exact, strict=True))
    diff = [j for j, (a, e) in enumerate(pairs) if list(a[0]) != list(e[0])]
    recall = [len(set(a[0]) & set(e[0])) / 15 for a, e in pairs]
    print(f"{len(diff)} of {len(ids)} lists differ (with clicks "
          f"{sum(1 for j in diff if j < 60)}/60, without {sum(1 for j in diff if j >= 60)}/20);"
          f" recall@15 mean {np.mean(recall):.3f}, min {np.min(recall):.3f}; "
          f"served {ta:.1f}s, exact {te:.1f}s")
    for j in diff[:3]:
        a, e = pairs[j]
        print("query", ids[j], "training clicks", cc[qs[j]])
        print("  served", [f"{x}:{s:.4f}" for x, s in zip(a[0], a[1], strict=True)])
        print("  exact ", [f"{x}:{s:.4f}" for x, s in zip(e[0], e[1], strict=True)])


if __name__ == "__main__":
    main()
