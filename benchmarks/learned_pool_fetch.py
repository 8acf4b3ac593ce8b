"""What the learned weighting's candidate pools cost through an index, and what a smaller
fetch gives up (thirty-fifth session).

Under boosted trees a query searched through an index (HNSW from 50,000 products, or IVF-PQ)
scores a pool: each vector modality's ``pool`` (200) nearest products, found by that
modality's own index, which fetches ``over_fetch × pool`` candidates (8 × 200 = 1,600 by
default) and re-scores them exactly (:mod:`prodfusion.index.learned`). For top-15 lists the
fetch is ``min_candidates`` (128) whatever ``over_fetch`` (15 × 8 = 120 is less), so
``over_fetch`` is in effect the trees' pool knob (``prodfusion build --index-param
over_fetch=N``). This script searches the same indexes with each ``--over-fetch`` value: p50
/ p99 milliseconds of ``Recommender.similar`` (k = 15, one query at a time after a warm-up)
and, against the exact search of the same model, how many lists differ and their recall@15.

    python benchmarks/learned_pool_fetch.py MODEL [--index hnsw|ivfpq] [--over-fetch 8,4,2,1]
        [--search-threads 1] [--queries 200] [--out docs/benchmarks/learned_pool_fetch_NAME.md]

``--search-threads 1,2`` (thirty-fifth session) also times each fetch with the modalities'
indexes searched on that many threads at once (``IndexSettings.search_threads``; the lists
are the same, so only the time differs); a value may repeat (``1,2,1,2``: alternated runs,
each a row, to see the run-to-run noise).

Queries: 3/4 with training clicks, 1/4 without (seed 0). Set ``OMP_NUM_THREADS=1`` for a
reproducible HNSW graph. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _report import write_markdown


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--index", choices=["hnsw", "ivfpq"], default=None,
                    help="search through this index whatever the catalog's size")
    ap.add_argument("--over-fetch", default="8,4,2,1")
    ap.add_argument("--search-threads", default="1")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    fetches = [int(x) for x in args.over_fetch.split(",")]
    threads = [int(x) for x in args.search_threads.split(",")]

    from prodfusion import Recommender
    from prodfusion.index.learned import LearnedRescorer

    rec = Recommender.load(args.model)
    rec.progress = False
    if args.index:
        rec.index = args.index
    backend = rec.search_backend
    rng = np.random.default_rng(0)
    cc = rec.click_counts_
    n_cold = min(args.queries // 4, int((cc == 0).sum()))
    qs = [*rng.choice(np.flatnonzero(cc > 0), args.queries - n_cold, replace=False),
          *rng.choice(np.flatnonzero(cc == 0), n_cold, replace=False)]
    ids = [rec.catalog.ids[q] for q in qs]
    t = time.perf_counter()
    rec.similar(ids[0], k=15)  # builds (or loads) the indexes
    first = time.perf_counter() - t
    searcher = rec.searcher()
    if not isinstance(searcher, LearnedRescorer):
        raise SystemExit(f"{args.model}: its own weighting is not searched through the trees' "
                         f"pools (index {backend}, searcher {type(searcher).__name__}); "
                         "a model with adopted trees and --index hnsw|ivfpq is needed.")
    runs = []  # (over_fetch, threads, times, lists): a setting may repeat (alternation)
    for of in fetches:
        for th in threads:
            for near in searcher.nearest.values():  # the same indexes, another fetch
                if hasattr(near, "settings"):
                    near.settings = replace(near.settings, over_fetch=of, search_threads=th)
            searcher._last = None
            rec.similar(ids[1], k=15)
            times, lists = [], []
            for i in ids:
                t = time.perf_counter()
                lists.append(list(rec.similar(i, k=15)[0]))
                times.append((time.perf_counter() - t) * 1000)
            runs.append((of, th, np.array(times), lists))
            print(f"over_fetch {of}, search_threads {th}: p50 {np.median(times):.1f} ms",
                  file=sys.stderr, flush=True)
    rec.index = "exact"
    rec._fusers, rec._searchers = {}, {}
    exact = [list(rec.similar(i, k=15)[0]) for i in ids]
    base = np.median(runs[0][2])
    lines = [
        f"# The trees' candidate pools through {backend.upper()}: `{Path(args.model).name}`",
        "",
        f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python "
        f"benchmarks/learned_pool_fetch.py {args.model}"
        f"{' --index ' + args.index if args.index else ''} --over-fetch {args.over_fetch} "
        f"{'--search-threads ' + args.search_threads + ' ' if threads != [1] else ''}"
        f"--queries {args.queries}` on {platform.node() or 'this machine'} "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}); "
        f"{len(rec.catalog):,} products, pool {searcher.pool} per modality "
        f"({', '.join(searcher.modalities)}); {len(ids)} queries ({len(ids) - n_cold} with "
        f"training clicks, {n_cold} without); indexes built or loaded in {first:.1f} s.", "",
        "| over_fetch | search threads | candidates per modality | similar p50 / p99 (ms) | "
        "p50 ratio | lists differing from exact | recall@15 mean (min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for of, th, times, lists in runs:
        diff = sum(a != e for a, e in zip(lists, exact, strict=True))
        rc = [len(set(a) & set(e)) / 15 for a, e in zip(lists, exact, strict=True)]
        lines.append(f"| {of} | {th} | {of * searcher.pool:,} | {np.median(times):.1f} / "
                     f"{np.percentile(times, 99):.1f} | {np.median(times) / base:.2f} | "
                     f"{diff} of {len(ids)} | {np.mean(rc):.4f} ({np.min(rc):.3f}) |")
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
