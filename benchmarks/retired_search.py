"""Served lists when most of a large catalog is retired (fifty-third session): a classifieds
site's archive built with ``--recommend-rows status=active`` keeps its sold listings, so a
query searches a catalog of which only a few percent may be listed. Synthetic title vectors
(``--n`` products in 2,000 clusters), the same model searched through HNSW and exactly,
with 0 %, 90 % and 95 % of the products retired: milliseconds per query (``similar``, k=15,
one query at a time), lists short of 15, retired products listed (must be 0), and recall@15
of HNSW against exact search on the same retirement. The row "hnsw, graph walked" is the
search before the fifty-third session (no exact pass over the few rows left:
``_EXACT_PER_FETCH = 0``), timed in the same run.

    python benchmarks/retired_search.py --out docs/benchmarks/retired_search.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import command_line, machine, write_markdown  # noqa: E402

K = 15


def main() -> None:
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.encoders.base import Embeddings
    from prodfusion.index.fused import vector
    from prodfusion.recommender import Recommender

    rule = vector._EXACT_PER_FETCH

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", default=None, help="markdown report to write")
    args = ap.parse_args()
    n, d = args.n, 64
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2000, d))
    x = (centers[rng.integers(0, 2000, n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
    ids = [f"p{i}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    emb = {"text": Embeddings(x, np.ones(n, bool), "t")}
    models = {kind: Recommender.from_embeddings(cat, emb, fusion="intermediate",
                                                index=kind.split(",")[0])
              for kind in ("hnsw", "hnsw, graph walked", "exact")}
    qs = [ids[i] for i in rng.choice(n, args.queries, replace=False)]
    lines = ["# Served lists when most of the catalog is retired", "",
             f"Command: `{command_line()}`  ", f"Machine: {machine()}  ",
             f"Data: {n:,} synthetic products (64-dimensional title vectors in 2,000 "
             f"clusters), {len(qs)} queries drawn from the whole catalog (retired ones too: "
             "their own pages get lists), `similar(id, 15)` one at a time.", "",
             "| retired | search | ms per query | × none retired | lists short of 15 | "
             "retired products listed | recall@15 against exact |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    base: dict[str, float] = {}
    for share in (0.0, 0.90, 0.95):
        gone = np.flatnonzero(rng.random(n) < share) if share else np.zeros(0, np.int64)
        dead = set(gone.tolist())
        got, cells = {}, {}
        for kind, rec in models.items():
            rec.retire(rec.catalog.ids.tolist(), retired=False)
            if len(gone):
                rec.retire([ids[i] for i in gone])
            rec.similar(qs[0], K)  # the index built / warmed before timing
            vector._EXACT_PER_FETCH = 0 if "walked" in kind else rule
            t0 = time.perf_counter()
            got[kind] = [rec.similar(q, K)[0].tolist() for q in qs]
            ms = (time.perf_counter() - t0) / len(qs) * 1000
            vector._EXACT_PER_FETCH = rule
            base.setdefault(kind, ms)
            cells[kind] = (f"| {share:.0%} | {kind} | {ms:.1f} | {ms / base[kind]:.2f} | "
                           f"{sum(len(row) < K for row in got[kind])} | "
                           f"{sum(int(p[1:]) in dead for row in got[kind] for p in row)} |")
        for kind in ("hnsw", "hnsw, graph walked"):
            recall = np.mean([len(set(a) & set(b)) / K
                              for a, b in zip(got[kind], got["exact"], strict=True)])
            lines.append(cells[kind] + f" {recall:.3f} |")
        lines.append(cells["exact"] + " – |")
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
