"""The served lists (the model's index: HNSW from 50,000 products) against the exact search,
query by query (thirtieth session): how many of 80 random queries' top 15 differ, their
recall@15, and the first three that differ with their scores.

    python benchmarks/exact_vs_index.py MODEL_DIR [--no-reduce] [--test-part] [--hnsw|--ivfpq]
        [--pq-m M]

60 queries with training clicks and 20 without (seed 0). ``--no-reduce``: the indexes built
without their PCA reduction (``reduce_dim=None``). ``--test-part`` (thirty-first session):
instead, every held-out query of ``evaluate retrieval``'s default split, on the
model that evaluation scores (Prod2Vec and co-occurrences retrained on the training part,
as ``benchmarks/new_queries.py`` does), with the share of targets in each list. Set
``OMP_NUM_THREADS=1`` for a reproducible HNSW graph. ``--hnsw``: served through HNSW
indexes whatever the catalog's size (as if it had 50,000 products or more), also
``--fusion`` / ``--modalities`` (comma-separated) to compare that fusion instead of the
model's own weighting. ``--ivfpq`` (thirty-second session): the same through IVF-PQ indexes
(the backend from 5M products, or chosen for its memory). ``--pq-m M`` (thirty-fourth
session): IVF-PQ codes of ``M`` bytes instead of the model folder's ``pq_m``. Nothing is
asserted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from prodfusion.recommender import Recommender


def _test_part(model: str):
    """The evaluation's model and held-out queries and targets (``evaluate``'s defaults)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from new_queries import heldout_model

    _, split, ev = heldout_model(model)
    parts = list(split.heldout.values())
    return (ev, np.concatenate([h.query_rows for h in parts]),
            np.concatenate([h.target_rows for h in parts]))


def main() -> None:
    if "--test-part" in sys.argv[2:]:
        ev, q, t = _test_part(sys.argv[1])
        ra, sa = ev.searcher().topk(q, 15)
        ev.index = "exact"
        ev._fusers, ev._searchers = {}, {}
        re_, se = ev.searcher().topk(q, 15)
        diff = [i for i in range(len(q)) if list(ra[i]) != list(re_[i])]
        hits = {n: np.mean([t[i] in set(r[i]) for i in range(len(q))])
                for n, r in (("served", ra), ("exact", re_))}
        print(f"test part: {len(diff)} of {len(q)} lists differ; targets in the list (ties by "
              f"catalog row): served {hits['served']:.3f}, exact {hits['exact']:.3f}")
        for i in diff[:3]:
            print("query row", q[i], "training clicks", ev.click_counts_[q[i]])
            print("  served", [f"{x}:{s:.4f}" for x, s in zip(ra[i], sa[i], strict=True)])
            print("  exact ", [f"{x}:{s:.4f}" for x, s in zip(re_[i], se[i], strict=True)])
        return
    rec = Recommender.load(sys.argv[1])
    kw = {}
    for opt in ("--fusion", "--modalities"):
        if opt in sys.argv:
            kw[opt[2:]] = sys.argv[sys.argv.index(opt) + 1]
    if "modalities" in kw:
        kw["modalities"] = kw["modalities"].split(",")
    for backend in ("hnsw", "ivfpq"):
        if f"--{backend}" in sys.argv[2:]:
            rec.index = backend
    from dataclasses import replace

    if "--no-reduce" in sys.argv[2:]:
        rec.index_settings = replace(rec.index_settings, reduce_dim=None)
        rec._fusers, rec._searchers = {}, {}
    if "--pq-m" in sys.argv[2:]:
        pq_m = int(sys.argv[sys.argv.index("--pq-m") + 1])
        rec.index_settings = replace(rec.index_settings, pq_m=pq_m)
        rec._fusers, rec._searchers = {}, {}
    print(f"index {rec.index}, pq_m {rec.index_settings.pq_m}")
    rng = np.random.default_rng(0)
    cc = rec.click_counts_
    qs = [*rng.choice(np.flatnonzero(cc > 0), 60, replace=False),
          *rng.choice(np.flatnonzero(cc == 0), 20, replace=False)]
    ids = [rec.catalog.ids[q] for q in qs]
    t = time.perf_counter()
    approx = [rec.similar(i, k=15, **kw) for i in ids]
    ta = time.perf_counter() - t
    rec.index = "exact"
    rec._fusers, rec._searchers = {}, {}
    t = time.perf_counter()
    exact = [rec.similar(i, k=15, **kw) for i in ids]
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
