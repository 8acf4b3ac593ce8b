"""Sharded vs unsharded fused indexes (issue 14): build time, query time, recall@15 vs exact.

    python benchmarks/shard_recall.py --data /tmp/h14/50k --n 50000 --shards 4 \
        --json docs/benchmarks/export/shards-50k.json

On a synthetic catalog (``benchmarks/_synthetic.py``, the default encoders' widths, missing
modalities; generated into ``--data`` if absent), for each backend (HNSW, IVF-PQ) the model's
early and intermediate indexes are built once with one index per piece and once with
``IndexSettings(shards=S)`` (shards filled one after another in this process, or on a local
Ray with ``--engine ray``). ``--queries`` random products are then answered by each, and by
the exact fusion (every product scanned). Reported per fusion: recall@15 against exact (mean
and min), the share of queries whose 15 ids equal the unsharded index's, the build and
per-query times. Each figure is one run; the machine and its load average are recorded.
Nothing here is asserted by the tests; figures go to docs/benchmarks/export.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _synthetic  # noqa: E402

FUSIONS = ("early", "intermediate")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--backends", default="hnsw,ivfpq")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from prodfusion.engine import make_executor
    from prodfusion.index import IndexSettings
    from prodfusion.recommender import Recommender

    data = Path(args.data)
    if not (data / "meta.json").is_file():
        _synthetic.generate(args.n, data)
    catalog, embs = _synthetic.load(data)
    n = len(catalog)
    rng = np.random.default_rng(0)
    queries = np.sort(rng.choice(n, min(args.queries, n), replace=False))
    ids = [catalog.ids[i] for i in queries]
    result = {"n": n, "shards": args.shards, "queries": len(queries), "engine": args.engine,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_start": _load(),
                          "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
              "runs": []}
    exact = Recommender.from_embeddings(catalog, embs, index="exact")
    oracle = {}
    for f in FUSIONS:
        t = time.perf_counter()
        oracle[f] = exact.similar_batch(ids, 15, fusion=f)[0]
        result[f"exact_{f}_per_query_ms"] = round((time.perf_counter() - t) * 1e3 / len(ids), 2)
    executor = make_executor(args.engine) if args.engine == "ray" else None
    for backend in args.backends.split(","):
        base = None
        for shards in (1, args.shards):
            settings = dataclasses.replace(IndexSettings(), shards=shards)
            rec = Recommender.from_embeddings(catalog, embs, index=backend,
                                              index_settings=settings)
            t = time.perf_counter()
            rec.build_index(list(FUSIONS), executor=executor if shards > 1 else None)
            build_s = time.perf_counter() - t
            run = {"backend": backend, "shards": shards, "build_s": round(build_s, 1),
                   "build_s_per_fusion": rec.build_seconds_, "load_avg": _load()}
            got = {}
            for f in FUSIONS:
                t = time.perf_counter()
                got[f] = rec.similar_batch(ids, 15, fusion=f)[0]
                per_q = (time.perf_counter() - t) * 1e3 / len(ids)
                rec_at = [len({x for x in a if x} & {x for x in b if x}) / 15
                          for a, b in zip(got[f].tolist(), oracle[f].tolist(), strict=True)]
                piece_kinds = {name: p.index.kind
                               for name, p in rec.searcher(f).pieces_.items()}
                run[f] = {"recall_at_15": round(float(np.mean(rec_at)), 4),
                          "recall_at_15_min": round(float(np.min(rec_at)), 4),
                          "per_query_ms": round(per_q, 2), "pieces": piece_kinds}
                if base is not None:
                    run[f]["same_ids_as_unsharded"] = round(float(np.mean(
                        [a == b for a, b in zip(got[f].tolist(), base[f].tolist(),
                                                strict=True)])), 4)
            base = base or got
            print(json.dumps(run), flush=True)
            result["runs"].append(run)
    if executor is not None:
        executor.close()
    result["machine"]["load_avg_end"] = _load()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
