"""Same-process A/B checks behind figures in docs/benchmarks/scale.md (second 1M run).

    python benchmarks/query_ab.py fetch MODEL            # old vs new candidate fetch, thread CPU
    python benchmarks/query_ab.py index-mmap INDEX_FILE  # HNSW search, memory-mapped vs in memory
    python benchmarks/query_ab.py float16 MODEL32 MODEL16  # same catalog stored float32 / float16
    python benchmarks/query_ab.py large-graph MODEL    # efSearch doubled from 500,000 rows or not
                                                      # (thirty-third session), same-category

Run with ``OMP_NUM_THREADS=1``. Prints one JSON object per line; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time

import numpy as np


def _old_n_fetch(self, q, k, flt):
    """The candidate fetch before commit d2b67aa: ``+ excluded`` after the max, next power of 2."""
    s = self.settings
    n_present = max(1, self.n_present_)
    universe = flt.universe(q)
    if universe is not None and len(universe) <= s.exact_below:
        return None
    frac, removed = 1.0, flt.n_removed(q)
    extra = removed
    if removed >= n_present / 2:
        frac *= max(1.0 - removed / n_present, 1e-9)
        extra = 0
    kp = max(s.min_candidates, math.ceil(k * s.over_fetch / frac)) + extra
    if kp > s.max_candidates:
        return None
    return 1 << (kp - 1).bit_length()


def _pct(xs) -> dict:
    a = np.asarray(xs) * 1e3
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 3) for q in (50, 90, 99)}


def cmd_fetch(args) -> None:
    from prodfusion.index import fused
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model)
    new = fused._VectorFusedIndex._n_fetch
    ids = rec.catalog.ids
    rnd = random.Random(1)
    qs = [ids[rnd.randrange(len(ids))] for _ in range(args.queries)]
    for fusion in ("intermediate", "early"):
        res = {"old": [], "new": []}
        for q in qs[:50]:
            rec.similar(q, k=15, fusion=fusion)
        for i, q in enumerate(qs):  # alternate which goes first
            for name, fn in ((("old", _old_n_fetch), ("new", new)) if i % 2
                             else (("new", new), ("old", _old_n_fetch))):
                fused._VectorFusedIndex._n_fetch = fn
                t = time.thread_time()
                rec.similar(q, k=15, fusion=fusion)
                res[name].append(time.thread_time() - t)
        fused._VectorFusedIndex._n_fetch = new
        print(json.dumps({"fusion": fusion, **{f"{k}_cpu": _pct(v) for k, v in res.items()}}))


def cmd_index_mmap(args) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    for flag, name in ((faiss.IO_FLAG_MMAP_IFC, "mmap"), (0, "in-memory")):
        t = time.perf_counter()
        idx = faiss.read_index(args.index_file, flag)
        read_s = time.perf_counter() - t
        rng = np.random.default_rng(0)
        q = np.vstack([idx.reconstruct(int(i)) for i in rng.choice(idx.ntotal, 60)])
        params = faiss.SearchParametersHNSW(efSearch=128)
        passes = []
        for _ in range(2):  # the second pass repeats the same queries
            t = time.perf_counter()
            for i in range(len(q)):
                idx.search(q[i : i + 1], 128, params=params)
            passes.append(round((time.perf_counter() - t) / len(q) * 1e3, 2))
        print(json.dumps({"index": name, "read_s": round(read_s, 1),
                          "ms_per_query_first_pass": passes[0],
                          "ms_per_query_second_pass": passes[1]}))
        del idx


def cmd_float16(args) -> None:
    from prodfusion.recommender import Recommender

    recs = {"float32": Recommender.load(args.model32), "float16": Recommender.load(args.model16)}
    ids = recs["float32"].catalog.ids
    qs = list(ids[np.random.default_rng(1).choice(len(ids), args.queries, replace=False)])
    for m in recs["float32"].late_labels_:
        from sklearn.metrics import adjusted_rand_score

        a, b = recs["float32"].late_labels_[m], recs["float16"].late_labels_[m]
        print(json.dumps({"late_labels": m, "ari": round(float(adjusted_rand_score(a, b)), 4)}))
    for fusion in ("early", "intermediate", "late"):
        a_i, a_s = recs["float32"].similar_batch(qs, 15, fusion=fusion)
        b_i, b_s = recs["float16"].similar_batch(qs, 15, fusion=fusion)
        fin = np.isfinite(a_s) & np.isfinite(b_s)
        overlap = np.mean([len(set(x) & set(y)) / 15 for x, y in zip(a_i, b_i, strict=True)])
        print(json.dumps({"fusion": fusion, "top15_overlap": round(float(overlap), 4),
                          "max_abs_score_diff": float(np.abs(a_s[fin] - b_s[fin]).max())}))


def cmd_large_graph(args) -> None:
    """``HNSWIndex.LARGE_GRAPH``'s doubled efSearch on and off, alternating per query, on
    ``scale.py query``'s first 150 single queries (same draw), same-category filter by
    default (FAISS walks the graph skipping other categories' rows)."""
    from prodfusion.index.faiss_index import HNSWIndex
    from prodfusion.recommender import Recommender

    rec = Recommender.load(args.model)
    n = len(rec.catalog)
    present = np.zeros(n, dtype=bool)
    for e in rec.embeddings_.values():
        present |= e.mask
    pool = np.flatnonzero(present)
    ids = rec.catalog.ids[np.random.default_rng(0).choice(pool, 300, replace=False)][:150]
    on, off = HNSWIndex.LARGE_GRAPH, 1 << 62
    kw = {} if args.no_filter else {"same_category": True}
    for fusion in ("early", "intermediate"):
        for q in ids[:30]:
            rec.similar(q, k=15, fusion=fusion, **kw)
        res = {on: [], off: []}
        for i, q in enumerate(ids):  # alternate which goes first
            for lg in ((on, off) if i % 2 else (off, on)):
                HNSWIndex.LARGE_GRAPH = lg
                t = time.perf_counter()
                rec.similar(q, k=15, fusion=fusion, **kw)
                res[lg].append(time.perf_counter() - t)
        HNSWIndex.LARGE_GRAPH = on
        print(json.dumps({"fusion": fusion, "filter": kw, "ef_search_rule": _pct(res[on]),
                          "ef_search_alone": _pct(res[off])}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("model")
    f.add_argument("--queries", type=int, default=1000)
    f.set_defaults(func=cmd_fetch)
    m = sub.add_parser("index-mmap")
    m.add_argument("index_file")
    m.set_defaults(func=cmd_index_mmap)
    h = sub.add_parser("float16")
    h.add_argument("model32")
    h.add_argument("model16")
    h.add_argument("--queries", type=int, default=200)
    h.set_defaults(func=cmd_float16)
    g = sub.add_parser("large-graph")
    g.add_argument("model")
    g.add_argument("--no-filter", action="store_true", help="plain queries instead")
    g.set_defaults(func=cmd_large_graph)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
