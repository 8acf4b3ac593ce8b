"""Query latency at 100K products before / after the reshaping of issue 9, same model folder.

The model (synthetic, real dimensions: benchmarks/_synthetic.py) is built and saved once;
then ``time`` loads it and times single queries through the public API under whichever
prodfusion is on the path, so the same script measures the old commit (checked out in a
temporary worktree, ``PYTHONPATH=<old worktree>``) and the new one on the same folder:

    python benchmarks/reshape_latency.py prepare --n 100000 --model /tmp/pf_reshape/m100k
    PYTHONPATH=/tmp/old python benchmarks/reshape_latency.py time --model ... --json old1.json
    python benchmarks/reshape_latency.py time --model ... --json new1.json
    ...   (alternate old / new runs so that the shared machine's load hits both alike)
    python benchmarks/reshape_latency.py report old1.json new1.json old2.json new2.json \\
        --out docs/benchmarks/reshape_latency.md

Nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: (name, fusion, keyword arguments of similar()) timed per query.
CASES = (
    ("intermediate (HNSW)", "intermediate", {}),
    ("early (HNSW)", "early", {}),
    ("intermediate, same_category", "intermediate", {"same_category": True}),
    ("intermediate, exclude 5 ids", "intermediate", {"exclude": None}),
)


def cmd_prepare(args) -> None:
    import _synthetic

    from prodfusion.recommender import Recommender

    data = Path(args.data) / f"n{args.n}"
    if not (data / "catalog.parquet").is_file():
        _synthetic.generate(args.n, data)
    catalog, embs = _synthetic.load(data)
    rec = Recommender.from_embeddings(catalog, embs, fusion="intermediate")
    t = time.perf_counter()
    rec.build_index(["intermediate", "early"])
    print(f"indexes built in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    rec.save(args.model, overwrite=True)


def cmd_time(args) -> None:
    import prodfusion
    from prodfusion.recommender import Recommender

    t = time.perf_counter()
    rec = Recommender.load(args.model)
    load_s = time.perf_counter() - t
    ids = rec.catalog.ids
    rnd = random.Random(args.seed)
    qs = [ids[rnd.randrange(len(ids))] for _ in range(args.queries)]
    excl = [ids[rnd.randrange(len(ids))] for _ in range(5)]
    for q in qs[:30]:  # warm-up: indexes read, caches filled
        for _, fusion, kw in CASES:
            rec.similar(q, k=15, fusion=fusion, **{**kw, **({"exclude": excl} if "exclude" in kw
                                                            else {})})
    lat: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    for q in qs:  # every query under every case in turn
        for name, fusion, kw in CASES:
            kw = {**kw, **({"exclude": excl} if "exclude" in kw else {})}
            t = time.perf_counter()
            rec.similar(q, k=15, fusion=fusion, **kw)
            lat[name].append(time.perf_counter() - t)
    exact = []
    fuser = rec.fuser("intermediate")
    rows = rec.catalog.rows_of(qs[: args.exact_queries])
    for r in rows:  # the exact fuser's top-k kernel (index/topk.py after the reshaping)
        t = time.perf_counter()
        fuser.topk([r], 15)
        exact.append(time.perf_counter() - t)
    lat["intermediate, exact fuser"] = exact
    out = {
        "prodfusion": str(Path(prodfusion.__file__).resolve().parent.parent),
        "n": len(ids), "queries": len(qs), "load_s": load_s,
        "loadavg": os.getloadavg(),
        "latency": {k: {"p50_ms": float(np.percentile(v, 50) * 1e3),
                        "p99_ms": float(np.percentile(v, 99) * 1e3), "n": len(v)}
                    for k, v in lat.items()},
    }
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["latency"]), file=sys.stderr)


def cmd_report(args) -> None:
    runs = [json.loads(Path(p).read_text()) for p in args.runs]
    old = [r for r in runs if args.old_marker in r["prodfusion"]]
    new = [r for r in runs if args.old_marker not in r["prodfusion"]]
    cases = list(runs[0]["latency"])

    def agg(rs, case, q):
        return float(np.median([r["latency"][case][q] for r in rs]))

    loads = [r["loadavg"][0] for r in runs]
    lines = [
        f"# {args.title}",
        "",
        f"`benchmarks/reshape_latency.py` on {platform.machine()} with {os.cpu_count()} cores, "
        f"shared with other jobs (1-minute load average {min(loads):.1f}–{max(loads):.1f} "
        "during the runs). One synthetic model folder of "
        f"{runs[0]['n']:,} products (512 + 1280 + 512 dimensions, 1 % / 8 % / 30 % missing; "
        "intermediate and early HNSW indexes built and saved once) is loaded and queried by "
        f"the old code (commit {args.old_commit}, checked out in a temporary folder) and by the new "
        f"code, {len(old)} + {len(new)} runs alternated old / new; each run times "
        f"{runs[0]['queries']} single queries (k = 15, the same ids) under every case in "
        "turn after 30 warm-up queries. Figures are the median over runs of each run's "
        "p50 / p99; the exact-fuser row is the exact top-k kernel (first "
        f"{runs[0]['latency']['intermediate, exact fuser']['n']} queries).",
        "",
        "| case | old p50 (ms) | new p50 (ms) | new / old p50 | old p99 (ms) | new p99 (ms) "
        "| new / old p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        o50, n50 = agg(old, c, "p50_ms"), agg(new, c, "p50_ms")
        o99, n99 = agg(old, c, "p99_ms"), agg(new, c, "p99_ms")
        lines.append(f"| {c} | {o50:.2f} | {n50:.2f} | {n50 / o50:.2f} | {o99:.2f} | "
                     f"{n99:.2f} | {n99 / o99:.2f} |")
    lines += ["", "Per run (p50 ms of each case, in run order):", ""]
    for r in runs:
        tag = "old" if args.old_marker in r["prodfusion"] else "new"
        lines.append(f"- {tag}, load {r['loadavg'][0]:.1f}: " + ", ".join(
            f"{c} {r['latency'][c]['p50_ms']:.2f}" for c in cases))
    if args.note:
        lines += ["", args.note]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--data", default="/tmp/pf_fusion_weights")
    p.add_argument("--model", required=True)
    p.set_defaults(func=cmd_prepare)
    t = sub.add_parser("time")
    t.add_argument("--model", required=True)
    t.add_argument("--queries", type=int, default=300)
    t.add_argument("--exact-queries", type=int, default=30)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--json", required=True)
    t.set_defaults(func=cmd_time)
    r = sub.add_parser("report")
    r.add_argument("runs", nargs="+")
    r.add_argument("--old-marker", default="/tmp/h9/old")
    r.add_argument("--old-commit", default="14fba35", help="named in the report's text")
    r.add_argument("--title", default="Query latency at 100K before / after the reshaping (issue 9)")
    r.add_argument("--out", required=True)
    r.add_argument("--note", default=None)
    r.set_defaults(func=cmd_report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
