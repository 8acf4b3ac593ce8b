"""Which file should the service read precomputed lists from? (issue 14)

Writes N synthetic lists (ids ``P0000000``…, k neighbours each) in three serving layouts and
measures, in this one process, the time to open the file, the time per random lookup of one
product's list (ids as Python strings + scores as floats) and the memory the open store holds:

* ``arrow``  — an uncompressed Arrow IPC file, memory-mapped, rows sorted by product id, found
  by binary search over the mapped id column (nothing is read into memory at open);
* ``sqlite`` — one table ``(product_id TEXT PRIMARY KEY, ids TEXT, scores BLOB)`` opened
  read-only and immutable;
* ``memory`` — the Parquet file read into memory with a Python dict id → position (the
  baseline a naive server would use).

Each layout is opened and probed in its own child process, so that its memory is its own.

    python benchmarks/lists_store.py --n 1000000 --json docs/benchmarks/lists/store-1m.json

Nothing here is asserted by the tests; figures go to docs/benchmarks/export.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _probe(serving: str, layout: str, keys: list[str], k: int) -> dict:
    from prodfusion.batch.lists import ListStore

    rss0 = _rss_mib()
    t0 = time.perf_counter()
    store = ListStore.open(serving, layout=layout)
    open_s = time.perf_counter() - t0
    rss_open = _rss_mib()
    lat = []
    for key in keys:
        t = time.perf_counter()
        got = store.get(key)
        lat.append(time.perf_counter() - t)
        assert got is not None and len(got[0]) == k
    a = np.asarray(lat) * 1e6
    warm = a[len(a) // 2:]  # the second half: after the first pass faulted pages in
    return {"open_s": round(open_s, 4), "rss_after_open_mib": round(rss_open - rss0, 1),
            "rss_after_lookups_mib": round(_rss_mib() - rss0, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "lookup_us": {"p50": round(float(np.percentile(a, 50)), 2),
                          "p99": round(float(np.percentile(a, 99)), 2),
                          "mean": round(float(a.mean()), 2),
                          "second_half_p50": round(float(np.percentile(warm, 50)), 2),
                          "second_half_p99": round(float(np.percentile(warm, 99)), 2)}}


def _table(n: int, k: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:07d}" for i in range(n)], dtype=object)
    nbr = rng.integers(0, n, size=(n, k))
    scores = np.sort(rng.random((n, k), dtype=np.float32), axis=1)[:, ::-1]
    flat_ids = pa.array(ids[nbr.ravel()], type=pa.string())
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.table({
        "product_id": pa.array(ids, type=pa.string()),
        "ids": pa.ListArray.from_arrays(offsets, flat_ids),
        "scores": pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(scores).ravel())),
    })


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("-k", type=int, default=15)
    ap.add_argument("--lookups", type=int, default=20_000)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from prodfusion.batch.lists import ListStore, write_lists

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pf-lists-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table = _table(args.n, args.k)
    gen_s = time.perf_counter() - t0
    meta = {"format_version": 1, "k": args.k, "fusion": "early", "modalities": ["text"],
            "model_fingerprint": "synthetic", "n_products": args.n}
    parquet = work / "lists.parquet"
    t0 = time.perf_counter()
    write_lists(table, parquet, meta)
    write_parquet_s = time.perf_counter() - t0
    del table
    rng = random.Random(1)
    keys = [f"P{rng.randrange(args.n):07d}" for _ in range(args.lookups)]
    result = {"n": args.n, "k": args.k, "lookups": args.lookups, "generate_s": round(gen_s, 2),
              "write_parquet_s": round(write_parquet_s, 2),
              "parquet_mib": round(parquet.stat().st_size / 2**20, 1),
              "load_avg": os.getloadavg(), "cpus": os.cpu_count(), "layouts": {}}
    for layout in ("arrow", "sqlite", "memory"):
        t0 = time.perf_counter()
        serving = ListStore.prepare(parquet, layout=layout)
        prepare_s = time.perf_counter() - t0
        with concurrent.futures.ProcessPoolExecutor(1) as pool:  # a fresh process per layout
            probe = pool.submit(_probe, str(serving), layout, keys, args.k).result()
        result["layouts"][layout] = {"prepare_s": round(prepare_s, 2),
                                     "file_mib": round(Path(serving).stat().st_size / 2**20, 1),
                                     **probe}
        print(layout, json.dumps(result["layouts"][layout]), flush=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
