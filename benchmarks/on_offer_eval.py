"""What ranking each held-out click among the products on offer at its time costs
``evaluate retrieval`` on a large archive (fifty-fifth session): the exact configurations
mask the products not on offer in their tie-aware ranks, and the lists scored as served
(an HNSW-searched model, ``--ties row``, the lists' category precision) are read deeper
until they hold 15 products on offer then (``retrieval.lists_on_offer``).

A synthetic classifieds archive: ``--n`` listings (64-dimensional title vectors in 2,000
kinds), each posted on one of 100 days and online for a few days (``1 + Exp(mean 4)``);
those gone by day 100 are retired (about 96 %). ``--sessions`` visits: on a day, a listing
on offer, then others of its kind on offer that day. The same model searched exactly and
through HNSW, ``evaluate_retrieval(variants=["intermediate:text"])``, timed with the
windows and with every product ranked (the evaluation before the fifty-fourth session for
the exact model, before the fifty-fifth for HNSW), in the same run.

    python benchmarks/on_offer_eval.py --out docs/benchmarks/on_offer_eval.md
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import command_line, machine, write_markdown  # noqa: E402

DAYS, KINDS = 100, 2000


def _site(n: int, n_sessions: int, seed: int = 0):
    import polars as pl

    from prodfusion.data.catalog import Catalog
    from prodfusion.data.sessions import Sessions
    from prodfusion.encoders.base import Embeddings

    rng = np.random.default_rng(seed)
    kind = rng.integers(0, KINDS, n)
    centers = rng.normal(size=(KINDS, 64))
    x = (centers[kind] + 0.5 * rng.normal(size=(n, 64))).astype(np.float32)
    day = rng.integers(0, DAYS, n)
    gone = day + 1 + rng.exponential(4, n).astype(int)
    ids = [f"L{i}" for i in range(n)]
    cat = Catalog(pl.DataFrame({"product_id": ids, "title": ids}))
    live_by = {}  # (day, kind) -> listings on offer
    for i in np.argsort(kind, kind="stable"):
        for d in range(day[i], min(gone[i], DAYS)):
            live_by.setdefault((d, int(kind[i])), []).append(int(i))
    keys = list(live_by)
    rows = []
    for s in range(n_sessions):
        d, k = keys[rng.integers(len(keys))]
        pool = live_by[(d, k)]
        if len(pool) < 2:
            continue
        path = rng.choice(pool, size=min(len(pool), int(rng.integers(2, 5))), replace=False)
        t = d * 86400.0 + rng.uniform(0, 80000)
        rows += [(f"s{s:06d}", j, ids[p], t + 60.0 * j) for j, p in enumerate(path)]
    sessions = Sessions(pl.DataFrame({"session": [r[0] for r in rows],
                                      "position": [r[1] for r in rows],
                                      "product_id": [r[2] for r in rows],
                                      "ts": [r[3] for r in rows]}))
    return cat, {"text": Embeddings(x, np.ones(n, bool), "t")}, gone < DAYS, sessions


def main() -> None:
    from prodfusion.recommender import Recommender

    retrieval = importlib.import_module("prodfusion.evaluation.retrieval")
    windows = retrieval.on_offer_windows
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--sessions", type=int, default=5_000)
    ap.add_argument("--out", default=None, help="markdown report to write")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cat, emb, retired, sessions = _site(args.n, args.sessions)
    made = time.perf_counter() - t0
    lines = ["# `evaluate retrieval` on a large archive: each click among the products on "
             "offer at its time", "", f"Command: `{command_line()}`  ", f"Machine: {machine()}  ",
             f"Data: {args.n:,} synthetic listings, {int(retired.sum()):,} retired "
             f"({retired.mean():.0%}), {len(sessions):,} visits ({sessions.frame.height:,} "
             f"clicks; made in {made:.0f} s); `evaluate_retrieval(variants="
             "['intermediate:text'], n_boot=200)` with the default split (leave-last-out, "
             "20 % of the visits held out), the model as served beside it.", "",
             "| search | ranked | seconds | × every product | HitRate@15 (text) | "
             "HitRate@15 as served |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for index in ("exact", "hnsw"):
        rec = Recommender.from_embeddings(cat, emb, fusion="intermediate", index=index)
        rec.retire(cat.ids[retired].tolist())
        rec.similar(cat.ids[0], 15)  # the index built before timing
        secs = {}
        for ranked in ("every product", "on offer at the time"):
            retrieval.on_offer_windows = windows if ranked != "every product" else \
                (lambda rec, sessions: None)
            t0 = time.perf_counter()
            res = retrieval.evaluate_retrieval(rec, sessions=sessions,
                                               variants=["intermediate:text"], n_boot=200,
                                               progress=False)
            secs[ranked] = time.perf_counter() - t0
            retrieval.on_offer_windows = windows
            row = next(r for r in res["rows"] if r["source"] == "sessions"
                       and r["slice"] == "all" and r["variant"] == "intermediate:text")
            lines.append(f"| {index} | {ranked} | {secs[ranked]:.1f} | "
                         f"{secs[ranked] / secs['every product']:.2f} | "
                         f"{row['hit_rate']['value']:.3f} | {row['served']['hit_rate']:.3f} |")
    write_markdown(lines, args.out)


if __name__ == "__main__":
    main()
