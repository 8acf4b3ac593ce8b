"""What limits IVF-PQ's recall on a large catalog: cells probed or candidates fetched
(thirty-fourth session). The saved IVF-PQ indexes of a ``scale.py build --index ivfpq``
model searched with ``nprobe`` × ``min_candidates`` on a grid, with ``IVFPQIndex.min_fetch``
switched off (the fetch is ``min_candidates``), and once with the library's settings (the
fetch rule on): recall@15 against the exact fusion and the batch cost per query.

    python benchmarks/ivfpq_fetch_sweep.py MODEL_DIR [--fusions early,intermediate]
        [--queries 200] [--out docs/benchmarks/ivfpq_fetch_sweep.md]

Queries: ``--queries`` products drawn as ``scale.py query`` draws its recall queries
(seed 0). FAISS on one thread (``OMP_NUM_THREADS=1``). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

GRID = [(32, 128), (32, 256), (32, 512), (64, 128), (64, 256), (128, 256)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--fusions", default="early,intermediate")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import faiss

    from prodfusion.index.faiss_index import IVFPQIndex
    from prodfusion.recommender import Recommender

    faiss.omp_set_num_threads(1)
    rec = Recommender.load(args.model)
    n = len(rec.catalog)
    rng = np.random.default_rng(0)
    present = np.zeros(n, bool)
    for e in rec.embeddings_.values():
        present |= e.mask
    pool = np.flatnonzero(present)
    rng.choice(pool, 300, replace=False)  # scale.py query's single-query draw comes first
    qs = rng.choice(pool, args.queries, replace=False)
    lines = ["| fusion | nprobe | candidates | recall@15 (min) | batch ms per query |",
             "| --- | ---: | --- | ---: | ---: |"]
    default = IVFPQIndex.PROBED_ROWS_PER_FETCH
    for f in args.fusions.split(","):
        s = rec.searcher(f)
        ref, _ = s.exact_topk(qs, 15)
        base_s = s.settings
        pieces = [p.index for p in s.pieces_.values() if isinstance(p.index, IVFPQIndex)]
        base_p = [p.settings for p in pieces]
        runs = [(p, c, False) for p, c in GRID] + [(base_p[0].nprobe, None, True)]
        for nprobe, mc, rule in runs:
            IVFPQIndex.PROBED_ROWS_PER_FETCH = default if rule else 10**12
            s.settings = base_s if mc is None else replace(base_s, min_candidates=mc)
            for p, b in zip(pieces, base_p, strict=True):
                p.settings = replace(b, nprobe=nprobe)
            try:
                s.topk(qs[:10], 15)  # warm
                t = time.perf_counter()
                got, _ = s.topk(qs, 15)
                ms = (time.perf_counter() - t) * 1e3 / len(qs)
            finally:
                IVFPQIndex.PROBED_ROWS_PER_FETCH = default
            r = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                 for a, b in zip(got, ref, strict=True)]
            cand = (f"{mc}" if not rule else
                    f"the library's: max({base_s.min_candidates}, one per "
                    f"{default} probed rows = {max(p.min_fetch() for p in pieces)})")
            line = (f"| {f} | {nprobe} | {cand} | {np.mean(r):.4f} ({np.min(r):.3f}) | "
                    f"{ms:.2f} |")
            print(line, flush=True)
            lines.append(line)
        s.settings = base_s
        for p, b in zip(pieces, base_p, strict=True):
            p.settings = b
    cmd = "python benchmarks/ivfpq_fetch_sweep.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    text = (f"# IVF-PQ on {n:,} products: cells probed against candidates fetched\n\n`{cmd}` "
            f"on {platform.node()} ({platform.machine()}, Python {platform.python_version()}),"
            f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(qs)} queries, "
            "truth: the exact fusion; FAISS on one thread; rows other than the last of each "
            "fusion have `IVFPQIndex.min_fetch` switched off (the fetch is the "
            "candidates named; k = 15 asks for 120, so 128 is the floor).\n\n"
            + "\n".join(lines) + "\n")
    if args.out:
        Path(args.out).write_text(text)
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
