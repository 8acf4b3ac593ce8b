"""HNSW over rows of equal norm against the plain inner-product graph, through the model's
own fused index, on a scale benchmark catalog (thirty-third session).

``benchmarks/hnsw_norms.py`` compares the two graphs per modality on sets of at most 100,000
rows; this script builds a fusion's whole index (``Recommender.build_index``) twice on a
catalog written by ``benchmarks/scale.py gen`` — once with ``HNSWIndex(equal_norms=False)``
(the graph before the thirty-first session), once with today's rows of equal norm — and
reports recall@15 against the exact fuser on the same 400 queries, by the query's presence
pattern. ``--no-large-graph-rule`` searches every graph with ``ef_search`` as before the
thirty-third session (``HNSWIndex.LARGE_GRAPH`` doubles it from 500,000 rows).

    OMP_NUM_THREADS=1 python benchmarks/hnsw_graph_ab.py /tmp/prodfusion-scale/1m
        [--fusions early] [--queries 400] [--no-large-graph-rule]

At 1,000,000 products one build of the early index takes about 5 minutes on the 2-core VM.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--fusions", default="early")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--no-large-graph-rule", action="store_true")
    args = ap.parse_args(argv)
    import _synthetic

    from prodfusion.index.faiss_index import HNSWIndex
    from prodfusion.recommender import Recommender

    if args.no_large_graph_rule:
        HNSWIndex.LARGE_GRAPH = 1 << 62
    fusions = args.fusions.split(",")
    catalog, embs = _synthetic.load(args.data)
    orig = HNSWIndex.__init__
    for eq in (False, True):
        def init(self, dim, settings=None, *, n_expected=0, equal_norms=True, _eq=eq):
            orig(self, dim, settings, n_expected=n_expected, equal_norms=_eq)

        HNSWIndex.__init__ = init
        rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate", index="hnsw")
        t = time.perf_counter()
        rec.build_index(fusions, n_jobs=1)
        build = time.perf_counter() - t
        masks = {m: e.mask for m, e in rec.embeddings_.items()}
        pool = np.flatnonzero(np.logical_or.reduce(list(masks.values())))
        q = np.random.default_rng(0).choice(pool, args.queries, replace=False)
        pattern = np.array(["+".join(m for m in masks if masks[m][i]) for i in q])
        for f in fusions:
            s = rec.searcher(f)
            got, _ = s.topk(q, 15)
            ref, _ = s.exact_topk(q, 15)
            r = np.array([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                          for a, b in zip(got, ref, strict=True)])
            by = ", ".join(f"{p} {r[pattern == p].mean():.3f} ({(pattern == p).sum()})"
                           for p in sorted(set(pattern)))
            print(f"{'equal norms' if eq else 'plain'} | {f} | build {build:.0f} s | recall@15 "
                  f"{r.mean():.4f} (min {r.min():.3f}) | by query pattern: {by}", flush=True)
    HNSWIndex.__init__ = orig
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
