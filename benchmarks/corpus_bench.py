"""Session preparation at scale (issue 14): one process vs ``prepare_corpus`` locally vs on Ray.

    python benchmarks/corpus_bench.py --files 20 --rows-per-file 250000 --products 1000000 \
        --json docs/benchmarks/export/corpus.json

Writes a synthetic click log as ``--files`` Parquet files (sessions of geometric length, mean
~5 clicks; one session in ten continues in the next file; 2 % of clicks on products outside
the catalog; immediate repeats), then prepares the Prod2Vec corpus three ways and checks the
three files are byte-identical:

``single``  ``read_interactions`` of every file, ``clean_sessions`` of the concatenation,
            ``write_corpus`` — what one process does today (``build --interactions`` reads one
            file; this is its loop over many);
``local``   ``prepare_corpus(..., buckets=B)`` in this process (the split/clean/merge path);
``ray``     the same on a local Ray (2 CPUs, tasks of 0.5 CPU), ``ray.init`` timed apart.

Each way runs in its own child process (``--only``), so its peak RSS (``getrusage`` of the
child) is its own; for ``ray`` that is the driver only (the tasks' memory is not counted).
Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def make_logs(folder: Path, files: int, rows_per_file: int, products: int, seed: int) -> dict:
    import polars as pl

    rng = np.random.default_rng(seed)
    next_session, carry, total = 0, None, 0
    for i in range(files):
        lengths = rng.geometric(0.2, size=rows_per_file // 5 + 1)
        lengths = lengths[np.cumsum(lengths) <= rows_per_file]
        keys = np.arange(next_session, next_session + len(lengths))
        next_session += len(lengths)
        if carry is not None:  # sessions continued from the previous file
            keys[: len(carry)] = carry
        sess = np.repeat(keys, lengths)
        n = len(sess)
        items = rng.integers(0, int(products * 1.02), size=n)  # >= products: not in the catalog
        rep = rng.random(n) < 0.05
        items[1:][rep[1:]] = items[:-1][rep[1:]]  # immediate repeats
        ts = np.float64(i) * 1e6 + np.arange(n, dtype=np.float64)
        pl.DataFrame({"session_id": [f"s{k}" for k in sess.tolist()],
                      "product_id": [f"P{j:07d}" for j in items.tolist()],
                      "ts": ts}).write_parquet(folder / f"clicks-{i:03d}.parquet")
        carry = keys[-len(lengths) // 10:]
        total += n
    return {"files": files, "rows": total, "sessions_started": next_session}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--rows-per-file", type=int, default=250_000)
    p.add_argument("--products", type=int, default=1_000_000)
    p.add_argument("--buckets", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None)
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--only", default=None, choices=["single", "local", "ray"],
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import polars as pl

    from prodfusion.data import Catalog, clean_sessions, read_interactions
    from prodfusion.encoders.clicks import write_corpus
    from prodfusion.engine.corpus import prepare_corpus

    work = Path(args.workdir or tempfile.mkdtemp(prefix="corpus_bench_"))
    if args.only is None:  # the parent: data, then each way in a child process
        import subprocess

        (work / "logs").mkdir(parents=True, exist_ok=True)
        res: dict = {"machine_before": _machine(), "args": vars(args)}
        t = time.perf_counter()
        res["data"] = make_logs(work / "logs", args.files, args.rows_per_file, args.products,
                                args.seed)
        res["data"]["seconds_to_generate"] = round(time.perf_counter() - t, 1)
        ways = ["single", "local"] + ([] if args.skip_ray else ["ray"])
        base = [sys.executable, __file__, "--products", str(args.products), "--buckets",
                str(args.buckets), "--workdir", str(work)]
        for way in ways:
            out = subprocess.run([*base, "--only", way], check=True, capture_output=True,
                                 text=True).stdout
            res[way] = json.loads(out.strip().splitlines()[-1])
            res[way]["peak_rss_mib"] = res[way].pop("child_peak_rss_mib")
            if way != "single":
                res[way]["identical_to_single"] = ((work / f"{way}.txt").read_bytes()
                                                   == (work / "single.txt").read_bytes())
            print(way, json.dumps(res[way]), flush=True)
        res["machine_after"] = _machine()
        text = json.dumps(res, indent=2)
        print(text)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n")
        return 0
    ids = [f"P{j:07d}" for j in range(args.products)]
    catalog = Catalog(pl.DataFrame({"product_id": ids, "title": [""] * len(ids)}))
    files = sorted((work / "logs").glob("*.parquet"))
    read = {"session_cols": "session_id", "item_col": "product_id", "time_col": "ts"}

    res = {}
    t = time.perf_counter()
    if args.only == "single":
        frames = [read_interactions(f, **read).with_columns(pl.col("row") + (i << 40))
                  for i, f in enumerate(files)]
        sessions = clean_sessions(pl.concat(frames), catalog)
        del frames
        write_corpus(sessions, work / "single.txt")
        res["report"] = sessions.report.as_dict()
    elif args.only == "local":
        local = prepare_corpus(files, work / "local.txt", catalog=catalog, buckets=args.buckets,
                               progress=False, **read)
        res["corpus"] = local.meta["corpus"]
    else:
        import ray

        from prodfusion.engine import make_executor
        from prodfusion.engine.ray_engine import local_ray_options

        ray.init(**local_ray_options(num_cpus=2, object_store_mb=512), log_to_driver=False)
        res["ray_init_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        ex = make_executor("ray", num_cpus_per_worker=0.5)
        prepare_corpus(files, work / "ray.txt", catalog=catalog, buckets=args.buckets,
                       executor=ex, progress=False, **read)
        ray.shutdown()
    res["seconds"] = round(time.perf_counter() - t, 2)
    res["child_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
