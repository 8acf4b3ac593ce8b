"""Query cost of a learned profile (boosted trees) against the linear weightings of the same
model: p50 / p99 milliseconds of ``Recommender.similar`` (k = 15) and with ``explain``, one
query at a time, after a warm-up; the first query's one-off cost (the fuser's arrays, the
trees decoded; until the twenty-eighth session also each product's best similarity per
modality) separately.

    python benchmarks/learned_query_cost.py MODEL --profiles pairs,trees_pairs \
        [--queries 300] [--out docs/benchmarks/learned_query_cost.md]

Ratios are against the model's own weighting in the same run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
from _report import write_markdown


def _times(fn, ids) -> np.ndarray:
    out = []
    for i in ids:
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--profiles", default="", help="comma-separated profile names")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from prodfusion import Recommender

    rec = Recommender.load(args.model)
    ids = np.random.default_rng(args.seed).choice(np.asarray(rec.catalog.ids, dtype=object),
                                                  size=args.queries, replace=False)
    rows = []
    for name in [None, *[p for p in args.profiles.split(",") if p]]:
        label = "the model's own weighting" if name is None else f"profile {name}"
        wt = rec.own_weighting() if name is None else rec.profile_weighting(name)
        learned = wt.learned is not None
        rec._fusers, rec._searchers = {}, {}
        t = time.perf_counter()
        rec.similar(ids[0], k=15, profile=name)  # builds the fuser
        first = (time.perf_counter() - t) * 1000
        rec.similar(ids[1], k=15, profile=name)
        plain = _times(lambda i, n=name: rec.similar(i, k=15, profile=n), ids[2:])

        def explained(i, n=name):
            got, _ = rec.similar(i, k=15, profile=n)
            rec.explain(i, list(got), profile=n)

        expl = _times(explained, ids[2: 2 + max(20, len(ids) // 5)])
        rows.append((label, learned, first, plain, expl))
    base = rows[0][3]

    search = rec.search_backend
    search = {"exact": "exact", "hnsw": "HNSW", "ivfpq": "IVF-PQ"}.get(search, search)
    lines = [f"# Query cost of a learned profile: `{args.model}`", "",
             f"`python benchmarks/learned_query_cost.py {args.model} --profiles "
             f"{args.profiles} --queries {args.queries}` on {platform.node() or 'this machine'}"
             f" ({platform.machine()}, Python {platform.python_version()}); "
             f"{len(rec.catalog):,} products, {search} search, one query at a time after a "
             "warm-up; explain = similar + explain of its 15 results.", "",
             "| weighting | trees | first query (ms) | similar p50 / p99 (ms) | ratio p50 | "
             "with explain p50 / p99 (ms) |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for label, learned, first, plain, expl in rows:
        lines.append(f"| {label} | {'yes' if learned else 'no'} | {first:.0f} | "
                     f"{np.percentile(plain, 50):.1f} / {np.percentile(plain, 99):.1f} | "
                     f"{np.percentile(plain, 50) / np.percentile(base, 50):.2f} | "
                     f"{np.percentile(expl, 50):.1f} / {np.percentile(expl, 99):.1f} |")
    write_markdown(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
